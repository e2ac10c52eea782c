"""Engine jobs on a thread pool, reported back to the GUI thread as Qt signals.

The only module of Delineo that knows about threads. A job is any callable
``fn(progress, cancel)`` -- the engine convention of :mod:`engine.core.jobs` -- and
runs on a :class:`~PySide6.QtCore.QThreadPool`; its progress, result, error or
cancellation arrive in the GUI thread through queued signals, so the window
stays responsive while files load or methods run.

Worker threads only ever emit on one long-lived relay object owned by the
runner (signals carry the job's number), so no Qt object is created or
destroyed across threads.

Worker threads run at background priority (:func:`background_priority`): a
network or a classical method keeps both cores busy for seconds, and the
window's drawing -- on a machine without a GPU, OpenGL drawing is CPU work too
-- must not queue behind it. The threads the numerical libraries start from a
worker (torch's and OpenMP's) inherit that priority.

Examples
--------
>>> runner = JobRunner()                                         # doctest: +SKIP
>>> job = runner.submit(lambda progress, cancel: load(path, progress=progress,
...                     cancel=cancel), "Loading scan", on_result=show)  # doctest: +SKIP
>>> job.cancel()                                                 # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, QThreadPool, Signal, Slot

from engine.core.jobs import Cancelled, CancelToken

__all__ = ["BACKGROUND_NICE", "Job", "JobRunner", "background_priority"]

log = logging.getLogger(__name__)

#: The nice value of worker threads on Linux (0 is the GUI's; 19 the lowest priority).
BACKGROUND_NICE = 10
_lowered = threading.local()


def background_priority() -> None:
    """Lower the calling thread's scheduling priority, once per thread.

    On Linux the thread's nice value (a per-thread value there) goes to
    :data:`BACKGROUND_NICE`; threads it starts afterwards inherit it. Elsewhere
    Qt's low thread priority. A thread's priority is never raised again (that
    needs privileges), so this is for threads that only ever do background work.
    """
    if getattr(_lowered, "done", False):
        return
    _lowered.done = True
    if sys.platform.startswith("linux"):
        tid = threading.get_native_id()
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < BACKGROUND_NICE:
                os.setpriority(os.PRIO_PROCESS, tid, BACKGROUND_NICE)
        except OSError as exc:  # a sandbox may forbid it: the work still runs
            log.debug("worker priority unchanged: %s", exc)
    else:
        thread = QThread.currentThread()
        if thread is not None:
            thread.setPriority(QThread.Priority.LowPriority)

JobFunction = Callable[[Callable[[float, str], None], CancelToken], Any]


class _Relay(QObject):
    """Signals emitted from worker threads; lives in the GUI thread with the runner."""

    progress = Signal(int, float, str)
    result = Signal(int, object)
    error = Signal(int, object)
    cancelled = Signal(int)


class Job:
    """A submitted job: cancellable; its callbacks run in the GUI thread.

    Attributes
    ----------
    done : bool
        The job ended (result, error or cancellation delivered).
    succeeded : bool
        The result was delivered.
    """

    def __init__(
        self,
        number: int,
        fn: JobFunction,
        description: str,
        *,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        on_progress: Callable[[float, str], None] | None = None,
    ) -> None:
        self.number = number
        self.fn = fn
        self.description = description
        self.token = CancelToken()
        self.done = False
        self.succeeded = False
        self.on_result = on_result
        self.on_error = on_error
        self.on_cancelled = on_cancelled
        self.on_progress = on_progress

    def cancel(self) -> None:
        """Ask the job to stop; its result, if it still arrives, is dropped."""
        self.token.cancel()

    def run(self, relay: _Relay) -> None:
        """Body executed in a pool thread (at background priority)."""
        background_priority()
        token, number = self.token, self.number

        def progress(fraction: float, message: str = "") -> None:
            if not token.cancelled:
                relay.progress.emit(number, float(fraction), str(message))

        try:
            token.check()
            value = self.fn(progress, token)
            token.check()
        except Cancelled:
            relay.cancelled.emit(number)
        except Exception as exc:  # reported to the GUI, which shows a dialog
            if token.cancelled:
                relay.cancelled.emit(number)
            else:
                log.debug("job %r failed", self.description, exc_info=True)
                relay.error.emit(number, exc)
        else:
            relay.result.emit(number, value)


class JobRunner(QObject):
    """Runs jobs on its own thread pool and tells the GUI when it is busy.

    ``busy`` is emitted with ``(True, description)`` when a job starts with
    none running, and ``(False, "")`` when the last one ends; ``progress``
    relays the progress of every job.
    """

    busy = Signal(bool, str)
    progress = Signal(float, str)

    def __init__(self, parent: QObject | None = None, *, threads: int = 2) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max(1, threads))
        self.jobs: dict[int, Job] = {}
        self._numbers = itertools.count(1)
        self._relay = _Relay(self)
        queued = Qt.ConnectionType.QueuedConnection
        self._relay.progress.connect(self._on_progress, queued)
        self._relay.result.connect(self._on_result, queued)
        self._relay.error.connect(self._on_error, queued)
        self._relay.cancelled.connect(self._on_cancelled, queued)

    def submit(
        self,
        fn: JobFunction,
        description: str,
        *,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        on_progress: Callable[[float, str], None] | None = None,
    ) -> Job:
        """Start ``fn(progress, cancel)`` in a worker thread; callbacks run in this thread."""
        job = Job(next(self._numbers), fn, description, on_result=on_result,
                  on_error=on_error, on_cancelled=on_cancelled, on_progress=on_progress)
        self.jobs[job.number] = job
        if len(self.jobs) == 1:
            self.busy.emit(True, description)
        log.debug("job %d started: %s", job.number, description)
        relay = self._relay
        self.pool.start(lambda: job.run(relay))
        return job

    @property
    def running(self) -> bool:
        return bool(self.jobs)

    def cancel_all(self) -> None:
        for job in list(self.jobs.values()):
            job.cancel()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel everything and wait for the threads; True if they all stopped."""
        self.cancel_all()
        return self.pool.waitForDone(timeout_ms)

    # -- delivery in the GUI thread ------------------------------------------------------
    def _finish(self, number: int) -> Job | None:
        job = self.jobs.pop(number, None)
        if job is None:
            return None
        job.done = True
        if not self.jobs:
            self.busy.emit(False, "")
        return job

    @Slot(int, float, str)
    def _on_progress(self, number: int, fraction: float, message: str) -> None:
        job = self.jobs.get(number)
        if job is None or job.token.cancelled:
            return
        self.progress.emit(fraction, message)
        if job.on_progress is not None:
            job.on_progress(fraction, message)

    @Slot(int, object)
    def _on_result(self, number: int, value: object) -> None:
        job = self.jobs.get(number)
        if job is not None and job.token.cancelled:
            self._on_cancelled(number)
            return
        job = self._finish(number)
        if job is None:
            return
        job.succeeded = True
        if job.on_result is not None:
            job.on_result(value)

    @Slot(int, object)
    def _on_error(self, number: int, exc: object) -> None:
        job = self._finish(number)
        if job is None:
            return
        if job.on_error is not None:
            job.on_error(exc)  # type: ignore[arg-type]
        else:
            log.error("%s failed: %s", job.description, exc)

    @Slot(int)
    def _on_cancelled(self, number: int) -> None:
        job = self._finish(number)
        if job is None:
            return
        log.info("%s: cancelled", job.description)
        if job.on_cancelled is not None:
            job.on_cancelled()
