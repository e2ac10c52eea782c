"""Brush and eraser: paint the selected label (or 0) along the mouse path.

A 2-D disk in the plane of the view or a 3-D sphere, of the diameter set in
the edit panel (``[`` / ``]`` or Shift + wheel change it). Each mouse move
paints one stroke segment with :func:`engine.editing.kernels.paint_stroke` and hands
its diff to the :class:`~viewer.edit_session.EditSession` (live metrics and
display follow at once); the whole drag is one undo step. With the brush,
the right button erases.
"""

from __future__ import annotations

from engine.editing.kernels import paint_stroke

from .base import Tool, ToolContext, ToolEvent

__all__ = ["BrushTool", "EraserTool"]

#: The right-button gesture of :mod:`viewer.shortcuts`, claimed to erase.
ERASE_GESTURE = "zoom"
#: Shift + wheel, claimed to change the brush size.
SIZE_GESTURE = "slice_fast"


class BrushTool(Tool):
    """Paints the selected label; the right button erases."""

    name = "brush"
    label = "Brush"
    cursor_shape = "CrossCursor"
    tip = ("Paint the selected label (right button: erase); "
           "[ ] or Shift + wheel: brush size; 1-9: label")
    erase = False

    def __init__(self, context: ToolContext) -> None:
        super().__init__(context)
        self._last: tuple[float, float, float] | None = None
        self._erasing = False
        self._axis: int | None = None

    # -- gesture ------------------------------------------------------------------
    def claims(self, gesture: str) -> bool:
        # Right button: erase (brush only). Double-click: ignored, not "maximise the view".
        return (gesture == ERASE_GESTURE and not self.erase) or gesture == "maximise"

    def press(self, event: ToolEvent) -> None:
        edits = self.context.edits
        if edits is None or edits.labels is None:
            return
        self._erasing = self.erase or event.gesture == ERASE_GESTURE
        self._axis = event.normal_axis
        edits.begin_gesture("Eraser stroke" if self._erasing else "Brush stroke")
        self._last = event.voxel
        self._paint(event.voxel, event.voxel)

    def move(self, event: ToolEvent) -> None:
        if self._last is None:
            return
        start, self._last = self._last, event.voxel
        self._paint(start, event.voxel)

    def release(self, event: ToolEvent) -> None:
        if self._last is None:
            return
        self._last = None
        edits = self.context.edits
        if edits is not None:
            edits.end_gesture()

    def cancel(self) -> None:
        """Esc during the drag: the stroke is taken back and leaves no undo step."""
        if self._last is None:
            return
        self._last = None
        edits = self.context.edits
        if edits is not None:
            edits.cancel_gesture()

    def deactivate(self) -> None:
        if self._last is not None:
            self.release(ToolEvent("", self._axis or 0, (0.0, 0.0, 0.0), None))

    def _paint(self, start: tuple[float, float, float], end: tuple[float, float, float]) -> None:
        edits = self.context.edits
        labels = edits.labels if edits is not None else None
        if labels is None:
            return
        diff = paint_stroke(labels, start, end, **edits.paint_kwargs(self._axis,
                                                                     erase=self._erasing))
        edits.record(diff)

    # -- size and outline -----------------------------------------------------------------
    def wheel(self, gesture: str, steps: int) -> bool:
        edits = self.context.edits
        if gesture != SIZE_GESTURE or edits is None:
            return False
        edits.grow_brush(steps)
        return True

    def outline(self) -> tuple[float, tuple[int, int, int] | None] | None:
        edits = self.context.edits
        if edits is None:
            return None
        radius = edits.options.brush_size_mm / 2.0
        if self.erase or (self._erasing and self._last is not None):
            return radius, None
        return radius, edits.label_color(edits.selected_label)


class EraserTool(BrushTool):
    """Sets voxels to 0 under the brush (respecting the "only over label N" mode)."""

    name = "eraser"
    label = "Eraser"
    tip = "Erase (set to background) under the brush; [ ] or Shift + wheel: brush size"
    erase = True
