"""Helpers of the viewer tests: scripted dialogs, synthetic volumes, Qt events."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QWidget

from engine.core.volume import BRAIN_TISSUE_LABELS, LabelMap, Volume

SHAPE = (24, 30, 12)
SPACING = (1.0, 1.0, 2.5)


class ScriptedDialogs:
    """Stands in for viewer.dialogs.Dialogs: records messages, gives set answers."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.mismatches: list[list[str]] = []
        self.resample = True
        self.drop_role: str | None = "edit"
        self.unsaved = "discard"
        self.open_path: str | None = None
        self.save_path: str | None = None
        self.recover = True
        self.recover_asked: list[tuple[str, int]] = []
        self.new_label: tuple[str, tuple[int, int, int]] | None = ("Lesion", (230, 30, 30))

    def error(self, title: str, message: str) -> None:
        self.errors.append((title, message))

    def ask_resample(self, name: str, differences: list[str]) -> bool:
        self.mismatches.append(list(differences))
        return self.resample

    def ask_drop_role(self, name: str) -> str | None:
        return self.drop_role

    def ask_unsaved(self, name: str) -> str:
        return self.unsaved

    def ask_recover(self, name: str, n_steps: int, when: str) -> bool:
        self.recover_asked.append((name, n_steps))
        return self.recover

    def ask_new_label(self, value: int) -> tuple[str, tuple[int, int, int]] | None:
        return self.new_label

    def open_file(self, title: str, file_filter: str, start: str) -> str | None:
        return self.open_path

    def open_folder(self, title: str, start: str) -> str | None:
        return self.open_path

    def save_file(self, title: str, start: str) -> str | None:
        return self.save_path


def coded_array(shape=SHAPE) -> np.ndarray:
    """Voxel (i, j, k) holds 10000 i + 100 j + k: every slice is recognisable."""
    i, j, k = np.indices(shape)
    return (10000 * i + 100 * j + k).astype(np.float32)


def synthetic_volume(shape=SHAPE, spacing=SPACING, origin=(-10.0, -20.0, -5.0)) -> Volume:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return Volume(coded_array(shape), affine, modality="MR")


def synthetic_labels(volume: Volume) -> LabelMap:
    """A box of each tissue label in the middle of the volume."""
    arr = np.zeros(volume.shape, np.uint8)
    nx, ny, nz = volume.shape
    arr[nx // 4: 3 * nx // 4, ny // 4: 3 * ny // 4, 2: nz - 2] = 2
    arr[nx // 3: 2 * nx // 3, ny // 3: 2 * ny // 3, 3: nz - 3] = 3
    arr[nx // 2 - 1: nx // 2 + 1, ny // 2 - 1: ny // 2 + 1, :] = 1
    return LabelMap.on_grid_of(volume, arr, labels=BRAIN_TISSUE_LABELS)


def write_nifti(path, array, affine) -> str:
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return str(path)


# -- events -----------------------------------------------------------------------------
def pixel_of(view, ijk) -> QPoint:
    """Viewport pixel of the centre of voxel *ijk* in a SliceView."""
    geo = view.geometry_
    sx, sy = view._spacing
    point = QPointF((ijk[geo.x_axis] + 0.5) * sx, (ijk[geo.y_axis] + 0.5) * sy)
    scene = view.viewbox.mapViewToScene(point)
    return view.canvas.mapFromScene(scene)


def mouse(widget: QWidget, kind: str, pos: QPoint, button=Qt.MouseButton.LeftButton,
          mods=Qt.KeyboardModifier.NoModifier) -> None:
    """Send a press / move / release / double event with *button* held."""
    etype = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove,
             "release": QEvent.Type.MouseButtonRelease,
             "double": QEvent.Type.MouseButtonDblClick}[kind]
    held = Qt.MouseButton.NoButton if kind == "release" else button
    which = Qt.MouseButton.NoButton if kind == "move" else button
    local = QPointF(pos)
    ev = QMouseEvent(etype, local, QPointF(widget.mapToGlobal(pos)), which, held, mods)
    QApplication.sendEvent(widget, ev)


def drag(view, start: QPoint, end: QPoint, button=Qt.MouseButton.LeftButton,
         mods=Qt.KeyboardModifier.NoModifier, steps: int = 4) -> None:
    port = view.canvas.viewport()
    mouse(port, "press", start, button, mods)
    for n in range(1, steps + 1):
        p = start + (end - start) * (n / steps)
        mouse(port, "move", p, button, mods)
    mouse(port, "release", end, button, mods)


def click(view, pos: QPoint, mods=Qt.KeyboardModifier.NoModifier) -> None:
    port = view.canvas.viewport()
    mouse(port, "press", pos, Qt.MouseButton.LeftButton, mods)
    mouse(port, "release", pos, Qt.MouseButton.LeftButton, mods)


def wheel(view, notches: int, pos: QPoint | None = None,
          mods=Qt.KeyboardModifier.NoModifier) -> None:
    port = view.canvas.viewport()
    pos = pos or port.rect().center()
    ev = QWheelEvent(QPointF(pos), QPointF(port.mapToGlobal(pos)), QPoint(0, 0),
                     QPoint(0, 120 * notches), Qt.MouseButton.NoButton, mods,
                     Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(port, ev)


def to_array(image: QImage) -> np.ndarray:
    """An RGB ``uint8`` array of a QImage (or a QPixmap's image)."""
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()
