"""The editing session of the viewer: the engine's session bound to the layer stack.

The editing model itself -- history, crash journal, live metrics, tool
options, the selected label, gestures, undo/redo -- is Qt-free:
:class:`engine.editing.session.EditingSession`. :class:`EditSession` adds
what only the viewer has:

* it follows the :class:`~viewer.layers.LayerStack`: the edited layer's mask
  and the ground truth are the session's target
  (:meth:`~engine.editing.session.EditingSession.set_target`), re-bound
  whenever the layers change;
* every changed box is redrawn (``refresh(layer, bbox)``, the main window's
  :meth:`~viewer.main_window.MainWindow.refresh_labels`);
* the false-positive / false-negative overlay is a layer of its own, kept up
  to date in the box of each change;
* the ground-truth outline.

Its events are the engine's plain events (:mod:`engine.core.events`), plus
``overlay_changed``; widgets subscribe with
:func:`viewer.subscriptions.subscribe`. Tools and other features use the
engine's API unchanged::

    diff = engine.editing.kernels.flood_fill(session.labels, seed, 2)
    session.apply_diff(diff, "Fill")                 # one undo step
    session.apply_labels(result.array, "Use Otsu result")
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.core.events import DeclaredEvent
from engine.core.volume import LabelMap, LabelTable
from engine.display import DIFFERENCE_LABELS, difference_map
from engine.editing.history import DEFAULT_BUDGET_BYTES
from engine.editing.options import BRUSH_MAX_MM, BRUSH_MIN_MM, EditOptions, brush_size_step
from engine.editing.session import METRIC_KEYS, EditingSession, SurfaceRunner

from .layers import BBox, LabelLayer, LayerStack

__all__ = [
    "BRUSH_MAX_MM",
    "BRUSH_MIN_MM",
    "METRIC_KEYS",
    "EditOptions",
    "EditSession",
    "brush_size_step",
]

log = logging.getLogger(__name__)

DIFFERENCE_OPACITY = 0.7
#: The end of the name of an empty edited mask made when an image is opened.
NEW_SUFFIX = " (new)"


class EditSession(EditingSession):
    """The editing session of the layer stack's edited mask.

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

    #: The difference overlay or the ground-truth outline was switched.
    overlay_changed = DeclaredEvent("The difference overlay or the truth outline was switched.")

    def __init__(
        self,
        layers: LayerStack,
        *,
        refresh: Callable[[LabelLayer, Any], None] | None = None,
        runner: SurfaceRunner | None = None,
        history_bytes: int = DEFAULT_BUDGET_BYTES,
        journal_dir: str | None = None,
    ) -> None:
        super().__init__(history_bytes=history_bytes, journal_dir=journal_dir, runner=runner)
        self.layers = layers
        self._refresh = refresh or (lambda layer, bbox: layer.notify_changed(bbox))
        self.difference_layer: LabelLayer | None = None
        self.difference_scope = "all"  # or "selected"
        self._differences = False
        # Bound methods of this session: held weakly, gone with it.
        self.mask_changed.connect(self._mask_changed)
        self.selected_label_changed.connect(self._selected_changed)
        layers.layers_changed.connect(self._sync_layers)
        self._sync_layers()

    # -- what is edited -----------------------------------------------------------------
    @property
    def layer(self) -> LabelLayer | None:
        """The edited layer."""
        return self.layers.edited

    def _sync_layers(self) -> None:
        if self.difference_layer is not None and self.difference_layer not in self.layers.labels:
            self.difference_layer = None
        image, edit, truth = self.layers.image, self.layers.edited, self.layers.ground_truth
        changed = self.set_target(
            edit.labelmap if edit is not None else None,
            truth=truth.labelmap if truth is not None else None,
            image=image.volume if image is not None else None,
            image_path=image.path if image is not None else None,
            mask_path=edit.path if edit is not None else None)
        if changed:
            self._sync_difference()

    def present_values(self, labelmap: LabelMap) -> set[int]:
        """The values present, from the layer's cached counts when it is shown."""
        layer = next((lay for lay in self.layers.labels if lay.labelmap is labelmap), None)
        if layer is None:
            return super().present_values(labelmap)
        return set(layer.counts())

    def _store_label_table(self, table: LabelTable) -> None:
        layer = self.layers.edited
        if layer is not None and self.mask is layer.labelmap:
            layer.set_label_table(table)  # the colours are redrawn
        else:
            super()._store_label_table(table)

    def _mask_changed(self, box: BBox) -> None:
        """The difference overlay in the box, then the views crossing it."""
        labels, truth, diff_layer = self.labels, self.truth, self.difference_layer
        if diff_layer is not None and truth is not None and labels is not None:
            diff_layer.labelmap.array[box] = difference_map(labels[box], truth[box],
                                                            self._difference_label())
            diff_layer.notify_changed(box)
        layer = self.layers.edited
        if layer is not None:
            self._refresh(layer, box)

    # -- a drag taken back ---------------------------------------------------------------
    def cancel_gesture(self) -> bool:
        """Take back the open gesture (Esc during a drag): no undo step, no journal record.

        The voxels the drag changed get their values from before the drag
        again, and the live metrics and views follow. False when no gesture
        is open.
        """
        labels, history = self.labels, self.history
        if labels is None or not history.recording:
            return False
        merged = history.abort(labels)
        if merged is not None:
            merged.revert(labels)
            self._changed(merged.inverse())
        self.changed.emit()
        self.message.emit("Stroke cancelled")
        return True

    @property
    def untouched(self) -> bool:
        """The edited mask is still the empty one made with the image and nothing was done
        to it: no label, no step to undo or redo, no stroke under way."""
        layer = self.layers.edited
        history = self.history
        return (layer is not None and layer.name.endswith(NEW_SUFFIX)
                and not (history.recording or history.can_undo or history.can_redo)
                and not layer.labelmap.array.any())

    def apply_labels(self, array: np.ndarray, name: str, *,
                     names: LabelTable | None = None) -> None:
        """As the engine's, and a mask named "… (new)" is no longer new once it got labels."""
        super().apply_labels(array, name, names=names)
        layer = self.layers.edited
        if layer is not None and layer.name.endswith(NEW_SUFFIX):
            layer.name = layer.name[: -len(NEW_SUFFIX)]
            self.layers.layers_changed.emit()
            # Now there is a mask to correct: the ground truth becomes an outline, as it
            # is when opened over a mask with labels, so that the mask stays visible.
            if self.layers.ground_truth is not None and not self.truth_outline:
                self.show_truth_outline(True)

    # -- saving ---------------------------------------------------------------------------
    def save_started(self, layer: LabelLayer) -> None:
        """A save of *layer* took its snapshot (edits after it must survive the reset)."""
        if layer is self.layers.edited:
            self.begin_save()

    def saved(self, path: str | os.PathLike[str]) -> int:
        """The snapshot was written to *path*: it becomes the journal's base."""
        layer = self.layers.edited
        if self.keeper.saving_with_edits and layer is not None:
            layer.modified = True  # the file lacks the edits made during the save
        return super().saved(path)

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

    def _selected_changed(self, _value: int) -> None:
        if self._differences and self.difference_scope == "selected":
            self._sync_difference()

    def _difference_label(self) -> int | None:
        return self.selected_label if self.difference_scope == "selected" else None

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
            self.difference_layer.display_changed.connect(self._difference_display)
        else:
            layer.labelmap.array[...] = codes
            layer.notify_changed(None)
            layer.set_visible(True)

    def _difference_display(self, layer: LabelLayer) -> None:
        """The overlay's layer was hidden (Label Layers panel): "Differences" is off too."""
        if layer is self.difference_layer and not layer.visible and self._differences:
            self._differences = False  # the hidden layer stays; ticking shows it again
            self.overlay_changed.emit()

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
