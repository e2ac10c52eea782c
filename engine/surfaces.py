"""Label surfaces for the 3-D view: smoothed marching cubes, in blocks, updated in place.

:class:`LabelSurfaces` turns a label map into one triangle mesh per label
value, in millimetres on the canonical (RAS+) voxel grid (vertex = voxel index
x spacing). The volume is cut into cubic blocks (:data:`BLOCK` voxels); each
block's surface is computed on its own, from the label mask smoothed with a
small Gaussian (so the surface is not a staircase) and sampled every ``step``
voxels (decimation for speed). After an edit, :meth:`LabelSurfaces.update`
recomputes only the blocks the edit's bounding box touches, and the view swaps
those blocks' meshes -- a brush stroke costs a few blocks, not the brain.
With ``preview_step``, every block is also marched at that coarser step from the
same smoothed mask: the *preview* surfaces (``mesh(value, preview=True)``) that
the view draws while the camera moves.

Blocks overlap by the smoothing margin and share their border planes, so the
pieces meet without cracks. Nothing here imports Qt: the viewer calls it from a
worker thread.

Examples
--------
>>> import numpy as np
>>> lab = np.zeros((40, 40, 40), np.uint8)
>>> lab[10:30, 10:30, 10:30] = 2
>>> surf = LabelSurfaces(lab, spacing=(1.0, 1.0, 2.0))
>>> mesh = surf.mesh(2)
>>> mesh.vertices.shape[1], mesh.faces.shape[1], bool(len(mesh.faces) > 100)
(3, 3, True)
>>> float(mesh.vertices[:, 2].max()) <= 2.0 * 30
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.measure import marching_cubes

__all__ = ["BLOCK", "LabelSurfaces", "Mesh", "ray_hit"]

#: Edge length of the cubic blocks (voxels).
BLOCK = 32
#: Gaussian smoothing of the label masks (voxels) and the margin it needs.
SMOOTH_SIGMA = 0.8
_MARGIN = 3


@dataclass
class Mesh:
    """Triangles in mm: ``vertices`` (n, 3) float32, ``faces`` (m, 3) int32, and
    ``normals`` (n, 3) float32: one unit normal per vertex, in mm (with the voxel
    spacing), pointing out of the label."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray

    @staticmethod
    def empty() -> Mesh:
        return Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32),
                    np.zeros((0, 3), np.float32))

    @staticmethod
    def join(parts: Iterable[Mesh]) -> Mesh:
        """One mesh of several (face indices shifted)."""
        verts, faces, normals = [], [], []
        offset = 0
        for part in parts:
            if len(part.faces) == 0:
                continue
            verts.append(part.vertices)
            faces.append(part.faces + offset)
            normals.append(part.normals)
            offset += len(part.vertices)
        if not verts:
            return Mesh.empty()
        return Mesh(np.concatenate(verts), np.concatenate(faces), np.concatenate(normals))


