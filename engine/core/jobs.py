"""Long-running work: progress callbacks and cooperative cancellation.

Every long task in the engine takes ``progress(fraction, message)`` and a
:class:`CancelToken`, and calls ``token.check()`` between slices, tiles or
iterations. Only ``viewer/workers.py`` knows about threads; the engine just
reports and stops when asked.

Examples
--------
>>> token = CancelToken()
>>> def work(progress=None, cancel=None):
...     for i in range(3):
...         check_cancel(cancel)
...         report(progress, (i + 1) / 3, f"step {i + 1}")
>>> work(cancel=token)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "CancelToken",
    "Cancelled",
    "ProgressCallback",
    "check_cancel",
    "report",
    "scaled_progress",
]


class ProgressCallback(Protocol):
    def __call__(self, fraction: float, message: str) -> None: ...


class Cancelled(Exception):  # noqa: N818 - reads better at the call site
    """Raised by :meth:`CancelToken.check` once cancellation was requested."""


class CancelToken:
    """A thread-safe flag a job polls to stop early."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def check_cancel(token: CancelToken | None) -> None:
    """``token.check()`` that accepts ``None``."""
    if token is not None:
        token.check()


def report(progress: ProgressCallback | Callable[[float, str], None] | None,
           fraction: float, message: str = "") -> None:
    """Call *progress* if given, clamping *fraction* to [0, 1]."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), message)


def scaled_progress(
    progress: ProgressCallback | Callable[[float, str], None] | None,
    start: float,
    stop: float,
    prefix: str = "",
) -> Callable[[float, str], None] | None:
    """A callback mapping [0, 1] of a sub-task onto [start, stop] of *progress*."""
    if progress is None:
        return None

    def sub(fraction: float, message: str) -> None:
        text = f"{prefix}{message}" if prefix else message
        report(progress, start + (stop - start) * fraction, text)

    return sub
