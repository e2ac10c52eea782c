"""A small text progress bar on stderr for CLI commands (silent when not a TTY)."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """Callable ``(fraction, message)`` drawing a one-line bar on stderr.

    When stderr is not a terminal it prints a line only every 10 % so logs
    stay readable.
    """

    def __init__(self, title: str = "", *, width: int = 30) -> None:
        self.title = title
        self.width = width
        self.tty = sys.stderr.isatty()
        self._last_decile = -1
        self._start = time.perf_counter()
        self._drawn = False

    def __call__(self, fraction: float, message: str = "") -> None:
        fraction = min(1.0, max(0.0, fraction))
        if self.tty:
            filled = round(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            elapsed = time.perf_counter() - self._start
            text = f"\r{self.title} [{bar}] {fraction * 100:5.1f}% {elapsed:6.1f}s {message}"
            sys.stderr.write(text[:160].ljust(100))
            sys.stderr.flush()
            self._drawn = True
        else:
            decile = int(fraction * 10)
            if decile > self._last_decile:
                self._last_decile = decile
                sys.stderr.write(f"{self.title} {fraction * 100:3.0f}% {message}\n")

    def close(self) -> None:
        if self.tty and self._drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._drawn = False
