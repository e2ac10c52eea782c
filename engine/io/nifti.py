"""NIfTI-1 and NIfTI-2 (``.nii``, ``.nii.gz``) reading and writing.

Reading validates the header against the file before any voxel array is
allocated: magic and header size, dimensions, data type, expected byte count
against the file (or gzip trailer) size, voxel sizes and affine. Scaling
(``scl_slope``/``scl_inter``) is applied as the format requires; nothing else
touches the intensities.

Writing puts the array back in the geometry of the file it came from (same
shape, same voxel order, same affine and qform/sform codes) unless asked for
the canonical RAS+ grid, and goes through :mod:`engine.io.atomic`.
"""

from __future__ import annotations

import gzip
import json
import logging
import struct
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from ..core.errors import (
    InvalidImageError,
    TruncatedFileError,
    UnsupportedFormatError,
    WriteError,
    unknown_name,
)
from ..core.volume import LabelMap, LabelTable, Volume
from .atomic import atomic_path, full_suffix
from .voxels import check_file, finite_voxels, guess_modality

__all__ = ["MAX_BYTES", "NIFTI_SUFFIXES", "is_nifti", "read_nifti", "write_nifti"]

#: The names of the NIfTI files Delineo writes (single-file NIfTI, plain or gzipped).
NIFTI_SUFFIXES = (".nii", ".nii.gz")

log = logging.getLogger(__name__)

#: Largest voxel payload Delineo agrees to allocate for one volume (bytes).
MAX_BYTES = 8 * 1024**3
#: NIfTI extension code for free text; Delineo stores its label table there as JSON.
_EXT_COMMENT = 6
_LABELS_TAG = "delineo-labels:"
_RESULT_TAG = "delineo-result:"
#: Metadata keys of a segmentation result kept in a label file's header extension.
RESULT_KEYS = ("method", "pipeline", "pipeline_description", "warnings", "plausibility")
_NIFTI1_DIM_MAX = 32767


def _head_bytes(path: Path, n: int = 544) -> tuple[bytes, bool]:
    """First *n* bytes of the (possibly gzipped) file and whether it is gzipped."""
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                return gz.read(n), True
        except (OSError, EOFError, zlib.error) as exc:
            raise TruncatedFileError(
                f"gzip stream is corrupt or truncated ({exc})", path=path
            ) from None
    with path.open("rb") as fh:
        return fh.read(n), False


def _nifti_version(head: bytes) -> tuple[int, str] | None:
    """(version, byte order) from the header bytes, or None if not NIfTI/Analyze."""
    if len(head) < 4:
        return None
    for order in ("<", ">"):
        size = struct.unpack(order + "i", head[:4])[0]
        if size == 348 and len(head) >= 348:
            magic = head[344:348]
            return (1 if magic in (b"n+1\x00", b"ni1\x00") else 0), order
        if size == 540 and len(head) >= 8:
            return 2, order
    return None


def is_nifti(path: str | Path) -> bool:
    """Cheap check: does *path* start with a NIfTI-1/2 (or Analyze) header?"""
    try:
        head, _ = _head_bytes(Path(path))
    except (OSError, TruncatedFileError):
        return False
    return _nifti_version(head) is not None


def _gzip_isize(path: Path) -> int:
    """Uncompressed size modulo 2**32 of the *last* gzip member (its trailer)."""
    with path.open("rb") as fh:
        fh.seek(-4, 2)
        return struct.unpack("<I", fh.read(4))[0]


