"""Viewer benchmarks: slice-change latency and time to first display.

Not a test (no assertions on time). Run from the repository root::

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_viewer.py
    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_viewer.py

1. **Slice change** on the 1 mm MNI152 demo (197 x 233 x 189) in a
   1600 x 1000 window, 2 x 2 layout, with two label layers drawn in every
   view (the ground truth and an edited mask holding the same labels):

   * *step*: one slice forward/backward in one view (the mouse wheel or an
     arrow key), i.e. the model update, the lazy re-render of that view's image
     and overlays, and a synchronous repaint of the view;
   * *cursor*: a click that moves the cursor to a random voxel, so all three
     views change slice and repaint.

2. **First display**: wall time from launching ``python`` (a fresh process)
   with an image file, as ``delineo FILE`` does, to the end of the first
   synchronous paint of the window with the image in it. The child process
   builds the application exactly as :func:`viewer.app.main` does.

Goals (from the viewer issue): median slice change <= 16 ms; first display
<= 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _temp_settings():
    """Settings of a benchmark's window in a temporary folder; its edit journals go to
    another one, so that journals another run left (a killed process) do not stop the
    window with the recovery question."""
    from PySide6.QtCore import QSettings

    from viewer.settings import Settings

    os.environ["DELINEO_DATA_DIR"] = tempfile.mkdtemp(prefix="delineo-bench-data-")
    folder = tempfile.mkdtemp(prefix="delineo-bench-")
    return Settings(QSettings(str(Path(folder) / "settings.ini"), QSettings.Format.IniFormat))


def _summary(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000.0 for s in samples_s)
    return {
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2),
        "max_ms": round(ms[-1], 2),
        "n": len(ms),
    }


def bench_slice_change(n: int) -> dict[str, dict[str, float]]:
    import numpy as np

    from engine.data.mni import load_demo
    from viewer.app import create_application
    from viewer.main_window import MainWindow

    app = create_application()
    t1, truth = load_demo()
    window = MainWindow(settings=_temp_settings())
    window.resize(1600, 1000)
    window.show()
    edited = truth.with_array(truth.array.copy())
    window.show_volume(t1, name="MNI152 T1", labels=edited, truth=truth)
    for _ in range(5):
        app.processEvents()
    window.grid.render_pending()
    window.repaint()

    views = window.views
    for view in views.values():
        assert all(view.overlay_item(layer).image is not None for layer in window.layers.labels)

    def repaint(targets) -> None:
        for view in targets:
            view.render_pending()
            view.canvas.viewport().repaint()

    step = []
    axial = views["axial"]
    direction = 1
    for i in range(n):
        if i % 40 == 0:
            direction = -direction
        start = time.perf_counter()
        axial.step(direction)
        repaint([axial])
        step.append(time.perf_counter() - start)
        app.processEvents()

    rng = np.random.default_rng(0)
    cursor = []
    shape = t1.shape
    for _ in range(n):
        target = [int(rng.integers(20, s - 20)) for s in shape]
        start = time.perf_counter()
        window.cursor.set(target)
        repaint(views.values())
        cursor.append(time.perf_counter() - start)
        app.processEvents()
    window.close()
    return {"step_one_view": _summary(step), "cursor_all_views": _summary(cursor)}


def _child_first_display(path: str) -> None:
    """Child process: build the app as viewer.app.main does, print the time of first paint."""
    from viewer.app import create_application
    from viewer.main_window import MainWindow

    app = create_application()
    window = MainWindow(settings=_temp_settings())
    window.resize(1600, 1000)
    window.show()

    def shown() -> None:
        window.repaint()  # synchronous paint of the window with the image
        sys.stdout.write(json.dumps({"shown_at": time.time()}) + "\n")
        sys.stdout.flush()
        app.quit()

    window.image_shown.connect(shown)
    window.open_paths(path)
    app.exec()


def bench_first_display(runs: int) -> dict[str, float]:
    from engine.data.mni import write_demo_data

    folder = Path(tempfile.mkdtemp(prefix="delineo-bench-"))
    image = write_demo_data(folder)["t1"]
    times = []
    for _ in range(runs + 1):  # the first run warms the file-system cache
        start = time.time()
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(image)],
            capture_output=True, text=True, timeout=120, check=True, env=os.environ.copy(),
        )
        line = [ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1]
        times.append(json.loads(line)["shown_at"] - start)
    times = times[1:]
    return {
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
        "n": len(times),
        "file": image.name,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=200, help="slice changes per measure")
    parser.add_argument("--runs", type=int, default=5, help="first-display launches")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--child", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child_first_display(args.child)
        return
    import logging

    from common import emit, machine

    logging.basicConfig(level=logging.WARNING)
    platform = os.environ.get("QT_QPA_PLATFORM") or ("xcb" if os.environ.get("DISPLAY") else "?")
    sys.stdout.write(f"# {machine()}; Qt platform {platform}; {os.cpu_count()} CPUs\n")
    slices = bench_slice_change(args.slices)
    for key, text in (("step_one_view", "slice step in one view (2 label layers)"),
                      ("cursor_all_views", "cursor move, all 3 views change slice")):
        fig = slices[key]
        emit(f"viewer {text}, median", fig["median_ms"], "ms", goal="<= 16 ms")
        emit(f"viewer {text}, p95", fig["p95_ms"], "ms")
    first = bench_first_display(args.runs)
    emit(f"viewer first display, `delineo {first['file']}` (median of {first['n']})",
         first["median_s"], "s", goal="<= 1.5 s")
    if args.json:
        results = {"platform": platform, "slice_change": slices, "first_display": first}
        sys.stdout.write(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
