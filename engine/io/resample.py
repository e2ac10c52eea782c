"""Resampling one volume onto another volume's grid through world coordinates.

Part of :mod:`engine.io` because reading needs it: :func:`engine.io.load_labels`
puts a label map drawn on another grid onto its image's grid (nearest
neighbour, on request). It depends only on :mod:`engine.core`, so every layer
above ``io`` (methods, evaluation, the viewer) may use it too. Values move
through world millimetres (reference voxel -> world -> moving voxel), never
through array indices, so grids of any orientation and spacing line up.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..core.volume import LabelMap, Volume

__all__ = ["regrid", "resample_labels_to", "resample_to"]


def resample_to(
    moving: Volume, reference: Volume, *, order: int = 1, fill: float = 0.0
) -> np.ndarray:
    """Values of *moving* at the voxel centres of *reference* (via world mm).

    Parameters
    ----------
    moving, reference : Volume
    order : int
        Spline order: 0 nearest neighbour (labels), 1 linear (images).
    fill : float
        Value outside *moving*'s field of view.

    Examples
    --------
    >>> import numpy as np
    >>> ref = Volume(np.zeros((4, 4, 4)), np.eye(4))
    >>> mov = Volume(np.arange(8.0).reshape(2, 2, 2), np.diag([2.0, 2, 2, 1]))
    >>> float(resample_to(mov, ref, order=0)[2, 0, 0])
    4.0
    """
    # reference voxel -> world -> moving voxel
    mapping = np.linalg.inv(moving.affine) @ reference.affine
    return ndimage.affine_transform(
        moving.array,
        mapping[:3, :3],
        offset=mapping[:3, 3],
        output_shape=reference.shape,
        order=order,
        mode="constant",
        cval=fill,
        prefilter=order > 1,
    )


def resample_labels_to(labels: LabelMap, reference: Volume) -> LabelMap:
    """Nearest-neighbour resampling of a label map onto *reference*'s grid."""
    array = resample_to(labels, reference, order=0, fill=0)
    out = LabelMap.on_grid_of(reference, array.astype(labels.array.dtype), labels=labels.labels)
    out.metadata = dict(labels.metadata)
    out.metadata.setdefault("warnings", []).append(
        "resampled (nearest neighbour) onto the image grid"
    )
    return out


def regrid(volume: Volume, spacing: tuple[float, float, float], *, degrees: float = 0.0,
           order: int = 1) -> Volume:
    """*volume* resampled onto a new grid of voxel *spacing* over the same extent, its
    axes turned by *degrees* about the superior axis (an oblique acquisition).

    For tests and evaluations at other resolutions and orientations: ``order=0``
    resamples a mask or label map (nearest neighbour), ``order=1`` an image.

    Examples
    --------
    >>> vol = Volume(np.ones((10, 10, 10), np.float32), np.eye(4))
    >>> regrid(vol, (2.0, 2.0, 2.0)).shape
    (5, 5, 5)
    """
    t = np.deg2rad(degrees)
    rotation = np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0],
                         [0.0, 0.0, 1.0]])
    extent = np.array(volume.shape) * np.array(volume.spacing)
    shape = tuple(max(1, int(e // s)) for e, s in zip(extent, spacing, strict=True))
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(np.asarray(spacing, float))
    centre = volume.affine[:3, :3] @ ((np.array(volume.shape) - 1) / 2) + volume.affine[:3, 3]
    affine[:3, 3] = centre - affine[:3, :3] @ ((np.array(shape) - 1) / 2)
    reference = Volume(np.zeros(shape, np.float32), affine)
    array = resample_to(volume, reference, order=order)
    if order == 0:
        array = array.astype(volume.array.dtype, copy=False)
    return Volume(array.astype(np.float32, copy=False) if order else array, affine,
                  modality=volume.modality)
