"""The findings report as one self-contained HTML file (or a PDF with the same content).

The HTML file needs nothing else: its style sheet is inline and its key images
are PNG files embedded as base64 ``data:`` URIs; it loads nothing from the
network. Sections, in order: the header (image description, no patient
identifier unless asked for), the warnings (prominent, before any number),
the model card summary, the tissue volumes, the findings table and one key
image per lesion. ``format="pdf"`` writes the same content with matplotlib's
PDF backend (:mod:`~engine.reports.pdf`).

A typical call (``found`` from :func:`engine.lesions.measure_lesions`)::

    write_report("report.html", image=image, labels=labels, findings=found,
                 model_card=card, warnings=["image is not a T1"])
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ParameterError
from ..core.volume import LabelMap, Volume
from ..io.atomic import atomic_write_text, full_suffix
from ..lesions import LESION_VALUE, Finding
from .content import (
    FINDINGS_HEADER,
    NO_LESIONS,
    TISSUE_HEADER,
    ReportContent,
    draw_key_image,
    gather,
)

__all__ = ["DEFAULT_TITLE", "FORMATS", "key_image_png", "render_html", "write_report"]

DEFAULT_TITLE = "Delineo findings report"
FORMATS = ("html", "pdf")

_STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em auto; max-width: 64em;
       color: #1a1a1a; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #bbb; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td.text, th.text { text-align: left; }
.warnings { border: 3px solid #c00000; background: #fff0f0; padding: 0.6em 1em;
            margin: 1em 0; }
.warnings h2 { color: #c00000; border: none; margin-top: 0; }
.no-lesions { font-weight: bold; }
figure { margin: 1em 0; }
figcaption { font-size: 0.9em; color: #444; }
.note { color: #555; font-size: 0.9em; }
"""


def key_image_png(content: ReportContent, finding: Finding, *, dpi: int = 110) -> bytes:
    """The key image of one lesion as PNG bytes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.2), facecolor="white")
    draw_key_image(fig, content, finding)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], text_columns: set[int]) -> str:
    def cell(tag: str, i: int, value: str) -> str:
        cls = ' class="text"' if i in text_columns else ""
        return f"<{tag}{cls}>{html.escape(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>\n"
                   for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def render_html(content: ReportContent) -> str:
    """The report as one HTML document (a string)."""
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{e(content.title)}</title>", f"<style>{_STYLE}</style>", "</head>",
             "<body>", f"<h1>{e(content.title)}</h1>",
             f'<p class="note">Created {e(content.created)}. Not a diagnosis: measurements of '
             "a segmentation, to be checked by a qualified reader.</p>"]
    parts.append(_table(("Item", "Value"), content.header, {0, 1}))
    if content.warnings:
        items = "".join(f"<li>{e(w)}</li>" for w in content.warnings)
        parts.append(f'<div class="warnings" id="warnings"><h2>Warnings</h2><ul>{items}</ul>'
                     "</div>")
    parts.append("<h2>Model</h2>")
    if content.model_card is None:
        parts.append("<p>No model card was given: the label map's origin is not recorded "
                     "in this report.</p>")
    else:
        parts.append(_table(("Item", "Value"), content.model_card, {0, 1}))
    parts.append('<h2>Tissue volumes</h2>')
    parts.append(_table(TISSUE_HEADER, content.tissue_rows, {1}) if content.tissue_rows
                 else "<p>The label map is empty.</p>")
    parts.append('<h2 id="findings">Findings</h2>')
    if not content.findings:
        parts.append(f'<p class="no-lesions">{e(NO_LESIONS)}</p>')
    else:
        parts.append(_table(FINDINGS_HEADER, content.findings_rows, {5, 7}))
        parts.append('<p class="note">Diameters between voxel centres; the perpendicular '
                     "diameter is measured in the slice of the longest axial diameter. "
                     "Contrast: mean inside / mean of a 3 mm shell around the lesion.</p>")
        for note in content.notes:
            parts.append(f'<p class="note">{e(note)}</p>')
        parts.append("<h2>Key images</h2>")
        for f in content.findings:
            png = base64.b64encode(key_image_png(content, f)).decode("ascii")
            caption = (f"Lesion {f.id}: {f.volume_ml:.3f} mL, longest axial diameter "
                       f"{f.axial_diameter_mm:.1f} mm (yellow), perpendicular "
                       f"{f.perpendicular_diameter_mm:.1f} mm (cyan), outline in red.")
            parts.append(f'<figure><img class="key-image" alt="{e(caption)}" '
                         f'src="data:image/png;base64,{png}">'
                         f"<figcaption>{e(caption)}</figcaption></figure>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def write_report(
    path: str | Path,
    *,
    image: Volume,
    labels: LabelMap,
    findings: Sequence[Finding],
    model_card: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    warnings: Iterable[str] = (),
    title: str = DEFAULT_TITLE,
    format: str | None = None,
    instances: np.ndarray | None = None,
    lesion_value: int = LESION_VALUE,
    include_identifiers: bool = False,
) -> Path:
    """Write the findings report to *path* (HTML or PDF), atomically.

    Parameters
    ----------
    path : str or Path
        Output file; its folder must exist.
    image, labels : Volume, LabelMap
        The image and its label map (same grid).
    findings : sequence of Finding
        From :func:`engine.lesions.measure_lesions`; may be empty ("No lesions").
    model_card : mapping or sequence of mappings, optional
        The model card of the network that made *labels* (its name, version and
        training data are shown), the cards of a pipeline's networks in order
        (:func:`engine.reports.export.made_by_cards`), or ``None``.
    warnings : iterable of str
        Shown prominently before any number (e.g. applicability warnings); the
        image's own reading warnings are added.
    title : str
        Report title.
    format : {"html", "pdf"}, optional
        Default: from the suffix of *path* (``.pdf`` -> PDF, anything else HTML).
    instances : ndarray, optional
        The instance map the findings were measured on; default
        :func:`engine.lesions.lesion_instances` of *labels*.
    lesion_value : int
        Label value of lesions in *labels*.
    include_identifiers : bool
        Add the patient and study identifiers found in the image metadata.

    Returns
    -------
    Path
        The written file.
    """
    fmt = (format or ("pdf" if full_suffix(path) == ".pdf" else "html")).lower()
    if fmt not in FORMATS:
        raise ParameterError(f"unknown report format {format!r}; known: {', '.join(FORMATS)}")
    content = gather(image=image, labels=labels, findings=findings, model_card=model_card,
                     warnings=warnings, title=title, instances=instances,
                     lesion_value=lesion_value, include_identifiers=include_identifiers)
    if fmt == "pdf":
        from .pdf import write_pdf

        return write_pdf(path, content)
    atomic_write_text(path, render_html(content))
    return Path(path)
