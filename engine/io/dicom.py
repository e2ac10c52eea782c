"""DICOM reading: a folder, a series or one file as a canonical RAS+ volume.

What the reader guarantees
--------------------------
* **Headers first.** Every candidate file is read with
  ``stop_before_pixels=True`` and validated (image size against the bytes in
  the file, geometry, decoders) before any voxel array is allocated.
* **Geometry from the patient coordinates only.** Slices are ordered by their
  position along the slice normal (the cross product of the two
  ``ImageOrientationPatient`` direction cosines), never by file name or
  ``InstanceNumber``. The affine is built from ``ImagePositionPatient``,
  ``ImageOrientationPatient``, ``PixelSpacing`` and the step between the first
  and the last slice, so a gantry tilt (slices sheared along the normal) keeps
  its true geometry. DICOM's LPS patient space is converted to the RAS world
  of NIfTI/Delineo by negating x and y.
* **Intensities as the scanner meant them.** ``RescaleSlope`` and
  ``RescaleIntercept`` are applied slice by slice (they may differ per slice
  or per frame), so CT is in Hounsfield units. The result stays ``int16`` when
  the rescale is an integral shift and the values fit, else ``float32``.
* **Irregular stacks are reported.** Non-uniform spacing, missing slices,
  mixed orientations or image sizes, duplicate positions and gantry tilt are
  detected. Unevenly spaced stacks are either refused
  (``irregular="error"``) or resampled linearly along the normal onto a
  uniform grid (``irregular="resample"``, the default) with a warning in
  ``metadata["warnings"]``.
* **Typed, one-line errors.** Empty, truncated or non-DICOM files, folders
  without images, absurd image sizes, undecodable or compressed pixel data
  without a decoder all raise a :class:`~engine.errors.ReadError` subclass
  whose message names the file and the problem.

Array layout
------------
The file-order array is indexed ``[column, row, slice]``: voxel axis 0 runs
along the row direction cosine (``IOP[0:3]``) with the column spacing
(``PixelSpacing[1]``), axis 1 along the column direction cosine (``IOP[3:6]``)
with the row spacing (``PixelSpacing[0]``), axis 2 along the sorted slices.
:meth:`engine.volume.Volume.from_file_array` then flips/permutes it to RAS+.

Example
-------
>>> from pydicom.data import get_testdata_file
>>> vol = read_dicom(get_testdata_file("CT_small.dcm"))
>>> vol.shape, vol.modality, str(vol.array.dtype)
((128, 128, 1), 'CT', 'int16')
"""

from __future__ import annotations

import logging
import math
import os
import stat
import struct
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from ..errors import (
    DicomSeriesError,
    InvalidImageError,
    MissingDecoderError,
    NoImageFoundError,
    ParameterError,
    ReadError,
    TruncatedFileError,
    UnsupportedFormatError,
)
from ..jobs import CancelToken, check_cancel, report, scaled_progress
from ..volume import Volume
from .nifti import MAX_BYTES

__all__ = ["DicomSeriesInfo", "is_dicom_file", "list_series", "read_dicom"]

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None] | None

#: Largest Rows / Columns value DICOM can express (US, 16 bits).
_MAX_DIM = 65535
#: Largest number of frames accepted in one file.
_MAX_FRAMES = 100_000
#: Largest absolute difference between direction cosines of "the same" orientation.
_ORIENTATION_TOL = 1e-3
#: Relative tolerance for pixel spacings to count as equal.
_SPACING_RTOL = 1e-3
#: Relative deviation of a slice step from the median step that counts as non-uniform.
_UNIFORM_RTOL = 0.01
#: Absolute floor (mm) for the non-uniformity test (positions are rounded decimal strings).
_UNIFORM_ATOL = 1e-3
#: A step larger than this many median steps means slices are missing.
_GAP_FACTOR = 1.5
#: Tangent of the angle between slice step and normal above which the stack is sheared.
_TILT_TOL = 1e-3
#: Slices closer than this along the normal (mm) share a position.
_DUPLICATE_TOL_MM = 0.01

_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"UT", b"SQ", b"UC", b"UR"}

_PKG_LIBJPEG = "pip install pylibjpeg pylibjpeg-libjpeg"
_PKG_OPENJPEG = "pip install pylibjpeg pylibjpeg-openjpeg"
_PKG_RLE = "pip install pylibjpeg pylibjpeg-rle"

#: Transfer syntax UID -> install hint for a decoder package.
_INSTALL_HINTS: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": _PKG_LIBJPEG,  # JPEG Baseline
    "1.2.840.10008.1.2.4.51": _PKG_LIBJPEG,  # JPEG Extended
    "1.2.840.10008.1.2.4.57": _PKG_LIBJPEG,  # JPEG Lossless P14
    "1.2.840.10008.1.2.4.70": _PKG_LIBJPEG,  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": _PKG_LIBJPEG,  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": _PKG_LIBJPEG,  # JPEG-LS Near Lossless
    "1.2.840.10008.1.2.4.90": _PKG_OPENJPEG,  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": _PKG_OPENJPEG,  # JPEG 2000
    "1.2.840.10008.1.2.4.201": _PKG_OPENJPEG,  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": _PKG_OPENJPEG,  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": _PKG_OPENJPEG,  # HTJ2K
    "1.2.840.10008.1.2.5": _PKG_RLE,  # RLE Lossless
}


# ---------------------------------------------------------------------------
# Public types
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DicomSeriesInfo:
    """Summary of one DICOM series found by :func:`list_series`.

    Attributes
    ----------
    uid : str
        SeriesInstanceUID (``"(no SeriesInstanceUID)"`` when absent).
    description : str
        SeriesDescription, or ``""``.
    modality : str
        Modality tag (``"CT"``, ``"MR"``, ...), or ``"unknown"``.
    n_files : int
        Number of files in the series.
    n_slices : int
        Number of 2-D images, counting every frame of multi-frame files.
    rows, columns : int
        Image size of the first file (a series mixing sizes fails on reading).
    study_uid : str
        StudyInstanceUID, or ``""``.
    series_number : int or None
        SeriesNumber when present.
    files : tuple of Path
        The series' files, sorted by path.
    """

    uid: str
    description: str
    modality: str
    n_files: int
    n_slices: int
    rows: int
    columns: int
    study_uid: str
    series_number: int | None
    files: tuple[Path, ...]


# ---------------------------------------------------------------------------
# Internal records
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _FrameGeom:
    """Geometry and rescale of one 2-D image (a slice or one frame)."""

    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    spacing: tuple[float, float] | None  # PixelSpacing: (row spacing, column spacing)
    thickness: float | None
    slope: float
    intercept: float


