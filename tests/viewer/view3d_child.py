"""Child process of tests/viewer/test_view3d.py: the 3-D view on a real (Xvfb) display.

Run as ``python view3d_child.py RESULT.json`` with DISPLAY set and Qt's xcb platform:
builds the view on a small brain-like phantom, checks a frame, paints a blob as an
edit would, waits for the incremental update, clicks the centre of the view and
writes what it saw as JSON (the test asserts on it).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication


def wait(app, until, seconds=60.0):
    start = time.time()
    while not until() and time.time() - start < seconds:
        app.processEvents()
        time.sleep(0.005)
    return until()


def grab(view, direct: bool = False) -> np.ndarray:
    """The 3-D view's picture, drawn now (the view's own paintGL, or with *direct*
    pyqtgraph's drawing of every item in turn; read back before any buffer swap), as int
    BGR pixels."""
    from pyqtgraph.opengl.GLViewWidget import GLViewMixin

    view.gl.makeCurrent()
    if direct:  # every full surface (not the preview ones, drawn only while moving)
        shown = {item: item.visible() for item in view._previews.values()}
        for item in shown:
            item.setVisible(False)
        GLViewMixin.paintGL(view.gl)
        for item, visible in shown.items():
            item.setVisible(visible)
    else:
        view.gl.paintGL()
    frame = view.gl.grabFramebuffer()
    frame = frame.convertToFormat(frame.format().Format_RGB32)
    width, height = frame.width(), frame.height()
    return np.frombuffer(frame.constBits(), np.uint8).reshape(
        height, frame.bytesPerLine() // 4, 4)[:, :width, :3].astype(int)


def main(out: str) -> None:
    app = QApplication([])
    from engine.core.volume import BRAIN_TISSUE_LABELS, LabelMap, Volume
    from viewer.cursor import Cursor
    from viewer.layers import LayerStack
    from viewer.view3d import SurfaceView

    shape = (64, 72, 56)
    i, j, k = np.indices(shape)
    r = np.sqrt((i - 32) ** 2 + ((j - 36) / 1.1) ** 2 + ((k - 28) / 0.9) ** 2)
    labels = np.zeros(shape, np.uint8)
    labels[r < 24] = 1
    labels[r < 20] = 2
    labels[r < 12] = 3
    image = Volume((labels * 60.0 + 10.0).astype(np.float32), np.diag([1.0, 1.0, 1.2, 1.0]),
                   modality="MR")
    layers = LayerStack()
    layers.set_image(image)
    cursor = Cursor(shape)
    cursor.set((32, 36, 28))
    import pyqtgraph.opengl as gl

    # pyqtgraph's own vertex normals: a Python loop over every vertex, in the GUI thread
    loops: list[int] = []
    own_normals = gl.MeshData.vertexFaces

    def counted(self, *args, **kwargs):
        loops.append(1)
        return own_normals(self, *args, **kwargs)

    gl.MeshData.vertexFaces = counted
    view = SurfaceView(layers, cursor)
    view.resize(500, 500)
    view.show()
    result = {"problem": view.problem, "available": view.available}
    builds: list[float] = []
    view.surfaces_updated.connect(builds.append)
    drawings: list[float] = []
    view.drawn.connect(drawings.append)
    layer = layers.add_labels(LabelMap.on_grid_of(image, labels, labels=BRAIN_TISSUE_LABELS),
                              name="labels", role="edit")
    result["built"] = wait(app, lambda: bool(builds))
    result["build_seconds"] = builds[0] if builds else None
    result["values"] = view.shown_values
    wait(app, lambda: False, 0.3)
    pixels = frame_pixels = grab(view)
    background = np.array([14, 12, 12])  # BGRA order in memory
    result["drawn_fraction"] = float(np.mean(np.abs(pixels - background).sum(axis=2) > 30))
    before = view.surfaces.triangle_count()
    result["drawings"] = len(drawings)
    result["last_drawing_seconds"] = view.draw_seconds
    result["pyqtgraph_normal_loops"] = len(loops)
    value, item = next(iter(view._items.items()))
    result["normals_from_the_worker"] = bool(np.array_equal(
        item.opts["meshdata"].vertexNormals(), -view.surfaces.mesh(value).normals))
    # one GL item per label, holding every block of it
    result["items"] = sorted(view._items)
    result["item_faces"] = {str(v): int(it.opts["meshdata"].faceCount())
                            for v, it in view._items.items()}
    result["label_faces"] = {str(v): len(view.surfaces.mesh(v).faces)
                             for v in view.shown_values}

    # An edit: a WM blob outside everything, announced like a brush stroke.
    builds.clear()
    layer.labelmap.array[2:8, 2:8, 2:8] = 3
    started = time.perf_counter()
    layer.notify_changed((slice(2, 8), slice(2, 8), slice(2, 8)))
    result["updated"] = wait(app, lambda: bool(builds), 10.0)
    result["update_wall_seconds"] = time.perf_counter() - started
    result["triangles_before"] = before
    result["triangles_after"] = view.surfaces.triangle_count()
    result["wm_item_faces_after"] = int(view._items[3].opts["meshdata"].faceCount())
    result["wm_faces_after"] = len(view.surfaces.mesh(3).faces)

    # Scrolling while drawings are slow: the planes wait for the drawing budget, then show
    # the slice the cursor stopped at.
    wait(app, lambda: not view._plane_timer.isActive(), 2.0)
    view._drawn_at, view.draw_seconds = time.perf_counter(), 0.2  # as after a 0.2 s drawing
    for z in range(30, 36):
        cursor.set((32, 36, z))
        app.processEvents()
    result["axial_plane_while_waiting"] = view._plane_index["axial"]
    result["plane_wait_ms"] = view._plane_timer.remainingTime()
    wait(app, lambda: not view._plane_timer.isActive(), 3.0)
    result["axial_plane_after"] = view._plane_index["axial"]

    # Moving a plane draws the planes and lays the surfaces' layer over them, without
    # drawing the surfaces again; the picture equals a drawing of everything.
    wait(app, lambda: False, 0.3)
    renders = view._layer.renders
    cursor.set((30, 34, 26))
    view._update_planes(changed_only=True)
    layered = grab(view)
    result["layer_renders_on_plane_move"] = view._layer.renders - renders
    view._layer.invalidate()
    full = grab(view)
    result["layer_renders_when_invalidated"] = view._layer.renders - renders
    result["layered_vs_full_max_difference"] = int(np.abs(layered - full).max())
    # a change of another layer's display leaves the surfaces' layer alone; hiding a
    # label of the shown one redraws it without that label
    renders = view._layer.renders
    layer.set_opacity(0.3)
    grab(view)
    result["layer_renders_on_opacity"] = view._layer.renders - renders
    layer.set_label_visible(1, False)
    grab(view)
    result["layer_renders_on_hiding"] = view._layer.renders - renders
    layer.set_label_visible(1, True)
    grab(view)
    # and the layer's picture is what drawing every item over the planes gives
    direct = grab(view, direct=True)
    result["layered_vs_direct_max_difference"] = int(np.abs(layered - direct).max())
    result["layered_vs_direct_mean_difference"] = float(np.abs(layered - direct).mean())
    result["layered_planes_differ_from_before"] = bool(np.abs(layered - frame_pixels).max() > 30)

    # A drag (the camera moving) draws the layer from the preview surfaces, about a
    # quarter of the triangles; the release draws it again from the full ones.
    drawn_with: list[list[int]] = []
    render = view._layer.render

    def recording(gv, items, key, size):
        drawn_with.append([int(it.opts["meshdata"].faceCount()) for it in items])
        return render(gv, items, key, size)

    view._layer.render = recording
    result["preview_items"] = sorted(view._previews)
    # a small phantom draws quickly; as after a slow full drawing (a brain's surfaces on
    # a software renderer: ~0.1 s)
    view.full_draw_seconds = 0.1
    glw = view.gl
    mid = QPointF(glw.width() / 2, glw.height() / 2)

    def mouse(kind, pos, buttons):
        event = QMouseEvent(kind, pos, QPointF(glw.mapToGlobal(pos.toPoint())),
                            Qt.MouseButton.LeftButton, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(glw, event)

    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    mouse(QMouseEvent.Type.MouseButtonPress, mid, left)
    for dx in (10, 20, 30):
        mouse(QMouseEvent.Type.MouseMove, mid + QPointF(dx, 0), left)
        grab(view)
    result["moving_while_dragging"] = view.moving
    mouse(QMouseEvent.Type.MouseButtonRelease, mid + QPointF(30, 0), none)
    result["moving_after_release"] = view.moving
    grab(view)
    result["drag_faces"] = [sum(faces) for faces in drawn_with]
    # where the full surfaces draw fast (a GPU), a drag keeps drawing them
    drawn_with.clear()
    view.full_draw_seconds = 0.005
    mouse(QMouseEvent.Type.MouseButtonPress, mid, left)
    mouse(QMouseEvent.Type.MouseMove, mid + QPointF(-20, 0), left)
    grab(view)
    mouse(QMouseEvent.Type.MouseButtonRelease, mid + QPointF(-20, 0), none)
    result["fast_drag_faces"] = [sum(faces) for faces in drawn_with]
    view._layer.render = render
    result["full_faces"] = sum(int(it.opts["meshdata"].faceCount())
                               for it in view._items.values())
    result["preview_faces"] = sum(int(it.opts["meshdata"].faceCount())
                                  for it in view._previews.values())

    # A click in the middle of the view lands on a labelled voxel and moves the cursor.
    cursor.set((0, 0, 0))
    gl = view.gl
    centre = QPointF(gl.width() / 2, gl.height() / 2)
    global_pos = QPointF(gl.mapToGlobal(QPoint(int(centre.x()), int(centre.y()))))
    press = QMouseEvent(QMouseEvent.Type.MouseButtonPress, centre, global_pos,
                        Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton,
                        Qt.KeyboardModifier.NoModifier)
    release = QMouseEvent(QMouseEvent.Type.MouseButtonRelease, centre, global_pos,
                          Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton,
                          Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(gl, press)
    QApplication.sendEvent(gl, release)
    app.processEvents()
    result["cursor_after_click"] = list(cursor.position)
    result["label_at_cursor"] = int(labels[tuple(cursor.position)])
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
