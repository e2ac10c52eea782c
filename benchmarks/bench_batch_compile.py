"""``batch --compile``: what compiling the networks once per worker costs and saves.

Run: ``python benchmarks/bench_batch_compile.py [--cases 12] [--pipeline cnn]
[--repeats 3]``.

A cohort of ``--cases`` volumes cut from the 197 x 233 x 189 demo T1 (each with
its own crop and padding, 171-242 voxels a side for the default 12, and its own
noise), so that the networks see a new input size in almost every case, goes
through
:func:`engine.batch.run_batch` with one worker (every core) three ways, each
redoing every case (``force``) and starting its own embedded Ray cluster:

* eager: the networks as ``batch`` runs them without ``--compile`` (the reference);
* compiled, cold: ``CaseConfig(compile=True)`` with an empty inductor cache
  (``TORCHINDUCTOR_CACHE_DIR`` a new folder): the first run on a machine;
* compiled, warm: the same again with the cache the cold run filled: every later
  run, and every further worker, on that machine.

Printed (medians of ``--repeats`` runs; per-case figures are the median over the
cases of a run, then over the runs): the seconds per case (the record's
``total_seconds``: reading, segmenting, writing) and of the slowest case (a
case that compiles again shows there), the start-up (wall time of the
run minus the cases' seconds: cluster, worker, loading and compiling the
networks), their ratios to eager, the cases after which the compiled run has
caught up with the eager one, and the agreement of the compiled labels with the
eager ones (fraction of voxels with the same label, the least over the cases).
"""

from __future__ import annotations

import argparse
import os
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

from engine.batch import CaseConfig, collect_cases, run_batch


def write_cohort(folder: Path, n: int) -> list[Path]:
    """*n* crops of the demo T1 with their own borders and noise, as NIfTI files."""
    from engine.data.mni import load_demo

    image = load_demo()[0].array.astype(np.float32)
    top = float(np.percentile(image, 99.5))
    paths = []
    for k in range(n):
        rng = np.random.default_rng(1000 + k)
        cut = [(int(rng.integers(0, 16)), int(rng.integers(0, 16))) for _ in range(3)]
        pad = [(int(rng.integers(0, 14)), int(rng.integers(0, 14))) for _ in range(3)]
        case = image[tuple(slice(a, s - b) for (a, b), s in zip(cut, image.shape, strict=True))]
        case = np.pad(case, pad)
        case = case + rng.normal(0.0, 0.02 * top, case.shape).astype(np.float32)
        path = folder / f"case{k:03d}.nii.gz"
        nib.save(nib.Nifti1Image(case.astype(np.float32), np.eye(4)), path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--pipeline", default="cnn",
                        help="pipeline (default cnn: the network alone; head adds brain "
                        "extraction, which is not compiled)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not have_ray():
        return
    print(f"# {machine()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="delineo-bench-compile-"))
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    try:
        (work / "in").mkdir()
        paths = write_cohort(work / "in", args.cases)
        cases = collect_cases(paths)
        shapes = {nib.load(p).shape for p in paths}
        print(f"# {len(cases)} cases, {len(shapes)} different sizes, pipeline {args.pipeline}",
              flush=True)
        per_case: dict[str, list[float]] = {"eager": [], "cold": [], "warm": []}
        startup: dict[str, list[float]] = {k: [] for k in per_case}
        slowest: dict[str, list[float]] = {k: [] for k in per_case}
        agree: list[float] = []
        for repeat in range(args.repeats):
            cache = work / f"inductor{repeat}"
            labels: dict[str, dict[str, np.ndarray]] = {}
            for key in ("eager", "cold", "warm"):
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)  # read by the workers
                config = CaseConfig(pipeline=args.pipeline, allow_outside_use=True,
                                    compile=key != "eager")
                out = work / f"{key}{repeat}"
                t0 = time.perf_counter()
                run = run_batch(cases, out, config, workers=1, force=True)
                total = time.perf_counter() - t0
                assert run.counts()["done"] == len(cases), [r.error for r in run.results]
                if key != "eager":
                    assert all(r.compiled for r in run.results), "the networks did not compile"
                seconds = [r.total_seconds for r in run.results]
                per_case[key].append(median(seconds))
                slowest[key].append(max(seconds))
                startup[key].append(total - sum(seconds))
                labels[key] = {r.case: np.asarray(nib.load(r.output).dataobj)
                               for r in run.results}
            agree.append(min(float(np.mean(labels["eager"][c] == labels["warm"][c]))
                             for c in labels["eager"]))
            print(f"# repeat {repeat + 1}: " + ", ".join(
                f"{k} {per_case[k][-1]:.2f} s/case (slowest {slowest[k][-1]:.2f} s), "
                f"start-up {startup[k][-1]:.1f} s" for k in per_case)
                + f"; inductor cache {_size_mb(cache):.0f} MB", flush=True)
        eager, eager_start = median(per_case["eager"]), median(startup["eager"])
        emit("batch eager, per case", eager, "s")
        emit("batch eager, slowest case", median(slowest["eager"]), "s")
        emit("batch eager, start-up (cluster, worker, networks)", eager_start, "s")
        for key, what in (("cold", "empty inductor cache"), ("warm", "inductor cache filled")):
            t, start = median(per_case[key]), median(startup[key])
            emit(f"batch --compile ({what}), per case", t, "s", ratio=eager / t,
                 reference="eager (speed-up)")
            emit(f"batch --compile ({what}), slowest case", median(slowest[key]), "s",
                 ratio=median(slowest[key]) / median(slowest["eager"]), reference="eager")
            emit(f"batch --compile ({what}), start-up", start, "s",
                 ratio=start / eager_start, reference="eager")
            saved = eager - t
            if saved > 0:
                emit(f"batch --compile ({what}), cases to catch up with eager",
                     (start - eager_start) / saved, "cases")
        emit("batch --compile, least voxel agreement with eager over the cases",
             min(agree), "fraction")
    finally:
        if before is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = before
        shutil.rmtree(work, ignore_errors=True)


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


if __name__ == "__main__":
    main()
