"""What a findings report says, gathered once for the HTML and the PDF renderers.

:func:`gather` turns an image, its label map, the findings and the model card
into a :class:`ReportContent` of plain rows of text; :func:`draw_key_image`
draws the key image of one lesion (the measuring slice with the lesion's
outline and its two diameters) on a matplotlib figure. Both renderers
(:mod:`~engine.reports.html`, :mod:`~engine.reports.pdf`) only lay these out.

No patient identifier enters a report unless asked for: the image is described
by its modality, grid and series description only.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..core.errors import ParameterError
from ..core.volume import LabelMap, Volume
from ..display import auto_window, extract_slice, label_volumes, plane_geometry
from ..lesions import LESION_VALUE, Finding, lesion_instances

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn: the CLI starts faster
    from matplotlib.figure import Figure

__all__ = [
    "NO_LESIONS",
    "ReportContent",
    "draw_key_image",
    "gather",
    "model_card_summary",
]

#: The sentence every report shows when the label map holds no lesion.
NO_LESIONS = "No lesions: the label map holds no voxel of the lesion label."

#: Metadata keys that may identify a patient or a study; shown only when asked for.
_IDENTIFYING_KEYS = ("patient_name", "patient_id", "patient_birth_date", "patient_sex",
                     "accession_number", "study_uid", "series_uid", "study_date",
                     "institution_name")

_PLANES = {2: "axial", 1: "coronal", 0: "sagittal"}

FINDINGS_HEADER = ("Lesion", "Volume (mL)", "Longest axial (mm)", "Perpendicular (mm)",
                   "3-D diameter (mm)", "Centroid R, A, S (mm)", "Slice", "Tissue",
                   "Contrast (ratio)", "Confidence")
TISSUE_HEADER = ("Value", "Label", "Voxels", "Volume (mL)")


@dataclass
class ReportContent:
    """Everything a report shows, as text rows (renderers add no facts of their own)."""

    title: str
    created: str
    header: list[tuple[str, str]]
    warnings: list[str]
    model_card: list[tuple[str, str]] | None
    tissue_rows: list[tuple[str, ...]]
    findings_rows: list[tuple[str, ...]]
    findings: list[Finding]
    image: Volume
    instances: np.ndarray
    window: tuple[float, float]
    notes: list[str] = field(default_factory=list)


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _card_rows(cards: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
               ) -> list[tuple[str, str]] | None:
    """The summaries of one card or of several, one after the other; None for none."""
    if cards is None:
        return None
    if isinstance(cards, Mapping):
        return model_card_summary(cards)
    rows = [row for card in cards for row in model_card_summary(card)]
    return rows or None


def model_card_summary(card: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Name, version and training data of a model card, in words.

    Reads Delineo's model cards (``name``, ``software.delineo``,
    ``training.data_recipe.source``) and accepts cards that state ``version``
    and ``training_data`` directly.
    """
    training = card.get("training") if isinstance(card.get("training"), Mapping) else {}
    recipe = training.get("data_recipe") if isinstance(training.get("data_recipe"),
                                                       Mapping) else {}
    software = card.get("software") if isinstance(card.get("software"), Mapping) else {}
    architecture = (card.get("architecture") if isinstance(card.get("architecture"), Mapping)
                    else {})
    name = card.get("name") or architecture.get("name") or "not recorded"
    version = card.get("version") or (f"Delineo {software['delineo']}" if software.get("delineo")
                                      else "not recorded")
    data = card.get("training_data") or recipe.get("source") or "not recorded"
    rows = [("Model", str(name)), ("Version", str(version)), ("Training data", str(data))]
    if card.get("intended_use"):
        rows.append(("Intended use", str(card["intended_use"])))
    if training.get("steps"):
        start = training.get("initialised_from")
        more = ""
        if isinstance(start, Mapping):  # a stage that continued earlier weights
            more = (f" (continuing the weights {start.get('file', '?')}, sha256 "
                    f"{str(start.get('sha256', '?'))[:12]}..., trained before)")
        rows.append(("Training steps", f"{training['steps']}{more}"))
    return rows


