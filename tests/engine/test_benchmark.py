"""The quick benchmark: tables have the right structure, figures are finite and
consistent with ``delineo-engine evaluate`` on the same predictions."""

from __future__ import annotations

import csv
import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from engine.core.jobs import Cancelled, CancelToken
from engine.evaluation.benchmark import run as benchmark_run
from engine.evaluation.benchmark.records import SliceScore
from engine.evaluation.benchmark.report import CASE_COLUMNS, case_rows
from engine.evaluation.benchmark.run import (
    BenchmarkConfig,
    _pad_to,
    case_study_slices,
    run_benchmark,
)
from engine.evaluation.tables import markdown_table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    seen = []
    result = run_benchmark(out, BenchmarkConfig.quick("cpu"),
                           progress=lambda f, m: seen.append(f))
    return out, result, seen


def _read(path):
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_all_outputs_are_written(quick):
    out, result, _ = quick
    for name in ("report.md", "case_study.csv", "case_study_slices.csv", "parameters.csv",
                 "robustness.csv", "robustness.png", "figure.png", "parameters_energy.png"):
        assert (out / name).stat().st_size > 0, name
    for f in result.files:
        assert f.exists()


def test_case_study_table_structure_and_finite_figures(quick):
    out, _, _ = quick
    rows = _read(out / "case_study.csv")
    methods = BenchmarkConfig.quick().methods
    assert sorted(r["method"] for r in rows) == sorted(methods)
    for row in rows:
        for key in ("dice_csf", "dice_gm", "dice_wm", "dice_mean", "accuracy", "sensitivity",
                    "specificity", "hd95_mm", "seconds_per_slice", "peak_memory_mb"):
            value = float(row[key])
            assert math.isfinite(value), (row["method"], key)
        assert 0 <= int(row["hd95_misses"]) <= 3 * BenchmarkConfig.quick().n_slices
        for key in ("dice_csf", "dice_gm", "dice_wm", "accuracy"):
            assert 0.0 <= float(row[key]) <= 1.0
        mean = np.mean([float(row[k]) for k in ("dice_csf", "dice_gm", "dice_wm")])
        assert float(row["dice_mean"]) == pytest.approx(mean)
    report = (out / "report.md").read_text()
    assert "| method | Dice CSF |" in report
    assert "| HD95 (mm) | HD95 misses |" in report
    assert f"over the {3 * BenchmarkConfig.quick().n_slices} slice-tissue pairs" in report
    # Every method beats chance clearly on these phantoms.
    assert min(float(r["dice_mean"]) for r in rows) > 0.5


def test_per_slice_rows_aggregate_to_the_table(quick):
    out, _, _ = quick
    per_slice = _read(out / "case_study_slices.csv")
    table = {r["method"]: r for r in _read(out / "case_study.csv")}
    for method, row in table.items():
        mine = [float(r["dice_2"]) for r in per_slice if r["method"] == method]
        assert len(mine) == BenchmarkConfig.quick().n_slices
        assert float(row["dice_gm"]) == pytest.approx(np.mean(mine))


def test_table_dice_equals_delineo_engine_evaluate(quick):
    out, _, _ = quick
    per_slice = {(r["method"], r["slice"]): r for r in _read(out / "case_study_slices.csv")}
    pred_dir = out / "predictions"
    for method in ("otsu", "gmm"):
        done = subprocess.run(
            [sys.executable, "-m", "engine.cli", "evaluate",
             str(pred_dir / f"{method}_slice0.nii.gz"),
             "--ground-truth", str(pred_dir / "truth_slice0.nii.gz"), "--slab", "none", "--json"],
            capture_output=True, text=True, timeout=300, check=True)
        figures = json.loads(done.stdout)["whole"]
        row = per_slice[(method, "0")]
        assert figures["csf"] == pytest.approx(float(row["dice_1"]), abs=1e-4)
        assert figures["gm"] == pytest.approx(float(row["dice_2"]), abs=1e-4)
        assert figures["wm"] == pytest.approx(float(row["dice_3"]), abs=1e-4)


def test_sweeps_and_grid_cover_what_was_asked(quick):
    out, _, _ = quick
    sweeps = _read(out / "parameters.csv")
    assert [(r["parameter"], float(r["value"])) for r in sweeps] == [
        ("lam", 0.1), ("lam", 0.5), ("lam", 2.0), ("eta", 0.03), ("eta", 0.5)]
    grid = _read(out / "robustness.csv")
    cells = {(r["method"], float(r["noise_pct"]), float(r["inu_pct"])) for r in grid}
    assert len(cells) == len(BenchmarkConfig.quick().methods) * 4
    assert all(0 <= float(r["mean_dice"]) <= 1 for r in grid)


def test_progress_is_monotonic_and_completes(quick):
    _, _, seen = quick
    assert seen[-1] == 1.0
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(seen))


