"""The live metrics dock: figures equal a full recomputation by engine.core.metrics
after every stroke segment of a real mouse drag, HD95/ASSD in a worker, the
difference overlay (FP/FN in two colours) and the ground-truth outline."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.core.metrics import assd, confusion, dice, hausdorff95
from engine.display import DIFFERENCE_LABELS, difference_map
from viewer.panels.metrics_panel import format_metric

pytestmark = pytest.mark.gui

WAIT = 20000


@pytest.fixture
def editing(window, synthetic_volume, synthetic_labels):
    """An edited mask that starts as the ground truth with the white matter removed."""
    vol = synthetic_volume()
    truth = synthetic_labels(vol)
    start = truth.array.copy()
    start[start == 3] = 0
    window.show_volume(vol, name="synthetic", labels=truth.with_array(start), truth=truth)
    window.grid.render_pending()
    window.set_tool("brush")
    window.edits.set_options(brush_size_mm=3.0)
    return window


def expected(window):
    """Every overlap metric of every label, recomputed from scratch."""
    pred = window.layers.edited.labelmap.array
    truth = window.layers.ground_truth.labelmap.array
    voxel_ml = window.layers.edited.labelmap.voxel_volume_ml
    out = {}
    for value, c in confusion(pred, truth, [1, 2, 3]).items():
        ml, pct = c.volume_difference(voxel_ml)
        out[value] = {"dice": c.dice, "iou": c.iou, "sensitivity": c.sensitivity,
                      "specificity": c.specificity, "volume_diff_ml": ml,
                      "volume_diff_pct": pct}
    return out


def assert_panel_matches(window):
    panel = window.metrics_panel
    full = expected(window)
    for value, row in full.items():
        for key, number in row.items():
            assert panel.text(value, key) == format_metric(key, number), (value, key)
    mean_dice = np.mean([row["dice"] for row in full.values()])
    assert panel.text("mean", "dice") == format_metric("dice", mean_dice)
    assert f"Mean Dice {format_metric('dice', mean_dice)}" in panel.summary.text()


def test_without_ground_truth_the_dock_says_so(window, synthetic_volume):
    vol = synthetic_volume()
    window.show_volume(vol, name="synthetic")
    panel = window.metrics_panel
    assert "No ground truth" in panel.summary.text()
    assert not panel.controls.isVisibleTo(panel)


def test_displayed_metrics_follow_every_stroke_segment(editing, pixel_of, mouse):
    panel = editing.metrics_panel
    assert panel.columns == [1, 2, 3, "mean"]
    assert_panel_matches(editing)
    assert panel.text(3, "dice") == "0.000"
    editing.select_label(3)
    ax = editing.views["axial"]
    port = ax.canvas.viewport()
    k = editing.cursor.position[2]
    points = [pixel_of(ax, (i, 12, k)) for i in (9, 11, 13, 15)]
    mouse(port, "press", points[0])
    seen = []
    for p in points[1:]:
        mouse(port, "move", p)
        # The figures are up to date after each segment, while the button is still down.
        assert_panel_matches(editing)
        seen.append(panel.text(3, "dice"))
    mouse(port, "release", points[-1])
    assert len(set(seen)) == len(seen) and float(seen[-1]) > 0  # rose with every segment
    assert_panel_matches(editing)
    # Erasing and undoing keep the figures exact.
    editing.set_tool("eraser")
    mouse(port, "press", pixel_of(ax, (7, 8, k)))
    mouse(port, "move", pixel_of(ax, (10, 8, k)))
    mouse(port, "release", pixel_of(ax, (10, 8, k)))
    assert_panel_matches(editing)
    editing.edits.undo()
    assert_panel_matches(editing)
    editing.edits.undo()
    assert panel.text(3, "dice") == "0.000"
    assert_panel_matches(editing)


def test_surface_distances_on_demand_and_stale_after_an_edit(editing, qtbot, pixel_of, mouse):
    panel = editing.metrics_panel
    edits = editing.edits
    assert panel.text(2, "hd95") == "—"
    arrivals = []
    edits.surface_changed.connect(lambda: arrivals.append(edits.surface_job is None))
    panel.compute.click()
    assert arrivals == [False]  # started: a job under way
    qtbot.waitUntil(lambda: arrivals[-1], timeout=WAIT)  # the values arrived
    pred = editing.layers.edited.labelmap.array
    truth = editing.layers.ground_truth.labelmap.array
    spacing = editing.layers.image.volume.spacing
    for value in (1, 2):
        assert panel.text(value, "hd95") == format_metric(
            "hd95", hausdorff95(pred == value, truth == value, spacing))
        assert panel.text(value, "assd") == format_metric(
            "assd", assd(pred == value, truth == value, spacing))
    assert panel.text(3, "hd95") == "∞"  # no white matter in the mask yet
    # The mean leaves the ∞ out and says so: two of three labels averaged.
    finite = [hausdorff95(pred == v, truth == v, spacing) for v in (1, 2)]
    assert panel.text("mean", "hd95") == f"{format_metric('hd95', np.mean(finite))} (2/3)"
    assert "1 infinite" in panel.table.item(6, panel.columns.index("mean")).toolTip()
    assert panel.text("mean", "dice") == format_metric(
        "dice", np.mean([dice(pred, truth, v) for v in (1, 2, 3)]))  # nothing missed
    assert not edits.surface_stale
    row = 6  # HD95
    col = panel.columns.index(2)
    assert not panel.table.item(row, col).font().italic()
    editing.select_label(3)
    ax = editing.views["axial"]
    k = editing.cursor.position[2]
    mouse(ax.canvas.viewport(), "press", pixel_of(ax, (10, 12, k)))
    mouse(ax.canvas.viewport(), "release", pixel_of(ax, (10, 12, k)))
    assert edits.surface_stale and panel.table.item(row, col).font().italic()
    # After each stroke, automatically, in the worker.
    panel.auto.setChecked(True)
    qtbot.waitUntil(lambda: not edits.surface_stale and edits.surface_job is None, timeout=WAIT)
    assert panel.text(3, "hd95") == format_metric(
        "hd95", hausdorff95(pred == 3, truth == 3, spacing))
    mouse(ax.canvas.viewport(), "press", pixel_of(ax, (12, 16, k)))
    mouse(ax.canvas.viewport(), "release", pixel_of(ax, (12, 16, k)))
    assert edits.surface_job is not None  # started by the stroke's end
    qtbot.waitUntil(lambda: not edits.surface_stale and edits.surface_job is None, timeout=WAIT)
    assert panel.text(3, "assd") == format_metric("assd", assd(pred == 3, truth == 3, spacing))


def test_difference_overlay_in_two_colours_follows_the_strokes(editing, qtbot, pixel_of, mouse):
    edits = editing.edits
    panel = editing.metrics_panel
    panel.differences.setChecked(True)
    layer = edits.difference_layer
    assert layer is not None and layer.role == "difference"
    assert layer in editing.layers.labels and layer is editing.layers.labels[-1]  # on top
    pred = editing.layers.edited.labelmap.array
    truth = editing.layers.ground_truth.labelmap.array
    np.testing.assert_array_equal(layer.labelmap.array, difference_map(pred, truth))
    # Paint gray matter into the white-matter hole (false positives), then check the overlay.
    editing.select_label(2)
    ax = editing.views["axial"]
    k = editing.cursor.position[2]
    mouse(ax.canvas.viewport(), "press", pixel_of(ax, (10, 12, k)))
    mouse(ax.canvas.viewport(), "move", pixel_of(ax, (13, 17, k)))
    mouse(ax.canvas.viewport(), "release", pixel_of(ax, (13, 17, k)))
    codes = layer.labelmap.array
    np.testing.assert_array_equal(codes, difference_map(pred, truth))
    assert (codes == 1).any() and (codes == 2).any()
    # Both colours are on screen in the axial view, and they differ.
    editing.grid.render_pending()
    rgba = np.asarray(ax.overlay_item(layer).image)
    colours = {tuple(c) for c in rgba.reshape(-1, 4)[:, :3][rgba.reshape(-1, 4)[:, 3] > 0]}
    fp, fn = DIFFERENCE_LABELS.color(1), DIFFERENCE_LABELS.color(2)
    assert fp in colours and fn in colours and fp != fn
    # For the selected label only.
    panel.scope.setCurrentIndex(panel.scope.findData("selected"))
    panel.scope.activated.emit(panel.scope.currentIndex())
    np.testing.assert_array_equal(layer.labelmap.array, difference_map(pred, truth, 2))
    editing.select_label(3)
    np.testing.assert_array_equal(layer.labelmap.array, difference_map(pred, truth, 3))
    # The D key hides it again (the layer goes).
    canvas = ax.canvas
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_D)
    assert edits.difference_layer is None and layer not in editing.layers.labels
    assert not panel.differences.isChecked()


def test_ground_truth_outline_over_the_edited_mask(editing, qtbot):
    panel = editing.metrics_panel
    truth = editing.layers.ground_truth
    editing.edits.show_truth_outline(False)  # filled (an outline by default over a mask)
    truth.set_visible(False)
    panel.outline.setChecked(True)
    assert truth.outline and truth.visible
    ax = editing.views["axial"]
    editing.grid.render_pending()
    items = [ax.overlay_item(editing.layers.edited), ax.overlay_item(truth)]
    assert items[1].zValue() > items[0].zValue()  # drawn over the edited mask
    drawn = np.asarray(items[1].image)[..., 3] > 0
    k = editing.cursor.position[2]
    region = (truth.labelmap.array[:, :, k] > 0).T
    assert drawn.sum() < region.sum()  # only the boundaries
    assert editing.actions_["toggle_truth_outline"].isChecked()
    ax.canvas.setFocus()
    qtbot.keyClick(ax.canvas, Qt.Key.Key_G)
    assert not truth.outline and not panel.outline.isChecked()


def test_metrics_follow_a_new_ground_truth_and_new_labels(editing, pixel_of, mouse):
    edits = editing.edits
    edits.add_label("Lesion", (200, 0, 0))
    ax = editing.views["axial"]
    k = editing.cursor.position[2]
    mouse(ax.canvas.viewport(), "press", pixel_of(ax, (3, 3, k)))
    mouse(ax.canvas.viewport(), "release", pixel_of(ax, (3, 3, k)))
    panel = editing.metrics_panel
    assert panel.columns == [1, 2, 3, 4, "mean"]
    assert panel.text(4, "dice") == "0.000"
    assert panel.text(4, "volume_diff_pct") == "—"  # no label 4 in the truth
    # A new ground truth replaces the counts.
    truth = editing.layers.ground_truth.labelmap
    editing.layers.add_labels(truth.with_array(editing.layers.edited.labelmap.array.copy()),
                              name="Ground truth 2", role="truth")
    assert panel.text(2, "dice") == "1.000" and panel.text(4, "dice") == "1.000"


def test_volume_differences_keep_about_three_figures():
    cases = {0.594: "+0.59", -4.781: "-4.78", 43.21: "+43.2", -12.59: "-12.6",
             -1090.88: "-1091", 0.0: "+0.00"}
    for value, text in cases.items():
        assert format_metric("volume_diff_ml", value) == text
    assert format_metric("volume_diff_ml", float("nan")) == "—"
