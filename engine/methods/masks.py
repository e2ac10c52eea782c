"""Brain masks for the segmentation methods.

Every method of :mod:`engine.methods` works inside a boolean brain mask on
the volume grid (``mask=`` argument). When none is given, :func:`rough_brain_mask`
computes a **rough** foreground mask:

1. ``t`` = half of Otsu's threshold [1]_ of all voxel intensities (Otsu separates
   the dark background from tissue; halving it keeps the dark CSF in);
2. foreground = voxels brighter than ``t``;
3. keep the largest 6-connected component;
4. fill the holes (enclosed ventricles, dark lesions).

On a skull-stripped image (such as the MNI demo T1) this is the brain; on an
image with skull and scalp it is the whole head, and the methods will then
classify scalp and skull too -- pass a real brain mask (``--mask``) for such
images. On the demo T1 the rule agrees with the ground-truth brain mask with
Dice 0.987 (``rough_brain_mask(t1)`` against ``truth.array > 0`` of
:func:`engine.data.mni.load_demo`). **The accuracy figures in the
documentation use the ground-truth brain mask** (ground-truth labels > 0), as
the comparison in Dai's thesis [2]_ does, so that they measure tissue
classification, not skull stripping.

References
----------
.. [1] N. Otsu, "A threshold selection method from gray-level histograms", IEEE
   Trans. Systems, Man, and Cybernetics 9(1):62--66, 1979.
   doi:10.1109/TSMC.1979.4310076
.. [2] Y. Dai, *Deep Learning-based Medical Image Segmentation for Early Cancer
   Detection* (thesis); see ``docs/references.md``.

Examples
--------
>>> import numpy as np
>>> img = np.zeros((20, 20, 20), np.float32); img[5:15, 5:15, 5:15] = 100.0
>>> int(rough_brain_mask(img).sum())
1000
>>> from engine.core.morphology import bounding_box
>>> bounding_box(rough_brain_mask(img), margin=1)
(slice(4, 16, None), slice(4, 16, None), slice(4, 16, None))
"""

from __future__ import annotations

import logging

import numpy as np

from ..core import morphology
from ..core.errors import ParameterError
from ..core.volume import Volume
from .postprocess import largest_component

__all__ = ["resolve_mask", "rough_brain_mask"]

log = logging.getLogger(__name__)


def _as_array(volume: Volume | np.ndarray) -> np.ndarray:
    array = volume.array if isinstance(volume, Volume) else np.asarray(volume)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3:
        raise ParameterError(f"expected a 2-D or 3-D image, got shape {array.shape}")
    return array


def rough_brain_mask(volume: Volume | np.ndarray) -> np.ndarray:
    """A rough head/brain mask: half-Otsu foreground, largest component, holes filled.

    Parameters
    ----------
    volume : Volume or ndarray
        The image (2-D arrays are taken as one slice).

    Returns
    -------
    ndarray of bool
        Mask of shape ``volume.shape`` (3-D).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((9, 9), np.float32); img[2:7, 2:7] = 1.0; img[4, 4] = 0.0
    >>> int(rough_brain_mask(img).sum())    # the dark centre is a filled hole
    25
    """
    from skimage.filters import threshold_otsu

    array = _as_array(volume).astype(np.float32, copy=False)
    finite = np.isfinite(array)
    values = array[finite]
    if values.size == 0 or float(values.max()) <= float(values.min()):
        log.warning("constant image: the rough brain mask is the whole volume")
        return np.ones(array.shape, dtype=bool)
    threshold = 0.5 * float(threshold_otsu(values))
    threshold = max(threshold, float(values.min()))
    fg = finite & (array > threshold)
    fg = largest_component(fg)
    if array.shape[2] == 1:
        fg[:, :, 0] = morphology.fill_holes(fg[:, :, 0])
    else:
        fg = morphology.fill_holes(fg)
    log.info("rough brain mask: threshold %.4g, %d voxels", threshold, int(fg.sum()))
    return fg


def resolve_mask(volume: Volume | np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The brain mask to work in: *mask* checked against the grid, or the rough mask.

    Parameters
    ----------
    volume : Volume or ndarray
        The image the mask belongs to.
    mask : ndarray or None
        Boolean (or 0/non-zero) mask of the volume's shape; a 2-D mask is taken
        as one slice. ``None`` computes :func:`rough_brain_mask`.

    Returns
    -------
    ndarray of bool, 3-D

    Raises
    ------
    ParameterError
        If the mask's shape differs from the volume's or the mask is empty.

    Examples
    --------
    >>> import numpy as np
    >>> resolve_mask(np.zeros((4, 4, 4)), np.ones((4, 4, 4))).dtype
    dtype('bool')
    """
    array = _as_array(volume)
    if mask is None:
        out = rough_brain_mask(array)
    else:
        out = np.asarray(mask)
        if out.ndim == 2:
            out = out[:, :, np.newaxis]
        if out.shape != array.shape:
            raise ParameterError(
                f"brain mask of shape {out.shape} does not match the image shape {array.shape}"
            )
        out = out.astype(bool, copy=False)
    if not out.any():
        raise ParameterError("the brain mask is empty")
    return out
