"""Editing cost on the 1 mm demo volume: one brush-stroke segment with live Dice.

Run: ``python benchmarks/bench_editing.py``. Measures, engine side (no Qt):
a 2-D brush segment of radius 3 mm painting gray matter, plus the live
metric update from its diff; the same metric update done the naive way
(full recomputation of the confusion counts) as the reference; and the
undo-history memory per stroke (a drag of 20 segments); and a whole result taken
in as the edited mask (``EditingSession.apply_labels``: the diff, the undo step,
the live Dice and the crash journal of an empty mask's first step, as after the
viewer's first run), against a bare copy of the array. The viewer adds the
overlay refresh of the changed box on top (benchmarks/bench_viewer.py).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import emit, machine, median, timeit

from engine.core.metrics import confusion
from engine.core.volume import LabelMap
from engine.data.mni import load_demo
from engine.editing.history import History
from engine.editing.kernels import paint_stroke
from engine.editing.live_metrics import LiveMetrics
from engine.editing.session import EditingSession


def main() -> None:
    print(f"# editing — {machine()}")
    t1, truth = load_demo()
    labels = truth.array.copy()
    live = LiveMetrics(labels, truth.array, labels=[1, 2, 3], voxel_ml=t1.voxel_volume_ml)
    rng = np.random.default_rng(0)
    k = 90

    def segment() -> None:
        x, y = rng.uniform(40, 150), rng.uniform(40, 190)
        d = paint_stroke(labels, (x, y, k), (x + 4, y + 3, k), radius_mm=3, value=2,
                         spacing=t1.spacing, plane_axis=2)
        live.update(d, truth.array)
        live.table()

    ours = median(timeit(segment, repeats=200, warmup=5))
    full = median(timeit(lambda: confusion(labels, truth.array, [1, 2, 3]), repeats=5))
    emit("brush segment r=3 mm + live Dice update (engine)", ours * 1000, "ms",
         ratio=ours / full, reference=f"full Dice recomputation {full * 1000:.1f} ms",
         goal="<= 16 ms including overlay refresh")

    history = History()
    sizes = []
    for _ in range(20):
        history.begin("brush")
        x, y = rng.uniform(40, 150), rng.uniform(40, 190)
        for s in range(20):
            history.record(paint_stroke(labels, (x + s, y, k), (x + s + 1, y + 1, k),
                                        radius_mm=3, value=3, spacing=t1.spacing, plane_axis=2))
        before = history.nbytes
        history.end(labels)
        sizes.append(history.nbytes - before)
    emit("undo history per stroke (20 segments, r=3 mm)", median(sizes) / 1024, "KiB",
         ratio=median(sizes) / labels.nbytes, reference="a full copy of the mask")

    result = truth.array  # a whole head's labels, as a pipeline gives them
    with tempfile.TemporaryDirectory(prefix="delineo-bench-journal-") as folder:
        times = []
        for _ in range(7):
            session = EditingSession(journal_dir=folder)
            session.set_target(LabelMap.empty_like(t1), truth=truth, image=t1)
            start = time.perf_counter()
            session.apply_labels(result, "Use a result as the edited mask")
            times.append(time.perf_counter() - start)
            session.close()
        taken = median(times)
        empty = np.zeros_like(result)
        copy = median(timeit(lambda: np.copyto(empty, result), repeats=7))
    emit("a whole result made the (empty) edited mask: diff, undo step, live Dice, journal",
         taken * 1000, "ms", ratio=taken / copy, reference=f"a bare copy {copy * 1000:.1f} ms")


if __name__ == "__main__":
    main()
