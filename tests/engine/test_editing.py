"""Editing kernels, undo history, live metrics and the crash journal (no Qt)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.errors import ParameterError
from engine.core.metrics import confusion
from engine.editing.history import History
from engine.editing.journal import EditJournal
from engine.editing.kernels import (
    flood_fill,
    keep_largest_component,
    merge_diffs,
    paint,
    paint_stroke,
    remove_small_islands,
    replace_all,
)
from engine.editing.live_metrics import LiveMetrics
from engine.methods.postprocess import largest_component, small_components


# -- kernels ------------------------------------------------------------------------
def test_disk_brush_stays_in_its_plane_and_respects_anisotropic_spacing():
    labels = np.zeros((40, 40, 10), np.uint8)
    d = paint(labels, (20, 20, 5), radius_mm=4, value=2, spacing=(0.5, 1.0, 3.0), plane_axis=2)
    assert set(np.nonzero(labels)[2]) == {5}
    xs, ys = np.nonzero(labels[:, :, 5])
    # 4 mm is 8 voxels along x (0.5 mm) and 4 voxels along y (1 mm).
    assert xs.max() - xs.min() == 16
    assert ys.max() - ys.min() == 8
    assert d.count == np.count_nonzero(labels)


def test_sphere_brush_volume_matches_the_ball():
    labels = np.zeros((30, 30, 30), np.uint8)
    d = paint(labels, (15, 15, 15), radius_mm=6, value=1)
    assert d.count == pytest.approx(4 / 3 * np.pi * 6**3, rel=0.05)


def test_paint_modes_and_threshold_limit():
    labels = np.zeros((20, 20, 1), np.uint8)
    labels[:10] = 3
    image = np.tile(np.arange(20, dtype=np.float32)[None, :, None], (20, 1, 1))
    paint(labels, (10, 10, 0), radius_mm=20, value=1, plane_axis=2, mode="background")
    assert np.all(labels[:10] == 3)
    assert np.all(labels[10:] == 1)
    labels[:] = 0
    paint(labels, (10, 10, 0), radius_mm=20, value=2, plane_axis=2, image=image,
          intensity_range=(5, 9))
    assert set(np.nonzero(labels)[1]) == set(range(5, 10))
    labels[:] = 2
    labels[:, :5] = 1
    paint(labels, (10, 10, 0), radius_mm=20, value=0, plane_axis=2, mode="label", only_label=1)
    assert np.all(labels[:, :5] == 0)
    assert np.all(labels[:, 5:] == 2)


def test_stroke_has_no_gaps():
    labels = np.zeros((60, 60, 1), np.uint8)
    paint_stroke(labels, (5, 5, 0), (55, 50, 0), radius_mm=1.5, value=1, plane_axis=2)
    from scipy import ndimage

    _, n = ndimage.label(labels)
    assert n == 1
    assert labels[5, 5, 0] == 1
    assert labels[55, 50, 0] == 1


def test_flood_fill_2d_and_3d_with_tolerance():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[:, 10, :] = 1  # a wall splitting the volume
    d3 = flood_fill(labels, (0, 0, 0), 2)
    assert d3.count == 20 * 10 * 20
    assert np.all(labels[:, :10, :] == 2)
    assert np.all(labels[:, 11:, :] == 0)
    labels[:] = 0
    d2 = flood_fill(labels, (5, 5, 5), 3, plane_axis=2)
    assert d2.count == 400
    assert set(np.nonzero(labels)[2]) == {5}
    labels[:] = 0
    image = np.zeros((20, 20, 20), np.float32)
    image[:, :, 12:] = 100
    flood_fill(labels, (0, 0, 0), 1, image=image, tolerance=10)
    assert np.all(labels[:, :, :12] == 1)
    assert np.all(labels[:, :, 12:] == 0)


def test_island_removal_and_largest_component():
    labels = np.zeros((30, 30, 30), np.uint8)
    labels[2:12, 2:12, 2:12] = 1      # 1000 voxels
    labels[20:22, 20:22, 20:22] = 1   # 8 voxels
    labels[25, 25, 25] = 1            # 1 voxel
    d = remove_small_islands(labels, 1, min_voxels=5)
    assert d.count == 1
    assert labels[20, 20, 20] == 1
    d = keep_largest_component(labels, 1)
    assert d.count == 8
    assert np.count_nonzero(labels) == 1000
    assert keep_largest_component(labels, 1) is None


@pytest.mark.parametrize("case", ["negative tolerance", "nan tolerance", "nan seed",
                                  "seed outside"])
def test_flood_fill_refuses_a_seed_that_is_not_in_its_own_region(case):
    # Each of these used to fill everything *except* the seed's region.
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[:, 6:, :] = 1
    image = np.linspace(0, 100, labels.size, dtype=np.float32).reshape(labels.shape)
    seed, tolerance = (2, 2, 2), 5.0
    if case == "negative tolerance":
        tolerance = -1.0
    elif case == "nan tolerance":
        tolerance = float("nan")
    elif case == "nan seed":
        image[seed] = np.nan
    else:
        seed = (2, 12, 2)
    before = labels.copy()
    with pytest.raises(ParameterError) as info:
        flood_fill(labels, seed, 3, image=image, tolerance=tolerance)
    assert "\n" not in str(info.value)
    assert np.array_equal(labels, before)
    # a zero tolerance is fine: it fills the seed and its equal-intensity neighbours
    flat = np.zeros_like(image)
    d = flood_fill(labels, (2, 2, 2), 3, image=flat, tolerance=0.0)
    assert d.count == 12 * 6 * 12 and np.all(labels[:, :6, :] == 3)


def test_clean_up_kernels_are_the_post_processing_components():
    rng = np.random.default_rng(7)
    labels = (rng.random((16, 16, 16)) < 0.35).astype(np.uint8) * 2
    labels[:3, :3, :3] = 0
    labels[0, 0, 0] = labels[1, 1, 1] = 2     # corner neighbours only: two components
    mask = labels == 2
    expected_small = mask & small_components(mask, 4)
    assert expected_small[0, 0, 0] and expected_small[1, 1, 1]  # face connectivity
    work = labels.copy()
    d = remove_small_islands(work, 2, min_voxels=4)
    assert np.array_equal(work == 2, mask & ~expected_small) and d.count == expected_small.sum()
    work = labels.copy()
    d = keep_largest_component(work, 2)
    assert np.array_equal(work == 2, largest_component(mask))
    d.revert(work)
    assert np.array_equal(work, labels)


def test_replace_all_diff_restores_exactly():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(10, 12, 14)).astype(np.uint8)
    before = labels.copy()
    new = rng.integers(0, 4, size=labels.shape).astype(np.uint8)
    d = replace_all(labels, new)
    assert np.array_equal(labels, new)
    d.revert(labels)
    assert np.array_equal(labels, before)


# -- history ------------------------------------------------------------------------
def test_one_drag_is_one_undo_step():
    labels = np.zeros((40, 40, 40), np.uint8)
    h = History()
    h.begin("brush")
    for x in range(5, 35, 3):
        h.record(paint_stroke(labels, (x, 20, 20), (x + 3, 20, 20), radius_mm=2, value=1))
    h.end(labels)
    painted = labels.copy()
    assert len(h) == 1
    h.undo(labels)
    assert not labels.any()
    h.redo(labels)
    assert np.array_equal(labels, painted)


def test_history_is_capped_in_bytes_not_steps():
    labels = np.zeros((64, 64, 64), np.uint8)
    probe = paint(labels.copy(), (32, 32, 32), radius_mm=5, value=1)
    step_bytes = History().budget_bytes  # just to touch the default
    assert step_bytes > 100 * 1024**2
    one = probe.nbytes
    h = History(budget_bytes=int(one * 3.5))
    for i in range(10):
        h.push(f"s{i}", paint(labels, (8 + 5 * i, 32, 32), radius_mm=5, value=1 + i % 3))
    assert 1 <= len(h) <= 4
    assert h.nbytes <= h.budget_bytes
    assert h.undo_name == "s9"


def test_undo_after_new_edit_drops_redo():
    labels = np.zeros((10, 10, 10), np.uint8)
    h = History()
    h.push("a", paint(labels, (3, 3, 3), radius_mm=1, value=1))
    h.undo(labels)
    assert h.can_redo
    h.push("b", paint(labels, (6, 6, 6), radius_mm=1, value=2))
    assert not h.can_redo


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 15), st.integers(0, 15),
                          st.integers(0, 7), st.floats(0.5, 4.0), st.integers(0, 3)),
                min_size=1, max_size=12),
       st.lists(st.sampled_from(["undo", "redo"]), max_size=6))
def test_incremental_metrics_equal_full_recomputation(edits, undo_redo):
    rng = np.random.default_rng(len(edits))
    truth = rng.integers(0, 4, size=(16, 16, 8)).astype(np.uint8)
    labels = rng.integers(0, 4, size=truth.shape).astype(np.uint8)
    live = LiveMetrics(labels, truth, labels=[1, 2, 3])
    h = History()
    for kind, x, y, z, radius, value in edits:
        if kind == 3:
            d = flood_fill(labels, (x, y, z), value, plane_axis=2)
        else:
            d = paint(labels, (x, y, z), radius_mm=radius, value=value,
                      plane_axis=None if kind == 0 else 2,
                      mode="all" if kind != 2 else "background")
        live.update(d, truth)
        h.push("edit", d)
    for op in undo_redo:
        d = h.undo(labels) if op == "undo" else h.redo(labels)
        live.update(d, truth)
    full = confusion(labels, truth, [1, 2, 3])
    for v in (1, 2, 3):
        assert live.counts[v] == full[v]


def test_a_label_in_neither_mask_nor_truth_is_left_out_of_the_means():
    """A false lesion against a truth without lesions scores Dice 0; once it is erased
    (its finding rejected) the label is in neither, and it no longer enters the means --
    not as a flattering Dice of 1."""
    truth = np.zeros((12, 12, 12), np.uint8)
    truth[2:10, 2:10, 2:10] = 1
    labels = truth.copy()
    labels[5:7, 5:7, 5:7] = 4  # a false finding inside the tissue
    live = LiveMetrics(labels, truth, labels=[1, 4])
    assert live.table()[4]["dice"] == 0.0
    # the truth has no lesion: no sensitivity (not the 1 of an empty truth), left out
    assert np.isnan(live.table()[4]["sensitivity"])
    assert live.table()[1]["sensitivity"] == pytest.approx(504 / 512)  # 8 of 512 are lesion
    assert live.mean("sensitivity").used == 1
    before = live.mean("dice")
    assert before.used == 2 and before.mean == pytest.approx(live.table()[1]["dice"] / 2)
    live.update(paint(labels, (5.5, 5.5, 5.5), radius_mm=2, value=1, mode="all"), truth)
    assert not (labels == 4).any()
    row = live.table()[4]
    assert np.isnan(row["dice"]) and np.isnan(row["iou"]) and np.isnan(row["sensitivity"])
    after = live.mean("dice")
    assert (after.used, after.total, after.mean) == (1, 2, 1.0)


def test_merge_drops_voxels_that_ended_unchanged():
    labels = np.zeros((10, 10, 10), np.uint8)
    a = paint(labels, (5, 5, 5), radius_mm=2, value=1)
    b = paint(labels, (5, 5, 5), radius_mm=2, value=0)
    assert merge_diffs([a, b], labels) is None


# -- journal ------------------------------------------------------------------------
def test_journal_round_trip_and_truncated_tail(tmp_path):
    labels = np.zeros((20, 20, 20), np.uint8)
    j = EditJournal.create(tmp_path, image_path=tmp_path / "img.nii", shape=labels.shape,
                           affine=np.eye(4), dtype=labels.dtype)
    snapshots = []
    for i in range(3):
        j.append(paint(labels, (5 + 4 * i, 10, 10), radius_mm=2, value=i + 1))
        snapshots.append(labels.copy())
    j.close(discard=False)
    raw = j.path.read_bytes()
    j.path.write_bytes(raw[:-7])  # the kill hit while writing the last record
    info = EditJournal.find(tmp_path, image_path=tmp_path / "img.nii", shape=labels.shape,
                            affine=np.eye(4))
    assert info is not None
    assert info.n_steps == 2
    restored = np.zeros_like(labels)
    from engine.editing.journal import replay

    assert replay(info.path, restored) == 2
    assert np.array_equal(restored, snapshots[1])


def test_clean_close_leaves_nothing_to_recover(tmp_path):
    labels = np.zeros((8, 8, 8), np.uint8)
    j = EditJournal.create(tmp_path, image_path="x.nii", shape=labels.shape, affine=np.eye(4),
                           dtype=labels.dtype)
    j.append(paint(labels, (4, 4, 4), radius_mm=1, value=1))
    j.close()
    assert EditJournal.find(tmp_path, image_path="x.nii", shape=labels.shape,
                            affine=np.eye(4)) is None


_CHILD = textwrap.dedent("""
    import sys, time, numpy as np
    from engine.editing.kernels import paint_stroke
    from engine.editing.history import History
    from engine.editing.journal import EditJournal
    folder = sys.argv[1]
    labels = np.zeros((48, 48, 48), np.uint8)
    journal = EditJournal.create(folder, image_path="brain.nii.gz", shape=labels.shape,
                                 affine=np.eye(4), dtype=labels.dtype)
    history = History()
    for i in range(5):
        history.begin("brush")
        for s in range(4):
            history.record(paint_stroke(labels, (8 + 8 * i, 10 + 6 * s, 24),
                                        (8 + 8 * i, 16 + 6 * s, 24), radius_mm=2, value=1 + i % 3))
        journal.append(history.end(labels))
    np.save(folder + "/expected.npy", labels)
    print("ready", flush=True)
    # A sixth stroke is under way (not completed) when the process is killed.
    history.begin("brush")
    history.record(paint_stroke(labels, (5, 40, 5), (40, 40, 5), radius_mm=2, value=2))
    time.sleep(60)
""")


def test_journal_survives_sigkill(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready"
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    info = EditJournal.find(tmp_path, image_path="brain.nii.gz", shape=(48, 48, 48),
                            affine=np.eye(4))
    assert info is not None
    assert info.n_steps == 5
    restored = np.zeros((48, 48, 48), np.uint8)
    from engine.editing.journal import replay

    replay(info.path, restored)
    assert np.array_equal(restored, np.load(tmp_path / "expected.npy"))
