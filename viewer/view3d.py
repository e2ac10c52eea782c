"""The 3-D view: label surfaces with the three image planes, in the fourth cell of 2 × 2.

What it shows: the surfaces (:mod:`engine.surfaces`, smoothed marching cubes)
of the labels of one layer -- the edited mask when it holds labels, else the
top-most visible result, else the ground truth -- in the layer's colours,
hidden labels left out, a label named "Lesion" opaque and bright, the others
half transparent; and the image slices through the cursor, as in the three
slice views. Drag rotates, the wheel zooms, a middle drag pans (pyqtgraph's
camera); a click on a surface moves the cursor -- and so every slice view --
to the labelled voxel under the pointer.

Surfaces are computed off the GUI thread. After an edit only the blocks the
edit touched are recomputed (:meth:`engine.surfaces.LabelSurfaces.update`),
so a brush stroke shows in 3-D within a fraction of a second. The worker also
joins each changed label's blocks into one mesh, so the view draws one GL item
per label: a drawing costs a handful of OpenGL calls, not one set per block.

Drawing is what the GUI thread pays for: on a software renderer (Mesa on a
machine without a GPU) drawing a brain's surfaces takes ~0.1 s. So the
surfaces are drawn into a layer of their own (:class:`_SurfaceLayer`) only
when they, the camera or the size change; a scrolling slice view moves the
image planes, and a drawing then costs the planes and one textured rectangle
(~5 ms). Drawings are also kept to at most a quarter of the GUI thread's time
while the cursor moves (:data:`_DRAW_SHARE`; this matters after a full
drawing), the planes always ending on the slice the cursor stopped at. While
the camera moves (a drag, or the wheel within :data:`_WHEEL_SETTLE_MS`) and the
full surfaces take longer to draw than :data:`_PREVIEW_ABOVE_S`, the layer is
drawn from *preview* surfaces, marched at twice the step (about a fifth of the
triangles; thin layers such as sulcal CSF break up in them), and drawn again in
full detail once the camera stops. The GL
view is a native OpenGL window in a window container, not a
``QOpenGLWidget`` (see :meth:`SurfaceView._make_gl_widget`).

The view needs OpenGL (PyOpenGL and a context from the display: a GPU driver
or Mesa's software renderer, e.g. on Xvfb). Without it the cell says why, in
one line, and the rest of the window works as before.
"""

from __future__ import annotations

import functools
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QOffscreenSurface, QOpenGLContext, QSurfaceFormat, QVector4D
from PySide6.QtWidgets import QLabel, QStackedLayout, QVBoxLayout, QWidget

from engine.surfaces import LabelSurfaces, Mesh, ray_hit

from .cursor import Cursor
from .layers import LabelLayer, LayerStack
from .subscriptions import subscribe
from .workers import background_priority

__all__ = ["SurfaceView", "opengl_problem"]

log = logging.getLogger(__name__)

# The image planes blend but write no depth: their empty (transparent) parts must not
# hide the surfaces behind them.
_PLANE_OPTIONS: dict[Any, Any] = {
    0x0B71: True,  # GL_DEPTH_TEST
    0x0BE2: True,  # GL_BLEND
    "glBlendFunc": (0x0302, 0x0303),  # GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA
    "glDepthMask": (False,),
}
# The surfaces: blended, depth-tested and depth-writing, drawn into their own layer
# (:class:`_SurfaceLayer`) cleared to colour 0 and alpha 1: the colour accumulates the
# surfaces blended over black, the alpha the fraction of what lies behind them that still
# shows (each fragment multiplies it by 1 - its alpha).
_SURFACE_OPTIONS: dict[Any, Any] = {
    0x0B71: True,  # GL_DEPTH_TEST
    0x0BE2: True,  # GL_BLEND
    0x0B44: False,  # GL_CULL_FACE
    # GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA for colour; GL_ZERO, GL_ONE_MINUS_SRC_ALPHA for alpha
    "glBlendFuncSeparate": (0x0302, 0x0303, 0, 0x0303),
    "glDepthMask": (True,),
}

