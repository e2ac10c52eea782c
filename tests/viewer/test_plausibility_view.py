"""Trust in the viewer: a refused run asks in a dialog; each result shows its verdict,
its uncertainty layer and a tour of its uncertain regions."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_torch_thread")]


def test_a_refused_run_shows_a_dialog_with_every_reason(qtbot, phantom_window, dialogs):
    methods = phantom_window.methods
    methods.panel.select_pipeline("otsu")
    assert not methods.panel.force.isChecked()
    with qtbot.waitSignal(methods.pipelines.refused, timeout=10_000):
        assert methods.panel.run() is None
    assert len(dialogs.warnings) == 1
    title, text = dialogs.warnings[0]
    assert title == "otsu is not made for this image"
    assert "field of view" in text and "Run outside the declared use" in text
    before = [lay.role for lay in phantom_window.layers.labels]
    assert "result" not in before and "uncertainty" not in before


def test_a_network_result_has_a_verdict_an_uncertainty_layer_and_a_tour(qtbot, phantom_window):
    methods = phantom_window.methods
    panel, box = methods.panel, methods.plausibility
    panel.force.setChecked(True)  # the small phantom is no head-sized volume
    panel.select_pipeline("cnn")
    with qtbot.waitSignal(methods.pipelines.finished, timeout=180_000) as done:
        assert panel.run() is not None
    layer = done.args[0]
    facts = layer.labelmap.metadata["plausibility"]
    # 40 x 44 x 30 mm of "brain" is far below an adult brain: the verdict must say so.
    assert facts["verdict"] == "review this"
    assert any("below the adult range" in r for r in facts["reasons"])
    assert box.verdict.text().startswith("⚠ Review this")
    assert "Labelled volume" in box.verdict.toolTip()

    bands = [lay for lay in phantom_window.layers.labels if lay.role == "uncertainty"]
    assert len(bands) == 1 and not bands[0].visible
    assert bands[0].labelmap.shape == layer.labelmap.shape
    assert box.show_uncertainty.isEnabled()
    box.show_uncertainty.setChecked(True)
    assert bands[0].visible
    assert panel.selected_result() is layer  # the uncertainty layer is no result to compare

    regions = methods.pipelines.regions_of(layer)
    assert regions, "the network hesitates somewhere on this small ellipsoid phantom"
    assert box.next_button.isEnabled()
    seen = []
    for _ in range(len(regions)):
        phantom_window.menus.actions["next_uncertain"].trigger()
        seen.append(tuple(phantom_window.cursor.position))
    assert seen[0] == regions[0].centroid
    assert sorted(seen) == sorted(r.centroid for r in regions)  # each visited once
    phantom_window.menus.actions["next_uncertain"].trigger()  # then the tour restarts
    assert tuple(phantom_window.cursor.position) == regions[0].centroid


def test_a_classical_result_has_a_verdict_but_no_uncertainty(qtbot, phantom_window):
    methods = phantom_window.methods
    panel, box = methods.panel, methods.plausibility
    panel.force.setChecked(True)
    panel.select_pipeline("otsu")
    with qtbot.waitSignal(methods.pipelines.finished, timeout=60_000) as done:
        assert panel.run() is not None
    assert done.args[0].labelmap.metadata["plausibility"]["uncertainty_mean"] is None
    assert not box.show_uncertainty.isEnabled()
    assert not box.next_button.isEnabled()
    assert not [lay for lay in phantom_window.layers.labels if lay.role == "uncertainty"]
