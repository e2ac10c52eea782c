"""The Qt-free models (layers, cursor) and the job runner."""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest

from engine.core.events import Event
from engine.core.jobs import Cancelled
from viewer.cursor import Cursor
from viewer.layers import LabelLayer, LayerStack


def test_event_calls_each_callback_once_in_order():
    calls = []
    ev = Event()
    first, second = (lambda x: calls.append(("a", x))), (lambda x: calls.append(("b", x)))
    ev.connect(first)
    ev.connect(second)
    ev.connect(first)
    ev.emit(1)
    ev.disconnect(first)
    ev.emit(2)
    assert calls == [("a", 1), ("b", 1), ("b", 2)]


def test_cursor_clamps_and_reports_old_and_new():
    cur = Cursor((10, 20, 30))
    assert cur.position == (5, 10, 15)
    seen = []
    cur.changed.connect(lambda new, old: seen.append((new, old)))
    cur.set((100, -4, 2.6))
    assert cur.position == (9, 0, 3)
    cur.step(2, -10)
    assert cur.position == (9, 0, 0)
    cur.set((9, 0, 0))  # no change, no event
    assert seen == [((9, 0, 3), (5, 10, 15)), ((9, 0, 0), (9, 0, 3))]


def test_stack_roles_order_and_replacement(synthetic_volume, synthetic_labels):
    vol = synthetic_volume()
    stack = LayerStack()
    with pytest.raises(RuntimeError):
        stack.add_labels(synthetic_labels(vol), name="x")
    changes = []
    stack.layers_changed.connect(lambda: changes.append(len(stack.labels)))
    stack.set_image(vol, name="img")
    result = stack.add_labels(synthetic_labels(vol), name="method", role="result")
    truth = stack.add_labels(synthetic_labels(vol), name="gt", role="truth")
    edit = stack.add_labels(synthetic_labels(vol), name="mask", role="edit")
    assert stack.labels == [edit, truth, result]
    assert stack.edited is edit and stack.ground_truth is truth
    edit2 = stack.add_labels(synthetic_labels(vol), name="mask2", role="edit")
    assert stack.labels == [edit2, truth, result]
    stack.remove(result)
    assert stack.labels == [edit2, truth]
    stack.set_image(vol)  # a new image drops every label layer
    assert stack.labels == []
    assert changes[-1] == 0
    with pytest.raises(ValueError, match="role"):
        LabelLayer(synthetic_labels(vol), name="x", role="bogus")


def test_label_layer_rejects_other_grids(synthetic_volume, synthetic_labels):
    vol = synthetic_volume()
    stack = LayerStack()
    stack.set_image(vol)
    other = synthetic_volume(shape=(5, 5, 5))
    with pytest.raises(ValueError, match="shape"):
        stack.add_labels(synthetic_labels(other), name="x")


def test_effective_opacity_combines_layer_global_and_visibility(synthetic_volume, synthetic_labels):
    vol = synthetic_volume()
    stack = LayerStack()
    stack.set_image(vol)
    layer = stack.add_labels(synthetic_labels(vol), name="a", opacity=0.8)
    stack.set_global_opacity(0.5)
    assert stack.effective_opacity(layer) == pytest.approx(0.4)
    layer.set_visible(False)
    assert stack.effective_opacity(layer) == 0
    layer.set_visible(True)
    stack.set_labels_shown(False)
    assert stack.effective_opacity(layer) == 0


def test_lut_and_counts_are_cached_and_invalidated(synthetic_volume, synthetic_labels):
    vol = synthetic_volume()
    stack = LayerStack()
    stack.set_image(vol)
    layer = stack.add_labels(synthetic_labels(vol), name="a")
    counts = layer.counts()
    assert set(counts) == {0, 1, 2, 3}
    assert counts[1][1] == pytest.approx(counts[1][0] * vol.voxel_volume_ml)
    lut = layer.lut
    assert layer.lut is lut
    layer.set_label_visible(2, False)
    assert layer.lut is not lut and layer.lut[2, 3] == 0
    events = []
    layer.data_changed.connect(events.append)
    layer.labelmap.array[0:2, 0:2, 0:2] = 7  # a value beyond the LUT
    box = (slice(0, 2), slice(0, 2), slice(0, 2))
    layer.notify_changed(box)
    assert events == [box]
    assert 7 in layer.counts() and layer.lut.shape[0] >= 8 and layer.lut[7, 3] == 255


