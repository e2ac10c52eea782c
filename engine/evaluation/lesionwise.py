"""Lesion-wise evaluation: BraTS-style Dice and HD95, detection by size, FROC and CPM.

Definitions (see docs/lesions.md):

* **Lesions** are the 26-connected components of the lesion mask (value 4 by
  default, or every non-zero value with ``lesion_value=0``).
* **Merging ground-truth lesions** (BraTS 2023): the ground-truth mask is
  dilated *dilation* times with the 18-neighbourhood; the ground-truth voxels
  of one connected component of the dilated mask form one lesion, so a lesion
  broken into nearby pieces counts once (``dilation=0``: no merging). The
  ground truth itself is not changed.
* **Matching.** A predicted component *matches* a ground-truth lesion when it
  overlaps that lesion's dilated region (the same dilation). A ground-truth
  lesion's Dice and HD95 are computed against the union of the predicted
  components that match it (HD95 with :func:`engine.core.metrics.hausdorff95`,
  Dice with :func:`engine.core.metrics.dice`, on the voxel spacing). A
  ground-truth lesion without a match is **missed** (Dice 0, HD95
  :data:`MISSED_HD95_MM` = 374 mm, BraTS's value for an infinite distance); a
  predicted component matching no lesion is a **false positive** (also Dice 0,
  HD95 374 mm).
* **Lesion-wise Dice** of a case = sum of the lesions' Dice / (lesions + false
  positives); **lesion-wise HD95** = (sum of the lesions' HD95 + 374 x false
  positives) / (lesions + false positives). A case with neither lesions nor
  predictions scores Dice 1 and HD95 0. Lesions of at most
  *min_gt_volume_mm3* are left out of both (BraTS uses 50 mm^3 for gliomas, 2
  for metastases; Delineo's default is 0: every lesion counts), and a
  prediction matching only such a lesion is not a false positive.
* **Detection sensitivity by size**: detected lesions / lesions in each bin of
  the ground-truth lesion's equivalent diameter ``(6 V / pi)^(1/3)``:
  :data:`SIZE_BINS` (< 5 mm, 5-10 mm, >= 10 mm).
* **Confidence** of a predicted component: the mean (or maximum) of a
  probability map inside it; without a map every prediction has confidence 1
  and the FROC curve is a single operating point.
* **FROC** over all cases: for every distinct confidence ``t`` (highest
  first), the fraction of ground-truth lesions matched by a prediction of
  confidence ``>= t`` against the number of false positives of confidence
  ``>= t`` per scan, starting at (0, 0). The **CPM** (LUNA16 competition
  performance metric) is the mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and 8
  false positives per scan, read off the curve as the LUNA16 evaluation script
  does: linear interpolation between operating points (``numpy.interp``),
  the last sensitivity held beyond the last point.

Examples
--------
>>> import numpy as np
>>> truth = np.zeros((20, 20, 20), np.uint8); truth[2:5, 2:5, 2:5] = 4
>>> pred = truth.copy(); pred[12:14, 12:14, 12:14] = 4     # one exact, one spurious
>>> case = evaluate_case(pred, truth)
>>> case.lesion_dice, case.lesion_hd95, case.n_false_positives
(0.5, 187.0, 1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ..core import morphology
from ..core.errors import GeometryMismatchError, ParameterError
from ..core.metrics import dice, finite_mean, hausdorff95
from ..core.volume import LabelMap, Volume
from ..io.atomic import atomic_path, atomic_write_text
from .tables import markdown_table

__all__ = [
    "CPM_FP_RATES",
    "MISSED_HD95_MM",
    "SIZE_BINS",
    "CaseLesions",
    "GroundTruthLesion",
    "PredictedLesion",
    "evaluate_case",
    "froc",
    "lesion_mask",
    "lesionwise_markdown",
    "plot_froc",
    "summarize",
    "write_lesionwise",
]

#: HD95 (mm) of a missed or spurious lesion (BraTS 2023).
MISSED_HD95_MM = 374.0

#: False positives per scan at which the LUNA16 CPM averages the sensitivity.
CPM_FP_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

#: (name, lower, upper) equivalent-diameter bins in mm: lower <= d < upper.
SIZE_BINS: tuple[tuple[str, float, float], ...] = (
    ("<5 mm", 0.0, 5.0),
    ("5-10 mm", 5.0, 10.0),
    (">=10 mm", 10.0, math.inf),
)

_DILATE18 = ndimage.generate_binary_structure(3, 2)


@dataclass(frozen=True)
class GroundTruthLesion:
    """One (merged) ground-truth lesion and how it was found."""

    id: int
    voxel_count: int
    volume_mm3: float
    equivalent_diameter_mm: float
    size_bin: str
    matched: tuple[int, ...]
    dice: float
    hd95_mm: float
    confidence: float | None
    scored: bool = True  # larger than the case's min_gt_volume_mm3

    @property
    def detected(self) -> bool:
        return bool(self.matched)


@dataclass(frozen=True)
class PredictedLesion:
    """One predicted component: its size, confidence and the lesions it matches."""

    id: int
    voxel_count: int
    volume_mm3: float
    confidence: float
    matched: tuple[int, ...]
    ignored: bool = False  # matches only lesions too small to be scored

    @property
    def false_positive(self) -> bool:
        return not self.matched


@dataclass
class CaseLesions:
    """Lesion-wise results of one case."""

    name: str
    truth: list[GroundTruthLesion] = field(default_factory=list)
    predicted: list[PredictedLesion] = field(default_factory=list)
    lesion_dice: float = 1.0
    lesion_hd95: float = 0.0

    @property
    def scored(self) -> list[GroundTruthLesion]:
        return [g for g in self.truth if g.scored]

    @property
    def n_false_positives(self) -> int:
        return sum(1 for p in self.predicted if p.false_positive)

    def rescored(self, min_gt_volume_mm3: float) -> CaseLesions:
        """The same case scored with another *min_gt_volume_mm3* (module docstring):
        which lesions count, which predictions are ignored, lesion-wise Dice and HD95."""
        truth = [replace(g, scored=g.volume_mm3 > min_gt_volume_mm3) for g in self.truth]
        scored_ids = {g.id for g in truth if g.scored}
        predicted = [replace(q, ignored=bool(q.matched) and not (set(q.matched) & scored_ids))
                     for q in self.predicted]
        case = CaseLesions(name=self.name, truth=truth, predicted=predicted)
        scored, n_fp = case.scored, case.n_false_positives
        denom = len(scored) + n_fp
        if denom:
            case.lesion_dice = float(sum(g.dice for g in scored) / denom)
            case.lesion_hd95 = float((sum(g.hd95_mm for g in scored) + MISSED_HD95_MM * n_fp)
                                     / denom)
        return case

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (lists for tuples; an infinite HD95 cannot occur here)."""
        scored = self.scored
        return {
            "name": self.name,
            "lesions": len(scored),
            "detected": sum(1 for g in scored if g.detected),
            "false_positives": self.n_false_positives,
            "lesion_dice": self.lesion_dice,
            "lesion_hd95_mm": self.lesion_hd95,
            "truth": [{**_plain(g.__dict__), "detected": g.detected} for g in self.truth],
            "predicted": [{**_plain(p.__dict__), "false_positive": p.false_positive}
                          for p in self.predicted],
        }


