"""What a first-time reader tripped over (issue 17): the edited layer drawn on top, keys
after a click in a side panel, the wheel over settings, Esc during a stroke, the status
read-out after scrolling, and states that must follow what the user did."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QComboBox, QLineEdit, QPushButton

from viewer.layers import drawing_order

pytestmark = pytest.mark.gui


@pytest.fixture
def with_truth(window, synthetic_volume, synthetic_labels):
    """Edited mask = truth = a method result (the label boxes), Brush on label 1."""
    vol = synthetic_volume()
    boxes = synthetic_labels(vol)
    window.show_volume(vol, name="synthetic", labels=boxes.with_array(boxes.array.copy()),
                       truth=boxes.with_array(boxes.array.copy()))
    window.add_result_layer(boxes.with_array(boxes.array.copy()), "Result", opacity=0.5)
    window.grid.render_pending()
    window.set_tool("brush")
    window.edits.set_options(brush_size_mm=3.0)
    window.select_label(1)
    return window


def _axial_centre(window) -> tuple[int, int, int]:
    nx, ny, _ = window.layers.image.volume.shape
    return (nx // 2 + 2, ny // 2 + 2, window.cursor.position[2])


def _wheel_event(widget, notches: int) -> QWheelEvent:
    pos = QPointF(widget.rect().center())
    return QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(0, 0),
                       QPoint(0, 120 * notches), Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)


# -- 1. you see what you paint ------------------------------------------------------------
def test_edited_layer_is_drawn_over_truth_and_results(with_truth):
    truth = with_truth.layers.ground_truth
    assert truth.outline  # an outline while a mask is edited: it covers no area
    order = drawing_order(with_truth.layers.labels)
    assert [lay.role for lay in order] == ["result", "edit", "truth"]
    truth.set_outline(False)  # filled, the truth goes under the edited mask
    assert [lay.role for lay in drawing_order(with_truth.layers.labels)] == \
        ["truth", "result", "edit"]
    ax = with_truth.views["axial"]
    z = {lay.role: ax.overlay_item(lay).zValue() for lay in with_truth.layers.labels}
    assert z["edit"] > z["result"] > z["truth"]
    with_truth.add_result_layer(truth.labelmap.with_array(truth.labelmap.array.copy()),
                                "A newer result")
    assert drawing_order(with_truth.layers.labels)[-1] is with_truth.layers.edited


def test_brush_stroke_changes_the_visible_pixels(with_truth, pixel_of, drag, to_array):
    ax = with_truth.views["axial"]
    voxel = _axial_centre(with_truth)
    assert with_truth.layers.edited.label_at(voxel) == 3
    point = pixel_of(ax, voxel)
    before = to_array(ax.canvas.grab().toImage()).astype(int)
    drag(ax, point, point + QPoint(2, 0), steps=2)
    ax.render_pending()
    assert with_truth.layers.edited.label_at(voxel) == 1
    after = to_array(ax.canvas.grab().toImage()).astype(int)
    y, x = point.y(), point.x()
    change = np.abs(after[y - 1: y + 2, x - 1: x + 2] - before[y - 1: y + 2, x - 1: x + 2])
    # Summed over R, G, B: about 110 with the edited layer on top; 75 when it was drawn
    # under the ground truth and the result (the stroke barely showed).
    assert change.sum(axis=-1).mean() > 95


def test_truth_is_filled_when_there_is_nothing_to_edit(window, synthetic_volume,
                                                       synthetic_labels):
    vol = synthetic_volume()
    boxes = synthetic_labels(vol)
    window.show_volume(vol, labels=boxes.with_array(np.zeros_like(boxes.array)), truth=boxes)
    assert not window.layers.ground_truth.outline


# -- 2. keys after a click in a side panel ---------------------------------------------------
def test_tool_and_slice_keys_work_after_a_side_panel_click(qtbot, loaded):
    loaded.activateWindow()
    button = loaded.edit_panel.findChildren(QPushButton)[0]
    button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    button.setFocus()
    assert not loaded.views["axial"].canvas.hasFocus()
    QTest.keyClick(button, Qt.Key.Key_B)
    assert loaded.tool is loaded.tools["brush"]
    QTest.keyClick(button, Qt.Key.Key_N)
    assert loaded.tool is loaded.tools["navigate"]
    before = loaded.cursor.position[2]
    QTest.keyClick(button, Qt.Key.Key_Up)
    assert loaded.cursor.position[2] == before + 1


def test_text_fields_keep_their_keys(qtbot, loaded):
    field = QLineEdit()
    loaded.labels_panel.layout().addWidget(field)
    field.setFocus()
    QTest.keyClick(field, Qt.Key.Key_B)
    assert field.text() == "b"
    assert loaded.tool is loaded.tools["navigate"]


def test_keys_work_after_switching_the_layout(qtbot, loaded):
    loaded.set_layout("2x2")
    loaded.set_layout("1x3")
    QTest.keyClick(loaded, Qt.Key.Key_E)
    assert loaded.tool is loaded.tools["eraser"]


# -- 3. the wheel over settings ----------------------------------------------------------------
def test_wheel_over_an_unfocused_combo_box_leaves_it(qtbot, loaded):
    combo = loaded.window_panel.colour_map
    assert isinstance(combo, QComboBox) and combo.count() > 2
    assert combo.focusPolicy() == Qt.FocusPolicy.StrongFocus
    combo.setCurrentIndex(1)
    loaded.views["axial"].canvas.setFocus()
    QApplication.sendEvent(combo, _wheel_event(combo, -1))
    assert combo.currentIndex() == 1


# -- 12. Esc during a stroke ----------------------------------------------------------------
@pytest.mark.parametrize("tool", ["brush", "eraser"])
def test_esc_during_a_drag_takes_the_stroke_back(with_truth, pixel_of, mouse, tool):
    with_truth.set_tool(tool)
    ax = with_truth.views["axial"]
    port = ax.canvas.viewport()
    before = with_truth.layers.edited.labelmap.array.copy()
    steps_before = len(with_truth.edits.history)
    voxel = _axial_centre(with_truth)
    start = pixel_of(ax, voxel)
    mouse(port, "press", start)
    mouse(port, "move", start + QPoint(8, 0))
    assert not np.array_equal(with_truth.layers.edited.labelmap.array, before)
    ax.canvas.setFocus()
    QTest.keyClick(ax.canvas, Qt.Key.Key_Escape)
    mouse(port, "move", start + QPoint(16, 0))
    mouse(port, "release", start + QPoint(16, 0))
    assert np.array_equal(with_truth.layers.edited.labelmap.array, before)
    assert len(with_truth.edits.history) == steps_before
    assert not with_truth.edits.undo()
    # The next stroke is an ordinary one again.
    mouse(port, "press", start)
    mouse(port, "release", start)
    assert len(with_truth.edits.history) == steps_before + 1


# -- 6. the status bar ---------------------------------------------------------------------
def test_readout_follows_the_slice_under_a_still_pointer(loaded, pixel_of, mouse, wheel):
    ax = loaded.views["axial"]
    k = loaded.cursor.position[2]
    point = pixel_of(ax, (5, 6, k))
    mouse(ax.canvas.viewport(), "move", point, Qt.MouseButton.NoButton)
    assert f"Voxel (5, 6, {k})" in loaded.readout.full_text
    wheel(ax, 1, pos=point)
    assert f"Voxel (5, 6, {k + 1})" in loaded.readout.full_text


def test_long_readout_is_elided_with_the_whole_text_in_the_tooltip(loaded):
    loaded.status.set_readout("Voxel (1, 2, 3)   " + "   ".join(f"Layer {n}: x" for n in
                                                               range(40)))
    assert loaded.readout.text().endswith("…")
    assert "Layer 39: x" in loaded.readout.toolTip()


# -- 7. states that follow the user ---------------------------------------------------------
def test_window_box_says_manual_after_a_drag(loaded):
    panel = loaded.window_panel
    assert panel.presets.currentText() == "Automatic"
    low, high = loaded.layers.image.levels
    loaded._window_level_drag(25.0, -10.0)
    assert loaded.layers.image.levels != (low, high)
    assert panel.presets.currentText().startswith("Manual")
    panel.apply_automatic()
    assert panel.presets.currentText() == "Automatic"


def test_differences_untick_when_their_layer_is_hidden(with_truth):
    edits = with_truth.edits
    edits.show_differences(True)
    layer = edits.difference_layer
    assert with_truth.metrics_panel.differences.isChecked()
    layer.set_visible(False)
    assert not edits.differences_shown
    assert not with_truth.metrics_panel.differences.isChecked()
    edits.show_differences(True)
    assert layer.visible


def test_new_mask_is_no_longer_new_after_a_result(window, synthetic_volume, synthetic_labels):
    vol = synthetic_volume()
    window.io.show_image(vol, name="synthetic")
    edited = window.layers.edited
    assert edited.name.endswith("(new)")
    window.layers.add_labels(synthetic_labels(vol), name="Ground truth", role="truth")
    assert not window.layers.ground_truth.outline  # nothing to edit yet: filled
    window.edits.apply_labels(synthetic_labels(vol).array, "Use Result as the edited mask")
    assert not window.layers.edited.name.endswith("(new)")
    assert window.layers.ground_truth.outline  # now there is a mask to see


# -- 8. plain names -----------------------------------------------------------------------
def test_every_method_pipeline_and_parameter_has_a_plain_name():
    from engine.core.params import describe
    from engine.methods.pipeline import PIPELINES, STEPS
    from viewer.plain_names import (
        METHOD_NAMES,
        PARAM_NAMES,
        pipeline_label,
        plain_summary,
        plain_unit,
    )

    missing = [n for n in STEPS if n not in METHOD_NAMES]
    missing += [f"{n}.{i.name}" for n, spec in STEPS.items()
                for i in describe(spec.params_type) if i.name not in PARAM_NAMES]
    assert missing == []
    assert pipeline_label("cnn+rd+ac") == \
        "Network, then reaction-diffusion and active-contour refinement"
    assert all(pipeline_label(n) != n for n in PIPELINES)
    assert "eq." not in plain_summary(STEPS["reaction_diffusion"].summary)
    assert "t.u." not in plain_unit("mm²/t.u.")


def test_forms_show_plain_names_with_the_technical_ones_in_tooltips(qtbot):
    from PySide6.QtWidgets import QLabel

    from engine.methods.cnn import CNN_SPECS
    from viewer.panels.params_form import ParamsForm

    form = ParamsForm(CNN_SPECS[0].params_type)
    qtbot.addWidget(form)
    labels = {lab.text(): lab.toolTip() for lab in form.findChildren(QLabel)}
    assert "Test-time augmentation (flips)" in labels
    assert "tta" not in labels
    assert "Technical name: tta" in labels["Test-time augmentation (flips)"]


# -- 10. Label Layers rows while a modal dialog runs its own event loop --------------------------
def test_layer_rows_do_not_pile_up_before_the_event_loop_returns(loaded, synthetic_labels):
    from PySide6.QtWidgets import QCheckBox

    panel = loaded.layers_panel
    vol = loaded.layers.image.volume
    # No event processed in between, as inside the crash-recovery question's own loop.
    loaded.layers.add_labels(synthetic_labels(vol), name="Ground truth", role="truth")
    loaded.add_result_layer(synthetic_labels(vol), "Result")
    QApplication.processEvents()  # shows the new rows; deferred deletions stay pending
    shown = [box for box in panel.findChildren(QCheckBox)
             if box.objectName().startswith("layerVisible_") and box.isVisible()]
    assert len(shown) == len(loaded.layers.labels) == 3
    names = [panel._grid.itemAtPosition(2 * r, 0).widget().text() for r in range(3)]
    assert names == [lay.name for lay in reversed(loaded.layers.labels)]


# -- 5. the comparison fills itself -----------------------------------------------------------
def test_comparison_shows_fast_metrics_at_once_then_surface_distances(qtbot, window,
                                                                      tissue_phantom):
    volume, truth = tissue_phantom()
    window.show_volume(volume, name="phantom", truth=truth)
    shifted = np.roll(truth.array, 2, axis=0)
    window.add_result_layer(truth.with_array(shifted), "shifted")
    comparison = window.methods.open_comparison()
    table = comparison.table
    fast: list[float] = []
    table.fast_computed.connect(
        lambda _n: fast.append(next(r for r in table.model.rows if r["label"] == "mean")["hd95"]))
    with qtbot.waitSignal(table.computed, timeout=120_000):
        pass  # nothing pressed: opening the window computes
    assert len(fast) >= 1 and np.isnan(fast[0])  # Dice and volumes first, no HD95 yet
    mean = next(r for r in table.model.rows
                if r["method"] == "shifted" and r["label"] == "mean")
    assert 0.0 < mean["dice"] < 1.0 and mean["hd95"] >= 1.0
    comparison.set_disagreement_shown(True)
    note = comparison.disagreement_pane.note
    assert "■" in note.text() and "differ" in note.text()
    # The panes fit the labelled part of the image (the phantom's head fills ~34 of its
    # 40 voxels): the tighter of the two directions shows little more than that.
    comparison.reset_views()
    view = comparison.panes[0].view
    geo, (sx, sy) = view.geometry_, view._spacing
    (x0, x1), (y0, y1) = view.viewbox.viewRange()
    labelled = truth.array.any(axis=geo.normal_axis)
    extent_x = np.flatnonzero(labelled.any(axis=1 if geo.x_axis < geo.y_axis else 0))
    extent_y = np.flatnonzero(labelled.any(axis=0 if geo.x_axis < geo.y_axis else 1))
    ratio = min((x1 - x0) / ((extent_x[-1] - extent_x[0] + 1) * sx),
                (y1 - y0) / ((extent_y[-1] - extent_y[0] + 1) * sy))
    assert ratio < 1.15
