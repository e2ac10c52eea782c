"""Regression guard for the PySide6 6.12.0 refcount bug.

On Python 3.11, PySide6 6.12.0 drops a reference to ``True`` on every signal
emission; after a few hundred emits the interpreter aborts with
``Fatal Python error: bool_dealloc``. Delineo pins PySide6 below 6.12; this
test fails if an installed binding leaks references on emit.
"""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
QtCore = pytest.importorskip("PySide6.QtCore")

EMITS = 5000


class _Emitter(QtCore.QObject):
    flag = QtCore.Signal(bool)
    plain = QtCore.Signal()


def test_signal_emits_do_not_leak_references_to_true(qapp):
    emitter = _Emitter()
    received = []
    emitter.flag.connect(lambda value: received.append(value))
    emitter.plain.connect(lambda: None)
    # Warm up so lazily created objects do not count.
    for _ in range(10):
        emitter.flag.emit(True)
        emitter.plain.emit()
    before = sys.getrefcount(True)
    for _ in range(EMITS):
        emitter.flag.emit(True)
        emitter.plain.emit()
    after = sys.getrefcount(True)
    assert len(received) == EMITS + 10
    # Immortal bools (3.12+) report a constant huge count; on 3.11 it must not fall.
    assert after >= before - 10, f"refcount of True fell from {before} to {after}"


def test_pyside6_version_is_pinned_below_6_12():
    import PySide6

    major, minor = (int(x) for x in PySide6.__version__.split(".")[:2])
    assert (major, minor) < (6, 12), PySide6.__version__