def test_case_study_draw_is_reproducible_and_spans_the_ranges():
    a = case_study_slices(9, seed=5)
    b = case_study_slices(9, seed=5)
    assert [(s.contrast, s.noise, s.inu, s.k) for s in a] == [
        (s.contrast, s.noise, s.inu, s.k) for s in b]
    assert {s.contrast for s in a} == {"t1", "t2", "pd"}
    assert all(0 <= s.noise <= 0.09 and 0 <= s.inu <= 0.4 for s in a)
    assert all(s.image.shape == (256, 256, 1) for s in a)
    assert np.array_equal(a[0].image.array, b[0].image.array)


def test_pad_keeps_every_voxel():
    arr = np.arange(197 * 233).reshape(197, 233, 1)
    out, (ox, oy) = _pad_to(arr, 256)
    assert out.shape == (256, 256, 1)
    assert out[ox, oy, 0] == arr[0, 0, 0]
    assert out[ox + 196, oy + 232, 0] == arr[196, 232, 0]
    assert out.sum() == arr.sum()


def test_an_unstable_sweep_value_is_reported_as_rejected(quick):
    out, _, _ = quick
    rows = {(r["parameter"], float(r["value"])): r for r in _read(out / "parameters.csv")}
    bad = rows[("eta", 0.5)]  # above the descent's stability bound
    assert bad["note"].startswith("rejected:") and "eta" in bad["note"]
    assert math.isnan(float(bad["mean_dice"]))
    good = rows[("eta", 0.03)]
    assert good["note"] == "" and 0.5 < float(good["mean_dice"]) <= 1.0



def _score(method, index, hd95, dice=0.8):
    tissues = (1, 2, 3)
    return SliceScore(method, index, {v: dice for v in tissues}, {v: 0.9 for v in tissues},
                      {v: 0.99 for v in tissues}, 0.95, dict(zip(tissues, hd95, strict=True)),
                      0.1, 2**20)


def test_case_table_hd95_is_the_finite_mean_with_its_misses():
    inf = float("inf")
    per_method = {
        "misses_wm": [_score("misses_wm", 0, (2.0, 4.0, inf)),
                      _score("misses_wm", 1, (3.0, 5.0, 6.0))],
        "clean": [_score("clean", 0, (2.0, 2.0, 2.0), 0.9),
                  _score("clean", 1, (4.0, 4.0, 4.0), 0.9)],
    }
    rows = {r["method"]: r for r in case_rows(per_method, {})}
    # one miss out of six pairs: the mean of the five finite values, and the count beside it
    assert rows["misses_wm"]["hd95_mm"] == pytest.approx((2 + 4 + 3 + 5 + 6) / 5)
    assert rows["misses_wm"]["hd95_misses"] == 1
    assert rows["clean"]["hd95_mm"] == pytest.approx(3.0) and rows["clean"]["hd95_misses"] == 0
    table = markdown_table(list(rows.values()), CASE_COLUMNS)
    assert "| misses_wm | 0.800 |" in table and "| 4.00 | 1 |" in table and "| 3.00 | 0 |" in table


def _tiny(**kw):
    return BenchmarkConfig(n_slices=1, methods=("otsu",), sweep_slices=1, sweeps={},
                           grid_noise=(0.0,), grid_inu=(0.0,), grid_slices=1,
                           volume_runtime=False, device="cpu", **kw)


def test_a_cancelled_run_creates_no_output_folder(tmp_path):
    token = CancelToken()
    token.cancel()
    out = tmp_path / "new" / "bench"
    with pytest.raises(Cancelled):
        run_benchmark(out, _tiny(), cancel=token)
    assert not (tmp_path / "new").exists()


def test_a_run_failing_while_writing_leaves_nothing_half_written(tmp_path, monkeypatch):
    def write_some_then_fail(result, *args):
        (result.out_dir / "case_study.csv").write_text("method\n")
        raise OSError("disk full")

    monkeypatch.setattr(benchmark_run, "write_all", write_some_then_fail)
    fresh = tmp_path / "fresh"
    with pytest.raises(OSError, match="disk full"):
        run_benchmark(fresh, _tiny())
    assert not fresh.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "case_study.csv").write_text("an earlier run\n")
    with pytest.raises(OSError, match="disk full"):
        run_benchmark(kept, _tiny())
    assert [p.name for p in kept.iterdir()] == ["case_study.csv"]
    assert (kept / "case_study.csv").read_text() == "an earlier run\n"


def test_a_tiny_run_moves_every_file_into_place(tmp_path):
    out = tmp_path / "tiny"
    result = run_benchmark(out, _tiny())
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "case_study.csv", "case_study_slices.csv", "parameters.csv", "robustness.csv",
        "robustness.png", "figure.png", "report.md", "predictions"])
    assert sorted(p.name for p in (out / "predictions").iterdir()) == [
        "image_slice0.nii.gz", "otsu_slice0.nii.gz", "truth_slice0.nii.gz"]
    assert all(f.parent in (out, out / "predictions") and f.exists() for f in result.files)
    assert len(result.files) == 10
