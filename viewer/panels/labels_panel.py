"""Label table panel: for one label layer, each label with its colour swatch,
a show/hide box, voxel count and volume in millilitres."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.core.events import Connection
from engine.core.volume import LabelTable

from ..layers import BBox, LabelLayer, LayerStack
from ..subscriptions import subscribe

__all__ = ["LabelsPanel"]

COLUMNS = ("Label", "Value", "Voxels", "Volume (mL)")
#: Counting is deferred this long after an edit, so a brush stroke recounts once.
RECOUNT_DELAY_MS = 250


def _swatch(rgb: tuple[int, int, int]) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor(*rgb))
    return QIcon(pixmap)


def _number_item(text: str, value: float) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setData(Qt.ItemDataRole.UserRole, value)
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    return item


class LabelsPanel(QWidget):
    """The label table of the chosen layer (combo box on top).

    Clicking a row emits ``label_clicked`` with its value (the main window
    makes it the label the brush paints).
    """

    label_clicked = Signal(int)

    def __init__(self, layers: LayerStack, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("labelsPanel")
        self.layers = layers
        self.layer: LabelLayer | None = None
        self._shown: LabelTable | None = None  # the table the rows were made from
        self._layer_handles: list[Connection] = []
        self._filling = False

        self.chooser = QComboBox(self)
        self.chooser.setObjectName("labelsLayer")
        self.chooser.currentIndexChanged.connect(self._chosen)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("labelsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemChanged.connect(self._item_changed)
        self.table.cellClicked.connect(self._cell_clicked)
        self.total = QLabel("", self)
        self.total.setStyleSheet("color: #8a919c;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.chooser)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.total)

        self._recount = QTimer(self)
        self._recount.setSingleShot(True)
        self._recount.setInterval(RECOUNT_DELAY_MS)
        self._recount.timeout.connect(self.refresh)

        subscribe(self, layers.layers_changed, self._layers_changed)
        self._layers_changed()

    # -- layer choice ------------------------------------------------------------
    def _layers_changed(self) -> None:
        keep = self.layer if self.layer in self.layers.labels else None
        if keep is None or not self._has_labels(keep):
            # Prefer a layer that has labels (the ground truth next to a new, empty mask).
            nonempty = [lay for lay in self.layers.labels if self._has_labels(lay)]
            keep = (nonempty or ([keep] if keep else self.layers.labels) or [None])[0]
        self.chooser.blockSignals(True)
        self.chooser.clear()
        for layer in self.layers.labels:
            self.chooser.addItem(layer.name)
        self.chooser.blockSignals(False)
        self.set_layer(keep)

    @staticmethod
    def _has_labels(layer: LabelLayer) -> bool:
        return bool(set(layer.counts()) - {0})

    def set_layer(self, layer: LabelLayer | None) -> None:
        """Show the table of *layer*."""
        for handle in self._layer_handles:
            handle.disconnect()
        self.layer = layer
        self._layer_handles = []
        if layer is not None:
            self._layer_handles = [subscribe(self, layer.data_changed, self._data_changed),
                                   subscribe(self, layer.display_changed, self._display_changed)]
            self.chooser.blockSignals(True)
            self.chooser.setCurrentIndex(self.layers.labels.index(layer))
            self.chooser.blockSignals(False)
        self.setEnabled(layer is not None)
        self.refresh()

    def _chosen(self, index: int) -> None:
        if 0 <= index < len(self.layers.labels):
            self.set_layer(self.layers.labels[index])

    def _data_changed(self, _bbox: BBox | None) -> None:
        self._recount.start()

    def _display_changed(self, _layer: LabelLayer) -> None:
        if self.layer is not None and (self.table.rowCount() != len(self.rows())
                                       or self.layer.labelmap.labels is not self._shown):
            self.refresh()  # a label was added to the table, or the table was replaced
        else:
            self._sync_checks()

    # -- table -----------------------------------------------------------------------
    def rows(self) -> list[int]:
        """Label values listed: those of the label table and any others present."""
        if self.layer is None:
            return []
        table = self.layer.labelmap.labels
        present = self.layer.counts()
        values = [v for v in table if v != 0]
        values += sorted(v for v in present if v != 0 and v not in table)
        return values

    def refresh(self) -> None:
        """Rebuild the table (names, colours, counts) from the layer."""
        self._recount.stop()
        self._filling = True
        try:
            values = self.rows()
            self.table.setRowCount(len(values))
            if self.layer is None:
                self.total.setText("")
                return
            table = self._shown = self.layer.labelmap.labels
            counts = self.layer.counts()
            total_n, total_ml = 0, 0.0
            for row, value in enumerate(values):
                n, ml = counts.get(value, (0, 0.0))
                total_n += n
                total_ml += ml
                name = QTableWidgetItem(_swatch(table.color(value)), table.name(value))
                name.setFlags((name.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                              & ~Qt.ItemFlag.ItemIsEditable)
                name.setData(Qt.ItemDataRole.UserRole, value)
                name.setToolTip("Tick to show this label, untick to hide it")
                self.table.setItem(row, 0, name)
                self.table.setItem(row, 1, _number_item(str(value), value))
                self.table.setItem(row, 2, _number_item(f"{n:,}", n))
                self.table.setItem(row, 3, _number_item(f"{ml:,.2f}", ml))
            self.total.setText(f"Labelled: {total_n:,} voxels, {total_ml:,.2f} mL")
        finally:
            self._filling = False
        self._sync_checks()

    def _sync_checks(self) -> None:
        if self.layer is None:
            return
        self._filling = True
        try:
            for row in range(self.table.rowCount()):
                item = self.table.item(row, 0)
                value = item.data(Qt.ItemDataRole.UserRole)
                hidden = value in self.layer.hidden
                item.setCheckState(Qt.CheckState.Unchecked if hidden else Qt.CheckState.Checked)
        finally:
            self._filling = False

    def _cell_clicked(self, row: int, _column: int) -> None:
        item = self.table.item(row, 0)
        if item is not None:
            self.label_clicked.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    def select_value(self, value: int) -> None:
        """Highlight the row of label *value* (if listed)."""
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == value:
                self.table.selectRow(row)
                return
        self.table.clearSelection()

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or self.layer is None or item.column() != 0:
            return
        value = int(item.data(Qt.ItemDataRole.UserRole))
        self.layer.set_label_visible(value, item.checkState() == Qt.CheckState.Checked)
