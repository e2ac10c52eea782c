"""The examples in the engine's docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[1] / "engine"


def _runs_examples(path: Path) -> bool:
    return any(">>>" in line and "+SKIP" not in line
               for line in path.read_text(encoding="utf-8").splitlines())


#: Every engine module whose docstrings hold an example that runs.
MODULES = sorted(
    ".".join(("engine", *p.relative_to(ENGINE).with_suffix("").parts)).removesuffix(".__init__")
    for p in ENGINE.rglob("*.py")
    if _runs_examples(p)
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
