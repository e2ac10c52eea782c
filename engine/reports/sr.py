"""Lesion findings as a DICOM Structured Report: a TID 1500 Measurement Report.

:func:`build_findings_sr` makes a highdicom ``Comprehensive3DSR`` whose content
is a TID 1500 "Imaging Measurement Report":

* the observation context names the algorithm as a device observer;
* the procedure reported is "Imaging procedure" (SCT 363679005);
* "Imaging Measurements" holds one TID 1411 *Volumetric ROI Measurements* group
  per lesion, with

  - a tracking identifier ("Lesion N") and a tracking UID,
  - the finding type "Lesion" (SCT 52988006),
  - a "Referenced Segment" item pointing at the lesion segment of the DICOM SEG
    (its SOP Instance UID and segment number) and the source series,
  - the algorithm identification (name and version),
  - the measurements (TID 300): Volume (SCT 118565006, UCUM ``ml``), Long axis
    (SCT 103339001, ``mm``; the longest axial diameter), Perpendicular Axis
    (SCT 131189007, ``mm``) and Diameter (SCT 81827009, ``mm``) derived as
    Maximum (SCT 56851009): the longest 3-D diameter.

All lesions of a label map share the SEG's one "Lesion" segment; each group
says which lesion it measures by its tracking identifier (the findings' ``id``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import highdicom as hd
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from .. import __version__
from ..core.errors import ParameterError
from ..lesions import Finding

__all__ = [
    "LESION_SEGMENT_LABEL",
    "build_findings_sr",
    "lesion_segment_number",
]

#: The SegmentLabel that marks the lesion segment of a Delineo SEG.
LESION_SEGMENT_LABEL = "Lesion"

_SEG_CLASSES = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")
UCUM_ML = CodedConcept("ml", "UCUM", "milliliter")
UCUM_MM = CodedConcept("mm", "UCUM", "millimeter")


def lesion_segment_number(seg_dataset: Dataset, label: str = LESION_SEGMENT_LABEL) -> int:
    """Number of the segment of *seg_dataset* labelled *label* (case-insensitive)."""
    matches = [int(item.SegmentNumber) for item in getattr(seg_dataset, "SegmentSequence", [])
               if str(getattr(item, "SegmentLabel", "")).strip().lower() == label.lower()]
    if len(matches) != 1:
        found = ", ".join(str(getattr(item, "SegmentLabel", "?"))
                          for item in getattr(seg_dataset, "SegmentSequence", [])) or "none"
        raise ParameterError(f"the segmentation has {'no' if not matches else 'several'} "
                             f"segment labelled {label!r} (segments: {found}); "
                             "give the segment number")
    return matches[0]


def _segment_for(finding: Finding, segment_number: int | Mapping[int, int]) -> int:
    if isinstance(segment_number, Mapping):
        if finding.id not in segment_number:
            raise ParameterError(f"no segment number given for lesion {finding.id}")
        return int(segment_number[finding.id])
    return int(segment_number)


def _measurements(f: Finding) -> list[hd.sr.Measurement]:
    return [
        hd.sr.Measurement(name=codes.SCT.Volume, value=f.volume_ml, unit=UCUM_ML),
        hd.sr.Measurement(name=codes.SCT.LongAxis, value=f.axial_diameter_mm, unit=UCUM_MM),
        hd.sr.Measurement(name=codes.SCT.PerpendicularAxis, value=f.perpendicular_diameter_mm,
                          unit=UCUM_MM),
        hd.sr.Measurement(name=codes.SCT.Diameter, value=f.diameter_3d_mm, unit=UCUM_MM,
                          derivation=codes.SCT.Maximum),
    ]


def build_findings_sr(
    findings: Sequence[Finding],
    *,
    seg_dataset: Dataset,
    source_images: Sequence[Dataset],
    algorithm: str,
    version: str,
    segment_number: int | Mapping[int, int] | None = None,
    tracking_uids: Mapping[int, str] | None = None,
    series_number: int = 901,
    series_description: str = "Delineo lesion measurements",
    manufacturer: str = "Delineo",
) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 Measurement Report (Comprehensive 3D SR) of lesion findings.

    Parameters
    ----------
    findings : sequence of Finding
        From :func:`engine.lesions.measure_lesions`; at least one (a TID 1500
        report holds at least one measurement group).
    seg_dataset : pydicom.Dataset
        The DICOM SEG holding the lesions (a ``highdicom.seg.Segmentation`` is one).
    source_images : sequence of pydicom.Dataset
        The image series the SEG was made on (headers suffice); patient and
        study attributes are copied from them.
    algorithm, version : str
        Name and version of the algorithm that made the segmentation.
    segment_number : int or mapping, optional
        The lesion segment's number in the SEG (default: the segment labelled
        "Lesion"), or ``{lesion id: segment number}`` when lesions are segments
        of their own.
    tracking_uids : mapping, optional
        ``{lesion id: UID}`` to keep a lesion's identity across reports; new
        UIDs by default.
    series_number, series_description, manufacturer
        Of the new SR series.

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
    """
    if not findings:
        raise ParameterError("no lesions to report: a DICOM measurement report needs at "
                             "least one measured lesion")
    if str(getattr(seg_dataset, "SOPClassUID", "")) not in _SEG_CLASSES:
        raise ParameterError("the dataset given as segmentation is not a DICOM SEG")
    if not source_images:
        raise ParameterError("the source images of the segmentation are needed")
    series = {str(ds.SeriesInstanceUID) for ds in source_images}
    if len(series) != 1:
        raise ParameterError(f"the source images come from {len(series)} series, not one")
    source_series = series.pop()
    referenced = {str(item.SeriesInstanceUID)
                  for item in getattr(seg_dataset, "ReferencedSeriesSequence", [])}
    if referenced and source_series not in referenced:
        raise ParameterError("the segmentation was not made on the given source series")
    if str(seg_dataset.StudyInstanceUID) != str(source_images[0].StudyInstanceUID):
        raise ParameterError("the segmentation and the source images belong to different "
                             "studies")
    numbers = lesion_segment_number(seg_dataset) if segment_number is None else segment_number
    valid = {int(item.SegmentNumber) for item in getattr(seg_dataset, "SegmentSequence", [])}

    algorithm_id = hd.sr.AlgorithmIdentification(name=algorithm, version=version)
    groups = []
    for f in findings:
        number = _segment_for(f, numbers)
        if number not in valid:
            raise ParameterError(f"the segmentation has no segment {number} (lesion {f.id})")
        uid = (tracking_uids or {}).get(f.id) or hd.UID()
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=uid, identifier=f"Lesion {f.id}"),
            referenced_segment=hd.sr.ReferencedSegment(
                sop_class_uid=seg_dataset.SOPClassUID,
                sop_instance_uid=seg_dataset.SOPInstanceUID,
                segment_number=number,
                source_series=hd.sr.SourceSeriesForSegmentation(source_series),
            ),
            finding_type=codes.SCT.Lesion,
            algorithm_id=algorithm_id,
            measurements=_measurements(f),
        ))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name=algorithm, manufacturer_name=manufacturer,
            model_name=f"{algorithm} {version}"),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[*source_images, seg_dataset],
        content=report[0],
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=manufacturer,
        is_complete=True,
        series_description=series_description,
        software_versions=f"Delineo {__version__}",
    )
