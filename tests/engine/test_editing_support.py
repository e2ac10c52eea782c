"""Engine pieces the editor builds on: history budget changes, reading a
journal back, one journal per process, a failed journal reset, HD95 + ASSD in
one pass, and the false-positive / false-negative map."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.metrics import assd, confusion, hausdorff95, surface_metrics
from engine.display import difference_map
from engine.editing.history import History
from engine.editing.journal import EditJournal, read_journal, replay
from engine.editing.kernels import paint


def _steps(labels, n, history):
    for s in range(n):
        history.begin("brush")
        history.record(paint(labels, (5 + s, 10, 10), radius_mm=3, value=1 + s % 3))
        history.end(labels)


def test_lowering_the_budget_drops_the_oldest_steps_first():
    labels = np.zeros((24, 24, 24), np.uint8)
    history = History()
    _steps(labels, 6, history)
    per_step = history.nbytes / 6
    history.undo(labels)  # one redo step
    history.set_budget(int(per_step * 3.5))
    assert history.nbytes <= per_step * 3.5
    assert len(history) == 3 and not history.can_redo  # the redo step went first
    while history.undo(labels) is not None:
        pass
    assert labels.any()  # the dropped oldest steps cannot be undone any more
    history.set_budget(10**9)
    assert len(history) == 0 and history.can_redo


def test_read_journal_gives_the_steps_replay_applies(tmp_path):
    labels = np.zeros((16, 16, 16), np.uint8)
    journal = EditJournal.create(tmp_path, image_path=None, shape=labels.shape,
                                 affine=np.eye(4), dtype=labels.dtype)
    for s in range(3):
        journal.append(paint(labels, (4 + 3 * s, 8, 8), radius_mm=2, value=s + 1))
    header, diffs = read_journal(journal.path)
    assert header["shape"] == [16, 16, 16] and len(diffs) == 3
    mine = np.zeros_like(labels)
    for diff in diffs:
        diff.apply(mine)
    theirs = np.zeros_like(labels)
    assert replay(journal.path, theirs) == 3
    np.testing.assert_array_equal(mine, labels)
    np.testing.assert_array_equal(theirs, labels)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 1.2, 3.0)])
def test_surface_metrics_equal_the_separate_functions(spacing):
    rng = np.random.default_rng(3)
    truth = np.zeros((30, 30, 20), bool)
    truth[5:22, 6:25, 4:15] = True
    pred = truth.copy()
    pred[5:9] = False
    pred[rng.random(pred.shape) > 0.995] = True
    hd, avg = surface_metrics(pred, truth, spacing)
    assert hd == pytest.approx(hausdorff95(pred, truth, spacing))
    assert avg == pytest.approx(assd(pred, truth, spacing))
    empty = np.zeros_like(truth)
    assert surface_metrics(empty, empty, spacing) == (0.0, 0.0)
    assert surface_metrics(empty, truth, spacing) == (float("inf"), float("inf"))


def test_difference_map_agrees_with_the_confusion_counts():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 4, (20, 20, 20)).astype(np.uint8)
    truth = rng.integers(0, 4, (20, 20, 20)).astype(np.uint8)
    counts = confusion(pred, truth, [1, 2, 3])
    for v in (1, 2, 3):
        codes = difference_map(pred, truth, v)
        assert int((codes == 1).sum()) == counts[v].fp
        assert int((codes == 2).sum()) == counts[v].fn
    codes = difference_map(pred, truth)
    assert np.array_equal(codes == 0, pred == truth)
    assert np.all(pred[codes == 1] != 0) and np.all(pred[codes == 2] == 0)
    assert np.all(truth[codes == 2] != 0)


def test_journals_of_one_image_never_replace_each_other(tmp_path):
    labels = np.zeros((12, 12, 12), np.uint8)
    key = dict(image_path=tmp_path / "t1.nii", shape=labels.shape, affine=np.eye(4))
    first = EditJournal.create(tmp_path, dtype=labels.dtype, **key)
    first.append(paint(labels, (4, 4, 4), radius_mm=2, value=1))
    second = EditJournal.create(tmp_path, dtype=labels.dtype, **key)  # another Delineo
    assert first.path != second.path and first.path.exists() and second.path.exists()
    assert first.header["pid"] == second.header["pid"]
    assert first.header["token"] != second.header["token"]
    assert EditJournal.find(tmp_path, **key) is None  # both open: both live
    first.close(discard=False)  # as if its process had died
    info = EditJournal.find(tmp_path, **key)
    assert info is not None and info.path == first.path and info.n_steps == 1
    second.close()
    assert not second.path.exists() and first.path.exists()


def test_a_failed_reset_leaves_the_journal_whole_and_open(tmp_path):
    labels = np.zeros((12, 12, 12), np.uint8)
    journal = EditJournal.create(tmp_path, image_path=None, shape=labels.shape,
                                 affine=np.eye(4), dtype=labels.dtype)
    journal.append(paint(labels, (4, 4, 4), radius_mm=2, value=1))
    blocker = journal.path.with_name(journal.path.name + ".tmp")
    blocker.write_bytes(b"")  # the fresh journal cannot be written beside the old one
    with pytest.raises(FileExistsError):
        journal.reset(base_labels=None)
    journal.append(paint(labels, (8, 8, 8), radius_mm=2, value=2))  # still open
    restored = np.zeros_like(labels)
    assert replay(journal.path, restored) == 2
    np.testing.assert_array_equal(restored, labels)
    blocker.unlink()
    journal.reset(base_labels=None)
    assert read_journal(journal.path)[1] == []
    journal.close()


def test_history_abort_closes_the_open_step_without_keeping_it():
    import numpy as np

    from engine.editing.history import History
    from engine.editing.kernels import paint

    labels = np.zeros((10, 10, 10), np.uint8)
    history = History()
    history.begin("stroke")
    history.record(paint(labels, (3, 3, 3), radius_mm=1.0, value=3))
    history.record(paint(labels, (6, 6, 6), radius_mm=1.0, value=3))
    painted = int(np.count_nonzero(labels))
    merged = history.abort(labels)
    assert not history.recording and not history.can_undo
    assert merged is not None and merged.count == painted > 0
    merged.revert(labels)
    assert not labels.any()
