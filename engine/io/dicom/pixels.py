"""Pixel data: decoder checks, decoding one file, rescaling and stacking the slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from ...core.errors import (
    InvalidImageError,
    MissingDecoderError,
    ReadError,
    TruncatedFileError,
    UnsupportedFormatError,
)
from .geometry import _Plan
from .headers import _read_dataset, capture_pydicom_log
from .records import _Header

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
    """Decode one file's pixel data as ``(frames, rows, columns)`` grey values.

    What pydicom logs meanwhile is folded in: its warnings join
    ``header.warnings``, and when decoding fails the decoders' own complaints
    end the one-line error message.
    """
    with capture_pydicom_log() as gists:
        try:
            arr = _decode_quietly(header)
        except ReadError as exc:
            if not gists:
                raise
            raise type(exc)(
                f"{exc.problem}; pydicom: {'; '.join(gists)}", path=exc.path
            ) from None
    for gist in gists:
        if f"pydicom: {gist}" not in header.warnings:
            header.warnings.append(f"pydicom: {gist}")
    return arr


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
        first = str(exc).splitlines()[0].rstrip(": ") if str(exc) else type(exc).__name__
        if "all available plugins" in first:
            first = "every installed decoder failed"
        raise InvalidImageError(f"pixel data could not be decoded ({first})", path=path) from None
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
