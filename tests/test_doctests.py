"""The examples in the engine's docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "engine.volume", "engine.params", "engine.jobs", "engine.metrics", "engine.resample",
    "engine.io", "engine.io.nifti", "engine.io.atomic", "engine.editing", "engine.history",
    "engine.live_metrics", "engine.journal",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