def _header(image: Volume, labels: LabelMap, include_identifiers: bool) -> list[tuple[str, str]]:
    meta = image.metadata
    description = meta.get("series_description") or meta.get("description") or "not recorded"
    rows = [
        ("Image", str(description)),
        ("Modality", str(image.modality)),
        ("Grid", " x ".join(str(n) for n in image.shape) + " voxels, "
         + " x ".join(f"{s:g}" for s in image.spacing) + " mm"),
        ("Orientation", "".join(image.axcodes) + " (array axes; world RAS+)"),
    ]
    if meta.get("body_part"):
        rows.append(("Body part", str(meta["body_part"])))
    if labels.metadata.get("description"):
        rows.append(("Label map", str(labels.metadata["description"])))
    if include_identifiers:
        for key in _IDENTIFYING_KEYS:
            if meta.get(key):
                rows.append((key.replace("_", " ").capitalize(), str(meta[key])))
    return rows


def _check_instances(findings: Sequence[Finding], instances: np.ndarray) -> None:
    counts = np.bincount(instances.reshape(-1).astype(np.int64),
                         minlength=max([f.id for f in findings], default=0) + 1)
    for f in findings:
        if counts[f.id] != f.voxel_count:
            raise ParameterError(
                f"the findings do not match the lesions of the label map (lesion {f.id}: "
                f"{f.voxel_count} voxels in the findings, {int(counts[f.id])} in the map); "
                "pass the instance map they were measured on")


def gather(
    *,
    image: Volume,
    labels: LabelMap,
    findings: Sequence[Finding],
    model_card: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    warnings: Iterable[str] = (),
    title: str,
    instances: np.ndarray | None = None,
    lesion_value: int = LESION_VALUE,
    include_identifiers: bool = False,
) -> ReportContent:
    """Collect the content of a findings report (checked against the label map).

    *model_card* is the card of the network that made the labels, or the cards of
    several (a pipeline's tissue, brain-extraction and lesion networks, in order):
    their summaries follow each other."""
    if not labels.same_grid(image):
        from ..core.errors import GeometryMismatchError

        raise GeometryMismatchError("the label map does not lie on the image grid",
                                    differences=image.grid_differences(labels))
    if instances is None:
        instances = lesion_instances(labels, lesion_value=lesion_value)
    instances = np.asarray(instances)
    if instances.shape != image.shape:
        raise ParameterError(f"the instance map has shape {instances.shape}, "
                             f"the image {image.shape}")
    _check_instances(findings, instances)

    tissue_rows = []
    for value, (count, ml) in sorted(label_volumes(labels.array, labels.voxel_volume_ml).items()):
        if value == 0:
            continue
        tissue_rows.append((str(value), labels.labels.name(value), str(count), f"{ml:.2f}"))

    findings_rows = []
    for f in findings:
        findings_rows.append((
            str(f.id), f"{f.volume_ml:.3f}", _fmt(f.axial_diameter_mm, 1),
            _fmt(f.perpendicular_diameter_mm, 1), _fmt(f.diameter_3d_mm, 1),
            ", ".join(f"{v:.1f}" for v in f.world_centroid_mm),
            f"{'ijk'[f.slice_axis]}={f.slice_index}", f.tissue or "-",
            _fmt(f.contrast_ratio, 2), _fmt(f.confidence, 2),
        ))

    all_warnings: list[str] = []
    for w in [*warnings, *(f"image: {w}" for w in image.metadata.get("warnings", []) or [])]:
        w = " ".join(str(w).split())
        if w and w not in all_warnings:
            all_warnings.append(w)
    notes = []
    tilts = {round(f.slice_tilt_deg, 1) for f in findings}
    if any(t > 0.5 for t in tilts):
        notes.append(f"Axial diameters are measured in the acquired slices, which are tilted "
                     f"{max(tilts):.1f} degrees from the axial plane.")
    return ReportContent(
        title=title,
        created=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        header=[*_header(image, labels, include_identifiers),
                ("Software", f"Delineo {__version__}")],
        warnings=all_warnings,
        model_card=_card_rows(model_card),
        tissue_rows=tissue_rows,
        findings_rows=findings_rows,
        findings=list(findings),
        image=image,
        instances=instances,
        window=auto_window(np.asarray(image.array), image.modality),
        notes=notes,
    )


