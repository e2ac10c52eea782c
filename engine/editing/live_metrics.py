"""Live overlap metrics against a ground truth, updated from each edit's diff.

:class:`LiveMetrics` holds per-label confusion counts of the edited mask
against the ground truth. It is initialised with one pass over the volume;
afterwards :meth:`LiveMetrics.update` adjusts the counts from a
:class:`~engine.editing.kernels.Diff` alone -- the changed voxels' old and new values
and the truth under them -- so the cost is proportional to the stroke, not to
the volume. The figures always equal a full recomputation (tested over
random edit sequences).

Examples
--------
>>> import numpy as np
>>> from engine.editing.kernels import paint
>>> truth = np.zeros((10, 10, 10), np.uint8); truth[3:7, 3:7, 3:7] = 1
>>> mask = np.zeros_like(truth)
>>> live = LiveMetrics(mask, truth, labels=[1])
>>> live.update(paint(mask, (5, 5, 5), radius_mm=2, value=1), truth)
>>> 0 < live.table()[1]["dice"] < 1
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..core.metrics import Confusion, MeanSummary, confusion, finite_mean
from .kernels import Diff

__all__ = ["LiveMetrics"]


class LiveMetrics:
    """Per-label confusion counts kept up to date from diffs.

    Parameters
    ----------
    labels_array, truth : ndarray
        The edited mask and the ground truth (same shape).
    labels : iterable of int
        Label values to track (background excluded by convention).
    voxel_ml : float
        Volume of one voxel in mL, for volume differences.
    """

    def __init__(
        self,
        labels_array: np.ndarray,
        truth: np.ndarray,
        *,
        labels: Iterable[int] = (1, 2, 3),
        voxel_ml: float = 0.001,
    ) -> None:
        if labels_array.shape != truth.shape:
            raise ValueError(f"mask {labels_array.shape} and truth {truth.shape} differ")
        self.labels = [int(v) for v in labels]
        self.voxel_ml = float(voxel_ml)
        self.counts: dict[int, Confusion] = confusion(labels_array, truth, self.labels)

    def add_label(self, value: int, labels_array: np.ndarray, truth: np.ndarray) -> None:
        """Start tracking another label (one pass over the volume)."""
        if value not in self.labels:
            self.labels.append(int(value))
            self.counts.update(confusion(labels_array, truth, [value]))

    def update(self, diff: Diff | None, truth: np.ndarray) -> None:
        """Adjust the counts for *diff* (already applied to the mask)."""
        if diff is None or diff.count == 0:
            return
        t = truth[diff.slices][diff.mask]
        old, new = diff.old, diff.new
        for v in self.labels:
            t_in = t == v
            was, now = old == v, new == v
            # A voxel moves between confusion cells when its prediction flips.
            gained = now & ~was
            lost = was & ~now
            g_true = int(np.count_nonzero(gained & t_in))
            l_true = int(np.count_nonzero(lost & t_in))
            g_false = int(np.count_nonzero(gained)) - g_true
            l_false = int(np.count_nonzero(lost)) - l_true
            c = self.counts[v]
            c.tp += g_true - l_true
            c.fn += l_true - g_true
            c.fp += g_false - l_false
            c.tn += l_false - g_false

    def table(self) -> dict[int, dict[str, float]]:
        """Per label: dice, iou, sensitivity, specificity, volume difference (mL, %).

        A tracked label that is now in neither the mask nor the truth (a lesion label
        whose findings were all rejected, against a truth without lesions) has no
        overlap to score: its dice, iou and sensitivity are NaN, so the means leave it
        out and count it, instead of a perfect 1 that would flatter them. A label the
        truth lacks but the mask has (a false lesion) scores dice and iou 0, and has no
        sensitivity either: no share of an empty truth can be found, and a 1 there
        would read as a perfect score of a label that is all false positives."""
        out = {}
        for v in self.labels:
            c = self.counts[v]
            dv_ml, dv_pct = c.volume_difference(self.voxel_ml)
            absent = c.tp + c.fp + c.fn == 0
            out[v] = {
                "dice": math.nan if absent else c.dice,
                "iou": math.nan if absent else c.iou,
                "sensitivity": math.nan if c.tp + c.fn == 0 else c.sensitivity,
                "specificity": c.specificity, "volume_diff_ml": dv_ml,
                "volume_diff_pct": dv_pct,
            }
        return out

    def mean(self, key: str = "dice") -> MeanSummary:
        """Mean of one metric over the tracked labels, with how many were finite.

        The one averaging rule of Delineo (:func:`~engine.core.metrics.finite_mean`).
        """
        return finite_mean(row[key] for row in self.table().values())
