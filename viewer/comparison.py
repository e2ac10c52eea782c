"""Comparison mode: 2–4 synchronised panes, each the image with one label layer,
an optional disagreement map, and the metrics table below.

Every pane is a :class:`~viewer.slice_view.SliceView` of its own small layer
stack: the image and one layer (a method's result, the edited mask or the
ground truth), chosen in the pane's header. The panes share one plane, one
cursor (slice and crosshair, mirrored both ways with the main window's) and
one zoom and pan (moving one view moves the others). The *disagreement* pane
shows, in red, the voxels where the layers of the panes differ.

The window never holds the main window's objects by their callbacks except
through the forwarders it connects in :meth:`ComparisonWindow._connect` and
disconnects when it closes, so closing it leaves nothing behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QSpinBox,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from engine.core.volume import Label, LabelMap, LabelTable
from engine.display import drag_window

from .cursor import Cursor
from .layers import BBox, ImageLayer, LabelLayer, LayerStack
from .panels.comparison_table import ComparisonTable
from .slice_view import SliceView
from .tools import NavigateTool, ToolContext
from .workers import JobRunner

__all__ = ["DISAGREEMENT_LABELS", "ComparisonWindow", "disagreement"]

log = logging.getLogger(__name__)

#: Label table of the disagreement map.
DISAGREEMENT_LABELS = LabelTable.from_labels(
    [Label(0, "Agree", (0, 0, 0)), Label(1, "Disagree", (255, 64, 64))]
)
PANE_ROLES = ("truth", "edit", "result")
PANE_OPACITY = 0.6
_ROLE_TEXT = {"truth": "ground truth", "edit": "edited mask", "result": "result"}
_RECOMPUTE_MS = 150


def disagreement(arrays: list[np.ndarray]) -> np.ndarray:
    """``uint8`` map: 1 where the label arrays do not all hold the same value.

    Examples
    --------
    >>> a = np.array([0, 1, 2]); b = np.array([0, 1, 3])
    >>> disagreement([a, b]).tolist()
    [0, 0, 1]
    """
    out = np.zeros(arrays[0].shape, np.uint8) if arrays else np.zeros(0, np.uint8)
    for other in arrays[1:]:
        np.bitwise_or(out, arrays[0] != other, out=out, casting="unsafe")
    return out


class _Pane(QWidget):
    """A header with the layer choice above a slice view of a one-layer stack."""

    def __init__(self, title: str, plane: str, cursor: Cursor, image: ImageLayer,
                 convention: str, tool: NavigateTool, parent: QWidget,
                 choosable: bool = True) -> None:
        super().__init__(parent)
        self.stack = LayerStack()
        self.stack.image = image
        self.layer: LabelLayer | None = None
        self.source: LabelLayer | None = None
        header = QFrame(self)
        header.setObjectName("paneHeader")
        header.setStyleSheet("#paneHeader { background: #1d2024; }")
        row = QHBoxLayout(header)
        row.setContentsMargins(6, 2, 6, 2)
        self.title = QLabel(title, header)
        self.title.setStyleSheet("color: #e8eaed; font-weight: 600;")
        row.addWidget(self.title)
        self.chooser = QComboBox(header)
        self.chooser.setObjectName("paneLayer")
        self.chooser.setMinimumContentsLength(18)
        self.chooser.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.chooser.setVisible(choosable)
        row.addWidget(self.chooser, 1)
        self.note = QLabel("", header)
        self.note.setStyleSheet("color: #8a919c;")
        row.addWidget(self.note)
        if not choosable:
            row.addStretch(1)
        self.view = SliceView(plane, cursor, self.stack, tool=lambda: tool,
                              convention=convention, parent=self)
        self.view.max_button.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(header)
        layout.addWidget(self.view, 1)

    def show_labels(self, labelmap: LabelMap | None, name: str = "",
                    source: LabelLayer | None = None) -> LabelLayer | None:
        """Show *labelmap* (shared, not copied) as this pane's only layer."""
        self.stack.labels = []
        self.layer = None
        self.source = source
        if labelmap is not None:
            layer = LabelLayer(labelmap, name=name, role="result", opacity=PANE_OPACITY)
            if source is not None:
                layer.outline = source.outline
                layer.hidden = set(source.hidden)
            self.stack.labels = [layer]
            self.layer = layer
        self.stack.layers_changed.emit()
        return self.layer


