"""Click-to-refine: grow or refine one label around a point or a box with an active contour.

The interactive counterpart of :mod:`engine.methods.active_contour`. The
contour works in a cube around the click (``reach`` mm each way; a click
changes only voxels within ``reach`` mm of it) or in the box, so a click
costs the size of the structure, not of the volume:

* **grow** -- a click on a voxel that does not hold the label starts a contour
  as a small sphere there (Chan--Vese region force, curvature, edge
  attraction) on the *similarity to the clicked structure*: a Gaussian of the
  intensity's distance to the sphere's median, in units of ``tolerance``
  robust standard deviations, so the contour fills the connected voxels that
  look like the click (a click in white matter does not spill into gray
  matter); every voxel it ends up holding takes the label;
* **refine** -- a click on a voxel that already holds the label moves that
  label's boundaries near the click: against the other labels present
  (:func:`~engine.methods.active_contour.refine_labels`, voxels that leave the
  label take the most likely neighbouring class), or, when the label is alone
  with the background, as a binary contour started from the label (voxels
  that leave it become background);
* **box** -- a box starts the contour, on the similarity to the box's centre
  (a ball of a quarter of the box's smallest side), and bounds it: the contour
  shrinks onto the structure in the box; the voxels it ends up holding take
  the label.

:func:`refine_at` only reads its inputs; it returns a :class:`LocalEdit`
(the region, the labels before and after) that :meth:`LocalEdit.apply_to`
turns into an undoable :class:`~engine.editing.kernels.Diff`, leaving alone any voxel
that was edited in the meantime. So the computation can run in a worker
thread while the user keeps editing.

Examples
--------
>>> import numpy as np
>>> from engine.core.volume import Volume
>>> img = np.zeros((40, 40, 12), np.float32); img[10:30, 10:30, 2:10] = 100.0
>>> labels = np.zeros(img.shape, np.uint8)
>>> edit = refine_at(Volume(img, np.eye(4)), labels, 2, seed=(20, 20, 6), device="cpu")
>>> edit.mode, edit.changed > 2000
('grow', True)
>>> diff = edit.apply_to(labels)
>>> int((labels == 2).sum()) == diff.count
True
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import ParameterError
from ..core.jobs import CancelToken, ProgressCallback
from ..core.params import param, validate
from ..core.volume import Volume
from ..methods.active_contour import (
    ActiveContourParams,
    active_contour,
    check_stability,
    refine_labels,
)
from ..methods.numerics import single_threaded_torch
from .kernels import Diff, replace_all

__all__ = ["ClickRefineParams", "LocalEdit", "refine_at", "seed_similarity"]

log = logging.getLogger(__name__)

Region = tuple[slice, slice, slice]


@dataclass(frozen=True)
class ClickRefineParams:
    """Parameters of click-to-refine (the other contour terms keep their defaults)."""

    reach: float = param(
        20.0, lo=2.0, hi=500.0, unit="mm",
        doc="a click changes voxels up to this distance from it",
    )
    iterations: int = param(150, lo=1, hi=10_000, doc="level-set time steps")
    seed_radius: float = param(
        3.0, lo=0.5, hi=100.0, unit="mm", doc="radius of the starting sphere of a click",
    )
    smoothness: float = param(
        0.2, lo=0.0, hi=10.0, unit="mm²/t.u.",
        doc="μ, curvature weight: higher gives smoother, rounder outlines",
    )
    speed: float = param(
        2.0, lo=0.1, hi=20.0, unit="mm/t.u.",
        doc="w, largest speed of the region force (the time step shrinks to stay stable)",
    )
    tolerance: float = param(
        3.0, lo=0.5, hi=50.0, unit="σ",
        doc="growing from a click enters only voxels within this many standard deviations "
        "of the clicked structure's intensity (measured in the starting sphere)",
    )


@dataclass
class LocalEdit:
    """The outcome of :func:`refine_at`: new labels for a box of the label map.

    Attributes
    ----------
    region : tuple of slice
        The box of the label map the contour worked in.
    before, after : ndarray
        The labels of *region* when the computation started, and the result.
    label : int
        The label that was grown or refined.
    mode : str
        ``"grow"``, ``"refine"`` or ``"box"``.
    info : dict
        Extras of the contour (iterations run, device).
    """

    region: Region
    before: np.ndarray
    after: np.ndarray
    label: int
    mode: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        """Voxels whose label the edit changes."""
        return int(np.count_nonzero(self.after != self.before))

    def apply_to(self, labels: np.ndarray) -> Diff | None:
        """Write the edit into *labels* (in place) and return it as one :class:`Diff`.

        Voxels whose label differs from :attr:`before` (edited since the
        computation started) keep their current value. Returns None when
        nothing changes.
        """
        sub = labels[self.region]
        if sub.shape != self.before.shape:
            raise ParameterError("the label map changed size since the refinement started")
        wanted = (self.after != self.before) & (sub == self.before)
        if not wanted.any():
            return None
        local = replace_all(sub, np.where(wanted, self.after, sub).astype(sub.dtype, copy=False))
        if local is None:
            return None
        box = tuple((a + s.start, b + s.start)
                    for (a, b), s in zip(local.box, self.region, strict=True))
        return Diff(box, local.mask, local.old, local.new)  # type: ignore[arg-type]


def _stable_contour(params: ClickRefineParams, spacing: Sequence[float],
                    shape: Sequence[int]) -> ActiveContourParams:
    """Active-contour parameters with the largest default-or-smaller stable time step."""
    contour = ActiveContourParams(iterations=params.iterations, seed_radius=params.seed_radius,
                                  mu=params.smoothness, region=params.speed)
    for _ in range(40):
        try:
            check_stability(contour, spacing, shape)
            return contour
        except ParameterError:
            contour = dataclasses.replace(contour, dt=contour.dt * 0.7)
    raise ParameterError("no stable time step for this voxel spacing")  # pragma: no cover


def _cube(lo: Sequence[int], hi: Sequence[int], spacing: Sequence[float], reach: float,
          shape: Sequence[int]) -> Region:
    """The box ``[lo, hi)`` grown by *reach* mm on every side, clipped to *shape*."""
    out = []
    for a in range(3):
        r = math.ceil(reach / spacing[a]) if shape[a] > 1 else 0
        out.append(slice(max(int(lo[a]) - r, 0), min(int(hi[a]) + r, int(shape[a]))))
    return tuple(out)  # type: ignore[return-value]


def _index(point: Sequence[float], shape: Sequence[int], what: str) -> tuple[int, int, int]:
    p = [math.floor(float(c) + 0.5) for c in point]
    if len(p) != 3 or any(not 0 <= c < n for c, n in zip(p, shape, strict=True)):
        raise ParameterError(f"{what} {tuple(point)} lies outside the image of shape "
                             f"{tuple(shape)}")
    return p[0], p[1], p[2]


def seed_similarity(image: np.ndarray, seed: Sequence[int], radius_mm: float,
                    spacing: Sequence[float], tolerance: float) -> np.ndarray:
    """How much each voxel looks like the ball of *radius_mm* around *seed*, in [0, 1].

    ``exp(-z² / 2)`` with ``z = |I - median| / (tolerance × spread)``: 1 at the
    seed's median intensity, 0.61 at *tolerance* spreads from it. The spread is
    1.4826 × the median absolute deviation in the ball, at least 0.5 % of the
    image's 1–99 percentile range (a flat region still gives a finite width).

    Examples
    --------
    >>> img = np.zeros((9, 9, 9), np.float32); img[:, :, 5:] = 100.0
    >>> sim = seed_similarity(img, (4, 4, 2), 2.0, (1.0, 1.0, 1.0), 3.0)
    >>> float(sim[0, 0, 0]), float(sim[0, 0, 8]) < 1e-6
    (1.0, True)
    """
    reach = [math.ceil(radius_mm / h) for h in spacing]
    box = tuple(slice(max(c - r, 0), min(c + r + 1, n))
                for c, r, n in zip(seed, reach, image.shape, strict=True))
    grids = np.ogrid[box]
    dist2 = sum(((g - c) * h) ** 2 for g, c, h in zip(grids, seed, spacing, strict=True))
    values = image[box][np.broadcast_to(dist2 <= radius_mm**2, image[box].shape)]
    centre = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - centre)))
    lo, hi = np.percentile(image, [1.0, 99.0])
    spread = max(spread, 0.005 * float(hi - lo), 1e-6)
    z = (image.astype(np.float32) - centre) / np.float32(tolerance * spread)
    return np.exp(-0.5 * z * z).astype(np.float32)


def _sub_volume(volume: Volume, region: Region) -> Volume:
    offset = np.array([s.start for s in region], dtype=float)
    affine = volume.affine.copy()
    affine[:3, 3] = volume.affine[:3, :3] @ offset + volume.affine[:3, 3]
    return Volume(np.ascontiguousarray(volume.array[region]), affine, modality=volume.modality)


@single_threaded_torch()  # a click works on a small crop
def refine_at(
    volume: Volume,
    labels: np.ndarray,
    label: int,
    *,
    seed: Sequence[float] | None = None,
    box: tuple[Sequence[float], Sequence[float]] | None = None,
    params: ClickRefineParams | None = None,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> LocalEdit:
    """Grow or refine *label* of *labels* from a clicked voxel or a box.

    Parameters
    ----------
    volume : Volume
        The image.
    labels : ndarray of int
        The label map on the image's grid (read, not changed).
    label : int
        The label to grow or refine (> 0).
    seed : (i, j, k), optional
        The clicked voxel: refine if it holds *label*, grow otherwise.
    box : ((i0, j0, k0), (i1, j1, k1)), optional
        Corners of a starting box (upper corner exclusive).
    params : ClickRefineParams, optional
    device, progress, cancel
        As for the methods (``progress(fraction, "iteration i/n")``).

    Returns
    -------
    LocalEdit
    """
    params = validate(params or ClickRefineParams())
    if (seed is None) == (box is None):
        raise ParameterError("give either a seed point or a box")
    label = int(label)
    if label <= 0:
        raise ParameterError("choose a label above 0 to grow or refine")
    lab = np.asarray(labels)
    if lab.shape != volume.shape:
        raise ParameterError(f"label map of shape {lab.shape} does not match the image "
                             f"{volume.shape}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise ParameterError("labels must be an integer array")
    if label > np.iinfo(lab.dtype).max:
        raise ParameterError(f"label {label} does not fit the label map's type {lab.dtype}")
    spacing = tuple(volume.spacing)
    shape = volume.shape
    if seed is not None:
        c = _index(seed, shape, "the clicked point")
        region = _cube(c, [v + 1 for v in c], spacing, params.reach, shape)
    else:
        assert box is not None
        a = _index(box[0], shape, "box corner")
        b = [min(max(math.floor(float(v) + 0.5), 0), n) for v, n in zip(box[1], shape,
                                                                            strict=True)]
        lo = [min(x, y) for x, y in zip(a, b, strict=True)]
        hi = [max(max(x, y), m + 1) for x, y, m in zip(a, b, lo, strict=True)]
        # the box bounds the result; two voxels more keep the contour off the crop's edge
        region = _cube(lo, hi, spacing, 2.0 * max(spacing), shape)
    sub = _sub_volume(volume, region)
    before = lab[region].copy()  # a snapshot: the caller may edit *labels* meanwhile
    contour = _stable_contour(params, spacing, sub.shape)
    after = before.copy()
    offset = [s.start for s in region]
    common: dict[str, Any] = {"device": device, "progress": progress, "cancel": cancel}
    if seed is not None and before[tuple(v - o for v, o in zip(c, offset, strict=True))] == label:
        mode = "refine"
        competitors = (before > 0) & (before != label)
        if competitors.any():
            result = refine_labels(sub, before, contour, labels_to_refine=(label,), **common)
            after = result.labels.array.astype(lab.dtype, copy=False)
        else:
            result = active_contour(sub, contour, init_mask=before == label, **common)
            inside = result.labels.array > 0
            after[(before == label) & ~inside] = 0
            after[inside] = label
    else:
        if seed is not None:
            mode = "grow"
            local_seed = [v - o for v, o in zip(c, offset, strict=True)]
            similar = seed_similarity(np.asarray(sub.array), local_seed,
                                      max(params.seed_radius, min(spacing)), spacing,
                                      params.tolerance)
            result = active_contour(sub.with_array(similar), contour,
                                    seed=[float(v) for v in local_seed], **common)
        else:
            mode = "box"
            local_lo = [v - o for v, o in zip(lo, offset, strict=True)]
            local_hi = [v - o for v, o in zip(hi, offset, strict=True)]
            inside_box = np.zeros(sub.shape, bool)
            inside_box[tuple(slice(a, b) for a, b in zip(local_lo, local_hi, strict=True))] = True
            centre = [(a + b - 1) // 2 for a, b in zip(local_lo, local_hi, strict=True)]
            sides = [(b - a) * h for a, b, h in zip(local_lo, local_hi, spacing, strict=True)
                     if b - a > 1] or [min(spacing)]
            similar = seed_similarity(np.asarray(sub.array), centre,
                                      max(0.25 * min(sides), min(spacing)), spacing,
                                      params.tolerance)
            result = active_contour(sub.with_array(similar), contour,
                                    box=([float(v) for v in local_lo],
                                         [float(v) for v in local_hi]),
                                    mask=inside_box, **common)
        after[result.labels.array > 0] = label
    if seed is not None:
        # a click changes voxels within `reach` mm of it: a ball, not the work cube's corners
        grids = np.ogrid[tuple(slice(0, n) for n in sub.shape)]
        dist2 = sum(((g - (v - o)) * h) ** 2
                    for g, v, o, h in zip(grids, c, offset, spacing, strict=True))
        after = np.where(dist2 <= params.reach**2, after, before).astype(lab.dtype, copy=False)
    log.info("click-to-refine (%s) of label %d changed %d voxels", mode, label,
             int(np.count_nonzero(after != before)))
    return LocalEdit(region=region, before=before, after=after, label=label, mode=mode,
                     info=dict(result.info))
