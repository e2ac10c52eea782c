"""Display arithmetic for slice viewers: planes, windows, label colours, outlines.

Everything a viewer needs to compute before it paints, kept free of any GUI
toolkit so that it can be tested (and reused by scripts that render figures).

* :func:`plane_geometry` -- which array axes a plane shows, which way is up,
  and the orientation letters on its edges, for the radiological or the
  neurological convention.
* :func:`extract_slice` -- the 2-D slice of a canonical RAS+ array, as rows
  (screen y) by columns (screen x); :func:`image_slice` -- the same slice as
  the pixels of a picture (row 0 at the top, left-right as on screen), for
  figures written by Delineo (comparison montage, benchmark figure).
* :func:`auto_window`, :func:`percentile_window`, :data:`CT_PRESETS` --
  display windows; intensities themselves are never rescaled.
* :func:`label_lut`, :func:`label_rgba`, :func:`label_outline` -- RGBA
  overlays from a label table through a ``uint8`` look-up table.

Screen convention (that of 3D Slicer and ITK-SNAP): anterior is up in the axial
plane, superior is up in the coronal and sagittal planes, anterior is on the
left of sagittal slices. *Radiological* puts the patient's right on the left
of the screen (as if facing the patient); *neurological* puts it on the right.

Examples
--------
>>> geo = plane_geometry("axial", "radiological")
>>> geo.normal_axis, geo.x_axis, geo.y_axis, geo.flip_x
(2, 0, 1, True)
>>> geo.letters
{'left': 'R', 'right': 'L', 'top': 'A', 'bottom': 'P'}
>>> window_to_range(80, 40)
(0.0, 80.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .core.volume import Label, LabelTable, value_counts

__all__ = [
    "CONVENTIONS",
    "CT_PRESETS",
    "DIFFERENCE_LABELS",
    "PLANES",
    "PlaneGeometry",
    "WindowPreset",
    "auto_window",
    "difference_map",
    "drag_window",
    "extract_slice",
    "histogram",
    "image_slice",
    "label_lut",
    "label_outline",
    "label_rgba",
    "label_volumes",
    "looks_like_ct",
    "percentile_window",
    "plane_geometry",
    "range_to_window",
    "window_to_range",
]

Plane = Literal["axial", "coronal", "sagittal"]
Convention = Literal["radiological", "neurological"]

PLANES: tuple[str, str, str] = ("axial", "coronal", "sagittal")
CONVENTIONS: tuple[str, str] = ("radiological", "neurological")

#: Largest number of voxels a window or histogram estimate looks at.
MAX_SAMPLES = 1_000_000
#: Largest label look-up table; values above it are drawn transparent.
MAX_LUT_SIZE = 65536


# ---------------------------------------------------------------------------
# Planes
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PlaneGeometry:
    """How one orthogonal plane of a RAS+ array appears on screen.

    Attributes
    ----------
    name : str
        ``"axial"``, ``"coronal"`` or ``"sagittal"``.
    normal_axis : int
        Array axis across which the plane slices (the slice index axis).
    x_axis, y_axis : int
        Array axes shown along screen x (columns) and screen y (rows). Screen y
        always points up (anterior or superior).
    flip_x : bool
        True when screen x runs opposite to the array axis (array index
        increases towards the left of the screen).
    letters : dict
        Orientation letters on the ``left``, ``right``, ``top``, ``bottom`` edges.
    """

    name: str
    normal_axis: int
    x_axis: int
    y_axis: int
    flip_x: bool
    letters: Mapping[str, str]


_POSITIVE = ("R", "A", "S")
_NEGATIVE = ("L", "P", "I")
_NORMALS = {"axial": 2, "coronal": 1, "sagittal": 0}


def plane_geometry(plane: str, convention: str = "radiological") -> PlaneGeometry:
    """Screen geometry of *plane* under *convention* (see the module docstring).

    Examples
    --------
    >>> plane_geometry("sagittal").letters["left"]
    'A'
    """
    if plane not in _NORMALS:
        raise ValueError(f"unknown plane {plane!r}; expected one of {PLANES}")
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; expected one of {CONVENTIONS}")
    normal = _NORMALS[plane]
    x_axis, y_axis = (a for a in range(3) if a != normal)
    # Left-right on screen: radiological shows the patient's right on the left.
    # Sagittal: anterior on the left of the screen whatever the convention.
    flip_x = convention == "radiological" if x_axis == 0 else True
    left, right = (_POSITIVE[x_axis], _NEGATIVE[x_axis])
    if not flip_x:
        left, right = right, left
    letters = {"left": left, "right": right, "top": _POSITIVE[y_axis], "bottom": _NEGATIVE[y_axis]}
    return PlaneGeometry(plane, normal, x_axis, y_axis, flip_x, letters)


def extract_slice(array: np.ndarray, geometry: PlaneGeometry, index: int) -> np.ndarray:
    """The slice *index* of a 3-D RAS+ *array*, as ``(rows=y, cols=x)``, with y up.

    Row 0 is the lowest screen row (posterior or inferior): a viewer whose y
    axis points up draws it right-side-up. The result is a view, not a copy.

    Examples
    --------
    >>> a = np.arange(24).reshape(2, 3, 4)
    >>> extract_slice(a, plane_geometry("axial"), 1).shape
    (3, 2)
    """
    n = array.shape[geometry.normal_axis]
    if not 0 <= index < n:
        raise IndexError(f"slice {index} out of range 0..{n - 1} for the {geometry.name} plane")
    key: list[slice | int] = [slice(None)] * 3
    key[geometry.normal_axis] = int(index)
    # The remaining axes keep their order (x_axis < y_axis in every plane): transpose to (y, x).
    return array[tuple(key)].T


def image_slice(
    array: np.ndarray, plane: str, index: int, *, convention: str = "radiological"
) -> np.ndarray:
    """The slice *index* of a 3-D RAS+ *array* as a picture: row 0 at the top.

    The slice of :func:`extract_slice`, with its rows reversed (screen y up
    becomes image row 0 at the top, as ``matplotlib.pyplot.imshow`` and PNG
    files expect) and its columns reversed where the plane's screen x runs
    against the array axis. Axial, radiological: anterior up, the patient's
    right on the left. The result is a view, not a copy.

    Examples
    --------
    >>> a = np.zeros((3, 4, 2)); a[0, 3, 1] = 1  # the patient's left, most anterior
    >>> np.argwhere(image_slice(a, "axial", 1)).tolist()  # top row, right edge
    [[0, 2]]
    """
    geometry = plane_geometry(plane, convention)
    sl = extract_slice(array, geometry, index)
    return sl[::-1, ::-1] if geometry.flip_x else sl[::-1, :]


# ---------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowPreset:
    """A named display window: *width* and *level* (centre), in the image's units."""

    name: str
    width: float
    level: float

    @property
    def range(self) -> tuple[float, float]:
        return window_to_range(self.width, self.level)


