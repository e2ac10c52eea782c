"""Never lose work: crash recovery from the edit journal (a real process killed
with SIGKILL; two Delineos on the same image), the journal's life cycle, a
journal that cannot be written, the unsaved-changes prompts, and the saved
mask's geometry."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from engine import io as engine_io
from engine.editing.journal import EditJournal, default_journal_dir, find_journals, replay
from engine.editing.kernels import paint
from viewer.recovery import JOURNAL_OFF_TITLE

pytestmark = pytest.mark.gui

HERE = Path(__file__).resolve().parent
WAIT = 20000


@pytest.fixture
def files(tmp_path, synthetic_volume, synthetic_labels, write_nifti):
    vol = synthetic_volume()
    labels = synthetic_labels(vol).array.copy()
    labels[labels == 3] = 0
    return {
        "image": write_nifti(tmp_path / "image.nii.gz", vol.array, vol.affine),
        "labels": write_nifti(tmp_path / "labels.nii.gz", labels, vol.affine),
        "other": write_nifti(tmp_path / "other.nii.gz", vol.array[::-1].copy(), vol.affine),
    }


def start_child(folder, image, labels="-"):
    """The app in a child process paints and waits (alive); returns it and its mask file."""
    folder.mkdir(exist_ok=True)
    expected = folder / "expected.npy"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    with open(folder / "child.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "recovery_child.py"), image, labels, str(expected)],
            stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=HERE.parents[1])
    watchdog = threading.Timer(240, proc.kill)
    watchdog.start()
    try:
        line = proc.stdout.readline()
    finally:
        watchdog.cancel()
    if line.strip() != "ready":
        kill(proc)
        pytest.fail((folder / "child.log").read_text()[-3000:])
    return proc, expected


def kill(proc):
    """SIGKILL: no clean-up of any kind in the child."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def run_child_and_kill(tmp_path, image, labels="-"):
    """The app in a child process paints, then is killed with SIGKILL; returns its mask."""
    proc, expected = start_child(tmp_path / "child", image, labels)
    kill(proc)
    return np.load(expected)


def journals(image):
    """Every journal of *image* on disk (live or not), newest first."""
    vol = engine_io.load(image)
    return find_journals(None, image_path=image, shape=vol.shape, affine=vol.affine)


def journal_info(window, image):
    """The journal a recovery would offer (a Delineo no longer running left it)."""
    vol = window.layers.image.volume if window.layers.image else engine_io.load(image)
    return EditJournal.find(None, image_path=image, shape=vol.shape, affine=vol.affine)


def own_journal(window, image):
    """This window's own (live) journal of *image*, as found on disk, or None."""
    own = window.edits.journal
    found = [info for info in journals(image) if own is not None and info.path == own.path]
    assert all(info.live for info in found)
    return found[0] if found else None


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
    assert journal_info(window, files["image"]) is None  # the dead one is gone
    info = own_journal(window, files["image"])
    restored = np.zeros_like(expected)
    replay(info.path, restored)
    np.testing.assert_array_equal(restored, expected)
    # Undo goes back to the empty mask; a clean close deletes the journal.
    window.edits.undo()
    assert not window.edits.labels.any()
    window.dialogs.unsaved = "discard"
    assert window.close()
    assert journals(files["image"]) == []


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


@pytest.mark.slow
def test_two_delineos_on_one_image_keep_their_own_journals(window, qtbot, files, tmp_path):
    first, first_mask = start_child(tmp_path / "first", files["image"])
    try:
        second, second_mask = start_child(tmp_path / "second", files["image"])
    except BaseException:
        kill(first)
        raise
    try:
        # Both journals are on disk, each with its own four steps.
        found = journals(files["image"])
        assert len(found) == 2 and all(info.live for info in found)
        assert {info.pid for info in found} == {first.pid, second.pid}
        assert [info.n_steps for info in found] == [4, 4]
        # A third Delineo opening the image offers neither, and touches neither.
        with qtbot.waitSignal(window.image_shown, timeout=WAIT):
            window.open_image(files["image"])
        assert not window.recovery.check()
        assert window.dialogs.recover_asked == []
        assert sorted(i.path for i in journals(files["image"])) == sorted(i.path for i in found)
    finally:
        kill(first)
        kill(second)
    # Both died: each journal replays to what its own process had painted.
    by_pid = {info.pid: info for info in journals(files["image"])}
    assert not any(info.live for info in by_pid.values())
    for proc, mask_file in ((first, first_mask), (second, second_mask)):
        restored = np.zeros_like(np.load(mask_file))
        assert replay(by_pid[proc.pid].path, restored) == 4
        np.testing.assert_array_equal(restored, np.load(mask_file))
    # Recovery offers the newest; the other one stays for a later opening.
    newest = journals(files["image"])[0]
    expected = np.load(second_mask if newest.pid == second.pid else first_mask)
    with qtbot.waitSignal(window.recovery.recovered, timeout=WAIT):
        assert window.recovery.check()
    np.testing.assert_array_equal(window.edits.labels, expected)
    assert not newest.path.exists()
    left = journal_info(window, files["image"])
    assert left is not None and left.pid in {first.pid, second.pid} - {newest.pid}