class LabelSurfaces:
    """Per-label surfaces of a label map, by blocks (see the module docstring).

    Parameters
    ----------
    labels : ndarray (X, Y, Z) of int
        The label map (read, never modified; :meth:`update` reads it again).
    spacing : (float, float, float)
        Voxel size in mm.
    step : int
        Marching-cubes step (1 full detail, 2 about a quarter of the triangles).
    values : iterable of int, optional
        Labels to mesh (default: every non-zero value present).
    preview_step : int, optional
        Also keep preview surfaces marched at this step (larger than *step*).
    """

    def __init__(self, labels: np.ndarray, spacing: Sequence[float], *, step: int = 1,
                 values: Iterable[int] | None = None,
                 preview_step: int | None = None) -> None:
        if labels.ndim != 3:
            raise ValueError("label surfaces need a 3-D label map")
        self.labels = labels
        self.spacing = np.asarray(spacing, dtype=np.float32)
        self.step = max(1, int(step))
        if preview_step is not None and int(preview_step) <= self.step:
            raise ValueError(f"the preview step ({preview_step}) must be larger than the "
                             f"step ({self.step})")
        self.preview_step = None if preview_step is None else int(preview_step)
        present = [int(v) for v in np.unique(labels) if v != 0]
        self.values = sorted(int(v) for v in values) if values is not None else present
        self.grid = tuple(int(np.ceil(n / BLOCK)) for n in labels.shape)
        #: (value, block index) -> Mesh, and the same at the preview step
        self._blocks: dict[tuple[int, tuple[int, int, int]], Mesh] = {}
        self._previews: dict[tuple[int, tuple[int, int, int]], Mesh] = {}
        for block in self._all_blocks():
            self._compute(block)

    # -- blocks ------------------------------------------------------------------------------
    def _all_blocks(self) -> list[tuple[int, int, int]]:
        return [(a, b, c) for a in range(self.grid[0]) for b in range(self.grid[1])
                for c in range(self.grid[2])]

    def blocks_touching(self, bbox: Sequence[Sequence[int]]) -> list[tuple[int, int, int]]:
        """Blocks whose surface can change when voxels in *bbox* ``((x0, x1), ...)`` change.

        A voxel influences the smoothed mask up to the margin, and a block owns the
        cubes up to one voxel past its end: both widen the box.
        """
        ranges = []
        for (lo, hi), n, g in zip(bbox, self.labels.shape, self.grid, strict=True):
            lo = max(0, int(lo) - _MARGIN - 1)
            hi = min(n, int(hi) + _MARGIN)
            ranges.append(range(max(0, lo // BLOCK), min(g, (hi - 1) // BLOCK + 1)))
        return [(a, b, c) for a in ranges[0] for b in ranges[1] for c in ranges[2]]

    def _compute(self, block: tuple[int, int, int]) -> None:
        """Recompute the meshes of every value in *block*."""
        shape = self.labels.shape
        lo = [b * BLOCK for b in block]
        hi = [min(n, (b + 1) * BLOCK + 1) for b, n in zip(block, shape, strict=True)]
        # The cubes of this block span voxels lo .. hi-1; smoothing needs a margin around.
        plo = [max(0, a - _MARGIN) for a in lo]
        phi = [min(n, b + _MARGIN) for b, n in zip(hi, shape, strict=True)]
        window = self.labels[plo[0]:phi[0], plo[1]:phi[1], plo[2]:phi[2]]
        cut = tuple(slice(a - p, b - p) for a, b, p in zip(lo, hi, plo, strict=True))
        for value in self.values:
            key = (value, block)
            mask = window == value
            if not mask.any():
                self._blocks.pop(key, None)
                self._previews.pop(key, None)
                continue
            # Zero beyond the window: at the volume's faces that closes the surfaces; inside
            # the volume the window's margin keeps the zeros away from this block's cubes.
            smooth = ndimage.gaussian_filter(mask.astype(np.float32), SMOOTH_SIGMA,
                                             mode="constant")
            part = smooth[cut]
            if min(part.shape) < 2 or part.max() < 0.5 or part.min() > 0.5:
                self._blocks.pop(key, None)
                self._previews.pop(key, None)
                continue
            self._blocks[key] = self._march(part, lo, self.step)
            if self.preview_step is not None:
                self._previews[key] = self._march(part, lo, self.preview_step)

    def _march(self, part: np.ndarray, origin: Sequence[int], step: int) -> Mesh:
        # Faces of the volume: pad with zeros so the surface closes there.
        pads = []
        for axis, (o, n) in enumerate(zip(origin, part.shape, strict=True)):
            before = 1 if o == 0 else 0
            after = 1 if o + n >= self.labels.shape[axis] else 0
            pads.append((before, after))
        if any(p != (0, 0) for p in pads):
            part = np.pad(part, pads)
            origin = [o - p[0] for o, p in zip(origin, pads, strict=True)]
        if step > 1 and min(part.shape) <= 2 * step:
            step = 1
        try:
            verts, faces, normals, _ = marching_cubes(part, 0.5, step_size=step,
                                                      allow_degenerate=False)
        except (ValueError, RuntimeError):  # no crossing at this level
            return Mesh.empty()
        verts = (verts + np.asarray(origin, np.float32)) * self.spacing
        # marching_cubes normals point towards lower values (outwards), in voxel units: a
        # normal (a gradient) takes the inverse of the spacing to mm, then unit length again
        normals = normals / np.asarray(self.spacing, np.float32)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        return Mesh(verts.astype(np.float32), faces.astype(np.int32),
                    normals.astype(np.float32))

    # -- public --------------------------------------------------------------------------------
    def update(self, bbox: Sequence[Sequence[int]] | None = None,
               values: Iterable[int] | None = None) -> list[tuple[int, tuple[int, int, int]]]:
        """Recompute after the labels changed in *bbox* (None: everywhere).

        *values* adds label values that may have appeared. Returns the pieces
        ``(value, block)`` that were recomputed or removed: a view replaces those
        pieces only (:meth:`piece` gives each one's mesh, None when gone).
        """
        if values is not None:
            self.values = sorted(set(self.values) | {int(v) for v in values if v})
        blocks = self._all_blocks() if bbox is None else self.blocks_touching(bbox)
        before = {key for key in self._blocks if key[1] in set(blocks)}
        for block in blocks:
            self._compute(block)
        after = {key for key in self._blocks if key[1] in set(blocks)}
        return sorted(before | after)

    def pieces(self) -> list[tuple[int, tuple[int, int, int]]]:
        """Every ``(value, block)`` piece with a surface."""
        return sorted(self._blocks)

    def piece(self, key: tuple[int, tuple[int, int, int]]) -> Mesh | None:
        """The mesh of one piece, or None when that block has no surface of that value."""
        return self._blocks.get(key)

    def mesh(self, value: int, *, preview: bool = False) -> Mesh:
        """The whole surface of label *value* (its blocks joined); *preview*: the one
        marched at the preview step (an empty mesh without ``preview_step``)."""
        blocks = self._previews if preview else self._blocks
        return Mesh.join(mesh for (v, _), mesh in sorted(blocks.items()) if v == value)

    def triangle_count(self, *, preview: bool = False) -> int:
        blocks = self._previews if preview else self._blocks
        return int(sum(len(m.faces) for m in blocks.values()))


def ray_hit(labels: np.ndarray, visible: Iterable[int], origin: np.ndarray,
            direction: np.ndarray, spacing: Sequence[float], *,
            step_mm: float = 0.5) -> tuple[int, int, int] | None:
    """The first voxel of a *visible* label along a ray, or None.

    *origin* and *direction* are in mm on the voxel grid (voxel centre = index x
    spacing), as the 3-D view draws the surfaces.
    """
    spacing_arr = np.asarray(spacing, float)
    d = np.asarray(direction, float)
    norm = np.linalg.norm(d)
    if norm == 0:
        return None
    d = d / norm
    o = np.asarray(origin, float)
    size = np.asarray(labels.shape) * spacing_arr
    # Clip the ray to the volume's box (slab method).
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-0.5 * spacing_arr - o) / d
        t2 = (size - 0.5 * spacing_arr - o) / d
    tmin = np.nanmax(np.where(np.isfinite(t1), np.minimum(t1, t2), -np.inf))
    tmax = np.nanmin(np.where(np.isfinite(t2), np.maximum(t1, t2), np.inf))
    if not np.isfinite(tmin) or not np.isfinite(tmax) or tmax < max(tmin, 0.0):
        return None
    ts = np.arange(max(tmin, 0.0), tmax, step_mm)
    points = o + ts[:, None] * d
    ijk = np.rint(points / spacing_arr).astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.asarray(labels.shape)), axis=1)
    ijk = ijk[inside]
    if len(ijk) == 0:
        return None
    hits = np.isin(labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]], list(visible))
    if not hits.any():
        return None
    first = ijk[int(np.argmax(hits))]
    return int(first[0]), int(first[1]), int(first[2])
