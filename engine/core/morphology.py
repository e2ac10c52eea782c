"""Binary morphology of 3-D masks: connected components, hole filling, distances.

The engine's pipelines run these on whole 1 mm heads (15-20 million voxels)
several times a volume -- brain extraction, the largest-component clean-up,
the lesion step, the findings' measurements -- so they use the compiled
libraries of the field rather than :mod:`scipy.ndimage`, with the same results:

* :func:`label` -- connected components with :mod:`cc3d`
  (connected-components-3d): the same labels, in the same order (first voxel
  in C order), as ``scipy.ndimage.label`` with the matching structure, about
  5x faster on a whole head;
* :func:`fill_holes` -- :mod:`fill_voids`: the same mask as
  ``scipy.ndimage.binary_fill_holes`` (background not face-connected to the
  array's border becomes foreground), about 7x faster;
* :func:`distance_inside` -- :mod:`edt`: the Euclidean distance of every
  foreground voxel to the nearest background voxel, with voxel spacing, as
  ``scipy.ndimage.distance_transform_edt`` computes it (to float32 rounding,
  about 1e-6 mm), about 3x faster.

``tests/engine/test_morphology.py`` holds each to its scipy counterpart.

Examples
--------
>>> import numpy as np
>>> m = np.zeros((5, 5, 5), bool); m[0, 0, 0] = m[2:5, 2:5, 2:5] = True
>>> comp, n = label(m); n, int(comp[0, 0, 0]), int(comp[3, 3, 3])
(2, 1, 2)
>>> shell = m.copy(); shell[3, 3, 3] = False
>>> bool(fill_holes(shell)[3, 3, 3])
True
>>> float(distance_inside(m, (1.0, 1.0, 1.0))[3, 3, 3])
2.0
"""

from __future__ import annotations

from collections.abc import Sequence

import cc3d
import edt
import fill_voids
import numpy as np

from .errors import ParameterError

__all__ = ["CONNECTIVITIES", "bounding_box", "distance_inside", "fill_holes", "label"]

#: Neighbourhoods :func:`label` knows: faces (6), faces and edges (18), and corners (26).
CONNECTIVITIES = (6, 18, 26)


def _boolean(mask: np.ndarray) -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim not in (2, 3):
        raise ParameterError(f"expected a 2-D or 3-D mask, got shape {array.shape}")
    # C order: cc3d numbers components in the array's memory order.
    return np.ascontiguousarray(array, dtype=bool)


def label(mask: np.ndarray, connectivity: int = 6) -> tuple[np.ndarray, int]:
    """Connected components of *mask*: ``(components, n)``.

    *components* is 0 outside the mask and ``1..n`` inside, numbered in the
    order of each component's first voxel in C order (as ``scipy.ndimage.label``
    numbers them). *connectivity* is 6, 18 or 26 for a 3-D mask; a 2-D mask
    takes 4 (for 6) or 8 (for 18 and 26).
    """
    if connectivity not in CONNECTIVITIES:
        raise ParameterError(f"connectivity must be 6, 18 or 26, not {connectivity}")
    array = _boolean(mask)
    if array.ndim == 2:
        connectivity = 4 if connectivity == 6 else 8
    if not array.any():
        return np.zeros(array.shape, np.uint32), 0
    components, n = cc3d.connected_components(array, connectivity=connectivity,
                                              return_N=True, out_dtype=np.uint32)
    return components, int(n)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """*mask* with every background region that does not reach the array's border
    (through faces) made foreground."""
    array = _boolean(mask)
    if not array.any():
        return array.copy()
    return np.asarray(fill_voids.fill(array, in_place=False), dtype=bool)


def distance_inside(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Euclidean distance (in the units of *spacing*) of each voxel of *mask* to the
    nearest voxel outside it; 0 outside. Voxels beyond the array's edge do not count
    as outside. float32."""
    array = _boolean(mask)
    if len(spacing) != array.ndim:
        raise ParameterError(f"spacing has {len(spacing)} values for a {array.ndim}-D mask")
    if not array.any():
        return np.zeros(array.shape, np.float32)
    return edt.edt(array, anisotropy=tuple(float(s) for s in spacing),
                   black_border=False, parallel=1)


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...]:
    """Slices of the smallest box holding every true voxel of *mask*, grown by *margin*.

    The box is clipped to the array. An empty mask gives the whole array. Work done
    on a mask's box gives what it gives on the whole array wherever only the mask's
    voxels matter (components are numbered in the same order: C order is kept
    within a box).

    Examples
    --------
    >>> m = np.zeros((5, 5, 1), bool); m[2, 3, 0] = True
    >>> bounding_box(m, margin=1)
    (slice(1, 4, None), slice(2, 5, None), slice(0, 1, None))
    """
    mask = np.asarray(mask)
    out = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=others)) if others else np.flatnonzero(mask)
        if hit.size == 0:
            return tuple(slice(0, n) for n in mask.shape)
        lo = max(int(hit[0]) - margin, 0)
        hi = min(int(hit[-1]) + 1 + margin, mask.shape[axis])
        out.append(slice(lo, hi))
    return tuple(out)