def _outline_segments(mask: np.ndarray) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """Pixel edges between a 2-D mask (rows y, columns x) and its outside, in pixel coordinates."""
    m = np.pad(mask.astype(bool), 1)
    segments = []
    ys, xs = np.nonzero(m[1:, 1:-1] != m[:-1, 1:-1])  # horizontal edges below row y
    for y, x in zip(ys, xs, strict=True):
        segments.append(((x - 0.5, y - 0.5), (x + 0.5, y - 0.5)))
    ys, xs = np.nonzero(m[1:-1, 1:] != m[1:-1, :-1])  # vertical edges left of column x
    for y, x in zip(ys, xs, strict=True):
        segments.append(((x - 0.5, y - 0.5), (x - 0.5, y + 0.5)))
    return segments


def draw_key_image(fig: Figure, content: ReportContent, finding: Finding,
                   rect: tuple[float, float, float, float] = (0.03, 0.05, 0.94, 0.85)) -> None:
    """Draw the key image of *finding* on *fig* inside *rect* (figure fractions).

    Two panels: the whole measuring slice with a box round the lesion, and a
    zoom on the lesion with its outline (voxel edges, red), the longest axial
    diameter (yellow) and the perpendicular diameter (cyan). Radiological
    convention (the patient's right on the left of the screen).
    """
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Rectangle

    axis = finding.slice_axis
    geo = plane_geometry(_PLANES[axis])
    image = np.asarray(content.image.array)
    sl = extract_slice(image, geo, finding.slice_index)
    mask = extract_slice(content.instances == finding.id, geo, finding.slice_index)
    spacing = content.image.spacing
    aspect = spacing[geo.y_axis] / spacing[geo.x_axis]
    lo, hi = content.window
    x0, y0, w, h = rect
    axes = [fig.add_axes((x0, y0, w * 0.48, h)), fig.add_axes((x0 + w * 0.52, y0, w * 0.48, h))]
    ys, xs = np.nonzero(mask)
    margin = max(6.0, 0.6 * max(np.ptp(xs) if len(xs) else 0, np.ptp(ys) if len(ys) else 0))
    box = (xs.min() - margin, xs.max() + margin, ys.min() - margin, ys.max() + margin)
    for n, ax in enumerate(axes):
        ax.imshow(sl, cmap="gray", vmin=lo, vmax=hi, origin="lower", aspect=aspect,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if n == 0:
            ax.add_patch(Rectangle((box[0], box[2]), box[1] - box[0], box[3] - box[2],
                                   fill=False, edgecolor="#ff4040", linewidth=1.0))
            ax.set_title(f"{geo.name.capitalize()} slice {'ijk'[axis]}={finding.slice_index}",
                         fontsize=9)
        else:
            ax.add_collection(LineCollection(_outline_segments(mask), colors="#ff3030",
                                             linewidths=1.2))
            for ends, colour in ((finding.axial_diameter_ends, "#ffe030"),
                                 (finding.perpendicular_diameter_ends, "#30e0ff")):
                ax.plot([ends[0][geo.x_axis], ends[1][geo.x_axis]],
                        [ends[0][geo.y_axis], ends[1][geo.y_axis]], color=colour,
                        linewidth=1.6, marker="o", markersize=3)
            ax.set_xlim(box[0], box[1])
            ax.set_ylim(box[2], box[3])
            ax.set_title(f"Lesion {finding.id}: {finding.axial_diameter_mm:.1f} x "
                         f"{finding.perpendicular_diameter_mm:.1f} mm", fontsize=9)
        if geo.flip_x:
            ax.invert_xaxis()
        for where, (x, y, ha, va) in {"left": (0.01, 0.5, "left", "center"),
                                      "right": (0.99, 0.5, "right", "center"),
                                      "top": (0.5, 0.99, "center", "top"),
                                      "bottom": (0.5, 0.01, "center", "bottom")}.items():
            ax.text(x, y, geo.letters[where], transform=ax.transAxes, color="#ffd000",
                    fontsize=8, ha=ha, va=va,
                    bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.0, "linewidth": 0})
