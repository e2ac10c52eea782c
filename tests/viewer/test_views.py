"""Slice views: linked crosshair, slice navigation, zoom/pan, orientation, layout."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from engine.display import extract_slice

pytestmark = pytest.mark.gui


def shown_slice(view) -> np.ndarray:
    return np.asarray(view.image_item.image)


def expected_slice(window, plane) -> np.ndarray:
    view = window.views[plane]
    vol = window.layers.image.volume
    return extract_slice(vol.array, view.geometry_, window.cursor.position[view.normal_axis])


def test_opening_a_volume_centres_the_cursor_and_fills_every_view(loaded):
    shape = loaded.layers.image.volume.shape
    assert loaded.cursor.position == tuple(n // 2 for n in shape)
    for plane, view in loaded.views.items():
        np.testing.assert_array_equal(shown_slice(view), expected_slice(loaded, plane))
        assert view.slider.maximum() == shape[view.normal_axis] - 1
        assert view.slider.value() == loaded.cursor.position[view.normal_axis]
    assert "synthetic" in loaded.windowTitle()


def test_click_moves_the_cursor_and_the_other_views_follow(loaded, qtbot, pixel_of, click):
    spacing = loaded.layers.image.volume.spacing
    axial = loaded.views["axial"]
    k = loaded.cursor.position[2]
    click(axial, pixel_of(axial, (5, 7, k)))
    assert loaded.cursor.position == (5, 7, k)
    loaded.grid.render_pending()
    assert loaded.views["coronal"].index == 7 and loaded.views["sagittal"].index == 5
    for plane in ("coronal", "sagittal"):
        np.testing.assert_array_equal(shown_slice(loaded.views[plane]),
                                      expected_slice(loaded, plane))
    # The crosshair of every view crosses at the cursor.
    assert axial.vline.value() == pytest.approx((5 + 0.5) * spacing[0])
    assert axial.hline.value() == pytest.approx((7 + 0.5) * spacing[1])
    coronal = loaded.views["coronal"]
    assert coronal.hline.value() == pytest.approx((k + 0.5) * spacing[2])


def test_drag_moves_the_cursor_continuously_and_stays_on_the_slice(loaded, pixel_of, drag):
    sagittal = loaded.views["sagittal"]
    i = loaded.cursor.position[0]
    start, end = pixel_of(sagittal, (i, 3, 2)), pixel_of(sagittal, (i, 20, 9))
    seen = []
    loaded.cursor.changed.connect(lambda new, old: seen.append(new))
    drag(sagittal, start, end)
    assert loaded.cursor.position == (i, 20, 9)
    assert len(seen) >= 3  # intermediate positions while dragging
    assert all(p[0] == i for p in seen)


def test_clicks_outside_the_volume_clamp_to_its_edge(loaded, pixel_of, click):
    shape = loaded.layers.image.volume.shape
    axial = loaded.views["axial"]
    k = loaded.cursor.position[2]
    corner = pixel_of(axial, (shape[0] - 1, shape[1] - 1, k))
    # Up and to the left of the last voxel (radiological: high i is on the left).
    click(axial, corner + QPoint(-200, -200))
    assert loaded.cursor.position[:2] == (shape[0] - 1, shape[1] - 1)


def test_wheel_scrolls_slices(loaded, wheel):
    shape = loaded.layers.image.volume.shape
    axial = loaded.views["axial"]
    k = loaded.cursor.position[2]
    wheel(axial, 1)
    assert loaded.cursor.position[2] == k + 1
    loaded.grid.render_pending()
    np.testing.assert_array_equal(shown_slice(axial), expected_slice(loaded, "axial"))
    wheel(axial, -3)
    assert loaded.cursor.position[2] == k - 2
    wheel(axial, 1, mods=Qt.KeyboardModifier.ShiftModifier)
    assert loaded.cursor.position[2] == k + 3
    wheel(axial, 100)
    assert loaded.cursor.position[2] == shape[2] - 1
    assert axial.slice_label.text() == f"{shape[2]} / {shape[2]}"


def test_keys_scroll_the_active_view(loaded, qtbot, pixel_of, click):
    shape = loaded.layers.image.volume.shape
    coronal = loaded.views["coronal"]
    click(coronal, pixel_of(coronal, (3, loaded.cursor.position[1], 4)))
    assert loaded.grid.active == "coronal"
    j = loaded.cursor.position[1]
    port = coronal.canvas
    qtbot.keyClick(port, Qt.Key.Key_Up)
    assert loaded.cursor.position[1] == j + 1
    qtbot.keyClick(port, Qt.Key.Key_Left)
    qtbot.keyClick(port, Qt.Key.Key_Down)
    assert loaded.cursor.position[1] == j - 1
    qtbot.keyClick(port, Qt.Key.Key_PageUp)
    assert loaded.cursor.position[1] == j + 4
    qtbot.keyClick(port, Qt.Key.Key_PageDown)
    assert loaded.cursor.position[1] == j - 1
    qtbot.keyClick(port, Qt.Key.Key_End)
    assert loaded.cursor.position[1] == shape[1] - 1
    qtbot.keyClick(port, Qt.Key.Key_Home)
    assert loaded.cursor.position[1] == 0
    assert loaded.cursor.position[0] == 3  # only the coronal slice moved


def test_slider_moves_the_slice(loaded):
    sagittal = loaded.views["sagittal"]
    sagittal.slider.setValue(2)
    assert loaded.cursor.position[0] == 2
    loaded.grid.render_pending()
    np.testing.assert_array_equal(shown_slice(sagittal), expected_slice(loaded, "sagittal"))


def _rect(view):
    r = view.view_rect()
    return np.array([r.left(), r.top(), r.width(), r.height()])


def test_zoom_pan_and_reset(loaded, qtbot, drag, wheel):
    shape = loaded.layers.image.volume.shape
    axial = loaded.views["axial"]
    home = _rect(axial)
    centre = axial.canvas.viewport().rect().center()
    wheel(axial, 2, centre, mods=Qt.KeyboardModifier.ControlModifier)
    zoomed = _rect(axial)
    assert zoomed[2] < home[2] * 0.8 and zoomed[3] < home[3] * 0.8
    drag(axial, centre, centre + QPoint(0, 60), button=Qt.MouseButton.RightButton)  # zoom out
    assert _rect(axial)[2] > zoomed[2]
    before = _rect(axial)
    drag(axial, centre, centre + QPoint(40, 0), button=Qt.MouseButton.MiddleButton)
    panned = _rect(axial)
    assert panned[2] == pytest.approx(before[2])
    assert abs(panned[0] - before[0]) > 1.0  # moved sideways, same size
    # The cursor did not move while zooming and panning.
    assert loaded.cursor.position == tuple(n // 2 for n in shape)
    axial.canvas.setFocus()
    qtbot.keyClick(axial.canvas, Qt.Key.Key_R)
    np.testing.assert_allclose(_rect(axial), home, atol=1e-6)


def test_physical_aspect_ratio_from_the_spacing(loaded, pixel_of):
    spacing = loaded.layers.image.volume.spacing
    coronal = loaded.views["coronal"]  # x: i (1 mm), y: k (2.5 mm)
    j = loaded.cursor.position[1]
    a, b = pixel_of(coronal, (2, j, 2)), pixel_of(coronal, (2, j, 6))
    c = pixel_of(coronal, (6, j, 2))
    vertical, horizontal = abs(b.y() - a.y()), abs(c.x() - a.x())
    assert vertical / horizontal == pytest.approx(spacing[2] / spacing[0], rel=0.05)


def test_right_side_up_and_radiological_convention(loaded, pixel_of):
    shape = loaded.layers.image.volume.shape
    k = loaded.cursor.position[2]
    axial = loaded.views["axial"]
    right, left = pixel_of(axial, (shape[0] - 1, 5, k)), pixel_of(axial, (0, 5, k))
    assert right.x() < left.x()  # patient right on the screen's left
    front, back = pixel_of(axial, (5, shape[1] - 1, k)), pixel_of(axial, (5, 0, k))
    assert front.y() < back.y()  # anterior up
    coronal = loaded.views["coronal"]
    j = loaded.cursor.position[1]
    assert pixel_of(coronal, (5, j, shape[2] - 1)).y() < pixel_of(coronal, (5, j, 0)).y()
    sagittal = loaded.views["sagittal"]
    i = loaded.cursor.position[0]
    assert pixel_of(sagittal, (i, shape[1] - 1, 5)).x() < pixel_of(sagittal, (i, 0, 5)).x()
    assert pixel_of(sagittal, (i, 5, shape[2] - 1)).y() < pixel_of(sagittal, (i, 5, 0)).y()
    letters = {e: axial.canvas.letters[e].text() for e in ("left", "right", "top", "bottom")}
    assert letters == {"left": "R", "right": "L", "top": "A", "bottom": "P"}


def test_neurological_convention_is_a_persistent_setting(loaded, settings, pixel_of, click):
    shape = loaded.layers.image.volume.shape
    loaded.set_convention("neurological")
    k = loaded.cursor.position[2]
    axial = loaded.views["axial"]
    assert pixel_of(axial, (shape[0] - 1, 5, k)).x() > pixel_of(axial, (0, 5, k)).x()
    assert axial.canvas.letters["left"].text() == "L"
    sagittal = loaded.views["sagittal"]
    assert sagittal.canvas.letters["left"].text() == "A"  # sagittal does not change
    assert settings.convention == "neurological"
    # A click still lands on the voxel under the pointer.
    click(axial, pixel_of(axial, (20, 4, k)))
    assert loaded.cursor.position == (20, 4, k)


def test_layouts_and_maximise(loaded, qtbot, mouse, wheel):
    grid = loaded.grid
    assert grid.info.isVisible()  # 2 x 2 by default
    loaded.actions_["layout_1x3"].trigger()
    assert not grid.info.isVisible()
    assert all(v.isVisible() for v in grid.views.values())
    axial = grid.views["axial"]
    mouse(axial.canvas.viewport(), "double", axial.canvas.viewport().rect().center())
    assert grid.maximised == "axial"
    assert axial.isVisible() and not grid.views["coronal"].isVisible()
    wheel(axial, 1)  # hidden views do not render but catch up when shown
    axial.max_button.click()
    assert grid.maximised is None and grid.views["coronal"].isVisible()
    qtbot.waitUntil(lambda: not grid.views["coronal"]._stale_image, timeout=2000)
    assert loaded.settings.layout == "1x3"


def test_crosshair_toggle(loaded, qtbot):
    axial = loaded.views["axial"]
    assert axial.vline.isVisible()
    axial.canvas.setFocus()
    qtbot.keyClick(axial.canvas, Qt.Key.Key_C)
    assert not axial.vline.isVisible() and not loaded.views["sagittal"].hline.isVisible()
    loaded.set_crosshair_visible(True)
    assert axial.vline.isVisible()


def test_status_bar_readout(loaded, pixel_of, mouse):
    axial = loaded.views["axial"]
    k = loaded.cursor.position[2]
    port = axial.canvas.viewport()
    target = (10, 12, k)  # inside the white-matter box of the synthetic labels
    mouse(port, "move", pixel_of(axial, target), Qt.MouseButton.NoButton)
    text = loaded.readout.full_text
    vol = loaded.layers.image.volume
    world = vol.voxel_to_world(target)
    assert "Voxel (10, 12, 6)" in text
    assert "World (" + ", ".join(f"{v:.1f}" for v in world) + ") mm" in text
    assert f"Value {vol.array[target]:.6g}" in text
    assert "White matter" in text
    # Leaving the view shows the cursor's voxel again.
    axial.pointer_hover(None, frozenset())
    centre = loaded.cursor.position
    assert f"Voxel ({centre[0]}, {centre[1]}, {centre[2]})" in loaded.readout.full_text
