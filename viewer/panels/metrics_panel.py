"""Live metrics panel: the edited mask against the ground truth, per label.

Dice, IoU, sensitivity, specificity and the volume difference come from the
session's incremental confusion counts and refresh after every stroke
segment; HD95 and ASSD (mm) are computed on demand, or after each completed
step, in a worker (greyed out while the mask has changed since). Below the
table: the false-positive / false-negative overlay and the ground-truth
outline. Definitions: docs/editing.md and docs/metrics.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.core.metrics import MeanSummary
from engine.display import DIFFERENCE_LABELS
from engine.editing.session import METRIC_KEYS

from ..edit_session import EditSession
from ..model_info import training_anatomy_note
from ..subscriptions import subscribe

__all__ = ["METRIC_ROWS", "MetricsPanel", "format_metric"]

#: Row titles of the metric keys.
METRIC_ROWS = {
    "dice": "Dice",
    "iou": "IoU",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "volume_diff_ml": "ΔVol. (mL)",
    "volume_diff_pct": "ΔVol. (%)",
    "hd95": "HD95 (mm)",
    "assd": "ASSD (mm)",
}
SURFACE_KEYS = ("hd95", "assd")
MEAN = "mean"
STALE_COLOUR = QColor("#70757d")
NO_TRUTH = ("<p style='color:#8a919c'>No ground truth: open one (<i>File → Open Ground "
            "Truth…</i>) to see Dice, IoU, sensitivity, specificity and volume differences "
            "update while you paint.</p>")


def two_lines(name: str) -> str:
    """A column title on at most two lines, broken at the space nearest the middle."""
    if len(name) <= 8 or " " not in name:
        return name
    spaces = [i for i, c in enumerate(name) if c == " "]
    cut = min(spaces, key=lambda i: abs(i - len(name) / 2))
    return name[:cut] + "\n" + name[cut + 1:]


def format_metric(key: str, value: float) -> str:
    """The text shown for *value* of metric *key* (``"—"`` for NaN, ``"∞"`` for inf)."""
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞"
    if key == "volume_diff_ml":  # about three figures: a narrow column shows them whole
        digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
        return f"{value:+.{digits}f}"
    if key == "volume_diff_pct":
        return f"{value:+.1f}"
    if key in SURFACE_KEYS:
        return f"{value:.2f}"
    return f"{value:.3f}"


def format_mean(key: str, summary: MeanSummary, values: Sequence[float]) -> tuple[str, str]:
    """Text and tooltip of the mean of metric *key* over the labels.

    The mean is over the finite values only; when a label's value is infinite (a
    label the mask misses has no surface distance) the text says how many were
    averaged, e.g. ``8.51 (2/3)``. Metrics not computed (NaN) are not misses.
    """
    text = format_metric(key, summary.mean)
    missed = sum(math.isinf(v) for v in values)
    if not missed:
        return text, "Mean over the labels"
    return (f"{text} ({summary.used}/{summary.total})",
            f"Mean over the {summary.used} of {summary.total} labels with a finite value; "
            f"{missed} infinite (a label missing from the mask or the ground truth)")


class MetricsPanel(QWidget):
    """Table of metrics (rows) by label (columns, then the mean), with overlay toggles."""

    def __init__(self, session: EditSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("metricsPanel")
        self.session = session
        self.columns: list[int | str] = []

        self.summary = QLabel("", self)
        self.summary.setObjectName("metricsSummary")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setWordWrap(True)
        self.anatomy_note = QLabel("", self)
        self.anatomy_note.setObjectName("trainingAnatomyNote")
        self.anatomy_note.setWordWrap(True)
        self.anatomy_note.setStyleSheet("color: #ffb74d;")
        self.anatomy_note.setToolTip("Help → About the Networks says what they were trained on")
        self.anatomy_note.hide()
        self._note_for: object = None
        self.table = QTableWidget(len(METRIC_KEYS), 0, self)
        self.table.setObjectName("metricsTable")
        self.table.setVerticalHeaderLabels([METRIC_ROWS[k] for k in METRIC_KEYS])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setToolTip("Click a label to paint it")
        self.table.horizontalHeader().setTextElideMode(Qt.TextElideMode.ElideNone)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.compute = QPushButton("Compute HD95 / ASSD", self)
        self.compute.setObjectName("computeSurface")
        self.compute.setToolTip("Surface distances of every label, in the background")
        self.auto = QCheckBox("after each stroke", self)
        self.auto.setObjectName("autoSurface")
        self.auto.setToolTip("Recompute HD95 and ASSD in the background after every change")
        surface_row = QHBoxLayout()
        surface_row.addWidget(self.compute)
        surface_row.addWidget(self.auto)
        surface_row.addStretch(1)

        self.differences = QCheckBox("Differences", self)
        self.differences.setObjectName("showDifferences")
        self.differences.setToolTip("Overlay the false positives and false negatives of the "
                                    "edited mask against the ground truth (D)")
        self.scope = QComboBox(self)
        self.scope.setObjectName("differenceScope")
        self.scope.addItem("all labels", "all")
        self.scope.addItem("selected label", "selected")
        fp, fn = DIFFERENCE_LABELS.color(1), DIFFERENCE_LABELS.color(2)
        legend = QLabel(
            f"<span style='color:rgb{fp}'>■</span>&nbsp;false&nbsp;positive "
            f"<span style='color:rgb{fn}'>■</span>&nbsp;false&nbsp;negative", self)
        legend.setTextFormat(Qt.TextFormat.RichText)
        legend.setWordWrap(True)
        self.scope.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.scope.setMinimumContentsLength(6)
        diff_row = QHBoxLayout()
        diff_row.addWidget(self.differences)
        diff_row.addWidget(self.scope)
        diff_row.addWidget(legend, 1)
        self.outline = QCheckBox("Ground-truth outline over the edited mask", self)
        self.outline.setObjectName("truthOutline")
        self.outline.setToolTip("Draw the ground truth as outlines (G)")

        self.controls = QWidget(self)
        box = QVBoxLayout(self.controls)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.table)
        box.addLayout(surface_row)
        box.addLayout(diff_row)
        box.addWidget(self.outline)
        # In a scroll area: a short dock scrolls instead of drawing rows over each other.
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.anatomy_note)
        layout.addWidget(self.controls)
        layout.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setObjectName("metricsScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        self.compute.clicked.connect(lambda: session.compute_surface_metrics())
        self.auto.toggled.connect(session.set_auto_surface)
        self.differences.toggled.connect(lambda on: session.show_differences(on))
        self.scope.activated.connect(
            lambda _i: session.show_differences(session.differences_shown,
                                                self.scope.currentData()))
        self.outline.toggled.connect(session.show_truth_outline)
        self.table.horizontalHeader().sectionClicked.connect(self._column_clicked)
        subscribe(self, session.metrics_changed, self.refresh)
        subscribe(self, session.surface_changed, self.refresh)
        subscribe(self, session.label_table_changed, self.rebuild)
        subscribe(self, session.overlay_changed, self.sync_toggles)
        self.rebuild()

    # -- structure -------------------------------------------------------------------------
    def rebuild(self) -> None:
        """New columns: the tracked labels (names and colours) and the mean."""
        live = self.session.live
        labels = list(live.labels) if live is not None else []
        self.columns = [*labels, MEAN] if labels else []
        self.table.setColumnCount(len(self.columns))
        for col, key in enumerate(self.columns):
            if key == MEAN:
                head = QTableWidgetItem("Mean")
                head.setToolTip("Mean over the labels")
            else:
                head = QTableWidgetItem(two_lines(self.session.label_name(key)))
                head.setForeground(QBrush(QColor(*self.session.label_color(key))))
                head.setToolTip(f"Label {key}: {self.session.label_name(key)}")
            self.table.setHorizontalHeaderItem(col, head)
            for row in range(len(METRIC_KEYS)):
                item = QTableWidgetItem("")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if key == MEAN:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(row, col, item)
        self.controls.setVisible(live is not None)
        header = self.table.horizontalHeader()
        if self.columns:  # the mean column as narrow as its figures; labels share the rest
            header.setSectionResizeMode(len(self.columns) - 1,
                                        QHeaderView.ResizeMode.ResizeToContents)
        self.table.setFixedHeight(header.sizeHint().height() + 22 * len(METRIC_KEYS)
                                  + 2 * self.table.frameWidth() + 2)
        self.sync_toggles()
        self.refresh()

    def _column_clicked(self, col: int) -> None:
        if 0 <= col < len(self.columns) and self.columns[col] != MEAN:
            self.session.selected_label = int(self.columns[col])

    # -- values ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Write the current figures (cheap: called after every stroke segment)."""
        session = self.session
        live = session.live
        image = session.layers.image
        volume = image.volume if image is not None else None
        if self._note_for is not volume:  # once per image, not on every stroke segment
            self._note_for = volume
            self.anatomy_note.setText(training_anatomy_note(volume))
        note = self.anatomy_note.text()
        self.anatomy_note.setVisible(bool(note) and live is not None)
        if live is None:
            self.summary.setText(NO_TRUTH)
            return
        if [c for c in self.columns if c != MEAN] != list(live.labels):
            self.rebuild()
            return
        rows = session.metrics()
        mean = session.mean_metrics()
        stale = session.surface_stale
        for col, key in enumerate(self.columns):
            for r, metric in enumerate(METRIC_KEYS):
                item = self.table.item(r, col)
                if key == MEAN:
                    text, tip = format_mean(metric, mean[metric],
                                            [row[metric] for row in rows.values()])
                    item.setText(text)
                    item.setToolTip(tip)
                else:
                    item.setText(format_metric(metric, rows[key][metric]))
                if metric in SURFACE_KEYS:
                    item.setForeground(QBrush(STALE_COLOUR) if stale else QBrush())
                    font = item.font()
                    font.setItalic(stale)
                    item.setFont(font)
        busy = session.surface_job is not None
        self.compute.setText("Computing…" if busy else "Compute HD95 / ASSD")
        self.compute.setEnabled(not busy)
        note = ("HD95/ASSD of an earlier mask" if stale and session.surface
                else "" if session.surface else "HD95/ASSD not computed")
        self.summary.setText(
            f"<span style='font-size:17px; font-weight:600'>Mean Dice "
            f"{format_metric('dice', mean['dice'].mean)}</span>"
            f"<span style='color:#8a919c'>&nbsp;&nbsp;vs the ground truth"
            f"{' · ' + note if note else ''}</span>")

    def text(self, label: int | str, key: str) -> str:
        """The text displayed for *key* of *label* (or ``"mean"``), for tests and scripts."""
        col = self.columns.index(label)
        return self.table.item(METRIC_KEYS.index(key), col).text()

    def sync_toggles(self) -> None:
        session = self.session
        for widget, value in ((self.differences, session.differences_shown),
                              (self.outline, session.truth_outline)):
            widget.blockSignals(True)
            widget.setChecked(value)
            widget.blockSignals(False)
        self.scope.setCurrentIndex(self.scope.findData(session.difference_scope))
