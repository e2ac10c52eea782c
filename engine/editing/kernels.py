"""Editing kernels for label maps: brush, eraser, flood fill, island clean-up.

Every kernel changes the label array **in place** and returns a sparse
:class:`Diff` -- bounding box, changed-voxel mask, old and new values -- or
``None`` when nothing changed. Diffs feed the undo history
(:mod:`engine.editing.history`), the live metrics (:mod:`engine.editing.live_metrics`), the
crash journal (:mod:`engine.editing.journal`) and the display (only the box is
redrawn). Costs follow the size of the edit, not of the volume, except for
3-D flood fill and component clean-up, which must look at the whole label.

The component clean-up kernels (:func:`remove_small_islands`,
:func:`keep_largest_component`) are thin wrappers that turn the array-level
primitives of :mod:`engine.methods.postprocess` into diffs; components are
face-connected (6-connectivity), as in the post-processing steps and the
default flood fill.

Paint modes decide which voxels a brush may change:

* ``"all"`` -- paint over everything;
* ``"background"`` -- only voxels that are 0;
* ``"label"`` -- only voxels holding ``only_label``.

Examples
--------
>>> import numpy as np
>>> labels = np.zeros((20, 20, 20), np.uint8)
>>> d = paint(labels, (10, 10, 10), radius_mm=3, value=2, spacing=(1, 1, 1), plane_axis=2)
>>> int(labels.sum() // 2) == d.count
True
>>> d.revert(labels); int(labels.sum())
0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..core.errors import ParameterError
from ..core.morphology import bounding_box
from ..methods.postprocess import largest_component, small_components

__all__ = [
    "PAINT_MODES",
    "Diff",
    "flood_fill",
    "keep_largest_component",
    "merge_diffs",
    "paint",
    "paint_stroke",
    "remove_small_islands",
    "replace_all",
]

PAINT_MODES = ("all", "background", "label")

Box = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


@dataclass
class Diff:
    """A sparse change of a label array.

    Attributes
    ----------
    box : ((i0, i1), (j0, j1), (k0, k1))
        Half-open bounding box of the change in array indices.
    mask : ndarray of bool, shape of the box
        Which voxels of the box changed.
    old, new : ndarray, 1-D
        Values before and after, for the changed voxels in C order of *mask*.
    """

    box: Box
    mask: np.ndarray
    old: np.ndarray
    new: np.ndarray

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in self.box)  # type: ignore[return-value]

    @property
    def count(self) -> int:
        return int(self.old.size)

    @property
    def nbytes(self) -> int:
        """Memory held by this diff (mask stored packed in the history)."""
        return int(self.mask.size // 8 + 1 + self.old.nbytes + self.new.nbytes + 64)

    def apply(self, labels: np.ndarray) -> None:
        """Write the new values (redo)."""
        labels[self.slices][self.mask] = self.new

    def revert(self, labels: np.ndarray) -> None:
        """Write the old values back (undo)."""
        labels[self.slices][self.mask] = self.old

    def inverse(self) -> Diff:
        return Diff(self.box, self.mask, self.new, self.old)


def _diff_from_selection(
    labels: np.ndarray, box: Box, select: np.ndarray | None, new_values: np.ndarray | int
) -> Diff | None:
    """Build and apply the diff that sets ``labels[box][select] = new_values``
    (*select* None: the whole box)."""
    sl = tuple(slice(a, b) for a, b in box)
    region = labels[sl]
    new = np.broadcast_to(np.asarray(new_values, dtype=labels.dtype), region.shape)
    changed = region != new
    if select is not None:
        changed &= select
    if not changed.any():
        return None
    # Shrink the box to the changed voxels so the diff is as small as possible (by
    # reductions along the axes: no index arrays of a whole volume's changes).
    inner = bounding_box(changed)
    lo = [s.start for s in inner]
    hi = [s.stop for s in inner]
    mask = np.ascontiguousarray(changed[inner])
    old = region[inner][mask].copy()
    new_vals = np.ascontiguousarray(new[inner][mask]).copy()
    region[inner][mask] = new_vals
    tight: Box = tuple((box[d][0] + lo[d], box[d][0] + hi[d]) for d in range(3))  # type: ignore[assignment]
    return Diff(tight, mask, old, new_vals)


def _ball_box(
    shape: Sequence[int], center: Sequence[float], radius_mm: float, spacing: Sequence[float],
    plane_axis: int | None,
) -> tuple[Box, np.ndarray] | None:
    """Box and boolean footprint of a sphere (or a disk in the plane normal to plane_axis)."""
    c = np.asarray(center, dtype=float)
    sp = np.asarray(spacing, dtype=float)
    half = np.floor(radius_mm / sp + 1e-9).astype(int)
    if plane_axis is not None:
        half[plane_axis] = 0
    ci = np.rint(c).astype(int)
    lo = np.maximum(ci - half, 0)
    hi = np.minimum(ci + half + 1, np.asarray(shape))
    if np.any(hi <= lo):
        return None
    grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    dist2 = sum(((g - c[d]) * sp[d]) ** 2 for d, g in enumerate(grids) if d != plane_axis)
    r2 = max(radius_mm, 0.5 * float(sp.min())) ** 2
    foot = np.broadcast_to(dist2 <= r2 + 1e-9, tuple(hi - lo)).copy()
    box: Box = tuple((int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[assignment]
    return box, foot


def _allowed(
    region: np.ndarray,
    mode: str,
    only_label: int | None,
    intensity: np.ndarray | None,
    intensity_range: tuple[float, float] | None,
) -> np.ndarray:
    if mode not in PAINT_MODES:
        raise ValueError(f"paint mode must be one of {PAINT_MODES}, not {mode!r}")
    if mode == "all":
        ok = np.ones(region.shape, bool)
    elif mode == "background":
        ok = region == 0
    else:
        if only_label is None:
            raise ValueError("paint mode 'label' needs only_label")
        ok = region == only_label
    if intensity_range is not None:
        if intensity is None:
            raise ValueError("threshold-limited painting needs the intensity image")
        lo, hi = intensity_range
        ok &= (intensity >= lo) & (intensity <= hi)
    return ok


def paint(
    labels: np.ndarray,
    center: Sequence[float],
    *,
    radius_mm: float,
    value: int,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    plane_axis: int | None = None,
    mode: str = "all",
    only_label: int | None = None,
    image: np.ndarray | None = None,
    intensity_range: tuple[float, float] | None = None,
) -> Diff | None:
    """Paint *value* in a sphere (``plane_axis=None``) or a disk in one plane.

    Parameters
    ----------
    labels : ndarray
        Label array, changed in place.
    center : sequence of float
        Voxel coordinates of the brush centre.
    radius_mm : float
        Brush radius in millimetres (at least half a voxel is always painted).
    value : int
        Label to paint; 0 erases.
    plane_axis : int, optional
        For a 2-D brush, the array axis normal to the view plane.
    mode, only_label
        Which voxels may change (see module docs).
    image, intensity_range
        Threshold-limited painting: only voxels with ``lo <= image <= hi``.
    """
    found = _ball_box(labels.shape, center, radius_mm, spacing, plane_axis)
    if found is None:
        return None
    box, foot = found
    sl = tuple(slice(a, b) for a, b in box)
    region = labels[sl]
    sub_img = image[sl] if image is not None else None
    select = foot & _allowed(region, mode, only_label, sub_img, intensity_range)
    return _diff_from_selection(labels, box, select, value)


def paint_stroke(
    labels: np.ndarray,
    start: Sequence[float],
    end: Sequence[float],
    **kwargs: object,
) -> Diff | None:
    """Paint along the segment from *start* to *end* (voxel coordinates).

    Brush stamps are placed at most half a radius apart so the stroke has no
    gaps; all stamps are merged into one diff (one stroke segment).
    """
    spacing = np.asarray(kwargs.get("spacing", (1.0, 1.0, 1.0)), dtype=float)
    radius = float(kwargs["radius_mm"])  # type: ignore[arg-type]
    a = np.asarray(start, dtype=float)
    b = np.asarray(end, dtype=float)
    length_mm = float(np.linalg.norm((b - a) * spacing))
    step = max(radius * 0.5, float(spacing.min()) * 0.5)
    n = max(1, int(np.ceil(length_mm / step)))
    diffs = []
    for t in np.linspace(0.0, 1.0, n + 1):
        d = paint(labels, a + (b - a) * t, **kwargs)  # type: ignore[arg-type]
        if d is not None:
            diffs.append(d)
    return merge_diffs(diffs, labels)


def merge_diffs(diffs: Sequence[Diff], labels: np.ndarray) -> Diff | None:
    """Combine consecutive diffs (already applied to *labels*) into one.

    Old values come from the first diff that touched a voxel; new values are
    the current contents of *labels*. Voxels that ended where they started
    are dropped.
    """
    diffs = [d for d in diffs if d is not None]
    if not diffs:
        return None
    if len(diffs) == 1:
        return diffs[0]
    lo = np.min([[r[0] for r in d.box] for d in diffs], axis=0)
    hi = np.max([[r[1] for r in d.box] for d in diffs], axis=0)
    shape = tuple(hi - lo)
    mask = np.zeros(shape, bool)
    old = np.zeros(shape, labels.dtype)
    for d in diffs:
        inner = tuple(slice(r[0] - l0, r[1] - l0) for r, l0 in zip(d.box, lo, strict=True))
        sub_mask = mask[inner]
        sub_old = old[inner]
        fresh = d.mask & ~sub_mask
        vals = np.zeros(d.mask.shape, labels.dtype)
        vals[d.mask] = d.old
        sub_old[fresh] = vals[fresh]
        sub_mask |= d.mask
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    current = labels[sl]
    mask &= current != old
    if not mask.any():
        return None
    idx = np.nonzero(mask)
    a = [int(i.min()) for i in idx]
    b = [int(i.max()) + 1 for i in idx]
    inner = tuple(slice(x, y) for x, y in zip(a, b, strict=True))
    tight_mask = np.ascontiguousarray(mask[inner])
    box: Box = tuple((int(lo[d] + a[d]), int(lo[d] + b[d])) for d in range(3))  # type: ignore[assignment]
    return Diff(box, tight_mask, old[inner][tight_mask].copy(), current[inner][tight_mask].copy())


def flood_fill(
    labels: np.ndarray,
    seed: Sequence[int],
    value: int,
    *,
    plane_axis: int | None = None,
    image: np.ndarray | None = None,
    tolerance: float | None = None,
    connectivity: int = 1,
) -> Diff | None:
    """Fill the connected region under *seed* with *value*.

    The region is the voxels connected to the seed (face neighbours with
    ``connectivity=1``) that hold the seed's label and, with *tolerance*,
    whose intensity is within ``tolerance`` of the seed's intensity.
    ``plane_axis`` restricts the fill to the slice through the seed.

    Raises
    ------
    ParameterError
        If the seed is outside the volume, or is not itself part of the
        region to fill: a negative or NaN *tolerance*, or a NaN intensity at
        the seed. (Without this check the fill would take everything *but*
        the seed's region.)
    """
    seed = tuple(int(s) for s in seed)
    if len(seed) != labels.ndim or any(
            not 0 <= s < n for s, n in zip(seed, labels.shape, strict=True)):
        raise ParameterError(f"fill seed {seed} is outside the volume {labels.shape}")
    if tolerance is not None:
        if image is None:
            raise ValueError("an intensity tolerance needs the intensity image")
        if image.shape != labels.shape:
            raise ValueError(f"image shape {image.shape} differs from {labels.shape}")
        if not float(tolerance) >= 0:  # also refuses NaN
            raise ParameterError(f"fill tolerance must be 0 or more, not {tolerance}")
        if math.isnan(float(image[seed])):
            raise ParameterError(f"the image has no intensity (NaN) at the fill seed {seed}")
    if plane_axis is None:
        box: Box = ((0, labels.shape[0]), (0, labels.shape[1]), (0, labels.shape[2]))
    else:
        rng = [(0, n) for n in labels.shape]
        rng[plane_axis] = (seed[plane_axis], seed[plane_axis] + 1)
        box = tuple(rng)  # type: ignore[assignment]
    sl = tuple(slice(a, b) for a, b in box)
    region = labels[sl]
    local_seed = tuple(s - b[0] for s, b in zip(seed, box, strict=True))
    candidate = region == region[local_seed]
    if tolerance is not None:
        sub = image[sl].astype(np.float32)
        candidate &= np.abs(sub - float(sub[local_seed])) <= tolerance
    if not candidate[local_seed]:  # whatever the reason: never fill the complement
        raise ParameterError(f"the fill seed {seed} is not part of the region to fill")
    structure = ndimage.generate_binary_structure(3, connectivity)
    if plane_axis is not None:
        keep = [slice(None)] * 3
        keep[plane_axis] = 1
        flat = np.zeros_like(structure)
        flat[tuple(keep)] = structure[tuple(keep)]
        structure = flat
    # Label only within the candidates' bounding box around the seed's component.
    comp, _ = ndimage.label(candidate, structure=structure)
    select = comp == comp[local_seed]
    return _diff_from_selection(labels, box, select, value)


def _full_box(shape: Sequence[int]) -> Box:
    return tuple((0, int(n)) for n in shape)  # type: ignore[return-value]


def remove_small_islands(labels: np.ndarray, value: int, *, min_voxels: int) -> Diff | None:
    """Set to 0 every face-connected component of *value* smaller than *min_voxels*.

    The components are those of :func:`engine.methods.postprocess.small_components`.
    """
    small = small_components(labels == value, min_voxels)
    if not small.any():
        return None
    return _diff_from_selection(labels, _full_box(labels.shape), small, 0)


def keep_largest_component(labels: np.ndarray, value: int) -> Diff | None:
    """Keep only the largest face-connected component of *value*; the rest becomes 0.

    The component is that of :func:`engine.methods.postprocess.largest_component`.
    """
    mask = labels == value
    drop = mask & ~largest_component(mask)
    if not drop.any():
        return None
    return _diff_from_selection(labels, _full_box(labels.shape), drop, 0)


def replace_all(labels: np.ndarray, new_labels: np.ndarray) -> Diff | None:
    """Replace the whole label array (e.g. by an algorithm's result) as one diff."""
    if new_labels.shape != labels.shape:
        raise ValueError(f"shape {new_labels.shape} differs from {labels.shape}")
    return _diff_from_selection(labels, _full_box(labels.shape), None,
                                new_labels.astype(labels.dtype, copy=False))
