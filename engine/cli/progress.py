"""The terminal progress bar of ``delineo-engine`` (tqdm on stderr).

A :class:`ProgressBar` is the ``progress(fraction, message)`` callable the
engine's long-running functions accept. It draws a tqdm bar on stderr that
fits the terminal width (re-measured at every refresh, so resizing the window
is followed) and clears it when closed. It draws nothing when stderr is not a
terminal (logs, pipes, tests) or after ``delineo-engine --quiet``.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import IO, Any

from tqdm import tqdm

__all__ = ["ProgressBar", "is_quiet", "set_quiet"]

#: Ticks of a bar: the engine reports fractions in [0, 1].
_TICKS = 1000

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence (or restore) every progress bar made afterwards (``--quiet``)."""
    global _quiet
    _quiet = bool(quiet)


def is_quiet() -> bool:
    """Whether ``--quiet`` silenced the progress bars and informational lines."""
    return _quiet


class ProgressBar:
    """Callable ``(fraction, message)`` drawing one terminal-wide line on *stream*.

    Parameters
    ----------
    title : str
        Shown before the bar (a method, a pipeline, "reading"...).
    stream : file, optional
        Where to draw; default ``sys.stderr`` at construction time.
    min_interval : float
        Seconds between two redraws (updates in between are only counted).

    The bar is disabled (every call is a no-op) when *stream* is not a
    terminal or :func:`set_quiet` was called. Use it as a context manager, or
    call :meth:`close` when the work is done.
    """

    def __init__(self, title: str = "", *, stream: IO[str] | None = None,
                 min_interval: float = 0.1) -> None:
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = not _quiet and bool(isatty and isatty())
        self._bar: Any = None
        self._drawn = 0.0
        if self.enabled:
            self._bar = tqdm(
                total=_TICKS, desc=title or None, file=self.stream, dynamic_ncols=True,
                leave=False, bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}{postfix}",
                mininterval=min_interval, miniters=1 if min_interval == 0 else None,
            )

    def __call__(self, fraction: float, message: str = "") -> None:
        if self._bar is None:
            return
        ticks = round(min(1.0, max(0.0, float(fraction))) * _TICKS)
        if message:
            self._bar.set_postfix_str(message, refresh=False)
        if ticks != self._bar.n:
            self._bar.update(ticks - self._bar.n)  # redraws at most every mininterval
        elif message and time.monotonic() - self._drawn >= self._bar.mininterval:
            self._bar.refresh()  # a new stage at the same fraction
            self._drawn = time.monotonic()

    def close(self) -> None:
        """Remove the bar from the terminal (safe to call twice)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