def _measure_gzip(path: Path, *, chunk: int = 1 << 20) -> tuple[int, str, bool]:
    """Decompress the whole gzip file in chunks; return ``(size, problem, corrupt)``.

    Follows what Python's :mod:`gzip` (hence nibabel) reads: every member in
    turn, zero bytes between or after members skipped. *size* counts the bytes
    that decompress cleanly; *problem* is ``""`` for an intact stream, else
    what stopped it (cut inside a member, bytes that are not gzip after the
    last member, bad deflate data or checksum), and *corrupt* tells bad data
    from a stream that merely ends early. Memory stays at a few chunks.
    """
    total = 0
    member = zlib.decompressobj(wbits=31)
    in_member = False
    with path.open("rb") as fh:
        data = b""
        while True:
            if not data:
                data = fh.read(chunk)
                if not data:
                    return total, ("it ends inside a gzip member" if in_member else ""), False
            if not in_member:
                data = data.lstrip(b"\0")
                if not data:
                    continue
                if len(data) < 2:
                    data += fh.read(chunk)
                if data[:2] != b"\x1f\x8b":
                    return total, "bytes that are not gzip follow the last member", False
                member = zlib.decompressobj(wbits=31)
                in_member = True
            try:
                out = member.decompress(data, chunk)
            except zlib.error as exc:
                return total, f"bad gzip data: {exc}", True
            total += len(out)
            if member.eof:
                data, in_member = member.unused_data, False
            else:
                data = member.unconsumed_tail


def _check_gzip_length(path: Path, expected: int, warnings: list[str]) -> None:
    """Refuse a .nii.gz whose stream yields fewer than *expected* bytes.

    The trailer of an ordinary one-member file states its size (modulo
    2**32): when it matches, the file is accepted at once. Anything else (a
    file written as several members, e.g. ``gzip -c a > f; gzip -c b >> f`` or
    by tools that flush in blocks; zero padding; a cut or damaged stream) is
    measured by decompressing it once. Damage after the voxel data is only a
    warning, as nibabel reads such a file completely.
    """
    if _gzip_isize(path) == expected % 2**32:
        return
    got, problem, corrupt = _measure_gzip(path)
    if got < expected:
        what = "is corrupt" if corrupt else "is truncated"
        raise TruncatedFileError(
            f"file {what}: it holds {got} bytes once decompressed but the header needs "
            f"{expected}" + (f" ({problem})" if problem else ""),
            path=path,
        )
    if corrupt:
        raise InvalidImageError(f"gzip stream is corrupt ({problem})", path=path)
    if problem:
        warnings.append(
            f"gzip stream damaged after the image data ({problem}); the voxel data is complete"
        )


def _raw_pixdim(head: bytes, version: int, order: str) -> np.ndarray:
    """pixdim[1:4] as stored in the file (nibabel silently 'fixes' zeros to 1)."""
    if version == 2:
        return np.array(struct.unpack(order + "3d", head[112:136]))
    return np.array(struct.unpack(order + "3f", head[80:92]))


def _validate_header(path: Path, img: Any, gzipped: bool, volume_index: int) -> list[str]:
    """Check the header against the file; return warnings. Raises typed errors."""
    hdr = img.header
    shape = tuple(int(s) for s in img.shape)
    warnings: list[str] = []
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise InvalidImageError(f"header has invalid dimensions {shape}", path=path)
    if len(shape) > 4 and any(s > 1 for s in shape[4:]):
        raise InvalidImageError(
            f"{len(shape)}-D data of shape {shape} is not supported (3-D or 4-D only)", path=path
        )
    try:
        dtype = hdr.get_data_dtype()
    except (HeaderDataError, KeyError, ValueError) as exc:
        raise InvalidImageError(f"unsupported data type in header ({exc})", path=path) from None
    if dtype.kind not in "biuf":
        raise InvalidImageError(f"data type {dtype} is not a scalar image", path=path)
    n_voxels = int(np.prod(shape, dtype=np.float64))
    payload = n_voxels * dtype.itemsize
    if payload > MAX_BYTES:
        raise InvalidImageError(
            f"header claims {shape} voxels ({payload / 1024**3:.1f} GiB), beyond the "
            f"{MAX_BYTES / 1024**3:.0f} GiB limit; the header is probably corrupt",
            path=path,
        )
    # Where nibabel really reads the voxels: a header may leave vox_offset at 0.
    offset = int(getattr(img.dataobj, "offset", None) or hdr.get_data_offset())
    if gzipped:
        _check_gzip_length(path, offset + payload, warnings)
    else:
        size = path.stat().st_size
        if size < offset + payload:
            raise TruncatedFileError(
                f"file is {size} bytes but the header needs {offset + payload}", path=path
            )
    zooms = np.asarray(hdr.get_zooms()[:3], dtype=float)
    if not np.all(np.isfinite(zooms)) or np.any(zooms[: min(3, len(shape))] <= 0):
        raise InvalidImageError(f"voxel sizes {tuple(zooms)} are not positive", path=path)
    affine = img.affine
    singular = affine is None or not np.all(np.isfinite(affine))
    if singular or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InvalidImageError("the voxel-to-world affine is missing or singular", path=path)
    if len(shape) >= 4 and shape[3] > 1:
        if not 0 <= volume_index < shape[3]:
            raise InvalidImageError(
                f"volume index {volume_index} is outside the {shape[3]} volumes of this 4-D file",
                path=path,
            )
        warnings.append(
            f"4-D file with {shape[3]} volumes: using volume {volume_index} only"
        )
    if int(hdr.get("sform_code", 0)) == 0 and int(hdr.get("qform_code", 0)) == 0:
        warnings.append("no qform/sform in header: world positions are only voxel sizes")
    return warnings


