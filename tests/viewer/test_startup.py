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


def test_the_methods_dock_is_built_in_the_gui_thread_after_the_first_image(
        window, tissue_phantom, qtbot, monkeypatch):
    import threading

    from viewer import methods_controller

    built_in: list[threading.Thread] = []
    original = methods_controller.MethodsController.__init__

    def recording(self, *args, **kwargs):
        built_in.append(threading.current_thread())
        original(self, *args, **kwargs)

    monkeypatch.setattr(methods_controller.MethodsController, "__init__", recording)
    assert window._methods is None and "methods" not in window.docks
    volume, truth = tissue_phantom()
    with qtbot.waitSignal(window.image_shown, timeout=10_000):
        window.show_volume(volume, name="phantom", truth=truth)
    # its modules are imported in a thread; the dock itself is built in the GUI thread
    qtbot.waitUntil(lambda: window._methods is not None, timeout=10_000)
    assert built_in == [threading.main_thread()]
    assert window.docks["methods"].widget() is window.methods.panel
    window._methods_import.join(5)
    assert not window._methods_import.is_alive()
    # another image does not build it again
    with qtbot.waitSignal(window.image_shown, timeout=10_000):
        window.show_volume(volume, name="phantom again", truth=truth)
    qtbot.wait(50)
    assert len(built_in) == 1
