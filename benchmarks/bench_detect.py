"""Speed and memory of lesions in the default pipeline and of ``detect``, on a 1 mm whole head.

Each command runs in its own process, as a user runs it, on a synthetic T2
whole head with three synthetic lesions written to NIfTI (257 x 293 x 249
voxels, 1 mm):

* ``segment --pipeline head+delineo``: brain extraction and the tissue network
  ``delineo``, no lesions (the default pipeline until 2026-12-07): the
  reference, the tissue segmentation alone;
* ``segment`` (the default pipeline ``head``: brain extraction, the tissue
  network with a lesion output, then the lesions step, which takes that
  output instead of running the network again);
* ``detect`` (the default pipeline, then the lesion instances and their
  measurements);
* ``detect --pipeline head+lesions`` (the tissue network ``delineo``, then
  the lesions step running both lesion networks: ``detect`` until 2026-12-07).

Reported: the median over ``--repeats`` runs of the time each command
measures itself (pipeline, plus lesion measuring for ``detect``), the time
spent beyond the tissue segmentation (the lesions step, plus measuring for
``detect``; goal <= 10 s), the whole process's wall time and its peak
resident size (from ``wait4``; goal <= 1.5 GiB). Ratios are against the
reference in the same run. Per run, how many of the three painted lesions a
finding overlaps and how many findings overlap none (the painted lesions are
3, 4 and 9 mm: a hard case, see docs/lesions.md).

Run from the repository root::

    .venv/bin/python benchmarks/bench_detect.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import emit, machine, run_cli  # noqa: E402

MAKE_HEAD = (
    "import sys; from engine.data.heads import synthetic_head; "
    "from engine.data.lesions import add_lesions; from engine.io import save; "
    "h = synthetic_head('t2', seed=int(sys.argv[1])); "
    "img, lab, _ = add_lesions(h.image, h.truth, contrast='t2', count=3, seed=1); "
    "save(img, sys.argv[2]); save(lab, sys.argv[3])"
)


def _matches(found: Path, truth: Path) -> tuple[int, int]:
    """(painted lesions overlapped by a finding, findings that overlap none) of one
    ``detect`` output folder against the painted lesions (26-connected)."""
    import nibabel as nib
    import numpy as np
    from scipy import ndimage

    inst = np.asarray(nib.load(found / "lesions.nii.gz").dataobj)
    gt, n = ndimage.label(np.asarray(nib.load(truth).dataobj) == 4, np.ones((3, 3, 3)))
    hit = sum(1 for j in range(1, n + 1) if (inst[gt == j] > 0).any())
    false = sum(1 for i in range(1, int(inst.max()) + 1) if not (gt[inst == i] > 0).any())
    return hit, false


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=101, help="synthetic head seed")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    print(f"# {machine()}")
    with tempfile.TemporaryDirectory(prefix="delineo-bench-") as tmp:
        image = Path(tmp) / "head.nii.gz"
        truth = Path(tmp) / "truth.nii.gz"
        # Made in a child process: a large parent would inflate every child's peak RSS.
        subprocess.run([sys.executable, "-c", MAKE_HEAD, str(args.seed), str(image),
                        str(truth)], check=True, cwd=HERE.parent)
        print(f"# synthetic T2 whole head with 3 synthetic lesions, seed {args.seed}, "
              f"257 x 293 x 249 voxels, 1 mm; {args.repeats} runs each, {args.threads} threads")
        commands = {
            "tissue": ["segment", str(image), "-o", str(Path(tmp) / "tissue.nii.gz"),
                       "--pipeline", "head+delineo"],
            "segment": ["segment", str(image), "-o", str(Path(tmp) / "labels.nii.gz")],
            "detect": ["detect", str(image), "--out", "{out}"],
            "detect_before": ["detect", str(image), "--out", "{out}",
                              "--pipeline", "head+lesions"],
        }
        runs: dict[str, list[tuple[float, float, float]]] = {k: [] for k in commands}
        steps: dict[str, list[float]] = {k: [] for k in commands}
        for i in range(args.repeats):
            for key, argv in commands.items():
                out = str(Path(tmp) / f"{key}{i}")
                summary, wall, rss = run_cli([a.replace("{out}", out) for a in argv],
                                             args.threads)
                runs[key].append((summary["seconds"], wall, rss))
                took = {st["name"]: st["seconds"] for st in summary["steps"]}
                steps[key].append(took.get("lesions", 0.0) + summary.get("measure_seconds", 0.0))

        def med(key: str, i: int) -> float:
            return statistics.median(r[i] for r in runs[key])

        names = {"tissue": "segment --pipeline head+delineo (tissue alone)",
                 "segment": "segment (default head: tissue + lesions)",
                 "detect": "detect (default head + measuring)",
                 "detect_before": "detect --pipeline head+lesions (delineo, both lesion "
                                  "networks run)"}
        ref = "segment --pipeline head+delineo"
        for key, label in names.items():
            emit(f"{label}: time", med(key, 0), "s",
                 ratio=None if key == "tissue" else med(key, 0) / med("tissue", 0),
                 reference=ref)
        for key in ("segment", "detect", "detect_before"):
            emit(f"{names[key]}: beyond the tissue segmentation (lesions step"
                 f"{' + measuring' if key != 'segment' else ''})",
                 statistics.median(steps[key]), "s", goal="<= 10 s")
        for key, label in names.items():
            emit(f"{label}: process wall time", med(key, 1), "s",
                 ratio=None if key == "tissue" else med(key, 1) / med("tissue", 1),
                 reference=ref)
        for key, label in names.items():
            emit(f"{label}: peak RSS", med(key, 2), "GiB",
                 ratio=None if key == "tissue" else med(key, 2) / med("tissue", 2),
                 reference=ref, goal="<= 1.5 GiB")
        for key in ("detect", "detect_before"):
            hits = [_matches(Path(tmp) / f"{key}{i}", truth) for i in range(args.repeats)]
            print(f"# {names[key]}: painted lesions found / false findings per run: "
                  f"{[f'{h}/3, {f}' for h, f in hits]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
