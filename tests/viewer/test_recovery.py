"""Never lose work: crash recovery from the edit journal (a real process killed
with SIGKILL), the journal's life cycle, the unsaved-changes prompts, and the
saved mask's geometry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from viewer_testing import click, pixel_of, synthetic_labels, synthetic_volume, write_nifti

from engine import io as engine_io
from engine.editing.journal import EditJournal, default_journal_dir, replay
from engine.editing.kernels import paint

pytestmark = pytest.mark.gui

HERE = Path(__file__).resolve().parent
WAIT = 20000


@pytest.fixture
def files(tmp_path):
    vol = synthetic_volume()
    labels = synthetic_labels(vol).array.copy()
    labels[labels == 3] = 0
    return {
        "image": write_nifti(tmp_path / "image.nii.gz", vol.array, vol.affine),
        "labels": write_nifti(tmp_path / "labels.nii.gz", labels, vol.affine),
        "other": write_nifti(tmp_path / "other.nii.gz", vol.array[::-1].copy(), vol.affine),
    }


def run_child_and_kill(tmp_path, image, labels="-"):
    """The app in a child process paints, then is killed with SIGKILL; returns its mask."""
    expected = tmp_path / "expected.npy"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    with open(tmp_path / "child.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "recovery_child.py"), image, labels, str(expected)],
            stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=HERE.parents[1])
        watchdog = threading.Timer(240, proc.kill)
        watchdog.start()
        try:
            line = proc.stdout.readline()
            assert line.strip() == "ready", (tmp_path / "child.log").read_text()[-3000:]
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return np.load(expected)


def journal_info(window, image):
    vol = window.layers.image.volume if window.layers.image else engine_io.load(image)
    return EditJournal.find(None, image_path=image, shape=vol.shape, affine=vol.affine)


@pytest.mark.slow
def test_edits_survive_sigkill_and_are_recovered(window, qtbot, files, tmp_path):
    expected = run_child_and_kill(tmp_path, files["image"])
    assert (expected == 4).any() and (expected == 3).any()
    info = journal_info(window, files["image"])
    assert info is not None and info.n_steps == 4  # 3 strokes + 1 fill; not the open stroke
    with qtbot.waitSignal(window.recovery.recovered, timeout=WAIT) as blocker:
        window.open_image(files["image"])
    assert blocker.args == [4]
    assert window.dialogs.recover_asked == [("image.nii.gz", 4)]
    np.testing.assert_array_equal(window.edits.labels, expected)
    assert window.layers.edited.modified and window.windowTitle().startswith("image.nii.gz*")
    assert window.edits.history.undo_name == "Recover 4 edits"
    # The recovered edits are journalled again at once: a second crash loses nothing.
    info = journal_info(window, files["image"])
    restored = np.zeros_like(expected)
    replay(info.path, restored)
    np.testing.assert_array_equal(restored, expected)
    # Undo goes back to the empty mask; a clean close deletes the journal.
    window.edits.undo()
    assert not window.edits.labels.any()
    window.dialogs.unsaved = "discard"
    assert window.close()
    assert journal_info(window, files["image"]) is None


@pytest.mark.slow
def test_recovery_replays_onto_the_label_file_that_was_being_edited(window, qtbot, files,
                                                                      tmp_path):
    expected = run_child_and_kill(tmp_path, files["image"], files["labels"])
    base = engine_io.load_labels(files["labels"]).array
    assert (expected != base).any() and (expected[base == 1] != 0).all()
    with qtbot.waitSignal(window.recovery.recovered, timeout=WAIT):
        window.open_paths(files["image"], labels=files["labels"])  # as `delineo IMG --labels`
    np.testing.assert_array_equal(window.edits.labels, expected)
    assert window.layers.edited.path == Path(files["labels"])


def _journal_with_one_step(image, base_labels=None):
    vol = engine_io.load(image)
    labels = np.zeros(vol.shape, np.uint8)
    if base_labels is not None:
        labels = engine_io.load_labels(base_labels).array.copy()
    journal = EditJournal.create(None, image_path=image, shape=vol.shape, affine=vol.affine,
                                 dtype=np.uint8, base_labels=base_labels)
    journal.append(paint(labels, (5, 5, 5), radius_mm=3, value=2, spacing=vol.spacing))
    journal.close(discard=False)
    return journal.path, labels


def test_declining_recovery_deletes_the_journal(window, qtbot, files):
    path, _ = _journal_with_one_step(files["image"])
    window.dialogs.recover = False
    with qtbot.waitSignal(window.image_shown, timeout=WAIT):
        window.open_image(files["image"])
    qtbot.waitUntil(lambda: bool(window.dialogs.recover_asked), timeout=WAIT)
    assert not path.exists()
    assert not window.edits.labels.any()


def test_a_changed_base_file_is_not_replayed(window, qtbot, files):
    path, _ = _journal_with_one_step(files["image"], files["labels"])
    arr = engine_io.load_labels(files["labels"]).array.copy()
    arr[0, 0, 0] = 3
    write_nifti(files["labels"], arr, synthetic_volume().affine)  # changed since
    with qtbot.waitSignal(window.image_shown, timeout=WAIT):
        window.open_image(files["image"])
    qtbot.waitUntil(lambda: bool(window.dialogs.errors), timeout=WAIT)
    assert window.dialogs.errors[0][0] == "Cannot recover the unsaved edits"
    assert not path.exists() and path.with_suffix(".stale").exists()
    assert window.dialogs.recover_asked == []


def paint_stroke_in(window, i):
    window.set_tool("brush")
    ax = window.views["axial"]
    k = window.cursor.position[2]
    click(ax, pixel_of(ax, (i, 10, k)))


def test_journal_follows_saves_and_a_clean_close_deletes_it(window, qtbot, files, tmp_path):
    with qtbot.waitSignal(window.image_shown, timeout=WAIT):
        window.open_image(files["image"])
    window.grid.render_pending()
    assert journal_info(window, files["image"]) is None  # no edit, no journal
    paint_stroke_in(window, 5)
    info = journal_info(window, files["image"])
    assert info.n_steps == 1 and info.base_labels is None
    assert info.path.parent == default_journal_dir()
    assert str(info.path).startswith(os.environ["DELINEO_DATA_DIR"])
    window.dialogs.save_path = str(tmp_path / "mask.nii.gz")
    with qtbot.waitSignal(window.io.saved, timeout=WAIT):
        window.save_labels()
        paint_stroke_in(window, 15)  # while the file is being written
    info = journal_info(window, files["image"])
    assert info.n_steps == 1 and info.base_labels == str(tmp_path / "mask.nii.gz")
    assert window.layers.edited.modified  # the file lacks the second stroke
    restored = engine_io.load_labels(tmp_path / "mask.nii.gz").array.copy()
    replay(info.path, restored)
    np.testing.assert_array_equal(restored, window.edits.labels)
    window.dialogs.unsaved = "discard"
    assert window.close()
    assert journal_info(window, files["image"]) is None


def test_unsaved_changes_prompt_on_close_and_on_opening_another_image(window, qtbot, files,
                                                                         tmp_path):
    with qtbot.waitSignal(window.image_shown, timeout=WAIT):
        window.open_image(files["image"])
    window.grid.render_pending()
    paint_stroke_in(window, 5)
    window.dialogs.unsaved = "cancel"
    assert not window.close()
    window.open_image(files["other"])
    assert not window.runner.running and window.layers.image.name == "image.nii.gz"
    window.open_labels(files["labels"])  # would replace the edited mask
    assert not window.runner.running and window.layers.edited.path is None
    # "Save": the mask is written, then the other image opens.
    window.dialogs.unsaved = "save"
    window.dialogs.save_path = str(tmp_path / "saved.nii.gz")
    painted = window.edits.labels.copy()
    with qtbot.waitSignal(window.image_shown, timeout=WAIT):
        window.open_image(files["other"])
    assert window.layers.image.name == "other.nii.gz"
    np.testing.assert_array_equal(engine_io.load_labels(tmp_path / "saved.nii.gz").array, painted)
    # "Save" on close: saved, then the window closes by itself.
    paint_stroke_in(window, 8)
    window.dialogs.save_path = str(tmp_path / "saved2.nii.gz")
    assert not window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=WAIT)
    assert (tmp_path / "saved2.nii.gz").exists()


def test_saved_mask_lands_on_the_image_in_its_original_geometry(window, qtbot, tmp_path):
    # A file stored L-P-S with the axes permuted (k, i, j): nothing like the canonical order.
    data = np.random.default_rng(0).random((12, 24, 30)).astype(np.float32)
    affine = np.array([[0, -1.0, 0, 20], [0, 0, -1.0, 30], [2.5, 0, 0, -5], [0, 0, 0, 1]])
    image = write_nifti(tmp_path / "oblique.nii.gz", data, affine)
    with qtbot.waitSignal(window.image_shown, timeout=WAIT):
        window.open_image(image)
    window.grid.render_pending()
    window.edits.set_options(brush_size_mm=0.5)
    window.select_label(2)
    paint_stroke_in(window, 4)
    painted = np.argwhere(window.edits.labels == 2)
    assert len(painted) == 1
    world = window.layers.image.volume.voxel_to_world(painted[0])
    window.dialogs.save_path = str(tmp_path / "mask.nii.gz")
    with qtbot.waitSignal(window.io.saved, timeout=WAIT):
        window.save_labels()
    saved = nib.load(tmp_path / "mask.nii.gz")
    np.testing.assert_allclose(saved.affine, affine, atol=1e-5)
    assert saved.shape == data.shape
    out = np.asarray(saved.dataobj)
    file_index = np.rint(np.linalg.inv(affine) @ [*world, 1.0])[:3].astype(int)
    assert out[tuple(file_index)] == 2 and int((out != 0).sum()) == 1
