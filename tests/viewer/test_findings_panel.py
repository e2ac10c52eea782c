"""The Findings panel on a small phantom with synthetic lesions: the table and its
sorting, navigation (row clicks, the next/previous keys), the RANO diameters, accept
and reject (one undo step), a lesion painted with the brush, the confidence threshold,
the CSV export and the background measurement of a whole new mask."""

from __future__ import annotations

import csv
import functools

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from scipy import ndimage

from engine.core.volume import LabelMap, Volume
from engine.editing.kernels import paint
from engine.lesions import FINDINGS_COLUMNS, LESION_VALUE, lesion_instances, measure_lesions

pytestmark = pytest.mark.gui


@functools.cache
def _phantom() -> tuple[Volume, LabelMap]:
    """A 48 x 48 x 24 T1 phantom with three synthetic lesions and a hand-made bar lesion."""
    from engine.data.lesions import add_lesions
    from engine.data.phantom import synthesize_phantom, toy_tissue_block

    image, truth = synthesize_phantom("t1", seed=0, block=toy_tissue_block((48, 48, 24)))
    image, labels, _ = add_lesions(image, truth, contrast="t1", count=3, sizes_mm=(4.0, 10.0),
                                   seed=7)
    array = labels.array.copy()
    array[17:29, 30:33, 6:8] = LESION_VALUE  # a thin bar: the widest (11.4 mm), not the largest
    return image, labels.with_array(array)


@pytest.fixture
def lesion_window(window):
    """The window showing the phantom, its lesions in the edited mask, Findings measured."""
    image, labels = _phantom()
    window.show_volume(image, name="lesions", labels=labels.with_array(labels.array.copy()))
    window.grid.render_pending()
    panel = window.findings_panel
    panel.update_findings()
    window.docks["findings"].show()
    window.docks["findings"].raise_()
    return window


def mask(window) -> np.ndarray:
    return window.layers.edited.labelmap.array


def reference(window):
    """What the engine measures on the edited mask as it is now."""
    labels = window.layers.edited.labelmap
    return measure_lesions(lesion_instances(labels), window.layers.image.volume, tissue=labels)


def click_row(panel, number, qtbot):
    index = panel._proxy_index(number)
    assert index is not None, f"finding {number} is not shown"
    rect = panel.view.visualRect(index)
    QTest.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton,
                     pos=rect.center())


def key(window, qtkey):
    canvas = window.views["axial"].canvas
    canvas.setFocus()
    QTest.keyClick(canvas, qtkey)