def test_a_journal_that_cannot_be_written_never_stops_editing(window, qtbot, files, tmp_path,
                                                              paint_stroke_in):
    messages = []
    window.edits.message.connect(messages.append)
    with qtbot.waitSignal(window.image_shown, timeout=WAIT):
        window.open_image(files["image"])
    window.grid.render_pending()
    paint_stroke_in(window, 5)
    assert own_journal(window, files["image"]).n_steps == 1
    # The journal folder becomes unusable (a file in its place): the reset after a save fails.
    folder = default_journal_dir()
    shutil.rmtree(folder)
    folder.write_text("not a folder")
    window.dialogs.save_path = str(tmp_path / "mask.nii.gz")
    with qtbot.waitSignal(window.io.saved, timeout=WAIT):
        window.save_labels()
    # Editing goes on: strokes land, are undoable, and nothing raises.
    for i in (9, 13):
        before = window.edits.labels.copy()
        paint_stroke_in(window, i)
        assert (window.edits.labels != before).any()
    assert len(window.edits.history) == 3 and window.edits.journal is None
    # The user is told, once: in the status bar and in a dialog.
    qtbot.waitUntil(lambda: bool(window.dialogs.errors), timeout=WAIT)
    assert [title for title, _text in window.dialogs.errors] == [JOURNAL_OFF_TITLE]
    assert "crash journal" in window.dialogs.errors[0][1]
    assert sum("crash journal could not be written" in m for m in messages) == 1
    # The folder is usable again: the next step opens a journal holding the whole mask.
    folder.unlink()
    paint_stroke_in(window, 17)
    assert window.edits.journal is not None and "The crash journal works again" in messages
    restored = np.zeros_like(window.edits.labels)
    replay(own_journal(window, files["image"]).path, restored)
    np.testing.assert_array_equal(restored, window.edits.labels)
    window.edits.undo()  # and it keeps following every step
    restored[...] = 0
    replay(window.edits.journal.path, restored)
    np.testing.assert_array_equal(restored, window.edits.labels)
    assert len(window.dialogs.errors) == 1


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


def test_a_changed_base_file_is_not_replayed(window, qtbot, files, synthetic_volume, write_nifti):
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


@pytest.fixture
def paint_stroke_in(pixel_of, click):
    """``paint_stroke_in(window, i)``: one brush click at voxel (i, 10) of the axial slice."""

    def run(window, i):
        window.set_tool("brush")
        ax = window.views["axial"]
        k = window.cursor.position[2]
        click(ax, pixel_of(ax, (i, 10, k)))

    return run


def test_journal_follows_saves_and_a_clean_close_deletes_it(window, qtbot, files, tmp_path,
                                                            paint_stroke_in):
    with qtbot.waitSignal(window.image_shown, timeout=WAIT):
        window.open_image(files["image"])
    window.grid.render_pending()
    assert journals(files["image"]) == []  # no edit, no journal
    paint_stroke_in(window, 5)
    info = own_journal(window, files["image"])
    assert info.n_steps == 1 and info.base_labels is None
    assert journal_info(window, files["image"]) is None  # live: never offered
    assert info.path.parent == default_journal_dir()
    assert str(info.path).startswith(os.environ["DELINEO_DATA_DIR"])
    window.dialogs.save_path = str(tmp_path / "mask.nii.gz")
    with qtbot.waitSignal(window.io.saved, timeout=WAIT):
        window.save_labels()
        paint_stroke_in(window, 15)  # while the file is being written
    info = own_journal(window, files["image"])
    assert info.n_steps == 1 and info.base_labels == str(tmp_path / "mask.nii.gz")
    assert window.layers.edited.modified  # the file lacks the second stroke
    restored = engine_io.load_labels(tmp_path / "mask.nii.gz").array.copy()
    replay(info.path, restored)
    np.testing.assert_array_equal(restored, window.edits.labels)
    window.dialogs.unsaved = "discard"
    assert window.close()
    assert journals(files["image"]) == []


def test_unsaved_changes_prompt_on_close_and_on_opening_another_image(window, qtbot, files,
                                                                         tmp_path, paint_stroke_in):
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


def test_saved_mask_lands_on_the_image_in_its_original_geometry(window, qtbot, tmp_path,
                                                                write_nifti, paint_stroke_in):
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
