"""Window/level panel: the image histogram with a draggable levels region, a
grey (or colour) ramp showing the mapping, presets, colour maps and
window/level spin boxes, all bound to the image layer's display levels.

Built from plain pyqtgraph items (``PlotCurveItem``, ``LinearRegionItem``,
``ImageItem``) rather than ``HistogramLUTItem``, whose gradient editor imports
Matplotlib to list colour maps and would add a second to start-up.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.display import CT_PRESETS, looks_like_ct, range_to_window, window_to_range

from ..layers import ImageLayer, LayerStack

__all__ = ["COLOUR_MAPS", "WindowLevelPanel"]

log = logging.getLogger(__name__)

AUTOMATIC = "Automatic"
MANUAL = "Manual (custom window)"
#: Display name -> pyqtgraph colour map name (None: plain grey; "-grey": inverted).
COLOUR_MAPS: dict[str, str | None] = {
    "Grey": None,
    "Inverted grey": "-grey",
    "Hot": "CET-L3",
    "Viridis": "viridis",
    "Inferno": "inferno",
    "Plasma": "plasma",
    "Cividis": "cividis",
    "Turbo": "turbo",
}
_RAMP = np.linspace(0.0, 1.0, 256, dtype=np.float32)[np.newaxis, :]
_RAMP_HEIGHT = 0.16  # of the histogram height, drawn under the axis


def colour_lut(name: str) -> np.ndarray | None:
    """``(256, 3)`` uint8 look-up table of a :data:`COLOUR_MAPS` entry (None for grey)."""
    key = COLOUR_MAPS[name]
    if key is None:
        return None
    if key == "-grey":
        ramp = np.arange(255, -1, -1, dtype=np.uint8)
        return np.stack([ramp] * 3, axis=1)
    return pg.colormap.get(key).getLookupTable(nPts=256, alpha=False)


class WindowLevelPanel(QWidget):
    """Histogram (log counts) with the display range as a draggable region."""

    def __init__(self, layers: LayerStack, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("windowLevelPanel")
        self.layers = layers
        self._image: ImageLayer | None = None
        self._updating = False
        self._top = 1.0

        self.plot = pg.PlotWidget(self, background="#1b1d21")
        self.plot.setObjectName("histogram")
        self.plot.setMinimumHeight(110)
        self.plot.setMaximumHeight(140)
        item = self.plot.getPlotItem()
        item.hideAxis("left")
        item.hideButtons()
        item.setMenuEnabled(False)
        item.setMouseEnabled(x=False, y=False)
        item.getAxis("bottom").setPen(pg.mkPen("#8a919c"))
        item.getAxis("bottom").setTextPen(pg.mkPen("#c8ccd2"))
        self.curve = pg.PlotCurveItem(pen=pg.mkPen((150, 170, 220), width=1),
                                      fillLevel=0.0, brush=(110, 130, 190, 140))
        self.ramp = pg.ImageItem(axisOrder="row-major")
        self.region = pg.LinearRegionItem(
            orientation="vertical", brush=(255, 214, 90, 35), hoverBrush=(255, 214, 90, 60),
            pen=pg.mkPen((255, 214, 90), width=1.5), swapMode="block")
        self.region.setZValue(10)
        self.ramp.setZValue(20)  # the mapping ramp stays readable over the region
        for it in (self.curve, self.ramp, self.region):
            self.plot.addItem(it)
        self.region.sigRegionChanged.connect(self._region_moved)

        self.presets = QComboBox(self)
        self.presets.setObjectName("windowPresets")
        self.presets.addItem(AUTOMATIC)
        self.presets.insertSeparator(1)
        for name, preset in CT_PRESETS.items():
            self.presets.addItem(f"CT {name}  (W {preset.width:g} / L {preset.level:g})", name)
        # Shown (not chosen) when the levels are neither automatic nor a preset: a drag.
        self.presets.addItem(MANUAL, MANUAL)
        self.presets.model().item(self.presets.count() - 1).setEnabled(False)
        self.presets.setToolTip(
            "Automatic: 0.5–99.5 percentile window (MR) or soft-tissue window (CT).\n"
            "CT presets are in Hounsfield units.")
        self.presets.activated.connect(self._preset_chosen)
        self.auto_button = QPushButton("Auto", self)
        self.auto_button.setToolTip("Automatic window (W)")
        self.auto_button.clicked.connect(self.apply_automatic)
        self.colour_map = QComboBox(self)
        self.colour_map.setObjectName("colourMap")
        self.colour_map.addItems(list(COLOUR_MAPS))
        self.colour_map.setToolTip("Colour map of the image")
        self.colour_map.currentTextChanged.connect(self.set_colour_map)

        self.width_box = QDoubleSpinBox(self)
        self.level_box = QDoubleSpinBox(self)
        self.width_box.setObjectName("windowWidth")
        self.level_box.setObjectName("windowLevel")
        for box in (self.width_box, self.level_box):
            box.setRange(-1e9, 1e9)
            box.setKeyboardTracking(False)
            box.valueChanged.connect(self._boxes_changed)
        self.width_box.setMinimum(1e-6)
        self.width_box.setToolTip("Window width")
        self.level_box.setToolTip("Window level (centre)")

        top = QHBoxLayout()
        top.addWidget(self.presets, 1)
        top.addWidget(self.auto_button)
        boxes = QHBoxLayout()
        boxes.addWidget(self.width_box)
        boxes.addWidget(self.level_box)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Window / level", boxes)
        form.addRow("Colour map", self.colour_map)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.plot)
        layout.addLayout(top)
        layout.addLayout(form)

        layers.image_changed.connect(self._on_image)
        self.setEnabled(False)

    # -- model → widgets ---------------------------------------------------------
    def _on_image(self, image: ImageLayer) -> None:
        if self._image is not None:
            self._image.levels_changed.disconnect(self._show_levels)
            self._image.lut_changed.disconnect(self._show_lut)
        self._image = image
        image.levels_changed.connect(self._show_levels)
        image.lut_changed.connect(self._show_lut)
        self.setEnabled(True)
        centres, counts = image.histogram()
        heights = np.log10(1.0 + counts.astype(float))
        self._top = float(heights.max()) or 1.0
        lo, hi = image.data_range
        span = max(hi - lo, 1e-9)
        self._updating = True
        try:
            self.curve.setData(centres, heights)
            self.plot.setXRange(lo - 0.02 * span, hi + 0.02 * span, padding=0.0)
            self.plot.setYRange(-_RAMP_HEIGHT * self._top, 1.05 * self._top, padding=0.0)
            decimals = int(min(6, max(0, 3 - math.floor(math.log10(span)))))
            for box in (self.width_box, self.level_box):
                box.setDecimals(decimals)
                box.setSingleStep(10.0 ** -decimals if decimals else max(1.0, span / 100))
            is_ct = image.volume.modality.upper() == "CT" or looks_like_ct(image.volume.array)
            for row in range(2, self.presets.count() - 1):
                self.presets.model().item(row).setEnabled(is_ct)
            self.colour_map.setCurrentIndex(0)
        finally:
            self._updating = False
        self.presets.setCurrentIndex(0)
        self._show_lut(image.lut)
        self._show_levels(image.levels)

    def _show_levels(self, levels: tuple[float, float]) -> None:
        self._updating = True
        try:
            self.region.setRegion(levels)
            width, level = range_to_window(*levels)
            self.width_box.setValue(width)
            self.level_box.setValue(level)
            self.ramp.setRect(QRectF(levels[0], -_RAMP_HEIGHT * self._top,
                                     levels[1] - levels[0], 0.8 * _RAMP_HEIGHT * self._top))
            self.presets.setCurrentIndex(self._preset_row(levels))
        finally:
            self._updating = False

    def _preset_row(self, levels: tuple[float, float]) -> int:
        """The row of the presets box that names *levels*: Automatic, a preset, or Manual."""
        def same(a: tuple[float, float], b: tuple[float, float]) -> bool:
            return bool(np.allclose(a, b, rtol=1e-6, atol=1e-6))

        if self._image is not None and same(levels, self._image.default_levels):
            return 0
        for row in range(2, self.presets.count() - 1):
            name = self.presets.itemData(row)
            if name in CT_PRESETS and same(levels, CT_PRESETS[name].range):
                return row
        return self.presets.count() - 1

    def _show_lut(self, lut: np.ndarray | None) -> None:
        self.ramp.setImage(_RAMP, levels=(0.0, 1.0), lut=lut, autoLevels=False)
        if self._image is not None:
            self._show_levels(self._image.levels)

    # -- widgets → model ---------------------------------------------------------
    def levels(self) -> tuple[float, float]:
        """The levels region as shown."""
        lo, hi = self.region.getRegion()
        return float(lo), float(hi)

    def set_levels(self, low: float, high: float) -> None:
        """Move the region as a drag would (the image follows)."""
        self.region.setRegion((low, high))

    def _region_moved(self) -> None:
        if self._updating or self._image is None:
            return
        self._image.set_levels(*self.levels())

    def _boxes_changed(self) -> None:
        if self._updating or self._image is None:
            return
        self._image.set_levels(*window_to_range(self.width_box.value(), self.level_box.value()))

    def set_colour_map(self, name: str) -> None:
        """Show the image through a colour map of :data:`COLOUR_MAPS`."""
        if self._image is None or self._updating:
            return
        self._image.set_lut(colour_lut(name))
        index = self.colour_map.findText(name)
        if index != self.colour_map.currentIndex():
            self.colour_map.setCurrentIndex(index)

    def _preset_chosen(self, row: int) -> None:
        if self._image is None:
            return
        name = self.presets.itemData(row)
        if name in CT_PRESETS:
            self._image.set_levels(*CT_PRESETS[name].range)
        else:
            self.apply_automatic()

    def apply_automatic(self) -> None:
        """Back to the automatic window of the image."""
        if self._image is not None:
            self.presets.setCurrentIndex(0)
            self._image.reset_levels()

    def apply_preset(self, name: str) -> None:
        """Apply the CT preset *name* (``"Brain"``, ``"Lung"``, ...)."""
        if self._image is None:
            return
        self._image.set_levels(*CT_PRESETS[name].range)
        index = self.presets.findData(name)
        if index >= 0:
            self.presets.setCurrentIndex(index)