def _plain(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


# ---------------------------------------------------------------------------
# One case
# ---------------------------------------------------------------------------
def lesion_mask(labels: LabelMap | np.ndarray, lesion_value: int = 4) -> np.ndarray:
    """The lesion voxels: ``labels == lesion_value``, or ``labels > 0`` when it is 0."""
    arr = np.asarray(labels.array if isinstance(labels, Volume) else labels)
    if lesion_value < 0:
        raise ParameterError(f"the lesion value must be 0 or more, not {lesion_value}")
    return arr > 0 if lesion_value == 0 else arr == lesion_value


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    return morphology.label(mask, 26)


def _box(*masks: np.ndarray) -> tuple[slice, ...]:
    both = np.zeros_like(masks[0], dtype=bool)
    for m in masks:
        both |= m
    idx = np.nonzero(both)
    return tuple(slice(max(0, int(i.min()) - 1), int(i.max()) + 2) for i in idx)


def evaluate_case(
    pred: LabelMap | np.ndarray,
    truth: LabelMap | np.ndarray,
    *,
    spacing: Sequence[float] | None = None,
    probabilities: Volume | np.ndarray | None = None,
    confidence: str = "mean",
    lesion_value: int = 4,
    dilation: int = 1,
    min_gt_volume_mm3: float = 0.0,
    name: str = "case",
) -> CaseLesions:
    """Lesion-wise Dice and HD95, matches and confidences of one case (module docstring).

    Parameters
    ----------
    pred, truth : LabelMap or ndarray
        Prediction and ground truth on the same grid (label maps, or masks
        with ``lesion_value=0``).
    spacing : (float, float, float), optional
        Voxel size in mm (default: the label maps', else 1 mm).
    probabilities : Volume or ndarray, optional
        Lesion probability (0..1) on the same grid: the confidence of each
        predicted component.
    confidence : {"mean", "max"}
        How the probabilities inside a component make its confidence.
    lesion_value : int
        Label value of lesions (default 4); 0: every non-zero value.
    dilation : int
        Dilations (18-neighbourhood) that merge nearby ground-truth lesions and
        define the matching region (BraTS 2023: 1 for metastases and
        meningiomas, 3 for gliomas).
    min_gt_volume_mm3 : float
        Ground-truth lesions of at most this volume are not scored.
    name : str
        Case name for the reports.
    """
    if confidence not in ("mean", "max"):
        raise ParameterError(f"confidence must be 'mean' or 'max', not {confidence!r}")
    if dilation < 0:
        raise ParameterError(f"the dilation must be 0 or more, not {dilation}")
    if isinstance(pred, Volume) and isinstance(truth, Volume) and not pred.same_grid(truth):
        raise GeometryMismatchError("the prediction does not lie on the ground truth's grid",
                                    differences=truth.grid_differences(pred))
    p_mask, t_mask = lesion_mask(pred, lesion_value), lesion_mask(truth, lesion_value)
    if p_mask.shape != t_mask.shape:
        raise GeometryMismatchError(
            f"prediction shape {p_mask.shape} differs from the ground truth's {t_mask.shape}",
            differences=[f"shape {p_mask.shape} vs {t_mask.shape}"])
    if spacing is None:
        ref = truth if isinstance(truth, Volume) else pred if isinstance(pred, Volume) else None
        spacing = tuple(ref.spacing) if ref is not None else (1.0, 1.0, 1.0)
    spacing = tuple(float(s) for s in spacing)
    voxel_mm3 = float(np.prod(spacing))
    prob = None
    if probabilities is not None:
        prob = np.asarray(probabilities.array if isinstance(probabilities, Volume)
                          else probabilities, dtype=np.float64)
        if prob.shape != p_mask.shape:
            raise GeometryMismatchError(
                f"probability map shape {prob.shape} differs from the prediction's "
                f"{p_mask.shape}", differences=[f"shape {prob.shape} vs {p_mask.shape}"])

    p_comp, n_pred = _components(p_mask)
    # Merged ground-truth lesions: the truth voxels of each component of the dilated truth.
    if dilation > 0 and t_mask.any():
        region = ndimage.binary_dilation(t_mask, structure=_DILATE18, iterations=dilation)
    else:
        region = t_mask
    region_comp, n_gt = _components(region)
    gt_comp = np.where(t_mask, region_comp, 0)

    # Which predicted components overlap which lesion's region.
    both = (region_comp > 0) & (p_comp > 0)
    pairs = np.unique(np.stack([region_comp[both], p_comp[both]]), axis=1) if both.any() \
        else np.zeros((2, 0), np.int64)
    gt_matches: dict[int, list[int]] = {g: [] for g in range(1, n_gt + 1)}
    pred_matches: dict[int, list[int]] = {q: [] for q in range(1, n_pred + 1)}
    for g, q in pairs.T:
        gt_matches[int(g)].append(int(q))
        pred_matches[int(q)].append(int(g))

    pred_counts = np.bincount(p_comp.ravel(), minlength=n_pred + 1)
    confidences = np.ones(n_pred + 1)
    if prob is not None and n_pred:
        ids = np.arange(1, n_pred + 1)
        if confidence == "mean":
            confidences[1:] = ndimage.mean(prob, p_comp, ids)
        else:
            confidences[1:] = ndimage.maximum(prob, p_comp, ids)
    gt_counts = np.bincount(gt_comp.ravel(), minlength=n_gt + 1)
    gt_boxes = ndimage.find_objects(region_comp)
    pred_boxes = ndimage.find_objects(p_comp)

    truth_rows: list[GroundTruthLesion] = []
    for g in range(1, n_gt + 1):
        count = int(gt_counts[g])
        volume = count * voxel_mm3
        eq = (6.0 * volume / math.pi) ** (1.0 / 3.0)
        matched = tuple(sorted(gt_matches[g]))
        if matched:
            boxes = [gt_boxes[g - 1]] + [pred_boxes[q - 1] for q in matched]
            box = tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes))
                        for a in range(3))
            gt_sub = gt_comp[box] == g
            pred_sub = np.isin(p_comp[box], matched)
            d = dice(pred_sub.astype(np.uint8), gt_sub.astype(np.uint8), 1)
            hd = hausdorff95(pred_sub, gt_sub, spacing)
            hd = MISSED_HD95_MM if not math.isfinite(hd) else hd
            conf = float(max(confidences[q] for q in matched))
        else:
            d, hd, conf = 0.0, MISSED_HD95_MM, None
        truth_rows.append(GroundTruthLesion(
            id=g, voxel_count=count, volume_mm3=volume, equivalent_diameter_mm=eq,
            size_bin=_size_bin(eq), matched=matched, dice=float(d), hd95_mm=float(hd),
            confidence=conf))

    pred_rows = [PredictedLesion(
        id=q, voxel_count=int(pred_counts[q]), volume_mm3=float(pred_counts[q] * voxel_mm3),
        confidence=float(confidences[q]), matched=tuple(sorted(pred_matches[q])))
        for q in range(1, n_pred + 1)]
    return CaseLesions(name=name, truth=truth_rows,
                       predicted=pred_rows).rescored(min_gt_volume_mm3)


