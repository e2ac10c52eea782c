"""One entry point to read and write volumes, whatever the format.

* :func:`load` -- an image from a NIfTI file, a DICOM file or a DICOM folder, an
  NRRD file (3D Slicer, ITK) or a FreeSurfer MGH/MGZ file, as a canonical RAS+
  :class:`~engine.core.volume.Volume`.
* :func:`load_labels` -- a label map, checked against the image it belongs to.
* :func:`save` -- NIfTI output in the source file's geometry, written atomically.

The format is recognised from the content (magic bytes), not trusted from the
extension; every reader validates before it allocates and raises a typed
:class:`~engine.core.errors.ReadError` with a one-line message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import (
    GeometryMismatchError,
    InvalidImageError,
    ReadError,
    TruncatedFileError,
    UnsupportedFormatError,
    unknown_name,
)
from ..core.jobs import CancelToken
from ..core.volume import (
    BRAIN_TISSUE_LABELS,
    Label,
    LabelMap,
    LabelTable,
    Volume,
    value_counts,
)
from . import label_tables
from .atomic import full_suffix
from .mgh import MGH_SUFFIXES, read_mgh
from .nifti import is_nifti, read_nifti, write_nifti
from .nrrd_volume import read_nrrd
from .resample import resample_labels_to

__all__ = ["detect_format", "load", "load_labels", "save"]

log = logging.getLogger(__name__)

_DICOM_SUFFIXES = {".dcm", ".dicom", ".ima", ""}


def detect_format(path: str | Path) -> str:
    """``"nifti"``, ``"dicom"``, ``"dicom-folder"``, ``"nrrd"`` or ``"mgh"`` from the
    file's content (NRRD and MGH also from their names: their readers refuse a file so
    named that is not one).

    Raises :class:`~engine.core.errors.UnsupportedFormatError` for anything else.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such file or folder", str(path))
    if path.is_dir():
        return "dicom-folder"
    if path.stat().st_size == 0:
        raise TruncatedFileError("file is empty", path=path)
    with path.open("rb") as fh:
        head = fh.read(132)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if is_nifti(path):
        return "nifti"
    if head[:7] == b"NRRD000" or full_suffix(path) in (".nrrd", ".nhdr"):
        return "nrrd"  # the reader says when a file so named is not one
    if full_suffix(path) in MGH_SUFFIXES:
        return "mgh"  # no magic: by its name; the reader checks the header
    if full_suffix(path) in (".nii", ".nii.gz", ".hdr", ".img"):
        if head[:2] == b"\x1f\x8b":
            # A gzip stream named like NIfTI: the reader tells a truncated or
            # corrupt stream (TruncatedFileError) from one that holds no header.
            return "nifti"
        raise UnsupportedFormatError("not a NIfTI file (no NIfTI-1/2 header found)", path=path)
    if full_suffix(path) in _DICOM_SUFFIXES:
        from .dicom import is_dicom_file

        if is_dicom_file(path):
            return "dicom"
        raise UnsupportedFormatError("not a DICOM file (no DICM preamble or image tags)", path=path)
    raise UnsupportedFormatError(
        unknown_name("file format", full_suffix(path),
                     ("NIfTI (.nii, .nii.gz)", "DICOM (.dcm, .ima, no extension, folders)",
                      "NRRD (.nrrd, .nhdr)", "MGH (.mgh, .mgz)")),
        path=path,
    )


