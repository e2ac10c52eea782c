"""Shared helpers for Delineo's benchmarks: repeated timing and uniform output.

Every benchmark prints lines ``name: value unit [goal ...] [ratio ...]`` so
``benchmarks/run_all.py`` can collect them. Figures are medians of repeats;
ratios compare against a reference measured in the same process.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def machine() -> str:
    """One line describing the machine the figures come from."""
    cpu = platform.processor() or platform.machine()
    threads = torch.get_num_threads()
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
    return f"{platform.system()} {cpu}, {threads} torch threads, {cuda}, torch {torch.__version__}"


def timeit(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of *repeats* calls after *warmup* calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def have_ray() -> bool:
    """Whether Ray can be imported; prints the line that skips a batch benchmark if not."""
    try:
        import ray  # noqa: F401
    except ImportError:
        print("# Ray is not installed (pip install 'delineo[cluster]'): skipped", flush=True)
        return False
    return True


def write_report(folder: Path, stem: str, text: str, payload: dict[str, Any]) -> None:
    """``folder/stem.md`` (the command line, then *text*) and ``folder/stem.json`` (the
    command line and *payload*; values JSON cannot write, numpy scalars, as floats)."""
    folder.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", *sys.argv])
    (folder / f"{stem}.md").write_text(f"Command: {command}\n\n{text}")
    (folder / f"{stem}.json").write_text(
        json.dumps({"command": sys.argv, **payload}, indent=1, default=float) + "\n")


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def emit(name: str, value: float, unit: str, *, goal: str = "", ratio: float | None = None,
         reference: str = "") -> None:
    """Print one figure in the ledger's format."""
    text = f"{name}: {value:.4g} {unit}"
    if ratio is not None:
        text += f" | ratio {ratio:.3g}x vs {reference}"
    if goal:
        text += f" | goal {goal}"
    print(text, flush=True)


def network_precision(pipeline: Any, precision: str | None) -> dict[int, dict[str, str]]:
    """Pipeline overrides that run every network step of *pipeline* (a name or a
    ``Pipeline``) at *precision* (None: each step's own)."""
    from engine.methods.cnn import CNN_SPECS
    from engine.methods.pipeline import get_pipeline

    if precision is None:
        return {}
    networks = {spec.name for spec in CNN_SPECS}
    return {i: {"precision": precision} for i, step in enumerate(get_pipeline(pipeline).steps)
            if step.name in networks}


def with_tissue(pipeline: str, method: str | None) -> Any:
    """The pipeline *pipeline* (a name of ``PIPELINES``) with its tissue network step
    replaced by the network method *method*, its parameters kept; the name itself
    when *method* is None."""
    from dataclasses import replace

    from engine.methods.cnn import CNN_SPECS
    from engine.methods.pipeline import PIPELINES, Step

    if method is None:
        return pipeline
    networks = {spec.name for spec in CNN_SPECS}
    if method not in networks:
        raise SystemExit(f"--tissue must be one of {', '.join(sorted(networks))}")
    pipe = PIPELINES[pipeline]
    steps = tuple(Step(method, dict(s.params)) if s.name in networks else s
                  for s in pipe.steps)
    return replace(pipe, name=f"{pipeline} (tissue: {method})", steps=steps)



def run_cli(argv: list[str], threads: int) -> tuple[dict[str, Any], float, float]:
    """``delineo-engine -q ARGV --device cpu --json`` in its own process, as a user runs
    it: (its JSON summary, the process's wall seconds, its peak RSS in GiB from
    ``wait4``). A failed command stops the benchmark with the end of its stderr."""
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    env = dict(os.environ, OMP_NUM_THREADS=str(threads))  # torch's intra-op threads
    cmd = [sys.executable, "-m", "engine.cli", "-q", *argv, "--device", "cpu", "--json"]
    with tempfile.TemporaryFile() as err:  # a file: a full stderr pipe cannot stall it
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env,
                                cwd=Path(__file__).resolve().parents[1])
        stdout = proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)  # reaps it: the peak RSS of this child
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{argv[0]} failed ({proc.returncode}): "
                             f"{err.read().decode(errors='replace')[-400:]}")
    return json.loads(stdout), wall, usage.ru_maxrss / 2**20  # KiB -> GiB
