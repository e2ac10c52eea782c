"""Lesions: instances of the "Lesion" label and their measurements.

* :mod:`~engine.lesions.measure` -- :func:`lesion_instances` (connected lesions
  numbered by decreasing volume), :func:`measure_lesions` (volume, centroid,
  RANO/RECIST axial diameters, 3-D diameter, contrast, tissue, confidence) and
  :func:`write_findings` (JSON and CSV; :func:`findings_csv` gives the CSV text).

* :mod:`~engine.lesions.classical` -- :func:`detect_outliers`, the classical
  reference detector (intensity outliers against the fitted tissue model).

Definitions are in docs/findings.md and docs/lesions.md.
"""

from typing import Any

from .measure import (
    FINDINGS_COLUMNS,
    LESION_VALUE,
    SHELL_MM,
    Finding,
    findings_csv,
    findings_table,
    lesion_instances,
    measure_lesions,
    slice_axis_closest_to_s,
    write_findings,
)

__all__ = [
    "FINDINGS_COLUMNS",
    "LESION_VALUE",
    "SHELL_MM",
    "Finding",
    "OutlierDetection",
    "detect_outliers",
    "findings_csv",
    "findings_table",
    "lesion_instances",
    "measure_lesions",
    "slice_axis_closest_to_s",
    "write_findings",
]


def __getattr__(name: str) -> Any:
    """The classical detector on first use: it needs torch and the methods, the
    measurements do not (reports import this package without them)."""
    if name in ("OutlierDetection", "detect_outliers"):
        from . import classical

        return getattr(classical, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
