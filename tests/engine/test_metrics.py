"""Metrics against hand-computed values and independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from engine.core.metrics import assd, confusion, dice, evaluate_labels, hausdorff95


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
