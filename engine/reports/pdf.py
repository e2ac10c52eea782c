"""The findings report as a PDF, drawn with matplotlib's PDF backend (no office suite).

The same :class:`~engine.reports.content.ReportContent` as the HTML report:
text pages (header, warnings in a red frame, model card, tissue volumes,
findings table; as many A4 pages as the text needs) followed by one A4 page
per lesion with its key image and its measurements.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..io.atomic import atomic_path
from .content import (
    FINDINGS_HEADER,
    NO_LESIONS,
    TISSUE_HEADER,
    ReportContent,
    draw_key_image,
)

__all__ = ["A4_INCHES", "write_pdf"]

A4_INCHES = (8.27, 11.69)
_LEFT, _TOP, _BOTTOM = 0.07, 0.95, 0.05
_WRAP = 100  # characters per line of 9-point text on A4
#: Short column names of the findings table (the HTML table's do not fit an A4 width).
_PDF_FINDINGS_HEADER = ("#", "mL", "Axial", "Perp.", "3-D", "Centroid R, A, S", "Slice",
                        "Tissue", "Ratio", "Conf.")


class _Flow:
    """Lines of text flowed down A4 pages; a new page starts when one is full."""

    def __init__(self, pdf: PdfPages) -> None:
        self.pdf = pdf
        self.fig: Figure | None = None
        self.y = _TOP
        self.pages = 0

    def new_page(self) -> Figure:
        self.flush()
        self.fig = Figure(figsize=A4_INCHES, facecolor="white")
        self.y = _TOP
        return self.fig

    def flush(self) -> None:
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            self.pages += 1
            self.fig = None

    def gap(self, points: float = 6.0) -> None:
        self.y -= points / 72 / A4_INCHES[1]

    def line(self, text: str, *, size: float = 9, weight: str = "normal", color: str = "black",
             family: str = "sans-serif", indent: float = 0.0) -> None:
        height = size * 1.45 / 72 / A4_INCHES[1]
        if self.fig is None or self.y - height < _BOTTOM:
            self.new_page()
        assert self.fig is not None
        self.fig.text(_LEFT + indent, self.y, text, fontsize=size, fontweight=weight,
                      color=color, family=family, va="top", ha="left")
        self.y -= height

    def wrapped(self, text: str, **kwargs: object) -> None:
        for piece in textwrap.wrap(text, _WRAP) or [""]:
            self.line(piece, **kwargs)  # type: ignore[arg-type]

    def heading(self, text: str, *, color: str = "black") -> None:
        self.gap(8)
        self.line(text, size=12, weight="bold", color=color)
        self.gap(2)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]],
              text_columns: set[int]) -> None:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        size = 8.0 if sum(widths) + 2 * len(widths) <= 110 else 6.5
        for row in (header, *rows):
            text = "  ".join(v.ljust(w) if i in text_columns else v.rjust(w)
                             for i, (v, w) in enumerate(zip(row, widths, strict=True)))
            self.line(text, size=size, family="monospace",
                      weight="bold" if row is header else "normal")


def _text_pages(flow: _Flow, content: ReportContent) -> None:
    flow.line(content.title, size=16, weight="bold")
    flow.line(f"Created {content.created}. Not a diagnosis: measurements of a segmentation, "
              "to be checked by a qualified reader.", size=8, color="#555555")
    flow.gap(6)
    for key, value in content.header:
        flow.wrapped(f"{key}: {value}")
    if content.warnings:
        flow.gap(6)
        fig_before, top = flow.fig, flow.y
        flow.line("WARNINGS", size=12, weight="bold", color="#c00000")
        for w in content.warnings:
            for n, piece in enumerate(textwrap.wrap(w, _WRAP - 4) or [""]):
                flow.line(("! " if n == 0 else "  ") + piece, color="#c00000", weight="bold")
        if flow.fig is fig_before and flow.fig is not None:  # frame it when on one page
            flow.fig.add_artist(Rectangle((_LEFT - 0.015, flow.y - 0.004),
                                          1 - 2 * _LEFT + 0.03, top - flow.y + 0.008,
                                          transform=flow.fig.transFigure, fill=False,
                                          edgecolor="#c00000", linewidth=2))
    flow.heading("Model")
    if content.model_card is None:
        flow.wrapped("No model card was given: the label map's origin is not recorded in "
                     "this report.")
    else:
        for key, value in content.model_card:
            flow.wrapped(f"{key}: {value}")
    flow.heading("Tissue volumes")
    if content.tissue_rows:
        flow.table(TISSUE_HEADER, content.tissue_rows, {1})
    else:
        flow.line("The label map is empty.")
    flow.heading("Findings")
    if not content.findings:
        flow.line(NO_LESIONS, weight="bold")
    else:
        flow.table(_PDF_FINDINGS_HEADER, content.findings_rows, {5, 7})
        flow.line("#: lesion; mL: volume; axial, perpendicular and 3-D diameters in mm; "
                  "centroid in world RAS+ mm; ratio: contrast; conf: confidence.",
                  size=7, color="#555555")
        flow.gap(4)
        flow.wrapped("Diameters between voxel centres; the perpendicular diameter is measured "
                     "in the slice of the longest axial diameter. Contrast: mean inside / mean "
                     "of a 3 mm shell around the lesion. One page per lesion follows.",
                     size=8, color="#555555")
        for note in content.notes:
            flow.wrapped(note, size=8, color="#555555")
    flow.flush()


def _lesion_page(flow: _Flow, content: ReportContent, index: int) -> None:
    f = content.findings[index]
    fig = flow.new_page()
    flow.line(f"Lesion {f.id}", size=14, weight="bold")
    draw_key_image(fig, content, f, rect=(0.05, 0.52, 0.90, 0.38))
    flow.y = 0.48
    row = dict(zip(FINDINGS_HEADER, content.findings_rows[index], strict=True))
    for key, value in row.items():
        flow.line(f"{key}: {value}")
    flow.line(f"Equivalent diameter: {f.equivalent_diameter_mm:.1f} mm; voxels: "
              f"{f.voxel_count}; mean intensity {f.mean_intensity:.4g}")
    flow.line("Yellow: longest axial diameter; cyan: perpendicular diameter; red: outline.",
              size=8, color="#555555")
    flow.flush()


def write_pdf(path: str | Path, content: ReportContent) -> Path:
    """Write *content* as a PDF report to *path* atomically; returns the path."""
    metadata = {"Title": content.title, "Creator": "Delineo"}
    with atomic_path(path) as tmp, PdfPages(tmp, metadata=metadata) as pdf:
        flow = _Flow(pdf)
        _text_pages(flow, content)
        for i in range(len(content.findings)):
            _lesion_page(flow, content, i)
    return Path(path)
