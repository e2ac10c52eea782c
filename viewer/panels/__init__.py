"""Dock panels: window/level, label layers, label table."""

from .labels_panel import LabelsPanel
from .layers_panel import LayersPanel
from .window_level import WindowLevelPanel

__all__ = ["LabelsPanel", "LayersPanel", "WindowLevelPanel"]
