"""Internal records of a header scan: one file's header and one frame's geometry."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.errors import ReadError


@dataclass(frozen=True)
class _FrameGeom:
    """Geometry and rescale of one 2-D image (a slice or one frame)."""

    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    spacing: tuple[float, float] | None  # PixelSpacing: (row spacing, column spacing)
    thickness: float | None
    slope: float
    intercept: float


@dataclass
class _Header:
    """What the scan learnt about one file, without its pixel data."""

    path: Path
    is_image: bool
    has_preamble: bool
    series_uid: str = ""
    study_uid: str = ""
    sop_uid: str = ""
    sop_class: str = ""
    series_number: int | None = None
    instance_number: int | None = None
    description: str = ""
    modality: str = "unknown"
    rows: int = 0
    columns: int = 0
    samples: int = 1
    bits_allocated: int = 16
    n_frames: int = 1
    photometric: str = ""
    transfer_syntax: str = ""
    frames: list[_FrameGeom] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    #: SOP class UID, frame of reference and patient/study attributes (never in metadata).
    identity: dict[str, Any] = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)
    problem: ReadError | None = None
