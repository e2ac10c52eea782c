"""What the benchmark computes and how its files are written, shared by
:mod:`.run` (which fills them) and :mod:`.report` (which writes them out).

This module imports neither of the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.volume import LabelMap, Volume
from ...io.atomic import atomic_path, atomic_write_bytes

__all__ = [
    "TISSUES",
    "BenchmarkResult",
    "CaseSlice",
    "SliceScore",
    "save_png",
    "write_text",
]

#: Tissue labels scored: CSF, gray matter, white matter.
TISSUES = (1, 2, 3)


@dataclass
class CaseSlice:
    """One 256 × 256 test slice with how it was made."""

    image: Volume
    truth: LabelMap
    contrast: str
    noise: float
    inu: float
    k: int
    seed: int

    @property
    def method_contrast(self) -> str:
        """Tissue order a classical method must assume: T1 (CSF<GM<WM) or T2-like."""
        return "t1" if self.contrast == "t1" else "t2"


@dataclass
class SliceScore:
    """One method's scores on one case-study slice (per tissue where a dict)."""

    method: str
    index: int
    dice: dict[int, float]
    sensitivity: dict[int, float]
    specificity: dict[int, float]
    accuracy: float
    hd95: dict[int, float]
    seconds: float
    peak_bytes: int


@dataclass
class BenchmarkResult:
    """The tables of a benchmark run and the files it wrote."""

    out_dir: Path
    case_rows: list[dict[str, Any]] = field(default_factory=list)
    slice_rows: list[dict[str, Any]] = field(default_factory=list)
    sweep_rows: list[dict[str, Any]] = field(default_factory=list)
    grid_rows: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def write_text(path: Path, text: str) -> Path:
    """Write *text* (UTF-8) atomically; returns *path*."""
    atomic_write_bytes(path, text.encode())
    return path


def save_png(fig: Any, path: Path) -> Path:
    """Save a Matplotlib figure as PNG atomically; returns *path*."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path
