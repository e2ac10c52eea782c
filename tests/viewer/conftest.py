"""Fixtures of the viewer tests: offscreen Qt, a temporary settings store,
scripted dialogs and small synthetic volumes."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from viewer_testing import ScriptedDialogs, synthetic_labels, synthetic_volume, write_nifti


@pytest.fixture(scope="session", autouse=True)
def _pyqtgraph_options():
    from viewer.app import configure_pyqtgraph

    configure_pyqtgraph()


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path, monkeypatch):
    """Edit journals (crash recovery) go to a temporary folder, never the user's."""
    monkeypatch.setenv("DELINEO_DATA_DIR", str(tmp_path / "delineo-data"))


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


@pytest.fixture
def loaded(window, qtbot):
    """The window showing the synthetic volume and label boxes as the edited mask."""
    vol = synthetic_volume()
    window.show_volume(vol, name="synthetic", labels=synthetic_labels(vol))
    window.grid.render_pending()
    return window


@pytest.fixture
def nifti_files(tmp_path):
    """A synthetic image and label maps on disk: same grid, and a coarser grid."""
    vol = synthetic_volume()
    image = write_nifti(tmp_path / "image.nii.gz", vol.array, vol.affine)
    labels = write_nifti(tmp_path / "labels.nii.gz", synthetic_labels(vol).array, vol.affine)
    coarse_aff = vol.affine.copy()
    coarse_aff[:3, :3] *= 2.0
    small = synthetic_labels(vol).array[::2, ::2, ::2].copy()
    mismatched = write_nifti(tmp_path / "coarse_labels.nii.gz", small, coarse_aff)
    return {"image": image, "labels": labels, "mismatched": mismatched, "volume": vol}
