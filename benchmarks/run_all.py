"""Run every speed benchmark of Delineo and collect one ledger.

Run from the repository root::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/run_all.py \
        --out benchmarks/ledger.md

Each ``benchmarks/bench_*.py`` runs in its own process (one at a time, so
they do not compete for the CPU); every figure line it prints
(``name: value unit | ratio ... | goal ...``, see ``common.emit``) becomes a
row of the ledger, grouped by benchmark, under the machine, the date, the
load average and the exact command. The viewer benchmarks need a display
(Xvfb) or fall back to Qt's offscreen platform. A benchmark that fails is
reported as failed with its last error line; the others still run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Benchmarks in ledger order, with extra arguments.
BENCHMARKS: list[tuple[str, list[str]]] = [
    ("bench_io.py", []),
    ("bench_viewer.py", []),
    ("bench_editing.py", []),
    ("bench_viewer_editing.py", []),
    ("bench_methods.py", []),
    ("bench_inference.py", []),
    ("bench_pipeline.py", []),
    ("bench_brain_extraction.py", []),
    ("bench_morphology.py", []),
    ("bench_viewer_worker.py", []),
    ("bench_view3d.py", ["--gl"]),
    ("bench_pacs.py", []),
    ("bench_batch.py", []),
    ("bench_batch_compile.py", []),
    ("bench_detect.py", []),
]


def parse_figures(text: str) -> list[tuple[str, str, str, str]]:
    """``(name, value with unit, ratio, goal)`` of every figure line in *text*.

    >>> parse_figures("# machine\\nload: 1.5 s | ratio 2x vs x | goal <= 2 s\\n")
    [('load', '1.5 s', '2x vs x', '<= 2 s')]
    """
    rows = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(" | ")]
        if line.startswith("#") or ": " not in parts[0]:
            continue
        head, _, value = parts[0].rpartition(": ")
        if not value or not (value[0].isdigit() or value[0] in "-+.n"):
            continue
        ratio = next((p.removeprefix("ratio ") for p in parts[1:] if p.startswith("ratio ")), "")
        goal = next((p.removeprefix("goal ") for p in parts[1:] if p.startswith("goal ")), "")
        rows.append((head.strip(), value, ratio, goal))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the ledger (Markdown) here")
    parser.add_argument("--only", help="comma list of benchmark files to run")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per benchmark")
    args = parser.parse_args(argv)
    only = {n.strip() for n in args.only.split(",")} if args.only else None
    given = " ".join(map(shlex.quote, sys.argv[1:] if argv is None else argv))
    env = dict(os.environ)
    if not env.get("DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    lines = [
        "# Delineo performance ledger",
        "",
        f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- command: `python benchmarks/run_all.py {given}`",
        "",
    ]
    failed = 0
    for script, extra in BENCHMARKS:
        if only is not None and script not in only:
            continue
        path = HERE / script
        if not path.is_file():
            lines += [f"## {script}", "", "not present", ""]
            continue
        print(f"== {script}", flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, str(path), *extra], capture_output=True,
                                  text=True, env=env, timeout=args.timeout, cwd=HERE.parent)
            out, code = proc.stdout, proc.returncode
            err = proc.stderr.strip().splitlines()[-1:] if proc.stderr.strip() else []
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            code, err = -1, [f"timed out after {args.timeout} s"]
        print(out, end="", flush=True)
        elapsed = time.perf_counter() - t0
        lines += [f"## {script}", ""]
        lines += [f"`python benchmarks/{script} {' '.join(extra)}`".replace(" `", "`")
                  + f" — {elapsed:.0f} s", ""]
        lines += [f"> {c[2:]}" for c in out.splitlines() if c.startswith("# ")]
        if code != 0:
            failed += 1
            lines += ["", f"**failed** (exit {code}): {_cell(' '.join(err))}"]
        rows = parse_figures(out)
        if rows:
            lines += ["", "| figure | value | ratio (same run) | goal |", "|---|---|---|---|"]
            lines += [f"| {_cell(n)} | {_cell(v)} | {_cell(r)} | {_cell(g)} |"
                      for n, v, r, g in rows]
        lines.append("")
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"ledger written to {args.out}")
    else:
        print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
