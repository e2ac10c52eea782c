"""Sniffing, reading and validating DICOM headers, without the pixel data."""

from __future__ import annotations

import logging
import re
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from ...core.errors import InvalidImageError, ReadError, TruncatedFileError, UnsupportedFormatError
from ..nifti import MAX_BYTES
from .frames import _frame_geometries
from .records import _Header
from .tags import _first_item, _float, _int, _str, _value

#: Largest Rows / Columns value DICOM can express (US, 16 bits).
_MAX_DIM = 65535
#: Largest number of frames accepted in one file.
_MAX_FRAMES = 100_000

_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"UT", b"SQ", b"UC", b"UR"}


# ---------------------------------------------------------------------------
# pydicom's warnings
# ---------------------------------------------------------------------------
# pydicom reports malformed but readable input (invalid VR values, VR
# mismatches, odd character sets...) with ``warnings.warn`` and, for every
# such message, a record on its own "pydicom" logger (``misc.warn_and_log``).
# Delineo reads damaged files on purpose and reports what matters itself, so
# these warnings must not reach the user's console; the log records stay.
#
# ``warnings.catch_warnings`` cannot do this: it swaps the process-wide filter
# list and ``showwarning`` on entry and restores them on exit, so two threads
# reading at once (the viewer loads in worker threads) corrupt each other's
# state and may lose other code's filters. Instead one "ignore" filter, scoped
# to warnings raised from pydicom's own modules, is added once. Alternatives
# rejected: ``logging.captureWarnings`` reroutes *every* warning of the
# process; setting ``pydicom.config.settings.reading_validation_mode`` to
# IGNORE overrides a process-wide pydicom setting the user may rely on and
# leaves the VR and character-set warnings on.
#
# The filter is (re)installed only when missing: a ``catch_warnings`` block
# elsewhere (pytest, or a caller that imported this package lazily inside
# one) drops it on exit. Re-adding it is a single list insertion, harmless if
# two threads race (the duplicate is inert); a filter the caller put in front
# of it (e.g. ``-W error`` in pytest) still wins, as it should.
_PYDICOM_MODULES = re.compile(r"pydicom(\.|\Z)")


def _quiet_pydicom_warnings() -> None:
    """Make sure warnings raised from pydicom's modules are ignored (idempotent)."""
    for action, message, category, module, lineno in warnings.filters:
        if (
            action == "ignore"
            and message is None
            and category is Warning
            and module == _PYDICOM_MODULES
            and lineno == 0
        ):
            return
    warnings.filterwarnings("ignore", module=_PYDICOM_MODULES.pattern)


_quiet_pydicom_warnings()


# ---------------------------------------------------------------------------
# pydicom's log records
# ---------------------------------------------------------------------------
# Besides warnings, pydicom logs on its "pydicom" logger tree: a WARNING for
# every malformed value it tolerates and, when every pixel decoder fails, one
# ERROR record per plugin, some with a full traceback. Left alone these reach
# the user's console through the root logger. While Delineo reads a file the
# records of *this thread* are diverted into a list instead (a filter on each
# pydicom logger, so other threads and pydicom use outside Delineo keep their
# logging); the reader folds their first lines into the volume's warnings or
# into the one-line error it raises. Rule: no pydicom record emitted inside a
# Delineo read reaches a handler; its gist is reported by Delineo instead.
_capture = threading.local()
_PYDICOM_LOGGER = "pydicom"


class _DivertToSink(logging.Filter):
    """Drop the calling thread's pydicom records into its capture list."""

    def filter(self, record: logging.LogRecord) -> bool:
        sink = getattr(_capture, "sink", None)
        if sink is None:
            return True
        if record.levelno >= logging.WARNING:
            text = record.getMessage().strip().splitlines()
            gist = text[0] if text else record.levelname
            if record.exc_info and record.exc_info[1] is not None:
                gist += f" ({type(record.exc_info[1]).__name__})"
            if gist not in sink:
                sink.append(gist)
        return False


_DIVERT = _DivertToSink()


def _install_divert() -> None:
    """Put the filter on every pydicom logger known now (idempotent)."""
    manager = logging.Logger.manager
    for name in [_PYDICOM_LOGGER, *manager.loggerDict]:
        if name == _PYDICOM_LOGGER or name.startswith(_PYDICOM_LOGGER + "."):
            logger = logging.getLogger(name)
            if _DIVERT not in logger.filters:
                logger.addFilter(_DIVERT)