def _size_bin(diameter: float) -> str:
    for name, lo, hi in SIZE_BINS:
        if lo <= diameter < hi:
            return name
    return SIZE_BINS[-1][0]


# ---------------------------------------------------------------------------
# Many cases
# ---------------------------------------------------------------------------
def froc(cases: Sequence[CaseLesions]) -> dict[str, Any]:
    """FROC operating points and the LUNA16 CPM over *cases* (module docstring).

    Returns
    -------
    dict
        ``points``: list of ``{"threshold", "fp_per_scan", "sensitivity"}``
        (the first is the origin, threshold None); ``sensitivity_at``: the
        interpolated sensitivity at each of :data:`CPM_FP_RATES` (keys as
        strings); ``cpm``: their mean (NaN without any lesion).
    """
    n_scans = len(cases)
    lesions = [g for c in cases for g in c.scored]
    n_lesions = len(lesions)
    fp_conf = np.array([p.confidence for c in cases for p in c.predicted if p.false_positive])
    hit_conf = np.array([g.confidence for g in lesions if g.confidence is not None])
    thresholds = sorted({float(p.confidence) for c in cases for p in c.predicted
                         if not p.ignored}, reverse=True)
    points = [{"threshold": None, "fp_per_scan": 0.0, "sensitivity": 0.0}]
    for t in thresholds:
        fps = float((fp_conf >= t).sum()) / n_scans if n_scans else math.nan
        sens = float((hit_conf >= t).sum()) / n_lesions if n_lesions else math.nan
        points.append({"threshold": t, "fp_per_scan": fps, "sensitivity": sens})
    at: dict[str, float] = {}
    if n_lesions and n_scans:
        xs: list[float] = []
        ys: list[float] = []
        for pt in points:  # one point per distinct FP rate: the highest sensitivity there
            if xs and pt["fp_per_scan"] == xs[-1]:
                ys[-1] = max(ys[-1], pt["sensitivity"])
            else:
                xs.append(pt["fp_per_scan"])
                ys.append(pt["sensitivity"])
        values = np.interp(CPM_FP_RATES, xs, ys)
        at = {_rate_key(r): float(v) for r, v in zip(CPM_FP_RATES, values, strict=True)}
        cpm = float(np.mean(values))
    else:
        at = {_rate_key(r): math.nan for r in CPM_FP_RATES}
        cpm = math.nan
    return {"points": points, "sensitivity_at": at, "cpm": cpm}


