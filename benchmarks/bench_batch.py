"""Cohort throughput on Ray: cases per minute for 1 and 2 workers, and the cost of Ray.

Run: ``python benchmarks/bench_batch.py [--cases 8] [--size 80] [--pipeline NAME]
[--repeats 3]``.

A cohort of shell phantoms (``--size`` cubed voxels of 1.5 mm, different
shell radii per case) goes through the brain-only pipeline ``cnn`` (or
``--pipeline``; the phantoms have no skull to extract) three ways, all writing
the same per-case outputs (label file, record):

* the reference: a plain loop of :func:`engine.batch.process_case` in this
  process (what a shell loop over ``segment`` does, without the start-up of a
  process per case), torch using every core;
* :func:`engine.batch.run_batch` with 1 worker (every core), 1 worker with 1
  torch thread, then 2 workers (half the cores each), each run starting and
  stopping its own embedded Ray cluster (included in the time) and redoing
  every case (``force``).

Printed: cases per minute of each with the start-up included, the start-up
itself (cluster, worker processes, loading the networks), and, once running
(first to last result), cases per minute, the speed-up of 2 workers over 1
(with all cores, and against 1 worker of 1 thread: scaling in workers) and
the overhead per case of the 1-worker Ray run against the plain loop (seconds
and ratio). Medians of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, have_ray, machine, median

from engine.batch import CaseConfig, collect_cases, process_case, run_batch
from engine.methods.pipeline import DEFAULT_PIPELINE

INTENSITY = np.array([5.0, 30.0, 60.0, 90.0], dtype=np.float32)


def write_cohort(folder: Path, n: int, size: int) -> list[Path]:
    """*n* noisy nested-shell phantoms (background, CSF, GM, WM) as NIfTI files."""
    centre = (size - 1) / 2
    grid = np.indices((size, size, size), dtype=np.float32) - centre
    radius = np.sqrt((grid ** 2).sum(axis=0))
    paths = []
    for k in range(n):
        r = size / 2 * np.array([0.35, 0.6, 0.8 + 0.02 * (k % 5)])
        labels = np.select([radius <= r[0], radius <= r[1], radius <= r[2]], [3, 2, 1], 0)
        image = INTENSITY[labels] + np.random.default_rng(k).normal(0, 6, labels.shape)
        path = folder / f"case{k:03d}.nii.gz"
        nib.save(nib.Nifti1Image(image.astype(np.float32), np.diag([1.5, 1.5, 1.5, 1.0])), path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--size", type=int, default=80, help="voxels per side (1.5 mm)")
    parser.add_argument("--pipeline", default="cnn",
                        help=f"pipeline (default cnn; the default of segment is "
                        f"{DEFAULT_PIPELINE}, which adds brain extraction)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not have_ray():
        return
    print(f"# {machine()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="delineo-bench-batch-"))
    try:
        (work / "in").mkdir()
        cases = collect_cases(write_cohort(work / "in", args.cases, args.size))
        config = CaseConfig(pipeline=args.pipeline, allow_outside_use=True)
        print(f"# {len(cases)} cases of {args.size}^3 voxels, pipeline {args.pipeline}",
              flush=True)
        # (workers, torch threads per worker; 0: cores / workers)
        setups = {"1": (1, 0), "1x1": (1, 1), "2": (2, 0)}
        runs: dict[str, list[tuple[float, float]]] = {"loop": [], **{k: [] for k in setups}}
        for repeat in range(args.repeats):
            out = work / f"loop{repeat}"
            t0 = time.perf_counter()
            marks = []
            for case in cases:
                result = process_case(case, out, config)
                assert result.status == "done", result.error
                marks.append(time.perf_counter())
            runs["loop"].append((marks[-1] - t0, marks[-1] - marks[0]))
            for key, (workers, threads) in setups.items():
                marks = []
                t0 = time.perf_counter()
                run = run_batch(cases, work / f"ray{key}", config, workers=workers,
                                threads=threads, force=True,
                                on_result=lambda r, _run, m=marks: m.append(time.perf_counter()))
                total = time.perf_counter() - t0
                assert run.counts()["done"] == len(cases)
                runs[key].append((total, marks[-1] - marks[0]))
            print(f"# repeat {repeat + 1}: " + ", ".join(
                f"{k} {v[-1][0]:.1f} s total, {v[-1][1]:.1f} s first->last result"
                for k, v in runs.items()), flush=True)
        n = len(cases)
        total = {k: median([t for t, _ in v]) for k, v in runs.items()}
        steady = {k: median([s for _, s in v]) for k, v in runs.items()}
        emit("batch plain loop (1 process)", n / total["loop"] * 60, "cases/min")
        emit("batch ray 1 worker, start-up included", n / total["1"] * 60, "cases/min",
             ratio=total["loop"] / total["1"], reference="plain loop")
        emit("batch ray 2 workers, start-up included", n / total["2"] * 60, "cases/min",
             ratio=total["1"] / total["2"], reference="1 worker")
        emit("batch ray start-up (cluster, workers, networks)",
             (total["1"] - steady["1"]) - (total["loop"] - steady["loop"]), "s")
        emit("batch ray 1 worker, running", (n - 1) / steady["1"] * 60, "cases/min",
             ratio=steady["loop"] / steady["1"], reference="plain loop")
        emit("batch ray 2 workers, running", (n - 1) / steady["2"] * 60, "cases/min",
             ratio=steady["1"] / steady["2"], reference="1 worker with 2 threads")
        emit("batch ray 1 worker x 1 thread, running", (n - 1) / steady["1x1"] * 60,
             "cases/min")
        emit("batch ray 2 workers x 1 thread vs 1 x 1, running", (n - 1) / steady["2"] * 60,
             "cases/min", ratio=steady["1x1"] / steady["2"], reference="1 worker x 1 thread",
             goal="near-linear (2x) on 2 cores")
        emit("batch ray overhead per case (1 worker, running)",
             (steady["1"] - steady["loop"]) / (n - 1), "s", ratio=steady["1"] / steady["loop"],
             reference="plain loop", goal="<= 10 % (ratio <= 1.1)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
