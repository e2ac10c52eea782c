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
   builds the application exactly as :func:`viewer.app.main` does. Beside it,
   alternately, the reference: the same launch with Qt imported first, before
   the engine's libraries (:data:`viewer.app.PRELOADED`) and torch with the
   window's modules, as the viewer started until 2026-12-07 -- PySide6's import
   hook then reads the source of every module imported after it. Three figures
   are printed: the first display; the complete window (the Methods dock, whose
   modules import torch, built after the first display); and the event loop's
   longest pause between the two (a 5 ms timer's).

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
from typing import Any

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


def _child_first_display(path: str, qt_first: bool = False) -> None:
    """Child process: build the app as viewer.app.main does; print when the image is first
    painted and when the window is complete (its Methods dock, built right after the first
    display, in place). *qt_first*: the reference -- Qt imported before anything else,
    then torch with the window's modules, as the viewer started until 2026-12-07."""
    if qt_first:
        import PySide6.QtWidgets  # noqa: F401 - before the engine's libraries
        import torch  # noqa: F401 - the window's modules imported it then

    from PySide6.QtCore import QTimer

    from viewer.app import create_application
    from viewer.main_window import MainWindow

    app = create_application()
    window = MainWindow(settings=_temp_settings())
    window.resize(1600, 1000)
    window.show()
    times: dict[str, float] = {"stall_s": 0.0}
    ticks = [0.0]

    def tick() -> None:  # the event loop's longest pause between first display and complete
        now = time.perf_counter()
        times["stall_s"] = max(times["stall_s"], now - ticks[0])
        ticks[0] = now
        if window._methods is not None:  # the Methods dock is built: the window is complete
            ticker.stop()
            times["complete_at"] = time.time()
            sys.stdout.write(json.dumps(times) + "\n")
            sys.stdout.flush()
            app.quit()

    ticker = QTimer()
    ticker.setInterval(5)
    ticker.timeout.connect(tick)

    def shown() -> None:
        window.repaint()  # synchronous paint of the window with the image
        times["shown_at"] = time.time()
        ticks[0] = time.perf_counter()
        ticker.start()

    window.image_shown.connect(shown)
    window.open_paths(path)
    app.exec()


def _launch(image: Path, qt_first: bool) -> tuple[float, float, float]:
    """Seconds from starting a child process to its first paint of *image* and to the
    complete window, and the event loop's longest pause between the two."""
    start = time.time()
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(image)]
        + (["--qt-first"] if qt_first else []),
        capture_output=True, text=True, timeout=120, check=True, env=os.environ.copy(),
    )
    line = json.loads([ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1])
    return line["shown_at"] - start, line["complete_at"] - start, line["stall_s"]


def bench_first_display(runs: int) -> dict[str, Any]:
    """First display and complete window as the viewer starts, and the Qt-first
    reference, launched alternately (*runs* each, after one warm-up launch of each)."""
    from engine.data.mni import write_demo_data

    folder = Path(tempfile.mkdtemp(prefix="delineo-bench-"))
    image = write_demo_data(folder)["t1"]
    times: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for i in range(runs + 1):  # the first of each warms the file-system cache
        for qt_first in (False, True):
            seconds = _launch(image, qt_first)
            if i:
                times[qt_first].append(seconds)

    def summary(values: list[float]) -> dict[str, float]:
        return {"median_s": round(statistics.median(values), 3),
                "min_s": round(min(values), 3), "max_s": round(max(values), 3)}

    def both(runs: list[tuple[float, float, float]]) -> dict[str, Any]:
        return {**summary([a for a, _, _ in runs]), "complete": summary([b for _, b, _ in runs]),
                "stall": summary([c for _, _, c in runs])}

    return {**both(times[False]), "qt_first": both(times[True]), "n": runs,
            "file": image.name}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=200, help="slice changes per measure")
    parser.add_argument("--runs", type=int, default=5, help="first-display launches")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--child", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument("--qt-first", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first-display-only", action="store_true",
                        help="only the first-display launches")
    args = parser.parse_args()
    if args.child:
        _child_first_display(args.child, args.qt_first)
        return
    import logging

    from common import emit, machine

    logging.basicConfig(level=logging.WARNING)
    platform = os.environ.get("QT_QPA_PLATFORM") or ("xcb" if os.environ.get("DISPLAY") else "?")
    sys.stdout.write(f"# {machine()}; Qt platform {platform}; {os.cpu_count()} CPUs\n")
    slices: dict[str, Any] = {}
    if not args.first_display_only:
        slices = bench_slice_change(args.slices)
    for key, text in (("step_one_view", "slice step in one view (2 label layers)"),
                      ("cursor_all_views", "cursor move, all 3 views change slice")):
        if key in slices:
            fig = slices[key]
            emit(f"viewer {text}, median", fig["median_ms"], "ms", goal="<= 16 ms")
            emit(f"viewer {text}, p95", fig["p95_ms"], "ms")
    first = bench_first_display(args.runs)
    ref = first["qt_first"]
    for text, fig, reference, goal in (
            ("first display", first, ref, "<= 1.5 s"),
            ("complete window (Methods dock built)", first["complete"], ref["complete"], ""),
            ("longest pause of the window between the two", first["stall"], ref["stall"],
             "<= 0.1 s")):
        emit(f"viewer {text}, `delineo {first['file']}` (median of {first['n']}; range "
             f"{fig['min_s']}-{fig['max_s']} s)", fig["median_s"], "s", goal=goal,
             ratio=fig["median_s"] / reference["median_s"],
             reference=f"Qt imported first ({reference['median_s']} s, range "
                       f"{reference['min_s']}-{reference['max_s']} s)")
    if args.json:
        results = {"platform": platform, "slice_change": slices, "first_display": first}
        sys.stdout.write(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
