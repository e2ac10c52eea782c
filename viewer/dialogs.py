"""The questions and messages the main window puts to the user.

Gathered in one class so that tests can replace it with scripted answers
(the real dialogs are modal and would wait for a click).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

__all__ = ["IMAGE_FILTER", "LABEL_FILTER", "Dialogs", "SeriesDialog"]

IMAGE_FILTER = ("Images (*.nii *.nii.gz *.hdr *.img *.dcm *.ima *.nrrd *.nhdr *.mgz *.mgh);;"
                "All files (*)")
LABEL_FILTER = "Label maps (*.nii *.nii.gz *.hdr *.img *.nrrd *.nhdr *.mgz *.mgh);;All files (*)"
SAVE_FILTER = "NIfTI, compressed (*.nii.gz);;NIfTI (*.nii)"
NAMES_FILTER = ("Label names (ITK-SNAP label descriptions, FreeSurfer lookup tables, "
                "3D Slicer colour tables) (*.txt *.lut *.ctbl);;All files (*)")

DROP_ROLES = {
    "Image (replaces the current one)": "image",
    "Labels to edit": "edit",
    "Ground truth": "truth",
}


class Dialogs:
    """Modal dialogs parented to *parent*."""

    def __init__(self, parent: QWidget) -> None:
        self.parent = parent

    def error(self, title: str, message: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Critical, title, message,
                          QMessageBox.StandardButton.Ok, self.parent)
        box.setObjectName("errorDialog")
        box.exec()

    def warning(self, title: str, message: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, message,
                          QMessageBox.StandardButton.Ok, self.parent)
        box.setObjectName("warningDialog")
        box.exec()

    def choose_series(self, name: str, infos: Sequence[Any], default: int) -> int | None:
        """Which DICOM series of folder *name* to open: its index in *infos*, or None.

        *infos* are :class:`~engine.io.dicom.DicomSeriesInfo`, largest first;
        series whose headers already show they cannot be read are listed with
        the reason and cannot be chosen.
        """
        dialog = SeriesDialog(name, infos, default, self.parent)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        return dialog.chosen()

    def ask_resample(self, name: str, differences: list[str]) -> bool:
        """Ask whether to resample a label map whose grid differs from the image."""
        items = "".join(f"<li>{html.escape(d)}</li>" for d in differences)
        box = QMessageBox(self.parent)
        box.setObjectName("mismatchDialog")
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Label map does not match the image")
        box.setText(f"<b>{html.escape(name)}</b> does not lie on the grid of the image "
                    f"(label map vs image):<ul>{items}</ul>")
        box.setInformativeText(
            "Resample it onto the image grid (nearest neighbour: label values are kept, "
            "boundaries may shift by up to half a voxel)?")
        resample = box.addButton("Resample", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is resample

    def ask_drop_role(self, name: str) -> str | None:
        """How to open a file dropped on a window that already shows an image."""
        choices = list(DROP_ROLES)
        text, ok = QInputDialog.getItem(self.parent, "Open dropped file",
                                        f"Open {name} as:", choices, 1, False)
        return DROP_ROLES[text] if ok else None

    def ask_unsaved(self, name: str) -> str:
        """``"save"``, ``"discard"`` or ``"cancel"`` for unsaved edits of *name*."""
        buttons = (QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                   | QMessageBox.StandardButton.Cancel)
        answer = QMessageBox.question(
            self.parent, "Unsaved labels", f"Save the changes to {name}?", buttons,
            QMessageBox.StandardButton.Save)
        return {QMessageBox.StandardButton.Save: "save",
                QMessageBox.StandardButton.Discard: "discard"}.get(answer, "cancel")

    def ask_recover(self, name: str, n_steps: int, when: str) -> bool:
        """Offer to recover the unsaved edits journalled before a crash."""
        box = QMessageBox(self.parent)
        box.setObjectName("recoverDialog")
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Recover unsaved edits")
        box.setText(f"Delineo did not close normally while <b>{html.escape(name)}</b> "
                    f"had unsaved edits ({n_steps} step{'s' if n_steps != 1 else ''}, "
                    f"last one {html.escape(when)}).")
        box.setInformativeText("Recover them? (Discard deletes the journal of those edits.)")
        recover = box.addButton("Recover", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(recover)
        box.exec()
        return box.clickedButton() is recover

    def ask_new_label(self, value: int) -> tuple[str, tuple[int, int, int]] | None:
        """Name and colour of a new label *value*, or None if cancelled."""
        name, ok = QInputDialog.getText(self.parent, "New label", f"Name of label {value}:",
                                        text=f"Label {value}")
        if not ok:
            return None
        colour = QColorDialog.getColor(parent=self.parent, title=f"Colour of {name}")
        if not colour.isValid():
            return None
        return name, (colour.red(), colour.green(), colour.blue())

    def open_file(self, title: str, file_filter: str, start: str) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self.parent, title, start, file_filter)
        return path or None

    def open_folder(self, title: str, start: str) -> str | None:
        return QFileDialog.getExistingDirectory(self.parent, title, start) or None

    def save_file(self, title: str, start: str) -> str | None:
        path, chosen = QFileDialog.getSaveFileName(self.parent, title, start, SAVE_FILTER)
        if not path:
            return None
        if not (path.endswith(".nii") or path.endswith(".nii.gz")):
            path += ".nii" if "(*.nii)" in chosen else ".nii.gz"
        return str(Path(path))


class SeriesDialog(QDialog):
    """The series of a DICOM folder in a table; the reader picks one (double-click or OK)."""

    COLUMNS = ("Description", "Modality", "Slices", "Image size", "Series", "Status")

    def __init__(self, name: str, infos: Sequence[Any], default: int,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("seriesDialog")
        self.setWindowTitle(f"Choose a series in {name}")
        self.resize(760, 320)
        layout = QVBoxLayout(self)
        note = QLabel(f"<b>{html.escape(name)}</b> holds {len(infos)} image series. The "
                      "largest that can be read is selected; it is what the command line "
                      "takes by default (<code>--series</code> picks another).", self)
        note.setWordWrap(True)
        layout.addWidget(note)
        self.table = QTableWidget(len(infos), len(self.COLUMNS), self)
        self.table.setObjectName("seriesTable")
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        self.readable: list[bool] = []
        for row, info in enumerate(infos):
            problem = str(getattr(info, "problem", "") or "")
            number = getattr(info, "series_number", None)
            cells = (
                info.description or "(no description)",
                info.modality,
                str(info.n_slices),
                f"{info.columns} × {info.rows}",
                "" if number is None else str(number),
                f"cannot be read: {problem}" if problem else "readable",
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"SeriesInstanceUID {info.uid}" + (f"\n{problem}" if problem
                                                                    else ""))
                if problem:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsSelectable
                                  & ~Qt.ItemFlag.ItemIsEnabled)
                self.table.setItem(row, col, item)
            self.readable.append(not problem)
        self.table.selectRow(default)
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open
                                   | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.table.doubleClicked.connect(lambda _index: self.accept())
        layout.addWidget(buttons)

    def chosen(self) -> int | None:
        """The selected readable row, or None."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        row = rows[0].row()
        return row if self.readable[row] else None
