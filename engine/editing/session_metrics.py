"""The metrics half of the editing session: live overlap metrics and surface distances.

:class:`SessionMetrics` is the base of
:class:`engine.editing.session.EditingSession`: it keeps the live confusion
counts of the edited mask against the ground truth
(:class:`~engine.editing.live_metrics.LiveMetrics`, updated from each diff by
the session) and the last HD95 / ASSD, computed on request -- in the
background with a runner (the viewer's ``JobRunner``), at once without one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from ..core.events import DeclaredEvent
from ..core.jobs import CancelToken
from ..core.metrics import MeanSummary, finite_mean, surface_metrics
from ..core.volume import LabelMap, Volume
from .live_metrics import LiveMetrics

__all__ = ["METRIC_KEYS", "JobHandle", "SessionMetrics", "SurfaceRunner"]

log = logging.getLogger(__name__)

#: Keys of a row of :meth:`EditingSession.metrics`, in display order.
METRIC_KEYS = ("dice", "iou", "sensitivity", "specificity", "volume_diff_ml",
               "volume_diff_pct", "hd95", "assd")


class JobHandle(Protocol):
    """A background job that can be asked to stop."""

    def cancel(self) -> None: ...


class SurfaceRunner(Protocol):
    """Runs ``fn(progress, cancel)`` in the background (the viewer's ``JobRunner``)."""

    def submit(self, fn: Callable[..., Any], description: str, *,
               on_result: Callable[[Any], None], on_error: Callable[[BaseException], None],
               on_cancelled: Callable[[], None]) -> JobHandle: ...


class SessionMetrics:
    """Live metrics and surface distances of the edited mask against the ground truth.

    The session provides the masks (``mask``, ``reference``, ``volume``) and
    :meth:`present_values`.
    """

    #: The live metrics changed (after every stroke segment) or were rebuilt.
    metrics_changed = DeclaredEvent("The live overlap metrics changed.")
    #: HD95 / ASSD values arrived, went stale after an edit, or a computation started.
    surface_changed = DeclaredEvent("The surface distances changed or went stale.")
    #: A short note for the user (the viewer's status bar), with its text.
    message = DeclaredEvent("A short note for the user; called with its text.")

    mask: LabelMap | None
    reference: LabelMap | None
    volume: Volume | None

    def __init__(self, *, runner: SurfaceRunner | None = None) -> None:
        self.runner = runner
        self.live: LiveMetrics | None = None
        #: label -> (hd95, assd) in mm, for the mask of the last computation.
        self.surface: dict[int, tuple[float, float]] = {}
        self.surface_stale = True
        self.auto_surface = False
        self.surface_job: JobHandle | None = None
        #: Counts the changes of the mask (a result of an earlier mask is stale).
        self._generation = 0

    def present_values(self, labelmap: LabelMap) -> set[int]:
        """The values present in *labelmap*."""
        return {int(v) for v in np.unique(labelmap.array)}

    @property
    def spacing(self) -> tuple[float, float, float]:
        for grid in (self.volume, self.mask):
            if grid is not None:
                return grid.spacing
        return (1.0, 1.0, 1.0)

    def _rebuild_live(self, extra: set[int] | None = None) -> None:
        mask, truth = self.mask, self.reference
        if mask is None or truth is None or mask.shape != truth.shape:
            self.live = None
            return
        if extra is not None and self.live is not None:
            values = set(self.live.labels) | extra
        else:
            values = (self.present_values(mask) | self.present_values(truth)) - {0}
        self.live = LiveMetrics(mask.array, truth.array, labels=sorted(values),
                                voxel_ml=mask.voxel_volume_ml)

    @property
    def has_truth(self) -> bool:
        return self.live is not None

    def metrics(self) -> dict[int, dict[str, float]]:
        """Per tracked label: the live overlap metrics and the last HD95 / ASSD (mm).

        HD95 and ASSD are NaN until computed (see :meth:`compute_surface_metrics`);
        ``surface_stale`` says whether the mask changed since.
        """
        if self.live is None:
            return {}
        table = self.live.table()
        for value, row in table.items():
            hd, avg = self.surface.get(value, (math.nan, math.nan))
            row["hd95"], row["assd"] = hd, avg
        return table

    def mean_metrics(self) -> dict[str, MeanSummary]:
        """Mean of every metric over the tracked labels, with how many were finite.

        Non-finite values (the ∞ HD95 of a label the mask misses, a volume
        difference relative to an empty truth, a surface metric not computed) are
        left out of the mean and counted (:func:`~engine.core.metrics.finite_mean`);
        the metrics dock shows that count beside the mean.
        """
        rows = list(self.metrics().values())
        return {key: finite_mean(r[key] for r in rows) for key in METRIC_KEYS}

    def compute_surface_metrics(self) -> JobHandle | None:
        """HD95 and ASSD of every tracked label, on a snapshot of the mask.

        With a runner, in the background (returns the job); without, at once.
        """
        labels, truth = self.labels, self.truth
        if self.live is None or labels is None or truth is None:
            return None
        self._cancel_surface()
        pred = labels.copy()  # the user may go on painting meanwhile
        values = list(self.live.labels)
        spacing = self.spacing
        generation = self._generation
        job: JobHandle | None = None

        def work(progress: Callable[[float, str], None], cancel: Any) -> dict:
            out = {}
            for n, value in enumerate(values):
                cancel.check()
                progress(n / max(1, len(values)), f"surface distances of label {value}")
                out[value] = surface_metrics(pred == value, truth == value, spacing)
            return out

        def finished() -> bool:
            mine = self.surface_job is job
            if mine:
                self.surface_job = None
            return mine

        def done(result: dict[int, tuple[float, float]]) -> None:
            finished()
            if truth is not self.truth:
                return  # the ground truth was replaced meanwhile
            self.surface = result
            self.surface_stale = generation != self._generation
            self.surface_changed.emit()

        def failed(exc: BaseException) -> None:
            finished()
            self.surface_changed.emit()
            log.warning("surface distances failed: %s", exc)
            self.message.emit(f"Surface distances failed: {exc}")

        def cancelled() -> None:
            if finished():
                self.surface_changed.emit()

        if self.runner is None:
            done(work(lambda _f, _m: None, CancelToken()))
            return None
        job = self.runner.submit(work, "Surface distances (HD95, ASSD)", on_result=done,
                                 on_error=failed, on_cancelled=cancelled)
        self.surface_job = job
        self.surface_changed.emit()
        return job

    def set_auto_surface(self, on: bool) -> None:
        """Recompute HD95 / ASSD after every completed step."""
        self.auto_surface = bool(on)
        if on and self.surface_stale:
            self.compute_surface_metrics()

    def _cancel_surface(self) -> None:
        if self.surface_job is not None:
            self.surface_job.cancel()
            self.surface_job = None
