"""What every file reader does: check the file before reading, then make the voxels
it read finite and guess the modality.

Shared by the NIfTI, NRRD and MGH readers (DICOM has its own modality tag).

Examples
--------
>>> import numpy as np
>>> warnings = []
>>> finite_voxels(np.array([1.0, np.nan, 3.0]), "x.nii", warnings).tolist(), warnings
([1.0, 0.0, 3.0], ['1 NaN/infinite voxels were set to 0'])
>>> guess_modality(np.full((10, 10, 10), 50.0))
'unknown'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import InvalidImageError, TruncatedFileError, UnsupportedFormatError

__all__ = ["check_file", "finite_voxels", "guess_modality"]


def check_file(path: Path, what: str) -> None:
    """Raise the one-line error for a missing *path*, a folder or an empty file (*what*:
    the format's name, e.g. "a NIfTI file")."""
    if not path.exists():
        raise FileNotFoundError(2, "no such file", str(path))
    if path.is_dir():
        raise UnsupportedFormatError(f"is a folder, not {what}", path=path)
    if path.stat().st_size == 0:
        raise TruncatedFileError("file is empty", path=path)


def finite_voxels(data: np.ndarray, path: str | Path, warnings: list[str]) -> np.ndarray:
    """*data* with float64 made float32 and non-finite voxels set to 0 (noted in
    *warnings*); :class:`InvalidImageError` when no voxel is finite."""
    if data.dtype == np.float64:
        data = data.astype(np.float32)
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.any():
            raise InvalidImageError("voxel data is entirely NaN/infinite", path=path)
        n_bad = int(data.size - np.count_nonzero(finite))
        if n_bad:
            data = np.where(finite, data, 0).astype(data.dtype)
            warnings.append(f"{n_bad} NaN/infinite voxels were set to 0")
    return data


def guess_modality(data: np.ndarray) -> str:
    """A file format without a modality tag: call data CT when it looks like Hounsfield
    units (1st percentile at most -900, minimum at least -1100), else "unknown"."""
    if data.dtype.kind in "iuf" and data.size:
        # every n-th voxel in memory order: a view of the file's (Fortran-order) array
        sample = np.ravel(data, order="K")[:: max(1, data.size // 200_000)]
        lo, hi = np.percentile(sample, [1, 99])
        if lo <= -900 and hi >= 0 and float(sample.min()) >= -1100:
            return "CT"
    return "unknown"
