"""Interaction modes of the slice views.

A slice view turns the mouse gesture bound to ``"tool"`` (see
:mod:`viewer.shortcuts`) into :class:`~viewer.tools.base.ToolEvent` objects in
voxel coordinates and forwards press, move and release to the active tool.
Tools are registered by name in :data:`TOOLS`; a new mode (brush, erase,
fill, ...) is one file here and one line in the registry.
"""

from __future__ import annotations

from .base import Tool, ToolContext, ToolEvent
from .brush import BrushTool, EraserTool
from .fill import FillTool
from .navigate import NavigateTool
from .refine import RefineTool

__all__ = ["TOOLS", "BrushTool", "EraserTool", "FillTool", "NavigateTool", "RefineTool", "Tool",
           "ToolContext", "ToolEvent"]

#: name -> tool class; the main window instantiates each with a ToolContext.
TOOLS: dict[str, type[Tool]] = {
    NavigateTool.name: NavigateTool,
    BrushTool.name: BrushTool,
    EraserTool.name: EraserTool,
    FillTool.name: FillTool,
    RefineTool.name: RefineTool,
}