#: Standard CT windows in Hounsfield units (width, level).
CT_PRESETS: dict[str, WindowPreset] = {
    p.name: p
    for p in (
        WindowPreset("Brain", 80.0, 40.0),
        WindowPreset("Subdural", 200.0, 75.0),
        WindowPreset("Lung", 1500.0, -600.0),
        WindowPreset("Bone", 1800.0, 400.0),
        WindowPreset("Abdomen", 400.0, 50.0),
    )
}


def window_to_range(width: float, level: float) -> tuple[float, float]:
    """``(low, high)`` display levels of a window of *width* centred on *level*."""
    half = max(float(width), 0.0) / 2.0
    return float(level) - half, float(level) + half


def range_to_window(low: float, high: float) -> tuple[float, float]:
    """``(width, level)`` of the display levels ``(low, high)``."""
    return float(high) - float(low), (float(high) + float(low)) / 2.0


def _sample(array: np.ndarray, max_samples: int = MAX_SAMPLES) -> np.ndarray:
    """A regular subsample of *array* (flattened) with at most *max_samples* values."""
    flat = array.reshape(-1)
    step = max(1, int(np.ceil(flat.size / max_samples)))
    return flat[::step]


def percentile_window(
    array: np.ndarray,
    low: float = 0.5,
    high: float = 99.5,
    *,
    ignore_background: bool = True,
    max_samples: int = MAX_SAMPLES,
) -> tuple[float, float]:
    """Display levels at the *low* and *high* percentiles of the voxel values.

    With *ignore_background*, voxels equal to the minimum (the air around a
    head in MR) are left out so they do not pull the window down. NaNs are
    ignored. At most *max_samples* regularly spaced voxels are looked at.

    Examples
    --------
    >>> percentile_window(np.arange(101.0), 0, 100, ignore_background=False)
    (0.0, 100.0)
    """
    values = _sample(np.asarray(array), max_samples).astype(np.float64, copy=False)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    if ignore_background:
        fore = values[values > values.min()]
        if fore.size >= max(16, values.size // 100):
            values = fore
    lo, hi = (float(v) for v in np.percentile(values, [low, high]))
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def looks_like_ct(array: np.ndarray) -> bool:
    """True when the values look like Hounsfield units (air near -1000, dense tissue)."""
    values = _sample(np.asarray(array), 200_000)
    if values.size == 0 or values.dtype.kind not in "iuf":
        return False
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    return lo <= -900.0 and hi >= 200.0


def auto_window(array: np.ndarray, modality: str = "unknown") -> tuple[float, float]:
    """Default display levels for a volume.

    CT (by modality, or values that look like Hounsfield units) opens in the
    soft-tissue (``Abdomen``) window; anything else (MR, PET, ...) in the 0.5-99.5
    percentile window of the non-background voxels.

    Examples
    --------
    >>> auto_window(np.array([-1000.0, 0.0, 1000.0]), "CT")
    (-150.0, 250.0)
    """
    if modality.upper() == "CT" or (modality in ("", "unknown") and looks_like_ct(array)):
        return CT_PRESETS["Abdomen"].range
    return percentile_window(array)


def drag_window(
    levels: tuple[float, float],
    dx: float,
    dy: float,
    *,
    data_range: tuple[float, float],
    pixels: float = 512.0,
) -> tuple[float, float]:
    """New display levels after a window/level drag of ``(dx, dy)`` screen pixels.

    Screen y grows downwards. Dragging right widens the window (less
    contrast); dragging up lowers the level (brighter). Dragging across
    *pixels* screen pixels changes the width or level by the full
    *data_range*. The width never goes below a tiny positive value.

    Examples
    --------
    >>> drag_window((0.0, 100.0), 0, 0, data_range=(0, 255))
    (0.0, 100.0)
    """
    width, level = range_to_window(*levels)
    span = max(float(data_range[1]) - float(data_range[0]), 1e-6)
    per_pixel = span / float(pixels)
    width = max(width + dx * per_pixel, span * 1e-4)
    level = level + dy * per_pixel
    return window_to_range(width, level)


def histogram(
    array: np.ndarray, bins: int = 256, *, max_samples: int = MAX_SAMPLES
) -> tuple[np.ndarray, np.ndarray]:
    """``(bin_centres, counts)`` of a regular subsample of the finite values."""
    values = _sample(np.asarray(array), max_samples)
    values = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if values.size == 0:
        return np.zeros(1), np.zeros(1)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        hi = lo + 1.0
    if values.dtype.kind in "iu":
        bins = int(min(bins, hi - lo + 1))
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    return (edges[:-1] + edges[1:]) / 2.0, counts


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------
def label_lut(
    table: LabelTable,
    size: int,
    *,
    values: Iterable[int] | None = None,
    hidden: Iterable[int] = (),
    alpha: int = 255,
) -> np.ndarray:
    """A ``(size, 4)`` ``uint8`` RGBA look-up table for label values ``0..size-1``.

    The entries of *table* and the extra *values* (default: every value below
    256) are coloured; values not in *table* get its stable generated colour.
    Background (0), *hidden* values and anything else are transparent.

    Examples
    --------
    >>> from engine.core.volume import BRAIN_TISSUE_LABELS
    >>> label_lut(BRAIN_TISSUE_LABELS, 4, hidden=[1])[:, 3].tolist()
    [0, 0, 255, 255]
    """
    size = int(max(1, min(size, MAX_LUT_SIZE)))
    lut = np.zeros((size, 4), np.uint8)
    wanted = set(range(1, min(size, 256)) if values is None else values)
    wanted.update(table)
    for value in (v for v in wanted if 0 < v < size):
        lut[value, :3] = table.color(value)
        lut[value, 3] = alpha
    for value in hidden:
        if 0 <= value < size:
            lut[value, 3] = 0
    return lut


def label_outline(labels: np.ndarray) -> np.ndarray:
    """Keep only the boundary pixels of each label region of a 2-D slice.

    A pixel is on the boundary when one of its four neighbours holds a
    different value; pixels on the slice edge count their outside neighbours
    as equal. Returns an array of the same dtype with 0 elsewhere.

    Examples
    --------
    >>> m = np.zeros((5, 5), np.uint8); m[1:4, 1:4] = 2
    >>> int(label_outline(m)[2, 2]), int(label_outline(m)[1, 2])
    (0, 2)
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError("label_outline expects a 2-D slice")
    edge = np.zeros(labels.shape, dtype=bool)
    diff_rows = labels[1:, :] != labels[:-1, :]
    diff_cols = labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= diff_rows
    edge[:-1, :] |= diff_rows
    edge[:, 1:] |= diff_cols
    edge[:, :-1] |= diff_cols
    return np.where(edge, labels, 0).astype(labels.dtype, copy=False)


def label_rgba(labels: np.ndarray, lut: np.ndarray, *, outline: bool = False) -> np.ndarray:
    """RGBA ``uint8`` image of a 2-D label slice through *lut* (see :func:`label_lut`).

    Values beyond the table are drawn transparent. With *outline*, only region
    boundaries are drawn.

    Examples
    --------
    >>> lut = np.array([[0, 0, 0, 0], [255, 0, 0, 255]], np.uint8)
    >>> label_rgba(np.array([[0, 1]]), lut)[0, 1].tolist()
    [255, 0, 0, 255]
    """
    labels = np.asarray(labels)
    if outline:
        labels = label_outline(labels)
    n = lut.shape[0]
    if labels.size and labels.max(initial=0) >= n:
        labels = np.where(labels < n, labels, 0)
    return lut[labels]


def label_volumes(array: np.ndarray, voxel_ml: float) -> dict[int, tuple[int, float]]:
    """``{value: (voxel count, volume in mL)}`` for every value present in *array*.

    Examples
    --------
    >>> label_volumes(np.array([0, 2, 2], np.uint8), 0.5)
    {0: (1, 0.5), 2: (2, 1.0)}
    """
    return {v: (c, float(c) * float(voxel_ml)) for v, c in value_counts(array).items()}


# ---------------------------------------------------------------------------
# Differences against a ground truth
# ---------------------------------------------------------------------------
#: Values of :func:`difference_map` with their names and colours (magenta, lime).
DIFFERENCE_LABELS = LabelTable.from_labels(
    [
        Label(0, "Agreement", (0, 0, 0)),
        Label(1, "False positive", (255, 40, 230)),
        Label(2, "False negative", (140, 255, 0)),
    ]
)


def difference_map(
    pred: np.ndarray, truth: np.ndarray, label: int | None = None
) -> np.ndarray:
    """Where *pred* disagrees with *truth*: 0 agreement, 1 false positive, 2 false negative.

    With *label* given, for that label only: false positive where
    ``pred == label`` and ``truth != label``, false negative where
    ``truth == label`` and ``pred != label``. With ``label=None``, over all
    labels: false positive where *pred* holds a label (non-zero) that
    differs from *truth* (a wrong or extra label), false negative where
    *truth* holds a label and *pred* is background (missed). Works on any
    matching pair of arrays or boxes of arrays (``uint8`` result).

    Examples
    --------
    >>> difference_map(np.array([0, 1, 1, 2, 0]), np.array([0, 1, 0, 1, 2])).tolist()
    [0, 0, 1, 1, 2]
    >>> difference_map(np.array([0, 1, 1, 2, 0]), np.array([0, 1, 0, 1, 2]), 1).tolist()
    [0, 0, 1, 2, 0]
    """
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    out = np.zeros(pred.shape, np.uint8)
    if label is None:
        wrong = pred != truth
        out[wrong & (pred != 0)] = 1
        out[wrong & (pred == 0)] = 2  # truth != 0 there, as pred != truth
    else:
        p, t = pred == label, truth == label
        out[p & ~t] = 1
        out[t & ~p] = 2
    return out
