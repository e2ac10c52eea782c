"""Without a display the viewer says so in one line and exits; it never hangs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from viewer.app import NO_DISPLAY, display_problem

ROOT = Path(__file__).resolve().parents[2]


def test_display_problem_reads_the_environment():
    assert display_problem({}, "linux") == NO_DISPLAY
    assert display_problem({"DISPLAY": ":1"}, "linux") is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({}, "darwin") is None


def test_the_app_without_a_display_exits_with_one_clear_line(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(PYTHONPATH=str(ROOT), HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "viewer.app"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [NO_DISPLAY]
    assert "no display found" in lines[0] and "delineo-engine --help" in lines[0]
