"""FreeSurfer's MGH volumes (``.mgh``; ``.mgz`` gzip-compressed): ``T1.mgz``, ``aseg.mgz``.

:func:`read_mgh` reads them with nibabel into a canonical RAS+
:class:`~engine.core.volume.Volume`. The header is checked before the voxels
are read (dimensions, byte count against :data:`~engine.io.nifti.MAX_BYTES`,
the vox2ras matrix); a file whose ``goodRASFlag`` is 0 has no valid
orientation of its own (FreeSurfer then takes a coronal default): it loads
with that default, a warning and ``metadata["geometry"] == "assumed"``. A
file of several frames gives its first (``volume_index`` chooses another)
with a warning, like a 4-D NIfTI file.

Examples
--------
>>> import os, nibabel
>>> f = os.path.join(os.path.dirname(nibabel.__file__), "tests", "data", "test.mgz")
>>> vol = read_mgh(f)
>>> vol.shape, vol.metadata["warnings"]
((5, 4, 3), ['2 frames: using frame 0 only'])
"""

from __future__ import annotations

import gzip
import logging
import struct
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from ..core.errors import InvalidImageError, TruncatedFileError, UnsupportedFormatError
from ..core.volume import Volume
from .atomic import full_suffix
from .nifti import MAX_BYTES
from .voxels import check_file, finite_voxels, guess_modality

__all__ = ["MGH_SUFFIXES", "is_mgh", "read_mgh"]

log = logging.getLogger(__name__)

MGH_SUFFIXES = (".mgh", ".mgz")
_VERSION = b"\x00\x00\x00\x01"  # an MGH file starts with version 1, a big-endian int32


def is_mgh(path: str | Path) -> bool:
    """Whether *path* is named ``.mgh``/``.mgz`` and starts like one (version 1;
    inside the gzip stream for ``.mgz``)."""
    path = Path(path)
    if full_suffix(path) not in MGH_SUFFIXES:
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
        if head[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as fh:
                head = fh.read(4)
    except (OSError, EOFError, zlib.error):
        return True  # named MGH, damaged: the reader says how
    return head == _VERSION


def read_mgh(path: str | Path, *, volume_index: int = 0) -> Volume:
    """Read an MGH/MGZ file into a canonical RAS+ :class:`~engine.core.volume.Volume`.

    Raises
    ------
    TruncatedFileError, UnsupportedFormatError, InvalidImageError
        With a one-line message naming the file and the problem.
    """
    path = Path(path)
    check_file(path, "an MGH file")
    if not is_mgh(path):
        raise UnsupportedFormatError("not an MGH/MGZ file (no version-1 header)", path=path)
    try:
        img = nib.load(str(path))
    except (EOFError, zlib.error, OSError, struct.error) as exc:
        raise TruncatedFileError(f"file is truncated or corrupt ({exc})", path=path) from None
    except (ImageFileError, HeaderDataError, ValueError) as exc:
        raise InvalidImageError(f"unreadable MGH header ({exc})", path=path) from None
    if not isinstance(img, nib.MGHImage):
        raise UnsupportedFormatError(f"read as {type(img).__name__}, not an MGH volume",
                                     path=path)
    hdr = img.header
    shape = tuple(int(s) for s in img.shape)
    if len(shape) < 3 or min(shape) < 1:
        raise InvalidImageError(f"MGH dimensions {shape}: not a volume", path=path)
    if float(np.prod(shape, dtype=float)) * img.get_data_dtype().itemsize > MAX_BYTES:
        raise InvalidImageError(f"MGH of {'x'.join(map(str, shape))} voxels is over "
                                f"{MAX_BYTES // 1024**3} GiB", path=path)
    affine = np.asarray(img.affine, float)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InvalidImageError("the vox2ras matrix is singular or not finite", path=path)
    warnings: list[str] = []
    assumed = int(hdr["goodRASFlag"]) == 0
    if assumed:
        warnings.append("goodRASFlag 0 (no valid orientation in the file): FreeSurfer's "
                        "default coronal orientation is used")
    frames = shape[3] if len(shape) > 3 else 1
    if not 0 <= volume_index < frames:
        raise InvalidImageError(f"frame {volume_index} asked of {frames}", path=path)
    if frames > 1:
        warnings.append(f"{frames} frames: using frame {volume_index} only")
    try:
        proxy = img.dataobj
        data = np.asarray(proxy[..., volume_index] if len(shape) > 3 else proxy)
    except (EOFError, zlib.error, OSError, ValueError) as exc:
        raise TruncatedFileError(f"voxel data is truncated or corrupt ({exc})",
                                 path=path) from None
    data = finite_voxels(data, path, warnings)
    for w in warnings:
        log.warning("%s: %s", path.name, w)
    metadata: dict[str, Any] = {
        "path": str(path), "format": "mgh", "description": "", "warnings": warnings,
        "original_shape": shape, "geometry": "assumed" if assumed else "file",
    }
    return Volume.from_file_array(data, affine, format="mgh", modality=guess_modality(data),
                                  metadata=metadata)