def far_from_lesions(window, k: int, label: int = 3) -> tuple[int, int]:
    """An in-plane voxel of *label* on axial slice *k*, at least 6 voxels from any lesion."""
    labels = mask(window)
    distance = ndimage.distance_transform_edt(labels != LESION_VALUE)
    ok = np.argwhere((labels[:, :, k] == label) & (distance[:, :, k] >= 6))
    assert len(ok), "no room for a new lesion on this slice"
    i, j = ok[len(ok) // 2]
    return int(i), int(j)


def test_the_table_lists_every_lesion_with_its_measurements(lesion_window):
    panel = lesion_window.findings_panel
    expected = reference(lesion_window)
    assert len(expected) == 4
    rows = panel.model.rows
    assert [row.number for row in rows] == [1, 2, 3, 4]  # numbered by decreasing volume
    assert panel.proxy.rowCount() == 4
    for row, f in zip(rows, expected, strict=True):
        assert row.finding.voxel_count == f.voxel_count
        assert row.finding.volume_ml == pytest.approx(f.volume_ml)
        assert row.finding.axial_diameter_mm == pytest.approx(f.axial_diameter_mm)
        assert row.finding.tissue == f.tissue
        assert row.finding.confidence is None
    texts = [panel.proxy.index(0, c).data() for c in range(panel.proxy.columnCount())]
    f = expected[0]
    assert texts[0] == "1"
    assert texts[1] == f"{f.axial_diameter_mm:.1f} × {f.perpendicular_diameter_mm:.1f}"
    assert texts[2] == f"{f.volume_ml:.3f}"
    assert texts[3] == "—" and texts[4] == f.tissue
    assert "4 findings" in panel.summary.text()
    # The dock is a tab beside Labels; View → Findings holds the keys and the export.
    assert lesion_window.docks["findings"].widget() is panel
    titles = [a.text() for a in lesion_window.findChild(type(lesion_window.menus.view_menu),
                                                        "menu_findings").actions()]
    assert titles[:2] == ["&Next Finding", "&Previous Finding"]


def test_sorting_is_by_value_not_by_text(lesion_window):
    panel = lesion_window.findings_panel
    sizes = [row.finding.axial_diameter_mm for row in panel.model.rows]
    assert max(sizes) >= 10 > min(sizes)  # "11.4" sorts before "8.9" as text
    panel.sort_by("size")
    shown = [row.finding.axial_diameter_mm for row in panel.shown_rows()]
    assert shown == sorted(sizes)
    panel.sort_by("volume", descending=True)
    volumes = [row.finding.volume_ml for row in panel.shown_rows()]
    assert volumes == sorted(volumes, reverse=True)
    assert [row.number for row in panel.shown_rows()] == [1, 2, 3, 4]
    panel.sort_by("volume")
    assert [row.number for row in panel.shown_rows()] == [4, 3, 2, 1]


def test_clicking_a_row_moves_every_view_to_the_lesion_and_zooms(lesion_window, qtbot):
    panel = lesion_window.findings_panel
    views = lesion_window.views
    before = {plane: view.view_rect() for plane, view in views.items()}
    click_row(panel, 2, qtbot)
    row = panel.selected
    assert row is not None and row.number == 2
    f = row.finding
    target = [round(v) for v in f.voxel_centroid]
    target[f.slice_axis] = f.slice_index  # the axial slice of the largest extent
    assert lesion_window.cursor.position == tuple(target)
    assert f.slice_axis == 2 and abs(f.slice_index - f.voxel_centroid[2]) <= 2
    spacing = lesion_window.layers.image.volume.spacing
    for plane, view in views.items():
        assert view.index == lesion_window.cursor.position[view.normal_axis]
        rect = view.view_rect()
        geo = view.geometry_
        assert rect.width() < before[plane].width() * 0.95  # zoomed in
        cx = (f.voxel_centroid[geo.x_axis] + 0.5) * spacing[geo.x_axis]
        cy = (f.voxel_centroid[geo.y_axis] + 0.5) * spacing[geo.y_axis]
        assert rect.contains(cx, cy)
    # The two diameters are drawn on the axial slice, end points on the lesion's voxels.
    axial = views["axial"]
    lines = axial.lines_shown
    assert [(line.start, line.end) for line in lines] == [f.axial_diameter_ends,
                                                          f.perpendicular_diameter_ends]
    assert len(axial._line_items) >= 4
    instances = lesion_instances(lesion_window.layers.edited.labelmap)
    own = instances[tuple(np.round(f.voxel_centroid).astype(int))] or 2
    for end in f.axial_diameter_ends:
        assert instances[tuple(round(v) for v in end)] == own
    assert not views["coronal"].lines_shown and not views["sagittal"].lines_shown
    # Another slice: the lines go; back on it: they return.
    axial.step(3)
    assert not axial.lines_shown and not axial._line_items
    axial.step(-3)
    assert len(axial.lines_shown) == 2


def test_next_and_previous_keys_cycle_through_the_findings(lesion_window):
    panel = lesion_window.findings_panel
    order = [row.number for row in panel.shown_rows()]
    seen = []
    for _ in range(len(order) + 1):
        key(lesion_window, Qt.Key.Key_Period)
        seen.append(panel.selected.number)
    assert seen == [*order, order[0]]  # after the last, the first again
    key(lesion_window, Qt.Key.Key_Comma)
    assert panel.selected.number == order[-1]
    key(lesion_window, Qt.Key.Key_Comma)
    assert panel.selected.number == order[-2]
    f = panel.selected.finding
    assert lesion_window.cursor.position[2] == f.slice_index
    # The keys follow the table's order.
    panel.sort_by("volume")
    key(lesion_window, Qt.Key.Key_Period)
    by_volume = [row.number for row in panel.shown_rows()]
    assert panel.selected.number == by_volume[(by_volume.index(order[-2]) + 1) % 4]


def test_reject_removes_the_lesion_in_one_undo_step(lesion_window, qtbot):
    panel = lesion_window.findings_panel
    edits = lesion_window.edits
    before = mask(lesion_window).copy()
    click_row(panel, 2, qtbot)
    panel.accept_button.click()
    assert panel.selected.status == "accepted"
    row = panel.selected
    lesion = np.zeros(before.shape, bool)
    lesion[row.voxels.box] = row.voxels.mask
    steps = len(edits.history)
    panel.reject_button.click()
    after = mask(lesion_window)
    assert (before == LESION_VALUE).sum() - (after == LESION_VALUE).sum() == lesion.sum()
    assert np.array_equal(after[~lesion], before[~lesion])  # nothing else changed
    assert set(np.unique(after[lesion]).tolist()) <= {1, 2, 3}  # the tissue around it
    assert len(edits.history) == steps + 1
    assert edits.history.undo_name == "Reject finding 2"
    row = panel.model.row(2)
    assert row.status == "rejected" and not row.present
    assert panel.proxy.rowCount() == 4  # kept in the list, struck out
    assert panel.table_model.data(panel.table_model.index(1, 0)) == "✗ 2"
    assert panel.table_model.data(panel.table_model.index(1, 0),
                                  Qt.ItemDataRole.FontRole).strikeOut()
    assert not panel.reject_button.isEnabled()
    assert len(reference(lesion_window)) == 3
    assert not lesion_window.views["axial"].lines_shown
    # One undo (Ctrl+Z) brings every voxel back, and the finding its state.
    QTest.keyClick(lesion_window.views["axial"].canvas, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(mask(lesion_window), before)
    qtbot.waitUntil(lambda: panel.model.row(2).present, timeout=2000)
    assert panel.model.row(2).status == "accepted"
    assert [row.number for row in panel.model.rows] == [1, 2, 3, 4]
    # Redo rejects it again; undo once more restores it again.
    edits.redo()
    qtbot.waitUntil(lambda: panel.model.row(2).status == "rejected", timeout=2000)
    assert not panel.model.row(2).present
    edits.undo()
    qtbot.waitUntil(lambda: panel.model.row(2).present, timeout=2000)
    assert np.array_equal(mask(lesion_window), before)
    assert panel.model.row(2).status == "accepted"
    # Next/previous skip a rejected finding.
    panel.go_to(1)
    panel.reject()
    assert panel.model.row(1).status == "rejected"
    assert {panel.step(1).number for _ in range(4)} == {2, 3, 4}


def test_accepted_findings_are_marked_and_stay_accepted_when_measured_again(
        lesion_window, qtbot, pixel_of, drag):
    panel = lesion_window.findings_panel
    click_row(panel, 1, qtbot)
    panel.accept_button.click()
    index = panel.table_model.index(0, 0)
    assert index.data() == "✓ 1"
    assert panel.table_model.data(index, Qt.ItemDataRole.FontRole).bold()
    assert panel.accept_button.text() == "Unaccept"
    old = panel.model.row(1).finding
    # Grow lesion 1 with the brush (label 4) on its slice: it is measured again at once.
    window = lesion_window
    window.set_tool("brush")
    window.edits.set_options(brush_size_mm=3.0)
    key(window, Qt.Key.Key_4)
    k = window.cursor.position[2]
    i, j = (round(v) for v in old.axial_diameter_ends[0][:2])
    ax = window.views["axial"]
    drag(ax, pixel_of(ax, (i, j, k)), pixel_of(ax, (i - 2, j, k)))
    qtbot.waitUntil(lambda: panel.model.row(1).finding.voxel_count > old.voxel_count,
                    timeout=2000)
    row = panel.model.row(1)
    assert row.status == "accepted" and row.number == 1
    assert len(panel.model.rows) == 4
    grown = reference(window)[0]
    assert row.finding.voxel_count == grown.voxel_count
    assert row.finding.axial_diameter_mm == pytest.approx(grown.axial_diameter_mm)
    # The lines follow the new measurement.
    assert ax.lines_shown[0].start == row.finding.axial_diameter_ends[0]
    window.edits.undo()
    qtbot.waitUntil(lambda: panel.model.row(1).finding.voxel_count == old.voxel_count,
                    timeout=2000)
    assert panel.model.row(1).status == "accepted"


def test_a_lesion_painted_with_label_4_appears_at_once(lesion_window, qtbot, pixel_of, drag):
    window = lesion_window
    panel = window.findings_panel
    window.set_tool("brush")
    window.edits.set_options(brush_size_mm=3.0)
    key(window, Qt.Key.Key_4)
    assert window.edits.selected_label == LESION_VALUE
    k = window.cursor.position[2]
    i, j = far_from_lesions(window, k)
    before = (mask(window) == LESION_VALUE).sum()
    ax = window.views["axial"]
    drag(ax, pixel_of(ax, (i, j, k)), pixel_of(ax, (i, j + 1, k)))
    painted = int((mask(window) == LESION_VALUE).sum() - before)
    assert painted > 0
    qtbot.waitUntil(lambda: len(panel.model.rows) == 5, timeout=1000)
    row = panel.model.row(5)
    assert row.drawn and row.finding.confidence is None
    assert row.finding.voxel_count == painted
    assert row.finding.slice_index == k
    assert panel.proxy.rowCount() == 5
    assert panel.table_model.index(4, 3).data() == "—"
    # Undo takes it out of the list again.
    window.edits.undo()
    qtbot.waitUntil(lambda: len(panel.model.rows) == 4, timeout=1000)


def test_the_confidence_threshold_hides_findings_below_it(lesion_window, qtbot, pixel_of,
                                                         drag):
    window = lesion_window
    panel = window.findings_panel
    instances = lesion_instances(window.layers.edited.labelmap)
    probability = np.choose(instances, [0.0, 0.9, 0.3, 0.6, 0.45]).astype(np.float32)
    panel.set_probability(probability)
    panel.update_findings()
    assert [row.confidence for row in panel.model.rows] == pytest.approx([0.9, 0.3, 0.6, 0.45])
    assert [row.number for row in panel.model.rows] == [1, 2, 3, 4]
    # A lesion painted now has no confidence: it counts as 1.0.
    window.set_tool("brush")
    key(window, Qt.Key.Key_4)
    k = window.cursor.position[2]
    i, j = far_from_lesions(window, k)
    ax = window.views["axial"]
    drag(ax, pixel_of(ax, (i, j, k)), pixel_of(ax, (i + 1, j, k)))
    qtbot.waitUntil(lambda: len(panel.model.rows) == 5, timeout=1000)
    panel.threshold.setValue(50)
    assert panel.threshold_label.text() == "≥ 0.50"
    assert sorted(row.number for row in panel.shown_rows()) == [1, 3, 5]
    assert "2 below the threshold" in panel.summary.text()
    panel.set_threshold(0.95)
    assert [row.number for row in panel.shown_rows()] == [5]
    panel.set_threshold(0.0)
    assert panel.proxy.rowCount() == 5


def test_export_csv_writes_one_line_per_finding(lesion_window, qtbot, tmp_path):
    panel = lesion_window.findings_panel
    click_row(panel, 3, qtbot)
    panel.accept_button.click()
    target = tmp_path / "lesions"
    panel.ask_save_path = lambda title, start, pattern: str(target)
    panel.export_button.click()
    with (tmp_path / "lesions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [*FINDINGS_COLUMNS, "status"]
    assert len(rows) == 4
    assert [r["id"] for r in rows] == ["1", "2", "3", "4"]
    assert [r["status"] for r in rows] == ["pending", "pending", "accepted", "pending"]
    expected = reference(lesion_window)
    assert [float(r["volume_ml"]) for r in rows] == pytest.approx(
        [f.volume_ml for f in expected], rel=1e-5)
    # The menu entry exports the same.
    panel.ask_save_path = lambda title, start, pattern: str(tmp_path / "again.csv")
    lesion_window.menus.view_menu.findChild(type(lesion_window.menus.view_menu),
                                            "menu_findings").actions()[2].trigger()
    assert (tmp_path / "again.csv").read_text().count("\n") == 5


def test_a_whole_new_mask_is_measured_in_the_background(window, qtbot, monkeypatch):
    from viewer.panels import findings_panel

    monkeypatch.setattr(findings_panel, "SYNC_VOXELS", 1000)
    image, labels = _phantom()
    window.show_volume(image, name="lesions", labels=labels.with_array(labels.array.copy()))
    panel = window.findings_panel
    qtbot.waitUntil(lambda: panel.measuring, timeout=2000)
    assert panel.summary.text() == "Measuring the lesions…"
    qtbot.waitUntil(lambda: len(panel.model.rows) == 4 and not panel.measuring, timeout=5000)
    assert [row.finding.voxel_count for row in panel.model.rows] == \
        [f.voxel_count for f in reference(window)]
    # Cancelled (the status bar's Cancel stops every job): measured again after an edit.
    window.show_volume(image, name="again", labels=labels.with_array(labels.array.copy()))
    qtbot.waitUntil(lambda: panel.measuring, timeout=2000)
    window.runner.cancel_all()
    qtbot.waitUntil(lambda: "cancelled" in panel.summary.text(), timeout=5000)
    assert panel.model.rows == []
    window.edits.apply_diff(paint(window.edits.labels, (2, 2, 2), radius_mm=1, value=1,
                                  spacing=(1, 1, 1), plane_axis=2), "Paint")
    qtbot.waitUntil(lambda: len(panel.model.rows) == 4 and not panel.measuring, timeout=5000)
    assert "4 findings" in panel.summary.text()
    # A lesion-free mask needs no background work.
    window.show_volume(image, name="empty", labels=labels.with_array(
        np.where(labels.array == LESION_VALUE, 3, labels.array).astype(labels.array.dtype)))
    qtbot.waitUntil(lambda: "No lesion" in panel.summary.text(), timeout=2000)
    assert not panel.measuring and panel.model.rows == []


def test_a_result_made_the_edited_mask_brings_its_lesion_confidences(lesion_window, qtbot):
    """A pipeline result with the lesion network's probabilities, used as the edited mask:
    the panel's confidences are the mean probability inside each lesion."""
    window = lesion_window
    panel = window.findings_panel
    assert all(row.confidence is None for row in panel.model.rows)
    labels = window.layers.edited.labelmap
    labels = labels.with_array(labels.array.copy())  # before the edited mask gets a map
    instances = lesion_instances(labels)
    probability = np.choose(instances, [0.0, 0.8, 0.7, 0.6, 0.9]).astype(np.float32)
    result = labels.with_array(labels.array.copy())
    result.metadata["lesion_probability"] = probability
    # The image opened again without labels (a new, empty edited mask, as after opening
    # a scan): the result's lesions then all appear at once, as the detector's findings
    # (with confidences), not as lesions painted by hand.
    window.show_volume(window.layers.image.volume, name="again")
    window.grid.render_pending()
    panel.update_findings()
    qtbot.waitUntil(lambda: not panel.model.rows, timeout=3000)
    layer = window.add_result_layer(result, "cnn+lesions")
    assert window.methods.pipelines.make_edited(layer)
    assert window.layers.edited.labelmap.metadata["lesion_probability"] is probability
    qtbot.waitUntil(lambda: [row.confidence for row in panel.model.rows] == pytest.approx(
        [0.8, 0.7, 0.6, 0.9]), timeout=3000)
    # A result without a lesion network drops the old confidences again.
    plain = window.add_result_layer(labels.with_array(labels.array.copy()), "plain")
    assert window.methods.pipelines.make_edited(plain)
    assert "lesion_probability" not in window.layers.edited.labelmap.metadata
    qtbot.waitUntil(lambda: all(row.confidence is None for row in panel.model.rows),
                    timeout=3000)
