"""The 3-D view: surfaces on a real display (software OpenGL on Xvfb), and a clear
message where OpenGL is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[2]


def test_without_opengl_the_cell_says_why_and_shows_the_volume_facts(window, tissue_phantom):
    """Offscreen Qt gives no OpenGL context: the 3-D tab explains, the window works."""
    volume, truth = tissue_phantom()
    window.show_volume(volume, name="phantom", truth=truth)
    grid = window.grid
    assert not grid.surfaces.available
    text = grid.surfaces.message.text()
    assert text.startswith("3-D view unavailable:") and "OpenGL" in text
    assert grid.fourth.currentWidget() is grid.info_area
    assert grid.fourth.tabText(0) == "3-D"


def test_the_3d_view_builds_updates_after_an_edit_and_picks_on_a_real_display(tmp_path):
    xvfb = shutil.which("xvfb-run")
    assert xvfb, "xvfb-run is missing: run packaging/setup.sh (it installs xvfb)"
    out = tmp_path / "view3d.json"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(QT_QPA_PLATFORM="xcb", PYTHONPATH=str(ROOT), HOME=str(tmp_path))
    done = subprocess.run(
        [xvfb, "-a", "-s", "-screen 0 800x600x24", sys.executable,
         str(ROOT / "tests" / "viewer" / "view3d_child.py"), str(out)],
        env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["problem"] is None and result["available"]
    assert result["built"] and result["values"] == [1, 2, 3]
    assert result["drawn_fraction"] > 0.05  # the surfaces cover part of the frame
    assert result["drawings"] >= 1 and result["last_drawing_seconds"] > 0  # and timed
    # drawn with the worker's normals: pyqtgraph's per-vertex loop never ran
    assert result["pyqtgraph_normal_loops"] == 0 and result["normals_from_the_worker"]
    # one GL item per label, holding all of that label's blocks
    assert result["items"] == [1, 2, 3]
    assert result["item_faces"] == result["label_faces"]
    assert result["updated"]
    assert result["triangles_after"] > result["triangles_before"]  # the blob got a surface
    assert result["wm_item_faces_after"] == result["wm_faces_after"]  # and is in WM's item
    # after a slow drawing the planes wait (0.2 s x 3) and then show the last slice
    assert result["axial_plane_while_waiting"] == 28
    assert 300 <= result["plane_wait_ms"] <= 600
    assert result["axial_plane_after"] == 35
    # a plane move reuses the surfaces' layer, and the picture is the full drawing's
    assert result["layer_renders_on_plane_move"] == 0
    assert result["layer_renders_when_invalidated"] == 1
    assert result["layered_planes_differ_from_before"]  # the plane did move
    assert result["layered_vs_full_max_difference"] <= 3
    assert result["layer_renders_on_opacity"] == 0  # the slice overlays' opacity only
    assert result["layer_renders_on_hiding"] == 1
    # the same picture as drawing the surfaces over the planes (8-bit layer: rounding)
    assert result["layered_vs_direct_mean_difference"] < 0.2
    assert result["layered_vs_direct_max_difference"] <= 6
    # dragging draws the preview surfaces (fewer triangles), the release the full ones
    assert result["preview_items"] == [1, 2, 3]
    assert 0 < result["preview_faces"] < 0.5 * result["full_faces"]
    assert result["moving_while_dragging"] and not result["moving_after_release"]
    assert result["drag_faces"][:3] == [result["preview_faces"]] * 3
    assert result["drag_faces"][-1] == result["full_faces"]
    assert result["fast_drag_faces"] == [result["full_faces"]]  # no preview on a fast GPU
    assert result["label_at_cursor"] in (1, 2, 3)  # the click landed on a surface
    assert result["cursor_after_click"] != [0, 0, 0]
