"""Findings reports: HTML and PDF for people, DICOM SR (TID 1500) for PACS.

* :mod:`~engine.reports.html` -- :func:`write_report`: one self-contained HTML
  file (or, with ``format="pdf"``, a PDF made by :mod:`~engine.reports.pdf`)
  with the image description, warnings, model card, tissue volumes, findings
  and one key image per lesion;
* :mod:`~engine.reports.content` -- what both show, gathered once;
* :mod:`~engine.reports.sr` -- :func:`build_findings_sr`: a highdicom
  Comprehensive 3D SR holding a TID 1500 Measurement Report with one
  measurement group per lesion, referencing the lesion segment of a DICOM SEG;
* :mod:`~engine.reports.export` -- :func:`~engine.reports.export.export_labels`:
  every export format (NIfTI, DICOM SEG, DICOM SR, seg.nrrd, findings, report)
  for ``delineo-engine export`` and the viewer.

See docs/findings.md.
"""

from .html import DEFAULT_TITLE, write_report

__all__ = ["DEFAULT_TITLE", "write_report"]
