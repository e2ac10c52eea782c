"""How the brush, the eraser and the fill tool work: :class:`EditOptions`.

The options live in the editing session
(:class:`engine.editing.session.EditingSession`), which validates changes
(:meth:`~engine.editing.session.EditingSession.set_options`) and turns them into
the keyword arguments of the :mod:`engine.editing.kernels` kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BRUSH_MAX_MM", "BRUSH_MIN_MM", "EditOptions", "brush_size_step"]

BRUSH_MIN_MM = 0.5
BRUSH_MAX_MM = 100.0


@dataclass(frozen=True)
class EditOptions:
    """How the brush, the eraser and the fill tool work.

    Attributes
    ----------
    brush_size_mm : float
        Brush diameter in millimetres (the disk or sphere has half of it as radius).
    brush_3d : bool
        A sphere instead of a disk in the plane of the view.
    paint_mode : str
        Which voxels a stroke may change: ``"all"``, ``"background"`` (only 0)
        or ``"label"`` (only voxels holding *only_label*).
    only_label : int
        The label of paint mode ``"label"``.
    threshold : (low, high) or None
        Threshold-limited painting: only voxels with ``low <= intensity <= high``.
    fill_3d : bool
        Flood fill in the whole volume instead of the view's slice.
    fill_tolerance : float or None
        Fill only voxels whose intensity is within this of the clicked voxel's.
    island_min_voxels : int
        Components smaller than this are removed by *Remove small islands*.
    """

    brush_size_mm: float = 5.0
    brush_3d: bool = False
    paint_mode: str = "all"
    only_label: int = 1
    threshold: tuple[float, float] | None = None
    fill_3d: bool = False
    fill_tolerance: float | None = None
    island_min_voxels: int = 50


def brush_size_step(size_mm: float, direction: int) -> float:
    """The next brush diameter up (*direction* > 0) or down: fine steps for small brushes.

    Examples
    --------
    >>> brush_size_step(5.0, +1), brush_size_step(10.0, -1), brush_size_step(30.0, +1)
    (6.0, 9.0, 35.0)
    """

    def step(size: float) -> float:
        return 0.5 if size < 3 else 1.0 if size < 10 else 2.0 if size < 30 else 5.0

    new = size_mm + step(size_mm) if direction > 0 else size_mm - step(size_mm - 1e-9)
    return float(min(BRUSH_MAX_MM, max(BRUSH_MIN_MM, new)))