def result_facts(metadata: dict[str, Any]) -> dict[str, Any]:
    """What a label map's metadata says about the result it is (method, warnings, ...).

    Only for results: empty unless ``method`` or ``pipeline`` is set. The keys
    are :data:`RESULT_KEYS`; values must be JSON-friendly.
    """
    if not (metadata.get("method") or metadata.get("pipeline")):
        return {}
    return {k: metadata[k] for k in RESULT_KEYS if metadata.get(k) not in (None, "", [], {})}


def _result_description(facts: dict[str, Any]) -> str:
    """The 80-byte NIfTI ``descrip`` of a result: what made it and whether to trust it."""
    what = facts.get("pipeline") or facts.get("method") or "result"
    text = f"Delineo {what}"
    if facts.get("warnings"):
        text += f"; OUTSIDE DECLARED USE ({len(facts['warnings'])} warning(s))"
    verdict = (facts.get("plausibility") or {}).get("verdict")
    if verdict:
        text += f"; {verdict}"
    return text.encode("ascii", "replace")[:79].decode("ascii")


def _extension_json(hdr: Any, tag: str, what: str) -> Any:
    """The JSON after *tag* in the first Delineo comment extension that has it, or None."""
    for ext in getattr(hdr, "extensions", []):
        try:
            if ext.get_code() != _EXT_COMMENT:
                continue
            text = ext.get_content()
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
            if text.startswith(tag):
                return json.loads(text[len(tag):].rstrip("\x00"))
        except (ValueError, TypeError, json.JSONDecodeError):
            log.warning("ignoring an unreadable Delineo %s in the NIfTI header", what)
            return None
    return None


def _read_result_extension(hdr: Any) -> dict[str, Any]:
    facts = _extension_json(hdr, _RESULT_TAG, "result record")
    if not isinstance(facts, dict):
        return {}
    return {k: v for k, v in facts.items() if k in RESULT_KEYS}


def _read_labels_extension(hdr: Any) -> LabelTable | None:
    items = _extension_json(hdr, _LABELS_TAG, "label table")
    if items is None:
        return None
    try:
        return LabelTable.from_json(items)
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring an unreadable Delineo label table in the NIfTI header")
        return None