def test_image_layer_levels_and_histogram(synthetic_volume):
    vol = synthetic_volume()
    stack = LayerStack()
    image = stack.set_image(vol)
    seen = []
    image.levels_changed.connect(seen.append)
    image.set_levels(10, 5)  # inverted: made a tiny positive window
    assert image.levels[1] > image.levels[0] == 10
    image.reset_levels()
    assert image.levels == image.default_levels
    _centres, counts = image.histogram()
    assert counts.sum() == vol.array.size and len(seen) == 2
    assert image.data_range == (0.0, float(vol.array.max()))


@pytest.mark.gui
def test_job_result_progress_and_error(qtbot):
    from viewer.workers import JobRunner

    runner = JobRunner()
    got, progress, errors = [], [], []

    def work(report, cancel):
        assert threading.current_thread() is not threading.main_thread()
        report(0.5, "half")
        return 42

    job = runner.submit(work, "answer", on_result=got.append,
                        on_progress=lambda f, m: progress.append((f, m)))
    qtbot.waitUntil(lambda: job.done, timeout=5000)
    assert got == [42] and job.succeeded
    assert progress == [(0.5, "half")]

    def broken(report, cancel):
        raise ValueError("bad input")

    runner.submit(broken, "broken", on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert isinstance(errors[0], ValueError)
    qtbot.waitUntil(lambda: not runner.running, timeout=5000)
    assert runner.shutdown(2000)


@pytest.mark.gui
def test_job_cancellation_drops_the_result(qtbot):
    from viewer.workers import JobRunner

    runner = JobRunner()
    started = threading.Event()
    cancelled, results = [], []

    def slow(report, cancel):
        started.set()
        for _ in range(500):
            cancel.check()
            time.sleep(0.01)
        return "finished"

    with qtbot.waitSignal(runner.busy, timeout=2000):
        job = runner.submit(slow, "slow", on_result=results.append,
                            on_cancelled=lambda: cancelled.append(True))
    assert started.wait(5)
    job.cancel()
    qtbot.waitUntil(lambda: bool(cancelled), timeout=5000)
    assert results == [] and not job.succeeded
    with pytest.raises(Cancelled):
        job.token.check()
    assert runner.shutdown(2000)


def test_synthetic_helpers_are_consistent(synthetic_volume, synthetic_labels):
    vol = synthetic_volume()
    assert vol.array[3, 4, 5] == 30405
    labels = synthetic_labels(vol)  # on the volume's grid, every tissue, background at the border
    assert labels.same_grid(vol) and np.unique(labels.array).tolist() == [0, 1, 2, 3]
    assert not labels.array[[0, -1]].any() and not labels.array[:, [0, -1]].any()


@pytest.mark.gui
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_jobs_run_at_background_priority_and_their_threads_inherit_it(qtbot):
    """A job's thread (and the threads it starts, as torch's would) yield the CPU to
    the GUI thread: nice BACKGROUND_NICE there, the GUI thread's own left alone."""
    from viewer.workers import BACKGROUND_NICE, JobRunner

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    gui_before = nice()
    runner = JobRunner()
    seen: dict[str, int] = {}

    def work(report, cancel):
        seen["job"] = nice()
        child = threading.Thread(target=lambda: seen.__setitem__("child", nice()))
        child.start()
        child.join()
        return True

    job = runner.submit(work, "priority")
    qtbot.waitUntil(lambda: job.done, timeout=5000)
    assert job.succeeded
    assert seen == {"job": max(gui_before, BACKGROUND_NICE),
                    "child": max(gui_before, BACKGROUND_NICE)}
    assert nice() == gui_before
    assert runner.shutdown(2000)
