"""Window/level, label overlays (opacity, outline, per-label visibility), panels."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QTextBrowser

from engine.display import CT_PRESETS, extract_slice, range_to_window
from viewer.layers import drawing_order

pytestmark = pytest.mark.gui


def overlay(window, plane="axial", layer=None):
    layer = layer or window.layers.edited
    view = window.views[plane]
    window.grid.render_pending()
    return view.overlay_item(layer)


def test_shift_drag_changes_window_and_level(loaded, drag, synthetic_volume):
    image = loaded.layers.image
    before = range_to_window(*image.levels)
    axial = loaded.views["axial"]
    start = axial.canvas.viewport().rect().center()
    drag(axial, start, start + QPoint(50, 0), mods=Qt.KeyboardModifier.ShiftModifier)
    width, level = range_to_window(*image.levels)
    assert width > before[0] and level == pytest.approx(before[1])
    drag(axial, start, start + QPoint(0, -40), mods=Qt.KeyboardModifier.ShiftModifier)
    assert range_to_window(*image.levels)[1] < level  # dragging up brightens
    # Every view and the panel show the new levels; the cursor did not move.
    for view in loaded.views.values():
        np.testing.assert_allclose(view.image_item.getLevels(), image.levels)
    panel = loaded.window_panel
    assert panel.width_box.value() == pytest.approx(range_to_window(*image.levels)[0], rel=1e-3)
    np.testing.assert_allclose(panel.levels(), image.levels)
    assert loaded.cursor.position == tuple(n // 2 for n in synthetic_volume.shape)


def test_histogram_region_spin_boxes_and_auto(loaded, qtbot):
    image = loaded.layers.image
    panel = loaded.window_panel
    panel.set_levels(1000.0, 50000.0)  # as if the region were dragged
    assert image.levels == pytest.approx((1000.0, 50000.0))
    panel.width_box.setValue(2000.0)
    panel.level_box.setValue(3000.0)
    assert image.levels == pytest.approx((2000.0, 4000.0))
    loaded.views["axial"].canvas.setFocus()
    qtbot.keyClick(loaded.views["axial"].canvas, Qt.Key.Key_W)
    assert image.levels == image.default_levels


def test_colour_maps(loaded):
    panel = loaded.window_panel
    image = loaded.layers.image
    item = loaded.views["axial"].image_item
    panel.colour_map.setCurrentText("Viridis")
    assert image.lut is not None and image.lut.shape == (256, 3)
    assert item.lut is not None
    panel.colour_map.setCurrentText("Inverted grey")
    assert image.lut[0, 0] == 255 and image.lut[-1, 0] == 0
    panel.colour_map.setCurrentText("Grey")
    assert image.lut is None and item.lut is None


def test_ct_presets_in_hounsfield_units(window, synthetic_volume):
    rng = np.random.default_rng(1)
    hu = rng.integers(-1024, 2000, size=(20, 20, 10)).astype(np.int16)
    vol = synthetic_volume(shape=(20, 20, 10))
    ct = vol.with_array(hu, modality="CT")
    window.show_volume(ct, name="ct")
    image = window.layers.image
    assert image.levels == CT_PRESETS["Abdomen"].range
    panel = window.window_panel
    for name in ("Brain", "Subdural", "Lung", "Bone", "Abdomen"):
        row = panel.presets.findData(name)
        assert row > 0 and panel.presets.model().item(row).isEnabled()
        panel.presets.activated.emit(row)
        assert image.levels == CT_PRESETS[name].range
    np.testing.assert_allclose(window.views["coronal"].image_item.getLevels(),
                               CT_PRESETS["Abdomen"].range)
    # The stored voxel values are untouched Hounsfield units.
    assert window.layers.image.volume.array.dtype == np.int16


def test_mr_opens_with_a_percentile_window_and_presets_are_off(loaded):
    panel = loaded.window_panel
    row = panel.presets.findData("Brain")
    assert not panel.presets.model().item(row).isEnabled()
    lo, hi = loaded.layers.image.levels
    data = loaded.layers.image.volume.array
    assert data.min() < lo < hi < data.max()


def test_overlay_colours_come_from_the_label_table(loaded):
    item = overlay(loaded)
    layer = loaded.layers.edited
    k = loaded.cursor.position[2]
    labels = extract_slice(layer.labelmap.array, loaded.views["axial"].geometry_, k)
    rgba = np.asarray(item.image)
    assert rgba.shape == (*labels.shape, 4)
    for value in (1, 2, 3):
        where = labels == value
        assert where.any()
        np.testing.assert_array_equal(rgba[where][:, :3],
                                      np.tile(layer.labelmap.labels.color(value), (where.sum(), 1)))
    assert (rgba[labels == 0][:, 3] == 0).all()


def test_opacity_visibility_and_global_opacity(loaded, qtbot):
    layer = loaded.layers.edited
    item = overlay(loaded)
    assert item.opacity() == pytest.approx(0.5)
    row = loaded.layers_panel.row_for(layer)
    row.opacity.setValue(20)
    assert layer.opacity == pytest.approx(0.2)
    assert item.opacity() == pytest.approx(0.2)
    loaded.layers_panel.global_opacity.setValue(50)
    assert item.opacity() == pytest.approx(0.1)
    row.visible.setChecked(False)
    assert not item.isVisible() and not layer.visible
    row.visible.setChecked(True)
    assert item.isVisible()
    loaded.views["axial"].canvas.setFocus()
    qtbot.keyClick(loaded.views["axial"].canvas, Qt.Key.Key_L)  # hide all label layers
    assert not item.isVisible() and not loaded.layers_panel.shown.isChecked()
    loaded.layers_panel.shown.setChecked(True)
    assert item.isVisible()


def test_outline_mode(loaded, qtbot):
    layer = loaded.layers.edited
    filled = np.asarray(overlay(loaded).image)[..., 3] > 0
    loaded.layers_panel.row_for(layer).outline.setChecked(True)
    assert layer.outline
    outlined = np.asarray(overlay(loaded).image)[..., 3] > 0
    assert 0 < outlined.sum() < filled.sum()
    assert not (outlined & ~filled).any()  # outline pixels are label pixels
    loaded.views["axial"].canvas.setFocus()
    qtbot.keyClick(loaded.views["axial"].canvas, Qt.Key.Key_O)  # toggle all back to filled
    assert not layer.outline
    assert (np.asarray(overlay(loaded).image)[..., 3] > 0).sum() == filled.sum()


def test_label_table_counts_and_per_label_visibility(loaded):
    panel = loaded.labels_panel
    layer = loaded.layers.edited
    assert panel.layer is layer
    counts = layer.counts()
    assert panel.table.rowCount() == 3
    for row in range(3):
        value = panel.table.item(row, 0).data(Qt.ItemDataRole.UserRole)
        n = counts[value][0]
        assert panel.table.item(row, 0).text() == layer.labelmap.labels.name(value)
        assert panel.table.item(row, 2).text() == f"{n:,}"
        ml = n * 2.5 / 1000.0  # 1 x 1 x 2.5 mm voxels
        assert panel.table.item(row, 3).text() == f"{ml:,.2f}"
    gm_row = next(r for r in range(3) if panel.table.item(r, 0).data(Qt.ItemDataRole.UserRole) == 2)
    panel.table.item(gm_row, 0).setCheckState(Qt.CheckState.Unchecked)
    assert 2 in layer.hidden
    k = loaded.cursor.position[2]
    labels = extract_slice(layer.labelmap.array, loaded.views["axial"].geometry_, k)
    alpha = np.asarray(overlay(loaded).image)[..., 3]
    assert (alpha[labels == 2] == 0).all() and (alpha[labels == 3] > 0).all()


def test_several_label_layers_each_with_its_own_item(loaded, synthetic_labels):
    vol = loaded.layers.image.volume
    truth = synthetic_labels(vol)
    truth.array[:] = np.roll(truth.array, 3, axis=0)
    loaded.layers.add_labels(truth, name="Ground truth", role="truth", opacity=0.3,
                             outline=False)
    result = loaded.add_result_layer(synthetic_labels(vol), "Otsu", opacity=0.7)
    loaded.grid.render_pending()
    for view in loaded.views.values():
        items = [view.overlay_item(layer) for layer in drawing_order(loaded.layers.labels)]
        assert all(item is not None and item.image is not None for item in items)
        # Drawn by role: ground truth, results, then the edited mask on top.
        assert [i.zValue() for i in items] == sorted(i.zValue() for i in items)
        assert view.overlay_item(loaded.layers.edited).zValue() == max(i.zValue() for i in items)
    assert view.overlay_item(result).opacity() == pytest.approx(0.7)
    assert len(loaded.layers_panel.rows) == 3
    loaded.labels_panel.chooser.setCurrentIndex(1)
    assert loaded.labels_panel.layer is loaded.layers.ground_truth
    loaded.layers.remove(result)
    assert loaded.views["axial"].overlay_item(result) is None


def test_refresh_redraws_only_views_crossing_the_changed_box(loaded, qtbot):
    layer = loaded.layers.edited
    i, j, _k = loaded.cursor.position
    renders = {p: [] for p in loaded.views}
    for plane, view in loaded.views.items():
        view.rendered.connect(lambda p=plane: renders[p].append(1))
    # A box on another axial slice but crossing the coronal and sagittal slices.
    box = (slice(i - 1, i + 2), slice(j - 1, j + 2), slice(0, 2))
    layer.labelmap.array[box] = 3
    loaded.refresh_labels(layer, box)
    loaded.grid.render_pending()
    assert renders["axial"] == [] and renders["coronal"] and renders["sagittal"]
    coronal = np.asarray(loaded.views["coronal"].overlay_item(layer).image)
    assert tuple(coronal[0, i, :3]) == layer.labelmap.labels.color(3)
    assert layer.modified and loaded.windowTitle().startswith("synthetic*")
    qtbot.waitUntil(lambda: loaded.labels_panel.total.text().startswith(
        f"Labelled: {sum(n for v, (n, _) in layer.counts().items() if v):,}"), timeout=2000)


def test_help_reference_lists_every_binding(loaded, qtbot):
    from viewer.shortcuts import KEYS, MOUSE

    loaded.actions_["help_reference"].trigger()
    dialog = loaded.menus.reference
    assert dialog.isVisible()
    text = dialog.findChild(QTextBrowser).toPlainText()
    for row in KEYS:
        assert row.text.replace("&", "").rstrip("…") in text
    for row in MOUSE:
        assert row.text in text
    assert "Shift+Left button" in text


def test_slices_without_labels_draw_no_overlay(loaded):
    item = overlay(loaded, "sagittal")
    assert item.isVisible()
    loaded.views["sagittal"].set_slice(0)  # the synthetic labels start at i = 6
    loaded.grid.render_pending()
    assert not item.isVisible()
    loaded.views["sagittal"].set_slice(10)
    loaded.grid.render_pending()
    assert item.isVisible()
    loaded.layers.edited.set_opacity(0.0)
    assert not item.isVisible()


def test_menu_bar_and_the_entries_without_a_key(window):
    def titles():
        return [a.text() for a in window.menuBar().actions()]

    assert titles() == ["&File", "&Edit", "&View", "&Tools", "&Help"]
    assert window.methods.panel is window.docks["methods"].widget()
    assert titles() == ["&File", "&Edit", "&View", "&Tools", "&Segment", "&Help"]
    assert window.menus.tool_actions["refine"] in window.menus.segment_menu.actions()
    # View → Left–Right Convention: a menu entry with no key calls the window.
    assert window.views["axial"].viewbox.xInverted()  # radiological: right on screen left
    window.menus.convention_actions["neurological"].trigger()
    assert window.settings.convention == "neurological"
    assert not window.views["axial"].viewbox.xInverted()  # patient right on screen right
    # Tools: each entry names its key; a key and an entry check the same tool.
    brush = window.menus.tool_actions["brush"]
    assert brush.text() == "Brush\tB" and brush.iconText() == "Brush"
    brush.trigger()
    assert window.tool is window.tools["brush"]
    window.actions_["tool_fill"].trigger()
    assert window.tool is window.tools["fill"] and window.menus.tool_actions["fill"].isChecked()
    assert not brush.isChecked()
