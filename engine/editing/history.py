"""Undo/redo of label edits as sparse diffs, capped in bytes.

One *step* is what the user sees as one action: a whole mouse drag (many
stroke segments), one fill, one algorithm result. Segments are recorded while
a step is open (:meth:`History.begin` ... :meth:`History.end`) and merged into
a single :class:`~engine.editing.kernels.Diff` when it closes. The history keeps as
many steps as fit in ``budget_bytes`` (oldest dropped first), never a fixed
number of steps; changed-voxel masks are stored bit-packed.

Examples
--------
>>> import numpy as np
>>> from engine.editing.kernels import paint
>>> labels = np.zeros((10, 10, 10), np.uint8)
>>> h = History()
>>> h.begin("brush")
>>> h.record(paint(labels, (5, 5, 5), radius_mm=2, value=1))
>>> step = h.end(labels)
>>> _ = h.undo(labels); int(labels.sum())
0
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .kernels import Diff, merge_diffs

__all__ = ["DEFAULT_BUDGET_BYTES", "History", "Step"]

log = logging.getLogger(__name__)

DEFAULT_BUDGET_BYTES = 256 * 1024**2


@dataclass
class Step:
    """One undoable action: a name and its diff (mask kept bit-packed)."""

    name: str
    box: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    mask_shape: tuple[int, int, int]
    packed_mask: np.ndarray
    old: np.ndarray
    new: np.ndarray

    @classmethod
    def from_diff(cls, name: str, diff: Diff) -> Step:
        return cls(name, diff.box, tuple(diff.mask.shape), np.packbits(diff.mask, axis=None),
                   diff.old, diff.new)  # type: ignore[arg-type]

    def diff(self) -> Diff:
        n = int(np.prod(self.mask_shape))
        mask = np.unpackbits(self.packed_mask, count=n).astype(bool).reshape(self.mask_shape)
        return Diff(self.box, mask, self.old, self.new)

    @property
    def nbytes(self) -> int:
        return int(self.packed_mask.nbytes + self.old.nbytes + self.new.nbytes + 128)


class History:
    """Undo/redo stacks of :class:`Step` with a memory budget.

    Parameters
    ----------
    budget_bytes : int
        Upper bound on the memory of all stored steps (undo + redo).
    on_change : callable, optional
        Called with no argument whenever the stacks change (for enabling
        Undo/Redo actions).
    """

    def __init__(
        self,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        *,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.budget_bytes = int(budget_bytes)
        self._undo: deque[Step] = deque()
        self._redo: list[Step] = []
        self._open_name: str | None = None
        self._open: list[Diff] = []
        self._bytes = 0
        self.on_change = on_change

    # -- recording ------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self._open_name is not None

    def begin(self, name: str) -> None:
        """Open a step; segments recorded until :meth:`end` form one undo step."""
        if self._open_name is not None:
            raise RuntimeError(f"step {self._open_name!r} is still open")
        self._open_name = name
        self._open = []

    def record(self, diff: Diff | None) -> None:
        """Add an already-applied diff to the open step (``None`` is ignored)."""
        if self._open_name is None:
            raise RuntimeError("record() outside begin()/end()")
        if diff is not None:
            self._open.append(diff)

    def end(self, labels: np.ndarray) -> Diff | None:
        """Close the open step; returns its merged diff (``None`` if nothing changed)."""
        if self._open_name is None:
            raise RuntimeError("end() without begin()")
        name, diffs = self._open_name, self._open
        self._open_name, self._open = None, []
        merged = merge_diffs(diffs, labels)
        if merged is not None:
            self._push(Step.from_diff(name, merged))
        return merged

    def abort(self, labels: np.ndarray) -> Diff | None:
        """Close the open step without keeping it; returns its merged diff (or ``None``).

        The diff is *not* reverted here: the caller takes the change back
        (``diff.revert(labels)``) and tells its views. Nothing enters the history.
        """
        if self._open_name is None:
            raise RuntimeError("abort() without begin()")
        diffs = self._open
        self._open_name, self._open = None, []
        return merge_diffs(diffs, labels)

    def push(self, name: str, diff: Diff | None) -> None:
        """Record a complete, already-applied action as one step."""
        if diff is None:
            return
        if self._open_name is not None:
            raise RuntimeError(f"step {self._open_name!r} is still open")
        self._push(Step.from_diff(name, diff))

    def set_budget(self, budget_bytes: int) -> None:
        """Change the memory budget; the oldest steps go if the history is now too big."""
        self.budget_bytes = int(budget_bytes)
        dropped = False
        while self._bytes > self.budget_bytes and self._redo:
            self._bytes -= self._redo.pop(0).nbytes  # the furthest redo step first
            dropped = True
        while self._bytes > self.budget_bytes and self._undo:
            self._bytes -= self._undo.popleft().nbytes
            dropped = True
        if dropped:
            self._changed()

    def _push(self, step: Step) -> None:
        self._bytes -= sum(s.nbytes for s in self._redo)
        self._redo.clear()
        if step.nbytes > self.budget_bytes:
            log.warning("step %r (%d bytes) exceeds the undo budget; history cleared",
                        step.name, step.nbytes)
            self.clear()
            return
        self._undo.append(step)
        self._bytes += step.nbytes
        while self._bytes > self.budget_bytes and self._undo:
            dropped = self._undo.popleft()
            self._bytes -= dropped.nbytes
        self._changed()

    # -- undo / redo ------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return bool(self._undo) and not self.recording

    @property
    def can_redo(self) -> bool:
        return bool(self._redo) and not self.recording

    @property
    def undo_name(self) -> str | None:
        return self._undo[-1].name if self._undo else None

    @property
    def redo_name(self) -> str | None:
        return self._redo[-1].name if self._redo else None

    def undo(self, labels: np.ndarray) -> Diff | None:
        """Revert the last step on *labels*; returns the applied (inverse) diff."""
        if not self.can_undo:
            return None
        step = self._undo.pop()
        diff = step.diff()
        diff.revert(labels)
        self._redo.append(step)
        self._changed()
        return diff.inverse()

    def redo(self, labels: np.ndarray) -> Diff | None:
        """Re-apply the last undone step; returns the applied diff."""
        if not self.can_redo:
            return None
        step = self._redo.pop()
        diff = step.diff()
        diff.apply(labels)
        self._undo.append(step)
        self._changed()
        return diff

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._bytes = 0
        self._changed()

    # -- accounting ---------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Memory used by all stored steps."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._undo)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()
