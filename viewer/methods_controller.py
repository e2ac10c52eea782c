"""Segmentation in the main window: the methods dock, comparison mode, click-to-refine.

:class:`MethodsController` is what the main window creates on first use to get

* the **Methods** panel (:class:`~viewer.panels.methods_panel.MethodsPanel`)
  driving a :class:`~viewer.pipeline_runner.PipelineRunner`;
* the **comparison window** (:class:`~viewer.comparison.ComparisonWindow`):
  synchronised panes and the metrics table;
* **click-to-refine**: a :class:`~viewer.pipeline_runner.RefineRunner` for the
  Refine tool's requests, and the box being dragged, drawn in the view it is
  dragged in.

It knows the window only as a :class:`MethodsHost`: the models, the views and
three calls back. The window puts the panel in a dock, hands the refiner to
the Refine tool and adds the Segment menu (:meth:`viewer.menus.Menus.add_segment_menu`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Qt
from PySide6.QtWidgets import QGraphicsRectItem, QWidget

from .comparison import ComparisonWindow
from .panels.methods_panel import MethodsPanel
from .panels.plausibility_box import PlausibilityBox
from .pipeline_runner import EditsLike, PipelineRunner, RefineRunner

if TYPE_CHECKING:
    from engine.core.volume import LabelMap

    from .cursor import Cursor
    from .layers import LabelLayer, LayerStack
    from .settings import Settings
    from .slice_view import SliceView
    from .workers import Job, JobRunner

__all__ = ["MethodsController", "MethodsHost"]

log = logging.getLogger(__name__)

BOX_PEN = (255, 214, 90, 230)


@runtime_checkable
class MethodsHost(Protocol):
    """What the controller uses of the main window, and nothing more."""

    @property
    def layers(self) -> LayerStack: ...
    @property
    def cursor(self) -> Cursor: ...
    @property
    def runner(self) -> JobRunner: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def views(self) -> Mapping[str, SliceView]: ...
    @property
    def edits(self) -> EditsLike | None: ...

    def add_result_layer(self, labelmap: LabelMap, name: str, **display: object) -> LabelLayer:
        """Show a method's output as a new label layer."""
        ...

    def show_message(self, text: str, timeout_ms: int = ...) -> None:
        """A short note in the status bar."""
        ...

    def show_warning(self, title: str, text: str) -> None:
        """A modal warning the reader must acknowledge (e.g. a refused run)."""
        ...

    def set_tool(self, name: str) -> None:
        """Make *name* the active tool of the slice views."""
        ...


class MethodsController(QObject):
    """Pipelines, comparison and click-to-refine for *host* (see the module doc).

    Parameters
    ----------
    host : MethodsHost
        The main window, as far as the controller needs it.
    parent : QWidget
        Parent of the panel and of the comparison window (the main window).
    """

    def __init__(self, host: MethodsHost, *, parent: QWidget) -> None:
        super().__init__(parent)
        self.host = host
        self._parent = parent
        self.pipelines = PipelineRunner(host.layers, host.runner, host.add_result_layer,
                                        lambda: host.edits, parent=self)
        self.panel = MethodsPanel(self.pipelines, host.layers, parent)
        self.refiner = RefineRunner(host.layers, host.runner, lambda: host.edits,
                                    params=self.panel.refine_params,
                                    device=lambda: self.panel.device_name, parent=self)
        self.comparison: ComparisonWindow | None = None
        #: The dashed box the Refine tool is being dragged over, or None.
        self.box_item: QGraphicsRectItem | None = None
        self._box_view: SliceView | None = None

        self.panel.compare_requested.connect(self.open_comparison)
        self.panel.tool_requested.connect(host.set_tool)
        self.pipelines.finished.connect(self._pipeline_finished)
        self.pipelines.failed.connect(lambda text: host.show_message(text))
        self.pipelines.refused.connect(self._refused)
        self.plausibility = PlausibilityBox(
            host.layers, host.cursor, self.panel.selected_result, self.pipelines.regions_of,
            host.show_message, parent=self.panel)
        self.panel.result_extras.addWidget(self.plausibility)
        self.panel.results.currentIndexChanged.connect(lambda _i: self.plausibility.refresh())
        host.layers.layers_changed.connect(self.plausibility.refresh)
        self.refiner.started.connect(lambda text: host.show_message(f"Refining {text}…"))
        self.refiner.finished.connect(self._refined)
        self.refiner.failed.connect(lambda text: host.show_message(text))
        self.refiner.cancelled.connect(lambda: host.show_message("Refinement cancelled"))

    # -- actions ----------------------------------------------------------------------------
    def run(self) -> Job | None:
        """Run the pipeline set up in the panel (None when it cannot start)."""
        return self.panel.run()

    def cancel(self) -> None:
        self.pipelines.cancel()

    def open_comparison(self) -> ComparisonWindow | None:
        """Show the comparison window (created on first use, for the current image)."""
        host = self.host
        if host.layers.image is None:
            host.show_message("Open an image first")
            return None
        if self.comparison is None:
            self.comparison = ComparisonWindow(
                host.layers, host.cursor, host.runner,
                convention=host.settings.convention, parent=self._parent)
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
        verdict = (meta.get("plausibility") or {}).get("verdict")
        self.host.show_message(f"{layer.name}: done in {meta.get('runtime_s', 0.0):.1f} s"
                               + (f" — {verdict}" if verdict else ""))
        self.plausibility.refresh()

    def _refused(self, title: str, reasons: str) -> None:
        self.host.show_warning(title, reasons + "\n\nTick \"Run outside the declared use\" "
                               "in the Methods dock to run it anyway; the result will keep "
                               "these warnings.")

    def next_uncertain_region(self) -> None:
        """Segment → Next Uncertain Region: the views go to the next doubtful region."""
        self.plausibility.next_region()

    def _refined(self, count: int) -> None:
        if count:
            self.host.show_message(f"Refined: {count:,} voxels changed (Ctrl+Z undoes)")
        else:
            self.host.show_message("Refine: the contour changed nothing")

    # -- the box of the Refine tool -------------------------------------------------------
    def preview_box(self, plane: str, corner_a: tuple[int, int, int] | None,
                    corner_b: tuple[int, int, int] | None) -> None:
        """Draw the dragged box in the view of *plane*; ``None`` corners clear it."""
        if self.box_item is not None and self._box_view is not None:
            self._box_view.viewbox.removeItem(self.box_item)
        self.box_item = None
        self._box_view = None
        image = self.host.layers.image
        if corner_a is None or corner_b is None or image is None:
            return
        view = self.host.views[plane]
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
