"""Side-by-side comparison of segmentations: metrics table and montage figure.

:func:`comparison_rows` evaluates several label maps against one ground truth
(per label and the mean over labels: Dice, IoU, sensitivity, specificity,
accuracy, HD95, ASSD, volume difference) and carries each method's runtime
and peak memory. :func:`write_csv` and :func:`to_markdown` export the table
(through :mod:`engine.evaluation.tables`); :func:`montage` draws one slice per
plane for every method next to the ground truth (the comparison figure of
Dai's thesis [1]_, its Figure 2, drawn from Delineo's own results).

The ``mean`` row averages the finite per-label values
(:func:`engine.core.metrics.finite_mean`). A label a method missed entirely
has an infinite HD95 and ASSD; it is left out of those means and named in the
row's ``misses`` column (``HD95 (mm) 1/3``: one of three labels left out), so the
mean neither becomes ``inf`` nor hides the miss.

References
----------
The full list, with DOIs, is ``docs/references.md``.

.. [1] Y. Dai, *Deep Learning-based Medical Image Segmentation for Early Cancer
   Detection* (thesis), Figure 2.
.. [2] L. R. Dice, "Measures of the amount of ecologic association between
   species", Ecology 26(3):297--302, 1945. doi:10.2307/1932409
.. [3] D. P. Huttenlocher, G. A. Klanderman, W. J. Rucklidge, "Comparing images
   using the Hausdorff distance", IEEE Trans. PAMI 15(9):850--863, 1993.
   doi:10.1109/34.232073 (HD95 is its 95th percentile)

Examples
--------
>>> import numpy as np
>>> from engine.core.volume import LabelMap
>>> truth = LabelMap(np.zeros((8, 8, 8), np.uint8), np.eye(4)); truth.array[2:6, 2:6, 2:6] = 1
>>> rows = comparison_rows({"copy": truth}, truth, labels=[1])
>>> rows[0]["dice"], rows[0]["label"], rows[1]["misses"]
(1.0, 'CSF', '')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.metrics import evaluate_labels, finite_mean
from ..core.volume import LabelMap, Volume
from ..display import image_slice, plane_geometry
from ..io.atomic import atomic_path
from . import tables

__all__ = [
    "COLUMNS",
    "MethodRun",
    "comparison_rows",
    "montage",
    "to_markdown",
    "write_csv",
]

#: Table columns in order (key, header, format).
COLUMNS: list[tuple[str, str, str]] = [
    ("method", "method", "{}"),
    ("label", "label", "{}"),
    ("dice", "Dice", "{:.4f}"),
    ("iou", "IoU", "{:.4f}"),
    ("sensitivity", "sensitivity", "{:.4f}"),
    ("specificity", "specificity", "{:.4f}"),
    ("accuracy", "accuracy", "{:.4f}"),
    ("hd95", "HD95 (mm)", "{:.2f}"),
    ("assd", "ASSD (mm)", "{:.3f}"),
    ("volume_diff_ml", "ΔV (mL)", "{:+.2f}"),
    ("volume_diff_pct", "ΔV (%)", "{:+.1f}"),
    ("runtime_s", "runtime (s)", "{:.2f}"),
    ("peak_memory_mb", "peak memory (MB)", "{:.0f}"),
    ("misses", "misses", "{}"),
]

#: Keys that are not metrics averaged over labels.
_NOT_AVERAGED = {"method", "label", "value", "runtime_s", "peak_memory_mb", "misses"}


class MethodRun:
    """A method's labels with its runtime and peak memory (either may be unknown)."""

    def __init__(self, labels: LabelMap, runtime_s: float | None = None,
                 peak_memory_bytes: int | None = None) -> None:
        self.labels = labels
        self.runtime_s = runtime_s
        self.peak_memory_bytes = peak_memory_bytes