class ComparisonWindow(QMainWindow):
    """Side-by-side comparison of label layers, with the metrics table.

    Parameters
    ----------
    layers : LayerStack
        The main window's layers (read; results are never changed here).
    cursor : Cursor
        The main window's cursor: the panes follow it and move it.
    runner : JobRunner
        Runs the table's evaluation.
    convention : str
        ``"radiological"`` or ``"neurological"``.
    """

    #: The window closed.
    closed = Signal()

    def __init__(self, layers: LayerStack, cursor: Cursor, runner: JobRunner, *,
                 convention: str = "radiological", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("comparisonWindow")
        self.setWindowTitle("Compare results — Delineo")
        self.main_layers = layers
        self.main_cursor = cursor
        self.convention = convention
        if layers.image is None:
            raise RuntimeError("open an image before comparing")
        # The panes' image and cursor: mirrors of the main ones, made anew with each set
        # of panes, so that views of closed panes are never called again.
        self.image: ImageLayer = layers.image
        self.cursor: Cursor = cursor
        self.tool: NavigateTool | None = None
        self.plane = "axial"
        self.panes: list[_Pane] = []
        self.disagreement_pane: _Pane | None = None
        self._syncing = False
        self._connections: list[tuple[Any, Callable[..., Any]]] = []
        self._hub_connections: list[tuple[Any, Callable[..., Any]]] = []
        self._layer_connections: list[tuple[Any, Callable[..., Any]]] = []
        self._recompute = QTimer(self)
        self._recompute.setSingleShot(True)
        self._recompute.setInterval(_RECOMPUTE_MS)
        self._recompute.timeout.connect(self.update_disagreement)

        self._build_toolbar()
        self.grid_widget = QWidget(self)
        self.grid = QGridLayout(self.grid_widget)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.table = ComparisonTable(layers, runner, self)
        # The fast metrics at once; surface distances follow in the background.
        QTimer.singleShot(0, self.table, self.table.compute_if_ready)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.grid_widget)
        splitter.addWidget(self.table)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([640, 240])
        self.splitter = splitter
        self.setCentralWidget(splitter)
        self.resize(1400, 940)
        self._connect()
        self._build_panes()

    # -- construction -------------------------------------------------------------------
    def _build_toolbar(self) -> None:
        bar = QToolBar("Comparison", self)
        bar.setObjectName("comparisonToolBar")
        bar.setMovable(False)
        bar.addWidget(QLabel(" Plane ", bar))
        self.plane_box = QComboBox(bar)
        self.plane_box.setObjectName("comparisonPlane")
        for plane in ("axial", "coronal", "sagittal"):
            self.plane_box.addItem(plane.capitalize(), plane)
        self.plane_box.currentIndexChanged.connect(
            lambda _i: self.set_plane(str(self.plane_box.currentData())))
        bar.addWidget(self.plane_box)
        bar.addSeparator()
        bar.addWidget(QLabel(" Panes ", bar))
        self.count_box = QSpinBox(bar)
        self.count_box.setObjectName("comparisonPanes")
        self.count_box.setRange(2, 4)
        self.count_box.setValue(self._default_count())
        self.count_box.setToolTip("How many layers side by side")
        self.count_box.valueChanged.connect(self.set_pane_count)
        bar.addWidget(self.count_box)
        bar.addSeparator()
        self.disagree_box = QCheckBox("Disagreement map", bar)
        self.disagree_box.setObjectName("comparisonDisagreement")
        self.disagree_box.setToolTip("An extra pane: in red, the voxels where the shown "
                                     "layers differ")
        self.disagree_box.toggled.connect(self.set_disagreement_shown)
        bar.addWidget(self.disagree_box)
        bar.addSeparator()
        reset = bar.addAction("Reset Zoom")
        reset.setToolTip("Fit the image in every pane")
        reset.triggered.connect(self.reset_views)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.toolbar = bar

    def _candidates(self) -> list[LabelLayer]:
        """Layers a pane can show: ground truth first, then the edited mask, then results."""
        order = {role: i for i, role in enumerate(PANE_ROLES)}
        layers = [lay for lay in self.main_layers.labels if lay.role in order]
        return sorted(layers, key=lambda lay: order[lay.role])

    def _preferred(self) -> list[LabelLayer]:
        """Default choices: the ground truth, the newest results, a non-empty edited mask."""
        layers = self.main_layers.labels
        truth = [lay for lay in layers if lay.role == "truth"]
        results = [lay for lay in reversed(layers) if lay.role == "result"]
        edits = [lay for lay in layers if lay.role == "edit"]
        filled = [lay for lay in edits if lay.labelmap.array.any()]
        empty = [lay for lay in edits if lay not in filled]
        return truth + results + filled + empty

    def _default_count(self) -> int:
        useful = [lay for lay in self._preferred()
                  if lay.role != "edit" or lay.labelmap.array.any()]
        return int(min(4, max(2, len(useful))))

    def _connect(self) -> None:
        """Follow the main window's layers: new choices; a new image closes the window."""

        def image_replaced(*_args: Any) -> None:
            self.close()

        for event, callback in ((self.main_layers.image_changed, image_replaced),
                                (self.main_layers.layers_changed, self._layers_changed)):
            event.connect(callback)
            self._connections.append((event, callback))

    def _new_hub(self) -> None:
        """A fresh image and cursor for a new set of panes, mirrored both ways."""
        for event, callback in self._hub_connections:
            event.disconnect(callback)
        self._hub_connections = []
        main_cursor, main_image = self.main_cursor, self.main_layers.image
        assert main_image is not None
        image = ImageLayer(main_image.volume, name=main_image.name)
        image.set_levels(*main_image.levels)
        image.set_lut(main_image.lut)
        cursor = Cursor(main_image.volume.shape)
        cursor.set(main_cursor.position)
        self.image, self.cursor = image, cursor
        self.tool = NavigateTool(ToolContext(cursor, LayerStack()))

        def from_main(new: tuple[int, int, int], _old: Any) -> None:
            cursor.set(new)

        def to_main(new: tuple[int, int, int], _old: Any) -> None:
            main_cursor.set(new)

        def levels(value: tuple[float, float]) -> None:
            image.set_levels(*value)

        def lut(value: Any) -> None:
            image.set_lut(value)

        for event, callback in ((main_cursor.changed, from_main), (cursor.changed, to_main),
                                (main_image.levels_changed, levels),
                                (main_image.lut_changed, lut)):
            event.connect(callback)
            self._hub_connections.append((event, callback))

    def _disconnect(self) -> None:
        for event, callback in self._connections + self._hub_connections \
                + self._layer_connections:
            event.disconnect(callback)
        self._connections = []
        self._hub_connections = []
        self._layer_connections = []

    # -- panes ------------------------------------------------------------------------------
    def _build_panes(self) -> None:
        old = [p.source for p in self.panes]
        for pane in [*self.panes, *([self.disagreement_pane] if self.disagreement_pane else [])]:
            self.grid.removeWidget(pane)
            pane.deleteLater()
        self.panes = []
        self.disagreement_pane = None
        self._new_hub()
        assert self.tool is not None
        candidates = self._candidates()
        count = self.count_box.value()
        for i in range(count):
            pane = _Pane(f"{i + 1}", self.plane, self.cursor, self.image, self.convention,
                         self.tool, self.grid_widget)
            pane.setObjectName(f"comparisonPane{i + 1}")
            self._wire_view(pane.view)
            self.panes.append(pane)
            pane.chooser.currentIndexChanged.connect(
                lambda _i, p=pane: self._pane_choice_changed(p))
        # keep earlier choices, then fill with layers not shown yet
        chosen: list[LabelLayer | None] = []
        for i in range(count):
            keep = old[i] if i < len(old) and old[i] in candidates else None
            chosen.append(keep)
        preferred = self._preferred()
        for i in range(count):
            if chosen[i] is None:
                free = [lay for lay in preferred if lay not in chosen]
                chosen[i] = free[0] if free else (candidates[i % len(candidates)]
                                                  if candidates else None)
        for pane, layer in zip(self.panes, chosen, strict=True):
            self._fill_chooser(pane, candidates, layer)
            self._show_in(pane, layer)
        if self.disagree_box.isChecked():
            pane = _Pane("Disagreement", self.plane, self.cursor, self.image, self.convention,
                         self.tool, self.grid_widget, choosable=False)
            pane.setObjectName("comparisonDisagreementPane")
            self._wire_view(pane.view)
            self.disagreement_pane = pane
        self._arrange()
        self._watch_layers()
        self.update_disagreement()
        QTimer.singleShot(0, self.reset_views)

    def _arrange(self) -> None:
        widgets: list[QWidget] = list(self.panes)
        if self.disagreement_pane is not None:
            widgets.append(self.disagreement_pane)
        n = len(widgets)
        columns = n if n <= 3 else (2 if n == 4 else 3)
        for r in range(3):
            self.grid.setRowStretch(r, 0)
            self.grid.setColumnStretch(r, 0)
        for i, widget in enumerate(widgets):
            row, col = divmod(i, columns)
            self.grid.addWidget(widget, row, col)
            self.grid.setRowStretch(row, 1)
            self.grid.setColumnStretch(col, 1)

    def _fill_chooser(self, pane: _Pane, candidates: list[LabelLayer],
                      selected: LabelLayer | None) -> None:
        pane.chooser.blockSignals(True)
        pane.chooser.clear()
        for layer in candidates:
            pane.chooser.addItem(layer.name, id(layer))
            index = pane.chooser.count() - 1
            pane.chooser.setItemData(index, _ROLE_TEXT[layer.role], Qt.ItemDataRole.ToolTipRole)
        if selected is not None:
            pane.chooser.setCurrentIndex(candidates.index(selected))
        pane.chooser.blockSignals(False)

    def _show_in(self, pane: _Pane, layer: LabelLayer | None) -> None:
        if layer is None:
            pane.show_labels(None)
            pane.note.setText("no layer")
            return
        pane.show_labels(layer.labelmap, layer.name, source=layer)
        pane.note.setText(_ROLE_TEXT[layer.role])

    def _pane_choice_changed(self, pane: _Pane) -> None:
        key = pane.chooser.currentData()
        layer = next((lay for lay in self._candidates() if id(lay) == key), None)
        self._show_in(pane, layer)
        self._watch_layers()
        self._recompute.start()

    def _wire_view(self, view: SliceView) -> None:
        view.viewbox.sigRangeChanged.connect(lambda *_a, v=view: self._range_changed(v))
        view.window_level_dragged.connect(self._window_level_drag)

    def _watch_layers(self) -> None:
        """Forward data and display changes of the shown main layers to the panes."""
        for event, callback in self._layer_connections:
            event.disconnect(callback)
        self._layer_connections = []
        for pane in self.panes:
            source, mine = pane.source, pane.layer
            if source is None or mine is None:
                continue

            def data(bbox: BBox | None, mine: LabelLayer = mine) -> None:
                mine.notify_changed(bbox)
                self._recompute.start()

            def display(src: LabelLayer, mine: LabelLayer = mine) -> None:
                mine.set_outline(src.outline)
                if mine.hidden != src.hidden:
                    mine.hidden = set(src.hidden)
                    mine.notify_changed(None)

            for event, callback in ((source.data_changed, data),
                                    (source.display_changed, display)):
                event.connect(callback)
                self._layer_connections.append((event, callback))

    def _layers_changed(self) -> None:
        """A main layer was added or removed: refresh the choices, keep what is shown."""
        candidates = self._candidates()
        for pane in self.panes:
            current = pane.source if pane.source in candidates else None
            if current is None and pane.source is not None:
                current = candidates[0] if candidates else None
                self._show_in(pane, current)
            self._fill_chooser(pane, candidates, current)
        self._watch_layers()
        self._recompute.start()

    # -- public API -------------------------------------------------------------------------
    def set_plane(self, plane: str) -> None:
        """Show *plane* (``"axial"``, ``"coronal"``, ``"sagittal"``) in every pane."""
        if plane == self.plane:
            return
        self.plane = plane
        self.plane_box.blockSignals(True)
        self.plane_box.setCurrentIndex(self.plane_box.findData(plane))
        self.plane_box.blockSignals(False)
        self._build_panes()

    def set_pane_count(self, count: int) -> None:
        """Show 2 to 4 panes."""
        count = int(min(4, max(2, count)))
        if self.count_box.value() != count:
            self.count_box.setValue(count)  # comes back here through valueChanged
            return
        if count != len(self.panes):
            self._build_panes()

    def set_disagreement_shown(self, shown: bool) -> None:
        if self.disagree_box.isChecked() != shown:
            self.disagree_box.setChecked(shown)
            return
        self._build_panes()

    def show_layers(self, layers: list[LabelLayer]) -> None:
        """Show these main-window layers, one per pane (2 to 4)."""
        self.set_pane_count(len(layers))
        candidates = self._candidates()
        for pane, layer in zip(self.panes, layers, strict=False):
            pane.chooser.setCurrentIndex(candidates.index(layer))

    def shown_layers(self) -> list[LabelLayer | None]:
        return [pane.source for pane in self.panes]

    def update_disagreement(self) -> None:
        """Recompute the disagreement map of the shown layers."""
        self._recompute.stop()
        pane = self.disagreement_pane
        if pane is None:
            return
        arrays = [p.source.labelmap.array for p in self.panes if p.source is not None]
        image = self.main_layers.image
        if len(arrays) < 2 or image is None:
            pane.show_labels(None)
            pane.note.setText("needs two layers")
            return
        diff = disagreement(arrays)
        labelmap = LabelMap.on_grid_of(image.volume, diff, labels=DISAGREEMENT_LABELS)
        layer = pane.show_labels(labelmap, "Disagreement")
        if layer is not None:
            layer.set_opacity(0.85)
        n = int(np.count_nonzero(diff))
        colour = DISAGREEMENT_LABELS.color(1)
        pane.note.setTextFormat(Qt.TextFormat.RichText)
        pane.note.setText(f"<span style='color:rgb{tuple(colour)}'>■</span> the layers "
                          f"differ: {n:,} voxels, {n * image.volume.voxel_volume_ml:,.1f} mL")
        pane.note.setToolTip("Red: voxels where the shown layers do not all agree; "
                             "elsewhere they agree")

    def reset_views(self) -> None:
        """Fit the labelled part of the image (the brain), not the whole field of view."""
        box = self._labelled_box()
        self._syncing = True
        try:
            for view in self.views():
                view.reset_view()
                if box is not None:
                    geo, (sx, sy) = view.geometry_, view._spacing
                    (x0, x1), (y0, y1) = box[geo.x_axis], box[geo.y_axis]
                    view.viewbox.setRange(QRectF(x0 * sx, y0 * sy, (x1 - x0) * sx,
                                                 (y1 - y0) * sy), padding=0.06)
        finally:
            self._syncing = False

    def _labelled_box(self) -> list[tuple[int, int]] | None:
        """Per axis, the voxel range ``(lo, hi + 1)`` holding a label of any shown layer."""
        arrays = [p.source.labelmap.array for p in self.panes if p.source is not None]
        if not arrays:
            return None
        box: list[tuple[int, int]] = []
        for axis in range(3):
            others = tuple(a for a in range(3) if a != axis)
            hits = np.zeros(arrays[0].shape[axis], bool)
            for array in arrays:
                hits |= array.any(axis=others)
            where = np.flatnonzero(hits)
            if where.size == 0:
                return None
            box.append((int(where[0]), int(where[-1]) + 1))
        return box

    def views(self) -> list[SliceView]:
        panes = [*self.panes, *([self.disagreement_pane] if self.disagreement_pane else [])]
        return [pane.view for pane in panes]

    def render_pending(self) -> None:
        """Render every pane now (tests and screenshots)."""
        for view in self.views():
            view.render_pending()

    # -- synchronisation ----------------------------------------------------------------------
    def _range_changed(self, source: SliceView) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            (x0, x1), (y0, y1) = source.viewbox.viewRange()
            width, height = source.viewbox.width(), source.viewbox.height()
            if width <= 0 or height <= 0:
                return
            # same centre and same millimetres per pixel, whatever each pane's size
            cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
            sx, sy = (x1 - x0) / width, (y1 - y0) / height
            for view in self.views():
                if view is source:
                    continue
                hw, hh = 0.5 * sx * view.viewbox.width(), 0.5 * sy * view.viewbox.height()
                view.viewbox.setRange(xRange=(cx - hw, cx + hw), yRange=(cy - hh, cy + hh),
                                      padding=0)
        finally:
            self._syncing = False

    def _window_level_drag(self, dx: float, dy: float) -> None:
        image = self.main_layers.image
        if image is not None:
            image.set_levels(*drag_window(image.levels, dx, dy, data_range=image.data_range))

    # -- closing ----------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        self._disconnect()
        job = self.table.job
        if job is not None and not job.done:
            job.cancel()
        super().closeEvent(event)
        self.closed.emit()
