"""Metrics against hand-computed values and independent computations; the one
averaging rule (finite mean with its count) and the one table writer."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import ndimage

from engine.core.metrics import (
    assd,
    confusion,
    dice,
    evaluate_labels,
    finite_mean,
    hausdorff95,
)
from engine.core.volume import LabelMap
from engine.evaluation.compare import COLUMNS, comparison_rows, to_markdown, write_csv
from engine.evaluation.tables import format_cell, markdown_table
from engine.evaluation.tables import write_csv as write_table_csv


def test_confusion_counts_by_hand():
    truth = np.array([0, 1, 1, 2, 2, 2, 0, 0]).reshape(2, 2, 2)
    pred = np.array([0, 1, 2, 2, 2, 0, 1, 0]).reshape(2, 2, 2)
    c = confusion(pred, truth, [1, 2])
    assert (c[1].tp, c[1].fp, c[1].fn, c[1].tn) == (1, 1, 1, 5)
    assert (c[2].tp, c[2].fp, c[2].fn, c[2].tn) == (2, 1, 1, 4)
    assert c[1].dice == pytest.approx(0.5)
    assert c[2].dice == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert c[2].sensitivity == pytest.approx(2 / 3)
    assert c[2].specificity == pytest.approx(4 / 5)
    assert c[2].accuracy == pytest.approx(6 / 8)


@pytest.mark.parametrize("top", [4, 256, 300])
def test_confusion_counts_in_blocks_equal_direct_counts(monkeypatch, top):
    """Blocks of any size, 16-bit and 64-bit keys, arrays of different memory layouts
    and types: the counts of each label are those of the boolean masks."""
    import engine.core.metrics as metrics

    monkeypatch.setattr(metrics, "_JOINT_CHUNK", 997)  # blocks that do not divide the array
    rng = np.random.default_rng(top)
    truth = rng.integers(0, top, (17, 23, 29)).astype(np.uint16 if top > 256 else np.uint8)
    pred = np.asfortranarray(rng.integers(0, min(top, 200), truth.shape).astype(np.int32))
    labels = [0, 1, 3, top - 1, top + 5]
    got = confusion(pred, truth, labels)
    for v in labels:
        p, t = pred == v, truth == v
        want = (int(np.sum(p & t)), int(np.sum(p & ~t)), int(np.sum(~p & t)),
                int(np.sum(~p & ~t)))
        assert (got[v].tp, got[v].fp, got[v].fn, got[v].tn) == want


def test_confusion_refuses_negative_labels():
    with pytest.raises(ValueError, match="negative"):
        confusion(np.array([0, -1, 2]), np.array([0, 1, 2]), [1, 2])
    with pytest.raises(ValueError, match="negative"):
        confusion(np.array([0.0, 1.0]), np.array([-1.0, 1.0]), [1])
    with pytest.raises(ValueError, match="NaN"):
        confusion(np.array([0.0, np.nan]), np.array([0.0, 1.0]), [1])
    # boolean masks and whole-valued floats count as labels 0 and 1, 0..n
    c = confusion(np.array([True, False, True]), np.array([True, True, False]), [1])[1]
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 1, 0)
    c = confusion(np.array([0.0, 1.0, 2.0, 2.0]), np.array([0.0, 2.0, 2.0, 1.0]), [2])[2]
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 1, 1)


def test_dice_matches_set_formula_on_random_masks():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=(20, 20, 20))
    b = rng.integers(0, 4, size=(20, 20, 20))
    for v in (1, 2, 3):
        expected = 2 * np.sum((a == v) & (b == v)) / (np.sum(a == v) + np.sum(b == v))
        assert dice(a, b, v) == pytest.approx(expected)


def test_empty_masks_conventions():
    z = np.zeros((5, 5, 5), np.uint8)
    one = z.copy()
    one[2, 2, 2] = 1
    assert dice(z, z, 1) == 1.0
    assert hausdorff95(z, z) == 0.0
    assert hausdorff95(one, z) == float("inf")
    assert assd(z, one) == float("inf")


def test_hd95_of_shifted_cube_uses_spacing():
    truth = np.zeros((30, 30, 30), bool)
    truth[10:20, 10:20, 10:20] = True
    pred = np.roll(truth, 2, axis=2)
    assert hausdorff95(pred, truth, (1, 1, 1)) == pytest.approx(2.0)
    assert hausdorff95(pred, truth, (1, 1, 3)) == pytest.approx(6.0)


def test_hd95_agrees_with_a_brute_force_computation():
    rng = np.random.default_rng(1)
    truth = ndimage.binary_dilation(rng.random((16, 16, 16)) > 0.97, iterations=2)
    pred = ndimage.binary_dilation(rng.random((16, 16, 16)) > 0.97, iterations=2)
    spacing = (0.8, 1.0, 1.7)

    def surface_points(mask):
        s = mask & ~ndimage.binary_erosion(mask, border_value=0)
        return np.argwhere(s) * spacing

    ps, ts = surface_points(pred), surface_points(truth)
    d = np.sqrt(((ps[:, None, :] - ts[None, :, :]) ** 2).sum(-1))
    expected = max(np.percentile(d.min(1), 95), np.percentile(d.min(0), 95))
    assert hausdorff95(pred, truth, spacing) == pytest.approx(expected, rel=1e-6)
    expected_assd = np.concatenate([d.min(1), d.min(0)]).mean()
    assert assd(pred, truth, spacing) == pytest.approx(expected_assd, rel=1e-6)


def test_evaluate_labels_volume_difference():
    truth = np.zeros((10, 10, 10), np.uint8)
    truth[:5] = 1
    pred = np.zeros_like(truth)
    pred[:4] = 1
    row = evaluate_labels(pred, truth, [1], spacing=(2, 1, 1))[1]
    assert row["volume_diff_ml"] == pytest.approx(-100 * 2 / 1000)
    assert row["volume_diff_pct"] == pytest.approx(-20.0)
    assert row["hd95"] == pytest.approx(2.0)


# -- averaging -------------------------------------------------------------------------
def test_finite_mean_averages_the_finite_values_and_counts_the_rest():
    summary = finite_mean([1.0, float("inf"), 3.0, float("nan"), np.float32(5.0)])
    assert summary.mean == pytest.approx(3.0)
    assert (summary.used, summary.total, summary.misses) == (3, 5, 2)
    assert float(summary) == summary.mean
    nothing = finite_mean(x for x in [float("inf"), float("-inf")])
    assert math.isnan(nothing.mean) and (nothing.used, nothing.misses) == (0, 2)
    empty = finite_mean([])
    assert math.isnan(empty.mean) and (empty.used, empty.total) == (0, 0)


def _three_tissues() -> LabelMap:
    truth = np.zeros((24, 24, 24), np.uint8)
    truth[4:20, 4:20, 4:20] = 1
    truth[7:17, 7:17, 7:17] = 2
    truth[10:14, 10:14, 10:14] = 3
    return LabelMap(truth, np.eye(4))


def test_compare_mean_leaves_out_a_missed_label_and_says_so(tmp_path):
    truth = _three_tissues()
    pred = truth.array.copy()
    pred[pred == 3] = 2                      # the method misses label 3 entirely
    pred[4:20, 4:20, 4] = 0                  # and is a little off on label 1
    rows = comparison_rows({"miss": truth.with_array(pred), "exact": truth}, truth)
    by = {(r["method"], r["label"]): r for r in rows}
    per_label = [by[("miss", name)] for name in ("CSF", "Gray matter", "White matter")]
    assert math.isinf(per_label[2]["hd95"]) and math.isinf(per_label[2]["assd"])
    mean = by[("miss", "mean")]
    assert math.isfinite(mean["hd95"]) and math.isfinite(mean["assd"])
    assert mean["hd95"] == pytest.approx(np.mean([r["hd95"] for r in per_label[:2]]))
    assert mean["dice"] == pytest.approx(np.mean([r["dice"] for r in per_label]))
    assert mean["misses"] == "HD95 (mm) 1/3, ASSD (mm) 1/3"
    assert by[("exact", "mean")]["misses"] == "" and by[("exact", "mean")]["hd95"] == 0.0
    # the Markdown table shows the finite mean and the miss
    md = to_markdown(rows)
    assert md.splitlines()[0].endswith("| misses |")
    mean_line = next(line for line in md.splitlines() if line.startswith("| miss | mean |"))
    assert f"| {mean['hd95']:.2f} |" in mean_line
    assert mean_line.endswith("| HD95 (mm) 1/3, ASSD (mm) 1/3 |") and "∞" not in mean_line
    assert "| miss | White matter |" in md and "∞" in md  # the per-label row keeps its ∞
    # and so does the CSV, at full precision
    with write_csv(rows, tmp_path / "cmp.csv").open(newline="") as fh:
        written = list(csv.DictReader(fh))
    assert list(written[0]) == [k for k, _, _ in COLUMNS]
    row = next(r for r in written if r["method"] == "miss" and r["label"] == "mean")
    assert float(row["hd95"]) == pytest.approx(mean["hd95"])
    assert row["misses"] == "HD95 (mm) 1/3, ASSD (mm) 1/3"


# -- tables ----------------------------------------------------------------------------
def test_markdown_table_formats_missing_and_infinite_values():
    columns = [("method", "method", "{}"), ("dice", "Dice", "{:.3f}"),
               ("hd95", "HD95", "{:.1f}"), ("note", "note", "{}")]
    rows = [{"method": "a", "dice": 0.91234, "hd95": float("inf"), "note": "x"},
            {"method": "b", "dice": float("nan"), "hd95": ""},
            {"method": "c", "dice": np.float32(0.5), "hd95": -math.inf, "note": ""}]
    assert markdown_table(rows, columns).splitlines() == [
        "| method | Dice | HD95 | note |",
        "|---|---:|---:|---|",
        "| a | 0.912 | ∞ | x |",
        "| b | — | — |  |",
        "| c | 0.500 | −∞ |  |",
    ]
    assert format_cell(3, "{:d}") == "3" and format_cell(None, "{:.2f}") == "—"


def test_table_csv_keeps_every_key_in_first_seen_order(tmp_path):
    rows = [{"method": "a", "dice": 0.123456789}, {"method": "b", "hd95": float("inf")}]
    path = write_table_csv(rows, tmp_path / "t.csv")
    with path.open(newline="") as fh:
        written = list(csv.reader(fh))
    assert written == [["method", "dice", "hd95"], ["a", "0.123456789", ""], ["b", "", "inf"]]
    assert write_table_csv([], tmp_path / "empty.csv").read_text() == ""
    only = write_table_csv(rows, tmp_path / "only.csv", columns=["hd95"])
    with only.open(newline="") as fh:
        assert list(csv.reader(fh)) == [["hd95"], [""], ["inf"]]


def test_label_changes_count_each_axis_and_respect_the_mask():
    from engine.core.metrics import label_changes

    a = np.zeros((6, 5, 4), np.uint8)
    a[:, :, 2:] = 1          # one boundary across the third axis: 6 x 5 pairs
    a[3, 1, 0] = 2           # an isolated voxel: 2 pairs along each of the first two axes
    assert label_changes(a) == (2, 2, 30 + 1)
    mask = np.ones_like(a, bool)
    mask[:, :, 3] = False    # pairs touching the last plane leave; the boundary stays
    assert label_changes(a, mask) == (2, 2, 31)
    mask[:, :, 2] = False
    assert label_changes(a, mask) == (2, 2, 1)