#: Above this many voxels the surfaces are decimated (marching-cubes step 2).
_DETAIL_LIMIT = 2_000_000
#: The camera counts as moving this long after a wheel step (ms).
_WHEEL_SETTLE_MS = 250
#: A moving camera draws the preview surfaces when the full ones took longer than this
#: (s; a frame at 30 per second): on a software renderer, not on a GPU.
_PREVIEW_ABOVE_S = 1 / 30
_SURFACE_ALPHA = 0.45
_CLICK_PIXELS = 4
#: The most of the GUI thread's time that image-plane redraws may take while the cursor
#: moves: after a drawing of t seconds the next plane redraw waits t x (1 / share - 1).
_DRAW_SHARE = 0.25


def opengl_problem() -> str | None:
    """Why the 3-D view cannot draw here, or None when OpenGL works."""
    try:
        import OpenGL.GL  # noqa: F401 - PyOpenGL, which pyqtgraph.opengl needs
        import pyqtgraph.opengl  # noqa: F401
    except ImportError as exc:
        return f"3-D view unavailable: PyOpenGL is not installed ({exc})"
    context = QOpenGLContext()
    if not context.create():
        return ("3-D view unavailable: this display gives no OpenGL context "
                "(run on a desktop, or on Xvfb with Mesa's software OpenGL)")
    surface = QOffscreenSurface()
    surface.setFormat(context.format())
    surface.create()
    if not context.makeCurrent(surface):
        return "3-D view unavailable: the OpenGL context cannot be used"
    major, minor = context.format().majorVersion(), context.format().minorVersion()
    context.doneCurrent()
    if (major, minor) < (2, 0):
        return f"3-D view unavailable: OpenGL {major}.{minor} is too old (2.0 needed)"
    return None


class _Results(QObject):
    """Carries worker results to the GUI thread (queued signal)."""

    ready = Signal(object)


@functools.cache
def _surface_data_class() -> type:
    """pyqtgraph's MeshData with the vertex normals given (imported on first use: the
    view works without OpenGL too)."""
    import pyqtgraph.opengl as gl

    class SurfaceData(gl.MeshData):
        def __init__(self, mesh: Mesh) -> None:
            super().__init__(vertexes=mesh.vertices, faces=mesh.faces)
            # pyqtgraph shades with normals from the faces' winding, which points into
            # the label: the marching-cubes normals, reversed, are the same
            self._given_normals = np.ascontiguousarray(-mesh.normals, np.float32)

        def vertexNormals(self, indexed: str | None = None) -> np.ndarray:
            if indexed is None:
                return self._given_normals
            return super().vertexNormals(indexed)

    return SurfaceData


def _mesh_data(mesh: Mesh) -> Any:
    """The pyqtgraph mesh data of *mesh*, with the normals the worker computed (marching
    cubes). pyqtgraph would otherwise compute them itself at the first drawing, in a
    Python loop over every vertex: seconds in the GUI thread for a brain's surfaces."""
    return _surface_data_class()(mesh)


_LAYER_VERTEX = """
attribute vec2 a_position;
varying vec2 v_uv;
void main() {
    v_uv = 0.5 * a_position + 0.5;
    gl_Position = vec4(a_position, 0.0, 1.0);
}
"""
_LAYER_FRAGMENT = """
#ifdef GL_ES
precision mediump float;
#endif
uniform sampler2D u_layer;
varying vec2 v_uv;
void main() {
    gl_FragColor = texture2D(u_layer, v_uv);
}
"""


