"""The questions and messages the main window puts to the user.

Gathered in one class so that tests can replace it with scripted answers
(the real dialogs are modal and would wait for a click).
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtWidgets import (
    QColorDialog,
    QFileDialog,
    QInputDialog,
    QMessageBox,
    QWidget,
)

__all__ = ["IMAGE_FILTER", "LABEL_FILTER", "Dialogs"]

IMAGE_FILTER = "Images (*.nii *.nii.gz *.hdr *.img *.dcm *.ima);;All files (*)"
LABEL_FILTER = "Label maps (*.nii *.nii.gz *.hdr *.img);;All files (*)"
SAVE_FILTER = "NIfTI, compressed (*.nii.gz);;NIfTI (*.nii)"

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
