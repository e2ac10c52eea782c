"""The Qt-free editing session: what the viewer's editing does, from a script; one crash
journal per session; a journal that fails never breaks an edit."""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest

from engine.core.metrics import confusion, surface_metrics
from engine.core.volume import Label, LabelMap, Volume
from engine.editing import kernels
from engine.editing.journal import (
    EditJournal,
    find_journals,
    journal_is_live,
    read_journal,
    replay,
)
from engine.editing.session import EditingSession

SHAPE = (24, 20, 12)
SPACING = (1.0, 1.5, 2.0)


def _grid():
    affine = np.diag([*SPACING, 1.0])
    rng = np.random.default_rng(0)
    image = Volume(rng.normal(100, 20, SHAPE).astype(np.float32), affine, modality="MR")
    truth = np.zeros(SHAPE, np.uint8)
    truth[4:16, 4:14, 2:10] = 1
    truth[8:12, 6:10, 4:8] = 2
    return image, LabelMap.on_grid_of(image, truth)


def _session(tmp_path, **kwargs):
    image, truth = _grid()
    mask = LabelMap.empty_like(image)
    session = EditingSession(journal_dir=tmp_path / "journal", **kwargs)
    session.set_target(mask, truth=truth, image=image, image_path=tmp_path / "t1.nii.gz")
    return session


