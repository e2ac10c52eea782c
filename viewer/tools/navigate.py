"""Navigate: click or drag to move the linked cursor."""

from __future__ import annotations

from .base import Tool, ToolEvent

__all__ = ["NavigateTool"]


class NavigateTool(Tool):
    """Moves the shared cursor to the voxel under the pointer (kept inside the volume).

    The slice of the view it happens in does not change; the two other
    views follow the cursor.
    """

    name = "navigate"
    label = "Navigate"
    cursor_shape = "CrossCursor"
    tip = "Click or drag to move the crosshair; the other views follow"

    def press(self, event: ToolEvent) -> None:
        self._move_cursor(event)

    def move(self, event: ToolEvent) -> None:
        self._move_cursor(event)

    def _move_cursor(self, event: ToolEvent) -> None:
        cursor = self.context.cursor
        target = list(event.voxel)
        # Stay on this view's slice even if the pointer is rounded onto another.
        target[event.normal_axis] = cursor.position[event.normal_axis]
        cursor.set(target)
