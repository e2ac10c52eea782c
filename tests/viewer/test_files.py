"""Opening and saving files: background loading, mismatched grids, errors,
recent files, drag and drop, the command line."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from engine import io as engine_io

pytestmark = pytest.mark.gui

WAIT = 10000


def wait_idle(window, qtbot):
    qtbot.waitUntil(lambda: not window.runner.running, timeout=WAIT)


def open_image(window, qtbot, path):
    with qtbot.waitSignal(window.image_shown, timeout=WAIT):
        window.open_image(path)


def test_open_image_in_the_background(window, qtbot, nifti_files):
    busy = []
    window.runner.busy.connect(lambda b, text: busy.append((b, text)))
    with qtbot.waitSignal(window.image_shown, timeout=WAIT):
        window.open_image(nifti_files["image"])
        assert window.progress.isVisibleTo(window)  # progress shown while loading
        assert window.layers.image is None  # the GUI thread did not block on the read
    assert busy[0] == (True, "Opening image.nii.gz") and busy[-1] == (False, "")
    assert not window.progress.isVisibleTo(window)
    vol = window.layers.image.volume
    np.testing.assert_array_equal(vol.array, nifti_files["volume"].array)
    edited = window.layers.edited
    assert edited is not None and not edited.labelmap.array.any()  # empty mask to edit
    assert edited.labelmap.shape == vol.shape
    assert window.settings.recent_files()[0] == str(Path(nifti_files["image"]).resolve())
    assert window.windowTitle().startswith("image.nii.gz")


def test_open_labels_and_ground_truth_on_the_same_grid(window, qtbot, nifti_files,
                                                       synthetic_labels):
    open_image(window, qtbot, nifti_files["image"])
    with qtbot.waitSignal(window.io.labels_loaded, timeout=WAIT):
        window.open_labels(nifti_files["labels"])
    with qtbot.waitSignal(window.io.labels_loaded, timeout=WAIT):
        window.open_ground_truth(nifti_files["labels"])
    expected = synthetic_labels(nifti_files["volume"]).array
    np.testing.assert_array_equal(window.layers.edited.labelmap.array, expected)
    np.testing.assert_array_equal(window.layers.ground_truth.labelmap.array, expected)
    assert window.layers.edited.path == Path(nifti_files["labels"])
    assert window.dialogs.mismatches == [] and window.dialogs.errors == []


def test_mismatched_labels_are_not_overlaid_without_asking(window, qtbot, nifti_files):
    open_image(window, qtbot, nifti_files["image"])
    empty = window.layers.edited
    window.dialogs.resample = False
    window.open_labels(nifti_files["mismatched"])
    qtbot.waitUntil(lambda: bool(window.dialogs.mismatches), timeout=WAIT)
    wait_idle(window, qtbot)
    differences = window.dialogs.mismatches[0]
    assert any(d.startswith("shape") for d in differences)
    assert any(d.startswith("spacing") for d in differences)
    assert window.layers.edited is empty  # nothing was overlaid


def test_mismatched_labels_can_be_resampled(window, qtbot, nifti_files):
    open_image(window, qtbot, nifti_files["image"])
    window.dialogs.resample = True
    with qtbot.waitSignal(window.io.labels_loaded, timeout=WAIT):
        window.open_labels(nifti_files["mismatched"])
    layer = window.layers.edited
    assert len(window.dialogs.mismatches) == 1
    assert layer.labelmap.shape == window.layers.image.volume.shape
    assert set(np.unique(layer.labelmap.array)) <= {0, 1, 2, 3}
    assert any("resampled" in w for w in layer.labelmap.metadata.get("warnings", []))


@pytest.mark.parametrize("kind", ["text", "missing", "empty", "float_labels"])
def test_bad_files_give_an_error_dialog_and_the_app_keeps_running(
        window, qtbot, nifti_files, tmp_path, kind):
    if kind == "float_labels":
        open_image(window, qtbot, nifti_files["image"])
        vol = nifti_files["volume"]
        # An image with non-integer values is not a label map.
        bad = tmp_path / "smooth.nii.gz"
        nib.save(nib.Nifti1Image(vol.array * 0.5 + 0.25, vol.affine), str(bad))
        window.open_labels(bad)
    else:
        bad = tmp_path / "scan.nii"
        if kind == "text":
            bad.write_text("this is not an image\n" * 20)
        elif kind == "empty":
            bad.write_bytes(b"")
        window.open_image(bad)
    qtbot.waitUntil(lambda: bool(window.dialogs.errors), timeout=WAIT)
    _title, message = window.dialogs.errors[0]
    assert str(Path(bad).name) in message
    assert "\n" not in message
    wait_idle(window, qtbot)
    # Still usable: an image opens afterwards.
    open_image(window, qtbot, nifti_files["image"])
    assert window.layers.image is not None


def test_the_real_error_dialog_is_a_message_box(qtbot, settings, tmp_path):
    from viewer.main_window import MainWindow

    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.show()
    seen = []

    def close_box():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            seen.append(box.text())
            box.accept()
        else:
            QTimer.singleShot(50, close_box)

    QTimer.singleShot(50, close_box)
    window.open_image(tmp_path / "nothing-here.nii.gz")
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT)
    assert "nothing-here.nii.gz" in seen[0] and "no such file" in seen[0]
    window.runner.shutdown(2000)


def test_save_labels_round_trip(loaded, qtbot, tmp_path):
    layer = loaded.layers.edited
    layer.labelmap.array[0, 0, 0] = 2
    loaded.refresh_labels(layer, (slice(0, 1),) * 3)
    assert layer.modified
    target = tmp_path / "mask.nii.gz"
    loaded.dialogs.save_path = str(target)
    with qtbot.waitSignal(loaded.io.saved, timeout=WAIT):
        loaded.actions_["save_labels"].trigger()  # no path yet: asks where
    assert target.exists() and not layer.modified and layer.path == target
    back = engine_io.load_labels(target)
    np.testing.assert_array_equal(back.array, layer.labelmap.array)
    layer.labelmap.array[1, 1, 1] = 3
    loaded.refresh_labels(layer, (slice(1, 2),) * 3)
    loaded.dialogs.save_path = None
    with qtbot.waitSignal(loaded.io.saved, timeout=WAIT):
        loaded.save_labels()  # has a path now: saves there without asking
    assert engine_io.load_labels(target).array[1, 1, 1] == 3


def test_a_slicer_segmentation_opens_for_editing_and_saves_as_nifti(window, qtbot, tmp_path,
                                                                    nifti_files):
    """A .seg.nrrd opens as the edited mask with its segment names; saving asks where
    (NIfTI) and never writes over the Slicer file."""
    from engine.core.volume import LabelMap
    from engine.io.seg_nrrd import write_seg_nrrd

    open_image(window, qtbot, nifti_files["image"])
    image = window.layers.image.volume
    array = np.zeros(image.shape, np.uint8)
    array[2:6, 2:6, 2:6] = 3
    seg = write_seg_nrrd(LabelMap(array, image.affine, source=image.source),
                         tmp_path / "mask.seg.nrrd")
    before = seg.read_bytes()
    with qtbot.waitSignal(window.io.labels_loaded, timeout=WAIT):
        window.open_labels(str(seg))
    layer = window.layers.edited
    np.testing.assert_array_equal(layer.labelmap.array, array)
    assert layer.labelmap.labels.name(3) == "White matter"
    layer.labelmap.array[0, 0, 0] = 2
    window.refresh_labels(layer, (slice(0, 1),) * 3)
    target = tmp_path / "mask.nii.gz"
    window.dialogs.save_path = str(target)
    with qtbot.waitSignal(window.io.saved, timeout=WAIT):
        window.save_labels()  # its own file is a .seg.nrrd: asks where
    assert seg.read_bytes() == before and layer.path == target
    assert engine_io.load_labels(target).array[0, 0, 0] == 2


def test_unsaved_edits_are_asked_about(loaded, qtbot, nifti_files):
    layer = loaded.layers.edited
    loaded.refresh_labels(layer, None)
    loaded.dialogs.unsaved = "cancel"
    loaded.open_image(nifti_files["image"])
    assert not loaded.runner.running and loaded.layers.edited is layer
    loaded.dialogs.unsaved = "discard"
    open_image(loaded, qtbot, nifti_files["image"])
    assert loaded.layers.edited is not layer


def test_recent_files_menu(window, qtbot, nifti_files):
    open_image(window, qtbot, nifti_files["image"])
    window.menus.fill_recent()
    names = [a.text() for a in window.menus.recent.actions()]
    assert "image.nii.gz" in names
    window.menus.recent.actions()[0].trigger()
    qtbot.waitUntil(lambda: not window.runner.running, timeout=WAIT)
    missing = str(Path(nifti_files["image"]).with_name("gone.nii.gz"))
    window.settings.add_recent(missing)
    window.open_recent(str(Path(missing).resolve()))
    assert "no such file" in window.dialogs.errors[-1][1]
    assert str(Path(missing).resolve()) not in window.settings.recent_files()


def _drop(window, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    event = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, event)


def test_drag_and_drop_files(window, qtbot, nifti_files):
    with qtbot.waitSignal(window.image_shown, timeout=WAIT):
        _drop(window, [nifti_files["image"]])
    window.dialogs.drop_role = "truth"
    with qtbot.waitSignal(window.io.labels_loaded, timeout=WAIT):
        _drop(window, [nifti_files["labels"]])
    assert window.layers.ground_truth is not None


def test_dropped_folder_is_read_as_dicom(window, qtbot, tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "readme.txt").write_text("no images here")
    _drop(window, [folder])
    qtbot.waitUntil(lambda: bool(window.dialogs.errors), timeout=WAIT)
    assert "series" in window.dialogs.errors[0][1]


def test_command_line_opens_image_labels_and_ground_truth(window, qtbot, nifti_files):
    opened = []  # the role of each label map, in the order they arrive
    window.io.labels_loaded.connect(lambda layer: opened.append(layer.role))
    window.open_paths(nifti_files["image"], nifti_files["labels"], nifti_files["labels"])
    qtbot.waitUntil(lambda: len(opened) == 2, timeout=WAIT)
    assert opened == ["edit", "truth"]  # the labels to edit first, the ground truth last
    assert window.layers.edited.labelmap.array.any()
    assert [lay.role for lay in window.layers.labels] == ["edit", "truth"]


def test_command_line_arguments_are_checked():
    from viewer.app import build_parser, main

    args = build_parser().parse_args(["scan.nii", "--labels", "m.nii", "--ground-truth", "g.nii"])
    assert (args.image, args.labels, args.ground_truth, args.demo) == (
        "scan.nii", "m.nii", "g.nii", False)
    with pytest.raises(SystemExit):
        main(["--labels", "m.nii"])
    with pytest.raises(SystemExit):
        main(["scan.nii", "--demo"])


def test_labels_need_an_image_first(window):
    window.io.open_labels("whatever.nii.gz")
    assert window.dialogs.errors and "image" in window.dialogs.errors[0][1]
    assert not window.actions_["open_labels"].isEnabled()


def test_file_menu_actions_use_the_dialogs(window, qtbot, nifti_files):
    window.dialogs.open_path = nifti_files["image"]
    with qtbot.waitSignal(window.image_shown, timeout=WAIT):
        window.actions_["open_image"].trigger()
    window.dialogs.open_path = nifti_files["labels"]
    with qtbot.waitSignal(window.io.labels_loaded, timeout=WAIT):
        window.actions_["open_ground_truth"].trigger()
    assert window.layers.ground_truth is not None


def test_files_written_by_other_tools_keep_their_orientation(window, qtbot, tmp_path):
    # An LPS-ordered file: the viewer shows it canonically, saves back in LPS.
    data = np.arange(6 * 7 * 5, dtype=np.int16).reshape(6, 7, 5)
    affine = np.diag([-1.0, -1.0, 2.0, 1.0])
    path = tmp_path / "lps.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(path))
    open_image(window, qtbot, path)
    vol = window.layers.image.volume
    assert vol.axcodes == ("R", "A", "S")
    assert vol.array[0, 0, 0] == data[5, 6, 0]
    assert "LPS" in window.grid.info.text()


def test_opening_a_folder_of_several_series_says_which_was_taken(window, qtbot, tmp_path):
    import shutil

    import pydicom

    folder = tmp_path / "test_files"
    shutil.copytree(Path(pydicom.__file__).parent / "data" / "test_files", folder)
    notes: list[str] = []
    window.io.message.connect(notes.append)
    open_image(window, qtbot, folder)
    vol = window.layers.image.volume
    assert vol.metadata["n_series"] > 2
    [note] = [n for n in notes if n.startswith("Opened test_files")]
    assert f"'{vol.metadata['series_description']}'" in note
    assert f"of {vol.metadata['n_series']} series that can be read" in note
    assert f"{len(vol.metadata['skipped_series'])} larger series could not be read" in note


def test_label_names_from_a_file_name_the_layer_the_labels_panel_shows(window, qtbot,
                                                                       nifti_files, tmp_path):
    """File → Label Names from File…: ITK-SNAP label descriptions name the ground truth's
    values in the Labels panel; a value the file lacks is said;
    a bad file gives one dialog and changes nothing."""
    open_image(window, qtbot, nifti_files["image"])
    with qtbot.waitSignal(window.io.labels_loaded, timeout=WAIT):
        window.open_ground_truth(nifti_files["labels"])
    truth = window.layers.ground_truth
    window.labels_panel.set_layer(truth)
    names = tmp_path / "names.txt"
    names.write_text('    0  0 0 0   0 0 0 "Clear Label"\n'
                     '    1  10 20 30   1 1 1 "Ventricles and sulci"\n'
                     '    2  200 100 0   1 1 1 "Cortex"\n')
    messages = []
    window.io.message.connect(messages.append)
    window.dialogs.open_path = str(names)
    window.findChild(QAction, "menu_open_label_names").trigger()  # the File menu's entry
    qtbot.waitUntil(lambda: truth.labelmap.labels.name(2) == "Cortex", timeout=WAIT)
    panel = window.labels_panel
    shown = [panel.table.item(row, 0).text() for row in range(panel.table.rowCount())]
    assert shown[:2] == ["Ventricles and sulci", "Cortex"] and "Label 3" in shown
    assert truth.labelmap.labels.color(1) == (10, 20, 30)
    assert any("1 value(s) of the layer are not in it" in m and ": 3)" in m for m in messages)
    assert window.dialogs.errors == []
    (tmp_path / "bad.txt").write_text("2 Cortex 300 0 0\n")
    window.dialogs.open_path = str(tmp_path / "bad.txt")
    window.choose_label_names()
    qtbot.waitUntil(lambda: bool(window.dialogs.errors), timeout=WAIT)
    title, message = window.dialogs.errors[0]
    assert title == "Could not read the label names" and "line 1" in message
    assert truth.labelmap.labels.name(2) == "Cortex"  # unchanged