@dataclass
class _Header:
    """What the scan learnt about one file, without its pixel data."""

    path: Path
    is_image: bool
    has_preamble: bool
    series_uid: str = ""
    study_uid: str = ""
    sop_uid: str = ""
    sop_class: str = ""
    series_number: int | None = None
    instance_number: int | None = None
    description: str = ""
    modality: str = "unknown"
    rows: int = 0
    columns: int = 0
    samples: int = 1
    bits_allocated: int = 16
    n_frames: int = 1
    photometric: str = ""
    transfer_syntax: str = ""
    frames: list[_FrameGeom] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    problem: ReadError | None = None


@dataclass(frozen=True)
class _FrameRef:
    header: _Header
    index: int  # frame index inside the file
    geom: _FrameGeom


@dataclass
class _Plan:
    """How to assemble the volume: source frames in order, grid and warnings."""

    frames: list[_FrameRef]  # sorted along the normal, duplicates removed
    affine_ras: np.ndarray
    n_out: int
    slice_spacing: float
    # For resampling: per output slice (lower source index, weight of the upper one).
    interp: list[tuple[int, float]] | None = None
    warnings: list[str] = field(default_factory=list)
    tilt_deg: float = 0.0


@contextmanager
def _pydicom_warnings_to_log(path: Path) -> Iterator[None]:
    """Turn pydicom's warnings (invalid VR values...) into debug log lines."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        log.debug("%s: pydicom: %s", path.name, w.message)


# ---------------------------------------------------------------------------
# Small tag helpers (malformed values never raise)
# ---------------------------------------------------------------------------
def _value(ds: Dataset, keyword: str) -> Any:
    try:
        return ds.get(keyword)
    except Exception:  # malformed element: treat as absent
        return None


def _str(ds: Dataset, keyword: str) -> str:
    value = _value(ds, keyword)
    if value is None:
        return ""
    return " ".join(str(value).split())


def _int(ds: Dataset, keyword: str) -> int | None:
    value = _value(ds, keyword)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            return None
        return int(as_float) if as_float.is_integer() else None


def _float(ds: Dataset, keyword: str) -> float | None:
    value = _value(ds, keyword)
    if value is None or value == "":
        return None
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _floats(ds: Dataset, keyword: str, n: int) -> tuple[float, ...] | None:
    value = _value(ds, keyword)
    if value is None or isinstance(value, str | bytes):
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(out) != n or not all(math.isfinite(v) for v in out):
        return None
    return out


def _first_item(ds: Dataset, keyword: str) -> Dataset | None:
    seq = _value(ds, keyword)
    try:
        return seq[0] if seq is not None and len(seq) > 0 else None
    except (TypeError, IndexError):
        return None


# ---------------------------------------------------------------------------
# Sniffing and header reading
# ---------------------------------------------------------------------------
def _looks_like_bare_dicom(head: bytes) -> bool:
    """True when *head* starts like a DICOM data set without preamble."""
    if len(head) < 8:
        return False
    group_le = struct.unpack("<H", head[:2])[0]
    group_be = struct.unpack(">H", head[:2])[0]
    if group_le not in (0x0002, 0x0008) and group_be != 0x0008:
        return False
    vr = head[4:6]
    if vr.isalpha() and vr.isupper():
        return True  # explicit VR
    length = struct.unpack("<I", head[4:8])[0]
    return length < 0x10000  # implicit VR: a short first value


def is_dicom_file(path: str | Path) -> bool:
    """Cheap check: is *path* a DICOM file (holding an image, for bare files)?

    A file with ``DICM`` at byte 128 is accepted at once. A file without the
    preamble is accepted only when it starts like a DICOM data set and pydicom
    can read it (with ``force``) as an image: image tags and pixel data.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    bool
    """
    p = Path(path)
    try:
        if not p.is_file():
            return False
        with p.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    if len(head) == 132 and head[128:132] == b"DICM":
        return True
    if not _looks_like_bare_dicom(head):
        return False
    try:
        header = _scan_file(p)
    except ReadError:
        return False
    return header.is_image


def _pixel_element(
    fh: Any, pos: int, size: int, little: bool, implicit: bool
) -> tuple[bool, int | None, int]:
    """Inspect the element at *pos* (where pydicom stopped before the pixels).

    Returns ``(present, length, available)``: whether a pixel data element
    starts there, its declared length (``None`` for undefined/encapsulated)
    and the bytes left in the file after its header. ``available < 0`` means
    the element header itself is cut off.
    """
    fh.seek(pos)
    head = fh.read(12)
    if len(head) < 4:
        return False, None, 0
    order = "<" if little else ">"
    tag = struct.unpack(order + "HH", head[:4])
    if tag not in _PIXEL_TAGS:
        other = ">" if little else "<"
        if struct.unpack(other + "HH", head[:4]) in _PIXEL_TAGS:
            order = other
        else:
            return False, None, 0
    vr = head[4:6]
    explicit = (not implicit) or (vr.isalpha() and vr.isupper())
    if explicit and vr.isalpha() and vr.isupper():
        if vr in _LONG_VRS:
            if len(head) < 12:
                return True, None, -1
            length, header_len = struct.unpack(order + "I", head[8:12])[0], 12
        else:
            if len(head) < 8:
                return True, None, -1
            length, header_len = struct.unpack(order + "H", head[6:8])[0], 8
    else:
        if len(head) < 8:
            return True, None, -1
        length, header_len = struct.unpack(order + "I", head[4:8])[0], 8
    available = size - pos - header_len
    return True, (None if length == 0xFFFFFFFF else int(length)), available


def _ends_inside_element(ds: Dataset) -> bool:
    """True when the last element read is shorter than its declared length."""
    try:
        keys = list(ds.keys())
        if not keys:
            return False
        raw = ds.get_item(keys[-1])
    except Exception:
        return False
    length = getattr(raw, "length", None)
    value = getattr(raw, "value", None)
    return (
        isinstance(value, bytes)
        and isinstance(length, int)
        and length != 0xFFFFFFFF
        and len(value) < length
    )


def _read_dataset(path: Path, *, stop_before_pixels: bool) -> tuple[Dataset, bool, int, int]:
    """``pydicom.dcmread`` with typed errors.

    Returns ``(dataset, has_preamble, stop, size)``: *stop* is the file offset
    where pydicom stopped reading (right before the pixel data element when
    *stop_before_pixels* is set and the file has one) and *size* the file size.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(132)
            if size == 0:
                raise TruncatedFileError("file is empty", path=path)
            has_preamble = len(head) == 132 and head[128:132] == b"DICM"
            if not has_preamble and not _looks_like_bare_dicom(head):
                if size < 132 and not head[:128].strip(b"\x00"):
                    raise TruncatedFileError(
                        "file is truncated inside the 128-byte DICOM preamble", path=path
                    )
                raise UnsupportedFormatError(
                    "not a DICOM file (no 'DICM' marker at byte 128 and no DICOM tags at the "
                    "start)",
                    path=path,
                )
            fh.seek(0)
            with _pydicom_warnings_to_log(path):
                ds = pydicom.dcmread(
                    fh, stop_before_pixels=stop_before_pixels, force=not has_preamble
                )
            stop = fh.tell()
    except ReadError:
        raise
    except OSError as exc:
        raise ReadError(f"cannot read file ({exc.strerror or exc})", path=path) from None
    except InvalidDicomError as exc:
        raise UnsupportedFormatError(f"not a readable DICOM file ({exc})", path=path) from None
    except (EOFError, struct.error) as exc:
        raise TruncatedFileError(f"DICOM header is truncated ({exc})", path=path) from None
    except MemoryError:
        raise InvalidImageError("DICOM header declares absurd element sizes", path=path) from None
    except Exception as exc:  # pydicom raises many types on corrupt input
        raise InvalidImageError(
            f"unreadable DICOM header ({type(exc).__name__}: {exc})", path=path
        ) from None
    if not has_preamble and len(ds) == 0:
        raise UnsupportedFormatError("not a DICOM file (no DICOM elements found)", path=path)
    return ds, has_preamble, stop, size


