"""Fixtures of the viewer tests: offscreen Qt, a temporary settings store, scripted
dialogs, small synthetic volumes, a brain-like phantom and real Qt mouse events.

Every helper is a fixture (test modules import nothing from here): factories
such as ``synthetic_volume()`` and ``tissue_phantom(seed=1)`` build data, and
``pixel_of``, ``mouse``, ``drag``, ``click``, ``wheel`` and ``to_array`` are the
functions that drive and read the widgets.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Callable

import nibabel as nib
import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QWidget

from engine.core.volume import BRAIN_TISSUE_LABELS, LabelMap, Volume


# -- the application ---------------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def _pyqtgraph_options():
    from viewer.app import configure_pyqtgraph

    configure_pyqtgraph()


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path, monkeypatch):
    """Edit journals (crash recovery) go to a temporary folder, never the user's."""
    monkeypatch.setenv("DELINEO_DATA_DIR", str(tmp_path / "delineo-data"))


class ScriptedDialogs:
    """Stands in for viewer.dialogs.Dialogs: records messages, gives set answers."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.warnings: list[tuple[str, str]] = []
        self.series_asked: list[tuple[str, list, int]] = []
        #: The answer of the series dialog: "default", an index, or None (cancel).
        self.series_choice: int | str | None = "default"
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

    def warning(self, title: str, message: str) -> None:
        self.warnings.append((title, message))

    def choose_series(self, name: str, infos, default: int) -> int | None:
        self.series_asked.append((name, list(infos), default))
        return default if self.series_choice == "default" else self.series_choice

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


@pytest.fixture
def settings(tmp_path):
    from PySide6.QtCore import QSettings

    from viewer.settings import Settings

    return Settings(QSettings(str(tmp_path / "delineo.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def dialogs():
    return ScriptedDialogs()


@pytest.fixture
def window(qtbot, settings, dialogs):
    from viewer.main_window import MainWindow

    win = MainWindow(settings=settings, dialogs=dialogs)
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.runner.shutdown(5000)


# -- synthetic data --------------------------------------------------------------------
class SyntheticVolumes:
    """``synthetic_volume()``: an MR volume whose voxel (i, j, k) holds 10000 i + 100 j + k.

    Every slice is recognisable. ``shape`` and ``spacing`` are the defaults.
    """

    shape = (24, 30, 12)
    spacing = (1.0, 1.0, 2.5)

    def __call__(self, shape: tuple[int, int, int] | None = None,
                 spacing: tuple[float, float, float] | None = None,
                 origin: tuple[float, float, float] = (-10.0, -20.0, -5.0)) -> Volume:
        i, j, k = np.indices(shape or self.shape)
        affine = np.diag([*(spacing or self.spacing), 1.0])
        affine[:3, 3] = origin
        return Volume((10000 * i + 100 * j + k).astype(np.float32), affine, modality="MR")


def _synthetic_labels(volume: Volume) -> LabelMap:
    """A box of each tissue label in the middle of *volume*."""
    arr = np.zeros(volume.shape, np.uint8)
    nx, ny, nz = volume.shape
    arr[nx // 4: 3 * nx // 4, ny // 4: 3 * ny // 4, 2: nz - 2] = 2
    arr[nx // 3: 2 * nx // 3, ny // 3: 2 * ny // 3, 3: nz - 3] = 3
    arr[nx // 2 - 1: nx // 2 + 1, ny // 2 - 1: ny // 2 + 1, :] = 1
    return LabelMap.on_grid_of(volume, arr, labels=BRAIN_TISSUE_LABELS)


def _write_nifti(path, array: np.ndarray, affine: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return str(path)


#: Mean intensity of background, CSF, gray matter and white matter in the phantom (T1-like).
PHANTOM_INTENSITY = np.array([5.0, 40.0, 90.0, 140.0], np.float32)
PHANTOM_SHAPE = (40, 40, 28)


def _tissue_phantom(seed: int = 0, noise: float = 6.0) -> tuple[Volume, LabelMap]:
    """Nested ellipsoid shells (CSF outside, GM, WM core) with Gaussian noise, 1 mm voxels."""
    i, j, k = np.indices(PHANTOM_SHAPE).astype(np.float32)
    c = [(n - 1) / 2.0 for n in PHANTOM_SHAPE]
    r = np.sqrt(((i - c[0]) / 1.0) ** 2 + ((j - c[1]) / 1.1) ** 2 + ((k - c[2]) / 0.75) ** 2)
    labels = np.zeros(PHANTOM_SHAPE, np.uint8)
    labels[r < 17.0] = 1
    labels[r < 14.0] = 2
    labels[r < 8.5] = 3
    rng = np.random.default_rng(seed)
    image = PHANTOM_INTENSITY[labels] + rng.normal(0.0, noise, PHANTOM_SHAPE).astype(np.float32)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = (-20.0, -22.0, -14.0)
    volume = Volume(image.astype(np.float32), affine, modality="MR")
    return volume, LabelMap.on_grid_of(volume, labels, labels=BRAIN_TISSUE_LABELS)


@pytest.fixture
def synthetic_volume() -> SyntheticVolumes:
    """Factory: ``synthetic_volume(shape=..., spacing=..., origin=...)`` (see SyntheticVolumes)."""
    return SyntheticVolumes()


@pytest.fixture
def synthetic_labels() -> Callable[[Volume], LabelMap]:
    """Factory: ``synthetic_labels(volume)``, a box of each tissue label in its middle."""
    return _synthetic_labels


@pytest.fixture
def write_nifti() -> Callable[..., str]:
    """``write_nifti(path, array, affine)`` writes a NIfTI file and returns its path."""
    return _write_nifti


@pytest.fixture
def tissue_phantom() -> Callable[..., tuple[Volume, LabelMap]]:
    """Factory: ``tissue_phantom(seed=0, noise=6.0)`` -> (T1-like volume, its tissue labels)."""
    return _tissue_phantom


@pytest.fixture
def phantom_window(window, tissue_phantom):
    """The window showing the tissue phantom with its ground truth, rendered."""
    volume, truth = tissue_phantom()
    window.show_volume(volume, name="phantom", truth=truth)
    window.grid.render_pending()
    return window


@pytest.fixture
def one_torch_thread():
    """One torch thread: small volumes, and no OpenMP spin-waits on a shared, busy CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def loaded(window, synthetic_volume, synthetic_labels):
    """The window showing the synthetic volume and label boxes as the edited mask."""
    vol = synthetic_volume()
    window.show_volume(vol, name="synthetic", labels=synthetic_labels(vol))
    window.grid.render_pending()
    return window


