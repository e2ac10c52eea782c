"""Flood fill: give the connected region under the click the selected label.

The region is the voxels connected to the clicked one (face neighbours) that
hold the same label -- in the view's slice (2-D) or in the whole volume
(3-D) -- and, with an intensity tolerance, whose intensity is within the
tolerance of the clicked voxel's (:func:`engine.editing.kernels.flood_fill`). The
paint mode applies to the clicked region: "only over background" fills only
a background region, "only over label N" only a region of label N.
"""

from __future__ import annotations

from engine.editing.kernels import flood_fill

from .base import Tool, ToolEvent

__all__ = ["FillTool"]


class FillTool(Tool):
    """Click to fill the connected region under the pointer."""

    name = "fill"
    label = "Fill"
    cursor_shape = "PointingHandCursor"
    tip = "Click: fill the connected region under the pointer with the selected label"

    def claims(self, gesture: str) -> bool:
        return gesture == "maximise"  # a double-click is two fills, not "maximise the view"

    def press(self, event: ToolEvent) -> None:
        edits = self.context.edits
        labels = edits.labels if edits is not None else None
        if labels is None or event.index is None:
            return
        options = edits.options
        under = int(labels[event.index])
        if options.paint_mode == "background" and under != 0:
            edits.message.emit("Fill: only over background (the clicked region is labelled)")
            return
        if options.paint_mode == "label" and under != options.only_label:
            edits.message.emit(f"Fill: only over label {options.only_label}")
            return
        diff = flood_fill(
            labels, event.index, edits.selected_label,
            plane_axis=None if options.fill_3d else event.normal_axis,
            image=edits.image if options.fill_tolerance is not None else None,
            tolerance=options.fill_tolerance,
        )
        if diff is None:
            edits.message.emit("Fill: the region already has this label")
            return
        edits.apply_diff(diff, f"Fill ({'3-D' if options.fill_3d else '2-D'})")
        name = edits.label_name(edits.selected_label)
        edits.message.emit(f"Filled {diff.count:,} voxels with {name}")
