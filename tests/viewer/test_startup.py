"""The viewer's start: the window's large libraries load before Qt, and torch not at all
until the window is up.

PySide6's import hook reads the source of every module imported after PySide6
itself; loading scipy, nibabel, pydicom, ... first keeps that work off the
start, and the image shows without waiting for torch (about 1.2 s to import
here), which the Methods dock imports right after the first display
(``benchmarks/bench_viewer.py``: first display 2.7 -> 1.5 s on Xvfb).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from viewer.app import PRELOADED

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys
from viewer.app import create_application
create_application()
import viewer.main_window  # everything the window's module imports
print(json.dumps(list(sys.modules)))
"""


def test_the_window_libraries_load_before_qt_and_torch_waits(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(tmp_path),
               QT_QPA_PLATFORM="offscreen")
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    order = json.loads(done.stdout.strip().splitlines()[-1])  # sys.modules: import order
    qt = order.index("PySide6")
    for name in PRELOADED:
        assert order.index(name) < qt, f"{name} was imported after PySide6"
    # nothing large is left to import after Qt, and torch is not imported at all
    late = {m.split(".")[0] for m in order[qt:]}
    assert not late & {"scipy", "skimage", "nibabel", "pydicom", "requests", "OpenGL"}
    assert "torch" not in order