def _rate_key(rate: float) -> str:
    return {0.125: "1/8", 0.25: "1/4", 0.5: "1/2"}.get(rate, f"{rate:g}")


def summarize(cases: Sequence[CaseLesions]) -> dict[str, Any]:
    """Everything over *cases* as a JSON-friendly dict (NaN where undefined).

    Keys: ``cases`` (per case), ``n_cases``, ``n_lesion_free_cases``,
    ``lesions``, ``detected``, ``sensitivity``, ``false_positives``,
    ``fp_per_scan``, ``fp_per_lesion_free_scan``, ``lesion_dice`` and
    ``lesion_hd95_mm`` (means over cases), ``by_size`` (per bin: lesions,
    detected, sensitivity, mean Dice of the lesions) and ``froc``.
    """
    if not cases:
        raise ParameterError("no case to summarise")
    lesions = [g for c in cases for g in c.scored]
    detected = sum(1 for g in lesions if g.detected)
    n_fp = sum(c.n_false_positives for c in cases)
    free = [c for c in cases if not c.scored]
    by_size = []
    for name, lo, hi in SIZE_BINS:
        in_bin = [g for g in lesions if g.size_bin == name]
        hit = sum(1 for g in in_bin if g.detected)
        by_size.append({
            "bin": name, "min_mm": lo, "max_mm": hi if math.isfinite(hi) else None,
            "lesions": len(in_bin), "detected": hit,
            "sensitivity": hit / len(in_bin) if in_bin else math.nan,
            "mean_dice": finite_mean(g.dice for g in in_bin).mean,
        })
    return {
        "format": "delineo-lesionwise",
        "version": 1,
        "n_cases": len(cases),
        "n_lesion_free_cases": len(free),
        "lesions": len(lesions),
        "detected": detected,
        "sensitivity": detected / len(lesions) if lesions else math.nan,
        "false_positives": n_fp,
        "fp_per_scan": n_fp / len(cases),
        "fp_per_lesion_free_scan": (sum(c.n_false_positives for c in free) / len(free)
                                    if free else math.nan),
        "lesion_dice": finite_mean(c.lesion_dice for c in cases).mean,
        "lesion_hd95_mm": finite_mean(c.lesion_hd95 for c in cases).mean,
        "by_size": by_size,
        "froc": froc(cases),
        "cases": [c.to_json() for c in cases],
    }


