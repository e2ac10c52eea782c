"""Post-processing of tissue label maps: brain component, islands, holes.

Each function takes a label array and returns a new one (the input is not
modified); parameter dataclasses make them pipeline steps like any method.

The connected-component primitives -- :func:`connected_components`,
:func:`largest_component`, :func:`small_components`,
:func:`components_holding` -- are the one
implementation Delineo has: the editor's clean-up kernels
(:mod:`engine.editing.kernels`) wrap them to produce undoable diffs.

**Connectivity.** Components are face-connected (6-connectivity in 3-D):
two voxels touching only along an edge or at a corner belong to different
components. This is the connectivity of the editor's flood fill, of the
surface definition of :mod:`engine.core.metrics`, and the default of the
"islands" tools of common segmentation editors; it never merges two pieces
that a slice-by-slice reader would see as separate, so a diagonal bridge of
single voxels does not save an island from clean-up.

Examples
--------
>>> import numpy as np
>>> labels = np.zeros((20, 20, 20), np.uint8)
>>> labels[2:12, 2:12, 2:12] = 2; labels[15, 15, 15] = 1
>>> int(largest_brain_component(labels)[15, 15, 15])
0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..core import morphology
from ..core.params import param

__all__ = [
    "FACE_CONNECTIVITY",
    "FillHolesParams",
    "LargestComponentParams",
    "SmallIslandsParams",
    "connected_components",
    "fill_holes",
    "largest_brain_component",
    "largest_component",
    "remove_small_islands",
    "small_components",
]

#: Structuring element of the face neighbourhood (the default connectivity), for scipy's
#: morphology (dilation, erosion) where a neighbourhood is needed.
FACE_CONNECTIVITY = ndimage.generate_binary_structure(3, 1)
FACE_CONNECTIVITY.setflags(write=False)


@dataclass(frozen=True)
class LargestComponentParams:
    """Keep the largest connected component of the whole brain (labels > 0)."""


@dataclass(frozen=True)
class SmallIslandsParams:
    min_size_mm3: float = param(
        50.0, lo=0.0, hi=1e6, unit="mm³",
        doc="connected pieces of one label smaller than this are relabelled",
    )


@dataclass(frozen=True)
class FillHolesParams:
    max_hole_mm3: float = param(
        1e9, lo=0.0, unit="mm³", doc="holes in the brain up to this size are filled",
    )


def connected_components(mask: np.ndarray, connectivity: int = 6
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of a 3-D boolean *mask*.

    Parameters
    ----------
    mask : ndarray of bool
    connectivity : {6, 18, 26}
        Neighbours that join two voxels: faces (6, the default of every tissue
        clean-up), faces and edges (18), or faces, edges and corners (26: one
        lesion is one 26-connected component).

    Returns
    -------
    components : ndarray of uint32
        0 outside the mask, ``1..n`` for the components, numbered in the order
        of their first voxel in C order (:func:`engine.core.morphology.label`).
    sizes : ndarray of int, shape (n + 1,)
        Voxel count of each component; ``sizes[0]`` is 0.
    """
    comp, n = morphology.label(mask, connectivity)
    sizes = np.bincount(comp.reshape(-1), minlength=n + 1)  # C order: a view, no copy
    sizes[0] = 0
    return comp, sizes


def _in_box(mask: np.ndarray) -> tuple[np.ndarray, tuple[slice, ...]]:
    """*mask* as a boolean array and the box of its true voxels. The functions below
    label only that box: the same components, numbered in the same order, as on the
    whole array (a head's brain fills about a third of it)."""
    mask = np.asarray(mask, dtype=bool)
    return mask, morphology.bounding_box(mask)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest face-connected component of *mask* (all False if *mask* is empty).

    Of equally large components, the first in C order wins.
    """
    mask, box = _in_box(mask)
    out = np.zeros(mask.shape, bool)
    comp, sizes = connected_components(mask[box])
    if sizes.size > 1:
        out[box] = comp == int(np.argmax(sizes))
    return out


def small_components(mask: np.ndarray, min_voxels: float, connectivity: int = 6
                     ) -> np.ndarray:
    """The voxels of *mask* whose component (face-connected unless *connectivity*
    says otherwise, see :func:`connected_components`) has fewer than *min_voxels*."""
    mask, box = _in_box(mask)
    out = np.zeros(mask.shape, bool)
    comp, sizes = connected_components(mask[box], connectivity)
    small = (sizes > 0) & (sizes < min_voxels)
    out[box] = small[comp]
    return out


def components_holding(mask: np.ndarray, seeds: np.ndarray, connectivity: int = 6
                       ) -> np.ndarray:
    """The components of *mask* (see :func:`connected_components`) that hold a voxel of
    *seeds*, together with the seeds themselves: a hysteresis threshold when *mask* is the
    lower level and *seeds* the higher one."""
    mask, box = _in_box(mask)
    out = np.array(seeds, dtype=bool)  # a copy: the seeds, wherever they are
    comp, sizes = connected_components(mask[box], connectivity)
    keep = np.zeros(sizes.size, bool)
    keep[np.unique(comp[out[box]])] = True
    keep[0] = False
    out[box] |= keep[comp]
    return out


def largest_brain_component(labels: np.ndarray) -> np.ndarray:
    """Zero every foreground voxel outside the largest face-connected brain component."""
    return np.where(largest_component(labels > 0), labels, 0).astype(labels.dtype)


def _majority_neighbour(labels: np.ndarray, region: np.ndarray, exclude: int) -> int:
    ring = ndimage.binary_dilation(region, structure=FACE_CONNECTIVITY) & ~region
    values = labels[ring]
    values = values[values != exclude]
    if values.size == 0:
        return 0
    return int(np.bincount(values).argmax())


def remove_small_islands(
    labels: np.ndarray, *, min_size_mm3: float = 50.0, spacing: tuple[float, ...] = (1, 1, 1)
) -> np.ndarray:
    """Relabel each small connected piece of a label with its most common neighbour label."""
    out = labels.copy()
    min_voxels = min_size_mm3 / float(np.prod(spacing))
    for value in [int(v) for v in np.unique(labels) if v != 0]:
        comp, sizes = connected_components(labels == value)
        objects = ndimage.find_objects(comp)
        for index in np.nonzero(sizes[1:] < min_voxels)[0] + 1:
            box = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in objects[index - 1])
            region = comp[box] == index
            out[box][region] = _majority_neighbour(out[box], region, value)
    return out


def fill_holes(
    labels: np.ndarray, *, max_hole_mm3: float = 1e9, spacing: tuple[float, ...] = (1, 1, 1)
) -> np.ndarray:
    """Fill background holes enclosed by the brain with their most common neighbour label."""
    brain = labels > 0
    holes = morphology.fill_holes(brain) & ~brain
    if not holes.any():
        return labels.copy()
    out = labels.copy()
    comp, sizes = connected_components(holes)
    max_voxels = max_hole_mm3 / float(np.prod(spacing))
    for index, box in enumerate(ndimage.find_objects(comp), start=1):
        if box is None or sizes[index] > max_voxels:
            continue
        grown = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in box)
        region = comp[grown] == index
        out[grown][region] = _majority_neighbour(out[grown], region, 0)
    return out