def read_nifti(path: str | Path, *, volume_index: int = 0) -> Volume:
    """Read a NIfTI-1/2 file into a canonical RAS+ :class:`~engine.core.volume.Volume`.

    Parameters
    ----------
    path : str or Path
        ``.nii`` or ``.nii.gz`` file.
    volume_index : int
        For 4-D files, which volume to read (a warning records the choice).

    Raises
    ------
    TruncatedFileError, UnsupportedFormatError, InvalidImageError
        With a one-line message naming the file and the problem.

    Examples
    --------
    >>> import os, nibabel
    >>> f = os.path.join(os.path.dirname(nibabel.__file__), "tests", "data", "anatomical.nii")
    >>> read_nifti(f).axcodes
    ('R', 'A', 'S')
    """
    path = Path(path)
    check_file(path, "a NIfTI file")
    head, gzipped = _head_bytes(path)
    version = _nifti_version(head)
    if version is None:
        raise UnsupportedFormatError("not a NIfTI file (no NIfTI-1/2 header found)", path=path)
    try:
        img = nib.load(str(path))
    except (ImageFileError, HeaderDataError, ValueError, struct.error) as exc:
        if gzipped:  # a stream cut inside the header region also ends up here
            got, problem, corrupt = _measure_gzip(path)
            if problem:
                what = "is corrupt" if corrupt else "is truncated"
                raise TruncatedFileError(
                    f"file {what}: only {got} bytes decompress ({problem})", path=path
                ) from None
        raise InvalidImageError(f"unreadable NIfTI header ({exc})", path=path) from None
    except (EOFError, zlib.error, OSError) as exc:
        raise TruncatedFileError(f"file is truncated or corrupt ({exc})", path=path) from None
    if not isinstance(img.header, nib.analyze.AnalyzeHeader):
        # nibabel picks another image class from the header's intent, e.g. a
        # CIFTI-2 file (a matrix over brain surfaces and voxels, not a grid).
        kind = "CIFTI-2" if "cifti" in type(img).__name__.lower() else type(img).__name__
        raise UnsupportedFormatError(
            f"{kind} file: a matrix over brain structures, not a volume image", path=path
        )
    warnings = _validate_header(path, img, gzipped, volume_index)
    if int(img.header.get("sform_code", 0)) == 0:
        pixdim = _raw_pixdim(head, version[0], version[1])
        n_spatial = min(3, len(img.shape))
        if not np.all(np.isfinite(pixdim)) or np.any(pixdim[:n_spatial] == 0):
            raise InvalidImageError(
                f"voxel sizes {tuple(float(p) for p in pixdim)} in the header are zero or "
                "invalid and no sform gives the geometry",
                path=path,
            )

    try:
        proxy = img.dataobj
        if len(img.shape) >= 4:
            index = (slice(None),) * 3 + (volume_index,) + (0,) * (len(img.shape) - 4)
            data = np.asarray(proxy[index])
        else:
            data = np.asarray(proxy)
    except (EOFError, zlib.error, OSError, ValueError) as exc:
        raise TruncatedFileError(f"voxel data is truncated or corrupt ({exc})", path=path) from None
    data = finite_voxels(data, path, warnings)
    for w in warnings:
        log.warning("%s: %s", path.name, w)

    hdr = img.header
    descrip = hdr.get("descrip")
    description = ""
    if descrip is not None:
        description = descrip.item().decode("latin-1", "replace").strip("\x00 ")
    metadata: dict[str, Any] = {
        "path": str(path),
        "format": f"nifti{version[0] or 1}" if version[0] else "analyze",
        "description": description,
        "warnings": warnings,
        "original_shape": tuple(int(s) for s in img.shape),
        "qform_code": int(hdr.get("qform_code", 0)),
        "sform_code": int(hdr.get("sform_code", 0)),
    }
    # As for DICOM: "assumed" when the file gives no world geometry (voxel sizes only).
    no_xform = metadata["qform_code"] == 0 and metadata["sform_code"] == 0
    metadata["geometry"] = "assumed" if no_xform else "file"
    table = _read_labels_extension(hdr)
    if table is not None:
        metadata["labels"] = table
    result = _read_result_extension(hdr)
    if result:
        # A Delineo result: who made it, and its warnings (e.g. run outside the declared use).
        metadata["result"] = result
        for key in ("method", "pipeline", "pipeline_description", "plausibility"):
            if key in result:
                metadata[key] = result[key]
        metadata["warnings"] = list(warnings) + [
            w for w in result.get("warnings", []) if w not in warnings]
    spatial = data.reshape(data.shape[:3]) if data.ndim > 3 else data
    return Volume.from_file_array(
        spatial,
        img.affine,
        format="nifti",
        header=hdr.copy(),
        modality="SEG" if int(hdr.get("intent_code", 0)) == 1002 else guess_modality(spatial),
        metadata=metadata,
    )


