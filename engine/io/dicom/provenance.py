"""Where a DICOM volume came from: what a DICOM SEG needs to point back at its source.

:class:`DicomProvenance` rides on ``Volume.source.header`` of a volume read by
:func:`engine.io.dicom.read_dicom` -- in memory only: it never goes into
``Volume.metadata``, JSON output, logs or the crash journal, because it holds
patient and study attributes. Its ``repr`` leaves them out.

It keeps the study, series and frame-of-reference UIDs, the SOP class and
instance UID (and frame number, for multi-frame files) and the file of every
slice in the order of the file-order array's third axis, and the patient and
study attributes a derived object copies. A series that was resampled onto a
regular grid (uneven slice spacing) has slices that match no source instance:
then :attr:`DicomProvenance.resampled` is True and :attr:`instances` is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["IDENTITY_KEYWORDS", "DicomProvenance", "SliceSource"]

#: Patient and study attributes a derived object (SEG, SR) copies from its source.
IDENTITY_KEYWORDS: tuple[str, ...] = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription",
)


@dataclass(frozen=True)
class SliceSource:
    """The source of one slice: its file, SOP class and instance UID, frame (1-based)."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    frame: int | None = None


@dataclass(frozen=True)
class DicomProvenance:
    """The source series of a DICOM volume (see the module docstring)."""

    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    modality: str
    instances: tuple[SliceSource, ...]
    resampled: bool = False
    identity: dict[str, Any] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return (f"DicomProvenance(series_uid={self.series_uid!r}, "
                f"frame_of_reference_uid={self.frame_of_reference_uid!r}, "
                f"{len(self.instances)} slices{', resampled' if self.resampled else ''})")
