"""Peak memory of a piece of work: process RSS (sampled) and CUDA allocations.

``ru_maxrss`` only gives the peak of the whole process lifetime, so
:class:`PeakMemory` samples the resident set size from ``/proc/self/statm``
in a background thread while the work runs (every 5 ms by default) and
reports the highest value seen; on CUDA it also reads
``torch.cuda.max_memory_allocated`` after resetting the peak counter.

Examples
--------
>>> import numpy as np
>>> with PeakMemory() as peak:
...     block = np.ones(50_000_000, np.uint8)
>>> peak.rss_bytes >= 50_000_000
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

__all__ = ["PeakMemory", "current_rss_bytes", "release_free_memory", "reusing_freed_memory"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes() -> int:
    """Resident set size of this process now (bytes)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def release_free_memory() -> bool:
    """Give memory the C allocator holds but no longer uses back to the system.

    glibc keeps freed blocks (here: a network's activations, once it has run) for
    reuse; the next large step then grows the process on top of them. Called
    between large steps, ``malloc_trim(0)`` returns them (measured in one process:
    brain extraction, then the tissue network, peak 1.72 -> 1.33 GiB). A no-op
    where the C library has no ``malloc_trim`` (macOS, Windows, musl); returns
    whether it ran.
    """
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only (not musl)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
#: What glibc's own thresholds reach once a process has freed a large block (its
#: dynamic mmap threshold stops at 32 MiB, the trim threshold at twice that): set again
#: when the last :func:`reusing_freed_memory` block ends.
_STEADY_MMAP, _STEADY_TRIM = 32 << 20, 64 << 20
_REUSE_LOCK = threading.Lock()
_reusing = 0


@contextmanager
def reusing_freed_memory(limit_bytes: int = 1 << 30) -> Iterator[bool]:
    """Within the block, the C allocator keeps freed blocks up to *limit_bytes* for reuse.

    glibc gives every allocation above 32 MiB its own fresh pages (``mmap``) and
    returns them when freed, so a loop that allocates the same large arrays
    again and again -- a network run batch after batch, each layer's output
    tens of MiB -- has the kernel fault in and zero every page of them each
    time. Measured on a whole head's tissue network (T2, 2 threads, median of
    3 alternating runs): system time 2.6 -> 0.6 s, the pass 5.1 -> 4.0 s, its
    peak not higher (the same sizes come back each batch). Not for work whose
    allocations change size from one to the next, where what is kept fragments
    and the peak grows (measured: brain extraction's networks, +0.1-0.3 GiB).
    The gain is the main thread's (the command line, a batch worker): a worker
    thread's allocator arena cannot hold blocks above 64 MiB, so a run in the
    viewer's background thread keeps only part of it (tested). At the end the
    memory kept is given back (``malloc_trim``). Nested and concurrent blocks are
    counted; the last one out sets glibc's usual thresholds again. A no-op
    (yields False) without glibc.
    """
    global _reusing
    libc = _glibc()
    if libc is None:
        yield False
        return
    with _REUSE_LOCK:
        if _reusing == 0:
            libc.mallopt(_M_MMAP_THRESHOLD, int(limit_bytes))
            libc.mallopt(_M_TRIM_THRESHOLD, int(limit_bytes))
        _reusing += 1
    try:
        yield True
    finally:
        with _REUSE_LOCK:
            _reusing -= 1
            if _reusing == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, _STEADY_MMAP)
                libc.mallopt(_M_TRIM_THRESHOLD, _STEADY_TRIM)
                libc.malloc_trim(0)


class PeakMemory:
    """Context manager measuring peak RSS (and CUDA memory) of its body.

    The resident size is sampled every *interval_s* by a thread of its own, which
    needs the interpreter: memory held for less than an interval, or only while
    another thread keeps the interpreter's lock, can go unseen."""

    def __init__(self, *, interval_s: float = 0.005, device: object = None) -> None:
        self.interval_s = interval_s
        self.device = device
        self.rss_bytes = 0
        self.start_rss_bytes = 0
        self.cuda_bytes: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _cuda(self) -> bool:
        # Never import torch here: that alone adds ~200 MB to the measured RSS.
        torch = sys.modules.get("torch")
        if torch is None or not str(self.device or "").startswith("cuda"):
            return False
        return bool(torch.cuda.is_available())

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.rss_bytes = max(self.rss_bytes, current_rss_bytes())

    def __enter__(self) -> PeakMemory:
        self.start_rss_bytes = self.rss_bytes = current_rss_bytes()
        if self._cuda():
            sys.modules["torch"].cuda.reset_peak_memory_stats(self.device)
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.rss_bytes = max(self.rss_bytes, current_rss_bytes())
        if self._cuda():
            self.cuda_bytes = int(sys.modules["torch"].cuda.max_memory_allocated(self.device))

    @property
    def increase_bytes(self) -> int:
        """Peak RSS above the RSS at entry."""
        return max(0, self.rss_bytes - self.start_rss_bytes)
