"""Tolerant accessors for DICOM tag values: malformed values read as absent."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset


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