def _is_encapsulated(transfer_syntax: str) -> bool:
    """True for compressed (or deflated) pixel data whose length cannot be checked."""
    if not transfer_syntax:
        return False
    uid = UID(transfer_syntax)
    try:
        return bool(uid.is_encapsulated or uid.is_deflated)
    except ValueError:
        return True  # unknown (private) transfer syntax: do not guess its layout


def _transfer_syntax(ds: Dataset) -> str:
    """The file's transfer syntax UID, inferred from the encoding if not stated."""
    meta = getattr(ds, "file_meta", None)
    ts = None
    if meta is not None:
        try:
            ts = meta.get("TransferSyntaxUID")
        except Exception:
            ts = None
    if ts:
        return str(ts)
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        return str(ImplicitVRLittleEndian)
    if implicit:
        return str(ImplicitVRLittleEndian)
    return str(ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def _scan_file(path: Path) -> _Header:
    """Read and validate one file's header (no pixel data).

    Raises :class:`~engine.errors.ReadError` when no DICOM data set can be
    read at all. Problems of a recognisable image (truncated pixel data,
    absurd size...) are stored in ``header.problem`` so that a folder scan can
    still list its series and reading that series reports the problem.
    """
    with _pydicom_warnings_to_log(path):
        return _scan_file_quietly(path)


def _scan_file_quietly(path: Path) -> _Header:
    ds, has_preamble, pos, size = _read_dataset(path, stop_before_pixels=True)
    implicit, little = getattr(ds, "original_encoding", (True, True))
    transfer_syntax = _transfer_syntax(ds)
    if transfer_syntax == str(DeflatedExplicitVRLittleEndian):
        # pydicom inflated the data set in memory: file offsets mean nothing here;
        # the pixel data is checked when it is decoded.
        present, length, available = "Rows" in ds, None, 1
    else:
        try:
            with path.open("rb") as fh:
                present, length, available = _pixel_element(
                    fh, pos, size, little is not False, implicit is not False
                )
        except OSError as exc:
            raise ReadError(f"cannot read file ({exc.strerror or exc})", path=path) from None

    header = _Header(path=path, is_image=False, has_preamble=has_preamble)
    header.series_uid = _str(ds, "SeriesInstanceUID") or "(no SeriesInstanceUID)"
    header.study_uid = _str(ds, "StudyInstanceUID")
    header.sop_uid = _str(ds, "SOPInstanceUID")
    sop_class = _value(ds, "SOPClassUID")
    header.sop_class = getattr(sop_class, "name", str(sop_class or ""))
    header.series_number = _int(ds, "SeriesNumber")
    header.instance_number = _int(ds, "InstanceNumber")
    header.description = _str(ds, "SeriesDescription")
    header.modality = _str(ds, "Modality") or "unknown"
    header.transfer_syntax = transfer_syntax

    has_image_tags = "Rows" in ds and "Columns" in ds
    truncated_header = _ends_inside_element(ds)
    if not has_image_tags:
        image_class = "Image Storage" in header.sop_class
        if truncated_header or (pos >= size and image_class):
            # Cut short: an image file is kept (its series fails on reading);
            # other objects are skipped in folders, reported for single files.
            header.is_image = image_class
            header.problem = TruncatedFileError(
                "file is truncated: it ends before the image attributes"
                if image_class
                else "file is truncated inside its DICOM header",
                path=path,
            )
        return header
    header.is_image = present or pos >= size or truncated_header
    if not header.is_image:
        return header
    if truncated_header or not present:
        header.problem = TruncatedFileError(
            "file is truncated: it ends before the pixel data", path=path
        )
        return header
    try:
        _validate_image(ds, header, length, available)
        header.frames = _frame_geometries(ds, header)
    except ReadError as exc:
        header.problem = exc
        return header
    header.info = _file_info(ds)
    return header


def _validate_image(ds: Dataset, header: _Header, length: int | None, available: int) -> None:
    """Check image size tags against each other and against the file size."""
    path = header.path
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    if rows is None or cols is None or not (1 <= rows <= _MAX_DIM and 1 <= cols <= _MAX_DIM):
        raise InvalidImageError(
            f"invalid image size Rows={_str(ds, 'Rows')!r} Columns={_str(ds, 'Columns')!r}",
            path=path,
        )
    frames_raw = _value(ds, "NumberOfFrames")
    n_frames = 1 if frames_raw in (None, "") else _int(ds, "NumberOfFrames")
    if n_frames is None or not 1 <= n_frames <= _MAX_FRAMES:
        raise InvalidImageError(f"invalid NumberOfFrames {str(frames_raw)!r}", path=path)
    samples = _int(ds, "SamplesPerPixel") or 1
    if samples not in (1, 3):
        raise InvalidImageError(f"unsupported SamplesPerPixel={samples}", path=path)
    bits = _int(ds, "BitsAllocated")
    if bits not in (1, 8, 16, 32, 64):
        raise InvalidImageError(f"unsupported BitsAllocated={bits}", path=path)
    header.rows, header.columns, header.n_frames = rows, cols, n_frames
    header.samples, header.bits_allocated = samples, bits
    header.photometric = _str(ds, "PhotometricInterpretation").upper()

    n_values = rows * cols * n_frames * samples
    expected = (n_values + 7) // 8 if bits == 1 else n_values * (bits // 8)
    if expected > MAX_BYTES:
        raise InvalidImageError(
            f"implausible image size {cols}x{rows}x{n_frames} "
            f"({expected / 1024**3:.1f} GiB of pixel data)",
            path=path,
        )
    if available < 0:
        raise TruncatedFileError("file is truncated inside the pixel data header", path=path)
    if length is None or _is_encapsulated(header.transfer_syntax):
        if available <= 0:
            raise TruncatedFileError("file is truncated: the compressed pixel data is missing",
                                     path=path)
        return
    if length > available:
        raise TruncatedFileError(
            f"file is truncated: pixel data should be {length} bytes, "
            f"only {max(available, 0)} are in the file",
            path=path,
        )
    if length < expected:
        raise InvalidImageError(
            f"pixel data holds {length} bytes but {cols}x{rows}x{n_frames} "
            f"({bits}-bit, {samples} sample(s)) needs {expected}",
            path=path,
        )


def _orientation_tuple(values: tuple[float, ...] | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


def _frame_geometries(ds: Dataset, header: _Header) -> list[_FrameGeom]:
    """Per-frame geometry and rescale (classic, enhanced or legacy multi-frame)."""
    n = header.n_frames
    top_ipp = _floats(ds, "ImagePositionPatient", 3)
    top_iop = _orientation_tuple(_floats(ds, "ImageOrientationPatient", 6))
    top_spacing = _floats(ds, "PixelSpacing", 2) or _floats(ds, "ImagerPixelSpacing", 2)
    top_thick = _float(ds, "SliceThickness")
    top_sbs = _float(ds, "SpacingBetweenSlices")
    top_slope = _float(ds, "RescaleSlope")
    top_inter = _float(ds, "RescaleIntercept")
    if top_slope is None and header.modality == "RTDOSE":
        top_slope = _float(ds, "DoseGridScaling")
    slope0 = 1.0 if top_slope in (None, 0.0) else top_slope
    inter0 = 0.0 if top_inter is None else top_inter

    per = _value(ds, "PerFrameFunctionalGroupsSequence")
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    if per is not None or shared is not None:
        try:
            n_per = len(per) if per is not None else 0
        except TypeError:
            n_per = 0
        if per is not None and n_per != n:
            raise InvalidImageError(
                f"PerFrameFunctionalGroupsSequence has {n_per} items for {n} frames",
                path=header.path,
            )
        frames: list[_FrameGeom] = []
        for f in range(n):
            groups = [per[f]] if per is not None else []
            if shared is not None:
                groups.append(shared)

            def macro(seq: str, groups: list[Dataset] = groups) -> Dataset | None:
                for g in groups:
                    item = _first_item(g, seq)
                    if item is not None:
                        return item
                return None

            pos_item = macro("PlanePositionSequence")
            ori_item = macro("PlaneOrientationSequence")
            pm_item = macro("PixelMeasuresSequence")
            pvt_item = macro("PixelValueTransformationSequence")
            position = _floats(pos_item, "ImagePositionPatient", 3) if pos_item else None
            if position is None and n == 1:
                position = top_ipp
            orientation = (
                _floats(ori_item, "ImageOrientationPatient", 6) if ori_item else None
            ) or top_iop
            spacing = (_floats(pm_item, "PixelSpacing", 2) if pm_item else None) or top_spacing
            thickness = (_float(pm_item, "SliceThickness") if pm_item else None) or top_thick
            if thickness is None and pm_item is not None:
                thickness = _float(pm_item, "SpacingBetweenSlices")
            slope = _float(pvt_item, "RescaleSlope") if pvt_item else None
            inter = _float(pvt_item, "RescaleIntercept") if pvt_item else None
            frames.append(
                _FrameGeom(
                    position=position,
                    orientation=_orientation_tuple(orientation),
                    spacing=spacing,
                    thickness=thickness or top_sbs,
                    slope=slope0 if slope in (None, 0.0) else slope,
                    intercept=inter0 if inter is None else inter,
                )
            )
        if n == 1 or all(fr.position is not None for fr in frames):
            return frames
        if any(fr.position is not None for fr in frames):
            raise InvalidImageError(
                "some frames have a PlanePositionSequence and others not", path=header.path
            )
        # Enhanced object without frame positions: fall through to the legacy rule,
        # keeping the per-frame rescale values.
        slopes = [fr.slope for fr in frames]
        inters = [fr.intercept for fr in frames]
        if top_iop is None:
            top_iop = frames[0].orientation
        if top_spacing is None:
            top_spacing = frames[0].spacing
    else:
        slopes = [slope0] * n
        inters = [inter0] * n

    if n == 1:
        return [_FrameGeom(top_ipp, top_iop, top_spacing, top_thick or top_sbs, slopes[0],
                           inters[0])]

    # Legacy multi-frame: one position for the whole file.
    if top_ipp is None or top_iop is None:
        return [_FrameGeom(None, None, top_spacing, top_thick or top_sbs, slopes[f], inters[f])
                for f in range(n)]
    row, col = np.array(top_iop[:3]), np.array(top_iop[3:])
    normal = np.cross(row, col)
    norm = float(np.linalg.norm(normal))
    normal = normal / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
    offsets_raw = _value(ds, "GridFrameOffsetVector")
    offsets: list[float] | None = None
    if offsets_raw is not None:
        try:
            offsets = [float(v) for v in offsets_raw]
        except (TypeError, ValueError):
            offsets = None
        if offsets is not None and len(offsets) != n:
            raise InvalidImageError(
                f"GridFrameOffsetVector has {len(offsets)} values for {n} frames",
                path=header.path,
            )
    if offsets is not None:
        # Relative offsets start at 0; absolute ones start at the first frame's z.
        rel = [o - offsets[0] for o in offsets]
    else:
        if top_sbs not in (None, 0.0):
            step, source = float(top_sbs), "SpacingBetweenSlices"
        elif top_thick not in (None, 0.0):
            step, source = float(top_thick), "SliceThickness"
        else:
            step, source = 1.0, "no spacing tag: assumed"
        rel = [f * step for f in range(n)]
        header.warnings.append(
            f"multi-frame file without per-frame positions: frames placed {step:g} mm apart "
            f"along the slice normal ({source})"
        )
    ipp = np.array(top_ipp, dtype=float)
    return [
        _FrameGeom(
            tuple(float(v) for v in ipp + rel[f] * normal),  # type: ignore[arg-type]
            top_iop,
            top_spacing,
            top_thick or top_sbs or (abs(rel[1] - rel[0]) if n > 1 else None),
            slopes[f],
            inters[f],
        )
        for f in range(n)
    ]


def _file_info(ds: Dataset) -> dict[str, Any]:
    """Small, JSON-friendly facts of one file for the volume metadata."""
    info: dict[str, Any] = {
        "patient_position": _str(ds, "PatientPosition"),
        "manufacturer": _str(ds, "Manufacturer"),
        "rescale_type": _str(ds, "RescaleType"),
        "dose_units": _str(ds, "DoseUnits"),
        "has_modality_lut": "ModalityLUTSequence" in ds,
    }
    center, width = _float(ds, "WindowCenter"), _float(ds, "WindowWidth")
    if center is None or width is None:
        for source in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            group = _first_item(ds, source)
            voi = _first_item(group, "FrameVOILUTSequence") if group is not None else None
            if voi is not None:
                center, width = _float(voi, "WindowCenter"), _float(voi, "WindowWidth")
                if center is not None and width is not None:
                    break
    if center is not None and width is not None and width > 0:
        info["window_center"] = center
        info["window_width"] = width
    return info


# ---------------------------------------------------------------------------
# Scanning a folder
# ---------------------------------------------------------------------------
def _walk(folder: Path) -> Iterator[Path]:
    """Regular, non-hidden files under *folder* (recursive, sorted, no link loops)."""
    for root, dirs, files in os.walk(folder, followlinks=False, onerror=None):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            p = Path(root) / name
            try:
                if stat.S_ISREG(p.stat().st_mode):
                    yield p
            except OSError:
                continue


@dataclass
class _Scan:
    headers: list[_Header]
    n_files: int = 0
    n_not_dicom: int = 0
    n_unreadable: int = 0
    n_no_image: int = 0


def _scan(path: Path, progress: Progress, cancel: CancelToken | None) -> _Scan:
    """Headers of the DICOM image files at *path* (a folder or one file)."""
    if not path.exists():
        raise FileNotFoundError(2, "no such file or folder", str(path))
    if not path.is_dir():
        check_cancel(cancel)
        try:
            regular = stat.S_ISREG(path.stat().st_mode)
        except OSError as exc:
            raise ReadError(f"cannot read file ({exc.strerror or exc})", path=path) from None
        if not regular:
            raise UnsupportedFormatError("not a regular file", path=path)
        header = _scan_file(path)
        report(progress, 1.0, "Read DICOM header")
        return _Scan([header], n_files=1, n_no_image=0 if header.is_image else 1)
    report(progress, 0.0, "Looking for DICOM files")
    files = list(_walk(path))
    scan = _Scan([], n_files=len(files))
    every = max(1, len(files) // 100)
    for i, f in enumerate(files):
        check_cancel(cancel)
        if i % every == 0:
            report(progress, i / max(1, len(files)), f"Reading DICOM headers {i}/{len(files)}")
        try:
            with f.open("rb") as fh:
                head = fh.read(132)
        except OSError:
            scan.n_unreadable += 1
            continue
        if not (len(head) == 132 and head[128:132] == b"DICM") and not _looks_like_bare_dicom(
            head
        ):
            scan.n_not_dicom += 1
            continue
        try:
            header = _scan_file(f)
        except ReadError as exc:
            log.info("skipping %s", exc)
            scan.n_unreadable += 1
            continue
        if not header.is_image:
            scan.n_no_image += 1
            continue
        scan.headers.append(header)
    report(progress, 1.0, f"Read {len(files)} DICOM headers")
    return scan


def _group(headers: Sequence[_Header]) -> dict[str, list[_Header]]:
    groups: dict[str, list[_Header]] = {}
    for h in headers:
        if h.is_image:
            groups.setdefault(h.series_uid, []).append(h)
    return groups


def _series_infos(groups: dict[str, list[_Header]]) -> list[DicomSeriesInfo]:
    infos = []
    for uid, hdrs in groups.items():
        first = next((h for h in hdrs if h.problem is None), hdrs[0])
        infos.append(
            DicomSeriesInfo(
                uid=uid,
                description=first.description,
                modality=first.modality,
                n_files=len(hdrs),
                n_slices=sum(max(1, h.n_frames) for h in hdrs),
                rows=first.rows,
                columns=first.columns,
                study_uid=first.study_uid,
                series_number=first.series_number,
                files=tuple(sorted(h.path for h in hdrs)),
            )
        )
    infos.sort(
        key=lambda s: (
            -s.n_slices,
            s.series_number if s.series_number is not None else 2**31,
            s.uid,
        )
    )
    return infos


def list_series(
    path: str | Path,
    *,
    progress: Progress = None,
    cancel: CancelToken | None = None,
) -> list[DicomSeriesInfo]:
    """The DICOM image series in a folder (searched recursively) or one file.

    Parameters
    ----------
    path : str or Path
        A folder or a single DICOM file. Hidden files and folders are skipped,
        as are files that are not DICOM or hold no image (DICOMDIR, SR...).
    progress : callable, optional
        ``progress(fraction, message)``.
    cancel : CancelToken, optional
        Checked between files.

    Returns
    -------
    list of DicomSeriesInfo
        Largest series (most slices) first; empty when none was found.
    """
    scan = _scan(Path(path), progress, cancel)
    return _series_infos(_group(scan.headers))


def _describe(info: DicomSeriesInfo) -> str:
    desc = f" {info.description!r}" if info.description else ""
    return f"{info.uid} ({info.modality}{desc}, {info.n_slices} slices)"


def _select_series(
    infos: list[DicomSeriesInfo], series: str | int | None, where: Path
) -> DicomSeriesInfo:
    if series is None:
        return infos[0]
    if isinstance(series, bool) or not isinstance(series, int | str | np.integer):
        raise ParameterError(f"series must be a UID string or an index, not {series!r}")
    if isinstance(series, int | np.integer):
        if 0 <= int(series) < len(infos):
            return infos[int(series)]
        raise DicomSeriesError(
            f"series index {int(series)} out of range: {len(infos)} series found", path=where
        )
    for info in infos:
        if info.uid == series.strip():
            return info
    shown = "; ".join(_describe(i) for i in infos[:5])
    more = f"; and {len(infos) - 5} more" if len(infos) > 5 else ""
    raise DicomSeriesError(f"no series with UID {series!r}; available: {shown}{more}", path=where)


# ---------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------
def _fmt_vec(v: Sequence[float] | np.ndarray) -> str:
    return "(" + ", ".join(f"{float(x):.3g}" for x in v) + ")"


def _lps_to_ras(affine_lps: np.ndarray) -> np.ndarray:
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps


def _affine(
    row: np.ndarray, col: np.ndarray, spacing: tuple[float, float], step: np.ndarray,
    origin: np.ndarray,
) -> np.ndarray:
    """LPS affine of the ``[column, row, slice]`` array."""
    aff = np.eye(4)
    aff[:3, 0] = row * spacing[1]
    aff[:3, 1] = col * spacing[0]
    aff[:3, 2] = step
    aff[:3, 3] = origin
    return aff


def _check_spacing(frames: list[_FrameRef], where: Path) -> tuple[tuple[float, float], list[str]]:
    warns: list[str] = []
    spacings = [f.geom.spacing for f in frames]
    known = [s for s in spacings if s is not None]
    if not known:
        warns.append("no PixelSpacing in the DICOM headers: 1 mm pixels assumed")
        return (1.0, 1.0), warns
    ref = known[0]
    if len(known) != len(spacings):
        raise DicomSeriesError("PixelSpacing is missing from some slices only", path=where)
    arr = np.array(known)
    if not np.allclose(arr, np.array(ref), rtol=_SPACING_RTOL, atol=1e-6):
        other = next(s for s in known if not np.allclose(s, ref, rtol=_SPACING_RTOL))
        raise DicomSeriesError(
            f"mixed pixel spacing in one series: {ref[0]:g}x{ref[1]:g} mm and "
            f"{other[0]:g}x{other[1]:g} mm",
            path=where,
        )
    if ref[0] <= 0 or ref[1] <= 0:
        raise InvalidImageError(f"invalid PixelSpacing {ref[0]:g}\\{ref[1]:g}", path=where)
    return (float(ref[0]), float(ref[1])), warns


def _direction_cosines(iop: Sequence[float], where: Path) -> tuple[np.ndarray, np.ndarray]:
    row, col = np.array(iop[:3], dtype=float), np.array(iop[3:6], dtype=float)
    nr, nc = float(np.linalg.norm(row)), float(np.linalg.norm(col))
    if abs(nr - 1) > 0.01 or abs(nc - 1) > 0.01 or abs(float(row @ col)) > 0.01:
        raise InvalidImageError(
            f"ImageOrientationPatient {_fmt_vec(iop)} is not two orthogonal unit vectors",
            path=where,
        )
    return row / nr, col / nc


def _thickness(frames: list[_FrameRef], warns: list[str]) -> float:
    t = frames[0].geom.thickness
    if t is not None and t > 0:
        return float(t)
    warns.append("one slice without SliceThickness/SpacingBetweenSlices: 1 mm thickness assumed")
    return 1.0


def _plan_without_geometry(frames: list[_FrameRef], where: Path) -> _Plan:
    spacing, warns = _check_spacing(frames, where)
    order = sorted(
        frames,
        key=lambda f: (
            f.header.instance_number if f.header.instance_number is not None else 0,
            str(f.header.path),
            f.index,
        ),
    )
    if len(order) > 1:
        step = 1.0
        t = order[0].geom.thickness
        if t is not None and t > 0:
            step = float(t)
        warns.append(
            "no ImagePositionPatient/ImageOrientationPatient: slices stacked by InstanceNumber "
            f"{step:g} mm apart, orientation unknown (shown as axial)"
        )
    else:
        step = _thickness(order, warns)
        warns.append("no ImagePositionPatient/ImageOrientationPatient: orientation unknown "
                     "(shown as axial)")
    aff = _affine(np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), spacing,
                  np.array([0, 0, step]), np.zeros(3))
    return _Plan(order, _lps_to_ras(aff), len(order), step, warnings=warns)


def _plan_geometry(frames: list[_FrameRef], irregular: str, where: Path) -> _Plan:
    """Order the frames along the normal, check the stack and build the affine."""
    has_geom = [f.geom.position is not None and f.geom.orientation is not None for f in frames]
    if not any(has_geom):
        return _plan_without_geometry(frames, where)
    if not all(has_geom):
        raise DicomSeriesError(
            f"{has_geom.count(False)} of {len(frames)} slices have no "
            "ImagePositionPatient/ImageOrientationPatient",
            path=where,
        )
    spacing, warns = _check_spacing(frames, where)

    iops = np.array([f.geom.orientation for f in frames], dtype=float)
    differs = np.abs(iops - iops[0]).max(axis=1) > _ORIENTATION_TOL
    if differs.any():
        other = iops[np.argmax(differs)]
        raise DicomSeriesError(
            f"mixed slice orientations in one series: {int(differs.sum())} of {len(frames)} "
            f"slices have orientation {_fmt_vec(other)} instead of {_fmt_vec(iops[0])} "
            "(a localizer or several stacks in one series?)",
            path=where,
        )
    row, col = _direction_cosines(iops[0], where)
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)

    positions = np.array([f.geom.position for f in frames], dtype=float)
    dist = positions @ normal
    order = sorted(
        range(len(frames)),
        key=lambda i: (
            dist[i],
            frames[i].header.instance_number or 0,
            str(frames[i].header.path),
            frames[i].index,
        ),
    )
    # Duplicate positions: identical copies of one SOP instance are dropped.
    dup_tol = min(_DUPLICATE_TOL_MM, 0.1 * min(spacing))
    kept: list[int] = []
    n_dropped = 0
    for i in order:
        if kept and abs(dist[i] - dist[kept[-1]]) < dup_tol:
            a, b = frames[kept[-1]], frames[i]
            same_sop = (
                a.header.sop_uid != ""
                and a.header.sop_uid == b.header.sop_uid
                and a.index == b.index
            )
            if same_sop:
                n_dropped += 1
                continue
            n_same = sum(1 for j in order if abs(dist[j] - dist[i]) < dup_tol)
            raise DicomSeriesError(
                f"{n_same} different images share slice position {dist[i]:.2f} mm "
                f"({a.header.path.name} and {b.header.path.name}): several echoes, phases or "
                "time points in one series? Delineo reads one 3-D volume per series",
                path=where,
            )
        kept.append(i)
    if n_dropped:
        warns.append(f"{n_dropped} duplicate file(s) of the same image ignored")
    sorted_frames = [frames[i] for i in kept]
    d = dist[kept]
    pos = positions[kept]
    n = len(kept)

    if n == 1:
        thick = _thickness(sorted_frames, warns)
        aff = _affine(row, col, spacing, normal * thick, pos[0])
        return _Plan(sorted_frames, _lps_to_ras(aff), 1, thick, warnings=warns)

    span = float(d[-1] - d[0])
    # Unit-normal-distance direction of the stack (v . normal == 1).
    v = (pos[-1] - pos[0]) / span
    expected = pos[0] + np.outer(d - d[0], v)
    deviation = float(np.linalg.norm(pos - expected, axis=1).max())
    if deviation > 0.25 * min(spacing) + 1e-3:
        raise DicomSeriesError(
            f"slice positions do not lie on one line (off by up to {deviation:.2f} mm)",
            path=where,
        )
    shear = float(np.linalg.norm(v - normal))
    tilt_deg = math.degrees(math.atan(shear))
    if shear > _TILT_TOL:
        warns.append(
            f"gantry tilt / sheared slice stack: slices are offset {tilt_deg:.2f} degrees from "
            "the slice normal; the affine keeps the true (sheared) geometry"
        )

    steps = np.diff(d)
    median = float(np.median(steps))
    problems: list[str] = []
    gaps = steps > _GAP_FACTOR * median
    if gaps.any():
        n_missing = int(sum(max(1, round(s / median) - 1) for s in steps[gaps]))
        k = int(np.argmax(gaps))
        problems.append(
            f"about {n_missing} missing slice(s): gap of {steps[k]:.3g} mm after slice "
            f"position {d[k]:.2f} mm (median step {median:.3g} mm)"
        )
    uneven = (np.abs(steps - median) > max(_UNIFORM_RTOL * median, _UNIFORM_ATOL)) & ~gaps
    if uneven.any():
        rel = float(np.abs(steps[~gaps] - median).max() / median)
        problems.append(
            f"non-uniform slice spacing: steps from {steps[~gaps].min():.3g} to "
            f"{steps[~gaps].max():.3g} mm (median {median:.3g} mm, {100 * rel:.1f}% deviation)"
        )
    if not problems:
        step = span / (n - 1)
        aff = _affine(row, col, spacing, v * step, pos[0])
        return _Plan(sorted_frames, _lps_to_ras(aff), n, step, warnings=warns, tilt_deg=tilt_deg)

    if irregular == "error":
        raise DicomSeriesError("; ".join(problems), path=where)
    n_out = round(span / median) + 1
    if n_out > 3 * n + 10:
        raise DicomSeriesError(
            "; ".join(problems) + f": too irregular to resample ({n} slices over {span:.1f} mm "
            f"would need {n_out} slices at the median step)",
            path=where,
        )
    step = span / (n_out - 1)
    targets = d[0] + step * np.arange(n_out)
    interp: list[tuple[int, float]] = []
    for t in targets:
        i0 = int(np.clip(np.searchsorted(d, t, side="right") - 1, 0, n - 2))
        w = float(np.clip((t - d[i0]) / (d[i0 + 1] - d[i0]), 0.0, 1.0))
        interp.append((i0, w))
    warns.append(
        "; ".join(problems)
        + f": resampled linearly to {n_out} slices {step:.4g} mm apart"
    )
    aff = _affine(row, col, spacing, v * step, pos[0])
    return _Plan(sorted_frames, _lps_to_ras(aff), n_out, step, interp=interp, warnings=warns,
                 tilt_deg=tilt_deg)


# ---------------------------------------------------------------------------
# Pixel data
# ---------------------------------------------------------------------------
def _check_decoder(transfer_syntax: str, where: Path) -> None:
    """Raise before reading when no installed plugin decodes *transfer_syntax*."""
    if not transfer_syntax:
        return
    uid = UID(transfer_syntax)
    name = uid.name if uid.is_valid else transfer_syntax
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise UnsupportedFormatError(
            f"pixel data in transfer syntax '{name}' cannot be decoded (not supported)",
            path=where,
        ) from None
    if decoder.is_available:
        return
    hint = _INSTALL_HINTS.get(str(uid), "pip install pylibjpeg pylibjpeg-libjpeg "
                              "pylibjpeg-openjpeg pylibjpeg-rle")
    raise MissingDecoderError(
        f"no decoder installed for '{name}' pixel data; install one with: {hint}", path=where
    )


def _decode(header: _Header) -> np.ndarray:
    """Decode one file's pixel data as ``(frames, rows, columns)`` grey values."""
    with _pydicom_warnings_to_log(header.path):
        return _decode_quietly(header)


def _decode_quietly(header: _Header) -> np.ndarray:
    path = header.path
    _check_decoder(header.transfer_syntax, path)
    ds, *_ = _read_dataset(path, stop_before_pixels=False)
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise TruncatedFileError("file is truncated: pixel data incomplete", path=path)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = UID(header.transfer_syntax)
    try:
        arr = ds.pixel_array
    except RuntimeError as exc:
        if "missing dependencies" in str(exc):
            hint = _INSTALL_HINTS.get(header.transfer_syntax, "pip install pylibjpeg")
            raise MissingDecoderError(
                f"cannot decode '{UID(header.transfer_syntax).name}' pixel data "
                f"({str(exc).splitlines()[0]}); install a decoder with: {hint}",
                path=path,
            ) from None
        raise InvalidImageError(f"pixel data could not be decoded ({exc})", path=path) from None
    except MemoryError:
        raise InvalidImageError("not enough memory to decode the pixel data", path=path) from None
    except Exception as exc:  # decoders raise many types on corrupt data
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise InvalidImageError(
            f"pixel data could not be decoded ({type(exc).__name__}: {first})", path=path
        ) from None

    arr = np.asarray(arr)
    if header.info.get("has_modality_lut") and header.samples == 1:
        try:
            from pydicom.pixels import apply_modality_lut

            arr = np.asarray(apply_modality_lut(arr, ds))
        except Exception as exc:
            raise InvalidImageError(f"cannot apply the Modality LUT ({exc})", path=path) from None
    if header.photometric == "PALETTE COLOR":
        try:
            from pydicom.pixels import apply_color_lut

            arr = np.asarray(apply_color_lut(arr, ds))
        except Exception as exc:
            raise InvalidImageError(f"cannot apply the colour palette ({exc})", path=path) from None
    colour = arr.shape[-1] == 3 and (header.samples == 3 or header.photometric == "PALETTE COLOR")
    if colour:
        arr = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
        arr = arr.astype(np.float32)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.shape != (header.n_frames, header.rows, header.columns):
        raise InvalidImageError(
            f"decoded pixel data has shape {arr.shape}, the header says "
            f"{header.n_frames} frame(s) of {header.rows}x{header.columns}",
            path=path,
        )
    return arr


def _assemble(plan: _Plan, raw: list[np.ndarray]) -> np.ndarray:
    """Rescale (per slice) and stack the sorted frames as ``[column, row, slice]``."""
    slopes = [f.geom.slope for f in plan.frames]
    inters = [f.geom.intercept for f in plan.frames]
    rows, cols = raw[0].shape

    def rescaled(k: int) -> np.ndarray:
        return raw[k].astype(np.float64) * slopes[k] + inters[k]

    if plan.interp is not None:
        out = np.empty((cols, rows, plan.n_out), dtype=np.float32)
        for t, (i0, w) in enumerate(plan.interp):
            value = rescaled(i0) if w < 1.0 else rescaled(i0 + 1)
            if 0.0 < w < 1.0:
                value = (1.0 - w) * value + w * rescaled(i0 + 1)
            out[:, :, t] = value.T
        return out

    integral = all(r.dtype.kind in "iub" for r in raw) and all(
        s == 1.0 and float(i).is_integer() for s, i in zip(slopes, inters, strict=True)
    )
    if integral:
        lo = min(int(r.min()) + int(i) for r, i in zip(raw, inters, strict=True))
        hi = max(int(r.max()) + int(i) for r, i in zip(raw, inters, strict=True))
        integral = lo >= -32768 and hi <= 32767
    out = np.empty((cols, rows, len(raw)), dtype=np.int16 if integral else np.float32)
    for k, r in enumerate(raw):
        if integral:
            out[:, :, k] = (r.astype(np.int32) + int(inters[k])).T
        else:
            out[:, :, k] = rescaled(k).T
    return out


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------
def read_dicom(
    path: str | Path,
    *,
    series: str | int | None = None,
    irregular: str = "resample",
    progress: Progress = None,
    cancel: CancelToken | None = None,
) -> Volume:
    """Read a DICOM series (from a folder) or a DICOM file as a RAS+ volume.

    Parameters
    ----------
    path : str or Path
        A folder (searched recursively; non-DICOM, hidden and image-less files
        are skipped) or one DICOM file (a 2-D image becomes a one-slice volume,
        a multi-frame file a 3-D volume).
    series : str or int, optional
        SeriesInstanceUID, or index in :func:`list_series` order. Default:
        the series with the most slices.
    irregular : {"resample", "error"}
        What to do when slices are unevenly spaced or missing: resample
        linearly along the normal onto a uniform grid at (about) the median
        step, with a warning in ``metadata["warnings"]``, or raise
        :class:`~engine.errors.DicomSeriesError`.
    progress : callable, optional
        ``progress(fraction, message)``.
    cancel : CancelToken, optional
        Checked between files.

    Returns
    -------
    Volume
        Canonical RAS+ volume; ``int16`` when the rescaled values are integers
        that fit, else ``float32``. ``metadata`` holds ``series_description``,
        ``series_uid``, ``study_uid``, ``patient_position``, ``modality``,
        ``manufacturer``, ``n_slices``, ``slice_spacing``, ``warnings`` and,
        when present, ``window_center``/``window_width``.

    Raises
    ------
    NoImageFoundError
        No DICOM image at *path*.
    DicomSeriesError
        Unknown series, or slices that do not form one volume.
    MissingDecoderError
        Compressed pixel data without an installed decoder.
    TruncatedFileError, InvalidImageError, UnsupportedFormatError
        Broken or non-DICOM input.
    """
    if irregular not in ("resample", "error"):
        raise ParameterError(f"irregular must be 'resample' or 'error', not {irregular!r}")
    path = Path(path)
    scan = _scan(path, scaled_progress(progress, 0.0, 0.2, ""), cancel)
    groups = _group(scan.headers)
    if not groups:
        if not path.is_dir():
            if scan.headers and scan.headers[0].problem is not None:
                raise scan.headers[0].problem
            sop = scan.headers[0].sop_class if scan.headers else ""
            what = f" ({sop})" if sop else ""
            raise NoImageFoundError(f"DICOM file holds no image{what}", path=path)
        details = []
        if scan.n_no_image:
            details.append(f"{scan.n_no_image} DICOM file(s) without pixel data")
        if scan.n_unreadable:
            details.append(f"{scan.n_unreadable} unreadable DICOM file(s)")
        if scan.n_not_dicom:
            details.append(f"{scan.n_not_dicom} non-DICOM file(s)")
        found = "; ".join(details) if details else "the folder is empty"
        raise NoImageFoundError(f"no DICOM images found ({found})", path=path)
    infos = _series_infos(groups)
    info = _select_series(infos, series, path)
    headers = groups[info.uid]
    broken = [h for h in headers if h.problem is not None]
    if broken:
        first = broken[0].problem
        assert first is not None
        if len(broken) == 1 or not path.is_dir():
            raise first
        raise type(first)(
            f"{len(broken)} broken files in the series, e.g. {broken[0].path.name}: "
            f"{first.problem}",
            path=path,
        )

    sizes = Counter((h.rows, h.columns, h.samples) for h in headers)
    if len(sizes) > 1:
        (a, na), (b, nb) = sizes.most_common(2)
        raise DicomSeriesError(
            f"images of different sizes in one series: {na} file(s) of {a[1]}x{a[0]} and "
            f"{nb} of {b[1]}x{b[0]}" + (" (colour and grey)" if a[2] != b[2] else ""),
            path=path,
        )
    for ts in sorted({h.transfer_syntax for h in headers}):
        _check_decoder(ts, next(h.path for h in headers if h.transfer_syntax == ts))

    frames = [_FrameRef(h, i, g) for h in headers for i, g in enumerate(h.frames)]
    plan = _plan_geometry(frames, irregular, path)
    out_bytes = info.rows * info.columns * plan.n_out * 4
    if out_bytes > MAX_BYTES:
        raise InvalidImageError(
            f"series too large to load: {info.columns}x{info.rows}x{plan.n_out} voxels",
            path=path,
        )

    # Decode file by file, keeping only the frames the plan uses.
    wanted: dict[Path, list[tuple[int, int]]] = {}
    for k, ref in enumerate(plan.frames):
        wanted.setdefault(ref.header.path, []).append((k, ref.index))
    raw: list[np.ndarray | None] = [None] * len(plan.frames)
    by_path = {h.path: h for h in headers}
    decode_progress = scaled_progress(progress, 0.2, 0.95, "")
    for n_done, (file_path, items) in enumerate(wanted.items()):
        check_cancel(cancel)
        report(decode_progress, n_done / len(wanted),
               f"Reading DICOM images {n_done}/{len(wanted)}")
        pixels = _decode(by_path[file_path])
        for k, frame_index in items:
            raw[k] = pixels[frame_index]
    check_cancel(cancel)
    report(progress, 0.95, "Assembling the volume")
    array = _assemble(plan, [r for r in raw if r is not None])

    warns: list[str] = []
    for h in headers:
        for w in h.warnings:
            if w not in warns:
                warns.append(w)
    warns.extend(plan.warnings)
    if any(h.samples == 3 for h in headers) or any(
        h.photometric == "PALETTE COLOR" for h in headers
    ):
        warns.append("colour image converted to grey values (luminance)")
    if any(h.photometric == "MONOCHROME1" for h in headers):
        warns.append("MONOCHROME1 image: low values are displayed bright on the scanner")
    for w in warns:
        log.warning("%s: %s", path.name or str(path), w)

    first = plan.frames[0].header
    meta: dict[str, Any] = {
        "series_description": info.description,
        "series_uid": info.uid,
        "study_uid": info.study_uid,
        "series_number": info.series_number,
        "patient_position": first.info.get("patient_position", ""),
        "modality": info.modality,
        "manufacturer": first.info.get("manufacturer", ""),
        "n_slices": int(array.shape[2]),
        "n_files": len(headers),
        "slice_spacing": float(plan.slice_spacing),
        "transfer_syntax": first.transfer_syntax,
        "warnings": warns,
    }
    if plan.tilt_deg > math.degrees(math.atan(_TILT_TOL)):
        meta["gantry_tilt_deg"] = round(plan.tilt_deg, 3)
    if info.modality == "CT":
        meta["units"] = "HU"
    elif info.modality == "RTDOSE" and first.info.get("dose_units"):
        meta["units"] = first.info["dose_units"]
    elif first.info.get("rescale_type"):
        meta["units"] = first.info["rescale_type"]
    if "window_center" in first.info:
        meta["window_center"] = first.info["window_center"]
        meta["window_width"] = first.info["window_width"]
    report(progress, 1.0, "DICOM series read")
    return Volume.from_file_array(
        array,
        plan.affine_ras,
        format="dicom",
        modality=info.modality,
        metadata=meta,
    )