def _stroke(session, a, b, value):
    session.selected_label = value
    session.begin_gesture("Brush stroke")
    mid = tuple((p + q) // 2 for p, q in zip(a, b, strict=True))
    for start, end in ((a, mid), (mid, b)):  # two segments of one drag
        session.record(kernels.paint_stroke(session.labels, start, end,
                                            **session.paint_kwargs(2)))
    return session.end_gesture()


def _listen(session):
    seen = []
    for name in ("changed", "mask_changed", "metrics_changed", "surface_changed",
                 "selected_label_changed", "message", "journal_problem"):
        getattr(session, name).connect(lambda *args, n=name: seen.append((n, args)))
    return seen


def test_a_script_edits_as_the_viewer_does(tmp_path):
    session = _session(tmp_path, journaling=False)
    seen = _listen(session)
    session.set_options(brush_size_mm=4.0)
    merged = _stroke(session, (6, 6, 5), (14, 6, 5), 1)
    assert merged is not None and len(session.history) == 1  # one drag, one step
    names = [n for n, _ in seen]
    assert names.count("mask_changed") == 2 and names.count("metrics_changed") == 2
    boxes = [args[0] for n, args in seen if n == "mask_changed"]
    assert all(len(box) == 3 and all(isinstance(s, slice) for s in box) for box in boxes)
    # The live metrics equal a recount of the whole volume.
    truth = session.truth
    counts = confusion(session.labels, truth, [1, 2])
    assert session.metrics()[1]["dice"] == pytest.approx(counts[1].dice)
    # A method's result is one step; undo and redo walk the steps.
    session.apply_labels(truth.copy(), "Use the reference")
    assert session.metrics()[2]["dice"] == 1.0 and len(session.history) == 2
    assert session.undo() and session.metrics()[1]["dice"] == pytest.approx(counts[1].dice)
    assert session.redo() and np.array_equal(session.labels, truth)
    assert ("message", ("Redo: Use the reference",)) in seen
    # Surface distances without a runner: computed at once.
    assert session.surface_stale
    session.selected_label = 2
    session.remove_small_islands(min_voxels=10**6)  # erases every component of label 2
    assert not (session.labels == 2).any()
    assert session.compute_surface_metrics() is None and not session.surface_stale
    hd, avg = surface_metrics(session.labels == 1, truth == 1, SPACING)
    assert session.metrics()[1]["hd95"] == pytest.approx(hd)
    assert session.metrics()[1]["assd"] == pytest.approx(avg)
    assert math.isinf(session.metrics()[2]["hd95"])
    assert not (tmp_path / "journal").exists()  # journaling=False: no file at all


def test_each_session_keeps_its_own_journal_and_a_live_one_is_never_offered(tmp_path):
    first, second = _session(tmp_path), _session(tmp_path)
    _stroke(first, (6, 6, 5), (14, 6, 5), 1)
    _stroke(second, (6, 12, 5), (14, 12, 5), 2)
    _stroke(second, (6, 16, 5), (14, 16, 5), 1)
    key = dict(image_path=tmp_path / "t1.nii.gz", shape=SHAPE, affine=first.volume.affine)
    found = find_journals(tmp_path / "journal", **key)
    assert sorted(info.n_steps for info in found) == [1, 2]
    assert first.journal.path != second.journal.path
    assert all(info.live for info in found)
    assert EditJournal.find(tmp_path / "journal", **key) is None
    # The first one ends without a clean close (as in a crash): its journal is offered ...
    first_labels = first.labels.copy()
    first.close(keep_journal=True)
    info = EditJournal.find(tmp_path / "journal", **key)
    assert info is not None and info.n_steps == 1 and not info.live
    restored = np.zeros(SHAPE, np.uint8)
    replay(info.path, restored)
    np.testing.assert_array_equal(restored, first_labels)
    # ... while the second one's, still open, is not, and keeps all its steps.
    assert journal_is_live(second.journal.path, read_journal(second.journal.path)[0])
    restored[...] = 0
    replay(second.journal.path, restored)
    np.testing.assert_array_equal(restored, second.labels)
    second.close()
    assert [i.path for i in find_journals(tmp_path / "journal", **key)] == [info.path]


def test_liveness_without_a_lock_falls_back_on_the_process_id(tmp_path):
    header = {"pid": os.getppid()}  # a journal written before locking, by a running process
    path = tmp_path / "old.journal"
    path.write_bytes(b"")
    assert journal_is_live(path, header)
    header["pid"] = 2**22 + 12345  # above Linux's pid_max: no such process
    assert not journal_is_live(path, header)
    header["host"] = "another-machine"  # never judged (nor deleted) from here
    assert journal_is_live(path, header)


def test_a_mask_from_a_file_is_journalled_on_top_of_it_and_follows_saves(tmp_path):
    image, truth = _grid()
    base = tmp_path / "labels.nii.gz"
    base.write_bytes(b"stand-in for the label file")
    mask = LabelMap.on_grid_of(image, truth.array.copy())
    session = EditingSession(journal_dir=tmp_path / "journal")
    session.set_target(mask, image=image, image_path=tmp_path / "t1.nii.gz", mask_path=base)
    start = session.labels.copy()
    _stroke(session, (2, 2, 2), (20, 2, 2), 2)
    header, steps = read_journal(session.journal.path)
    assert header["base_labels"] == str(base.resolve()) and len(steps) == 1
    replayed = start.copy()
    replay(session.journal.path, replayed)
    np.testing.assert_array_equal(replayed, session.labels)
    # A save: the saved file is the new base; a step made while writing stays journalled.
    session.begin_save()
    saved_content = session.labels.copy()
    _stroke(session, (2, 18, 2), (20, 18, 2), 1)
    (tmp_path / "saved.nii.gz").write_bytes(b"stand-in for the saved file")
    assert session.saved(tmp_path / "saved.nii.gz") == 1
    header, steps = read_journal(session.journal.path)
    assert header["base_labels"] == str((tmp_path / "saved.nii.gz").resolve())
    assert len(steps) == 1
    replay(session.journal.path, saved_content)
    np.testing.assert_array_equal(saved_content, session.labels)
    session.close()
    assert not any((tmp_path / "journal").iterdir())


def test_a_result_taken_in_brings_the_names_the_mask_lacks(tmp_path):
    session = _session(tmp_path)
    own = session.mask.labels
    assert 4 not in own
    result = np.zeros(SHAPE, np.uint8)
    result[4:16, 4:14, 2:10] = 2
    result[8:10, 6:8, 4:6] = 4
    renamed = own.with_label(Label(2, "Cortex", (1, 2, 3))).with_label(
        Label(4, "Lesion", (255, 0, 255)))
    tables = []
    session.label_table_changed.connect(lambda: tables.append(session.label_name(4)))
    session.apply_labels(result, "Use a result as the edited mask", names=renamed)
    assert tables == ["Lesion"]  # announced once, with the new name in place
    assert session.label_name(4) == "Lesion" and session.label_color(4) == (255, 0, 255)
    assert session.label_name(2) == own.name(2)  # the mask's own names stay
    np.testing.assert_array_equal(session.labels, result)


def _from_empty(session):
    """The journal's header, steps, and its replay on an empty mask."""
    header, steps = read_journal(session.journal.path)
    replayed = np.zeros(SHAPE, np.uint8)
    replay(session.journal.path, replayed)
    return header, steps, replayed


def test_a_journal_without_a_file_starts_from_the_whole_mask(tmp_path):
    image, truth = _grid()
    # an empty mask: its first step (a whole result taken in) is the whole mask
    session = _session(tmp_path / "a")
    session.apply_labels(truth.array, "Use a result as the edited mask")
    header, steps, replayed = _from_empty(session)
    assert header["base_labels"] is None and len(steps) == 1
    np.testing.assert_array_equal(replayed, truth.array)
    session.close()
    # a mask with labels but no file: the first step's journal holds all of it, not only
    # the stroke (here the stroke also starts from 0 voxels, as a first step from empty would)
    session = EditingSession(journal_dir=tmp_path / "b")
    session.set_target(LabelMap.on_grid_of(image, truth.array.copy()), image=image,
                       image_path=tmp_path / "t1.nii.gz")
    _stroke(session, (2, 2, 2), (20, 2, 2), 2)
    header, steps, replayed = _from_empty(session)
    assert header["base_labels"] is None and len(steps) == 1
    np.testing.assert_array_equal(replayed, session.labels)
    session.close()


def test_a_failed_write_is_replaced_at_once_by_a_journal_of_the_whole_mask(tmp_path,
                                                                         monkeypatch):
    session = _session(tmp_path)
    seen = _listen(session)
    _stroke(session, (6, 6, 5), (14, 6, 5), 1)
    broken = session.journal
    monkeypatch.setattr(broken, "append", lambda diff: (_ for _ in ()).throw(OSError(28, "full")))
    _stroke(session, (6, 12, 5), (14, 12, 5), 2)  # its record cannot be written
    assert session.journal is not broken and not broken.path.exists()
    assert [args for n, args in seen if n == "journal_problem"] == []  # healed: nothing to say
    restored = np.zeros(SHAPE, np.uint8)
    replay(session.journal.path, restored)
    np.testing.assert_array_equal(restored, session.labels)
    session.close()


def test_without_a_usable_folder_editing_goes_on_and_the_user_is_told_once(tmp_path):
    session = _session(tmp_path)
    seen = _listen(session)
    _stroke(session, (6, 6, 5), (14, 6, 5), 1)
    first_journal = session.journal.path
    folder = tmp_path / "journal"
    session.begin_save()
    shutil.rmtree(folder)
    folder.write_text("a file where the folder was")
    assert session.saved(tmp_path / "saved.nii.gz") == 0  # the reset fails: no raise
    for row in (10, 14):
        _stroke(session, (6, row, 5), (14, row, 5), 2)
    assert len(session.history) == 3 and session.journal is None
    problems = [args[0] for n, args in seen if n == "journal_problem"]
    assert len(problems) == 1 and "crash journal could not be written" in problems[0]
    folder.unlink()
    _stroke(session, (6, 17, 5), (14, 17, 5), 1)  # the next step opens a fresh journal
    assert [args[0] for n, args in seen if n == "journal_problem"][1:] == [""]
    header, steps = read_journal(session.journal.path)
    assert header["base_labels"] is None and len(steps) == 1  # the whole mask, in one step
    restored = np.zeros(SHAPE, np.uint8)
    replay(session.journal.path, restored)
    np.testing.assert_array_equal(restored, session.labels)
    assert session.journal.path != first_journal
    session.close()
    assert list(folder.iterdir()) == []
