"""Speed and memory of ``delineo-engine detect`` on a 1 mm whole head, against ``segment``.

Each command runs in its own process, as a user runs it, on a synthetic T2
whole head with three synthetic lesions written to NIfTI (257 x 293 x 249
voxels, 1 mm): ``detect`` (pipeline ``head+lesions``: brain extraction, the
tissue network, the two lesion networks averaged, then the lesion instances and
their measurements), ``detect`` with the first lesion network alone at its own
operating point (``--param lesions.ensemble=false``, 0.9, 6 mm³, no outline
level: the step before 2026-12-06) and ``segment`` (the default pipeline
``head``: the tissue segmentation alone). Reported: the median over
``--repeats`` runs of the time each command measures itself (pipeline, plus
lesion measuring for ``detect``), the time ``detect`` spends beyond the tissue
segmentation (its lesion step plus measuring; goal <= 10 s), the whole
process's wall time and its peak resident size (from ``wait4``; goal <= 1.5
GiB). Ratios are against ``segment`` in the same run, and for the lesion step
against the single network; per run, how many of the three painted lesions a
finding overlaps and how many findings overlap none (the painted lesions are 3,
4 and 9 mm: a hard case, see docs/lesions.md).

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
        seg, det, beyond = [], [], []
        one, one_beyond, one_step, two_step = [], [], [], []
        single = ["--param", "lesions.ensemble=false", "--param", "lesions.min_probability=0.9",
                  "--param", "lesions.min_lesion_mm3=6",
                  "--param", "lesions.outline_probability=0.9"]  # the step before 2026-12-06
        for i in range(args.repeats):
            s = run_cli(["segment", str(image), "-o", str(Path(tmp) / "labels.nii.gz")],
                     args.threads)
            d = run_cli(["detect", str(image), "--out", str(Path(tmp) / f"found{i}")],
                     args.threads)
            o = run_cli(["detect", str(image), "--out", str(Path(tmp) / f"one{i}"), *single],
                     args.threads)
            seg.append((s[0]["seconds"], s[1], s[2]))
            det.append((d[0]["seconds"], d[1], d[2]))
            one.append((o[0]["seconds"], o[1], o[2]))
            steps = {st["name"]: st["seconds"] for st in d[0]["steps"]}
            beyond.append(steps["lesions"] + d[0]["measure_seconds"])
            two_step.append(steps["lesions"])
            steps = {st["name"]: st["seconds"] for st in o[0]["steps"]}
            one_beyond.append(steps["lesions"] + o[0]["measure_seconds"])
            one_step.append(steps["lesions"])
        med = [tuple(statistics.median(r[i] for r in rows) for i in range(3))
               for rows in (seg, det)]
        (s_sec, s_wall, s_rss), (d_sec, d_wall, d_rss) = med
        emit("segment (head): pipeline time", s_sec, "s")
        emit("detect (head+lesions): time", d_sec, "s", ratio=d_sec / s_sec,
             reference="segment")
        emit("detect: beyond the tissue segmentation (lesion step + measuring)",
             statistics.median(beyond), "s", goal="<= 10 s")
        emit("segment: process wall time", s_wall, "s")
        emit("detect: process wall time", d_wall, "s", ratio=d_wall / s_wall,
             reference="segment")
        emit("segment: peak RSS", s_rss, "GiB")
        emit("detect: peak RSS", d_rss, "GiB", ratio=d_rss / s_rss, reference="segment",
             goal="<= 1.5 GiB")
        o_sec, _, o_rss = (statistics.median(r[i] for r in one) for i in range(3))
        emit("lesion step, both networks averaged", statistics.median(two_step), "s",
             ratio=statistics.median(two_step) / statistics.median(one_step),
             reference="first network alone")
        emit("lesion step, first network alone", statistics.median(one_step), "s")
        emit("detect, first network alone: beyond the tissue segmentation",
             statistics.median(one_beyond), "s")
        emit("detect, first network alone: time", o_sec, "s", ratio=o_sec / s_sec,
             reference="segment")
        emit("detect, first network alone: peak RSS", o_rss, "GiB", ratio=o_rss / s_rss,
             reference="segment")
        for name, runs in (("both networks", "found"), ("first network alone", "one")):
            hits = [_matches(Path(tmp) / f"{runs}{i}", truth) for i in range(args.repeats)]
            print(f"# {name}: painted lesions found / false findings per run: "
                  f"{[f'{h}/3, {f}' for h, f in hits]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
