"""Viewer editing benchmark: one brush-stroke segment as the user sees it.

Not a test (no assertions on time). Run from the repository root::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_viewer_editing.py
    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_viewer_editing.py

Set-up: the 1 mm MNI152 demo (197 x 233 x 189) in a 1600 x 1000 window,
2 x 2 layout, all docks; the edited mask starts as the ground truth with the
gray matter grown into the white matter (so every label has errors), the
ground truth is shown, and the false-positive / false-negative overlay is on
(three label layers drawn in every view).

* **Stroke segment** (the figure of the issue): one mouse move of the brush
  (3 mm, 6 mm diameter, painting CSF over tissue, so nearly every voxel
  under the brush changes) in the axial view -- ``paint_stroke`` on the
  mask, the live confusion counts updated from the diff, the difference
  overlay updated in the diff's box, the metrics table rewritten, and a
  synchronous re-render and repaint of every view whose slice the change
  crosses plus the metrics table. Median and 95th percentile, for the 2-D
  disk and the 3-D sphere (which crosses the other two views' slices).
* **Stroke end**: the release -- merging the segments into one undo step and
  appending it to the crash journal (``fsync``).
* **Undo** of one stroke, with the same refresh.
* **History memory per stroke** of 30 segments, vs a full copy of the mask.

Reference, measured in the same process: recomputing the confusion counts of
the whole volume (what a non-incremental Dice would cost per segment).
Goal (from the editing issue): median segment <= 16 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SEGMENT_MM = 3.0
BRUSH_MM = 6.0
SEGMENTS_PER_STROKE = 30


def _summary(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000.0 for s in samples_s)
    return {
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2),
        "max_ms": round(ms[-1], 2),
        "n": len(ms),
    }


def build_window():
    from bench_viewer import _temp_settings
    from scipy import ndimage

    from engine.data.mni import load_demo
    from viewer.app import create_application
    from viewer.main_window import MainWindow

    app = create_application()
    t1, truth = load_demo()
    start = truth.array.copy()
    start[ndimage.binary_dilation(truth.array == 2, iterations=2) & (truth.array == 3)] = 2
    window = MainWindow(settings=_temp_settings())
    window.resize(1600, 1000)
    window.show()
    window.show_volume(t1, name="MNI152 T1", labels=truth.with_array(start), truth=truth)
    window.edits.show_differences(True)
    window.set_tool("brush")
    window.edits.set_options(brush_size_mm=BRUSH_MM)
    window.select_label(1)
    for _ in range(5):
        app.processEvents()
    window.grid.render_pending()
    window.repaint()
    return app, window


def run_strokes(app, window, *, n_strokes: int, sphere: bool, seed: int) -> dict:
    import numpy as np
    from PySide6.QtCore import QPointF

    window.edits.set_options(brush_3d=sphere)
    view = window.views["axial"]
    views = list(window.views.values())
    table = window.metrics_panel.table
    rng = np.random.default_rng(seed)
    no_mods: frozenset[str] = frozenset()
    segments, ends, history_bytes = [], [], []
    labels = window.edits.labels
    warmup = 2

    def repaint() -> None:
        window.grid.render_pending()
        for v in views:
            if v.isVisible():
                v.canvas.viewport().repaint()
        table.viewport().repaint()

    for stroke in range(n_strokes + warmup):
        if stroke == warmup:
            segments, ends, history_bytes = [], [], []
        # Pointer positions are view coordinates in mm (the axial view: x = i, y = j).
        x, y = rng.uniform(50, 145), rng.uniform(50, 180)
        angle = rng.uniform(0, 2 * np.pi)
        view.gesture_start("tool", QPointF(x, y), no_mods)
        repaint()
        for _ in range(SEGMENTS_PER_STROKE):
            angle += rng.normal(0, 0.3)
            x = float(np.clip(x + SEGMENT_MM * np.cos(angle), 30, 165))
            y = float(np.clip(y + SEGMENT_MM * np.sin(angle), 30, 200))
            pos = QPointF(x, y)
            t0 = time.perf_counter()
            view.gesture_move("tool", pos, QPointF(0.0, 0.0), no_mods)
            view.pointer_hover(pos, no_mods)
            repaint()
            segments.append(time.perf_counter() - t0)
            app.processEvents()
        before = window.edits.history.nbytes
        t0 = time.perf_counter()
        view.gesture_end("tool", QPointF(x, y), no_mods)
        ends.append(time.perf_counter() - t0)
        history_bytes.append(window.edits.history.nbytes - before)
        app.processEvents()
    undos = []
    for _ in range(min(10, n_strokes)):
        t0 = time.perf_counter()
        window.edits.undo()
        repaint()
        undos.append(time.perf_counter() - t0)
        app.processEvents()
    return {
        "segment": _summary(segments),
        "stroke_end": _summary(ends),
        "undo": _summary(undos),
        "history_bytes_per_stroke": int(statistics.median(history_bytes)),
        "mask_bytes": int(labels.nbytes),
    }


def reference_full_dice(window) -> float:
    from common import median, timeit

    from engine.core.metrics import confusion

    pred = window.edits.labels
    truth = window.edits.truth
    return median(timeit(lambda: confusion(pred, truth, [1, 2, 3]), repeats=7))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strokes", type=int, default=20, help="strokes of 30 segments each")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    os.environ.setdefault("DELINEO_DATA_DIR", tempfile.mkdtemp(prefix="delineo-bench-"))
    import logging

    from common import emit, machine

    logging.basicConfig(level=logging.WARNING)
    platform = os.environ.get("QT_QPA_PLATFORM") or ("xcb" if os.environ.get("DISPLAY") else "?")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    sys.stdout.write(f"# {machine()}; Qt platform {platform}; {os.cpu_count()} CPUs; "
                     f"load average {load}\n")
    app, window = build_window()
    disk = run_strokes(app, window, n_strokes=args.strokes, sphere=False, seed=0)
    sphere = run_strokes(app, window, n_strokes=max(4, args.strokes // 2), sphere=True, seed=1)
    full = reference_full_dice(window)
    ref = f"full confusion recount {full * 1000:.1f} ms"
    for name, fig in (("2-D disk", disk), ("3-D sphere", sphere)):
        seg = fig["segment"]
        emit(f"brush segment {SEGMENT_MM:g} mm, {BRUSH_MM:g} mm {name}, incl. live metrics and "
             f"redraw, median", seg["median_ms"], "ms", goal="<= 16 ms",
             ratio=seg["median_ms"] / 1000 / full, reference=ref)
        emit(f"brush segment, {name}, p95", seg["p95_ms"], "ms")
        emit(f"stroke end ({SEGMENTS_PER_STROKE} segments: history merge + journal fsync), "
             f"{name}, median", fig["stroke_end"]["median_ms"], "ms")
        emit(f"undo one stroke incl. redraw, {name}, median", fig["undo"]["median_ms"], "ms")
        emit(f"undo history per stroke ({SEGMENTS_PER_STROKE} segments), {name}",
             fig["history_bytes_per_stroke"] / 1024, "KiB",
             ratio=fig["history_bytes_per_stroke"] / fig["mask_bytes"],
             reference=f"a full copy of the mask ({fig['mask_bytes'] / 2**20:.1f} MiB)")
    window.edits.close()  # deletes the benchmark's journal
    window.layers.edited.modified = False  # no "save changes?" question
    window.close()
    if args.json:
        sys.stdout.write(json.dumps({"platform": platform, "disk": disk, "sphere": sphere,
                                     "full_confusion_ms": round(full * 1000, 2)}, indent=2)
                         + "\n")


if __name__ == "__main__":
    main()
