"""The drawing surface of a slice view: a pyqtgraph ``GraphicsView`` that
turns raw mouse events into gestures of :mod:`viewer.shortcuts`, and shows
the orientation letters on its edges.

The canvas does not interpret the gestures: it hands them to its owner (the
:class:`~viewer.slice_view.SliceView`) through the small :class:`GestureSink`
interface, so that the table in :mod:`viewer.shortcuts` stays the only place
that says which button does what.
"""

from __future__ import annotations

from typing import Protocol

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QLabel, QWidget

from .shortcuts import find_gesture

__all__ = ["GestureSink", "SliceCanvas", "modifier_names"]

_BUTTONS = {
    Qt.MouseButton.LeftButton: "left",
    Qt.MouseButton.MiddleButton: "middle",
    Qt.MouseButton.RightButton: "right",
}
_WHEEL_NOTCH = 120  # angleDelta units per notch of a standard wheel


def modifier_names(mods: Qt.KeyboardModifier) -> frozenset[str]:
    """The held modifiers as names (``"Shift"``, ``"Ctrl"``, ``"Alt"``)."""
    names = set()
    if mods & Qt.KeyboardModifier.ShiftModifier:
        names.add("Shift")
    if mods & Qt.KeyboardModifier.ControlModifier:
        names.add("Ctrl")
    if mods & Qt.KeyboardModifier.AltModifier:
        names.add("Alt")
    return frozenset(names)


def _modifier_key(names: frozenset[str]) -> str:
    """Modifiers in the spelling of :mod:`viewer.shortcuts` (``"Ctrl+Shift"``)."""
    return "+".join(n for n in ("Ctrl", "Alt", "Shift") if n in names)


class GestureSink(Protocol):
    """What the canvas calls; positions are in view (scene) coordinates, mm."""

    def gesture_start(self, gesture: str, pos: QPointF, mods: frozenset[str]) -> None: ...
    def gesture_move(self, gesture: str, pos: QPointF, delta: QPointF,
                     mods: frozenset[str]) -> None: ...
    def gesture_end(self, gesture: str, pos: QPointF, mods: frozenset[str]) -> None: ...
    def gesture_wheel(self, gesture: str, steps: int, pos: QPointF) -> None: ...
    def gesture_double(self, gesture: str, pos: QPointF) -> None: ...
    def gesture_cancel(self, gesture: str) -> None: ...
    def pointer_hover(self, pos: QPointF | None, mods: frozenset[str]) -> None: ...
    def pointer_entered(self) -> None: ...


