"""Layers panel: every label layer with its visibility, opacity and outline mode,
plus the global overlay opacity."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ..layers import LabelLayer, LayerStack
from ..subscriptions import subscribe

__all__ = ["LayersPanel"]

_ROLE_TEXT = {"edit": "edited", "truth": "ground truth", "result": "result",
              "difference": "differences", "uncertainty": "uncertainty"}


def _percent_slider(parent: QWidget, value: float, tip: str) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal, parent)
    slider.setRange(0, 100)
    slider.setValue(round(value * 100))
    slider.setToolTip(tip)
    return slider


class _LayerRow:
    """The widgets of one layer, kept in sync with it."""

    def __init__(self, layer: LabelLayer, parent: QWidget) -> None:
        self.layer = layer
        self.visible = QCheckBox(layer.name, parent)
        self.visible.setObjectName(f"layerVisible_{layer.role}")
        self.visible.setToolTip(f"Show or hide this layer ({_ROLE_TEXT[layer.role]})")
        self.role = QLabel(_ROLE_TEXT[layer.role], parent)
        self.role.setStyleSheet("color: #8a919c;")
        self.opacity_label = QLabel("Opacity", parent)
        self.opacity_label.setStyleSheet("color: #8a919c; padding-left: 22px;")
        self.opacity = _percent_slider(parent, layer.opacity, "Layer opacity")
        self.opacity.setMinimumWidth(100)
        self.opacity.setObjectName(f"layerOpacity_{layer.role}")
        self.outline = QCheckBox("Outline", parent)
        self.outline.setObjectName(f"layerOutline_{layer.role}")
        self.outline.setToolTip("Draw only the boundaries of the labels")
        self.visible.toggled.connect(layer.set_visible)
        self.opacity.valueChanged.connect(lambda v: layer.set_opacity(v / 100.0))
        self.outline.toggled.connect(layer.set_outline)
        # Until detached, or until the row's widgets are destroyed with the panel.
        self._handle = subscribe(self.visible, layer.display_changed, self.sync)
        self.sync(layer)

    def sync(self, _layer: LabelLayer | None = None) -> None:
        for widget, setter, value in (
            (self.visible, self.visible.setChecked, self.layer.visible),
            (self.outline, self.outline.setChecked, self.layer.outline),
            (self.opacity, self.opacity.setValue, round(self.layer.opacity * 100)),
        ):
            widget.blockSignals(True)
            setter(value)
            widget.blockSignals(False)

    def detach(self, grid: QGridLayout | None = None) -> None:
        """Take the row out at once: hidden and out of *grid* now, deleted later.

        ``deleteLater`` alone waits for the event loop that called it; while a modal
        dialog runs its own loop (the crash-recovery question) the old rows would
        stay drawn under the new ones.
        """
        self._handle.disconnect()
        for widget in (self.visible, self.role, self.opacity_label, self.opacity, self.outline):
            if grid is not None:
                grid.removeWidget(widget)
            widget.hide()
            widget.deleteLater()


class LayersPanel(QWidget):
    """One row per label layer (top of the stack first) and the global opacity."""

    def __init__(self, layers: LayerStack, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("layersPanel")
        self.layers = layers
        self.rows: list[_LayerRow] = []

        self.shown = QCheckBox("Show label layers", self)
        self.shown.setObjectName("labelsShown")
        self.shown.setChecked(layers.labels_shown)
        self.shown.toggled.connect(layers.set_labels_shown)
        self.global_opacity = _percent_slider(self, layers.global_opacity,
                                              "Opacity of all label layers")
        self.global_opacity.setObjectName("globalOpacity")
        self.global_opacity.valueChanged.connect(
            lambda v: layers.set_global_opacity(v / 100.0))
        head = QHBoxLayout()
        head.addWidget(self.shown)
        head.addStretch(1)
        head.addWidget(QLabel("Opacity", self))
        head.addWidget(self.global_opacity, 2)

        self._grid = QGridLayout()
        self._grid.setHorizontalSpacing(8)
        self._grid.setVerticalSpacing(2)
        self._grid.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addLayout(head)
        layout.addLayout(self._grid)
        layout.addStretch(1)

        subscribe(self, layers.layers_changed, self.rebuild)
        subscribe(self, layers.overlay_changed, self._sync_global)
        self.rebuild()

    def rebuild(self) -> None:
        for row in self.rows:
            row.detach(self._grid)
        self.rows = []
        for r, layer in enumerate(reversed(self.layers.labels)):
            row = _LayerRow(layer, self)
            # Two lines per layer: name and role, then opacity and outline.
            self._grid.addWidget(row.visible, 2 * r, 0, 1, 2)
            self._grid.addWidget(row.role, 2 * r, 2, Qt.AlignmentFlag.AlignRight)
            self._grid.addWidget(row.opacity_label, 2 * r + 1, 0)
            self._grid.addWidget(row.opacity, 2 * r + 1, 1)
            self._grid.addWidget(row.outline, 2 * r + 1, 2)
            self.rows.append(row)
        self.setEnabled(bool(self.rows))

    def row_for(self, layer: LabelLayer) -> _LayerRow | None:
        return next((row for row in self.rows if row.layer is layer), None)

    def _sync_global(self) -> None:
        for widget, setter, value in (
            (self.shown, self.shown.setChecked, self.layers.labels_shown),
            (self.global_opacity, self.global_opacity.setValue,
             round(self.layers.global_opacity * 100)),
        ):
            widget.blockSignals(True)
            setter(value)
            widget.blockSignals(False)
