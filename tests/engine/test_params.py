"""Parameter dataclasses: ranges, units, CLI parsing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine.core.errors import ParameterError
from engine.core.params import describe, param, parse_assignments, replace, validate


@dataclass(frozen=True)
class Params:
    dt: float = param(0.1, lo=0.0, hi=1.0, lo_inclusive=False, unit="s", doc="time step")
    iterations: int = param(10, lo=1, hi=1000, doc="iterations")
    mode: str = param("fast", choices=("fast", "exact"), doc="mode")
    tta: bool = param(False, doc="mirroring")


def test_describe_reports_units_ranges_and_docs():
    info = {p.name: p for p in describe(Params)}
    assert info["dt"].unit == "s" and info["dt"].range_text() == "(0, 1]"
    assert info["iterations"].type is int
    assert info["mode"].range_text() == "one of fast, exact"


def test_validate_rejects_out_of_range_values():
    with pytest.raises(ParameterError, match=r"dt=0 s is outside the valid range \(0, 1\]"):
        validate(Params(dt=0.0))
    with pytest.raises(ParameterError, match="mode"):
        validate(Params(mode="slow"))
    with pytest.raises(ParameterError, match="finite"):
        validate(Params(dt=float("nan")))


def test_parse_assignments_coerces_types():
    p = parse_assignments(Params, ["dt=0.5", "iterations=20", "tta=yes", "mode=exact"])
    assert p == Params(dt=0.5, iterations=20, mode="exact", tta=True)


@pytest.mark.parametrize(
    ("items", "message"),
    [(["dt"], "name=value"), (["nope=1"], "unknown parameter"), (["iterations=2.5"], "valid int")],
)
def test_parse_assignments_errors(items, message):
    with pytest.raises(ParameterError, match=message):
        parse_assignments(Params, items)


def test_replace_validates():
    assert replace(Params(), {"dt": 0.2}).dt == 0.2
    with pytest.raises(ParameterError):
        replace(Params(), {"iterations": 0})
