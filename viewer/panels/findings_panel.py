"""The Findings panel: the lesions of the edited mask, to review one by one.

A sortable table of the findings of :class:`viewer.findings.FindingsModel`
-- number (with the review status: ✓ accepted, ✗ rejected), size (the two
RANO axial diameters), volume, confidence, tissue -- kept in step with the
edited mask: a lesion painted with label 4 appears as soon as the stroke
ends, and only the lesions near an edit are measured again. Selecting a row
(a click, the arrow keys, or the window's Next / Previous Finding keys)
moves the shared cursor to the lesion -- its centroid, on the axial slice
where its diameters were measured --, zooms every view onto it and draws the
two diameters on that slice. *Accept* marks
a finding (bold, with a check); *Reject* removes it from the mask as one undo
step. A confidence threshold hides the findings below it (a lesion without a
confidence counts as 1.0), and *Export CSV…* writes the rows shown.

The panel knows the window only through what it is given: the layer stack,
the editing session, the cursor, the slice views and the job runner (a whole
new mask is measured there, in the background).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from engine.core.events import Connection
from engine.core.volume import LabelMap
from engine.io.atomic import atomic_write_text
from engine.lesions import LESION_VALUE, findings_csv

from ..cursor import Cursor
from ..edit_session import EditSession
from ..findings import ACCEPTED, PENDING, REJECTED, FindingRow, FindingsModel, Remeasure
from ..layers import BBox, LabelLayer, LayerStack
from ..slice_view import SliceLine, SliceView
from ..subscriptions import subscribe
from ..workers import Job, JobRunner

__all__ = ["COLUMNS", "FindingsPanel", "FindingsTableModel"]

log = logging.getLogger(__name__)

#: Columns: key, header, tool tip.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("number", "#", "Finding number (stays while the mask is edited): ✓ accepted, "
                    "✗ rejected (removed from the mask), plain: pending"),
    ("size", "Size (mm)", "The two RANO axial diameters: the longest in-slice diameter × the "
                          "longest at right angles to it, on the slice where it is longest"),
    ("volume", "mL", "Volume in millilitres"),
    ("confidence", "Conf.", "Mean lesion probability inside the lesion, 0–1 (— none: a lesion "
                            "painted by hand, counted as 1.0 by the threshold)"),
    ("tissue", "Tissue", "The tissue around the lesion (most frequent label in a 3 mm shell)"),
)
#: Rows sort on this role: numbers, not their text.
SORT_ROLE = Qt.ItemDataRole.UserRole
#: Edits are measured this long after the last change (a stroke's segments count once).
UPDATE_DELAY_MS = 30
#: Regions of up to this many voxels are measured at once; larger ones in the background.
SYNC_VOXELS = 2_000_000
#: Zoom onto a finding: this many times its extent, and at least this field of view (mm).
ZOOM_EXTENT = 3.0
MIN_FIELD_MM = 40.0
#: Colours of the longest axial diameter and of the perpendicular one.
LONG_AXIS_RGB = (255, 200, 40)
SHORT_AXIS_RGB = (90, 235, 130)
_MUTED = "color: #8a919c;"
_STATUS_TEXT = {PENDING: "Pending", ACCEPTED: "✓ Accepted", REJECTED: "✗ Rejected"}
_STATUS_MARK = {PENDING: "", ACCEPTED: "✓ ", REJECTED: "✗ "}


def _size_text(row: FindingRow) -> str:
    f = row.finding
    return f"{f.axial_diameter_mm:.1f} × {f.perpendicular_diameter_mm:.1f}"


def _details(row: FindingRow) -> str:
    """The tool tip of a row: every figure of the finding."""
    f = row.finding
    axis = "ijk"[f.slice_axis]
    lines = [
        f"Finding {row.number} — {_STATUS_TEXT[row.status].lower()}",
        f"Longest axial diameter {f.axial_diameter_mm:.1f} mm, perpendicular "
        f"{f.perpendicular_diameter_mm:.1f} mm (slice {axis} = {f.slice_index})",
        f"3-D diameter {f.diameter_3d_mm:.1f} mm; equivalent diameter "
        f"{f.equivalent_diameter_mm:.1f} mm",
        f"Volume {f.volume_ml:.3f} mL ({f.voxel_count:,} voxels)",
        "Centroid (R, A, S) " + ", ".join(f"{v:.1f}" for v in f.world_centroid_mm) + " mm",
        f"Tissue around: {f.tissue or '—'}",
        "Confidence: " + ("— (painted by hand)" if row.drawn else
                          "—" if f.confidence is None else f"{f.confidence:.2f}"),
    ]
    if f.contrast_ratio is not None:
        lines.append(f"Contrast: {f.contrast_ratio:.2f} × the surrounding mean")
    if not row.present:
        lines.append("Not in the mask (rejected); Undo brings it back")
    return "\n".join(lines)


class FindingsTableModel(QAbstractTableModel):
    """The rows of a :class:`~viewer.findings.FindingsModel`, one per finding."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[FindingRow] = []

    def set_rows(self, rows: list[FindingRow]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        key = COLUMNS[index.column()][0]
        f = row.finding
        if role == Qt.ItemDataRole.DisplayRole:
            return {
                "number": f"{_STATUS_MARK[row.status]}{row.number}",
                "size": _size_text(row),
                "volume": f"{f.volume_ml:.3f}" if f.volume_ml < 10 else f"{f.volume_ml:.1f}",
                "confidence": "—" if f.confidence is None else f"{f.confidence:.2f}",
                "tissue": f.tissue or "—",
            }[key]
        if role == SORT_ROLE:
            return {
                "number": row.number,
                "size": f.axial_diameter_mm,
                "volume": f.volume_ml,
                "confidence": row.threshold_confidence,
                "tissue": (f.tissue or "").lower(),
            }[key]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if key == "tissue":
                return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and row.status != PENDING:
            font = QFont()
            font.setBold(row.status == ACCEPTED)
            font.setStrikeOut(row.status == REJECTED)
            return font
        if role == Qt.ItemDataRole.ForegroundRole:
            if row.status == REJECTED:
                return QBrush(QColor("#7c828c"))
            if row.status == ACCEPTED and key == "number":
                return QBrush(QColor("#5fd38a"))
        if role == Qt.ItemDataRole.ToolTipRole:
            return _details(row)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section][1]
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMNS[section][2]
        return None


