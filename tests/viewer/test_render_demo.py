"""The demo brain renders: every view shows the brain and the label colours.

Rendered offscreen with the real main window and the MNI152 demo (the first
call of ``load_demo`` may fetch and cache the template).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture
def demo_window(window, qtbot):
    window.resize(1400, 900)
    with qtbot.waitSignal(window.image_shown, timeout=60000):
        window.open_paths(demo=True)  # what `delineo` does without arguments
    qtbot.wait(50)
    return window


@pytest.fixture
def grab(to_array):
    """``grab(view)``: the pixels of a slice view as it is drawn now."""

    def pixels(view) -> np.ndarray:
        view.render_pending()
        return to_array(view.canvas.grab().toImage())

    return pixels


def test_demo_opens_with_ground_truth_and_empty_edited_mask(demo_window):
    layers = demo_window.layers
    assert layers.image.volume.shape == (197, 233, 189)
    assert layers.ground_truth is not None and not layers.edited.labelmap.array.any()
    assert "MNI152" in demo_window.windowTitle()


def test_every_view_shows_the_brain_and_the_overlay_colours(demo_window, grab):
    truth = demo_window.layers.ground_truth
    alpha = demo_window.layers.effective_opacity(truth)
    assert 0 < alpha < 1
    table = truth.labelmap.labels
    for plane, view in demo_window.views.items():
        pixels = grab(view).astype(int)
        h, w, _ = pixels.shape
        centre = pixels[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
        r, g, b = centre[..., 0], centre[..., 1], centre[..., 2]
        # Over any grey level, a label drawn at opacity a shifts the channel
        # differences by a * (its colour's differences): find each label.
        for value in (1, 2, 3):
            cr, cg, cb = table.color(value)
            hit = (np.abs((r - g) - alpha * (cr - cg)) <= 4) & \
                  (np.abs((g - b) - alpha * (cg - cb)) <= 4) & ((r != g) | (g != b))
            assert hit.sum() > 20, f"{plane}: {table.name(value)} not visible"
        # Overlays hidden: the brain itself is there (structured grey pixels).
        demo_window.layers.set_labels_shown(False)
        demo_window.set_crosshair_visible(False)
        grey = grab(view).astype(int)[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
        demo_window.set_crosshair_visible(True)
        demo_window.layers.set_labels_shown(True)
        assert (grey[..., 0] == grey[..., 2]).all()  # no colour left
        assert grey[..., 0].std() > 20 and (grey[..., 0] > 60).mean() > 0.2
        # Background around the head is black; the head is not uniform.
        assert len(np.unique(grey[..., 0])) > 50


def test_demo_main_window_screenshot_has_docks_and_views(demo_window, tmp_path, to_array):
    shot = to_array(demo_window.grab().toImage())
    assert shot.shape[0] >= 800 and shot.shape[1] >= 1300
    for key in ("window", "layers", "labels"):
        assert demo_window.docks[key].isVisible()
    assert demo_window.labels_panel.table.rowCount() == 3
    assert demo_window.labels_panel.layer is demo_window.layers.ground_truth
