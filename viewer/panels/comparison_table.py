"""The comparison table: methods × labels with the metrics of :mod:`engine.evaluation.compare`.

Every result layer (and the edited mask, when it holds labels) is evaluated
against the ground-truth layer by :func:`engine.evaluation.compare.comparison_rows` --
Dice, IoU, sensitivity, specificity, accuracy, HD95, average surface
distance, volume difference -- next to the run's runtime and peak memory.
The evaluation runs in the window's job runner (HD95 takes seconds on a full
brain); the table sorts on any column by the underlying numbers and exports
what it shows, in the shown order, as CSV or Markdown.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from engine.core.volume import LabelMap
from engine.evaluation.compare import COLUMNS, MethodRun, comparison_rows, to_markdown, write_csv
from engine.evaluation.tables import format_cell
from engine.io.atomic import atomic_write_bytes

from ..layers import LabelLayer, LayerStack
from ..workers import Job, JobRunner

__all__ = ["ComparisonTable", "ComparisonTableModel", "runs_to_compare"]

log = logging.getLogger(__name__)

_TIPS = {
    "dice": "Dice similarity coefficient 2|A∩B| / (|A| + |B|) (1 is perfect)",
    "iou": "Intersection over union |A∩B| / |A∪B| (Jaccard index)",
    "sensitivity": "True-positive rate: share of the ground truth found",
    "specificity": "True-negative rate: share of the other voxels left out",
    "accuracy": "Share of all voxels labelled the same as the ground truth",
    "hd95": "95th percentile Hausdorff distance between the surfaces (mm)",
    "assd": "Average symmetric surface distance (mm)",
    "volume_diff_ml": "Volume of the result minus the ground truth (mL)",
    "volume_diff_pct": "Volume difference relative to the ground truth (%)",
    "runtime_s": "Wall time of the pipeline run (s)",
    "peak_memory_mb": ("Memory the method itself used (MB): its peak resident size minus what "
                       "the process (Qt, torch, the image) held when it started, or its CUDA "
                       "allocations on a GPU"),
    "misses": "Mean rows: metrics left out of the mean because a label had no finite value "
              "(e.g. HD95 of a label the result misses), as left out / labels",
}

#: Rows are sorted on this role: the raw number (NaN sorts as +inf).
SORT_ROLE = Qt.ItemDataRole.UserRole


def _complete(row: dict[str, Any]) -> dict[str, Any]:
    """Every column present: metrics that were not computed (surface distances) are NaN."""
    out = dict(row)
    for key, _, pattern in COLUMNS:
        if key not in out:
            out[key] = "" if pattern == "{}" else math.nan
    return out


def runs_to_compare(layers: LayerStack) -> dict[str, MethodRun]:
    """The layers to evaluate against the ground truth: every result and a non-empty
    edited mask, with the runtime and peak memory the runs left in their metadata.

    The edited mask is copied (the user may keep editing while the table is computed).
    An edited mask that holds exactly the labels of a result (a first result taken in,
    not corrected yet) is left out: it would repeat that result's row under another
    name.
    """
    runs: dict[str, MethodRun] = {}
    results = [lay.labelmap.array for lay in layers.labels if lay.role == "result"]
    for layer in layers.labels:
        if layer.role == "result":
            labels = layer.labelmap
        elif layer.role == "edit" and layer.labelmap.array.any():
            mask = layer.labelmap.array
            if any(r.shape == mask.shape and np.array_equal(r, mask) for r in results):
                continue
            labels = layer.labelmap.with_array(mask.copy())
        else:
            continue
        meta = layer.labelmap.metadata
        runs[layer.name] = MethodRun(labels, meta.get("runtime_s"), meta.get("peak_memory_bytes"))
    return runs


def _truth_labels(truth: LabelMap) -> list[int]:
    present = set(truth.counts()) - {0}
    listed = [v for v in truth.labels if v != 0 and v in present]
    return listed + sorted(present - set(listed))


class ComparisonTableModel(QAbstractTableModel):
    """Rows of :func:`~engine.evaluation.compare.comparison_rows`.

    Columns are :data:`~engine.evaluation.compare.COLUMNS`.
    """

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []

    def set_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.rows = [_complete(r) for r in rows]
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
        key, _, pattern = COLUMNS[index.column()]
        value = row.get(key, "")
        if role == Qt.ItemDataRole.DisplayRole:
            return format_cell(value, pattern)
        if role == SORT_ROLE:
            if isinstance(value, float) and math.isnan(value):
                return math.inf
            return value
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if key in ("method", "label"):
                return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and key == "method":
            return str(value)
        if role == Qt.ItemDataRole.FontRole and row.get("label") == "mean":
            font = QFont()
            font.setBold(True)
            return font
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        key, header, _ = COLUMNS[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return header
        if role == Qt.ItemDataRole.ToolTipRole:
            return _TIPS.get(key)
        return None


class ComparisonTable(QWidget):
    """The table with *Compute*, *Mean only*, *Export CSV…* and *Export Markdown…*."""

    #: The table was filled (number of rows).
    computed = Signal(int)
    #: The fast metrics (Dice, volumes, ...) are in the table; surface distances follow.
    fast_computed = Signal(int)
    failed = Signal(str)

    def __init__(self, layers: LayerStack, runner: JobRunner,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("comparisonTable")
        self.layers = layers
        self.runner = runner
        self.job: Job | None = None
        self._generation = 0  # of compute(): results of an older one are dropped
        #: ``ask_save_path(title, start, filter) -> path or None`` (tests replace it).
        self.ask_save_path: Callable[[str, str, str], str | None] = self._ask_save_path
        self.last_dir = str(Path.home())

        self.model = ComparisonTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(1)
        self.view = QTableView(self)
        self.view.setObjectName("comparisonView")
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(22)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSortIndicatorShown(True)
        self.view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)

        self.compute_button = QPushButton("Compute", self)
        self.compute_button.setObjectName("computeComparison")
        self.compute_button.setToolTip("Evaluate every result and the edited mask against the "
                                       "ground truth (in the background)")
        self.surface = QCheckBox("Surface distances", self)
        self.surface.setObjectName("surfaceMetrics")
        self.surface.setChecked(True)
        self.surface.setToolTip("Also HD95 and average surface distance (slower)")
        self.mean_only = QCheckBox("Mean rows only", self)
        self.mean_only.setObjectName("meanOnly")
        self.mean_only.toggled.connect(self._filter)
        self.csv_button = QPushButton("Export CSV…", self)
        self.csv_button.setObjectName("exportCsv")
        self.md_button = QPushButton("Export Markdown…", self)
        self.md_button.setObjectName("exportMarkdown")
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumWidth(160)
        self.progress.setMaximumHeight(10)
        self.progress.hide()
        self.status = QLabel("", self)
        self.status.setObjectName("comparisonStatus")
        self.status.setStyleSheet("color: #8a919c;")
        bar = QHBoxLayout()
        for widget in (self.compute_button, self.surface, self.mean_only):
            bar.addWidget(widget)
        bar.addWidget(self.progress)
        bar.addWidget(self.status, 1)
        bar.addWidget(self.csv_button)
        bar.addWidget(self.md_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)

        self.compute_button.clicked.connect(self.compute)
        self.csv_button.clicked.connect(lambda: self._export("csv"))
        self.md_button.clicked.connect(lambda: self._export("md"))
        self._update_buttons()

    # -- computing -------------------------------------------------------------------------
    def compute(self) -> Job | None:
        """Evaluate the layers against the ground truth in the background."""
        truth_layer = self.layers.ground_truth
        if truth_layer is None:
            self._fail("Open a ground truth (File → Open Ground Truth…) to compare against")
            return None
        runs = runs_to_compare(self.layers)
        if not runs:
            self._fail("Nothing to compare yet: run a pipeline or edit the mask")
            return None
        if self.job is not None and not self.job.done:
            self.job.cancel()
        truth = truth_layer.labelmap
        labels = _truth_labels(truth)
        surface = self.surface.isChecked()

        n = len(runs)
        maps = "label map" if n == 1 else "label maps"
        generation = self._generation = self._generation + 1

        def rows_of(surface_too: bool, what: str) -> Callable[..., list[dict[str, Any]]]:
            def work(progress: Callable[[float, str], None], cancel: Any) -> list[dict[str, Any]]:
                rows: list[dict[str, Any]] = []
                for i, (name, run) in enumerate(runs.items()):
                    cancel.check()
                    progress(i / n, f"{what} of {name} ({i + 1} of {n})")
                    rows += comparison_rows({name: run}, truth, labels=labels,
                                            surface=surface_too)
                progress(1.0, f"{what}: done")
                return rows
            return work

        def current() -> bool:
            # Not a newer compute(), and the table not closed (its widgets deleted).
            return isValid(self.model) and generation == self._generation

        def finish(rows: list[dict[str, Any]]) -> None:
            self.progress.hide()
            self.model.set_rows(rows)
            self.status.setText(f"{n} {maps} against {truth_layer.name}; click a "
                                "column header to sort")
            self._update_buttons()
            self.computed.emit(len(rows))

        def fast_done(rows: list[dict[str, Any]]) -> None:
            if not current():
                return
            if not surface:
                finish(rows)
                return
            # Dice, volumes and the rest are shown now; surface distances follow.
            self.model.set_rows(rows)
            self.fast_computed.emit(len(rows))
            self.status.setText(f"Dice and volumes of {n} {maps}; computing surface "
                                "distances (HD95, ASSD) in the background…")
            self.progress.setValue(0)
            self.job = self.runner.submit(
                rows_of(True, "Surface distances"), "Surface distances against the ground truth",
                on_result=lambda r: finish(r) if current() else None, on_error=error,
                on_cancelled=cancelled, on_progress=on_progress)
            self._update_buttons()

        def on_progress(fraction: float, message: str) -> None:
            if current():
                self.progress.setValue(int(fraction * 1000))
                self.progress.setToolTip(message)

        def error(exc: BaseException) -> None:
            if current():
                self.progress.hide()
                self._fail(f"Comparison failed: {exc}")

        def cancelled() -> None:
            if current():
                self.progress.hide()
                self.status.setText("Cancelled")
                self._update_buttons()

        self.progress.setValue(0)
        self.progress.show()
        self.status.setText(f"Evaluating {n} {maps}…")
        self.job = self.runner.submit(rows_of(False, "Dice and volumes"),
                                      "Comparing with the ground truth", on_result=fast_done,
                                      on_error=error, on_cancelled=cancelled,
                                      on_progress=on_progress)
        self._update_buttons()
        return self.job

    def compute_if_ready(self) -> Job | None:
        """Compute at once when there is a ground truth and something to compare (on open)."""
        if self.layers.ground_truth is None or not runs_to_compare(self.layers):
            return None
        return self.compute()

    def _fail(self, message: str) -> None:
        self.status.setText(message)
        self.failed.emit(message)
        self._update_buttons()

    def _update_buttons(self) -> None:
        busy = self.job is not None and not self.job.done
        self.compute_button.setEnabled(not busy)
        has_rows = bool(self.model.rows)
        self.csv_button.setEnabled(has_rows)
        self.md_button.setEnabled(has_rows)

    def _filter(self, mean_only: bool) -> None:
        self.proxy.setFilterFixedString("mean" if mean_only else "")

    # -- reading and exporting -------------------------------------------------------------
    def shown_rows(self) -> list[dict[str, Any]]:
        """The rows as shown: filtered and in the current sort order."""
        out = []
        for r in range(self.proxy.rowCount()):
            source = self.proxy.mapToSource(self.proxy.index(r, 0))
            out.append(self.model.rows[source.row()])
        return out

    def sort_by(self, key: str, descending: bool = False) -> None:
        """Sort on the column *key* of :data:`engine.evaluation.compare.COLUMNS`."""
        column = [k for k, _, _ in COLUMNS].index(key)
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        self.view.sortByColumn(column, order)

    def export_csv(self, path: str | Path) -> Path:
        """Write the shown rows as CSV (full precision)."""
        return write_csv(self.shown_rows(), path)

    def export_markdown(self, path: str | Path) -> Path:
        """Write the shown rows as a Markdown table."""
        truth = self.layers.ground_truth
        image = self.layers.image
        title = f"# Comparison on {image.name}\n\n" if image is not None else ""
        note = f"Ground truth: {truth.name}\n\n" if truth is not None else ""
        text = title + note + to_markdown(self.shown_rows())
        atomic_write_bytes(path, text.encode("utf-8"))
        return Path(path)

    def _export(self, kind: str) -> Path | None:
        pattern = "CSV (*.csv)" if kind == "csv" else "Markdown (*.md)"
        start = str(Path(self.last_dir) / f"comparison.{kind}")
        path = self.ask_save_path("Export the comparison table", start, pattern)
        if not path:
            return None
        if not path.endswith(f".{kind}"):
            path += f".{kind}"
        self.last_dir = str(Path(path).parent)
        try:
            out = self.export_csv(path) if kind == "csv" else self.export_markdown(path)
        except OSError as exc:
            self._fail(f"Could not write {path}: {exc.strerror or exc}")
            return None
        self.status.setText(f"Wrote {out}")
        return out

    def _ask_save_path(self, title: str, start: str, pattern: str) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, title, start, pattern)
        return path or None

    def layers_for_rows(self) -> list[LabelLayer]:
        """The layers the current rows come from (for tests)."""
        names = {r["method"] for r in self.model.rows}
        return [lay for lay in self.layers.labels if lay.name in names]