class _ThresholdFilter(QSortFilterProxyModel):
    """Hides the findings whose confidence (1.0 when none) is below the threshold."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.threshold = 0.0

    def set_threshold(self, value: float) -> None:
        self.beginFilterChange()
        self.threshold = float(value)
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int,
                         source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        model = self.sourceModel()
        assert isinstance(model, FindingsTableModel)
        return model.rows[source_row].threshold_confidence >= self.threshold - 1e-9


class FindingsPanel(QWidget):
    """The Findings dock (see the module doc).

    Parameters
    ----------
    layers : LayerStack
        The edited mask (``layers.edited``), the image and the ground truth.
    edits : EditSession
        Applies a rejection as one undo step; says when a stroke is under way.
    cursor : Cursor
        Moved to the selected finding.
    views : Mapping[str, SliceView]
        Zoomed onto the selected finding; the axial one draws its diameters.
    runner : JobRunner, optional
        Measures a whole new mask in the background (without one, at once).
    """

    #: A short note for the status bar.
    message = Signal(str)
    #: The rows changed (after a measurement, a review or the threshold).
    updated = Signal()

    def __init__(self, layers: LayerStack, edits: EditSession, cursor: Cursor,
                 views: Mapping[str, SliceView], *, runner: JobRunner | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("findingsPanel")
        self.layers = layers
        self.edits = edits
        self.cursor = cursor
        self.views = views
        self.runner = runner
        self.model = FindingsModel(LESION_VALUE)
        self.job: Job | None = None
        #: ``ask_save_path(title, start, filter) -> path or None`` (tests replace it).
        self.ask_save_path: Callable[[str, str, str], str | None] = self._ask_save_path
        self.last_dir = str(Path.home())
        self._selected: int | None = None
        self._restoring = False
        self._target: tuple[object, ...] = ()
        self._tissue: LabelMap | None = None
        self._probability: np.ndarray | None = None
        self._user_probability: np.ndarray | None = None
        self._layer_handle: Connection | None = None
        self._retarget = True
        #: Why the rows may not match the mask (a cancelled or failed measurement), or "".
        self._note = ""

        self.table_model = FindingsTableModel(self)
        self.proxy = _ThresholdFilter(self)
        self.proxy.setSourceModel(self.table_model)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = QTableView(self)
        self.view.setObjectName("findingsTable")
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(22)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        header.setSortIndicatorShown(True)
        self.view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.view.clicked.connect(lambda index: self._go_to_index(index))
        self.view.selectionModel().currentRowChanged.connect(self._current_changed)

        self.threshold = QSlider(Qt.Orientation.Horizontal, self)
        self.threshold.setObjectName("findingsThreshold")
        self.threshold.setRange(0, 100)
        self.threshold.setToolTip("Hide the findings whose confidence is below this value "
                                  "(a lesion without a confidence counts as 1.0)")
        self.threshold_label = QLabel("≥ 0.00", self)
        self.threshold_label.setMinimumWidth(44)
        self.threshold.valueChanged.connect(self._threshold_changed)

        self.previous_button = self._button("◀ Previous", "findingsPrevious",
                                            "Previous finding in the table's order (,)")
        self.next_button = self._button("Next ▶", "findingsNext",
                                        "Next finding in the table's order (.)")
        self.accept_button = self._button("Accept", "findingsAccept",
                                          "Mark the selected finding accepted (again: pending)")
        self.reject_button = self._button("Reject", "findingsReject",
                                          "Remove the selected lesion from the mask (its voxels "
                                          "take the tissue around it); Ctrl+Z undoes")
        self.export_button = self._button("Export CSV…", "findingsExport",
                                          "Write the findings shown, with their status, as CSV")
        self.previous_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(1))
        self.accept_button.clicked.connect(self.toggle_accept)
        self.reject_button.clicked.connect(lambda: self.reject())
        self.export_button.clicked.connect(lambda: self.export_csv_dialog())
        self.summary = QLabel("", self)
        self.summary.setObjectName("findingsSummary")
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet(_MUTED)

        top = QHBoxLayout()
        caption = QLabel("Confidence", self)
        caption.setToolTip(self.threshold.toolTip())
        top.addWidget(caption)
        top.addWidget(self.threshold, 1)
        top.addWidget(self.threshold_label)
        review = QHBoxLayout()
        for button in (self.previous_button, self.next_button):
            review.addWidget(button)
        review.addStretch(1)
        for button in (self.accept_button, self.reject_button):
            review.addWidget(button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.summary, 1)
        bottom.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addLayout(review)
        layout.addLayout(bottom)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(UPDATE_DELAY_MS)
        self._timer.timeout.connect(self.update_findings)

        subscribe(self, self.model.changed, self._model_changed)
        subscribe(self, layers.layers_changed, self._layers_changed)
        subscribe(self, edits.changed, self._edits_changed)
        self._layers_changed()
        self._show_state()

    def _button(self, text: str, name: str, tip: str) -> QPushButton:
        button = QPushButton(text, self)
        button.setObjectName(name)
        button.setToolTip(tip)
        return button

    # -- following the edited mask ----------------------------------------------------------
    def _layers_changed(self) -> None:
        self._retarget = True
        self._timer.start()

    def _edits_changed(self) -> None:
        # The end of a stroke: measure what it changed now.
        if self.model.pending and not self.edits.in_gesture:
            self._timer.start()

    def _mask_changed(self, box: BBox | None) -> None:
        self.model.invalidate(box)
        self._timer.start()

    def _sources(self, layer: LabelLayer | None) -> tuple[LabelMap | None, np.ndarray | None]:
        """The tissue map (the edited mask when it holds tissue labels, else the ground
        truth) and the lesion probability map the mask carries, if any."""
        truth = self.layers.ground_truth
        tissue = None
        if layer is not None and set(layer.counts()) - {0, LESION_VALUE}:
            tissue = layer.labelmap
        elif truth is not None:
            tissue = truth.labelmap
        probability = self._user_probability
        if probability is None and layer is not None:
            meta = layer.labelmap.metadata.get("lesion_probability")
            probability = meta if isinstance(meta, np.ndarray) else None
        return tissue, probability

    def _follow_layers(self) -> None:
        self._retarget = False
        layer = self.layers.edited
        image = self.layers.image
        target = (layer, layer.labelmap if layer else None, image)
        if len(target) != len(self._target) or any(
                a is not b for a, b in zip(target, self._target, strict=True)):
            if not self._target or image is not self._target[2]:
                self._user_probability = None  # it belonged to the previous image
            self._target = target
            if self._layer_handle is not None:
                self._layer_handle.disconnect()
                self._layer_handle = None
            self._cancel_job()
            self._selected = None
            self._tissue, self._probability = self._sources(layer)
            if layer is not None:
                self._layer_handle = subscribe(self, layer.data_changed, self._mask_changed)
            self.model.set_target(layer.labelmap if layer else None,
                                  image.volume if image else None,
                                  tissue=self._tissue, probability=self._probability)
            return
        tissue, probability = self._sources(layer)
        if probability is not self._probability and self._user_probability is None:
            # The mask now carries another detector's map: a result was made the edited
            # mask. Its lesions are that detector's findings, not ones painted by hand:
            # measure afresh (numbers and states start again).
            self._cancel_job()
            self._selected = None
            self._tissue, self._probability = tissue, probability
            self.model.set_target(layer.labelmap if layer else None,
                                  image.volume if image else None,
                                  tissue=tissue, probability=probability)
        elif tissue is not self._tissue or probability is not self._probability:
            self._tissue, self._probability = tissue, probability
            self.model.set_sources(tissue=tissue, probability=probability)

    def set_probability(self, probability: np.ndarray | None) -> None:
        """Use *probability* (a lesion probability map on the image grid) for the confidence.

        It replaces the map the edited mask carries (``metadata["lesion_probability"]``)
        until another image is opened; None goes back to that. The findings are
        measured again, keeping their numbers and states; lesions painted by
        hand keep no confidence.
        """
        if self._retarget:
            self._follow_layers()
        self._user_probability = probability
        self._tissue, self._probability = self._sources(self.layers.edited)
        self.model.set_sources(tissue=self._tissue, probability=self._probability)
        self._timer.start()

    # -- measuring ---------------------------------------------------------------------------
    @property
    def measuring(self) -> bool:
        """A measurement runs in the background."""
        return self.job is not None and not self.job.done

    def update_findings(self) -> None:
        """Measure what changed since the last measurement (normally called by a timer).

        Small regions (a stroke, a rejection) are measured at once; a region
        of more than :data:`SYNC_VOXELS` voxels holding lesions (a new mask)
        in the background. Nothing happens during a stroke or while a
        background measurement runs (its end measures what is left).
        """
        self._timer.stop()
        if self._retarget:
            self._follow_layers()
        if self.edits.in_gesture or self.measuring:
            return
        work = self.model.prepare()
        if work is None:
            return
        if work.voxels <= SYNC_VOXELS or self.runner is None:
            self.model.adopt(work, work.run())
            return
        if not np.any(work.labels[work.region] == work.lesion_value):
            self.model.adopt(work, [])  # no lesion there: nothing to measure
            return
        self._submit(work.detach())

    def _submit(self, work: Remeasure) -> None:
        assert self.runner is not None

        def done(found: list[Any]) -> None:
            if isValid(self):
                self.model.adopt(work, found)
                self._show_state()
                if self.model.pending:
                    self._timer.start()

        def failed(exc: BaseException) -> None:
            log.error("measuring the lesions failed: %s", exc)
            if isValid(self):
                self.message.emit(f"Could not measure the lesions: {exc}")
                self._note = f"Could not measure the lesions: {exc}"
                self._show_state()

        def cancelled() -> None:
            if isValid(self) and work.generation == self.model.generation:
                self.model.invalidate(work.region)  # measured again after the next edit
                self._note = "Measurement cancelled: it runs again after the next edit"
                self._show_state()

        self.job = self.runner.submit(lambda _progress, cancel: work.run(cancel),
                                      "Measuring lesions", on_result=done, on_error=failed,
                                      on_cancelled=cancelled)
        self._show_state()

    def _cancel_job(self) -> None:
        if self.job is not None and not self.job.done:
            self.job.cancel()
        self.job = None

    # -- the table -----------------------------------------------------------------------------
    def _model_changed(self) -> None:
        if not self.model.pending:
            self._note = ""
        self._restoring = True
        try:
            self.table_model.set_rows(self.model.rows)
            self._select_number(self._selected)
        finally:
            self._restoring = False
        self._draw_diameters()
        self._show_state()

    def _select_number(self, number: int | None) -> None:
        """Select the row of *number* in the table (no navigation)."""
        selection = self.view.selectionModel()
        index = self._proxy_index(number)
        if index is None:
            selection.clearSelection()
            selection.setCurrentIndex(QModelIndex(), QItemSelectionModel.SelectionFlag.NoUpdate)
            return
        selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                  | QItemSelectionModel.SelectionFlag.Rows)
        self.view.scrollTo(index)

    def _proxy_index(self, number: int | None) -> QModelIndex | None:
        if number is None:
            return None
        for r, row in enumerate(self.table_model.rows):
            if row.number == number:
                index = self.proxy.mapFromSource(self.table_model.index(r, 0))
                return index if index.isValid() else None
        return None

    def shown_rows(self) -> list[FindingRow]:
        """The rows as shown: above the threshold, in the table's order."""
        out = []
        for r in range(self.proxy.rowCount()):
            source = self.proxy.mapToSource(self.proxy.index(r, 0))
            out.append(self.table_model.rows[source.row()])
        return out

    @property
    def selected(self) -> FindingRow | None:
        """The selected finding, or None."""
        return None if self._selected is None else self.model.row(self._selected)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._restoring:
            return
        self._go_to_index(current)

    def _go_to_index(self, index: QModelIndex) -> None:
        if not index.isValid():
            return
        row = self.table_model.rows[self.proxy.mapToSource(index).row()]
        self.go_to(row.number)

    def sort_by(self, key: str, descending: bool = False) -> None:
        """Sort on the column *key* of :data:`COLUMNS` (by value, not by text)."""
        column = [k for k, _, _ in COLUMNS].index(key)
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        self.view.sortByColumn(column, order)

    def _threshold_changed(self, value: int) -> None:
        self.proxy.set_threshold(value / 100.0)
        self.threshold_label.setText(f"≥ {value / 100.0:.2f}")
        self._show_state()

    def set_threshold(self, value: float) -> None:
        """Hide the findings whose confidence is below *value* (0–1)."""
        self.threshold.setValue(round(float(value) * 100))

    def _show_state(self) -> None:
        rows = self.model.rows
        shown = self.proxy.rowCount()
        counts = {s: sum(row.status == s for row in rows) for s in _STATUS_TEXT}
        if self.measuring:
            text = "Measuring the lesions…"
        elif self._note:
            text = self._note
        elif self.model.mask is None:
            text = "No edited mask"
        elif not rows:
            text = f"No lesion (label {LESION_VALUE}) in the edited mask"
        else:
            n = len(rows)
            text = (f"{n} finding{'s' if n != 1 else ''}: {counts[ACCEPTED]} accepted, "
                    f"{counts[REJECTED]} rejected, {counts[PENDING]} pending")
            if shown < n:
                text += f"; {n - shown} below the threshold"
        self.summary.setText(text)
        row = self.selected
        self.accept_button.setEnabled(row is not None and row.present)
        self.accept_button.setText("Unaccept" if row is not None and row.status == ACCEPTED
                                   else "Accept")
        self.reject_button.setEnabled(row is not None and row.present)
        live = any(r.present for r in self.shown_rows())
        self.previous_button.setEnabled(live)
        self.next_button.setEnabled(live)
        self.export_button.setEnabled(shown > 0)
        self.updated.emit()

    # -- navigation ------------------------------------------------------------------------------
    def go_to(self, number: int) -> FindingRow | None:
        """Select finding *number*: the cursor goes to it, the views zoom onto it and the
        axial view draws its diameters (on the slice where they were measured)."""
        row = self.model.row(number)
        if row is None:
            return None
        self._selected = number
        if self._proxy_index(number) != self.view.selectionModel().currentIndex():
            self._restoring = True
            try:
                self._select_number(number)
            finally:
                self._restoring = False
        f = row.finding
        target = [round(v) for v in f.voxel_centroid]
        target[f.slice_axis] = f.slice_index
        self.cursor.set(target)
        spacing = self.layers.image.volume.spacing if self.layers.image else (1.0, 1.0, 1.0)
        lo, hi = [], []
        for axis, box in enumerate(row.voxels.box):
            extent = (box.stop - box.start) * spacing[axis]
            half = max(ZOOM_EXTENT * extent, MIN_FIELD_MM) / 2.0 / spacing[axis]
            lo.append(f.voxel_centroid[axis] - half)
            hi.append(f.voxel_centroid[axis] + half)
        for view in self.views.values():
            view.show_region(lo, hi)
        self._draw_diameters()
        self._show_state()
        self.message.emit(f"Finding {number}: {_size_text(row)} mm, {f.volume_ml:.3f} mL"
                          + (f", {f.tissue}" if f.tissue else ""))
        return row

    def step(self, delta: int) -> FindingRow | None:
        """Go to the next (*delta* > 0) or previous finding in the table's order.

        Only findings shown (above the threshold) and in the mask count; after
        the last comes the first again.
        """
        rows = [row for row in self.shown_rows() if row.present]
        if not rows:
            self.message.emit("No findings to go to")
            return None
        numbers = [row.number for row in rows]
        if self._selected in numbers:
            at = (numbers.index(self._selected) + (1 if delta > 0 else -1)) % len(numbers)
        else:
            at = 0 if delta > 0 else len(numbers) - 1
        return self.go_to(numbers[at])

    def _draw_diameters(self) -> None:
        """The selected finding's two diameters, in the view of its measuring slices."""
        row = self.selected
        lines: list[SliceLine] = []
        axis = -1
        if row is not None and row.present:
            f = row.finding
            lines = [SliceLine(*f.axial_diameter_ends, LONG_AXIS_RGB,
                               f"{f.axial_diameter_mm:.1f} mm"),
                     SliceLine(*f.perpendicular_diameter_ends, SHORT_AXIS_RGB,
                               f"{f.perpendicular_diameter_mm:.1f} mm")]
            axis = f.slice_axis
        for view in self.views.values():
            if not isValid(view):
                continue
            view.set_lines(lines if view.normal_axis == axis else [])

    # -- review -----------------------------------------------------------------------------------
    def toggle_accept(self) -> None:
        """Accept the selected finding, or make an accepted one pending again."""
        row = self.selected
        if row is None or not row.present:
            return
        self.model.set_status(row.number, PENDING if row.status == ACCEPTED else ACCEPTED)

    def accept(self, number: int | None = None) -> None:
        """Mark finding *number* (default: the selected one) accepted."""
        number = self._selected if number is None else number
        if number is not None:
            self.model.set_status(number, ACCEPTED)

    def reject(self, number: int | None = None) -> bool:
        """Remove finding *number* (default: the selected one) from the mask: one undo step.

        Its voxels take the label of the nearest voxel around the lesion (the
        tissue it lies in, or background). The finding stays in the list,
        rejected; undoing the step brings the lesion and its status back.
        """
        number = self._selected if number is None else number
        if number is None or self.edits.in_gesture:
            return False
        self.update_findings()  # the lesion's voxels as they are now
        diff = self.model.reject_diff(number)
        if diff is None:
            return False
        try:
            self.edits.apply_diff(diff, f"Reject finding {number}")
        except Exception:
            self.model.undo_reject_mark(number)
            raise
        self.update_findings()
        self.message.emit(f"Finding {number} rejected: {diff.count:,} voxels removed from "
                          "the mask (Ctrl+Z undoes)")
        return True

    # -- export ------------------------------------------------------------------------------------
    def export_csv(self, path: str | Path) -> Path:
        """Write the rows shown, in the table's order, with a ``status`` column, as CSV."""
        rows = self.shown_rows()
        text = findings_csv([row.finding for row in rows],
                            extra_columns={"status": [row.status for row in rows]})
        atomic_write_text(path, text)
        return Path(path)

    def export_csv_dialog(self) -> Path | None:
        """Ask where, then :meth:`export_csv` (File dialog; None when cancelled)."""
        if self.model.mask is None:
            self.message.emit("No findings to export")
            return None
        start = str(Path(self.last_dir) / "findings.csv")
        path = self.ask_save_path("Export the findings", start, "CSV (*.csv)")
        if not path:
            return None
        if not path.endswith(".csv"):
            path += ".csv"
        self.last_dir = str(Path(path).parent)
        try:
            out = self.export_csv(path)
        except OSError as exc:
            self.message.emit(f"Could not write {path}: {exc}")
            return None
        self.message.emit(f"Wrote {len(self.shown_rows())} findings to {out}")
        return out

    def _ask_save_path(self, title: str, start: str, pattern: str) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, title, start, pattern)
        return path or None
