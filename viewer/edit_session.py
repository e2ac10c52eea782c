"""The edit session: the one path by which the edited mask changes.

Every change of the edited mask -- a brush stroke, a fill, a clean-up, a
method's result, an undo -- goes through :class:`EditSession`, which

* keeps the undo history (:class:`engine.editing.history.History`: sparse diffs,
  capped in bytes; one mouse drag is one step);
* appends every completed step to the crash journal
  (:class:`engine.editing.journal.EditJournal`, in the user data folder);
* updates the live overlap metrics against the ground truth from the
  change's diff alone (:class:`engine.editing.live_metrics.LiveMetrics`) and marks
  the surface distances (HD95, ASSD) stale, or recomputes them in a worker;
* keeps the false-positive / false-negative overlay up to date in the box of
  the change;
* tells the views which box changed (only the slices crossing it redraw).

Tools compute a change with an :mod:`engine.editing.kernels` kernel, which writes it
into the mask and returns a :class:`~engine.editing.kernels.Diff`, and hand the diff
here: :meth:`~EditSession.begin_gesture`, :meth:`~EditSession.record` per
stroke segment, :meth:`~EditSession.end_gesture` for a mouse drag, or
:meth:`~EditSession.apply_diff` for a one-shot change. Other features use
:meth:`~EditSession.apply_diff` and :meth:`~EditSession.apply_labels`::

    diff = engine.editing.kernels.flood_fill(session.labels, seed, 2)
    session.apply_diff(diff, "Fill")                 # one undo step
    session.apply_labels(result.array, "Use Otsu result")
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.core.metrics import surface_metrics
from engine.core.volume import Label, LabelTable
from engine.display import DIFFERENCE_LABELS, difference_map
from engine.editing import kernels
from engine.editing.history import DEFAULT_BUDGET_BYTES, History
from engine.editing.journal import EditJournal
from engine.editing.kernels import PAINT_MODES, Diff
from engine.editing.live_metrics import LiveMetrics

from .layers import LabelLayer, LayerStack
from .workers import Job, JobRunner

__all__ = [
    "BRUSH_MAX_MM",
    "BRUSH_MIN_MM",
    "METRIC_KEYS",
    "EditOptions",
    "EditSession",
    "brush_size_step",
]

log = logging.getLogger(__name__)

BRUSH_MIN_MM = 0.5
BRUSH_MAX_MM = 100.0
#: Keys of a row of :meth:`EditSession.metrics`, in display order.
METRIC_KEYS = ("dice", "iou", "sensitivity", "specificity", "volume_diff_ml",
               "volume_diff_pct", "hd95", "assd")
DIFFERENCE_OPACITY = 0.7


@dataclass(frozen=True)
class EditOptions:
    """How the brush, the eraser and the fill tool work.

    Attributes
    ----------
    brush_size_mm : float
        Brush diameter in millimetres (the disk or sphere has half of it as radius).
    brush_3d : bool
        A sphere instead of a disk in the plane of the view.
    paint_mode : str
        Which voxels a stroke may change: ``"all"``, ``"background"`` (only 0)
        or ``"label"`` (only voxels holding *only_label*).
    only_label : int
        The label of paint mode ``"label"``.
    threshold : (low, high) or None
        Threshold-limited painting: only voxels with ``low <= intensity <= high``.
    fill_3d : bool
        Flood fill in the whole volume instead of the view's slice.
    fill_tolerance : float or None
        Fill only voxels whose intensity is within this of the clicked voxel's.
    island_min_voxels : int
        Components smaller than this are removed by *Remove small islands*.
    """

    brush_size_mm: float = 5.0
    brush_3d: bool = False
    paint_mode: str = "all"
    only_label: int = 1
    threshold: tuple[float, float] | None = None
    fill_3d: bool = False
    fill_tolerance: float | None = None
    island_min_voxels: int = 50


def brush_size_step(size_mm: float, direction: int) -> float:
    """The next brush diameter up (*direction* > 0) or down: fine steps for small brushes.

    Example
    -------
    >>> brush_size_step(5.0, +1), brush_size_step(10.0, -1), brush_size_step(30.0, +1)
    (6.0, 9.0, 35.0)
    """

    def step(size: float) -> float:
        return 0.5 if size < 3 else 1.0 if size < 10 else 2.0 if size < 30 else 5.0

    new = size_mm + step(size_mm) if direction > 0 else size_mm - step(size_mm - 1e-9)
    return float(min(BRUSH_MAX_MM, max(BRUSH_MIN_MM, new)))


class EditSession(QObject):
    """History, journal, live metrics and tool options of the edited mask.

    Parameters
    ----------
    layers : LayerStack
        Where the edited mask (``layers.edited``) and the ground truth live.
    refresh : callable, optional
        ``refresh(layer, bbox)``: voxels of *layer* in *bbox* changed (the
        main window's :meth:`~viewer.main_window.MainWindow.refresh_labels`,
        which also marks the mask modified).
    runner : JobRunner, optional
        Runs the surface-distance computation off the GUI thread.
    history_bytes : int
        Memory budget of the undo history.
    journal_dir : path, optional
        Folder of the crash journal (default: ``engine.editing.journal.default_journal_dir()``).
    """

    #: After any change of the mask or of the history (undo/redo availability).
    changed = Signal()
    #: The live metrics changed (after every stroke segment) or were rebuilt.
    metrics_changed = Signal()
    #: HD95 / ASSD values arrived, or went stale after an edit.
    surface_changed = Signal()
    selected_label_changed = Signal(int)
    options_changed = Signal()
    #: A label was added to the edited mask's label table.
    label_table_changed = Signal()
    #: The difference overlay or the ground-truth outline was switched.
    overlay_changed = Signal()
    #: A short note for the status bar.
    message = Signal(str)

    def __init__(
        self,
        layers: LayerStack,
        *,
        refresh: Callable[[LabelLayer, Any], None] | None = None,
        runner: JobRunner | None = None,
        history_bytes: int = DEFAULT_BUDGET_BYTES,
        journal_dir: str | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.layers = layers
        self._refresh = refresh or (lambda layer, bbox: layer.notify_changed(bbox))
        self.runner = runner
        self.journal_dir = journal_dir
        self.history = History(history_bytes)
        self.live: LiveMetrics | None = None
        self.journal: EditJournal | None = None
        self.options = EditOptions()
        self._selected = 1
        #: label -> (hd95, assd) in mm, for the mask of the last computation.
        self.surface: dict[int, tuple[float, float]] = {}
        self.surface_stale = True
        self.auto_surface = False
        self.surface_job: Job | None = None
        self.difference_layer: LabelLayer | None = None
        self.difference_scope = "all"  # or "selected"
        self._differences = False
        self._generation = 0
        self._edit: LabelLayer | None = None
        self._truth: LabelLayer | None = None
        self._since_save_request: list[Diff] | None = None
        self._journal_failed = False
        layers.layers_changed.connect(self._sync_layers)
        self._sync_layers()

    # -- what is edited -----------------------------------------------------------------
    @property
    def layer(self) -> LabelLayer | None:
        """The edited layer."""
        return self.layers.edited

    @property
    def labels(self) -> np.ndarray | None:
        """The edited label array (changed in place by the kernels), or None."""
        layer = self.layers.edited
        return layer.labelmap.array if layer is not None else None

    @property
    def truth(self) -> np.ndarray | None:
        layer = self.layers.ground_truth
        return layer.labelmap.array if layer is not None else None

    @property
    def image(self) -> np.ndarray | None:
        image = self.layers.image
        return image.volume.array if image is not None else None

    @property
    def spacing(self) -> tuple[float, float, float]:
        image = self.layers.image
        return image.volume.spacing if image is not None else (1.0, 1.0, 1.0)

    @property
    def max_label(self) -> int:
        """Largest value the edited mask's data type holds."""
        labels = self.labels
        return int(np.iinfo(labels.dtype).max) if labels is not None else 255

    # -- label selection and table ---------------------------------------------------------
    @property
    def selected_label(self) -> int:
        """The label the brush and the fill paint (keys 1-9, the label table)."""
        return self._selected

    @selected_label.setter
    def selected_label(self, value: int) -> None:
        value = int(value)
        if not 1 <= value <= self.max_label:
            raise ValueError(f"label {value} outside 1..{self.max_label}")
        if value != self._selected:
            self._selected = value
            self.selected_label_changed.emit(value)
            if self._differences and self.difference_scope == "selected":
                self._sync_difference()

    def label_table(self) -> LabelTable:
        """Names and colours: the edited mask's table, else the ground truth's."""
        for layer in (self.layers.edited, self.layers.ground_truth):
            if layer is not None:
                return layer.labelmap.labels
        from engine.core.volume import BRAIN_TISSUE_LABELS

        return BRAIN_TISSUE_LABELS

    def label_values(self) -> list[int]:
        """Foreground labels worth offering: the table's and any present in a mask."""
        values = set(self.label_table().foreground())
        for layer in (self.layers.edited, self.layers.ground_truth):
            if layer is not None:
                values.update(v for v in layer.counts() if v != 0)
        values.add(self._selected)
        return sorted(values)

    def label_name(self, value: int) -> str:
        return self.label_table().name(value)

    def label_color(self, value: int) -> tuple[int, int, int]:
        return self.label_table().color(value)

    def next_label_value(self) -> int:
        """The smallest value above every label in use (for a new label)."""
        return max([0, *self.label_values()]) + 1

    def add_label(self, name: str, color: tuple[int, int, int], value: int | None = None) -> int:
        """Add a label to the edited mask's table and select it; returns its value."""
        layer = self.layers.edited
        if layer is None:
            raise RuntimeError("there is no edited mask")
        value = self.next_label_value() if value is None else int(value)
        if not 1 <= value <= self.max_label:
            raise ValueError(f"label {value} does not fit the mask's type (1..{self.max_label})")
        name = name.strip() or f"Label {value}"
        rgb = tuple(int(c) for c in color)
        layer.set_label_table(layer.labelmap.labels.with_label(Label(value, name, rgb)))  # type: ignore[arg-type]
        self.label_table_changed.emit()
        self.selected_label = value
        self.message.emit(f"New label {value}: {name}")
        return value

    # -- options ------------------------------------------------------------------------
    def set_options(self, **changes: Any) -> None:
        """Change some :class:`EditOptions` fields (validated); emits ``options_changed``."""
        if "paint_mode" in changes and changes["paint_mode"] not in PAINT_MODES:
            raise ValueError(f"paint mode must be one of {PAINT_MODES}")
        if "brush_size_mm" in changes:
            size = float(changes["brush_size_mm"])
            changes["brush_size_mm"] = min(BRUSH_MAX_MM, max(BRUSH_MIN_MM, size))
        if changes.get("threshold") is not None:
            lo, hi = (float(v) for v in changes["threshold"])
            changes["threshold"] = (min(lo, hi), max(lo, hi))
        new = replace(self.options, **changes)
        if new != self.options:
            self.options = new
            self.options_changed.emit()

    def grow_brush(self, steps: int) -> None:
        """Larger (*steps* > 0) or smaller brush, one size step per unit."""
        size = self.options.brush_size_mm
        for _ in range(abs(int(steps))):
            size = brush_size_step(size, 1 if steps > 0 else -1)
        self.set_options(brush_size_mm=size)
        self.message.emit(f"Brush {size:g} mm")

    def paint_kwargs(self, plane_axis: int | None, *, erase: bool = False) -> dict[str, Any]:
        """Keyword arguments of :func:`~engine.editing.kernels.paint` (or ``paint_stroke``).

        The eraser writes 0 under the same paint mode, except that
        "only over background" (which would erase nothing) erases everything.
        """
        o = self.options
        mode = o.paint_mode
        if erase and mode == "background":
            mode = "all"
        kwargs: dict[str, Any] = {
            "radius_mm": o.brush_size_mm / 2.0,
            "value": 0 if erase else self._selected,
            "spacing": self.spacing,
            "plane_axis": None if o.brush_3d else plane_axis,
            "mode": mode,
            "only_label": o.only_label if mode == "label" else None,
        }
        if o.threshold is not None and self.image is not None:
            kwargs["image"] = self.image
            kwargs["intensity_range"] = o.threshold
        return kwargs

    # -- changes: the one path ------------------------------------------------------------
    def begin_gesture(self, name: str) -> None:
        """Open one undo step (a mouse drag); segments go to :meth:`record`."""
        if self.labels is None:
            return
        if self.history.recording:
            self.end_gesture()
        self.history.begin(name)

    def record(self, diff: Diff | None) -> None:
        """A stroke segment (already written into the mask) of the open gesture.

        Live metrics, the difference overlay and the views are updated at
        once; history and journal get the whole gesture at :meth:`end_gesture`.
        Outside a gesture the diff becomes a step of its own.
        """
        if diff is None or self.labels is None:
            return
        if not self.history.recording:
            self.apply_diff(diff, "Edit")
            return
        self.history.record(diff)
        self._changed(diff)

    def end_gesture(self) -> Diff | None:
        """Close the gesture: one undo step, one journal record. Returns its merged diff."""
        labels = self.labels
        if labels is None or not self.history.recording:
            return None
        merged = self.history.end(labels)
        if merged is not None:
            self._journal(merged)
        self._step_done()
        return merged

    @property
    def in_gesture(self) -> bool:
        return self.history.recording

    def apply_diff(self, diff: Diff | None, name: str) -> None:
        """Apply *diff* to the edited mask as one undoable step.

        Works whether or not the diff was already written into the mask (the
        :mod:`engine.editing.kernels` kernels write in place): voxels not yet holding
        the diff's new values are written, keeping what was there as the
        values an undo restores. ``None`` (nothing changed) is ignored.
        """
        labels = self.labels
        if diff is None or labels is None:
            return
        if self.history.recording:
            self.end_gesture()
        new = np.asarray(diff.new)
        if new.size and (int(new.max()) > self.max_label or int(new.min()) < 0):
            raise ValueError(f"label values outside 0..{self.max_label} of the edited mask")
        new = new.astype(labels.dtype, copy=False)
        current = labels[diff.slices][diff.mask]
        if not np.array_equal(current, new):
            diff = Diff(diff.box, diff.mask, current.copy(), new.copy())
            diff.apply(labels)
        self.history.push(name, diff)
        self._changed(diff)
        self._journal(diff)
        self._step_done()

    def apply_labels(self, array: np.ndarray, name: str) -> None:
        """Replace the whole edited mask by *array* (e.g. a method's result) as one step."""
        labels = self.labels
        if labels is None:
            raise RuntimeError("there is no edited mask")
        array = np.asarray(getattr(array, "array", array))
        if array.shape != labels.shape:
            raise ValueError(f"labels of shape {array.shape} for a mask of shape {labels.shape}")
        if array.size and (int(array.max()) > self.max_label or int(array.min()) < 0):
            raise ValueError(f"label values outside 0..{self.max_label} of the edited mask")
        if self.history.recording:
            self.end_gesture()
        diff = kernels.replace_all(labels, array)
        if diff is None:
            self.message.emit(f"{name}: the mask is unchanged")
            return
        self.apply_diff(diff, name)

    def undo(self) -> bool:
        """Undo the last step; False when there is none (or a drag is under way)."""
        return self._undo_redo(undo=True)

    def redo(self) -> bool:
        """Redo the last undone step."""
        return self._undo_redo(undo=False)

    def _undo_redo(self, *, undo: bool) -> bool:
        labels = self.labels
        if labels is None or self.history.recording:
            return False
        name = self.history.undo_name if undo else self.history.redo_name
        diff = self.history.undo(labels) if undo else self.history.redo(labels)
        if diff is None:
            return False
        self._changed(diff)
        self._journal(diff)
        self._step_done()
        self.message.emit(f"{'Undo' if undo else 'Redo'}: {name}")
        return True

    # -- clean-up of the selected label ---------------------------------------------------
    def remove_small_islands(self, min_voxels: int | None = None) -> Diff | None:
        """Erase components of the selected label smaller than *min_voxels* (6-connected)."""
        labels = self.labels
        if labels is None:
            return None
        n = int(min_voxels if min_voxels is not None else self.options.island_min_voxels)
        value = self._selected
        diff = kernels.remove_small_islands(labels, value, min_voxels=n)
        self.apply_diff(diff, f"Remove islands of {self.label_name(value)}")
        self.message.emit(f"{self.label_name(value)}: removed {diff.count:,} voxels in islands"
                          f" under {n} voxels" if diff else
                          f"{self.label_name(value)}: no island under {n} voxels")
        return diff

    def keep_largest_component(self) -> Diff | None:
        """Keep only the largest connected component of the selected label."""
        labels = self.labels
        if labels is None:
            return None
        value = self._selected
        diff = kernels.keep_largest_component(labels, value)
        self.apply_diff(diff, f"Keep largest component of {self.label_name(value)}")
        self.message.emit(f"{self.label_name(value)}: removed {diff.count:,} voxels outside the "
                          "largest component" if diff else
                          f"{self.label_name(value)} is already one component")
        return diff

    # -- bookkeeping of a change ------------------------------------------------------------
    def _changed(self, diff: Diff) -> None:
        """A diff is in the mask: metrics, overlay, views (per stroke segment)."""
        self._generation += 1
        labels, truth = self.labels, self.truth
        if self.live is not None and truth is not None:
            fresh = set(np.unique(diff.new).tolist()) - {0} - set(self.live.labels)
            if fresh:  # a label not tracked yet: start counting it (one pass)
                self._rebuild_live(extra=fresh)
            else:
                self.live.update(diff, truth)
            self.metrics_changed.emit()
        diff_layer = self.difference_layer
        if diff_layer is not None and truth is not None and labels is not None:
            box = diff.slices
            diff_layer.labelmap.array[box] = difference_map(labels[box], truth[box],
                                                            self._difference_label())
            diff_layer.notify_changed(box)
        layer = self.layers.edited
        if layer is not None:
            self._refresh(layer, diff.slices)
        if not self.surface_stale:
            self.surface_stale = True
            self.surface_changed.emit()
        self.changed.emit()

    def _step_done(self) -> None:
        self.changed.emit()
        if self.auto_surface and self.live is not None:
            self.compute_surface_metrics()

    # -- crash journal --------------------------------------------------------------------
    def _journal(self, diff: Diff | None) -> None:
        if diff is None:
            return
        if self._since_save_request is not None:
            self._since_save_request.append(diff)
        if self.journal is None:
            self.journal = self._open_journal()
        if self.journal is None:
            return
        try:
            self.journal.append(diff)
        except OSError as exc:
            log.warning("could not write the edit journal: %s", exc)
            self.message.emit(f"Warning: the edit journal could not be written ({exc})")

    def _open_journal(self) -> EditJournal | None:
        image, layer, labels = self.layers.image, self.layers.edited, self.labels
        if image is None or layer is None or labels is None:
            return None
        try:
            journal = EditJournal.create(
                self.journal_dir, image_path=image.path, shape=labels.shape,
                affine=image.volume.affine, dtype=labels.dtype, base_labels=layer.path)
        except OSError as exc:
            if not self._journal_failed:
                log.warning("no edit journal: %s", exc)
                self.message.emit(f"Warning: no crash journal ({exc})")
            self._journal_failed = True
            return None
        self._journal_failed = False
        log.info("edit journal %s", journal.path)
        return journal

    def save_started(self, layer: LabelLayer) -> None:
        """A save of *layer* took its snapshot (edits after it must survive the reset)."""
        if layer is self.layers.edited:
            self._since_save_request = []

    def saved(self, path: str) -> None:
        """The snapshot was written to *path*: it becomes the journal's base."""
        pending, self._since_save_request = self._since_save_request, None
        if pending is None:
            return
        if self.journal is not None:
            try:
                self.journal.reset(base_labels=path)
                for diff in pending:  # edits made while the file was being written
                    self.journal.append(diff)
            except OSError as exc:
                log.warning("could not reset the edit journal: %s", exc)
        layer = self.layers.edited
        if pending and layer is not None:
            layer.modified = True  # the file lacks the edits made during the save
        self.changed.emit()

    def save_failed(self) -> None:
        self._since_save_request = None

    def close(self, *, keep_journal: bool = False) -> None:
        """End of the session: a clean close deletes the journal."""
        self._cancel_surface()
        if self.journal is not None:
            self.journal.close(discard=not keep_journal)
            self.journal = None

    # -- layers coming and going --------------------------------------------------------
    def _sync_layers(self) -> None:
        if self.difference_layer is not None and self.difference_layer not in self.layers.labels:
            self.difference_layer = None
        edit, truth = self.layers.edited, self.layers.ground_truth
        if edit is self._edit and truth is self._truth:
            return
        if edit is not self._edit:
            if self.history.recording and self._edit is not None:
                self.history.end(self._edit.labelmap.array)
            self.history.clear()
            if self.journal is not None:  # the user agreed to drop those edits
                self.journal.close(discard=True)
                self.journal = None
            self._since_save_request = None
            self._edit = edit
        self._truth = truth
        self._cancel_surface()
        self.surface = {}
        self.surface_stale = True
        self._rebuild_live()
        self._sync_difference()
        self.metrics_changed.emit()
        self.surface_changed.emit()
        self.label_table_changed.emit()
        self.changed.emit()

    def _rebuild_live(self, extra: set[int] | None = None) -> None:
        edit, truth = self.layers.edited, self.layers.ground_truth
        if edit is None or truth is None or edit.labelmap.shape != truth.labelmap.shape:
            self.live = None
            return
        if extra is not None and self.live is not None:
            values = set(self.live.labels) | extra
        else:
            values = (set(edit.counts()) | set(truth.counts())) - {0}
        self.live = LiveMetrics(edit.labelmap.array, truth.labelmap.array, labels=sorted(values),
                                voxel_ml=edit.labelmap.voxel_volume_ml)

    # -- metrics ------------------------------------------------------------------------
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

    def mean_metrics(self) -> dict[str, float]:
        """Mean of every metric over the tracked labels (NaN entries left out)."""
        rows = list(self.metrics().values())
        out = {}
        for key in METRIC_KEYS:
            values = [r[key] for r in rows if not math.isnan(r[key])]
            out[key] = float(np.mean(values)) if values else math.nan
        return out

    def compute_surface_metrics(self) -> Job | None:
        """HD95 and ASSD of every tracked label, in a worker, on a snapshot of the mask."""
        labels, truth = self.labels, self.truth
        if self.live is None or self.runner is None or labels is None or truth is None:
            return None
        self._cancel_surface()
        pred = labels.copy()  # the user may go on painting meanwhile
        values = list(self.live.labels)
        spacing = self.spacing
        generation = self._generation

        def work(progress: Callable[[float, str], None], cancel: Any) -> dict:
            out = {}
            for n, value in enumerate(values):
                cancel.check()
                progress(n / max(1, len(values)), f"surface distances of label {value}")
                out[value] = surface_metrics(pred == value, truth == value, spacing)
            return out

        def done(result: dict[int, tuple[float, float]]) -> None:
            if self.surface_job is job:
                self.surface_job = None
            if truth is not self.truth:
                return  # the ground truth was replaced meanwhile
            self.surface = result
            self.surface_stale = generation != self._generation
            self.surface_changed.emit()

        def failed(exc: BaseException) -> None:
            if self.surface_job is job:
                self.surface_job = None
            self.surface_changed.emit()
            log.warning("surface distances failed: %s", exc)
            self.message.emit(f"Surface distances failed: {exc}")

        def cancelled() -> None:
            if self.surface_job is job:
                self.surface_job = None
                self.surface_changed.emit()

        job = self.runner.submit(
            work, "Surface distances (HD95, ASSD)", on_result=done, on_error=failed,
            on_cancelled=cancelled)
        self.surface_job = job
        self.surface_changed.emit()
        return job

    def set_auto_surface(self, on: bool) -> None:
        """Recompute HD95 / ASSD in a worker after every completed step."""
        self.auto_surface = bool(on)
        if on and self.surface_stale:
            self.compute_surface_metrics()

    def _cancel_surface(self) -> None:
        if self.surface_job is not None:
            self.surface_job.cancel()
            self.surface_job = None

    # -- overlays -------------------------------------------------------------------------
    @property
    def differences_shown(self) -> bool:
        return self._differences

    def show_differences(self, shown: bool, scope: str | None = None) -> None:
        """Show the false positives / false negatives of the edited mask vs the ground truth.

        *scope* ``"all"``: over all labels; ``"selected"``: for the selected label.
        """
        if scope is not None:
            if scope not in ("all", "selected"):
                raise ValueError("scope must be 'all' or 'selected'")
            self.difference_scope = scope
        self._differences = bool(shown)
        self._sync_difference()
        self.overlay_changed.emit()

    def _difference_label(self) -> int | None:
        return self._selected if self.difference_scope == "selected" else None

    def _sync_difference(self) -> None:
        edit, truth = self.layers.edited, self.layers.ground_truth
        wanted = (self._differences and edit is not None and truth is not None
                  and edit.labelmap.shape == truth.labelmap.shape)
        layer = self.difference_layer
        if not wanted:
            if layer is not None:
                self.difference_layer = None
                self.layers.remove(layer)
            return
        codes = difference_map(edit.labelmap.array, truth.labelmap.array,  # type: ignore[union-attr]
                               self._difference_label())
        if layer is None:
            labelmap = edit.labelmap.with_array(codes, labels=DIFFERENCE_LABELS)  # type: ignore[union-attr]
            self.difference_layer = self.layers.add_labels(
                labelmap, name="Differences vs ground truth", role="difference",
                opacity=DIFFERENCE_OPACITY)
        else:
            layer.labelmap.array[...] = codes
            layer.notify_changed(None)

    @property
    def truth_outline(self) -> bool:
        truth = self.layers.ground_truth
        return truth is not None and truth.outline

    def show_truth_outline(self, shown: bool) -> None:
        """Draw the ground truth as an outline over the edited mask (or filled again)."""
        truth = self.layers.ground_truth
        if truth is None:
            return
        truth.set_outline(bool(shown))
        if shown:
            truth.set_visible(True)
        self.overlay_changed.emit()

    # -- history settings ------------------------------------------------------------------
    def set_history_budget(self, nbytes: int) -> None:
        self.history.set_budget(nbytes)
        self.changed.emit()
