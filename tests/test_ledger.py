"""The performance ledger reads back what every benchmark prints."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from common import emit  # noqa: E402
from run_all import BENCHMARKS, parse_figures  # noqa: E402


def test_emitted_lines_parse_back(capsys):
    print("# Linux x86_64, 2 torch threads")
    emit("NIfTI load", 0.056, "s", ratio=1.31, reference="nibabel", goal="<= 1 s")
    emit("history per stroke", 0.4, "KiB")
    emit("slice step: one view, median", 3.0, "ms")
    rows = parse_figures(capsys.readouterr().out)
    assert rows[0] == ("NIfTI load", "0.056 s", "1.31x vs nibabel", "<= 1 s")
    assert rows[1] == ("history per stroke", "0.4 KiB", "", "")
    assert rows[2] == ("slice step: one view, median", "3 ms", "", "")
    assert len(rows) == 3


def test_every_listed_benchmark_exists_and_every_benchmark_is_listed():
    listed = {name for name, _ in BENCHMARKS}
    present = {p.name for p in BENCH.glob("bench_*.py")}
    assert present <= listed
    assert listed - present <= {"bench_viewer_editing.py", "bench_viewer_worker.py"}
