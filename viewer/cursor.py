"""The shared cursor: one voxel that all three views cross at (no Qt)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.core.events import DeclaredEvent

__all__ = ["Cursor"]


class Cursor:
    """A voxel index ``(i, j, k)`` in canonical RAS+ array order, kept inside *shape*.

    ``changed`` is emitted with ``(new, old)`` index tuples whenever the
    position changes; views compare the two to know whether their slice moved.
    """

    changed = DeclaredEvent("The position changed; called with (new, old) index tuples.")

    def __init__(self, shape: Sequence[int] = (1, 1, 1)) -> None:
        self.shape: tuple[int, int, int] = (1, 1, 1)
        self.position: tuple[int, int, int] = (0, 0, 0)
        self.reset(shape)

    def reset(self, shape: Sequence[int]) -> None:
        """Adopt a new volume *shape* and move to its centre."""
        self.shape = tuple(max(1, int(n)) for n in shape)  # type: ignore[assignment]
        self.set(tuple(n // 2 for n in self.shape), force=True)

    def clamp(self, ijk: Sequence[float]) -> tuple[int, int, int]:
        """Nearest voxel index inside the volume."""
        return tuple(  # type: ignore[return-value]
            int(min(max(int(np.floor(v + 0.5)), 0), n - 1))
            for v, n in zip(ijk, self.shape, strict=True)
        )

    def set(self, ijk: Sequence[float], *, force: bool = False) -> None:
        new = self.clamp(ijk)
        old = self.position
        if new != old or force:
            self.position = new
            self.changed.emit(new, old)

    def set_axis(self, axis: int, index: int) -> None:
        """Move along one array axis only (a slice change in one view)."""
        ijk = list(self.position)
        ijk[axis] = index
        self.set(ijk)

    def step(self, axis: int, delta: int) -> None:
        self.set_axis(axis, self.position[axis] + int(delta))