def comparison_rows(
    runs: Mapping[str, MethodRun | LabelMap],
    truth: LabelMap,
    *,
    labels: Sequence[int] = (1, 2, 3),
    surface: bool = True,
) -> list[dict[str, Any]]:
    """One row per method and label, plus a ``mean`` row per method."""
    rows: list[dict[str, Any]] = []
    for name, run in runs.items():
        if isinstance(run, LabelMap):
            run = MethodRun(run)
        if not run.labels.same_grid(truth):
            raise ValueError(f"{name}: labels are not on the ground truth's grid")
        per_label = evaluate_labels(run.labels.array, truth.array, labels,
                                    spacing=truth.spacing, surface=surface)
        extra = {
            "runtime_s": run.runtime_s if run.runtime_s is not None else float("nan"),
            "peak_memory_mb": (run.peak_memory_bytes / 1024**2
                               if run.peak_memory_bytes is not None else float("nan")),
        }
        for value, metrics in per_label.items():
            rows.append({"method": name, "label": truth.labels.name(value), "value": value,
                         **metrics, **extra})
        rows.append({"method": name, "label": "mean", "value": -1,
                     **_mean_row(per_label.values()), **extra})
    return rows


def _mean_row(per_label: Iterable[Mapping[str, float]]) -> dict[str, Any]:
    """Finite means over labels, and the ``misses`` text naming what was left out."""
    per_label = list(per_label)
    headers = {key: header for key, header, _ in COLUMNS}
    out: dict[str, Any] = {}
    misses = []
    for key in per_label[0] if per_label else ():
        if key in _NOT_AVERAGED:
            continue
        summary = finite_mean(m[key] for m in per_label)
        out[key] = summary.mean
        if summary.misses:
            misses.append(f"{headers.get(key, key)} {summary.misses}/{summary.total}")
    out["misses"] = ", ".join(misses)
    return out


def to_markdown(rows: Sequence[Mapping[str, Any]], *, columns: Sequence[str] | None = None) -> str:
    """A Markdown table of *rows* (all :data:`COLUMNS` unless *columns* is given)."""
    return tables.markdown_table(rows, [c for c in COLUMNS if columns is None or c[0] in columns])


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write *rows* as CSV with the keys of :data:`COLUMNS` (full precision), atomically."""
    return tables.write_csv(rows, path, columns=[k for k, _, _ in COLUMNS])


def _aspect(spacing: Sequence[float], plane: str) -> float:
    """Height / width of one pixel of *plane* on screen."""
    geometry = plane_geometry(plane)
    return float(spacing[geometry.y_axis] / spacing[geometry.x_axis])


def _default_slices(truth: LabelMap) -> dict[str, int]:
    idx = np.argwhere(truth.array > 0)
    centre = idx.mean(axis=0).round().astype(int) if idx.size else np.array(truth.shape) // 2
    return {"sagittal": int(centre[0]), "coronal": int(centre[1]), "axial": int(centre[2])}


def montage(
    volume: Volume,
    layers: Mapping[str, LabelMap],
    truth: LabelMap | None,
    path: str | Path,
    *,
    slices: Mapping[str, int] | None = None,
    planes: Sequence[str] = ("axial", "coronal", "sagittal"),
    dice: Mapping[str, float] | None = None,
    alpha: float = 0.55,
) -> Path:
    """Save a PNG grid: rows are planes, columns the image, the truth and each method."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ref = truth if truth is not None else next(iter(layers.values()))
    slices = dict(slices or _default_slices(ref))
    columns: list[tuple[str, LabelMap | None]] = [("image", None)]
    if truth is not None:
        columns.append(("ground truth", truth))
    columns += list(layers.items())
    table = ref.labels
    top = max(int(max(lm.array.max() for _, lm in columns if lm is not None)), 1)
    lut = np.zeros((top + 1, 4))
    for v in range(1, top + 1):
        lut[v, :3] = np.array(table.color(v)) / 255.0
        lut[v, 3] = alpha
    data = volume.array.astype(np.float32)
    lo, hi = np.percentile(data[data > data.min()] if (data > data.min()).any() else data,
                           [1, 99.5])
    fig, axes = plt.subplots(len(planes), len(columns),
                             figsize=(2.3 * len(columns), 2.4 * len(planes)), squeeze=False,
                             facecolor="black")
    for r, plane in enumerate(planes):
        image = image_slice(data, plane, slices[plane])
        aspect = _aspect(volume.spacing, plane)
        for c, (title, lm) in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, aspect=aspect,
                      interpolation="nearest")
            if lm is not None:
                ax.imshow(lut[image_slice(lm.array, plane, slices[plane])], aspect=aspect,
                          interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                label = title
                if dice and title in dice:
                    label = f"{title}\nDice {dice[title]:.3f}"
                ax.set_title(label, color="white", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{plane} {slices[plane]}", color="white", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, facecolor="black", format="png")
    plt.close(fig)
    return Path(path)
