"""Speed and memory of a raw 1 mm head → brain mask → tissue labels.

Each configuration runs as ``delineo-engine segment`` in its own process, as a
user runs it, on a synthetic whole head (T1 by default; ``--contrast t2`` or
``pd`` for the bright-fluid path, two passes of deepbet) written to NIfTI (257 x 293 x 249
voxels, 1 mm): the default pipeline ``head`` (deepbet brain extraction, then
the Delineo network inside the mask), brain extraction alone (``--method
brain_mask``) and the Gaussian-mixture baseline after the same extraction
(``head+gmm``), and brain extraction without its dark-fluid rim
(``--param dark_rim_mm=0``; the rim grows the mask only on dark-fluid heads,
T1 among them). Reported per configuration: the median of ``--repeats`` runs
(interleaved: every configuration once per round) of the pipeline time the
command measures itself (image read and label write excluded), the median
wall time of the whole process (interpreter start, image read, label write
included) and the process's peak resident size (from
``wait4``; the benchmark itself stays small, since a child starts from its
parent's peak). Ratios are against brain extraction alone, in the same run.

Run from the repository root::

    .venv/bin/python benchmarks/bench_brain_extraction.py [--repeats 3] [--threads 2]
        [--contrast t1]
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

CONFIGS = [("brain_mask", ["--method", "brain_mask"]),
           ("brain_mask without the dark-fluid rim", ["--method", "brain_mask", "--param",
                                                      "dark_rim_mm=0"]),
           ("head", []),
           ("head+gmm", ["--pipeline", "head+gmm"])]


def _run(image: Path, out: Path, extra: list[str], threads: int) -> tuple[float, float, float]:
    """(pipeline seconds, process wall seconds, peak RSS GiB) of one segment command."""
    summary, wall, peak = run_cli(["segment", str(image), "-o", str(out), *extra], threads)
    return float(summary["seconds"]), wall, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=101, help="synthetic head seed")
    parser.add_argument("--contrast", default="t1", choices=("t1", "t2", "pd"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    print(f"# {machine()}")
    with tempfile.TemporaryDirectory(prefix="delineo-bench-") as tmp:
        image = Path(tmp) / "head.nii.gz"
        # Made in a child process: Linux carries a process's peak RSS across fork and
        # exec, so a large parent would inflate every measured child's peak.
        subprocess.run([sys.executable, "-c",
                        "import sys; from engine.data.heads import synthetic_head; "
                        "from engine.io import save; "
                        "save(synthetic_head(sys.argv[3], seed=int(sys.argv[1])).image, "
                        "sys.argv[2])",
                        str(args.seed), str(image), args.contrast], check=True, cwd=HERE.parent)
        print(f"# synthetic {args.contrast.upper()} whole head, seed {args.seed}, "
              "257 x 293 x 249 voxels, 1 mm; "
              f"{args.repeats} runs each, {args.threads} threads")
        # Interleaved: round r runs every configuration once, so a slow spell of a shared
        # machine falls on all of them alike rather than on one configuration's repeats.
        runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in CONFIGS}
        for _ in range(args.repeats):
            for name, extra in CONFIGS:
                runs[name].append(_run(image, Path(tmp) / f"labels_{name}.nii.gz", extra,
                                       args.threads))
        results = {}
        for name, done in runs.items():
            results[name] = tuple(statistics.median(r[i] for r in done) for i in range(3))
            print(f"# {name}: " + ", ".join(f"{r[0]:.2f}" for r in done) + " s", flush=True)
        ref = results["brain_mask"]
        for name, (seconds, wall, rss) in results.items():
            ratio = None if name == "brain_mask" else seconds / ref[0]
            goal = "<= 15 s" if name == "head" else ""
            emit(f"{name}: pipeline time", seconds, "s", goal=goal, ratio=ratio,
                 reference="brain extraction alone")
            emit(f"{name}: process wall time (read, run, write)", wall, "s", goal=goal)
            emit(f"{name}: peak RSS", rss, "GiB", goal="<= 1.5 GiB" if name == "head" else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
