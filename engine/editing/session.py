"""The editing session: the one path by which an edited mask changes, without Qt.

Every change of the edited mask -- a brush stroke, a fill, a clean-up, a
method's result, an undo -- goes through :class:`EditingSession`, which

* keeps the undo history (:class:`engine.editing.history.History`: sparse diffs,
  capped in bytes; one mouse drag is one step);
* appends every completed step to this process's crash journal
  (:class:`engine.editing.journal_keeper.JournalKeeper`), and tells the user --
  without ever interrupting the edit -- when the journal cannot be written;
* updates the live overlap metrics against the ground truth from the
  change's diff alone (:class:`engine.editing.live_metrics.LiveMetrics`) and marks
  the surface distances (HD95, ASSD) stale, or recomputes them;
* keeps the tool options and the selected label;
* tells its listeners what changed, through plain events
  (:mod:`engine.core.events`): the viewer's widgets subscribe to them, and so
  can a script.

Everything the viewer's editing can do, a script can do::

    session = EditingSession(journaling=False)
    session.set_target(mask, truth=truth, image=volume)      # LabelMap, LabelMap, Volume
    session.begin_gesture("Brush stroke")
    session.record(kernels.paint_stroke(session.labels, a, b, **session.paint_kwargs(2)))
    session.end_gesture()                                      # one undo step
    session.apply_labels(result.array, "Use Otsu result")      # one undo step
    session.undo()
    session.metrics()[1]["dice"]

Tools compute a change with an :mod:`engine.editing.kernels` kernel, which writes
it into the mask and returns a :class:`~engine.editing.kernels.Diff`, and hand the
diff here: :meth:`~EditingSession.begin_gesture`, :meth:`~EditingSession.record`
per stroke segment, :meth:`~EditingSession.end_gesture` for a mouse drag, or
:meth:`~EditingSession.apply_diff` for a one-shot change.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..core.events import DeclaredEvent
from ..core.volume import BRAIN_TISSUE_LABELS, Label, LabelMap, LabelTable, Volume
from . import kernels
from .history import DEFAULT_BUDGET_BYTES, History
from .journal import EditJournal
from .journal_keeper import JournalKeeper, JournalTarget
from .kernels import PAINT_MODES, Diff
from .options import BRUSH_MAX_MM, BRUSH_MIN_MM, EditOptions, brush_size_step
from .session_metrics import METRIC_KEYS, JobHandle, SessionMetrics, SurfaceRunner

__all__ = ["METRIC_KEYS", "EditingSession", "JobHandle", "SurfaceRunner"]

log = logging.getLogger(__name__)

def _values_present(array: np.ndarray) -> set[int]:
    """The distinct values of a label array."""
    if array.dtype.kind == "u" and array.dtype.itemsize <= 2:
        return {int(v) for v in np.flatnonzero(np.bincount(array.ravel()))}
    return {int(v) for v in np.unique(array)}


class EditingSession(SessionMetrics):
    """History, journal, live metrics and tool options of one edited mask.

    Parameters
    ----------
    history_bytes : int
        Memory budget of the undo history.
    journal_dir : path, optional
        Folder of the crash journal (default:
        :func:`engine.editing.journal.default_journal_dir`).
    journaling : bool
        Keep a crash journal at all (a script may not want one).
    runner : SurfaceRunner, optional
        Runs the surface-distance computation in the background; without one
        it runs at once, in the caller's thread.
    """

    #: After any change of the mask or of the history (undo/redo availability).
    changed = DeclaredEvent("The mask or the history changed.")
    #: Voxels of the mask changed: called with the box (a tuple of three slices).
    mask_changed = DeclaredEvent("Voxels inside the box (three slices) changed.")
    #: The selected label, with its value.
    selected_label_changed = DeclaredEvent("The selected label changed; called with it.")
    options_changed = DeclaredEvent("The tool options changed.")
    #: A label was added to the edited mask's label table, or the masks were replaced.
    label_table_changed = DeclaredEvent("The label table changed.")
    #: The crash journal stopped working (with a sentence for the user) or works again ("").
    journal_problem = DeclaredEvent("The crash journal failed (text) or works again ('').")

    def __init__(
        self,
        *,
        history_bytes: int = DEFAULT_BUDGET_BYTES,
        journal_dir: str | os.PathLike[str] | None = None,
        journaling: bool = True,
        runner: SurfaceRunner | None = None,
    ) -> None:
        super().__init__(runner=runner)
        self.history = History(history_bytes)
        self.journal_dir = journal_dir
        self.options = EditOptions()
        #: The edited mask, the ground truth and the image (all on one grid).
        self.mask: LabelMap | None = None
        self.reference: LabelMap | None = None
        self.volume: Volume | None = None
        self.image_path: Path | None = None
        #: The file the mask was loaded from or saved to last (the journal's base).
        self.mask_path: Path | None = None
        self._selected = 1
        self._present: dict[int, tuple[int, set[int]]] = {}
        self.keeper = JournalKeeper(journal_dir, target=self._journal_target,
                                    note=self.message.emit, problem=self.journal_problem.emit,
                                    enabled=journaling)

    # -- what is edited -----------------------------------------------------------------
    def set_target(
        self,
        mask: LabelMap | None,
        *,
        truth: LabelMap | None = None,
        image: Volume | None = None,
        image_path: str | os.PathLike[str] | None = None,
        mask_path: str | os.PathLike[str] | None = None,
    ) -> bool:
        """Edit *mask* (against *truth*, over *image*); True when the mask or the truth changed.

        A new mask starts a new history and journal (the journal of the
        previous mask is deleted: the caller agreed to drop those edits).
        """
        self.volume = image
        self.image_path = Path(image_path) if image_path else None
        self.mask_path = Path(mask_path) if mask_path else None
        if mask is self.mask and truth is self.reference:
            return False
        if mask is not self.mask:
            if self.history.recording and self.mask is not None:
                self.history.end(self.mask.array)
            self.history.clear()
            self.keeper.new_mask()
            self.mask = mask
        self.reference = truth
        self._present.clear()
        self._cancel_surface()
        self.surface = {}
        self.surface_stale = True
        self._rebuild_live()
        self.metrics_changed.emit()
        self.surface_changed.emit()
        self.label_table_changed.emit()
        self.changed.emit()
        return True

    @property
    def labels(self) -> np.ndarray | None:
        """The edited label array (changed in place by the kernels), or None."""
        return self.mask.array if self.mask is not None else None

    @property
    def truth(self) -> np.ndarray | None:
        return self.reference.array if self.reference is not None else None

    @property
    def image(self) -> np.ndarray | None:
        return self.volume.array if self.volume is not None else None

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

    def label_table(self) -> LabelTable:
        """Names and colours: the edited mask's table, else the ground truth's."""
        for labelmap in (self.mask, self.reference):
            if labelmap is not None:
                return labelmap.labels
        return BRAIN_TISSUE_LABELS

    def present_values(self, labelmap: LabelMap) -> set[int]:
        """The values present in *labelmap* (cached until the mask changes)."""
        key = id(labelmap.array)
        generation = self._generation if labelmap is self.mask else -1
        cached = self._present.get(key)
        if cached is None or cached[0] != generation:
            cached = (generation, _values_present(labelmap.array))
            self._present[key] = cached
        return cached[1]

    def label_values(self) -> list[int]:
        """Foreground labels worth offering: the table's and any present in a mask."""
        values = set(self.label_table().foreground())
        for labelmap in (self.mask, self.reference):
            if labelmap is not None:
                values.update(v for v in self.present_values(labelmap) if v != 0)
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
        if self.mask is None:
            raise RuntimeError("there is no edited mask")
        value = self.next_label_value() if value is None else int(value)
        if not 1 <= value <= self.max_label:
            raise ValueError(f"label {value} does not fit the mask's type (1..{self.max_label})")
        name = name.strip() or f"Label {value}"
        rgb = tuple(int(c) for c in color)
        self._store_label_table(self.mask.labels.with_label(Label(value, name, rgb)))  # type: ignore[arg-type]
        self.label_table_changed.emit()
        self.selected_label = value
        self.message.emit(f"New label {value}: {name}")
        return value

    def _store_label_table(self, table: LabelTable) -> None:
        """Give the edited mask *table* (the viewer also refreshes the layer's colours)."""
        assert self.mask is not None
        self.mask.labels = table

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

        Live metrics and listeners are updated at once; history and journal
        get the whole gesture at :meth:`end_gesture`. Outside a gesture the
        diff becomes a step of its own.
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
            self.keeper.record(merged)
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
        self.keeper.record(diff)
        self._step_done()

    def apply_labels(self, array: np.ndarray, name: str, *,
                     names: LabelTable | None = None) -> None:
        """Replace the whole edited mask by *array* (e.g. a method's result) as one step.

        *names*: the label table *array* came with (a result's); the values it names
        that the mask's own table lacks (a lesion label in a tissue mask) join that table.
        """
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
        if names is not None and self.mask is not None:
            own = self.mask.labels
            missing = [names[v] for v in names.foreground() if v not in own]
            if missing:
                for label in missing:
                    own = own.with_label(label)
                self._store_label_table(own)
                self.label_table_changed.emit()
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
        self.keeper.record(diff)
        self._step_done()
        self.message.emit(f"{'Undo' if undo else 'Redo'}: {name}")
        return True

    def set_history_budget(self, nbytes: int) -> None:
        self.history.set_budget(nbytes)
        self.changed.emit()

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
        """A diff is in the mask: metrics, then the listeners (per stroke segment)."""
        self._generation += 1
        truth = self.truth
        if self.live is not None and truth is not None:
            fresh = set(np.unique(diff.new).tolist()) - {0} - set(self.live.labels)
            if fresh:  # a label not tracked yet: start counting it (one pass)
                self._rebuild_live(extra=fresh)
            else:
                self.live.update(diff, truth)
            self.metrics_changed.emit()
        self.mask_changed.emit(diff.slices)
        if not self.surface_stale:
            self.surface_stale = True
            self.surface_changed.emit()
        self.changed.emit()

    def _step_done(self) -> None:
        self.changed.emit()
        if self.auto_surface and self.live is not None:
            self.compute_surface_metrics()

    # -- saving and the crash journal ----------------------------------------------------
    @property
    def journal(self) -> EditJournal | None:
        """This session's open crash journal (None before the first step or while failing)."""
        return self.keeper.journal

    def _journal_target(self) -> JournalTarget | None:
        mask = self.mask
        if mask is None:
            return None
        grid = self.volume if self.volume is not None else mask
        return JournalTarget(mask.array, grid.affine, self.image_path, self.mask_path)

    def begin_save(self) -> None:
        """A save took its snapshot of the mask (edits after it must survive the reset)."""
        self.keeper.begin_save()

    def saved(self, path: str | os.PathLike[str]) -> int:
        """The snapshot was written to *path*: it becomes the journal's base.

        Returns the number of steps made while the file was being written
        (the file lacks them; they stay in the journal).
        """
        pending = self.keeper.saved(path)
        if pending is None:
            return 0
        self.mask_path = Path(path)
        self.changed.emit()
        return pending

    def save_failed(self) -> None:
        self.keeper.save_failed()

    def close(self, *, keep_journal: bool = False) -> None:
        """End of the session: a clean close deletes the journal."""
        self._cancel_surface()
        self.keeper.close(keep=keep_journal)