@pytest.fixture
def nifti_files(tmp_path, synthetic_volume, synthetic_labels, write_nifti):
    """A synthetic image and label maps on disk: same grid, and a coarser grid."""
    vol = synthetic_volume()
    image = write_nifti(tmp_path / "image.nii.gz", vol.array, vol.affine)
    labels = write_nifti(tmp_path / "labels.nii.gz", synthetic_labels(vol).array, vol.affine)
    coarse_aff = vol.affine.copy()
    coarse_aff[:3, :3] *= 2.0
    small = synthetic_labels(vol).array[::2, ::2, ::2].copy()
    mismatched = write_nifti(tmp_path / "coarse_labels.nii.gz", small, coarse_aff)
    return {"image": image, "labels": labels, "mismatched": mismatched, "volume": vol}


# -- Qt events and pixels ----------------------------------------------------------------
def _pixel_of(view, ijk) -> QPoint:
    """Viewport pixel of the centre of voxel *ijk* in a SliceView."""
    geo = view.geometry_
    sx, sy = view._spacing
    point = QPointF((ijk[geo.x_axis] + 0.5) * sx, (ijk[geo.y_axis] + 0.5) * sy)
    scene = view.viewbox.mapViewToScene(point)
    return view.canvas.mapFromScene(scene)


def _mouse(widget: QWidget, kind: str, pos: QPoint, button=Qt.MouseButton.LeftButton,
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


def _drag(view, start: QPoint, end: QPoint, button=Qt.MouseButton.LeftButton,
          mods=Qt.KeyboardModifier.NoModifier, steps: int = 4) -> None:
    """Press at *start*, move to *end* in *steps*, release (in a SliceView's viewport)."""
    port = view.canvas.viewport()
    _mouse(port, "press", start, button, mods)
    for n in range(1, steps + 1):
        _mouse(port, "move", start + (end - start) * (n / steps), button, mods)
    _mouse(port, "release", end, button, mods)


def _click(view, pos: QPoint, mods=Qt.KeyboardModifier.NoModifier) -> None:
    """A left click at *pos* in a SliceView's viewport."""
    port = view.canvas.viewport()
    _mouse(port, "press", pos, Qt.MouseButton.LeftButton, mods)
    _mouse(port, "release", pos, Qt.MouseButton.LeftButton, mods)


def _wheel(view, notches: int, pos: QPoint | None = None,
           mods=Qt.KeyboardModifier.NoModifier) -> None:
    """Turn the wheel by *notches* over a SliceView's viewport (its centre by default)."""
    port = view.canvas.viewport()
    pos = pos or port.rect().center()
    ev = QWheelEvent(QPointF(pos), QPointF(port.mapToGlobal(pos)), QPoint(0, 0),
                     QPoint(0, 120 * notches), Qt.MouseButton.NoButton, mods,
                     Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(port, ev)


def _to_array(image: QImage) -> np.ndarray:
    """An RGB ``uint8`` array of a QImage (or a QPixmap's image)."""
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()


@pytest.fixture
def pixel_of():
    """``pixel_of(view, ijk)``: the viewport pixel of the centre of voxel *ijk*."""
    return _pixel_of


@pytest.fixture
def mouse():
    """``mouse(widget, "press" | "move" | "release" | "double", pos, button=, mods=)``."""
    return _mouse


@pytest.fixture
def drag():
    """``drag(view, start, end, button=, mods=, steps=4)``: a real mouse drag."""
    return _drag


@pytest.fixture
def click():
    """``click(view, pos, mods=)``: a left click."""
    return _click


@pytest.fixture
def wheel():
    """``wheel(view, notches, pos=None, mods=)``: wheel notches over a view."""
    return _wheel


@pytest.fixture
def to_array():
    """``to_array(qimage)``: its pixels as an RGB ``uint8`` array (rows, columns, 3)."""
    return _to_array
