"""The Refine tool: click-to-refine with an active contour in the worker, one undo step."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QGraphicsRectItem

from engine.core.metrics import dice
from viewer.tools.refine import drag_box

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture
def refining(window, tissue_phantom):
    volume, truth = tissue_phantom()
    window.show_volume(volume, name="phantom", truth=truth)
    window.grid.render_pending()
    window.set_tool("refine")
    window.edits.selected_label = 3
    window.cursor.set((20, 20, 14))
    window.grid.render_pending()
    return window, truth


def test_a_click_grows_the_selected_label_as_one_undo_step(qtbot, refining, pixel_of, click):
    window, truth = refining
    refiner = window.methods.refiner
    edited = window.layers.edited
    axial = window.views["axial"]
    with qtbot.waitSignal(refiner.finished, timeout=120_000) as blocker:
        click(axial, pixel_of(axial, (20, 20, 14)))
        assert refiner.running  # in the worker: the click returned at once
    changed = blocker.args[0]
    grown = edited.labelmap.array == 3
    assert changed == int(grown.sum()) > 500
    assert dice(edited.labelmap.array, truth.array, 3) > 0.85
    assert edited.modified
    assert window.edits.history.undo_name == "Grow label 3"
    assert window.edits.undo()
    assert not edited.labelmap.array.any()
    assert window.edits.redo()
    assert int((edited.labelmap.array == 3).sum()) == changed


def test_a_click_inside_the_label_refines_its_boundary(qtbot, refining, pixel_of, click):
    window, truth = refining
    refiner = window.methods.refiner
    shifted = np.roll(truth.array, 2, axis=0)
    window.edits.apply_labels(shifted, "Rough labels")
    before = dice(window.layers.edited.labelmap.array, truth.array, 3)
    panel = window.methods.panel
    panel.refine_form.set_value("iterations", 120)
    axial = window.views["axial"]
    with qtbot.waitSignal(refiner.finished, timeout=120_000):
        click(axial, pixel_of(axial, (21, 20, 14)))
    after = dice(window.layers.edited.labelmap.array, truth.array, 3)
    assert after > before + 0.03
    assert window.edits.history.undo_name == "Refine label 3"
    window.edits.undo()
    assert np.array_equal(window.layers.edited.labelmap.array, shifted)


def test_a_drag_draws_a_box_and_starts_from_it(qtbot, refining, pixel_of, drag):
    window, truth = refining
    methods = window.methods
    axial = window.views["axial"]
    boxes = []
    methods.refiner.request = (lambda original: lambda **kw: boxes.append(kw) or original(**kw))(
        methods.refiner.request)
    window.tool_context.extras["refine"] = methods.refiner.request
    seen_preview = []
    original_preview = methods.preview_box

    def preview(plane, a, b):
        original_preview(plane, a, b)
        item = methods.box_item
        seen_preview.append(0 if item is None else
                            int(isinstance(item, QGraphicsRectItem)
                                and item.scene() is axial.viewbox.scene()))

    window.tool_context.extras["refine_preview"] = preview
    with qtbot.waitSignal(methods.refiner.finished, timeout=120_000):
        drag(axial, pixel_of(axial, (11, 11, 14)), pixel_of(axial, (29, 29, 14)))
    assert max(seen_preview) == 1 and seen_preview[-1] == 0  # drawn while dragging, then gone
    assert boxes and "box" in boxes[0]
    low, high = boxes[0]["box"]
    assert low[:2] == (11, 11) and high[:2] == (30, 30) and low[2] < 14 < high[2]
    assert window.edits.history.undo_name == "Grow (box) label 3"
    assert dice(window.layers.edited.labelmap.array, truth.array, 3) > 0.8


def test_one_refinement_at_a_time_and_messages(qtbot, refining, pixel_of, click):
    window, _ = refining
    refiner = window.methods.refiner
    failures = []
    refiner.failed.connect(failures.append)
    axial = window.views["axial"]
    click(axial, pixel_of(axial, (20, 20, 14)))
    click(axial, pixel_of(axial, (22, 20, 14)))  # while the first one runs
    assert failures == ["a refinement is still running"]
    qtbot.waitUntil(lambda: not refiner.running, timeout=120_000)
    assert window.edits.history.undo_name == "Grow label 3"


def test_drag_box_is_a_cube_for_a_square_drag():
    low, high = drag_box((10, 10, 20), (19, 19, 20), 2, (1.0, 1.0, 1.0), (64, 64, 64))
    assert low == (10, 10, 15) and high == (20, 20, 26)
    low, high = drag_box((5, 30, 2), (5, 40, 12), 0, (1.0, 1.0, 1.0), (10, 64, 64))
    assert low == (0, 30, 2) and high == (10, 41, 13)  # clipped to the volume