# ---------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------
def lesionwise_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as Markdown: overall figures, sensitivity by size, FROC, per case."""
    overall = [{
        "cases": summary["n_cases"], "free": summary["n_lesion_free_cases"],
        "lesions": summary["lesions"], "detected": summary["detected"],
        "sensitivity": summary["sensitivity"], "fp": summary["false_positives"],
        "fp_scan": summary["fp_per_scan"], "fp_free": summary["fp_per_lesion_free_scan"],
        "dice": summary["lesion_dice"], "hd95": summary["lesion_hd95_mm"],
        "cpm": summary["froc"]["cpm"],
    }]
    text = "## Lesion-wise evaluation\n\n" + markdown_table(overall, [
        ("cases", "cases", "{:d}"), ("free", "lesion-free", "{:d}"),
        ("lesions", "lesions", "{:d}"), ("detected", "detected", "{:d}"),
        ("sensitivity", "sensitivity", "{:.3f}"), ("fp", "false positives", "{:d}"),
        ("fp_scan", "FP / scan", "{:.3f}"), ("fp_free", "FP / lesion-free scan", "{:.3f}"),
        ("dice", "lesion-wise Dice", "{:.3f}"), ("hd95", "lesion-wise HD95 (mm)", "{:.2f}"),
        ("cpm", "CPM", "{:.3f}"),
    ])
    text += "\n### Detection by size (equivalent diameter)\n\n" + markdown_table(
        summary["by_size"], [("bin", "size", "{}"), ("lesions", "lesions", "{:d}"),
                             ("detected", "detected", "{:d}"),
                             ("sensitivity", "sensitivity", "{:.3f}"),
                             ("mean_dice", "mean Dice", "{:.3f}")])
    rates = [{"rate": k, "sensitivity": v} for k, v in summary["froc"]["sensitivity_at"].items()]
    text += "\n### FROC (LUNA16 CPM points)\n\n" + markdown_table(
        rates, [("rate", "FP / scan", "{}"), ("sensitivity", "sensitivity", "{:.3f}")])
    per_case = [{k: c[k] for k in ("name", "lesions", "detected", "false_positives",
                                   "lesion_dice", "lesion_hd95_mm")}
                for c in summary["cases"]]
    text += "\n### Cases\n\n" + markdown_table(per_case, [
        ("name", "case", "{}"), ("lesions", "lesions", "{:d}"), ("detected", "detected", "{:d}"),
        ("false_positives", "false positives", "{:d}"),
        ("lesion_dice", "lesion-wise Dice", "{:.3f}"),
        ("lesion_hd95_mm", "lesion-wise HD95 (mm)", "{:.2f}")])
    return text


def plot_froc(summary: Mapping[str, Any], path: str | Path, *, title: str = "FROC") -> Path:
    """The FROC curve as a PNG (matplotlib Agg, written atomically)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    pts = summary["froc"]["points"]
    xs = [p["fp_per_scan"] for p in pts]
    ys = [p["sensitivity"] for p in pts]
    fig, ax = plt.subplots(figsize=(5.0, 3.8))
    if summary["lesions"]:
        ax.plot(xs, ys, "-o", color="tab:blue", markersize=3, label="FROC")
        at = summary["froc"]["sensitivity_at"]
        ax.plot(CPM_FP_RATES, list(at.values()), "s", color="tab:orange", markersize=4,
                label=f"CPM points (CPM {summary['froc']['cpm']:.3f})")
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no ground-truth lesion", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xscale("symlog", linthresh=0.125)
    ax.set_xlim(0, max(8.0, max(xs) if xs else 8.0))
    ax.set_ylim(0, 1.02)
    ax.set_xticks(list(CPM_FP_RATES))
    ax.set_xticklabels(["1/8", "1/4", "1/2", "1", "2", "4", "8"])
    ax.set_xlabel("false positives per scan")
    ax.set_ylabel("sensitivity")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_lesionwise(summary: Mapping[str, Any], folder: str | Path) -> list[Path]:
    """Write ``lesionwise.json`` (NaN as null), ``lesionwise.md`` and ``froc.png`` into
    the existing *folder*, atomically; returns the three paths."""
    import json

    folder = Path(folder)
    paths = [folder / "lesionwise.json", folder / "lesionwise.md", folder / "froc.png"]
    atomic_write_text(paths[0], json.dumps(_json_safe(summary), indent=2,
                                           allow_nan=False) + "\n")
    atomic_write_text(paths[1], lesionwise_markdown(summary))
    plot_froc(summary, paths[2])
    return paths
