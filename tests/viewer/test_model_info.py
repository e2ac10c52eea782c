"""About the Networks, and the note that the demo brain is the training anatomy."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.volume import Volume
from engine.data.mni import load_demo
from engine.data.phantom import synthesize_phantom
from viewer.model_info import ModelInfoDialog, is_training_anatomy, training_anatomy_note

pytestmark = pytest.mark.gui


def test_the_dialog_has_a_tab_per_shipped_network(qtbot):
    dialog = ModelInfoDialog()
    qtbot.addWidget(dialog)
    names = [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())]
    assert {"delineo", "unet"} <= set(names)
    text = dialog.tabs.widget(names.index("delineo")).widget().text()
    assert "Trained on" in text and "no scan of a person" in text
    assert "Validation (training anatomy)" in text
    # brain extraction is a network of others, trained on real scans: said so
    text = dialog.tabs.widget(names.index("brain extraction")).widget().text()
    assert "deepbet 1.0.2" in text and "real scans" in text and "neither trained" in text


def test_the_training_anatomy_is_recognised():
    t1, _ = load_demo()
    assert is_training_anatomy(t1)
    assert training_anatomy_note(t1).startswith("This image is the anatomy")
    on_grid = Volume(np.zeros(t1.shape, np.float32), t1.affine.copy())  # e.g. a saved copy
    assert is_training_anatomy(on_grid)
    phantom, _ = synthesize_phantom("t2", seed=3)
    assert is_training_anatomy(phantom)
    other = Volume(np.zeros((120, 140, 100), np.float32), np.diag([1.2, 1.2, 1.2, 1.0]))
    assert not is_training_anatomy(other) and training_anatomy_note(other) == ""
    assert not is_training_anatomy(None)


def test_live_metrics_say_when_the_image_is_the_training_anatomy(window, qtbot, tissue_phantom):
    t1, truth = load_demo()
    window.show_volume(t1, name="demo", truth=truth)
    from viewer.panels.metrics_panel import MetricsPanel

    panel = window.findChild(MetricsPanel, "metricsPanel")
    panel.refresh()
    assert panel.anatomy_note.isVisibleTo(window)
    assert "trained on" in panel.anatomy_note.text()
    volume, small_truth = tissue_phantom()
    window.show_volume(volume, name="phantom", truth=small_truth)
    panel.refresh()
    assert not panel.anatomy_note.isVisibleTo(window)


def test_help_menu_opens_about_the_networks(window, qtbot):
    dialog = window.menus.show_networks()
    qtbot.addWidget(dialog)
    assert dialog.isVisible() and dialog.tabs.count() >= 2
    dialog.close()
