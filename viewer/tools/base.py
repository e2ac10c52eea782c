"""What a tool receives and what it may touch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..cursor import Cursor
    from ..edit_session import EditSession
    from ..layers import BBox, LabelLayer, LayerStack

__all__ = ["Tool", "ToolContext", "ToolEvent"]


@dataclass(frozen=True)
class ToolEvent:
    """A mouse event of a slice view, in voxel coordinates.

    Attributes
    ----------
    plane : str
        ``"axial"``, ``"coronal"`` or ``"sagittal"``: the view it happened in.
    normal_axis : int
        Array axis across that view's slices.
    voxel : tuple of float
        Continuous voxel coordinates ``(i, j, k)`` (voxel centres at integers);
        the component along *normal_axis* is the view's slice index.
    index : tuple of int or None
        The voxel under the pointer, or None outside the volume.
    modifiers : frozenset of str
        Held modifiers among ``"Shift"``, ``"Ctrl"``, ``"Alt"``.
    gesture : str
        The gesture of :mod:`viewer.shortcuts` that produced the event:
        ``"tool"`` (left button), or another one the tool claimed with
        :meth:`Tool.claims` (e.g. ``"zoom"``, the right button, for erasing).
    """

    plane: str
    normal_axis: int
    voxel: tuple[float, float, float]
    index: tuple[int, int, int] | None
    modifiers: frozenset[str] = frozenset()
    gesture: str = "tool"


@dataclass
class ToolContext:
    """The models a tool works on, and how it asks for a redraw.

    ``refresh(layer, bbox)`` tells the views that the voxels of *layer* inside
    *bbox* changed (only views whose slice crosses the box redraw). Editing
    tools change the edited mask only through ``edits``, the
    :class:`~viewer.edit_session.EditSession` (undo, journal, live metrics).
    """

    cursor: Cursor
    layers: LayerStack
    refresh: Callable[[LabelLayer, BBox | None], None] = field(default=lambda *_: None)
    extras: dict[str, Any] = field(default_factory=dict)
    edits: EditSession | None = None


class Tool:
    """Base class of interaction modes. Subclasses override what they need.

    One press → moves → release sequence is one gesture (for editing tools:
    one undo step).
    """

    name = "tool"
    label = "Tool"
    #: Qt cursor shape name shown over the views (``Qt.CursorShape`` member).
    cursor_shape = "CrossCursor"
    tip = ""

    def __init__(self, context: ToolContext) -> None:
        self.context = context

    def activate(self) -> None:
        """The tool became the active one."""

    def deactivate(self) -> None:
        """Another tool takes over; finish anything pending."""

    def press(self, event: ToolEvent) -> None:
        """Button pressed (the gesture starts)."""

    def move(self, event: ToolEvent) -> None:
        """Pointer moved with the button held."""

    def release(self, event: ToolEvent) -> None:
        """Button released (the gesture ends)."""

    def cancel(self) -> None:
        """The drag under way was abandoned (Esc); the default finishes it as a release."""
        self.deactivate()

    def hover(self, event: ToolEvent) -> None:
        """Pointer moved with no button held (e.g. to draw a brush outline)."""

    def claims(self, gesture: str) -> bool:
        """True to receive *gesture* (other than ``"tool"``) as press/move/release.

        A claimed gesture reaches the tool with ``event.gesture`` set to its
        name instead of doing what :mod:`viewer.shortcuts` binds it to.
        """
        return False

    def wheel(self, gesture: str, steps: int) -> bool:
        """A wheel gesture over a view; return True when the tool used it."""
        return False

    def outline(self) -> tuple[float, tuple[int, int, int] | None] | None:
        """A circle around the pointer: ``(radius in mm, RGB painted or None when erasing)``.

        None: no circle.
        """
        return None
