"""Parameter dataclasses with units, ranges and docs that forms can be built from.

Every method's parameters are a frozen dataclass whose fields are declared
with :func:`param`. The metadata (unit, valid range, one-line doc) feeds
validation, the CLI's ``--param k=v`` parsing, ``delineo-engine methods`` and
the viewer's generated parameter forms.

Examples
--------
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class P:
...     dt: float = param(0.1, lo=0.0, hi=1.0, unit="s", doc="time step")
>>> validate(P(dt=0.5)).dt
0.5
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, get_type_hints

from .errors import ParameterError, unknown_name

__all__ = ["ParamInfo", "describe", "param", "parse_assignments", "replace", "validate"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ParamInfo:
    """What a form or a help text needs to know about one parameter."""

    name: str
    type: type
    default: Any
    lo: float | None
    hi: float | None
    unit: str
    doc: str
    choices: tuple[Any, ...] | None = None
    lo_inclusive: bool = True
    hi_inclusive: bool = True

    def range_text(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.lo is None and self.hi is None:
            return ""
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        left = "[" if self.lo_inclusive else "("
        right = "]" if self.hi_inclusive else ")"
        return f"{left}{lo}, {hi}{right}"


def param(
    default: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    unit: str = "",
    doc: str = "",
    choices: Iterable[Any] | None = None,
    lo_inclusive: bool = True,
    hi_inclusive: bool = True,
) -> Any:
    """Declare a dataclass field with its valid range, unit and documentation."""
    meta = {
        "lo": lo, "hi": hi, "unit": unit, "doc": doc,
        "choices": tuple(choices) if choices is not None else None,
        "lo_inclusive": lo_inclusive, "hi_inclusive": hi_inclusive,
    }
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for sequence defaults (parameters are immutable)")
    return dataclasses.field(default=default, metadata={"delineo": meta})


def describe(params_type: type) -> list[ParamInfo]:
    """The :class:`ParamInfo` of every field of a parameter dataclass."""
    hints = get_type_hints(params_type)
    out = []
    for f in dataclasses.fields(params_type):
        meta = f.metadata.get("delineo", {})
        out.append(
            ParamInfo(
                name=f.name,
                type=hints.get(f.name, type(f.default)),
                default=f.default,
                lo=meta.get("lo"),
                hi=meta.get("hi"),
                unit=meta.get("unit", ""),
                doc=meta.get("doc", ""),
                choices=meta.get("choices"),
                lo_inclusive=meta.get("lo_inclusive", True),
                hi_inclusive=meta.get("hi_inclusive", True),
            )
        )
    return out


def validate(params: T) -> T:
    """Check every field against its declared range; raise ParameterError if not."""
    for info in describe(type(params)):
        value = getattr(params, info.name)
        if info.choices is not None:
            if value not in info.choices:
                raise ParameterError(
                    f"{info.name}={value!r} is not allowed; choose {info.range_text()}"
                )
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            raise ParameterError(f"{info.name}={value!r} must be a finite number")
        below = info.lo is not None and (
            value < info.lo or (not info.lo_inclusive and value == info.lo)
        )
        above = info.hi is not None and (
            value > info.hi or (not info.hi_inclusive and value == info.hi)
        )
        if below or above:
            unit = f" {info.unit}" if info.unit else ""
            raise ParameterError(
                f"{info.name}={value:g}{unit} is outside the valid range {info.range_text()}"
            )
    return params


def _coerce(info: ParamInfo, text: str) -> Any:
    kind = info.type
    try:
        if kind is bool:
            low = text.strip().lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off"}:
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
    except ValueError:
        raise ParameterError(
            f"{info.name}={text!r} is not a valid {getattr(kind, '__name__', kind)}"
        ) from None
    raise ParameterError(f"{info.name} cannot be set from the command line")


def parse_assignments(params_type: type[T], assignments: Iterable[str]) -> T:
    """Build and validate parameters from ``["k=v", ...]`` strings (CLI ``--param``)."""
    infos = {i.name: i for i in describe(params_type)}
    values: dict[str, Any] = {}
    for item in assignments:
        if "=" not in item:
            raise ParameterError(f"parameter {item!r} must be written as name=value")
        key, _, text = item.partition("=")
        key = key.strip()
        if key not in infos:
            raise ParameterError(unknown_name("parameter", key, sorted(infos)))
        values[key] = _coerce(infos[key], text.strip())
    return validate(params_type(**values))


def replace(params: T, changes: Mapping[str, Any]) -> T:
    """``dataclasses.replace`` followed by validation."""
    return validate(dataclasses.replace(params, **dict(changes)))  # type: ignore[type-var]