class _SurfaceLayer:
    """The surfaces drawn once into a texture, laid over the image planes at each drawing.

    The planes write no depth and lie under the surfaces, so a picture is exactly
    ``surfaces' colour + their transmittance x (planes over the background)``: the
    texture holds that colour and transmittance (:data:`_SURFACE_OPTIONS`), and moving
    a plane redraws the planes and one textured rectangle, not the meshes -- on a
    software renderer ~5 ms instead of ~0.1 s per step of a scrolling slice view. The
    texture is redrawn when the camera, the size or a surface changes.
    """

    def __init__(self) -> None:
        self.fbo: Any = None
        self.key: tuple | None = None
        #: How many times the surfaces were drawn into the layer.
        self.renders = 0
        self._program: Any = None
        self._quad: Any = None

    def invalidate(self) -> None:
        self.key = None

    def render(self, view: Any, items: list[Any], key: tuple, size: tuple[int, int]) -> None:
        """Draw *items* (the surfaces, with *view*'s camera) into the texture, unless the
        texture already shows them as *key* says."""
        from OpenGL import GL
        from PySide6.QtOpenGL import QOpenGLFramebufferObject

        if self.key == key and self.fbo is not None:
            return
        if self.fbo is None or (self.fbo.width(), self.fbo.height()) != size:
            self.fbo = QOpenGLFramebufferObject(
                size[0], size[1], QOpenGLFramebufferObject.Attachment.CombinedDepthStencil)
        self.fbo.bind()
        try:
            GL.glViewport(0, 0, size[0], size[1])
            GL.glDepthMask(True)  # the planes leave it off; a clear obeys it
            GL.glClearColor(0.0, 0.0, 0.0, 1.0)
            GL.glClear(GL.GL_COLOR_BUFFER_BIT | GL.GL_DEPTH_BUFFER_BIT)
            for item in items:
                _draw_item(view, item)
        finally:
            self.fbo.release()
        GL.glViewport(0, 0, size[0], size[1])
        self.key = key
        self.renders += 1

    def draw(self, view: Any) -> None:
        """Lay the texture over what *view* drew: colour + transmittance x what is there."""
        from OpenGL import GL
        from pyqtgraph.opengl import shaders
        from PySide6.QtOpenGL import QOpenGLBuffer

        if self.fbo is None:
            return
        if self._program is None:
            self._program = shaders.ShaderProgram("delineo-layer", [
                shaders.VertexShader(_LAYER_VERTEX), shaders.FragmentShader(_LAYER_FRAGMENT)])
            corners = np.array([-1, -1, 1, -1, -1, 1, 1, 1], np.float32)
            self._quad = QOpenGLBuffer(QOpenGLBuffer.Type.VertexBuffer)
            self._quad.create()
            self._quad.bind()
            self._quad.allocate(corners, corners.nbytes)
            self._quad.release()
        context = QOpenGLContext.currentContext()
        program = self._program.program(
            es2_compat=context.hasExtension(b"GL_ARB_ES2_compatibility"))
        GL.glDisable(GL.GL_DEPTH_TEST)
        GL.glEnable(GL.GL_BLEND)
        GL.glBlendFunc(GL.GL_ONE, GL.GL_SRC_ALPHA)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.fbo.texture())
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_NEAREST)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_NEAREST)
        if view.default_vao.isCreated():  # a core profile draws from a vertex array object
            view.default_vao.bind()
        GL.glUseProgram(program)
        GL.glUniform1i(GL.glGetUniformLocation(program, "u_layer"), 0)
        self._quad.bind()
        GL.glVertexAttribPointer(0, 2, GL.GL_FLOAT, False, 0, None)  # a_position is 0
        GL.glEnableVertexAttribArray(0)
        GL.glDrawArrays(GL.GL_TRIANGLE_STRIP, 0, 4)
        GL.glDisableVertexAttribArray(0)
        self._quad.release()
        GL.glUseProgram(0)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)


def _draw_item(view: Any, item: Any) -> None:
    """Draw one top-level item of a pyqtgraph 3-D view as its own drawing loop does."""
    view._modelViewStack.append(view.currentModelView() * item.transform())
    try:
        view.drawItemTree(item)
    finally:
        view._modelViewStack.pop()


