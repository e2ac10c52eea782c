"""Editing cost on the 1 mm demo volume: one brush-stroke segment with live Dice.

Run: ``python benchmarks/bench_editing.py``. Measures, engine side (no Qt):
a 2-D brush segment of radius 3 mm painting gray matter, plus the live
metric update from its diff; the same metric update done the naive way
(full recomputation of the confusion counts) as the reference; and the
undo-history memory per stroke (a drag of 20 segments). The viewer adds the
overlay refresh of the changed box on top (benchmarks/bench_viewer.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import emit, machine, median, timeit

from engine.core.metrics import confusion
from engine.data.mni import load_demo
from engine.editing.history import History
from engine.editing.kernels import paint_stroke
from engine.editing.live_metrics import LiveMetrics


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


if __name__ == "__main__":
    main()
