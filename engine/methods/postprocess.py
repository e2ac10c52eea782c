"""Post-processing of tissue label maps: brain component, islands, holes.

Each function takes a label array and returns a new one (the input is not
modified); parameter dataclasses make them pipeline steps like any method.

Example
-------
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

from ..core.params import param

__all__ = [
    "FillHolesParams",
    "LargestComponentParams",
    "SmallIslandsParams",
    "fill_holes",
    "largest_brain_component",
    "remove_small_islands",
]

_FACES = ndimage.generate_binary_structure(3, 1)


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


def largest_brain_component(labels: np.ndarray) -> np.ndarray:
    """Zero every foreground voxel outside the largest 6-connected brain component."""
    brain = labels > 0
    comp, n = ndimage.label(brain, structure=_FACES)
    if n <= 1:
        return labels.copy()
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    return np.where(comp == int(np.argmax(sizes)), labels, 0).astype(labels.dtype)


def _majority_neighbour(labels: np.ndarray, region: np.ndarray, exclude: int) -> int:
    ring = ndimage.binary_dilation(region, structure=_FACES) & ~region
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
        comp, n = ndimage.label(labels == value, structure=_FACES)
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel())
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
    holes = ndimage.binary_fill_holes(brain) & ~brain
    if not holes.any():
        return labels.copy()
    out = labels.copy()
    comp, _ = ndimage.label(holes, structure=_FACES)
    max_voxels = max_hole_mm3 / float(np.prod(spacing))
    sizes = np.bincount(comp.ravel())
    for index, box in enumerate(ndimage.find_objects(comp), start=1):
        if box is None or sizes[index] > max_voxels:
            continue
        grown = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in box)
        region = comp[grown] == index
        out[grown][region] = _majority_neighbour(out[grown], region, 0)
    return out