@contextmanager
def capture_pydicom_log() -> Iterator[list[str]]:
    """Collect this thread's pydicom WARNING/ERROR records as one-line gists.

    Yields the list that fills up while the block runs; nothing pydicom logs
    inside the block reaches a logging handler. Nested use shares one list.
    """
    _install_divert()
    outer = getattr(_capture, "sink", None)
    sink: list[str] = outer if outer is not None else []
    _capture.sink = sink
    try:
        yield sink
    finally:
        _capture.sink = outer


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
    _quiet_pydicom_warnings()
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
            ds = pydicom.dcmread(fh, stop_before_pixels=stop_before_pixels, force=not has_preamble)
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
    """Read and validate one file's header; see :func:`_scan_file_quietly`.

    pydicom's log records (invalid values it tolerates) become header warnings.
    """
    with capture_pydicom_log() as gists:
        header = _scan_file_quietly(path)
    header.warnings.extend(f"pydicom: {g}" for g in gists)
    return header


def _scan_file_quietly(path: Path) -> _Header:
    """Read and validate one file's header (no pixel data).

    Raises :class:`~engine.core.errors.ReadError` when no DICOM data set can be
    read at all. Problems of a recognisable image (truncated pixel data,
    absurd size...) are stored in ``header.problem`` so that a folder scan can
    still list its series and reading that series reports the problem.
    """
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
    header.identity = _identity(ds)
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



def _identity(ds: Dataset) -> dict[str, Any]:
    """UIDs and patient/study attributes a DICOM SEG copies (kept out of metadata)."""
    from .provenance import IDENTITY_KEYWORDS

    out: dict[str, Any] = {
        "sop_class_uid": str(_value(ds, "SOPClassUID") or ""),
        "frame_of_reference_uid": _str(ds, "FrameOfReferenceUID"),
    }
    for keyword in IDENTITY_KEYWORDS:
        if keyword in ds:
            value = _value(ds, keyword)
            out[keyword] = "" if value is None else str(value)
    return out


def _multi(ds: Dataset, keyword: str) -> str:
    """A multi-valued string attribute as DICOM writes it, values joined by backslashes."""
    value = _value(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, str | bytes):
        return _str(ds, keyword)
    try:
        return "\\".join(" ".join(str(v).split()) for v in value)
    except TypeError:
        return _str(ds, keyword)


def _acquisition(ds: Dataset) -> dict[str, Any]:
    """What the file says about how it was acquired (for the contrast check).

    Only attributes present are kept: series and protocol names, ImageType,
    the MR sequence attributes and timings (ms) and any contrast agent.
    """
    facts: dict[str, Any] = {}
    for key, keyword in (("series_description", "SeriesDescription"),
                         ("protocol_name", "ProtocolName"),
                         ("sequence_name", "SequenceName"),
                         ("contrast_agent", "ContrastBolusAgent")):
        text = _str(ds, keyword)
        if text:
            facts[key] = text
    for key, keyword in (("image_type", "ImageType"),
                         ("scanning_sequence", "ScanningSequence"),
                         ("sequence_variant", "SequenceVariant")):
        text = _multi(ds, keyword)
        if text:
            facts[key] = text
    for key, keyword in (("repetition_time_ms", "RepetitionTime"),
                         ("echo_time_ms", "EchoTime"),
                         ("inversion_time_ms", "InversionTime"),
                         ("diffusion_b_value", "DiffusionBValue")):
        value = _float(ds, keyword)
        if value is not None:
            facts[key] = value
    return facts


def _file_info(ds: Dataset) -> dict[str, Any]:
    """Small, JSON-friendly facts of one file for the volume metadata."""
    info: dict[str, Any] = {
        "patient_position": _str(ds, "PatientPosition"),
        "manufacturer": _str(ds, "Manufacturer"),
        "rescale_type": _str(ds, "RescaleType"),
        "dose_units": _str(ds, "DoseUnits"),
        "has_modality_lut": "ModalityLUTSequence" in ds,
        "body_part": _str(ds, "BodyPartExamined").upper(),
        "acquisition": _acquisition(ds),
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
