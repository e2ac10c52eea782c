"""Comparison mode: synchronised panes, the disagreement map, and the metrics table
filled in the worker, sorted and exported."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from engine.core.metrics import dice
from engine.core.volume import LabelMap
from engine.editing.kernels import paint
from engine.evaluation.compare import COLUMNS
from viewer.comparison import disagreement

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_torch_thread")]


def _shifted(truth: LabelMap, shift: int, axis: int) -> LabelMap:
    return truth.with_array(np.roll(truth.array, shift, axis=axis))


@pytest.fixture
def compared(window, tissue_phantom):
    """The phantom with its ground truth and two results (one of them a worse one)."""
    volume, truth = tissue_phantom()
    window.show_volume(volume, name="phantom", truth=truth)
    good = window.add_result_layer(_shifted(truth, 1, 0), "close")
    good.labelmap.metadata.update(runtime_s=1.5, peak_memory_bytes=200 * 2**20)
    bad = window.add_result_layer(_shifted(truth, 3, 1), "shifted")
    window.grid.render_pending()
    return window, truth, good, bad


def _open(window):
    comparison = window.methods.open_comparison()
    comparison.render_pending()
    return comparison


def test_panes_default_to_the_truth_and_the_newest_results(qtbot, compared):
    window, _, good, bad = compared
    comparison = _open(window)
    assert len(comparison.panes) == 3
    assert comparison.shown_layers() == [window.layers.ground_truth, bad, good]
    for pane, layer in zip(comparison.panes, comparison.shown_layers(), strict=True):
        assert pane.layer.labelmap is layer.labelmap  # shared, not copied
        assert pane.chooser.currentText() == layer.name
    comparison.set_pane_count(2)
    assert len(comparison.panes) == 2
    comparison.set_pane_count(4)
    assert len(comparison.panes) == 4
    assert set(comparison.shown_layers()) >= {good, bad, window.layers.ground_truth}
    comparison.show_layers([good, bad])
    assert comparison.shown_layers() == [good, bad]


def test_panes_share_slice_crosshair_zoom_and_pan(qtbot, compared, pixel_of, click):
    window, *_ = compared
    comparison = _open(window)
    views = comparison.views()
    window.cursor.set((12, 25, 9))
    for view in views:
        assert view.index == 9
        assert view.vline.value() == pytest.approx(views[0].vline.value())
        assert view.hline.value() == pytest.approx(views[0].hline.value())
    # a click in a pane moves the main window's cursor, and so the other panes
    target = (30, 8, 9)
    click(views[1], pixel_of(views[1], target))
    assert window.cursor.position == target
    assert all(view.vline.value() == pytest.approx(views[1].vline.value()) for view in views)
    # zoom and pan one pane: the others follow (same centre, same mm per pixel)
    def centre_and_scale(view):
        (x0, x1), (y0, y1) = view.viewbox.viewRange()
        box = view.viewbox
        return [(x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / box.width(), (y1 - y0) / box.height()]

    before = centre_and_scale(views[0])
    views[0].zoom(2.0)
    views[0].pan(3.0, -2.0)
    first = centre_and_scale(views[0])
    assert first[2] == pytest.approx(before[2] / 2, rel=1e-3)
    for view in views[1:]:
        assert np.allclose(centre_and_scale(view), first, rtol=1e-6)
    comparison.set_plane("coronal")
    assert all(view.plane == "coronal" for view in comparison.views())
    window.cursor.set((12, 20, 9))
    assert all(view.index == 20 for view in comparison.views())


def test_disagreement_map_marks_where_the_shown_layers_differ(qtbot, compared):
    window, truth, good, bad = compared
    comparison = _open(window)
    comparison.show_layers([window.layers.ground_truth, good])
    comparison.set_disagreement_shown(True)
    pane = comparison.disagreement_pane
    assert pane is not None and pane.layer is not None
    expected = truth.array != good.labelmap.array
    assert np.array_equal(pane.layer.labelmap.array.astype(bool), expected)
    assert f"{int(expected.sum()):,} voxels" in pane.note.text()
    assert disagreement([truth.array, truth.array]).sum() == 0
    # a third layer widens it; choosing layers recomputes
    comparison.set_pane_count(3)
    comparison.show_layers([window.layers.ground_truth, good, bad])
    comparison.update_disagreement()
    wider = expected | (truth.array != bad.labelmap.array)
    assert np.array_equal(comparison.disagreement_pane.layer.labelmap.array.astype(bool), wider)


def test_edits_and_layer_changes_reach_the_panes(qtbot, compared):
    window, _, good, _ = compared
    comparison = _open(window)
    edited = window.layers.edited
    comparison.set_pane_count(4)
    comparison.show_layers([window.layers.ground_truth, good, edited, good])
    pane = comparison.panes[2]
    assert pane.layer.counts().get(2, (0, 0))[0] == 0
    diff = paint(edited.labelmap.array, (20, 20, 14), radius_mm=3, value=2,
                 spacing=(1, 1, 1), plane_axis=2)
    window.edits.apply_diff(diff, "Brush")
    assert pane.layer.counts()[2][0] == diff.count  # the pane's layer was told
    window.layers.remove(good)
    assert good not in comparison.shown_layers()
    assert all(pane.chooser.findText("close") < 0 for pane in comparison.panes)


def test_closing_leaves_nothing_connected(qtbot, compared):
    window, *_ = compared
    before = len(window.cursor.changed.listeners)
    levels_before = len(window.layers.image.levels_changed.listeners)
    comparison = _open(window)
    comparison.set_plane("sagittal")  # a second set of panes
    assert len(window.cursor.changed.listeners) == before + 1
    comparison.close()
    qtbot.wait(10)
    assert len(window.cursor.changed.listeners) == before
    assert len(window.layers.image.levels_changed.listeners) == levels_before
    window.cursor.set((3, 3, 3))  # no callback into deleted panes
    window.layers.image.set_levels(0.0, 50.0)
    assert window.methods.comparison is None


def test_the_table_is_filled_in_the_worker_sorted_and_exported(qtbot, compared, tmp_path):
    window, truth, good, bad = compared
    comparison = _open(window)
    table = comparison.table
    with qtbot.waitSignal(table.computed, timeout=120_000):
        assert table.compute() is not None
    rows = table.model.rows
    assert [(r["method"], r["label"]) for r in rows] == [
        (name, label) for name in ("close", "shifted")
        for label in ("CSF", "Gray matter", "White matter", "mean")]
    by_key = {(r["method"], r["value"]): r for r in rows}
    for layer in (good, bad):
        for k in (1, 2, 3):
            assert by_key[(layer.name, k)]["dice"] == pytest.approx(
                dice(layer.labelmap.array, truth.array, k))
            assert by_key[(layer.name, k)]["hd95"] >= 0
    assert by_key[("close", 1)]["runtime_s"] == 1.5
    assert by_key[("close", 1)]["peak_memory_mb"] == pytest.approx(200)
    assert np.isnan(by_key[("shifted", 1)]["runtime_s"])
    # sorting by the numbers, not the text
    table.sort_by("dice", descending=True)
    shown = table.shown_rows()
    assert [r["dice"] for r in shown] == sorted((r["dice"] for r in rows), reverse=True)
    table.sort_by("hd95")
    assert [r["hd95"] for r in table.shown_rows()] == sorted(r["hd95"] for r in rows)
    table.mean_only.setChecked(True)
    means = table.shown_rows()
    assert [r["label"] for r in means] == ["mean", "mean"]
    # export what is shown, as shown
    table.ask_save_path = lambda title, start, pattern: str(tmp_path / "table")
    table.csv_button.click()
    with open(tmp_path / "table.csv", newline="") as fh:
        written = list(csv.reader(fh))
    assert written[0] == [k for k, _, _ in COLUMNS]
    assert [line[0] for line in written[1:]] == [r["method"] for r in means]
    assert float(written[1][COLUMNS.index(("hd95", "HD95 (mm)", "{:.2f}"))]) == \
        pytest.approx(means[0]["hd95"])
    md = table.export_markdown(tmp_path / "table.md").read_text()
    assert "| method | label | Dice | IoU |" in md
    assert md.count("| close | mean |") == 1 and "Ground truth: Ground truth" in md


def test_table_needs_a_ground_truth(qtbot, window, tissue_phantom):
    volume, truth = tissue_phantom()
    window.show_volume(volume, name="phantom")
    window.add_result_layer(truth, "copy")
    table = _open(window).table
    assert table.compute() is None
    assert "ground truth" in table.status.text().lower()
    assert not table.csv_button.isEnabled()


def test_a_pipeline_result_fills_the_table(qtbot, window, tissue_phantom):
    volume, truth = tissue_phantom()
    window.show_volume(volume, name="phantom", truth=truth)
    methods = window.methods
    methods.panel.select_pipeline("otsu")
    methods.panel.set_mask_source("truth")
    methods.panel.force.setChecked(True)  # the small test phantom is no head-sized volume
    with qtbot.waitSignal(methods.pipelines.finished, timeout=60_000):
        methods.panel.run()
    table = _open(window).table
    table.surface.setChecked(False)
    with qtbot.waitSignal(table.computed, timeout=60_000):
        table.compute()
    means = {r["method"]: r for r in table.model.rows if r["label"] == "mean"}
    # the first result became the untouched edited mask: listed once, as the result
    assert set(means) == {"otsu"}
    mean = means["otsu"]
    assert mean["dice"] > 0.8
    assert mean["runtime_s"] > 0 and mean["peak_memory_mb"] > 0
    assert np.isnan(mean["hd95"])  # surface distances were not asked for
    # once corrected, the edited mask is a row of its own
    edited = window.layers.edited
    diff = paint(edited.labelmap.array, (20, 20, 14), radius_mm=3, value=2,
                 spacing=(1, 1, 1), plane_axis=2)
    window.edits.apply_diff(diff, "Brush")
    with qtbot.waitSignal(table.computed, timeout=60_000):
        table.compute()
    means = {r["method"]: r for r in table.model.rows if r["label"] == "mean"}
    assert set(means) == {"Edited mask", "otsu"}
    assert means["Edited mask"]["dice"] != means["otsu"]["dice"]