def _label_dtype(array: np.ndarray) -> np.dtype:
    top = int(array.max()) if array.size else 0
    if top <= np.iinfo(np.uint8).max:
        return np.dtype(np.uint8)
    if top <= np.iinfo(np.int16).max:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


def write_nifti(volume: Volume, path: str | Path, *, geometry: str = "source") -> Path:
    """Write *volume* (or a :class:`LabelMap`) as NIfTI, atomically.

    Parameters
    ----------
    volume : Volume or LabelMap
    path : str or Path
        Ends in ``.nii`` or ``.nii.gz``.
    geometry : {"source", "canonical"}
        ``"source"`` (default) writes the voxel order, shape and affine of the
        file the volume was read from, so a mask lands exactly on its image in
        any viewer. ``"canonical"`` writes Delineo's RAS+ grid.

    Label maps are written with the smallest integer type that holds them,
    ``intent`` *label*, unit scaling and the label table in a header extension;
    a segmentation result also keeps what made it and its warnings
    (:func:`result_facts`) in a second extension and in ``descrip``, so a
    label file run outside its declared use says so wherever it goes.
    NIfTI-2 is used when a dimension exceeds NIfTI-1's 32767 limit.
    """
    path = Path(path)
    if full_suffix(path) not in NIFTI_SUFFIXES:
        raise WriteError(unknown_name("output format", full_suffix(path) or path.name,
                                      NIFTI_SUFFIXES), path=path)
    if geometry not in ("source", "canonical"):
        raise ValueError("geometry must be 'source' or 'canonical'")
    src = volume.source
    if geometry == "source" and src.format != "memory":
        array = src.to_source(volume.array)
        affine = src.affine
        base_header = src.header if src.format == "nifti" else None
    else:
        array, affine, base_header = volume.array, volume.affine, None

    is_labels = isinstance(volume, LabelMap)
    if is_labels:
        array = np.ascontiguousarray(array, dtype=_label_dtype(array))
    elif array.dtype == np.float64:
        array = array.astype(np.float32)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)

    big = any(s > _NIFTI1_DIM_MAX for s in array.shape)
    klass = nib.Nifti2Image if big or isinstance(base_header, nib.Nifti2Header) else nib.Nifti1Image
    header = None
    if base_header is not None and isinstance(base_header, klass.header_class):
        header = base_header.copy()
        if hasattr(header, "extensions"):
            header.extensions.clear()
    img = klass(np.asarray(array), affine, header=header)
    hdr = img.header
    hdr.set_data_dtype(array.dtype)
    if is_labels:
        hdr.set_slope_inter(1.0, 0.0)
    else:
        hdr.set_slope_inter(None, None)
    if header is not None:
        qcode = int(base_header.get("qform_code", 0)) or 1
        scode = int(base_header.get("sform_code", 0)) or 1
        img.set_qform(affine, code=qcode)
        img.set_sform(affine, code=scode)
    else:
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
    hdr.set_xyzt_units("mm", "sec")
    if is_labels:
        hdr.set_intent("label")
        hdr["cal_min"], hdr["cal_max"] = 0, float(array.max() if array.size else 0)
        payload = _LABELS_TAG + json.dumps(volume.labels.to_json())
        hdr.extensions.append(nib.nifti1.Nifti1Extension(_EXT_COMMENT, payload.encode("utf-8")))
        facts = result_facts(volume.metadata)
        if facts:
            payload = _RESULT_TAG + json.dumps(facts, default=str)
            hdr.extensions.append(
                nib.nifti1.Nifti1Extension(_EXT_COMMENT, payload.encode("utf-8")))
            hdr["descrip"] = _result_description(facts)
    else:
        hdr["cal_min"], hdr["cal_max"] = 0, 0
    try:
        with atomic_path(path) as tmp:
            nib.save(img, str(tmp))
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(f"could not write ({exc.strerror or exc})", path=path) from None
    return path
