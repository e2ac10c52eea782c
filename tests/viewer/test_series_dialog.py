"""A DICOM folder with several series: the series dialog lists them and opens the choice."""

from __future__ import annotations

import numpy as np
import pytest

from tests.engine.dicom_factory import write_series

pytestmark = pytest.mark.gui

WAIT = 15000


@pytest.fixture
def two_series(tmp_path):
    """A folder with a 12-slice and a 6-slice series of different values, and a broken one."""
    folder = tmp_path / "study"
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    big = np.full((20, 24, 12), 100, np.int16)
    small = np.full((16, 16, 6), 700, np.int16)
    write_series(folder / "a", big, affine, modality="MR", description="T1 big",
                 series_number=1)
    write_series(folder / "b", small, affine, modality="MR", description="T2 small",
                 series_number=2)
    broken = write_series(folder / "c", np.zeros((8, 8, 20), np.int16), affine,
                          modality="MR", description="broken", series_number=3)
    for path in broken:  # truncated: the headers already show the pixels are missing
        path.write_bytes(path.read_bytes()[:-100])
    return folder


def _open(window, qtbot, folder):
    with qtbot.waitSignal(window.image_shown, timeout=WAIT):
        window.open_image(folder)


def test_the_dialog_lists_every_series_and_preselects_the_largest_readable(
        window, qtbot, dialogs, two_series):
    _open(window, qtbot, two_series)
    [(name, infos, default)] = dialogs.series_asked
    assert name == "study"
    assert [i.description for i in infos] == ["broken", "T1 big", "T2 small"]
    assert infos[0].problem  # the largest series is broken: listed, not preselected
    assert default == 1
    vol = window.layers.image.volume
    assert vol.shape == (20, 24, 12) and float(vol.array.max()) == 100


def test_choosing_another_series_opens_it(window, qtbot, dialogs, two_series):
    dialogs.series_choice = 2
    _open(window, qtbot, two_series)
    vol = window.layers.image.volume
    assert vol.shape == (16, 16, 6) and float(vol.array.min()) == 700
    assert vol.metadata["series_description"] == "T2 small"


def test_cancelling_the_dialog_opens_nothing(window, qtbot, dialogs, two_series):
    dialogs.series_choice = None
    notes: list[str] = []
    window.io.message.connect(notes.append)
    window.open_image(two_series)
    qtbot.waitUntil(lambda: bool(dialogs.series_asked) and not window.runner.running,
                    timeout=WAIT)
    assert window.layers.image is None
    assert notes and notes[-1] == "Opening study cancelled"


def test_the_real_dialog_marks_unreadable_series(qtbot, two_series):
    from engine.io.dicom import list_series
    from viewer.dialogs import SeriesDialog

    infos = list_series(two_series)
    dialog = SeriesDialog("study", infos, 1)
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == 3
    assert dialog.table.item(0, 5).text().startswith("cannot be read:")
    assert dialog.table.item(1, 5).text() == "readable"
    assert dialog.chosen() == 1
    dialog.table.selectRow(2)
    assert dialog.chosen() == 2
    from PySide6.QtCore import Qt

    assert not dialog.table.item(0, 0).flags() & Qt.ItemFlag.ItemIsSelectable
    assert dialog.table.item(2, 0).flags() & Qt.ItemFlag.ItemIsSelectable
