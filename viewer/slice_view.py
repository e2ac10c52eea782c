"""One orthogonal slice view: ``ViewBox`` + image ``ImageItem`` + one RGBA
overlay ``ImageItem`` per label layer + a crosshair, under a header bar with
the plane's name, a slice slider and a maximise button. Measurement lines
(:class:`SliceLine`, e.g. a lesion's RANO diameters) are drawn on the slice
that holds them (:meth:`SliceView.set_lines`).

The view renders lazily: model events only mark what is stale (the image,
some overlays) and a zero-delay timer renders the visible slice once, so a
burst of changes costs one redraw. Hidden views (another one maximised)
render when they are shown again. Scene coordinates are millimetres along
the two in-plane array axes, so the physical aspect ratio comes from the
voxel spacing and ``setAspectLocked``; the radiological/neurological
convention is a flip of the ViewBox's x axis.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap, QShowEvent
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsEllipseItem,
    QHBoxLayout,
    QLabel,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.core.events import Connection
from engine.display import extract_slice, label_rgba, plane_geometry

from .cursor import Cursor
from .layers import BBox, ImageLayer, LabelLayer, LayerStack, drawing_order
from .slice_canvas import SliceCanvas
from .subscriptions import subscribe
from .tools.base import Tool, ToolEvent

__all__ = ["PLANE_COLOURS", "PLANE_TITLES", "SliceLine", "SliceView"]

log = logging.getLogger(__name__)

#: Header colours of the planes, as in 3D Slicer (red, green, yellow).
PLANE_COLOURS = {"axial": "#c8473a", "coronal": "#5c9f45", "sagittal": "#d7b33b"}
PLANE_TITLES = {"axial": "Axial", "coronal": "Coronal", "sagittal": "Sagittal"}
CROSSHAIR_PEN = (90, 200, 255, 190)
TOOL_OUTLINE_PEN = (240, 240, 240, 230)
TOOL_OUTLINE_FILL_ALPHA = 90
ZOOM_PER_PIXEL = 0.01
ZOOM_PER_NOTCH = 0.85
FAST_STEP = 5
#: Drawing order of measurement lines: over the labels and the crosshair, under the brush.
LINE_Z = 1000.5
LINE_CASING = (0, 0, 0, 170)


@dataclass(frozen=True)
class SliceLine:
    """A segment between two voxel positions, drawn on the slice that holds both ends.

    *start* and *end* are (fractional) voxel indices ``(i, j, k)``; the line
    shows in a view whose slice index along its normal axis is within half a
    voxel of both ends' coordinate on that axis. *text* is written beside
    *end* (e.g. the length).
    """

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    colour: tuple[int, int, int]
    text: str = ""


def _maximise_icon() -> QIcon:
    """A light 'expand' glyph drawn at run time (no icon theme needed)."""
    pixmap = QPixmap(16, 16)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setPen(QPen(QColor("#c8ccd2"), 1.5))
    for x0, y0, dx, dy in ((2, 2, 1, 1), (14, 2, -1, 1), (2, 14, 1, -1), (14, 14, -1, -1)):
        painter.drawLine(x0, y0, x0 + 4 * dx, y0)
        painter.drawLine(x0, y0, x0, y0 + 4 * dy)
    painter.end()
    return QIcon(pixmap)


def _row_major(item: pg.ImageItem) -> pg.ImageItem:
    item.setOpts(axisOrder="row-major")
    return item


class SliceView(QWidget):
    """A view of one plane of the layer stack, linked to the shared cursor."""

    maximise_requested = Signal(str)
    activated = Signal(str)
    #: Voxel index under the pointer, or None when it leaves the volume/view.
    hovered = Signal(object)
    #: Window/level drag in screen pixels (dx, dy).
    window_level_dragged = Signal(float, float)
    #: The slice was re-rendered (for tests and benchmarks).
    rendered = Signal()

    def __init__(
        self,
        plane: str,
        cursor: Cursor,
        layers: LayerStack,
        *,
        tool: Callable[[], Tool | None] = lambda: None,
        convention: str = "radiological",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName(f"view_{plane}")
        self.plane = plane
        self.cursor = cursor
        self.layers = layers
        self.tool_provider = tool
        self.geometry_ = plane_geometry(plane, convention)
        self.index = 0
        self._spacing = (1.0, 1.0)
        self._size = (1, 1)
        self._stale_image = True
        self._stale: set[LabelLayer] = set()
        self._blank: set[LabelLayer] = set()  # layers with no label on the shown slice
        self._items: dict[LabelLayer, pg.ImageItem] = {}
        self._layer_handles: dict[LabelLayer, tuple[Connection, Connection]] = {}
        self._image_handles: tuple[Connection, ...] = ()
        self._gesture_anchor = QPointF()
        self._image_layer: ImageLayer | None = None

        self.viewbox = pg.ViewBox(enableMenu=False, lockAspect=True, invertY=False)
        self.viewbox.setMouseEnabled(False, False)
        self.viewbox.disableAutoRange()
        self.image_item = _row_major(pg.ImageItem())
        self.viewbox.addItem(self.image_item)
        pen = pg.mkPen(CROSSHAIR_PEN, width=1)
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self.hline = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        for line in (self.vline, self.hline):
            line.setZValue(1000)
            self.viewbox.addItem(line, ignoreBounds=True)
        # The active tool's outline around the pointer (the brush), in mm.
        self.tool_outline = QGraphicsEllipseItem()
        self.tool_outline.setZValue(1001)
        self.tool_outline.hide()
        self.viewbox.addItem(self.tool_outline, ignoreBounds=True)
        self._pointer: QPointF | None = None
        self._tool_drag: Tool | None = None
        self._lines: list[SliceLine] = []
        self._line_items: list[pg.GraphicsObject] = []
        self.canvas = SliceCanvas(self.viewbox, self, self)
        self._build_header()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.header)
        layout.addWidget(self.canvas, 1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.render_pending)

        subscribe(self, cursor.changed, self._on_cursor)
        subscribe(self, layers.image_changed, self._on_image)
        subscribe(self, layers.layers_changed, self._sync_layers)
        subscribe(self, layers.overlay_changed, self._apply_opacities)
        self.set_convention(convention)
        self.update_tool_cursor()
        if layers.image is not None:
            self._on_image(layers.image)

    # -- construction ------------------------------------------------------------
    def _build_header(self) -> None:
        self.header = QFrame(self)
        self.header.setObjectName("sliceHeader")
        colour = PLANE_COLOURS[self.plane]
        self.header.setStyleSheet(
            f"#sliceHeader {{ background: #23262b; border-top: 3px solid {colour}; }}"
        )
        row = QHBoxLayout(self.header)
        row.setContentsMargins(6, 1, 2, 1)
        row.setSpacing(6)
        title = QLabel(PLANE_TITLES[self.plane], self.header)
        title.setStyleSheet(f"color: {colour}; font-weight: 700;")
        title.setMinimumWidth(58)
        self.slider = QSlider(Qt.Orientation.Horizontal, self.header)
        self.slider.setObjectName(f"slider_{self.plane}")
        self.slider.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.slider.setToolTip(f"{PLANE_TITLES[self.plane]} slice")
        self.slider.valueChanged.connect(self._slider_moved)
        self.slice_label = QLabel("–", self.header)
        self.slice_label.setMinimumWidth(64)
        self.slice_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.slice_label.setStyleSheet("color: #c8ccd2;")
        self.max_button = QToolButton(self.header)
        self.max_button.setAutoRaise(True)
        self.max_button.setIcon(_maximise_icon())
        self.max_button.setToolTip("Maximise / restore this view (double-click in the view)")
        self.max_button.clicked.connect(lambda: self.maximise_requested.emit(self.plane))
        for widget in (title, self.slider, self.slice_label, self.max_button):
            row.addWidget(widget, 1 if widget is self.slider else 0)

    # -- public API --------------------------------------------------------------
    def set_convention(self, convention: str) -> None:
        """Radiological or neurological left-right display (see engine.display)."""
        self.geometry_ = plane_geometry(self.plane, convention)
        self.viewbox.invertX(self.geometry_.flip_x)
        self.canvas.set_letters(dict(self.geometry_.letters))

    @property
    def normal_axis(self) -> int:
        return self.geometry_.normal_axis

    def reset_view(self) -> None:
        """Fit the whole slice in the view (undo zoom and pan)."""
        w = self._size[0] * self._spacing[0]
        h = self._size[1] * self._spacing[1]
        self.viewbox.setRange(QRectF(0.0, 0.0, w, h), padding=0.02)

    def show_region(self, lo: Sequence[float], hi: Sequence[float]) -> None:
        """Zoom and pan so that the voxels *lo*..*hi* (inclusive ``(i, j, k)``) fill the view.

        Only the two in-plane axes count; the aspect ratio stays locked, so
        the view shows at least that region.
        """
        geo = self.geometry_
        sx, sy = self._spacing
        x0, x1 = sorted((float(lo[geo.x_axis]), float(hi[geo.x_axis])))
        y0, y1 = sorted((float(lo[geo.y_axis]), float(hi[geo.y_axis])))
        self.viewbox.setRange(QRectF(x0 * sx, y0 * sy, (x1 + 1 - x0) * sx, (y1 + 1 - y0) * sy),
                              padding=0.0)

    def set_lines(self, lines: Sequence[SliceLine]) -> None:
        """Draw *lines* (replacing the previous ones) on the slices that hold them."""
        self._lines = list(lines)
        self._draw_lines()

    @property
    def lines_shown(self) -> list[SliceLine]:
        """The lines on the slice shown now."""
        n = self.normal_axis
        return [line for line in self._lines
                if abs(line.start[n] - self.index) < 0.5 and abs(line.end[n] - self.index) < 0.5]

    def _draw_lines(self) -> None:
        for item in self._line_items:
            self.viewbox.removeItem(item)
        self._line_items = []
        geo = self.geometry_
        sx, sy = self._spacing
        for line in self.lines_shown:
            xs = [(p[geo.x_axis] + 0.5) * sx for p in (line.start, line.end)]
            ys = [(p[geo.y_axis] + 0.5) * sy for p in (line.start, line.end)]
            casing = pg.PlotCurveItem(xs, ys, pen=pg.mkPen(LINE_CASING, width=4))
            curve = pg.PlotCurveItem(xs, ys, pen=pg.mkPen(line.colour, width=2))
            ends = pg.ScatterPlotItem(xs, ys, size=6, pen=pg.mkPen(LINE_CASING, width=1),
                                      brush=pg.mkBrush(line.colour))
            items: list[pg.GraphicsObject] = [casing, curve, ends]
            if line.text:
                label = pg.TextItem(line.text, color=line.colour, fill=pg.mkBrush(0, 0, 0, 150),
                                    anchor=(0.0, 1.0))
                label.setPos(xs[1], ys[1])
                items.append(label)
            for z, item in enumerate(items):
                item.setZValue(LINE_Z + z * 0.01)
                self.viewbox.addItem(item, ignoreBounds=True)
            self._line_items += items

    def view_rect(self) -> QRectF:
        """The visible area in view coordinates (mm)."""
        (x0, x1), (y0, y1) = self.viewbox.viewRange()
        return QRectF(x0, y0, x1 - x0, y1 - y0)

    def zoom(self, factor: float, centre: QPointF | None = None) -> None:
        """Zoom in (*factor* > 1) or out about *centre* (default: the view's centre)."""
        self.viewbox.scaleBy((1.0 / factor, 1.0 / factor), center=centre)

    def pan(self, dx_mm: float, dy_mm: float) -> None:
        """Move the visible area by ``(dx, dy)`` millimetres."""
        self.viewbox.translateBy(x=dx_mm, y=dy_mm)

    def step(self, delta: int) -> None:
        """Move this view's slice by *delta* (the cursor follows)."""
        self.cursor.step(self.normal_axis, delta)

    def set_slice(self, index: int) -> None:
        self.cursor.set_axis(self.normal_axis, index)

    def set_crosshair_visible(self, visible: bool) -> None:
        self.vline.setVisible(visible)
        self.hline.setVisible(visible)

    def update_tool_cursor(self) -> None:
        tool = self.tool_provider()
        shape = getattr(Qt.CursorShape, tool.cursor_shape if tool else "CrossCursor")
        self.canvas.setCursor(shape)
        self.update_tool_outline()

    def update_tool_outline(self) -> None:
        """Draw the active tool's outline (the brush circle) around the pointer."""
        tool = self.tool_provider()
        shape = None
        if tool is not None and self._pointer is not None and self.layers.image is not None:
            shape = tool.outline()
        if shape is None:
            self.tool_outline.hide()
            return
        radius, rgb = shape
        centre = self._pointer
        self.tool_outline.setRect(QRectF(centre.x() - radius, centre.y() - radius,
                                         2.0 * radius, 2.0 * radius))
        # A light ring shows over any label colour; the fill says what is painted.
        pen = QPen(QColor(*TOOL_OUTLINE_PEN))
        pen.setCosmetic(True)
        pen.setWidthF(1.5)
        if rgb is None:
            pen.setStyle(Qt.PenStyle.DashLine)  # erasing
        self.tool_outline.setPen(pen)
        self.tool_outline.setBrush(QColor(*rgb, TOOL_OUTLINE_FILL_ALPHA) if rgb is not None
                                   else QColor(0, 0, 0, 0))
        self.tool_outline.show()

    def refresh_labels(self, layer: LabelLayer, bbox: BBox | None = None) -> None:
        """Redraw *layer* if this view's slice crosses *bbox* (None: always)."""
        if layer not in self._items:
            return
        if bbox is not None:
            span = bbox[self.normal_axis]
            start = 0 if span.start is None else span.start
            stop = self._depth() if span.stop is None else span.stop
            if not start <= self.index < stop:
                return
        self._stale.add(layer)
        self._schedule()

    def overlay_item(self, layer: LabelLayer) -> pg.ImageItem | None:
        return self._items.get(layer)

    # -- rendering ---------------------------------------------------------------
    def _depth(self) -> int:
        image = self.layers.image
        return image.volume.shape[self.normal_axis] if image else 1

    def _schedule(self) -> None:
        if self.isVisible():
            self._timer.start()

    def showEvent(self, ev: QShowEvent) -> None:
        super().showEvent(ev)
        if self._stale_image or self._stale:
            self._timer.start()

    def render_pending(self) -> None:
        """Render whatever is stale now (normally called by the zero-delay timer)."""
        self._timer.stop()
        image = self.layers.image
        if image is None or not (self._stale_image or self._stale):
            return
        geo = self.geometry_
        if self._stale_image:
            self._stale_image = False
            data = extract_slice(image.volume.array, geo, self.index)
            self.image_item.setImage(data, autoLevels=False, levels=image.levels, lut=image.lut)
            self._place(self.image_item)
        for layer in list(self._stale):
            item = self._items.get(layer)
            if item is None or self.layers.effective_opacity(layer) == 0.0:
                continue  # stays stale until it is shown
            self._stale.discard(layer)
            labels = extract_slice(layer.labelmap.array, geo, self.index)
            if labels.any():
                self._blank.discard(layer)
                item.setImage(label_rgba(labels, layer.lut, outline=layer.outline),
                              autoLevels=False)
                self._place(item)
            else:
                self._blank.add(layer)  # nothing to draw on this slice: skip painting it
            item.setVisible(layer not in self._blank)
        self.rendered.emit()

    def _place(self, item: pg.ImageItem) -> None:
        w = self._size[0] * self._spacing[0]
        h = self._size[1] * self._spacing[1]
        item.setRect(QRectF(0.0, 0.0, w, h))

    def _invalidate(self) -> None:
        self._stale_image = True
        self._stale.update(self._items)
        self._schedule()

    # -- model events ------------------------------------------------------------
    def _on_image(self, image: ImageLayer) -> None:
        for handle in self._image_handles:
            handle.disconnect()
        self._image_layer = image
        self._image_handles = (subscribe(self, image.levels_changed, self._on_levels),
                               subscribe(self, image.lut_changed, self._on_lut))
        vol = image.volume
        geo = self.geometry_
        self._spacing = (vol.spacing[geo.x_axis], vol.spacing[geo.y_axis])
        self._size = (vol.shape[geo.x_axis], vol.shape[geo.y_axis])
        self.slider.blockSignals(True)
        self.slider.setRange(0, vol.shape[geo.normal_axis] - 1)
        self.slider.blockSignals(False)
        self.index = self.cursor.position[geo.normal_axis]
        self._lines = []  # measurements of the previous image
        self._draw_lines()
        self._sync_layers()
        self._update_cursor_display()
        self._invalidate()
        self.reset_view()

    def _on_levels(self, levels: tuple[float, float]) -> None:
        self.image_item.setLevels(levels)

    def _on_lut(self, lut: np.ndarray | None) -> None:
        self.image_item.setLookupTable(lut)

    def _sync_layers(self) -> None:
        current = self.layers.labels
        for layer in [lay for lay in self._items if lay not in current]:
            self.viewbox.removeItem(self._items.pop(layer))
            for handle in self._layer_handles.pop(layer):
                handle.disconnect()
            self._stale.discard(layer)
            self._blank.discard(layer)
        for layer in current:
            item = self._items.get(layer)
            if item is None:
                item = _row_major(pg.ImageItem())
                self._items[layer] = item
                self.viewbox.addItem(item)

                def data_cb(bbox: BBox | None, lay: LabelLayer = layer) -> None:
                    self.refresh_labels(lay, bbox)

                self._layer_handles[layer] = (
                    subscribe(self, layer.display_changed, self._on_layer_display),
                    subscribe(self, layer.data_changed, data_cb))
                self._stale.add(layer)
        for z, layer in enumerate(drawing_order(current)):
            self._items[layer].setZValue(10 + z)
        self._apply_opacities()

    def _on_layer_display(self, layer: LabelLayer) -> None:
        # Outline / hidden labels change the pixels; opacity and visibility do not.
        for z, lay in enumerate(drawing_order(self.layers.labels)):  # outlines go on top
            if lay in self._items:
                self._items[lay].setZValue(10 + z)
        self._stale.add(layer)
        self._apply_opacities()

    def _apply_opacities(self) -> None:
        for layer, item in self._items.items():
            opacity = self.layers.effective_opacity(layer)
            item.setOpacity(opacity)
            item.setVisible(opacity > 0.0 and layer not in self._blank)
        if self._stale:
            self._schedule()

    def _on_cursor(self, new: tuple[int, int, int], old: tuple[int, int, int]) -> None:
        self._update_cursor_display()
        index = new[self.normal_axis]
        if index != self.index:
            self.index = index
            self._invalidate()
            if self._lines or self._line_items:
                self._draw_lines()
            if self._pointer is not None and self.layers.image is not None:
                # The pointer has not moved but its voxel is on the new slice now.
                self.hovered.emit(self.tool_event(self._pointer).index)

    def _update_cursor_display(self) -> None:
        pos = self.cursor.position
        geo = self.geometry_
        self.vline.setValue((pos[geo.x_axis] + 0.5) * self._spacing[0])
        self.hline.setValue((pos[geo.y_axis] + 0.5) * self._spacing[1])
        index = pos[geo.normal_axis]
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        self.slice_label.setText(f"{index + 1} / {self._depth()}")

    def _slider_moved(self, value: int) -> None:
        self.set_slice(value)

    # -- gestures (called by the canvas) -----------------------------------------
    def tool_event(self, pos: QPointF, mods: frozenset[str] = frozenset(),
                   gesture: str = "tool") -> ToolEvent:
        """The :class:`ToolEvent` for a point of the view (coordinates in mm)."""
        geo = self.geometry_
        fx = pos.x() / self._spacing[0]
        fy = pos.y() / self._spacing[1]
        voxel = [0.0, 0.0, 0.0]
        voxel[geo.x_axis] = fx - 0.5
        voxel[geo.y_axis] = fy - 0.5
        voxel[geo.normal_axis] = float(self.index)
        ix, iy = math.floor(fx), math.floor(fy)
        index = None
        if self.layers.image is not None and 0 <= ix < self._size[0] and 0 <= iy < self._size[1]:
            ijk = [0, 0, 0]
            ijk[geo.x_axis], ijk[geo.y_axis], ijk[geo.normal_axis] = ix, iy, self.index
            index = tuple(ijk)
        return ToolEvent(self.plane, geo.normal_axis, tuple(voxel), index, mods,  # type: ignore[arg-type]
                         gesture)

    def _gesture_tool(self, gesture: str) -> Tool | None:
        """The tool a drag goes to: ``"tool"`` always, other gestures if it claims them."""
        tool = self.tool_provider()
        if tool is None or self.layers.image is None:
            return None
        return tool if gesture == "tool" or tool.claims(gesture) else None

    def gesture_start(self, gesture: str, pos: QPointF, mods: frozenset[str]) -> None:
        self.activated.emit(self.plane)
        self._gesture_anchor = pos
        self._tool_drag = self._gesture_tool(gesture)
        if self._tool_drag is not None:
            self._tool_drag.press(self.tool_event(pos, mods, gesture))
        elif gesture == "tool":
            pass
        elif gesture == "pan":
            self.canvas.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif gesture == "zoom":
            self.canvas.setCursor(Qt.CursorShape.SizeVerCursor)
        elif gesture == "window_level":
            self.canvas.setCursor(Qt.CursorShape.SizeAllCursor)

    def gesture_move(self, gesture: str, pos: QPointF, delta: QPointF,
                     mods: frozenset[str]) -> None:
        if self._tool_drag is not None:
            self._tool_drag.move(self.tool_event(pos, mods, gesture))
        elif gesture == "tool":
            pass
        elif gesture == "pan":
            origin = self.canvas.to_view(QPointF(0.0, 0.0))
            moved = self.canvas.to_view(delta)
            self.pan(origin.x() - moved.x(), origin.y() - moved.y())
        elif gesture == "zoom":
            self.zoom(math.exp(-delta.y() * ZOOM_PER_PIXEL), self._gesture_anchor)
        elif gesture == "window_level":
            self.window_level_dragged.emit(delta.x(), delta.y())

    def gesture_end(self, gesture: str, pos: QPointF, mods: frozenset[str]) -> None:
        tool, self._tool_drag = self._tool_drag, None
        if tool is not None:
            tool.release(self.tool_event(pos, mods, gesture))
        self.update_tool_cursor()

    def gesture_cancel(self, gesture: str) -> None:
        """The drag was abandoned (Esc): the tool takes back what it did."""
        tool, self._tool_drag = self._tool_drag, None
        if tool is not None:
            tool.cancel()
        self.update_tool_cursor()

    def gesture_wheel(self, gesture: str, steps: int, pos: QPointF) -> None:
        self.activated.emit(self.plane)
        tool = self.tool_provider()
        if tool is not None and self.layers.image is not None and tool.wheel(gesture, steps):
            return  # the tool used it (e.g. Shift + wheel sizes the brush)
        if gesture == "slice":
            self.step(steps)
        elif gesture == "slice_fast":
            self.step(steps * FAST_STEP)
        elif gesture == "zoom":
            self.zoom(ZOOM_PER_NOTCH ** -steps, pos)

    def gesture_double(self, gesture: str, pos: QPointF) -> None:
        tool = self.tool_provider()
        if tool is not None and tool.claims(gesture):
            return  # e.g. a quick second click of the brush must not maximise the view
        if gesture == "maximise":
            self.maximise_requested.emit(self.plane)

    def pointer_hover(self, pos: QPointF | None, mods: frozenset[str]) -> None:
        self._pointer = pos
        self.update_tool_outline()
        if pos is None or self.layers.image is None:
            self.hovered.emit(None)
            return
        event = self.tool_event(pos, mods)
        self.hovered.emit(event.index)
        tool = self.tool_provider()
        if tool is not None:
            tool.hover(event)

    def pointer_entered(self) -> None:
        self.activated.emit(self.plane)
