"""Segmentation metrics: overlap from confusion counts, and surface distances.

Overlap metrics (Dice, IoU, sensitivity, specificity, accuracy, volume
difference) are computed from per-label confusion counts, so that the same
code serves a one-shot evaluation and the incremental live figures of the
editor (which update the counts from each edit's diff).

Surface distances use the voxel spacing (mm). **HD95** is the maximum of the
two directed 95th percentiles of surface-to-surface distances; **ASSD** is
the mean of all surface distances of both directions. Surfaces are the mask
voxels with at least one 6-neighbour outside the mask. Conventions for empty
masks: both empty → distance 0; exactly one empty → ``inf``. Dice/IoU with
both masks empty are 1 (perfect agreement on absence).

Means over labels, slices or cases go through one helper, :func:`finite_mean`:
it averages the finite values and says how many it left out, so that one
missed tissue (``inf`` HD95) neither turns a whole mean into ``inf`` nor
silently flatters a method. Tables show that count next to the mean.

Examples
--------
>>> import numpy as np
>>> truth = np.zeros((8, 8, 8), np.uint8); truth[2:6, 2:6, 2:6] = 1
>>> pred = truth.copy(); pred[2, 2, 2] = 0
>>> round(dice(pred, truth, 1), 4)
0.9921
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "Confusion",
    "MeanSummary",
    "assd",
    "confusion",
    "dice",
    "evaluate_labels",
    "finite_mean",
    "hausdorff95",
    "label_changes",
    "surface_distances",
    "surface_metrics",
]


@dataclass
class Confusion:
    """Confusion counts of one label: true/false positives/negatives."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def dice(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 1.0 if denom == 0 else 2 * self.tp / denom

    @property
    def iou(self) -> float:
        denom = self.tp + self.fp + self.fn
        return 1.0 if denom == 0 else self.tp / denom

    @property
    def sensitivity(self) -> float:
        denom = self.tp + self.fn
        return 1.0 if denom == 0 else self.tp / denom

    @property
    def specificity(self) -> float:
        denom = self.tn + self.fp
        return 1.0 if denom == 0 else self.tn / denom

    @property
    def accuracy(self) -> float:
        return 1.0 if self.total == 0 else (self.tp + self.tn) / self.total

    @property
    def predicted(self) -> int:
        return self.tp + self.fp

    @property
    def actual(self) -> int:
        return self.tp + self.fn

    def volume_difference(self, voxel_ml: float = 1.0) -> tuple[float, float]:
        """(predicted − true) volume in mL and in % of the true volume (nan if empty)."""
        diff = (self.predicted - self.actual) * voxel_ml
        if self.actual == 0:
            return diff, float("nan")
        pct = 100.0 * (self.predicted - self.actual) / self.actual
        return diff, pct


def confusion(pred: np.ndarray, truth: np.ndarray, labels: Iterable[int]) -> dict[int, Confusion]:
    """Per-label confusion counts of two label arrays of the same shape.

    Computed with one joint histogram, so the cost is one pass over the data
    whatever the number of labels.
    """
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {truth.shape}")
    labels = [int(v) for v in labels]
    for array in (pred, truth):
        if array.size and array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError("label arrays hold no NaN or infinite values")
        if array.size and array.dtype.kind not in "ub" and array.min() < 0:
            raise ValueError("label arrays hold no negative values")
    top = int(max(pred.max(initial=0), truth.max(initial=0), max(labels, default=0))) + 1
    joint = _joint_counts(pred, truth, top)
    n = int(pred.size)
    out: dict[int, Confusion] = {}
    for v in labels:
        tp = int(joint[v, v])
        fp = int(joint[:, v].sum() - tp)
        fn = int(joint[v, :].sum() - tp)
        out[v] = Confusion(tp=tp, fp=fp, fn=fn, tn=n - tp - fp - fn)
    return out


#: Voxels per block of :func:`_joint_counts` (cache-sized temporaries).
_JOINT_CHUNK = 1 << 20


def _joint_counts(pred: np.ndarray, truth: np.ndarray, top: int) -> np.ndarray:
    """``joint[t, p]``: voxels with truth value *t* and predicted value *p* (values
    below *top*), counted block by block on 16-bit keys when they fit."""
    p = np.ravel(pred)  # C order for both (a view when contiguous)
    t = np.ravel(truth)
    key_type = np.uint16 if top * top <= 1 << 16 else np.int64
    joint = np.zeros(top * top, np.int64)
    for start in range(0, p.size, _JOINT_CHUNK):
        key = t[start:start + _JOINT_CHUNK].astype(key_type)
        key *= key_type(top)
        np.add(key, p[start:start + _JOINT_CHUNK], out=key, casting="unsafe")  # < top
        joint += np.bincount(key, minlength=top * top)
    return joint.reshape(top, top)


@dataclass(frozen=True)
class MeanSummary:
    """The mean of the finite values of a set, with how many were used.

    Attributes
    ----------
    mean : float
        Mean of the finite values; NaN when there is none.
    used : int
        How many values were finite (and averaged).
    total : int
        How many values there were.
    """

    mean: float
    used: int
    total: int

    @property
    def misses(self) -> int:
        """How many values were left out because they were not finite (NaN or ±inf)."""
        return self.total - self.used

    def __float__(self) -> float:
        return self.mean


