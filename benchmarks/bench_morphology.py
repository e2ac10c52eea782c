"""Speed of the binary morphology on a whole head, against scipy.ndimage in the same process.

The default pipeline labels connected components, fills holes and measures
distances on whole 1 mm heads several times a volume (brain extraction, the
largest-component clean-up, the lesion step, the findings' measurements).
``engine.core.morphology`` does this with cc3d, fill_voids and edt; this
benchmark times each against the scipy.ndimage call it replaced, on the masks
the pipeline sees, interleaved (reference, then Delineo, every round), and
prints the median of ``--repeats`` rounds and the ratio. It also times deepbet's
own ``run_model`` against Delineo's ``_network_probability`` (the same networks
and numbers; the intensity quantiles by selection) on the same head.

Masks: the synthetic T2 whole head's true intracranial mask (257 x 293 x 249
voxels, 1 mm), its bounding box for the distance transform, and its lesion
label (3 synthetic lesions) for the 26-connected lesion components.

Run from the repository root::

    .venv/bin/python benchmarks/bench_morphology.py [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import emit, machine, median  # noqa: E402


def _pair(reference: Callable[[], Any], ours: Callable[[], Any], repeats: int
          ) -> tuple[float, float]:
    """Median seconds of *reference* and *ours*, run alternately after one warm-up each."""
    reference()
    ours()
    a, b = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        reference()
        a.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours()
        b.append(time.perf_counter() - t0)
    return median(a), median(b)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=101, help="synthetic head seed")
    args = parser.parse_args(argv)
    import numpy as np
    import torch
    from scipy import ndimage

    from engine.core import morphology
    from engine.core.morphology import bounding_box
    from engine.data.heads import synthetic_head
    from engine.data.lesions import add_lesions
    from engine.methods import brain_extraction

    torch.set_num_threads(args.threads)
    print(f"# {machine()}")
    head = synthetic_head("t2", seed=args.seed)
    image, labels, _ = add_lesions(head.image, head.truth, contrast="t2", count=3, seed=1)
    brain = np.ascontiguousarray(labels.array > 0)
    lesion = np.ascontiguousarray(labels.array == 4)
    box = brain[bounding_box(brain, 5)]
    spacing = tuple(float(s) for s in head.image.spacing)
    print(f"# synthetic T2 whole head, seed {args.seed}, {brain.shape[0]} x {brain.shape[1]} x "
          f"{brain.shape[2]} voxels, brain box {box.shape[0]} x {box.shape[1]} x {box.shape[2]}; "
          f"median of {args.repeats} interleaved rounds")
    face = ndimage.generate_binary_structure(3, 1)
    cases = [
        ("label, 6-connected, whole head's brain",
         lambda: ndimage.label(brain, face), lambda: morphology.label(brain, 6)),
        ("label, 26-connected, lesions",
         lambda: ndimage.label(lesion, np.ones((3, 3, 3), bool)),
         lambda: morphology.label(lesion, 26)),
        ("fill holes, whole head's brain",
         lambda: ndimage.binary_fill_holes(brain), lambda: morphology.fill_holes(brain)),
        ("distance transform, brain box",
         lambda: ndimage.distance_transform_edt(box, sampling=spacing),
         lambda: morphology.distance_inside(box, spacing)),
    ]
    for name, reference, ours in cases:
        a, b = _pair(reference, ours, args.repeats)
        emit(f"{name}: scipy.ndimage", a, "s")
        emit(f"{name}: engine.core.morphology", b, "s", ratio=b / a, reference="scipy.ndimage")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        bet = brain_extraction._extractor("cpu")
    x = np.nan_to_num(np.asarray(image.array, np.float32))
    same = float(np.abs(bet.run_model(x.copy()) - brain_extraction._network_probability(bet, x)
                        ).max())
    a, b = _pair(lambda: bet.run_model(x.copy()),
                 lambda: brain_extraction._network_probability(bet, x), args.repeats)
    emit("deepbet networks, one pass: deepbet's run_model", a, "s")
    emit("deepbet networks, one pass: Delineo's _network_probability", b, "s", ratio=b / a,
         reference="run_model")
    print(f"# largest difference of the two probabilities: {same:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