class SliceCanvas(pg.GraphicsView):
    """A ``GraphicsView`` holding one ``ViewBox``, with gesture dispatch and edge letters.

    Pixel deltas of drags are reported in widget pixels (``delta``), positions
    in the ViewBox's coordinates.
    """

    def __init__(self, viewbox: pg.ViewBox, sink: GestureSink,
                 parent: QWidget | None = None) -> None:
        self.letters: dict[str, QLabel] = {}  # before super(): it calls resizeEvent
        super().__init__(parent, background="k")
        self.viewbox = viewbox
        self.sink = sink
        self.setCentralItem(viewbox)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(False)  # files dropped on a view go to the main window
        self._drag: tuple[str, Qt.MouseButton] | None = None
        self._last_pixel = QPointF()
        self._wheel_rest = 0
        for edge in ("left", "right", "top", "bottom"):
            label = QLabel("", self)
            label.setObjectName(f"letter_{edge}")
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            label.setStyleSheet(
                "color: rgb(255, 214, 90); background: rgba(0, 0, 0, 120);"
                "border-radius: 3px; padding: 0px 3px; font-weight: 600; font-size: 13px;"
            )
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.letters[edge] = label

    # -- letters -----------------------------------------------------------------
    def set_letters(self, letters: dict[str, str]) -> None:
        for edge, label in self.letters.items():
            label.setText(letters.get(edge, ""))
            label.adjustSize()
        self._place_letters()

    def _place_letters(self) -> None:
        w, h, m = self.width(), self.height(), 6
        for edge, label in self.letters.items():
            lw, lh = label.width(), label.height()
            x, y = {
                "left": (m, (h - lh) // 2),
                "right": (w - lw - m, (h - lh) // 2),
                "top": ((w - lw) // 2, m),
                "bottom": ((w - lw) // 2, h - lh - m),
            }[edge]
            label.move(int(x), int(y))
            label.raise_()

    def resizeEvent(self, ev) -> None:  # noqa: ANN001 - Qt override
        super().resizeEvent(ev)
        self._place_letters()

    # -- mouse ---------------------------------------------------------------------
    def to_view(self, pixel: QPointF) -> QPointF:
        """Widget pixel position → ViewBox coordinates."""
        return self.viewbox.mapSceneToView(self.mapToScene(pixel.toPoint()))

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if self._drag is not None:  # a second button during a drag: ignore it
            ev.accept()
            return
        button = _BUTTONS.get(ev.button())
        mods = modifier_names(ev.modifiers())
        gesture = find_gesture(button, _modifier_key(mods)) if button else None
        if gesture is None:
            ev.ignore()
            return
        self._drag = (gesture, ev.button())
        self._last_pixel = ev.position()
        self.sink.gesture_start(gesture, self.to_view(ev.position()), mods)
        ev.accept()

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        mods = modifier_names(ev.modifiers())
        pos = self.to_view(ev.position())
        if self._drag is None:
            self.sink.pointer_hover(pos, mods)
            return
        delta = ev.position() - self._last_pixel
        self._last_pixel = ev.position()
        self.sink.gesture_move(self._drag[0], pos, delta, mods)
        self.sink.pointer_hover(pos, mods)
        ev.accept()

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        if self._drag is None or ev.button() != self._drag[1]:
            ev.accept()
            return
        gesture = self._drag[0]
        self._drag = None
        self.sink.gesture_end(gesture, self.to_view(ev.position()),
                              modifier_names(ev.modifiers()))
        ev.accept()

    @property
    def dragging(self) -> bool:
        """True while a mouse drag is under way."""
        return self._drag is not None

    def cancel_drag(self) -> bool:
        """Abandon the drag under way (Esc): its release will be ignored. False if none."""
        if self._drag is None:
            return False
        gesture = self._drag[0]
        self._drag = None
        self.sink.gesture_cancel(gesture)
        return True

    def mouseDoubleClickEvent(self, ev: QMouseEvent) -> None:
        button = _BUTTONS.get(ev.button())
        mods = _modifier_key(modifier_names(ev.modifiers()))
        gesture = find_gesture(f"double-{button}", mods) if button else None
        if gesture is not None:
            self.sink.gesture_double(gesture, self.to_view(ev.position()))
            ev.accept()
            return
        # Not a double-click gesture: treat as a second press.
        self.mousePressEvent(ev)

    def wheelEvent(self, ev: QWheelEvent) -> None:
        mods = modifier_names(ev.modifiers())
        gesture = find_gesture("wheel", _modifier_key(mods))
        if gesture is None:
            ev.ignore()
            return
        angle = ev.angleDelta()
        # Some platforms turn Shift+wheel into a horizontal scroll.
        amount = angle.y() if angle.y() != 0 else angle.x()
        self._wheel_rest += amount
        steps = int(self._wheel_rest / _WHEEL_NOTCH)
        self._wheel_rest -= steps * _WHEEL_NOTCH
        if steps:
            self.sink.gesture_wheel(gesture, steps, self.to_view(ev.position()))
        ev.accept()

    def enterEvent(self, ev: QEvent) -> None:
        super().enterEvent(ev)
        self.sink.pointer_entered()

    def leaveEvent(self, ev: QEvent) -> None:
        super().leaveEvent(ev)
        if self._drag is None:
            self.sink.pointer_hover(None, frozenset())