def finite_mean(values: Iterable[float]) -> MeanSummary:
    """Mean of the finite *values*, with the count used and the total.

    A missed structure gives an infinite surface distance and an empty truth an
    undefined relative volume; averaging them would make the whole mean
    ``inf`` or NaN, dropping them quietly would flatter the method. This
    returns both the mean of what is finite and the number left out, which
    every Delineo table reports beside the mean.

    Examples
    --------
    >>> finite_mean([2.0, float("inf"), 4.0])
    MeanSummary(mean=3.0, used=2, total=3)
    >>> finite_mean([]).misses, finite_mean([float("nan")]).used
    (0, 0)
    """
    array = np.asarray([float(v) for v in values], dtype=np.float64)
    finite = array[np.isfinite(array)]
    mean = float(finite.mean()) if finite.size else float("nan")
    return MeanSummary(mean, int(finite.size), int(array.size))


def dice(pred: np.ndarray, truth: np.ndarray, label: int = 1) -> float:
    """Dice coefficient of one label."""
    return confusion(pred, truth, [label])[label].dice


def label_changes(labels: np.ndarray, mask: np.ndarray | None = None) -> tuple[int, int, int]:
    """Neighbouring voxel pairs with different labels, along each array axis.

    A segmentation made slice by slice that flickers from one slice to the
    next has many more changes across the slices than along them; against the
    ground truth's own counts this measures streaks in each direction (3-D
    consistency). With *mask*, only pairs whose two voxels lie in it count.

    >>> a = np.zeros((2, 2, 2), np.uint8); a[1] = 1
    >>> label_changes(a)
    (4, 0, 0)
    """
    arr = np.asarray(labels)
    out = []
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        differ = arr[tuple(lo)] != arr[tuple(hi)]
        if mask is not None:
            m = np.asarray(mask, bool)
            differ &= m[tuple(lo)] & m[tuple(hi)]
        out.append(int(np.count_nonzero(differ)))
    return out[0], out[1], out[2]


def _surface(mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return mask
    eroded = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1),
                                    border_value=0)
    return mask & ~eroded


def surface_distances(
    pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances (mm): pred surface → truth, truth surface → pred.

    Works on the bounding box of both masks (plus a margin), so the cost
    follows the structures, not the whole volume.
    """
    pred = np.asarray(pred, bool)
    truth = np.asarray(truth, bool)
    if pred.ndim == 2:
        pred, truth = pred[..., None], truth[..., None]
    both = pred | truth
    if not both.any():
        return np.zeros(0), np.zeros(0)
    idx = np.nonzero(both)
    lo = [max(0, int(i.min()) - 2) for i in idx]
    hi = [min(s, int(i.max()) + 3) for i, s in zip(idx, both.shape, strict=True)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    p, t = pred[box], truth[box]
    sp = tuple(float(s) for s in spacing)[: p.ndim]
    ps, ts = _surface(p), _surface(t)
    if not t.any():
        d_pt = np.full(int(ps.sum()), np.inf)
    else:
        d_pt = ndimage.distance_transform_edt(~ts, sampling=sp)[ps]
    if not p.any():
        d_tp = np.full(int(ts.sum()), np.inf)
    else:
        d_tp = ndimage.distance_transform_edt(~ps, sampling=sp)[ts]
    return d_pt, d_tp


def hausdorff95(
    pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> float:
    """Max of the two directed 95th-percentile surface distances, in mm.

    0 when both masks are empty; ``inf`` when exactly one is empty.
    """
    return _hd95(*surface_distances(pred, truth, spacing))


def _hd95(d_pt: np.ndarray, d_tp: np.ndarray) -> float:
    if d_pt.size == 0 and d_tp.size == 0:
        return 0.0
    if d_pt.size == 0 or d_tp.size == 0 or np.isinf(d_pt).any() or np.isinf(d_tp).any():
        return float("inf")
    return float(max(np.percentile(d_pt, 95), np.percentile(d_tp, 95)))


def _assd(d_pt: np.ndarray, d_tp: np.ndarray) -> float:
    if d_pt.size == 0 and d_tp.size == 0:
        return 0.0
    both = np.concatenate([d_pt, d_tp])
    if both.size == 0 or np.isinf(both).any():
        return float("inf")
    return float(both.mean())


def assd(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
    """Average symmetric surface distance in mm (0 both empty, inf one empty)."""
    return _assd(*surface_distances(pred, truth, spacing))


def surface_metrics(
    pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> tuple[float, float]:
    """``(hd95, assd)`` in mm from one computation of the surface distances.

    Same definitions and empty-mask conventions as :func:`hausdorff95` and
    :func:`assd`, at half their combined cost.

    Examples
    --------
    >>> a = np.zeros((6, 6, 6), bool); a[1:4, 1:4, 1:4] = True
    >>> surface_metrics(a, a)
    (0.0, 0.0)
    """
    d_pt, d_tp = surface_distances(pred, truth, spacing)
    return _hd95(d_pt, d_tp), _assd(d_pt, d_tp)


def evaluate_labels(
    pred: np.ndarray,
    truth: np.ndarray,
    labels: Iterable[int] = (1, 2, 3),
    *,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    surface: bool = True,
) -> dict[int, dict[str, float]]:
    """All metrics per label: dice, iou, sensitivity, specificity, accuracy,
    volume difference (mL, %), and with ``surface=True`` hd95 and assd (mm)."""
    labels = list(labels)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    counts = confusion(pred, truth, labels)
    out: dict[int, dict[str, float]] = {}
    for v in labels:
        c = counts[v]
        dv_ml, dv_pct = c.volume_difference(voxel_ml)
        row = {
            "dice": c.dice, "iou": c.iou, "sensitivity": c.sensitivity,
            "specificity": c.specificity, "accuracy": c.accuracy,
            "volume_diff_ml": dv_ml, "volume_diff_pct": dv_pct,
        }
        if surface:
            row["hd95"] = hausdorff95(pred == v, truth == v, spacing)
            row["assd"] = assd(pred == v, truth == v, spacing)
        out[v] = row
    return out
