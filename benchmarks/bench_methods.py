"""Classical segmentation methods on the full 1 mm MNI demo volume (197 x 233 x 189).

Run: ``python benchmarks/bench_methods.py`` (speed) or
``python benchmarks/bench_methods.py --accuracy`` (Dice table for docs/methods.md).

Speed, in one process:

* active contour, seconds per iteration on the full volume, against
  scikit-image's ``morphological_chan_vese`` on the same volume, from the
  same starting box, for the same number of iterations (3: it is slow);
  per-iteration figures are differences between a short and a long run, so
  set-up (normalisation, edge map, initial distance) is reported apart;
* the same for the label refinement (per label and iteration);
* reaction--diffusion, 100 iterations (goal <= 5 s);
* energy descent, Gaussian mixture + MRF, multi-Otsu.

Accuracy: every registered classical method and baseline on the demo T1 with
the ground-truth brain mask (labels > 0), Dice per tissue against the
ground truth, and the run time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, machine

from engine.core.metrics import dice
from engine.data.mni import load_demo
from engine.methods import (
    METHODS,
    ActiveContourParams,
    EnergyParams,
    GMMParams,
    ReactionDiffusionParams,
    active_contour,
    refine_labels,
    run_energy,
    run_gmm,
    run_otsu,
    run_reaction_diffusion,
)

#: Starting box of the binary contour: the central part of the brain (voxel indices).
BOX = ((50, 50, 40), (147, 183, 130))


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_active_contour(t1, truth, mask, skimage_iterations: int) -> None:
    from skimage.segmentation import morphological_chan_vese

    short, long_ = 5, 45
    t_short, _ = _timed(lambda: active_contour(
        t1, ActiveContourParams(iterations=short), box=BOX, device="cpu"))
    t_long, res = _timed(lambda: active_contour(
        t1, ActiveContourParams(iterations=long_), box=BOX, device="cpu"))
    per_it = (t_long - t_short) / (long_ - short)
    setup = t_short - short * per_it
    image = t1.array.astype(np.float32)
    init = np.zeros(image.shape, dtype=np.int8)
    init[tuple(slice(a, b) for a, b in zip(*BOX, strict=True))] = 1
    t_sk, _ = _timed(lambda: morphological_chan_vese(
        image, num_iter=skimage_iterations, init_level_set=init))
    sk_per_it = t_sk / skimage_iterations
    emit("active contour (binary, box start) per iteration, full 1 mm volume",
         per_it, "s", ratio=sk_per_it / per_it,
         reference=f"skimage morphological_chan_vese {sk_per_it:.3g} s/iteration "
         f"({skimage_iterations} iterations, same box)", goal=">= 20x faster")
    emit("active contour set-up (normalise, edge map, initial distance)", setup, "s")
    emit("active contour: voxels inside after 45 iterations", float(res.labels.array.sum()), "")

    otsu = run_otsu(t1, mask=mask).labels
    r_short, _ = _timed(lambda: refine_labels(
        t1, otsu, ActiveContourParams(iterations=short), mask=mask, device="cpu"))
    r_long, _ = _timed(lambda: refine_labels(
        t1, otsu, ActiveContourParams(iterations=long_), mask=mask, device="cpu"))
    per_label_it = (r_long - r_short) / (3 * (long_ - short))
    emit("active contour refine_labels per label-iteration (3 labels, brain bbox)",
         per_label_it, "s", ratio=sk_per_it / per_label_it,
         reference="skimage morphological_chan_vese per iteration")


def bench_reaction_diffusion(t1, mask) -> None:
    params = ReactionDiffusionParams(iterations=100)
    t_total, _ = _timed(lambda: run_reaction_diffusion(t1, params, mask=mask, device="cpu"))
    t_one, _ = _timed(lambda: run_reaction_diffusion(
        t1, ReactionDiffusionParams(iterations=1), mask=mask, device="cpu"))
    emit("reaction-diffusion 100 iterations, full volume (run incl. set-up)", t_total, "s",
         goal="<= 5 s")
    emit("reaction-diffusion per iteration (3 fields, brain bbox)", (t_total - t_one) / 99, "s")


def bench_energy(t1, mask) -> None:
    params = EnergyParams()
    t_total, _ = _timed(lambda: run_energy(t1, params, mask=mask, device="cpu"))
    emit(f"energy descent {params.iterations} iterations (float64), full volume", t_total, "s")


def bench_gmm(t1, mask) -> None:
    params = GMMParams()
    t_total, _ = _timed(lambda: run_gmm(t1, params, mask=mask, device="cpu"))
    emit(f"GMM + MRF {params.iterations} EM iterations, full volume", t_total, "s")
    t_otsu, _ = _timed(lambda: run_otsu(t1, mask=mask))
    emit("multi-Otsu, full volume", t_otsu, "s")


def accuracy(t1, truth, mask) -> None:
    print("| method | CSF | GM | WM | mean | time (s) |")
    print("|---|---|---|---|---|---|")
    for name in ("otsu", "gmm", "energy", "reaction_diffusion", "active_contour"):
        spec = METHODS[name]
        elapsed, res = _timed(lambda spec=spec: spec.run(
            t1, spec.default_params(), device="cpu", mask=mask))
        scores = [dice(res.labels.array, truth.array, k) for k in (1, 2, 3)]
        cells = " | ".join(f"{s:.3f}" for s in scores)
        print(f"| {name} | {cells} | {np.mean(scores):.3f} | {elapsed:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accuracy", action="store_true", help="print the Dice table instead")
    parser.add_argument("--skimage-iterations", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    print(machine(), flush=True)
    print("load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    t1, truth = load_demo()
    mask = truth.array > 0
    if args.accuracy:
        accuracy(t1, truth, mask)
        return
    bench_active_contour(t1, truth, mask, args.skimage_iterations)
    bench_reaction_diffusion(t1, mask)
    bench_energy(t1, mask)
    bench_gmm(t1, mask)
    print("load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)


if __name__ == "__main__":
    main()
