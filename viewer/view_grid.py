"""The central area: three linked slice views in a 1 × 3 or 2 × 2 layout.

In 2 × 2 the fourth cell holds the 3-D view (:mod:`viewer.view3d`: label
surfaces with the three image planes, as ITK-SNAP and 3D Slicer place it) and,
on a second tab, the facts about the volume. Where OpenGL is missing the 3-D
tab says why and the volume facts are shown first. Any view can be maximised
(double-click, the header button or the ``M`` key) and restored. The *active*
view -- the one under the pointer or last clicked -- receives the keyboard
slice commands.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QTabWidget,
    QWidget,
)

from .cursor import Cursor
from .layers import LayerStack
from .shortcuts import mouse_reference
from .slice_view import SliceView
from .subscriptions import subscribe
from .tools.base import Tool
from .view3d import SurfaceView

__all__ = ["LAYOUTS", "InfoPanel", "ViewGrid"]

log = logging.getLogger(__name__)

#: layout name -> list of (cell name, row, column)
LAYOUTS: dict[str, list[tuple[str, int, int]]] = {
    "1x3": [("axial", 0, 0), ("coronal", 0, 1), ("sagittal", 0, 2)],
    "2x2": [("axial", 0, 0), ("sagittal", 0, 1), ("coronal", 1, 0), ("info", 1, 1)],
}


def _hints() -> str:
    rows = "".join(
        f"<tr><td style='color:#8a919c; padding-right:12px'>{html.escape(g)}</td>"
        f"<td>{html.escape(t)}</td></tr>"
        for g, t in mouse_reference()
    )
    return (f"<h3 style='color:#e8eaed; margin-top:14px'>Mouse</h3><table>{rows}</table>"
            "<p style='color:#8a919c'>F1: every shortcut</p>")


_HINTS = _hints()


class InfoPanel(QLabel):
    """Volume facts: file, size, spacing, orientation, modality, value range, layers."""

    def __init__(self, layers: LayerStack, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("infoPanel")
        self.layers = layers
        self.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setStyleSheet(
            "#infoPanel { background: #14161a; color: #c8ccd2; padding: 14px;"
            " border-top: 3px solid #5a6270; }"
        )
        subscribe(self, layers.image_changed, lambda *_: self.refresh())
        subscribe(self, layers.layers_changed, self.refresh)
        self.refresh()

    def refresh(self) -> None:
        image = self.layers.image
        if image is None:
            self.setText(
                "<h3 style='color:#e8eaed'>No image</h3>"
                "<p>Open a NIfTI file or a DICOM folder (File menu), or drop one on the window.</p>"
                + _HINTS
            )
            return
        vol = image.volume
        rows = [
            ("Image", image.name),
            ("Size", " × ".join(str(n) for n in vol.shape) + " voxels"),
            ("Spacing", " × ".join(f"{s:.3g}" for s in vol.spacing) + " mm"),
            ("Field of view", " × ".join(
                f"{n * s:.0f}" for n, s in zip(vol.shape, vol.spacing, strict=True)) + " mm"),
            ("File orientation", "".join(vol.source.axcodes) + f" ({vol.source.format})"),
            ("Modality", vol.modality),
            ("Data type", str(vol.array.dtype)),
            ("Value range", f"{image.data_range[0]:.6g} … {image.data_range[1]:.6g}"),
        ]
        for layer in self.layers.labels:
            role = {"edit": "Edited mask", "truth": "Ground truth",
                    "difference": "Differences"}.get(layer.role, "Result")
            rows.append((role, layer.name))
        for warning in vol.metadata.get("warnings", []) or []:
            rows.append(("Warning", str(warning)))
        body = "".join(
            f"<tr><td style='color:#8a919c; padding-right:12px'>{html.escape(k)}</td>"
            f"<td>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        self.setText(f"<h3 style='color:#e8eaed'>Volume</h3><table>{body}</table>" + _HINTS)


class ViewGrid(QWidget):
    """Holds the three :class:`SliceView` objects and arranges them."""

    active_view_changed = Signal(str)
    layout_changed = Signal(str)

    def __init__(
        self,
        cursor: Cursor,
        layers: LayerStack,
        *,
        tool: Callable[[], Tool | None],
        convention: str = "radiological",
        layout: str = "2x2",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("viewGrid")
        self.views: dict[str, SliceView] = {
            plane: SliceView(plane, cursor, layers, tool=tool, convention=convention, parent=self)
            for plane in ("axial", "coronal", "sagittal")
        }
        self.info = InfoPanel(layers)
        # Scrolled, so that its wrapped text never dictates the grid's row heights
        # (in a narrow cell it would squeeze the views of the other row).
        self.info_area = QScrollArea(self)
        self.info_area.setObjectName("infoArea")
        self.info_area.setWidget(self.info)
        self.info_area.setWidgetResizable(True)
        self.info_area.setFrameShape(QFrame.Shape.NoFrame)
        self.info_area.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.surfaces = SurfaceView(layers, cursor)
        self.fourth = QTabWidget(self)
        self.fourth.setObjectName("fourthCell")
        self.fourth.setDocumentMode(True)
        self.fourth.addTab(self.surfaces, "3-D")
        self.fourth.addTab(self.info_area, "Volume")
        self.fourth.setTabToolTip(0, "Label surfaces and the image planes: drag rotates, the "
                                  "wheel zooms, a click on a surface moves the cursor there")
        self.fourth.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        if not self.surfaces.available:
            self.fourth.setCurrentIndex(1)
        self.active = "axial"
        self.maximised: str | None = None
        self.layout_name = layout if layout in LAYOUTS else "2x2"
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        for view in self.views.values():
            view.maximise_requested.connect(self.toggle_maximise)
            view.activated.connect(self._set_active)
        self._arrange()

    def _cells(self) -> dict[str, QWidget]:
        return {**self.views, "info": self.fourth}

    def _arrange(self) -> None:
        cells = self._cells()
        for widget in cells.values():
            self._grid.removeWidget(widget)
            widget.hide()
        for r in range(3):
            self._grid.setRowStretch(r, 0)
            self._grid.setColumnStretch(r, 0)
        if self.maximised is not None:
            self._grid.addWidget(cells[self.maximised], 0, 0)
            self._grid.setRowStretch(0, 1)
            self._grid.setColumnStretch(0, 1)
            cells[self.maximised].show()
            return
        for name, row, col in LAYOUTS[self.layout_name]:
            self._grid.addWidget(cells[name], row, col)
            self._grid.setRowStretch(row, 1)
            self._grid.setColumnStretch(col, 1)
            cells[name].show()

    # -- public API --------------------------------------------------------------
    def set_layout(self, name: str) -> None:
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}; expected one of {list(LAYOUTS)}")
        self.layout_name = name
        self.maximised = None
        self._arrange()
        self.layout_changed.emit(name)

    def toggle_maximise(self, plane: str | None = None) -> None:
        """Maximise *plane* (default: the active view), or restore if one is maximised."""
        if self.maximised is not None:
            self.maximised = None
        else:
            self.maximised = plane or self.active
            self._set_active(self.maximised)
        self._arrange()

    def active_view(self) -> SliceView:
        return self.views[self.active]

    def visible_views(self) -> list[SliceView]:
        return [v for v in self.views.values() if v.isVisible()]

    def reset_views(self) -> None:
        for view in self.views.values():
            view.reset_view()

    def set_convention(self, convention: str) -> None:
        for view in self.views.values():
            view.set_convention(convention)

    def set_crosshair_visible(self, visible: bool) -> None:
        for view in self.views.values():
            view.set_crosshair_visible(visible)

    def update_tool_cursor(self) -> None:
        for view in self.views.values():
            view.update_tool_cursor()

    def render_pending(self) -> None:
        """Render every stale visible view now (tests and benchmarks)."""
        for view in self.visible_views():
            view.render_pending()

    def _set_active(self, plane: str) -> None:
        if plane != self.active:
            self.active = plane
            self.active_view_changed.emit(plane)