class SurfaceView(QWidget):
    """The 3-D cell (see the module docstring).

    Parameters
    ----------
    layers : LayerStack
    cursor : Cursor
    """

    #: Surfaces were (re)built and drawn: called with the seconds it took.
    surfaces_updated = Signal(float)
    #: A drawing of the GL view ended: called with the seconds it took.
    drawn = Signal(float)

    def __init__(self, layers: LayerStack, cursor: Cursor,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("surfaceView")
        self.layers = layers
        self.cursor = cursor
        self.problem = opengl_problem()
        self.layer: LabelLayer | None = None
        self.surfaces: LabelSurfaces | None = None
        #: label value -> its GL mesh item (all of the label's blocks joined), and the
        #: item of its preview surface, drawn instead while the camera moves
        self._items: dict[int, Any] = {}
        self._previews: dict[int, Any] = {}
        #: Whether the camera is moving (a drag in the view, or the wheel just turned).
        self.moving = False
        #: How long the last drawing of the layer from the full surfaces took (s).
        self.full_draw_seconds = 0.0
        self._planes: dict[str, Any] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="surfaces",
                                        initializer=background_priority)
        self._generation = 0
        self._pending: list[tuple[int, tuple | None]] = []
        self._busy = False
        self._results = _Results(self)
        self._results.ready.connect(self._apply)
        self._press: QPoint | None = None
        #: The slice index each image plane shows, and whether they lag the cursor.
        self._plane_index: dict[str, int] = {}
        self._planes_stale = False
        #: When the last drawing ended and how long it took (perf_counter seconds).
        self._drawn_at = 0.0
        self.draw_seconds = 0.0
        self._layer = _SurfaceLayer()
        self._surfaces_version = 0

        self.message = QLabel(self.problem or "No labels to show in 3-D yet", self)
        self.message.setObjectName("surfaceMessage")
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setStyleSheet("color: #8a919c; background: black; padding: 12px;")
        self.stack = QStackedLayout()
        self.stack.addWidget(self.message)
        self.gl = None
        self.gl_container: QWidget | None = None
        if self.problem is None:
            self.gl = self._make_gl_widget()
            self.stack.addWidget(self.gl_container)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addLayout(self.stack)

        subscribe(self, layers.image_changed, self._image_changed)
        subscribe(self, layers.layers_changed, self._layers_changed)
        subscribe(self, cursor.changed, self._cursor_changed)
        self._layer_subs: list[Any] = []
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(60)
        self._debounce.timeout.connect(self._flush)
        self._plane_timer = QTimer(self)
        self._plane_timer.setSingleShot(True)
        self._plane_timer.timeout.connect(lambda: self._update_planes(changed_only=True))
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(_WHEEL_SETTLE_MS)
        self._settle.timeout.connect(lambda: self._set_moving(False))
        self.destroyed.connect(lambda *_: self._pool.shutdown(wait=False, cancel_futures=True))
        self.rebuild()

    # -- the GL widget ---------------------------------------------------------------------
    def _make_gl_widget(self) -> Any:
        """The GL view: pyqtgraph's 3-D view on a ``QOpenGLWindow`` inside a window
        container (``self.gl``), the container being what the cell shows.

        Not a ``QOpenGLWidget``: one of those in a window makes Qt compose the whole
        window through OpenGL at every repaint of any widget, which on a software
        renderer costs ~40 ms per slice step of a 1600 x 1000 window even with the 3-D
        cell hidden. A native GL window draws only itself."""
        from pyqtgraph.opengl.GLViewWidget import GLViewMixin
        from PySide6.QtOpenGL import QOpenGLWindow

        view = self

        class _GLWindow(GLViewMixin, QOpenGLWindow):
            def devicePixelRatioF(self) -> float:  # what the mixin asks a widget
                return float(self.devicePixelRatio())

            def mousePressEvent(self, event: Any) -> None:
                view._press = event.position().toPoint()
                super().mousePressEvent(event)

            def mouseMoveEvent(self, event: Any) -> None:
                if event.buttons() != Qt.MouseButton.NoButton:
                    view._set_moving(True)  # before the camera change asks for a drawing
                super().mouseMoveEvent(event)

            def mouseReleaseEvent(self, event: Any) -> None:
                press, view._press = view._press, None
                pos = event.position().toPoint()
                if (press is not None and event.button() == Qt.MouseButton.LeftButton
                        and (pos - press).manhattanLength() <= _CLICK_PIXELS):
                    view.pick(pos.x(), pos.y())
                super().mouseReleaseEvent(event)
                if event.buttons() == Qt.MouseButton.NoButton:
                    view._set_moving(False)

            def wheelEvent(self, event: Any) -> None:
                view._set_moving(True)
                view._settle.start()
                super().wheelEvent(event)

            def paintGL(self, *args: Any) -> None:
                started = time.perf_counter()
                full = view._paint(self)
                view._drawn_at = time.perf_counter()
                view.draw_seconds = view._drawn_at - started
                if full:
                    view.full_draw_seconds = view.draw_seconds
                view.drawn.emit(view.draw_seconds)

        window = _GLWindow()
        surface = QSurfaceFormat.defaultFormat()
        surface.setDepthBufferSize(24)  # a window has no depth buffer unless asked
        window.setFormat(surface)
        window.setBackgroundColor((12, 12, 14))
        self.gl_container = QWidget.createWindowContainer(window, self)
        self.gl_container.setObjectName("surfaceGL")
        self.gl_container.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.gl_container.setMinimumSize(1, 1)
        # the cells around stay alien widgets: a native grid redraws slower
        self.gl_container.setAttribute(Qt.WidgetAttribute.WA_DontCreateNativeAncestors)
        return window

    def _paint(self, gl: Any) -> bool:
        """One drawing: the image planes, then the surfaces' layer over them (redrawn
        first if the camera, the size or a surface changed since). Returns whether the
        layer was redrawn from the full surfaces (what :attr:`full_draw_seconds` times)."""
        from OpenGL import GL

        region = gl.getViewport()
        gl.setProjection(region, region)
        gl.setModelview()
        size = (gl.deviceWidth(), gl.deviceHeight())
        GL.glViewport(0, 0, size[0], size[1])
        preview = (self.moving and bool(self._previews)
                   and self.full_draw_seconds > _PREVIEW_ABOVE_S)
        shown = self._previews if preview else self._items
        surfaces = [item for item in shown.values() if item.visible()]
        key = (self._surfaces_version, size, preview,
               tuple(gl.currentProjection().data()), tuple(gl.currentModelView().data()))
        renders = self._layer.renders
        if surfaces:
            self._layer.render(gl, surfaces, key, size)
        GL.glDepthMask(True)
        GL.glClearColor(*gl.opts["bgcolor"])
        GL.glClear(GL.GL_DEPTH_BUFFER_BIT | GL.GL_COLOR_BUFFER_BIT)
        meshes = set(self._items.values()) | set(self._previews.values())
        others = [item for item in gl.items
                  if item.parentItem() is None and item.visible() and item not in meshes]
        for item in sorted(others, key=lambda i: i.depthValue()):
            _draw_item(gl, item)
        if surfaces:
            self._layer.draw(gl)
        return not preview and self._layer.renders > renders

    def _surfaces_changed(self) -> None:
        """A surface's mesh, colour or visibility changed: the layer is redrawn."""
        self._surfaces_version += 1

    def _set_moving(self, moving: bool) -> None:
        """The camera starts or stops moving; when it stops, the layer is drawn again
        from the full surfaces."""
        if moving == self.moving:
            return
        self.moving = moving
        if not moving:
            self._settle.stop()
            if self.gl is not None:
                self.gl.update()

    @property
    def available(self) -> bool:
        return self.gl is not None

    # -- which layer --------------------------------------------------------------------------
    def _choose_layer(self) -> LabelLayer | None:
        edited = self.layers.edited
        if edited is not None and edited.labelmap.array.any():
            return edited
        results = [lay for lay in self.layers.labels if lay.role == "result" and lay.visible]
        if results:
            return results[-1]
        return self.layers.ground_truth

    def _image_changed(self, *_args: Any) -> None:
        self.rebuild()

    def _display_changed(self, *_args: Any) -> None:
        self._restyle()

    def _cursor_changed(self, new: Any = None, old: Any = None) -> None:
        # Slice scrolling moves the cursor many times a second: redraw only the planes
        # whose slice changed, nothing while the 3-D view is not on screen, and no more
        # often than the drawing budget allows (the timer then shows the latest slices).
        if not self.isVisible():
            self._planes_stale = True
            return
        if self._plane_timer.isActive():
            return
        wait = self._drawn_at + self.draw_seconds * (1.0 / _DRAW_SHARE - 1.0)
        self._plane_timer.start(max(0, int(1000 * (wait - time.perf_counter()))))

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self._planes_stale:
            self._update_planes()

    def _layers_changed(self, *_args: Any) -> None:
        if self._choose_layer() is not self.layer:
            self.rebuild()
        else:
            self._restyle()

    # -- building --------------------------------------------------------------------------------
    def rebuild(self) -> None:
        """Recompute every surface of the layer to show (in the worker)."""
        for handle in self._layer_subs:
            handle.disconnect()
        self._layer_subs = []
        self.layer = self._choose_layer()
        self._generation += 1
        self._pending.clear()
        self.surfaces = None
        if self.gl is not None:
            for items in (self._items, self._previews):
                for item in list(items.values()):
                    self.gl.removeItem(item)
                items.clear()
            self._surfaces_changed()
        if self.layer is None or self.layers.image is None:
            self.message.setText(self.problem or "No labels to show in 3-D yet")
            self.stack.setCurrentWidget(self.message)
            return
        if self.gl is None:
            return
        layer = self.layer
        self._layer_subs = [
            subscribe(self, layer.data_changed, self._data_changed),
            subscribe(self, layer.display_changed, self._display_changed),
        ]
        self._place_camera()
        self._update_planes()
        self.stack.setCurrentWidget(self.gl_container)
        self._pending.append((self._generation, None))
        self._flush()

    def _data_changed(self, bbox: Any = None) -> None:
        box = None if bbox is None else tuple((int(a), int(b)) for a, b in _as_ranges(bbox))
        self._pending.append((self._generation, box))
        self._debounce.start()

    def _flush(self) -> None:
        if self._busy or not self._pending or self.layer is None:
            return
        generation = self._generation
        boxes = [box for gen, box in self._pending if gen == generation]
        self._pending.clear()
        if not boxes:
            return
        whole = any(box is None for box in boxes) or self.surfaces is None
        bbox = None if whole else _union(boxes)
        labels = self.layer.labelmap.array
        spacing = self.layer.labelmap.spacing
        surfaces = self.surfaces
        step = 2 if labels.size > _DETAIL_LIMIT else 1
        self._busy = True
        started = time.perf_counter()

        def work() -> tuple[int, LabelSurfaces, dict[int, Any], float]:
            if surfaces is None:
                done = LabelSurfaces(labels, spacing, step=step, preview_step=2 * step)
                values = set(done.values)
            else:
                box = tuple(slice(a, b) for a, b in bbox)
                present = [int(v) for v in np.unique(labels[box])]
                done = surfaces
                values = {value for value, _ in surfaces.update(bbox, values=present)}
            # each changed label's blocks joined, with pyqtgraph's mesh data made here too
            meshes = {value: (_mesh_data(done.mesh(value)),
                              _mesh_data(done.mesh(value, preview=True)))
                      for value in sorted(values)}
            return generation, done, meshes, started

        future: Future = self._pool.submit(work)
        future.add_done_callback(lambda f: self._results.ready.emit(f))

    def _apply(self, future: Future) -> None:
        self._busy = False
        try:
            generation, surfaces, changed, started = future.result()
        except Exception as exc:  # a failed mesh must not take the window down
            log.warning("3-D surfaces failed: %s", exc)
            self.message.setText(f"3-D surfaces failed: {exc}")
            self.stack.setCurrentWidget(self.message)
            return
        if generation == self._generation and self.gl is not None:
            self.surfaces = surfaces
            for value, (data, preview) in changed.items():
                self._set_label(value, data, self._items)
                self._set_label(value, preview, self._previews)
            self._restyle()
            self.gl.update()
            self.surfaces_updated.emit(time.perf_counter() - started)
        if self._pending:
            self._flush()

    def _set_label(self, value: int, data: Any, items: dict[int, Any]) -> None:
        """Show, replace or drop one label's surface in *items* (the full or the preview
        surfaces; *data*: pyqtgraph mesh data of all its blocks; an edit re-uploads the
        labels it changed only)."""
        import pyqtgraph.opengl as gl

        self._surfaces_changed()
        item = items.get(value)
        if data.faceCount() == 0:
            if item is not None:
                self.gl.removeItem(item)
                del items[value]
            return
        if item is None:
            item = gl.GLMeshItem(meshdata=data, smooth=True, shader="shaded",
                                 glOptions=_SURFACE_OPTIONS)
            items[value] = item
            self.gl.addItem(item)
            self._style(value, item)
        else:
            item.setMeshData(meshdata=data, smooth=True)

    def _restyle(self) -> None:
        for items in (self._items, self._previews):
            for value, item in items.items():
                self._style(value, item)

    def _style(self, value: int, item: Any) -> None:
        """Give *item* its label's colour and visibility; only a change redraws the
        surfaces' layer (the layer stack announces every change of any layer)."""
        layer = self.layer
        if layer is None:
            return
        table = layer.labelmap.labels
        r, g, b = table.color(value)
        lesion = table.name(value).strip().lower() == "lesion"
        alpha = 1.0 if lesion else _SURFACE_ALPHA
        if lesion:
            r, g, b = 255, 40, 220
        colour = (r / 255, g / 255, b / 255, alpha)
        visible = layer.visible and value not in layer.hidden
        if item.opts["color"] != colour or item.visible() != visible:
            item.setColor(colour)
            item.setVisible(visible)
            self._surfaces_changed()

    @property
    def shown_values(self) -> list[int]:
        """Label values with a surface in the view."""
        return sorted(self._items)

    # -- camera and planes ----------------------------------------------------------------------
    def _place_camera(self) -> None:
        image = self.layers.image
        if image is None or self.gl is None:
            return
        from pyqtgraph import Vector

        size = np.array(image.volume.shape) * np.array(image.volume.spacing)
        centre = size / 2.0
        # From the front and the patient's left (azimuth in the R-A plane), a little
        # above, the whole volume in view.
        self.gl.setCameraPosition(pos=Vector(*centre), distance=float(1.05 * size.max()),
                                  elevation=20, azimuth=125)

    def _update_planes(self, *, changed_only: bool = False) -> None:
        """Draw the image slices through the cursor (those whose slice moved, if asked)."""
        image = self.layers.image
        if image is None or self.gl is None:
            return
        self._planes_stale = False
        import pyqtgraph.opengl as gl
        from pyqtgraph import Transform3D

        vol = image.volume
        i, j, k = self.cursor.position
        sx, sy, sz = (float(v) for v in vol.spacing)
        low, high = image.levels
        span = max(float(high - low), 1e-6)
        # Each plane's matrix maps image pixel (u, v) -- drawn by GLImageItem on [u, u + 1]
        # x [v, v + 1] at z = 0 -- to mm; voxel centres sit at index x spacing.
        planes = {
            "axial": (vol.array[:, :, k],
                      [[sx, 0, 0, -sx / 2], [0, sy, 0, -sy / 2], [0, 0, 1, k * sz]]),
            "coronal": (vol.array[:, j, :],
                        [[sx, 0, 0, -sx / 2], [0, 0, 1, j * sy], [0, sz, 0, -sz / 2]]),
            "sagittal": (vol.array[i, :, :],
                         [[0, 0, 1, i * sx], [sy, 0, 0, -sy / 2], [0, sz, 0, -sz / 2]]),
        }
        index = {"axial": k, "coronal": j, "sagittal": i}
        for plane, (data, rows) in planes.items():
            if changed_only and self._plane_index.get(plane) == index[plane]:
                continue
            self._plane_index[plane] = index[plane]
            grey = np.clip((np.asarray(data, np.float32) - low) / span, 0.0, 1.0)
            rgba = np.empty((*grey.shape, 4), np.ubyte)
            rgba[..., :3] = (grey * 255).astype(np.ubyte)[..., None]
            rgba[..., 3] = np.where(grey > 0.02, 200, 0).astype(np.ubyte)
            item = self._planes.get(plane)
            if item is None:
                item = gl.GLImageItem(rgba, smooth=False, glOptions=_PLANE_OPTIONS)
                item.setDepthValue(-10)  # drawn first, under the surfaces
                self._planes[plane] = item
                self.gl.addItem(item)
            else:
                item.setData(rgba)
            values = [float(v) for row in rows for v in row] + [0.0, 0.0, 0.0, 1.0]
            item.setTransform(Transform3D(*values))
        self.gl.update()

    # -- picking ---------------------------------------------------------------------------------
    def ray_at(self, x: float, y: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Origin and direction (mm) of the ray through widget pixel (*x*, *y*)."""
        if self.gl is None:
            return None
        w, h = self.gl.width(), self.gl.height()
        if w <= 0 or h <= 0:
            return None
        dpr = self.gl.devicePixelRatioF()
        region = (0, 0, int(w * dpr), int(h * dpr))
        proj = self.gl.projectionMatrix(region, region)
        inverse, ok = (proj * self.gl.viewMatrix()).inverted()
        if not ok:
            return None
        nx, ny = 2.0 * x / w - 1.0, 1.0 - 2.0 * y / h
        near = inverse.map(QVector4D(nx, ny, -1.0, 1.0))
        far = inverse.map(QVector4D(nx, ny, 1.0, 1.0))
        p0 = np.array([near.x(), near.y(), near.z()]) / near.w()
        p1 = np.array([far.x(), far.y(), far.z()]) / far.w()
        return p0, p1 - p0

    def pick(self, x: float, y: float) -> tuple[int, int, int] | None:
        """Move the cursor to the labelled voxel under widget pixel (*x*, *y*), if any."""
        layer = self.layer
        ray = self.ray_at(x, y)
        if layer is None or ray is None:
            return None
        visible = [v for v in self.shown_values if v not in layer.hidden]
        hit = ray_hit(layer.labelmap.array, visible, ray[0], ray[1], layer.labelmap.spacing)
        if hit is not None:
            self.cursor.set(hit)
        return hit


def _as_ranges(bbox: Any) -> list[tuple[int, int]]:
    """A layer's changed box (three slices, :data:`viewer.layers.BBox`) as index ranges."""
    return [(int(s.start or 0), int(s.stop)) for s in bbox]


def _union(boxes: list[tuple]) -> tuple[tuple[int, int], ...]:
    return tuple((min(b[a][0] for b in boxes), max(b[a][1] for b in boxes)) for a in range(3))
