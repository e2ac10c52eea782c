"""Segmentation in the main window: the methods dock, comparison mode, click-to-refine.

:class:`MethodsController` is what the main window creates once (after its
docks, before its menus) to get

* the **Methods** dock (:class:`~viewer.panels.methods_panel.MethodsPanel`)
  driving a :class:`~viewer.pipeline_runner.PipelineRunner`;
* the **comparison window** (:class:`~viewer.comparison.ComparisonWindow`):
  synchronised panes and the metrics table;
* **click-to-refine**: the Refine tool's requests go to a
  :class:`~viewer.pipeline_runner.RefineRunner`, and the box being dragged is
  drawn in the view it is dragged in;
* the **Segment** menu.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QGraphicsRectItem, QMenu, QMenuBar

from .comparison import ComparisonWindow
from .panels.methods_panel import MethodsPanel
from .pipeline_runner import PipelineRunner, RefineRunner

if TYPE_CHECKING:
    from .layers import LabelLayer
    from .main_window import MainWindow

__all__ = ["MethodsController"]

log = logging.getLogger(__name__)

BOX_PEN = (255, 214, 90, 230)


class MethodsController(QObject):
    """Pipelines, comparison and click-to-refine for *window* (see the module doc)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        edits = lambda: getattr(window, "edits", None)  # noqa: E731 - created by the window
        self.pipelines = PipelineRunner(window.layers, window.runner, window.add_result_layer,
                                        edits, parent=self)
        self.panel = MethodsPanel(self.pipelines, window.layers, window)
        self.refiner = RefineRunner(window.layers, window.runner, edits,
                                    params=self.panel.refine_params,
                                    device=lambda: self.panel.device_name, parent=self)
        self.comparison: ComparisonWindow | None = None
        #: The dashed box the Refine tool is being dragged over, or None.
        self.box_item: QGraphicsRectItem | None = None
        self._box_view: Any = None

        dock = window.add_dock("methods", "Methods", self.panel,
                               Qt.DockWidgetArea.LeftDockWidgetArea)
        editing = window.docks.get("edit")
        if editing is not None:  # a tab beside the Editing dock: segment, then correct
            window.tabifyDockWidget(editing, dock)
            editing.raise_()
        else:
            window.resizeDocks([dock], [340], Qt.Orientation.Horizontal)
        self.dock = dock

        self.panel.compare_requested.connect(self.open_comparison)
        self.panel.tool_requested.connect(window.set_tool)
        self.pipelines.finished.connect(self._pipeline_finished)
        self.pipelines.failed.connect(lambda text: window.show_message(text))
        self.refiner.started.connect(lambda text: window.show_message(f"Refining {text}…"))
        self.refiner.finished.connect(self._refined)
        self.refiner.failed.connect(lambda text: window.show_message(text))
        self.refiner.cancelled.connect(lambda: window.show_message("Refinement cancelled"))
        window.tool_context.extras["refine"] = self.refiner.request
        window.tool_context.extras["refine_preview"] = self.preview_box

    # -- menu ---------------------------------------------------------------------------
    def build_menu(self, bar: QMenuBar, actions: dict[str, QAction]) -> QMenu:
        """The Segment menu (before the Help menu): run, cancel, compare, Refine, the dock."""
        menu = QMenu("&Segment", bar)
        for key in ("run_pipeline", "compare_results"):
            if key in actions:
                menu.addAction(actions[key])
        cancel = menu.addAction("&Cancel Pipeline")
        cancel.setObjectName("action_cancel_pipeline")
        cancel.triggered.connect(self.pipelines.cancel)
        self.pipelines.started.connect(lambda _n: cancel.setEnabled(True))
        for signal in (self.pipelines.finished, self.pipelines.failed, self.pipelines.cancelled):
            signal.connect(lambda *_a: cancel.setEnabled(self.pipelines.running))
        cancel.setEnabled(False)
        menu.addSeparator()
        refine = self.window.tool_actions.get("refine")
        if refine is not None:  # the checkable tool action; its key is in viewer.shortcuts
            refine.setText(f"{self.window.tools['refine'].label}\tA")
            refine.setIconText(self.window.tools["refine"].label)
            menu.addAction(refine)
        menu.addAction(self.dock.toggleViewAction())
        help_menu = next((a for a in bar.actions() if a.text() == "&Help"), None)
        if help_menu is not None:
            bar.insertMenu(help_menu, menu)
        else:
            bar.addMenu(menu)
        self.menu = menu
        return menu

    # -- actions ----------------------------------------------------------------------------
    def run(self) -> Any:
        """Run the pipeline set up in the dock (shows the dock first)."""
        self.dock.show()
        self.dock.raise_()
        return self.panel.run()

    def cancel(self) -> None:
        self.pipelines.cancel()

    def open_comparison(self) -> ComparisonWindow | None:
        """Show the comparison window (created on first use, for the current image)."""
        window = self.window
        if window.layers.image is None:
            window.show_message("Open an image first")
            return None
        if self.comparison is None:
            self.comparison = ComparisonWindow(
                window.layers, window.cursor, window.runner,
                convention=window.settings.convention, parent=window)
            self.comparison.setWindowFlag(Qt.WindowType.Window, True)
            self.comparison.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
            # closing the main window ends the application even with this one open
            self.comparison.setAttribute(Qt.WidgetAttribute.WA_QuitOnClose, False)
            self.comparison.closed.connect(self._comparison_closed)
        self.comparison.show()
        self.comparison.raise_()
        self.comparison.activateWindow()
        return self.comparison

    def _comparison_closed(self) -> None:
        self.comparison = None

    # -- feedback ---------------------------------------------------------------------------
    def _pipeline_finished(self, layer: LabelLayer) -> None:
        meta = layer.labelmap.metadata
        self.window.show_message(f"{layer.name}: done in {meta.get('runtime_s', 0.0):.1f} s")

    def _refined(self, count: int) -> None:
        if count:
            self.window.show_message(f"Refined: {count:,} voxels changed (Ctrl+Z undoes)")
        else:
            self.window.show_message("Refine: the contour changed nothing")

    # -- the box of the Refine tool -------------------------------------------------------
    def preview_box(self, plane: str, corner_a: tuple[int, int, int] | None,
                    corner_b: tuple[int, int, int] | None) -> None:
        """Draw the dragged box in the view of *plane*; ``None`` corners clear it."""
        if self.box_item is not None:
            self._box_view.viewbox.removeItem(self.box_item)
            self.box_item = None
            self._box_view = None
        image = self.window.layers.image
        if corner_a is None or corner_b is None or image is None:
            return
        view = self.window.views[plane]
        geo = view.geometry_
        spacing = image.volume.spacing
        x0, x1 = sorted((corner_a[geo.x_axis], corner_b[geo.x_axis]))
        y0, y1 = sorted((corner_a[geo.y_axis], corner_b[geo.y_axis]))
        sx, sy = spacing[geo.x_axis], spacing[geo.y_axis]
        rect = QRectF(x0 * sx, y0 * sy, (x1 + 1 - x0) * sx, (y1 + 1 - y0) * sy)
        item = QGraphicsRectItem(rect)
        pen = pg.mkPen(BOX_PEN, width=2, style=Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        item.setPen(pen)
        item.setZValue(2000)
        view.viewbox.addItem(item, ignoreBounds=True)
        self.box_item = item
        self._box_view = view
