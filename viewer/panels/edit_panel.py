"""Editing panel: the label to paint, brush, paint mode, threshold, fill,
clean-up of the selected label, and the undo history with its memory limit.

Every widget edits :class:`~engine.editing.options.EditOptions` through the
session (``set_options``) and follows its ``options_changed`` event, so keys
such as ``[`` / ``]`` and the panel never disagree. The panel listens to the
session for as long as it exists (:func:`viewer.subscriptions.subscribe`).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.editing.options import BRUSH_MAX_MM, BRUSH_MIN_MM

from ..edit_session import EditSession
from ..settings import MAX_HISTORY_MB, MIN_HISTORY_MB
from ..subscriptions import subscribe

__all__ = ["EditPanel", "byte_size", "label_icon"]

PAINT_MODE_TEXT = {
    "all": "Everything",
    "background": "Background only",
    "label": "Only label…",
}


def label_icon(rgb: tuple[int, int, int], size: int = 12) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(*rgb))
    return QIcon(pixmap)


def byte_size(nbytes: int) -> str:
    """``"812 bytes"``, ``"14.2 KB"``, ``"3.1 MB"`` (powers of 1024)."""
    if nbytes < 1024:
        return f"{nbytes} bytes"
    if nbytes < 1024**2:
        return f"{nbytes / 1024:.1f} KB"
    return f"{nbytes / 1024**2:.1f} MB"


def _note(text: str, parent: QWidget) -> QLabel:
    label = QLabel(text, parent)
    label.setStyleSheet("color: #8a919c;")
    label.setWordWrap(True)
    return label


class EditPanel(QWidget):
    """Tool options of the brush, eraser and fill, clean-up and history."""

    #: Ask the main window to create a new label (it owns the dialogs).
    new_label_requested = Signal()

    def __init__(self, session: EditSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("editPanel")
        self.session = session
        self._syncing = False

        # -- label -------------------------------------------------------------------------
        self.label_combo = QComboBox(self)
        self.label_combo.setObjectName("editLabel")
        self.label_combo.setToolTip("The label the brush and the fill paint (keys 1–9)")
        self.new_label = QPushButton("New…", self)
        self.new_label.setObjectName("newLabel")
        self.new_label.setToolTip("Add a label with a name and a colour")
        label_row = QHBoxLayout()
        label_row.addWidget(QLabel("Label", self))
        label_row.addWidget(self.label_combo, 1)
        label_row.addWidget(self.new_label)

        # -- brush -------------------------------------------------------------------------
        brush = QGroupBox("Brush and eraser", self)
        self.size = QDoubleSpinBox(brush)
        self.size.setObjectName("brushSize")
        self.size.setRange(BRUSH_MIN_MM, BRUSH_MAX_MM)
        self.size.setSingleStep(0.5)
        self.size.setDecimals(1)
        self.size.setSuffix(" mm")
        self.size.setToolTip("Brush diameter ([ and ], or Shift + wheel over a view)")
        self.shape = QComboBox(brush)
        self.shape.setObjectName("brushShape")
        self.shape.addItems(["2-D disk (view plane)", "3-D sphere"])
        self.mode = QComboBox(brush)
        self.mode.setObjectName("paintMode")
        for key, text in PAINT_MODE_TEXT.items():
            self.mode.addItem(text, key)
        self.mode.setToolTip("Which voxels a stroke may change")
        self.only_label = QComboBox(brush)
        self.only_label.setObjectName("onlyLabel")
        mode_row = QHBoxLayout()
        mode_row.addWidget(self.mode, 1)
        mode_row.addWidget(self.only_label, 1)
        self.threshold_on = QCheckBox("Intensities", brush)
        self.threshold_on.setObjectName("thresholdOn")
        self.threshold_on.setToolTip("Threshold-limited painting: only voxels whose intensity "
                                     "is inside the range are painted")
        self.low = QDoubleSpinBox(brush)
        self.low.setObjectName("thresholdLow")
        self.high = QDoubleSpinBox(brush)
        self.high.setObjectName("thresholdHigh")
        self.from_window = QPushButton("Window", brush)
        self.from_window.setToolTip("Use the current display window as the range")
        thr_row = QHBoxLayout()
        thr_row.addWidget(self.low, 1)
        thr_row.addWidget(QLabel("–", brush))
        thr_row.addWidget(self.high, 1)
        thr_row.addWidget(self.from_window)
        form = QFormLayout(brush)
        form.addRow("Size", self.size)
        form.addRow("Shape", self.shape)
        form.addRow("Paint over", mode_row)
        form.addRow(self.threshold_on, thr_row)

        # -- fill --------------------------------------------------------------------------
        fill = QGroupBox("Fill", self)
        self.fill_extent = QComboBox(fill)
        self.fill_extent.setObjectName("fillExtent")
        self.fill_extent.addItems(["2-D (this slice)", "3-D (whole volume)"])
        self.tolerance_on = QCheckBox("Tolerance", fill)
        self.tolerance_on.setObjectName("toleranceOn")
        self.tolerance_on.setToolTip("Fill only voxels whose intensity is within this of the "
                                     "clicked voxel's")
        self.tolerance = QDoubleSpinBox(fill)
        self.tolerance.setObjectName("tolerance")
        self.tolerance.setRange(0.0, 1e6)
        self.tolerance.setValue(20.0)
        fill_form = QFormLayout(fill)
        fill_form.addRow("Region", self.fill_extent)
        fill_form.addRow(self.tolerance_on, self.tolerance)

        # -- clean-up ----------------------------------------------------------------------
        clean = QGroupBox("Clean up the selected label", self)
        self.island_size = QSpinBox(clean)
        self.island_size.setObjectName("islandSize")
        self.island_size.setRange(1, 10_000_000)
        self.island_size.setSuffix(" voxels")
        self.remove_islands = QPushButton("Remove islands under", clean)
        self.remove_islands.setObjectName("removeIslands")
        self.keep_largest = QPushButton("Keep largest component", clean)
        self.keep_largest.setObjectName("keepLargest")
        islands = QHBoxLayout()
        islands.addWidget(self.remove_islands)
        islands.addWidget(self.island_size, 1)
        clean_box = QVBoxLayout(clean)
        clean_box.addLayout(islands)
        clean_box.addWidget(self.keep_largest)

        # -- history -----------------------------------------------------------------------
        history = QGroupBox("Undo history", self)
        self.undo_button = QPushButton("Undo", history)
        self.undo_button.setObjectName("undoButton")
        self.redo_button = QPushButton("Redo", history)
        self.redo_button.setObjectName("redoButton")
        self.budget = QSpinBox(history)
        self.budget.setObjectName("historyBudget")
        self.budget.setRange(MIN_HISTORY_MB, MAX_HISTORY_MB)
        self.budget.setSuffix(" MB")
        self.budget.setToolTip("Memory the undo history may use; the oldest steps go first")
        self.budget.setValue(max(MIN_HISTORY_MB, session.history.budget_bytes // 2**20))
        self.history_note = _note("", history)
        self.history_note.setObjectName("historyNote")
        buttons = QHBoxLayout()
        buttons.addWidget(self.undo_button)
        buttons.addWidget(self.redo_button)
        buttons.addStretch(1)
        buttons.addWidget(QLabel("Limit", history))
        buttons.addWidget(self.budget)
        hist_box = QVBoxLayout(history)
        hist_box.addLayout(buttons)
        hist_box.addWidget(self.history_note)

        # Narrow-able: the dock must not take the views' room on smaller screens.
        for combo in (self.label_combo, self.shape, self.mode, self.only_label,
                      self.fill_extent):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(6)
        for box in (self.size, self.low, self.high, self.tolerance, self.island_size,
                    self.budget):
            box.setMinimumWidth(56)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addLayout(label_row)
        for box in (brush, fill, clean, history):
            layout.addWidget(box)
        layout.addStretch(1)

        # -- wiring ------------------------------------------------------------------------
        self.label_combo.activated.connect(self._label_chosen)
        self.new_label.clicked.connect(self.new_label_requested)
        self.size.valueChanged.connect(lambda v: self._set(brush_size_mm=float(v)))
        self.shape.currentIndexChanged.connect(lambda i: self._set(brush_3d=i == 1))
        self.mode.currentIndexChanged.connect(
            lambda _i: self._set(paint_mode=self.mode.currentData()))
        self.only_label.activated.connect(
            lambda _i: self._set(only_label=int(self.only_label.currentData() or 1)))
        self.threshold_on.toggled.connect(lambda _c: self._threshold_edited())
        self.low.valueChanged.connect(lambda _v: self._threshold_edited())
        self.high.valueChanged.connect(lambda _v: self._threshold_edited())
        self.from_window.clicked.connect(self._use_window)
        self.fill_extent.currentIndexChanged.connect(lambda i: self._set(fill_3d=i == 1))
        self.tolerance_on.toggled.connect(lambda _c: self._tolerance_edited())
        self.tolerance.valueChanged.connect(lambda _v: self._tolerance_edited())
        self.island_size.valueChanged.connect(lambda v: self._set(island_min_voxels=int(v)))
        self.remove_islands.clicked.connect(lambda: session.remove_small_islands())
        self.keep_largest.clicked.connect(lambda: session.keep_largest_component())
        self.undo_button.clicked.connect(session.undo)
        self.redo_button.clicked.connect(session.redo)
        self.budget.valueChanged.connect(lambda v: session.set_history_budget(int(v) * 2**20))

        subscribe(self, session.options_changed, self.sync)
        subscribe(self, session.selected_label_changed, lambda _v: self.sync_labels())
        subscribe(self, session.label_table_changed, self.sync_labels)
        subscribe(self, session.changed, self.sync_history)
        subscribe(self, session.layers.image_changed, lambda *_: self.sync_image())
        self.sync_image()
        self.sync_labels()
        self.sync()
        self.sync_history()

    # -- from the widgets ------------------------------------------------------------------
    def _set(self, **changes: object) -> None:
        if not self._syncing:
            self.session.set_options(**changes)

    def _label_chosen(self, _index: int) -> None:
        value = self.label_combo.currentData()
        if value is not None:
            self.session.selected_label = int(value)

    def _threshold_edited(self) -> None:
        on = self.threshold_on.isChecked()
        self.low.setEnabled(on)
        self.high.setEnabled(on)
        self._set(threshold=(self.low.value(), self.high.value()) if on else None)

    def _tolerance_edited(self) -> None:
        self.tolerance.setEnabled(self.tolerance_on.isChecked())
        self._set(fill_tolerance=self.tolerance.value() if self.tolerance_on.isChecked() else None)

    def _use_window(self) -> None:
        image = self.session.layers.image
        if image is None:
            return
        low, high = image.levels
        self.low.setValue(low)
        self.high.setValue(high)
        self.threshold_on.setChecked(True)

    # -- to the widgets --------------------------------------------------------------------
    def sync_image(self) -> None:
        """Threshold ranges and decimals follow the image's values."""
        image = self.session.layers.image
        lo, hi = image.data_range if image is not None else (0.0, 1.0)
        integer = image is not None and image.volume.array.dtype.kind in "iub"
        span = max(hi - lo, 1e-6)
        for box in (self.low, self.high):
            box.blockSignals(True)
            box.setDecimals(0 if integer else 3 if span < 10 else 1)
            box.setRange(lo - span, hi + span)
            box.setSingleStep(1.0 if integer else span / 100.0)
            box.blockSignals(False)
        if image is not None and self.session.options.threshold is None:
            self.low.blockSignals(True)
            self.high.blockSignals(True)
            self.low.setValue(image.levels[0])
            self.high.setValue(image.levels[1])
            self.low.blockSignals(False)
            self.high.blockSignals(False)
        self.tolerance.setDecimals(0 if integer else 3 if span < 10 else 1)
        self.tolerance.setSingleStep(1.0 if integer else span / 100.0)
        self.setEnabled(image is not None)

    def sync(self) -> None:
        """Show the session's options."""
        o = self.session.options
        self._syncing = True
        try:
            self.size.setValue(o.brush_size_mm)
            self.shape.setCurrentIndex(1 if o.brush_3d else 0)
            self.mode.setCurrentIndex(self.mode.findData(o.paint_mode))
            self.only_label.setEnabled(o.paint_mode == "label")
            index = self.only_label.findData(o.only_label)
            if index >= 0:
                self.only_label.setCurrentIndex(index)
            self.threshold_on.setChecked(o.threshold is not None)
            if o.threshold is not None:
                self.low.setValue(o.threshold[0])
                self.high.setValue(o.threshold[1])
            self.low.setEnabled(o.threshold is not None)
            self.high.setEnabled(o.threshold is not None)
            self.fill_extent.setCurrentIndex(1 if o.fill_3d else 0)
            self.tolerance_on.setChecked(o.fill_tolerance is not None)
            if o.fill_tolerance is not None:
                self.tolerance.setValue(o.fill_tolerance)
            self.tolerance.setEnabled(o.fill_tolerance is not None)
            self.island_size.setValue(o.island_min_voxels)
        finally:
            self._syncing = False

    def sync_labels(self) -> None:
        """Label lists (with colour swatches) and the selected label."""
        session = self.session
        values = session.label_values()
        for combo, current in ((self.label_combo, session.selected_label),
                               (self.only_label, session.options.only_label)):
            combo.blockSignals(True)
            combo.clear()
            for value in values:
                combo.addItem(label_icon(session.label_color(value)),
                              f"{value}  {session.label_name(value)}", value)
            index = combo.findData(current)
            if index < 0:
                combo.addItem(label_icon(session.label_color(current)),
                              f"{current}  {session.label_name(current)}", current)
                index = combo.count() - 1
            combo.setCurrentIndex(index)
            combo.blockSignals(False)
        self.new_label.setEnabled(session.layer is not None)

    def sync_history(self) -> None:
        history = self.session.history
        self.undo_button.setEnabled(history.can_undo)
        self.redo_button.setEnabled(history.can_redo)
        self.undo_button.setToolTip(f"Undo {history.undo_name}" if history.undo_name else "")
        self.redo_button.setToolTip(f"Redo {history.redo_name}" if history.redo_name else "")
        self.history_note.setText(
            f"{len(history)} step{'s' if len(history) != 1 else ''} to undo, "
            f"{byte_size(history.nbytes)} of {history.budget_bytes / 2**20:.0f} MB")
