"""Accessors for DICOM tag values.

Most accessors are tolerant: a malformed value reads as absent, because a
wrong ``SeriesDescription`` or ``WindowWidth`` must not stop a series from
loading. Geometry is different: a malformed ``ImagePositionPatient``,
``ImageOrientationPatient`` or ``PixelSpacing`` would silently put the image
somewhere else, so :func:`_geometry_floats` tells "absent" from "malformed"
and refuses the latter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from ...core.errors import InvalidImageError


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


def _shown(values: Sequence[Any]) -> str:
    """Stored values as DICOM writes them (``a\\b\\c``), on one short line."""
    text = "\\".join(" ".join(str(v).split()) for v in values)
    return "'" + (text if len(text) <= 60 else text[:57] + "...") + "'"


def _geometry_floats(
    ds: Dataset | None, keyword: str, n: int, path: Path, *, context: str = ""
) -> tuple[float, ...] | None:
    """*n* finite numbers of a geometry tag; ``None`` only when the tag is absent or empty.

    An empty value counts as absent (DICOM's "value unknown"). A value with
    the wrong number of items, a non-numeric or a non-finite item raises
    :class:`~engine.core.errors.InvalidImageError` naming the file and the tag.
    *context* (e.g. ``"frame 3: "``) prefixes the message.
    """
    if ds is None:
        return None
    try:
        present = keyword in ds
    except Exception:
        present = False
    if not present:
        return None
    try:
        value = ds[keyword].value
    except Exception as exc:  # pydicom could not even split the value
        raise InvalidImageError(
            f"{context}{keyword} is unreadable ({type(exc).__name__})", path=path
        ) from None
    if value is None or (isinstance(value, str | bytes) and not value.strip()):
        return None
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = list(value)
        if not items:
            return None
    else:
        items = [value]
    if len(items) != n:
        raise InvalidImageError(
            f"{context}{keyword} {_shown(items)} has {len(items)} value(s), {n} expected",
            path=path,
        )
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise InvalidImageError(
            f"{context}{keyword} {_shown(items)} is not {n} numbers", path=path
        ) from None
    if not all(math.isfinite(v) for v in out):
        raise InvalidImageError(
            f"{context}{keyword} {_shown(items)} holds a NaN or infinite value", path=path
        )
    return out
