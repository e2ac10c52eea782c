"""Refine: click-to-refine with an active contour, from a click or a box.

A click on a structure grows the selected label there; a click inside the
selected label refines its boundary near the click; a drag draws a box the
contour starts from (:func:`engine.editing.refine.refine_at`). The contour runs in a
worker; its result is one undo step. The tool only turns gestures into
requests: ``context.extras["refine"](seed=..., box=...)`` starts the job and
``context.extras["refine_preview"](plane, corner_a, corner_b)`` draws (or,
with ``None``, clears) the box being dragged; the main window provides both
(:class:`viewer.pipeline_runner.RefineRunner` and the views).
"""

from __future__ import annotations

import math

from .base import Tool, ToolContext, ToolEvent

__all__ = ["RefineTool", "drag_box"]

#: A drag shorter than this (in voxels, in the view's plane) is a click.
CLICK_TOLERANCE = 2


def drag_box(start: tuple[int, int, int], end: tuple[int, int, int], normal_axis: int,
             spacing: tuple[float, float, float],
             shape: tuple[int, int, int]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The 3-D box of a rectangle dragged in one view: ``(low corner, high corner)``.

    In the view's plane it spans the dragged rectangle (both ends included);
    across the slices it extends, on both sides of the slice, by half the
    rectangle's shorter side (in mm), so a square drag gives a cube.

    Examples
    --------
    >>> drag_box((10, 10, 5), (20, 30, 5), 2, (1.0, 1.0, 2.0), (64, 64, 20))
    ((10, 10, 2), (21, 31, 9))
    """
    lo = [min(a, b) for a, b in zip(start, end, strict=True)]
    hi = [max(a, b) + 1 for a, b in zip(start, end, strict=True)]
    inplane = [(hi[a] - lo[a]) * spacing[a] for a in range(3) if a != normal_axis]
    half = max(1, math.ceil(0.5 * min(inplane) / spacing[normal_axis]))
    k = start[normal_axis]
    lo[normal_axis] = max(0, k - half)
    hi[normal_axis] = min(shape[normal_axis], k + half + 1)
    return (lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2])


class RefineTool(Tool):
    """Click: grow or refine the selected label there; drag: start from a box."""

    name = "refine"
    label = "Refine"
    cursor_shape = "PointingHandCursor"
    tip = ("Click a structure: an active contour grows the selected label from there "
           "(inside the label: refines its boundary); drag: start from a box")

    def __init__(self, context: ToolContext) -> None:
        super().__init__(context)
        self._start: tuple[int, int, int] | None = None
        self._end: tuple[int, int, int] | None = None
        self._plane = ""
        self._normal = 2

    def claims(self, gesture: str) -> bool:
        return gesture == "maximise"  # a double-click is two clicks here

    def press(self, event: ToolEvent) -> None:
        self._start = event.index
        self._end = event.index
        self._plane = event.plane
        self._normal = event.normal_axis

    def move(self, event: ToolEvent) -> None:
        if self._start is None:
            return
        self._end = self._clamped(event)
        preview = self.context.extras.get("refine_preview")
        if preview is None:
            return
        if self._is_drag():
            preview(self._plane, self._start, self._end)
        else:
            preview(self._plane, None, None)

    def release(self, event: ToolEvent) -> None:
        start = self._start
        if start is None:
            return
        self._end = self._clamped(event)
        preview = self.context.extras.get("refine_preview")
        if preview is not None:
            preview(self._plane, None, None)
        request = self.context.extras.get("refine")
        drag = self._is_drag()
        self._start = None
        if request is None:
            return
        if not drag:
            request(seed=start)
            return
        image = self.context.layers.image
        if image is None:
            return
        assert self._end is not None
        box = drag_box(start, self._end, self._normal, image.volume.spacing, image.volume.shape)
        request(box=box)

    def deactivate(self) -> None:
        if self._start is not None:
            preview = self.context.extras.get("refine_preview")
            if preview is not None:
                preview(self._plane, None, None)
        self._start = None

    # -- helpers -----------------------------------------------------------------------
    def _clamped(self, event: ToolEvent) -> tuple[int, int, int] | None:
        """The voxel under the pointer, or the nearest one inside the volume."""
        if event.index is not None:
            return event.index
        image = self.context.layers.image
        if image is None:
            return None
        shape = image.volume.shape
        ijk = [min(max(math.floor(v + 0.5), 0), n - 1) for v, n in zip(event.voxel, shape,
                                                                      strict=True)]
        return ijk[0], ijk[1], ijk[2]

    def _is_drag(self) -> bool:
        if self._start is None or self._end is None:
            return False
        return any(abs(a - b) >= CLICK_TOLERANCE
                   for axis, (a, b) in enumerate(zip(self._start, self._end, strict=True))
                   if axis != self._normal)
