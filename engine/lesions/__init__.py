"""Lesions: instances of the "Lesion" label and their measurements.

* :mod:`~engine.lesions.measure` -- :func:`lesion_instances` (connected lesions
  numbered by decreasing volume), :func:`measure_lesions` (volume, centroid,
  RANO/RECIST axial diameters, 3-D diameter, contrast, tissue, confidence) and
  :func:`write_findings` (JSON and CSV).

Definitions are in docs/findings.md. There is no lesion detector here: lesions
come from a label map (value 4, "Lesion") or an instance map.
"""

from .measure import (
    FINDINGS_COLUMNS,
    LESION_VALUE,
    SHELL_MM,
    Finding,
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
    "findings_table",
    "lesion_instances",
    "measure_lesions",
    "slice_axis_closest_to_s",
    "write_findings",
]
