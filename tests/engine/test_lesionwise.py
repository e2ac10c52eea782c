"""Lesion-wise evaluation against hand-computed cases (BraTS Dice/HD95, size bins, FROC/CPM)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from engine.core.errors import GeometryMismatchError, ParameterError
from engine.core.volume import BRAIN_LESION_LABELS, BRAIN_TISSUE_LABELS, LabelMap, Volume
from engine.evaluation.lesionwise import (
    MISSED_HD95_MM,
    evaluate_case,
    froc,
    lesionwise_markdown,
    summarize,
    write_lesionwise,
)
from engine.io import save

SHAPE = (40, 40, 40)


def cube(arr: np.ndarray, corner: tuple[int, int, int], size: int, value: int = 4) -> None:
    i, j, k = corner
    arr[i:i + size, j:j + size, k:k + size] = value


def test_lesion_label_table() -> None:
    assert BRAIN_LESION_LABELS.name(4) == "Lesion"
    assert [BRAIN_LESION_LABELS.name(v) for v in (0, 1, 2, 3)] == \
        [BRAIN_TISSUE_LABELS.name(v) for v in (0, 1, 2, 3)]
    assert 4 not in BRAIN_TISSUE_LABELS
    colours = {BRAIN_LESION_LABELS.color(v) for v in range(5)}
    assert len(colours) == 5


def test_exact_prediction_scores_one() -> None:
    truth = np.zeros(SHAPE, np.uint8)
    cube(truth, (5, 5, 5), 4)
    cube(truth, (25, 25, 25), 6)
    case = evaluate_case(truth.copy(), truth)
    assert case.lesion_dice == 1.0 and case.lesion_hd95 == 0.0
    assert [g.detected for g in case.truth] == [True, True]
    assert case.n_false_positives == 0


def test_merged_ground_truth_lesions() -> None:
    # Two 3-voxel cubes one voxel apart: a 1-voxel dilation joins them into one lesion.
    truth = np.zeros(SHAPE, np.uint8)
    cube(truth, (10, 10, 10), 3)
    cube(truth, (10, 10, 14), 3)
    pred = np.zeros(SHAPE, np.uint8)
    cube(pred, (10, 10, 10), 3)
    merged = evaluate_case(pred, truth, dilation=1)
    assert len(merged.truth) == 1 and merged.truth[0].voxel_count == 54
    # Dice of the merged lesion: 2 * 27 / (27 + 54).
    assert merged.lesion_dice == pytest.approx(2 * 27 / 81)
    assert merged.n_false_positives == 0
    # HD95: from the missed cube's surface to the found cube: hand-computed below.
    assert 0 < merged.lesion_hd95 < 10
    split = evaluate_case(pred, truth, dilation=0)
    assert len(split.truth) == 2
    # One lesion exact (Dice 1, HD95 0), the other missed (Dice 0, HD95 374 mm).
    assert split.lesion_dice == pytest.approx(0.5)
    assert split.lesion_hd95 == pytest.approx(MISSED_HD95_MM / 2)
    # Three empty voxels between them: the dilated cubes do not touch, two lesions.
    far = np.zeros(SHAPE, np.uint8)
    cube(far, (10, 10, 10), 3)
    cube(far, (10, 10, 16), 3)
    assert len(evaluate_case(pred, far, dilation=1).truth) == 2


def test_missed_and_spurious_lesions() -> None:
    truth = np.zeros(SHAPE, np.uint8)
    cube(truth, (2, 2, 2), 5)
    cube(truth, (30, 30, 30), 3)
    pred = np.zeros(SHAPE, np.uint8)
    cube(pred, (2, 2, 2), 5)  # exact
    cube(pred, (2, 30, 2), 2)  # spurious, far from any lesion
    case = evaluate_case(pred, truth)
    # lesions: Dice 1 and 0 (missed); plus one false positive: (1 + 0) / (2 + 1).
    assert case.lesion_dice == pytest.approx(1 / 3)
    # HD95: (0 + 374 + 374) / 3.
    assert case.lesion_hd95 == pytest.approx(2 * MISSED_HD95_MM / 3)
    assert case.n_false_positives == 1
    missed = [g for g in case.truth if not g.detected]
    assert len(missed) == 1 and missed[0].voxel_count == 27


def test_partial_overlap_dice_and_hd95() -> None:
    # A 4x4x4 cube predicted shifted by one voxel along k: Dice 2*48/128; HD95 1 mm * spacing.
    truth = np.zeros(SHAPE, np.uint8)
    cube(truth, (10, 10, 10), 4)
    pred = np.zeros(SHAPE, np.uint8)
    cube(pred, (10, 10, 11), 4)
    case = evaluate_case(pred, truth, spacing=(1.0, 1.0, 2.0))
    assert case.lesion_dice == pytest.approx(96 / 128)
    assert case.lesion_hd95 == pytest.approx(2.0)
    assert case.truth[0].volume_mm3 == pytest.approx(128.0)


def test_size_bins_and_summary() -> None:
    # Equivalent diameters at 1 mm: 27 voxels 3.72 mm, 216 voxels 7.44 mm, 1000 voxels 12.4 mm.
    truth = np.zeros((60, 60, 60), np.uint8)
    cube(truth, (2, 2, 2), 3)
    cube(truth, (20, 20, 20), 6)
    cube(truth, (40, 40, 40), 10)
    pred = np.zeros_like(truth)
    cube(pred, (20, 20, 20), 6)
    cube(pred, (40, 40, 40), 10)
    case = evaluate_case(pred, truth, name="a")
    bins = {g.size_bin: g for g in case.truth}
    assert bins["<5 mm"].equivalent_diameter_mm == pytest.approx((6 * 27 / math.pi) ** (1 / 3))
    assert set(bins) == {"<5 mm", "5-10 mm", ">=10 mm"}
    free = evaluate_case(np.zeros_like(truth), np.zeros_like(truth), name="free")
    assert free.lesion_dice == 1.0 and free.lesion_hd95 == 0.0
    summary = summarize([case, free])
    by = {b["bin"]: b for b in summary["by_size"]}
    assert by["<5 mm"]["sensitivity"] == 0.0 and by["5-10 mm"]["sensitivity"] == 1.0
    assert by[">=10 mm"]["detected"] == 1
    assert summary["lesions"] == 3 and summary["detected"] == 2
    assert summary["fp_per_scan"] == 0.0 and summary["n_lesion_free_cases"] == 1
    assert summary["fp_per_lesion_free_scan"] == 0.0
    assert summary["lesion_dice"] == pytest.approx((2 / 3 + 1.0) / 2)


def test_froc_and_cpm_by_hand() -> None:
    # Scan A: two lesions, found with confidence 0.9 and 0.3, one FP at 0.8.
    # Scan B: lesion-free, one FP at 0.6.
    truth_a = np.zeros(SHAPE, np.uint8)
    cube(truth_a, (2, 2, 2), 4)
    cube(truth_a, (30, 30, 30), 4)
    pred_a = truth_a.copy()
    cube(pred_a, (2, 30, 2), 3)
    prob_a = np.zeros(SHAPE)
    prob_a[2:6, 2:6, 2:6] = 0.9
    prob_a[30:34, 30:34, 30:34] = 0.3
    prob_a[2:5, 30:33, 2:5] = 0.8
    pred_b = np.zeros(SHAPE, np.uint8)
    cube(pred_b, (15, 15, 15), 3)
    prob_b = np.where(pred_b > 0, 0.6, 0.0)
    a = evaluate_case(pred_a, truth_a, probabilities=prob_a, name="A")
    b = evaluate_case(pred_b, np.zeros(SHAPE, np.uint8), probabilities=prob_b, name="B")
    curve = froc([a, b])
    pts = [(p["threshold"], p["fp_per_scan"], p["sensitivity"]) for p in curve["points"]]
    assert pts[0] == (None, 0.0, 0.0)
    expected = [(0.9, 0.0, 0.5), (0.8, 0.5, 0.5), (0.6, 1.0, 0.5), (0.3, 1.0, 1.0)]
    assert len(pts) == 5
    for got, want in zip(pts[1:], expected, strict=True):
        assert got == pytest.approx(want)
    # Curve through (0, .5), (.5, .5), (1, 1): 1/8, 1/4, 1/2 -> .5; 1, 2, 4, 8 -> 1.
    assert curve["sensitivity_at"] == {"1/8": 0.5, "1/4": 0.5, "1/2": 0.5, "1": 1.0, "2": 1.0,
                                       "4": 1.0, "8": 1.0}
    assert curve["cpm"] == pytest.approx(5.5 / 7)
    # Linear interpolation between points: the FP at 0.6 only counts once B is in.
    half = froc([a])
    # A alone: (0, .5) at 0.9, (1, .5) at 0.8, (1, 1) at 0.3; at 1 FP/scan the highest
    # sensitivity (1) counts, so 1/8 -> .5 + .125 * .5 and 1 -> 1.
    assert half["sensitivity_at"]["1/8"] == pytest.approx(0.5625)
    assert half["sensitivity_at"]["1"] == 1.0
    # Without probabilities every prediction has confidence 1: one operating point.
    single = froc([evaluate_case(pred_a, truth_a), evaluate_case(pred_b, np.zeros(SHAPE))])
    assert [(p["fp_per_scan"], p["sensitivity"]) for p in single["points"]] == \
        [(0.0, 0.0), (1.0, 1.0)]
    # Interpolated from (0, 0) to (1, 1): sensitivity 1/8 at 1/8 FP per scan.
    assert single["sensitivity_at"]["1/8"] == pytest.approx(0.125)
    assert single["cpm"] == pytest.approx((0.125 + 0.25 + 0.5 + 4) / 7)


def test_confidence_mean_or_max() -> None:
    truth = np.zeros(SHAPE, np.uint8)
    cube(truth, (5, 5, 5), 2)
    prob = np.zeros(SHAPE, np.float32)
    prob[5, 5, 5] = 1.0  # one of 8 voxels
    mean = evaluate_case(truth, truth, probabilities=prob)
    top = evaluate_case(truth, truth, probabilities=prob, confidence="max")
    assert mean.predicted[0].confidence == pytest.approx(1 / 8)
    assert top.predicted[0].confidence == 1.0


def test_small_lesions_left_out_by_volume_threshold() -> None:
    truth = np.zeros(SHAPE, np.uint8)
    cube(truth, (5, 5, 5), 2)  # 8 mm^3
    cube(truth, (20, 20, 20), 5)
    pred = np.zeros(SHAPE, np.uint8)
    cube(pred, (5, 5, 5), 2)
    case = evaluate_case(pred, truth, min_gt_volume_mm3=10)
    # Only the big (missed) lesion is scored; the small one's prediction is no FP.
    assert case.lesion_dice == 0.0 and case.n_false_positives == 0
    assert case.predicted[0].ignored
    # the same case scored at another threshold: every lesion counts again
    every = evaluate_case(pred, truth)
    assert case.rescored(0.0) == every and every.rescored(10.0) == case
    assert every.lesion_dice == pytest.approx(0.5) and not every.predicted[0].ignored


def test_bad_input() -> None:
    with pytest.raises(GeometryMismatchError):
        evaluate_case(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)))
    with pytest.raises(ParameterError):
        evaluate_case(np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), confidence="median")
    with pytest.raises(ParameterError):
        evaluate_case(np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), dilation=-1)
    with pytest.raises(ParameterError):
        summarize([])


def test_reports_written(tmp_path) -> None:
    truth = np.zeros(SHAPE, np.uint8)
    cube(truth, (5, 5, 5), 4)
    pred = truth.copy()
    cube(pred, (25, 25, 25), 3)
    summary = summarize([evaluate_case(pred, truth)])
    paths = write_lesionwise(summary, tmp_path)
    data = json.loads(paths[0].read_text())
    assert data["false_positives"] == 1 and data["lesion_dice"] == 0.5
    md = paths[1].read_text()
    assert "| lesion-wise Dice |" in md or "lesion-wise Dice" in md
    assert md == lesionwise_markdown(summary)
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["froc.png", "lesionwise.json",
                                                         "lesionwise.md"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_evaluate_lesions(tmp_path) -> None:
    affine = np.diag([1.0, 1.0, 1.5, 1.0])
    truth = np.zeros(SHAPE, np.uint8)
    truth[..., :] = 3
    cube(truth, (5, 5, 5), 4)
    cube(truth, (25, 25, 25), 5)
    pred = truth.copy()
    pred[25:30, 25:30, 25:30] = 3  # missed
    cube(pred, (5, 30, 5), 3)  # spurious
    prob = np.where(pred == 4, 0.7, 0.0).astype(np.float32)
    save(LabelMap(truth, affine, labels=BRAIN_LESION_LABELS), tmp_path / "gt.nii.gz")
    save(LabelMap(pred, affine, labels=BRAIN_LESION_LABELS), tmp_path / "pred.nii.gz")
    save(Volume(prob, affine), tmp_path / "prob.nii.gz")
    out = tmp_path / "report"
    r = _cli("evaluate", str(tmp_path / "pred.nii.gz"), "--ground-truth",
             str(tmp_path / "gt.nii.gz"), "--lesions", "--probabilities",
             str(tmp_path / "prob.nii.gz"), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["lesions"] == 2 and data["detected"] == 1 and data["false_positives"] == 1
    assert data["lesion_dice"] == pytest.approx(1 / 3)
    assert data["cases"][0]["predicted"][0]["confidence"] == pytest.approx(0.7)
    assert sorted(p.name for p in out.iterdir()) == ["froc.png", "lesionwise.json",
                                                    "lesionwise.md"]
    text = _cli("evaluate", str(tmp_path / "pred.nii.gz"), "--ground-truth",
                str(tmp_path / "gt.nii.gz"), "--lesions")
    assert text.returncode == 0, text.stderr
    assert "lesion-wise Dice" in text.stdout
    # The lesion options need --lesions; --lesions does not take --method.
    bad = _cli("evaluate", str(tmp_path / "pred.nii.gz"), "--ground-truth",
               str(tmp_path / "gt.nii.gz"), "--probabilities", str(tmp_path / "prob.nii.gz"))
    assert bad.returncode == 2 and "--lesions" in bad.stderr
    bad = _cli("evaluate", str(tmp_path / "pred.nii.gz"), "--ground-truth",
               str(tmp_path / "gt.nii.gz"), "--lesions", "--method", "otsu")
    assert bad.returncode == 2
