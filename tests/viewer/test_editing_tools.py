"""Editing tools driven by real mouse drags on the views: brush, eraser, paint
modes, threshold, 3-D brush, fill, clean-up, labels, undo/redo, and the API
other features use (apply_diff, apply_labels)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from engine.editing.kernels import flood_fill

pytestmark = pytest.mark.gui

CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


@pytest.fixture
def editing(window, synthetic_volume, synthetic_labels):
    """Synthetic volume, an empty edited mask, the label boxes as ground truth, Brush active."""
    vol = synthetic_volume()
    truth = synthetic_labels(vol)
    window.show_volume(vol, name="synthetic", labels=truth.with_array(np.zeros_like(truth.array)),
                       truth=truth)
    window.grid.render_pending()
    window.set_tool("brush")
    window.edits.set_options(brush_size_mm=3.0)
    return window


def key(window, qtkey, mods=Qt.KeyboardModifier.NoModifier):
    """A key pressed while the axial view has the keyboard focus."""
    canvas = window.views["axial"].canvas
    canvas.setFocus()
    QTest.keyClick(canvas, qtkey, mods)


def slice_k(window):
    return window.cursor.position[2]


@pytest.fixture
def axial_drag(pixel_of, drag):
    """``axial_drag(window, a, b)``: a mouse drag from voxel a to voxel b of the axial slice."""

    def run(window, a, b, button=Qt.MouseButton.LeftButton, steps=6):
        ax = window.views["axial"]
        k = slice_k(window)
        drag(ax, pixel_of(ax, (*a, k)), pixel_of(ax, (*b, k)), button=button, steps=steps)

    return run


def distance_to_segment_mm(points, a, b, spacing):
    """Distance (mm) of voxel centres *points* (n, 2) to the in-plane segment a-b."""
    sp = np.asarray(spacing[:2])
    p = points * sp
    a, b = np.asarray(a, float) * sp, np.asarray(b, float) * sp
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-12), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def test_brush_drag_paints_the_selected_label_along_the_path(editing, axial_drag):
    key(editing, Qt.Key.Key_2)  # select gray matter
    assert editing.edits.selected_label == 2
    axial_drag(editing, (4, 5), (18, 22))
    labels = editing.edits.labels
    k = slice_k(editing)
    assert set(np.unique(labels).tolist()) == {0, 2}
    assert np.all(labels[:, :, k + 1:] == 0) and np.all(labels[:, :, :k] == 0)  # a 2-D disk
    painted = np.argwhere(labels[:, :, k] == 2)
    # Every painted voxel lies within the brush radius (1.5 mm) of the path ...
    spacing = editing.layers.image.volume.spacing
    assert distance_to_segment_mm(painted, (4, 5), (18, 22), spacing).max() <= 1.5 + 0.5
    # ... and the voxels on the path are painted, ends included.
    for t in np.linspace(0, 1, 15):
        i, j = np.rint(np.array([4, 5]) + t * np.array([14, 17])).astype(int)
        assert labels[i, j, k] == 2
    assert len(editing.edits.history) == 1  # the whole drag is one undo step
    assert editing.layers.edited.modified and editing.windowTitle().startswith("synthetic*")


def test_undo_and_redo_with_the_keys(editing, qtbot, axial_drag):
    axial_drag(editing, (4, 5), (10, 5))
    first = editing.edits.labels.copy()
    axial_drag(editing, (4, 15), (18, 15))
    second = editing.edits.labels.copy()
    assert len(editing.edits.history) == 2
    key(editing, Qt.Key.Key_Z, CTRL)
    np.testing.assert_array_equal(editing.edits.labels, first)
    key(editing, Qt.Key.Key_Z, CTRL)
    assert not editing.edits.labels.any()
    key(editing, Qt.Key.Key_Z, CTRL | SHIFT)
    np.testing.assert_array_equal(editing.edits.labels, first)
    key(editing, Qt.Key.Key_Y, CTRL)
    np.testing.assert_array_equal(editing.edits.labels, second)
    assert editing.actions_["undo"].text() == "&Undo Brush stroke"
    # What the axial view shows is the mask after the redo.
    editing.grid.render_pending()
    item = editing.views["axial"].overlay_item(editing.layers.edited)
    shown = np.asarray(item.image)[..., 3] > 0
    np.testing.assert_array_equal(shown, (second[:, :, slice_k(editing)] > 0).T)


def test_right_button_erases_with_the_brush_and_the_eraser_tool_erases(editing, axial_drag):
    axial_drag(editing, (3, 10), (20, 10))
    k = slice_k(editing)
    row = editing.edits.labels[:, 10, k].copy()
    assert row[3:21].all()
    editing.edits.set_options(brush_size_mm=1.0)
    view_range = editing.views["axial"].viewbox.viewRange()
    axial_drag(editing, (8, 10), (8, 10), button=Qt.MouseButton.RightButton, steps=1)
    assert editing.edits.labels[8, 10, k] == 0 and editing.edits.labels[12, 10, k] == 1
    assert editing.views["axial"].viewbox.viewRange() == view_range  # erased, not zoomed
    key(editing, Qt.Key.Key_E)
    assert editing.tool is editing.tools["eraser"]
    axial_drag(editing, (11, 10), (14, 10))
    assert not editing.edits.labels[11:15, 10, k].any()
    assert editing.edits.labels[16, 10, k] == 1
    assert [s.name for s in editing.edits.history._undo] == [
        "Brush stroke", "Eraser stroke", "Eraser stroke"]


def test_paint_modes_only_background_and_only_one_label(editing, axial_drag):
    edits = editing.edits
    k = slice_k(editing)
    edits.selected_label = 1
    axial_drag(editing, (3, 8), (20, 8))  # a band of label 1
    edits.selected_label = 3
    edits.set_options(paint_mode="background", brush_size_mm=5.0)
    before = edits.labels.copy()
    axial_drag(editing, (3, 8), (20, 8))
    assert np.all(edits.labels[before == 1] == 1)  # label 1 kept
    assert np.any(edits.labels == 3)  # painted around it
    edits.selected_label = 2
    edits.set_options(paint_mode="label", only_label=1)
    before = edits.labels.copy()
    axial_drag(editing, (3, 8), (20, 8))
    changed = edits.labels != before
    assert changed.any() and np.all(before[changed] == 1) and np.all(edits.labels[changed] == 2)
    assert np.all(edits.labels[:, :, k][before[:, :, k] == 3] == 3)


def test_threshold_limited_painting(editing, axial_drag):
    edits = editing.edits
    image = editing.layers.image.volume.array  # 10000 i + 100 j + k
    edits.set_options(threshold=(0.0, 100000.0 + 0.5 * 10000), brush_size_mm=6.0)  # i <= 10
    axial_drag(editing, (4, 12), (20, 12))
    painted = edits.labels > 0
    assert painted.any()
    assert image[painted].max() <= 105000.0
    assert not painted[11:, :, :].any()


def test_three_d_brush_paints_a_sphere_across_slices(editing, pixel_of, axial_drag):
    edits = editing.edits
    edits.set_options(brush_3d=True, brush_size_mm=11.0)
    k = slice_k(editing)
    axial_drag(editing, (12, 15), (12, 15), steps=1)
    painted = np.argwhere(edits.labels > 0)
    ks = set(painted[:, 2].tolist())
    assert ks == {k - 2, k - 1, k, k + 1, k + 2}  # 5.5 mm radius over 2.5 mm slices
    ax = editing.views["axial"]
    centre = np.array(ax.tool_event(ax.canvas.to_view(QPointF(pixel_of(ax, (12, 15, k))))).voxel)
    assert np.abs(centre - (12, 15, k)).max() < 0.5
    spacing = editing.layers.image.volume.spacing
    dist = np.linalg.norm((painted - centre) * np.asarray(spacing), axis=1)
    assert dist.max() <= 5.5 + 1e-9


def test_brush_size_keys_shift_wheel_and_outline(editing, pixel_of, mouse, wheel):
    edits = editing.edits
    edits.set_options(brush_size_mm=5.0)
    key(editing, Qt.Key.Key_BracketRight)
    assert edits.options.brush_size_mm == 6.0
    key(editing, Qt.Key.Key_BracketLeft)
    key(editing, Qt.Key.Key_BracketLeft)
    assert edits.options.brush_size_mm == 4.0
    ax = editing.views["axial"]
    k = slice_k(editing)
    index = ax.index
    wheel(ax, 2, pixel_of(ax, (10, 10, k)), mods=SHIFT)
    assert edits.options.brush_size_mm == 6.0
    assert ax.index == index  # no slice change with the brush
    assert editing.edit_panel.size.value() == 6.0
    # The outline follows the pointer with the brush radius, in the label's colour.
    mouse(ax.canvas.viewport(), "move", pixel_of(ax, (10, 10, k)), Qt.MouseButton.NoButton)
    assert ax.tool_outline.isVisible()
    rect = ax.tool_outline.rect()
    assert rect.width() == pytest.approx(6.0)
    spacing = editing.layers.image.volume.spacing
    assert rect.center().x() == pytest.approx(10.5 * spacing[0], abs=0.6)
    assert ax.tool_outline.brush().color().getRgb()[:3] == edits.label_color(1)
    key(editing, Qt.Key.Key_E)  # the eraser: a dashed ring, no fill
    mouse(ax.canvas.viewport(), "move", pixel_of(ax, (10, 10, k)), Qt.MouseButton.NoButton)
    assert ax.tool_outline.pen().style() == Qt.PenStyle.DashLine
    assert ax.tool_outline.brush().color().alpha() == 0
    editing.set_tool("navigate")
    assert not ax.tool_outline.isVisible()
    wheel(ax, 1, pixel_of(ax, (10, 10, k)), mods=SHIFT)
    assert ax.index == index + 5  # Shift + wheel pages slices again


def test_fill_two_d_and_three_d_with_undo(window, synthetic_volume, synthetic_labels, pixel_of,
                                          click):
    vol = synthetic_volume()
    labels = synthetic_labels(vol)
    window.show_volume(vol, name="synthetic", labels=labels)
    window.grid.render_pending()
    key(window, Qt.Key.Key_F)
    assert window.tool is window.tools["fill"]
    edits = window.edits
    edits.selected_label = 1
    k = slice_k(window)
    ax = window.views["axial"]
    seed = (7, 8, k)  # inside the gray matter box, outside the white matter box
    assert edits.labels[seed] == 2
    expected = edits.labels.copy()
    flood_fill(expected, seed, 1, plane_axis=2)
    before = edits.labels.copy()
    click(ax, pixel_of(ax, seed))
    np.testing.assert_array_equal(edits.labels, expected)
    assert np.array_equal(edits.labels[:, :, k + 1], before[:, :, k + 1])  # 2-D: one slice
    key(window, Qt.Key.Key_Z, CTRL)
    np.testing.assert_array_equal(edits.labels, before)
    edits.set_options(fill_3d=True)
    click(ax, pixel_of(ax, seed))
    expected = before.copy()
    flood_fill(expected, seed, 1)
    np.testing.assert_array_equal(edits.labels, expected)
    assert not np.any(edits.labels == 2)  # the whole gray-matter shell was one region
    # "Only over background": a click on a labelled region fills nothing.
    edits.set_options(paint_mode="background")
    edits.selected_label = 3
    now = edits.labels.copy()
    click(ax, pixel_of(ax, seed))
    np.testing.assert_array_equal(edits.labels, now)


def test_fill_with_an_intensity_tolerance(editing, pixel_of, click):
    edits = editing.edits
    editing.set_tool("fill")
    edits.set_options(fill_tolerance=30000.0)  # three steps of i (10000 each)
    k = slice_k(editing)
    ax = editing.views["axial"]
    click(ax, pixel_of(ax, (10, 4, k)))
    filled = np.argwhere(edits.labels > 0)
    assert set(filled[:, 0].tolist()) == {7, 8, 9, 10, 11, 12, 13}
    assert set(filled[:, 2].tolist()) == {k}


def test_islands_and_largest_component_buttons(window, synthetic_volume):
    vol = synthetic_volume()
    arr = np.zeros(vol.shape, np.uint8)
    arr[2:10, 2:10, 2:8] = 2
    arr[15, 15, 5] = 2
    arr[18:20, 20:22, 5] = 2
    from engine.core.volume import LabelMap

    window.show_volume(vol, name="synthetic", labels=LabelMap.on_grid_of(vol, arr))
    edits = window.edits
    edits.selected_label = 2
    panel = window.edit_panel
    panel.island_size.setValue(3)
    panel.remove_islands.click()
    assert edits.labels[15, 15, 5] == 0 and edits.labels[18, 20, 5] == 2
    panel.keep_largest.click()
    assert int((edits.labels == 2).sum()) == 8 * 8 * 6
    assert len(edits.history) == 2
    panel.undo_button.click()
    panel.undo_button.click()
    np.testing.assert_array_equal(edits.labels, arr)


def test_new_label_and_label_selection_from_the_tables(editing, axial_drag):
    edits = editing.edits
    editing.edit_panel.new_label.click()  # the scripted dialog answers "Lesion", red
    assert edits.selected_label == 4
    assert editing.layers.edited.labelmap.labels.name(4) == "Lesion"
    assert edits.label_color(4) == (230, 30, 30)
    assert editing.edit_panel.label_combo.currentText().endswith("Lesion")
    axial_drag(editing, (5, 5), (8, 8))
    assert set(np.unique(edits.labels).tolist()) == {0, 4}
    # The label table lists it; a click on a row selects that label.
    panel = editing.labels_panel
    panel.set_layer(editing.layers.edited)
    values = [panel.table.item(r, 0).data(Qt.ItemDataRole.UserRole)
              for r in range(panel.table.rowCount())]
    assert 4 in values
    row = values.index(3)
    rect = panel.table.visualItemRect(panel.table.item(row, 1))
    QTest.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert edits.selected_label == 3
    # Keys 1-9 too, and a column head of the metrics table.
    key(editing, Qt.Key.Key_1)
    assert edits.selected_label == 1
    col = editing.metrics_panel.columns.index(2)
    editing.metrics_panel.table.horizontalHeader().sectionClicked.emit(col)
    assert edits.selected_label == 2


def test_apply_diff_and_apply_labels_are_single_undo_steps(editing):
    edits = editing.edits
    truth = editing.layers.ground_truth.labelmap.array
    changes = []
    edits.changed.connect(lambda: changes.append(1))
    edits.apply_labels(truth.copy(), "Use method result")
    np.testing.assert_array_equal(edits.labels, truth)
    assert edits.metrics()[2]["dice"] == 1.0
    assert changes and editing.layers.edited.modified
    # A diff computed on a copy (not yet in the mask) ...
    work = edits.labels.copy()
    diff = flood_fill(work, (9, 11, 6), 0, plane_axis=None)
    edits.apply_diff(diff, "Clear white matter")
    assert not np.any(edits.labels == 3)
    # ... and one already written in place by a kernel.
    diff = flood_fill(edits.labels, (9, 11, 6), 3, plane_axis=2)
    edits.apply_diff(diff, "Fill one slice")
    assert [s.name for s in edits.history._undo] == [
        "Use method result", "Clear white matter", "Fill one slice"]
    edits.undo()
    edits.undo()
    np.testing.assert_array_equal(edits.labels, truth)
    edits.undo()
    assert not edits.labels.any()
    assert edits.metrics()[2]["dice"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        edits.apply_labels(np.zeros((2, 2, 2), np.uint8), "bad")


def test_history_limit_setting(editing, axial_drag):
    panel = editing.edit_panel
    assert panel.budget.value() == 256
    panel.budget.setValue(64)
    assert editing.edits.history.budget_bytes == 64 * 2**20
    assert editing.settings.history_mb == 64
    axial_drag(editing, (4, 5), (10, 5))
    assert "1 step to undo" in panel.history_note.text()


def test_no_painting_outside_the_volume_or_without_a_mask(editing, pixel_of, drag):
    ax = editing.views["axial"]
    k = slice_k(editing)
    corner = pixel_of(ax, (0, 0, k))
    drag(ax, corner + QPoint(200, -300), corner + QPoint(250, -320))  # far outside
    assert not editing.edits.labels.any()
    assert len(editing.edits.history) == 0
