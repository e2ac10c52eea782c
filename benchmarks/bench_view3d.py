"""3-D view benchmark: building the label surfaces and updating them after a brush stroke.

Not a test (no assertions on time). Run from the repository root::

    .venv/bin/python benchmarks/bench_view3d.py
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_view3d.py --gl

Case: the 1 mm MNI152 demo ground truth (197 x 233 x 189, CSF/GM/WM), meshed as
the viewer does (decimation step 2 above 2 M voxels, step 1 below).

* **Build**: every surface from scratch (what opening a label map costs).
* **Stroke update**: a 10 mm brush stroke in one axial slice (a 40 mm line)
  changes the labels; :meth:`engine.surfaces.LabelSurfaces.update` recomputes
  the blocks the stroke's box touches; the view re-uploads the meshes of the labels
  those blocks hold.
  Reference in the same process: a full rebuild.
* With ``--gl`` (needs a display), also: the drawing after a one-slice step of the
  cursor (a slice view scrolling), with the surfaces taken from the layer they were
  drawn into against drawing them again; and the same stroke through the viewer's
  SurfaceView, from ``notify_changed`` to the end of the drawing that shows it
  (worker, queued signal, GL upload and drawing), median of repeats; and the GUI thread's first
  drawing of newly built surfaces (what follows opening a label map or a
  run's result), against pyqtgraph computing the vertex normals itself; and a drawing
  while the camera turns (from the preview surfaces) against the same turn drawn from
  the full surfaces, alternately.

Goal (from the viewer issue): a stroke shows in 3-D within one second.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import emit, machine, median, timeit
from engine.data.mni import load_demo
from engine.surfaces import LabelSurfaces


def _stroke(labels: np.ndarray, n: int) -> tuple[tuple[int, int], ...]:
    """Paint a 10 mm wide, 40 mm long stroke of CSF in axial slice 90 (varying place)."""
    x0, y0, z = 60 + 3 * (n % 10), 100, 90
    ii, jj = np.mgrid[x0 - 5:x0 + 45, y0 - 5:y0 + 6]
    for cx in range(x0, x0 + 40):
        disk = (ii - cx) ** 2 + (jj - y0) ** 2 <= 25
        labels[ii[disk], jj[disk], z] = 1
    return ((x0 - 5, x0 + 45), (y0 - 5, y0 + 6), (z, z + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gl", action="store_true", help="also time the viewer's 3-D view")
    args = parser.parse_args()
    print(f"# {machine()}")
    _, truth = load_demo()
    labels = truth.array.copy()
    step = 2 if labels.size > 2_000_000 else 1
    surf = LabelSurfaces(labels, truth.spacing, step=step)
    build = timeit(lambda: LabelSurfaces(labels, truth.spacing, step=step), repeats=3)
    emit("surface triangles", surf.triangle_count(), f"(marching-cubes step {step})")
    counter = iter(range(10_000))

    def stroke_update() -> None:
        box = _stroke(labels, next(counter))
        for key in surf.update(box, values=[1]):
            surf.piece(key)

    update = timeit(stroke_update, repeats=9)
    emit("surfaces build, median", median(build) * 1000, "ms")
    emit("stroke update (touched blocks), median", median(update) * 1000, "ms",
         goal="<= 1000 ms", ratio=median(update) / median(build), reference="full rebuild")
    if args.gl:
        _gl(truth)


def _gl(truth) -> None:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from viewer.cursor import Cursor
    from viewer.layers import LayerStack
    from viewer.view3d import SurfaceView

    t1, _ = load_demo()
    layers = LayerStack()
    layers.set_image(t1)
    view = SurfaceView(layers, Cursor(t1.shape))
    if not view.available:
        print(f"# --gl: {view.problem}")
        return
    view.resize(800, 800)
    view.show()
    paints: list[float] = []  # durations of the view's drawings (seconds)
    view.drawn.connect(paints.append)
    done: list[float] = []
    view.surfaces_updated.connect(done.append)
    layer = layers.add_labels(truth.with_array(truth.array.copy()), name="t", role="edit")

    def wait() -> None:
        while not done:
            app.processEvents()
            time.sleep(0.001)

    def drawn() -> float:
        """Ask for a drawing and wait for it; its duration."""
        paints.clear()
        view.gl.update()
        while not paints:
            app.processEvents()
            time.sleep(0.001)
        return paints[0]

    wait()
    emit("3-D view build (worker + upload)", done[0] * 1000, "ms")
    _first_drawing(view, drawn)
    times = []
    for n in range(7):
        done.clear()
        box = _stroke(layer.labelmap.array, n)
        t0 = time.perf_counter()
        layer.notify_changed(tuple(slice(a, b) for a, b in box))
        wait()
        drawn()
        times.append(time.perf_counter() - t0)
    emit("3-D view stroke, edit to redrawn, median", median(times) * 1000, "ms",
         goal="<= 1000 ms")
    _plane_step(view, drawn)
    _rotation(view, drawn)


def _rotation(view, drawn) -> None:
    """A drawing after the camera turned 3 degrees, as while dragging (the layer drawn
    from the preview surfaces, marching step 4); the reference, alternately, the same
    turn drawn from the full surfaces (step 2), as before 2026-12-07 (eighth)."""
    moving, still = [], []
    drawn()  # a full drawing first: it decides whether the preview is needed
    for _ in range(10):
        view.moving = True
        view.gl.orbit(3, 0)
        moving.append(drawn())
        view.moving = False
        view.gl.orbit(3, 0)
        still.append(drawn())
    emit("3-D view drawing while the camera turns (preview surfaces), median",
         median(moving) * 1000, "ms", ratio=median(moving) / median(still),
         reference=f"the full surfaces ({median(still) * 1000:.0f} ms; "
                   f"{view.surfaces.triangle_count(preview=True)} against "
                   f"{view.surfaces.triangle_count()} triangles)")


def _plane_step(view, drawn) -> None:
    """A drawing after the cursor moved one axial slice (what scrolling a slice view
    asks of the 3-D view): the surfaces come from their layer, drawn once; the reference,
    alternately, the same step with the layer drawn again (every surface drawn, as
    before 2026-12-07, seventh session)."""
    ours, full = [], []
    cursor = view.cursor
    for n in range(9):
        i, j, k = cursor.position
        cursor.set((i, j, k + (1 if n % 2 == 0 else -1)))
        view._update_planes(changed_only=True)  # as the view's timer does
        ours.append(drawn())
        i, j, k = cursor.position
        cursor.set((i, j, k + (1 if n % 2 == 0 else -1)))
        view._update_planes(changed_only=True)
        view._layer.invalidate()
        full.append(drawn())
    emit("3-D view drawing after a one-slice step, median", median(ours) * 1000, "ms",
         ratio=median(ours) / median(full),
         reference=f"every surface drawn again ({median(full) * 1000:.0f} ms)")


def _first_drawing(view, drawn) -> None:
    """The GUI thread's first drawing of newly built surfaces (all pieces new), with the
    normals the worker computed, against the same drawing with pyqtgraph computing them
    itself (a Python loop over every vertex; the viewer before 2026-12-07), alternately."""
    import pyqtgraph.opengl as gl

    from viewer.view3d import _mesh_data

    ours, theirs = [], []
    for _ in range(3):
        for value in list(view._items):
            view._set_label(value, _mesh_data(view.surfaces.mesh(value)), view._items)
        ours.append(drawn())
        for value, item in view._items.items():
            mesh = view.surfaces.mesh(value)
            item.setMeshData(meshdata=gl.MeshData(vertexes=mesh.vertices, faces=mesh.faces),
                             smooth=True)
        view._surfaces_changed()  # as the view's own mesh changes do
        theirs.append(drawn())
    for value in list(view._items):
        view._set_label(value, _mesh_data(view.surfaces.mesh(value)), view._items)
    emit("3-D view first drawing of new surfaces (GUI thread), median", median(ours) * 1000,
         "ms", ratio=median(ours) / median(theirs),
         reference=f"pyqtgraph computing the normals ({median(theirs) * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