def load(
    path: str | Path,
    *,
    series: str | int | None = None,
    volume_index: int = 0,
    irregular: str = "resample",
    progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> Volume:
    """Read an image as a canonical RAS+ :class:`~engine.core.volume.Volume`.

    Parameters
    ----------
    path : str or Path
        NIfTI file, DICOM file, folder of DICOM files (searched recursively), NRRD
        file (``.nrrd``, ``.nhdr``) or MGH file (``.mgh``, ``.mgz``).
    series : str or int, optional
        DICOM series to read (UID or index in
        :func:`engine.io.dicom.list_series` order); default: the largest
        that reads (see :func:`engine.io.dicom.read_dicom`).
    volume_index : int
        Volume of a 4-D NIfTI, item of an NRRD's non-spatial axis or frame of an
        MGH file to read (default the first, with a warning).
    irregular : {"resample", "error"}
        What to do with unevenly spaced or missing DICOM slices.

    Examples
    --------
    >>> import os, nibabel
    >>> f = os.path.join(os.path.dirname(nibabel.__file__), "tests", "data", "anatomical.nii")
    >>> load(f).shape
    (33, 41, 25)
    """
    kind = detect_format(path)
    if kind == "nifti":
        return read_nifti(path, volume_index=volume_index)
    if kind == "nrrd":
        return read_nrrd(path, volume_index=volume_index)
    if kind == "mgh":
        return read_mgh(path, volume_index=volume_index)
    from .dicom import read_dicom

    return read_dicom(path, series=series, irregular=irregular, progress=progress, cancel=cancel)


def _as_integer_labels(volume: Volume, path: Path) -> np.ndarray:
    data = volume.array
    if data.dtype.kind in "iub":
        if data.dtype.kind == "i" and data.size and data.min() < 0:
            raise InvalidImageError("label map holds negative values", path=path)
        return data
    rounded = np.rint(data)
    if not np.allclose(rounded, data, atol=1e-3):
        raise InvalidImageError(
            "not a label map: voxel values are not integers (is this an image?)", path=path
        )
    if rounded.min() < 0 or rounded.max() > 2**31 - 1:
        raise InvalidImageError("label values out of range", path=path)
    top = rounded.max()
    dtype = np.uint8 if top < 256 else (np.uint16 if top < 65536 else np.int32)
    return rounded.astype(dtype)


def _freesurfer_names(path: Path) -> LabelTable:
    """The names of a FreeSurfer label map's values: FreeSurfer's lookup table when
    FreeSurfer is installed, else "Label N" -- never Delineo's tissue names, which would
    be wrong (aseg: 2 is left cerebral white matter, 3 its cortex)."""
    lut = label_tables.freesurfer_lookup_table()
    if lut is not None:
        try:
            table = label_tables.read_label_table(lut)
        except ReadError as exc:
            log.warning("%s: FreeSurfer's lookup table was not read: %s", path.name, exc)
        else:
            log.info("%s: label names from %s", path.name, lut)
            return table  # cut to the map's values by load_labels, as any long table
    log.warning("%s: FreeSurfer label values, named \"Label N\" (no FreeSurfer lookup "
                "table: set FREESURFER_HOME, or give the names with a label table file)",
                path.name)
    return LabelTable.from_labels([Label(0, "Background", (0, 0, 0))])


def load_labels(
    path: str | Path,
    *,
    reference: Volume | None = None,
    resample: bool = False,
    labels: LabelTable | None = None,
) -> LabelMap:
    """Read a label map; with *reference*, check it lies on that image's grid.

    Parameters
    ----------
    path : str or Path
    reference : Volume, optional
        The image the labels belong to.
    resample : bool
        If the grids differ: ``False`` raises
        :class:`~engine.core.errors.GeometryMismatchError` listing the differences;
        ``True`` resamples the labels (nearest neighbour) onto *reference*.
    labels : LabelTable, optional
        Label table to use; default: the one stored in the file (a Delineo
        NIfTI, a 3D Slicer segmentation), else the brain tissue table -- except
        for a FreeSurfer MGH/MGZ file, whose values (e.g. ``aseg.mgz``) are named
        "Label N".
    """
    path = Path(path)
    vol = load(path)
    array = _as_integer_labels(vol, path)
    table = labels or vol.metadata.get("labels")
    if table is None and vol.metadata.get("format") == "mgh":
        table = _freesurfer_names(path)
    table = table or BRAIN_TISSUE_LABELS
    if len(table) > label_tables.LONG_TABLE:
        table = label_tables.fitted(table, set(value_counts(array)))
    result = LabelMap(
        array, vol.affine, labels=table, source=vol.source, metadata=vol.metadata, modality="SEG"
    )
    if reference is not None and not reference.same_grid(result):
        diffs = reference.grid_differences(result)
        if not resample:
            raise GeometryMismatchError(
                "label map does not match the image grid: " + "; ".join(diffs),
                differences=diffs,
                path=path,
            )
        log.warning("%s: resampling labels onto the image grid (%s)", path.name, "; ".join(diffs))
        result = resample_labels_to(result, reference)
    elif reference is not None:
        # Same grid: adopt the image's source geometry so saving lands on the image.
        result = LabelMap(
            result.array, reference.affine.copy(), labels=table, source=reference.source,
            metadata=result.metadata, modality="SEG",
        )
    return result


def save(volume: Volume, path: str | Path, **kwargs: Any) -> Path:
    """Write a volume or label map; see :func:`engine.io.nifti.write_nifti`."""
    return write_nifti(volume, path, **kwargs)
