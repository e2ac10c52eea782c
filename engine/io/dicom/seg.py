"""DICOM Segmentation (SEG) objects of a label map, and reading them back (highdicom).

:func:`build_dicom_seg` makes a binary DICOM SEG of a
:class:`~engine.core.volume.LabelMap` that lies on the grid of a volume read
from a DICOM series (its :class:`~engine.io.dicom.provenance.DicomProvenance`
rides on ``volume.source.header``): one segment per label value present, with
the label's name, display colour (CIELab), SNOMED CT category and type codes
(:data:`SEGMENT_CODES`, from pydicom's code dictionary), the algorithm
identification (name, version, family "Artificial Intelligence" for networks,
else "Morphological operation"), a new series UID, and one frame per source
slice that holds the label, referencing that slice's SOP instance: the
segment lands on the source series voxel for voxel, in its frame of
reference. Patient and study attributes are copied from the source; type-2
attributes the source lacks (PatientName, StudyID, ...) are written empty,
as the standard allows, and named in the returned warnings.

Refused with one line: a volume that was not read from DICOM, a series that
was resampled onto a regular grid (its slices match no source instance), a
label map on another grid (:class:`~engine.core.errors.GeometryMismatchError`).

:func:`read_dicom_seg` brings a SEG back onto a reference volume's grid as a
LabelMap with the segment labels and colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from ...core.errors import DelineoError, GeometryMismatchError, InvalidImageError, WriteError
from ...core.volume import BRAIN_LESION_LABELS, Label, LabelMap, LabelTable, Volume
from ..atomic import atomic_path
from .provenance import DicomProvenance

__all__ = ["SEGMENT_CODES", "build_dicom_seg", "read_dicom_seg", "write_dicom_seg"]

#: Label name (lower case) -> (category, type) SNOMED CT codes of the segment.
SEGMENT_CODES: dict[str, tuple[Any, Any]] = {
    "csf": (codes.SCT.BodySubstance, codes.SCT.CerebrospinalFluid),
    "cerebrospinal fluid": (codes.SCT.BodySubstance, codes.SCT.CerebrospinalFluid),
    "gray matter": (codes.SCT.Tissue, codes.SCT.GrayMatter),
    "grey matter": (codes.SCT.Tissue, codes.SCT.GrayMatter),
    "white matter": (codes.SCT.Tissue, codes.SCT.WhiteMatter),
    "lesion": (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Lesion),
    "neoplasm": (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Neoplasm),
    "brain": (codes.SCT.AnatomicalStructure, codes.SCT.Brain),
    "intracranial": (codes.SCT.AnatomicalStructure, codes.SCT.Brain),
}
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
          "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName")


def _codes_for(name: str) -> tuple[Any, Any]:
    return SEGMENT_CODES.get(name.strip().lower(), (codes.SCT.Tissue, codes.SCT.Tissue))


def _provenance(reference: Volume) -> DicomProvenance:
    prov = reference.source.header
    if not isinstance(prov, DicomProvenance):
        raise DelineoError("a DICOM SEG needs the image read from its DICOM series "
                           "(--reference DICOM_DIR); this one came from "
                           f"{reference.source.format}")
    if prov.resampled or not prov.instances:
        raise DelineoError("the reference series was resampled onto a regular grid (uneven "
                           "slice spacing): its slices match no source instance, so a SEG "
                           "cannot reference them; export NIfTI or seg.nrrd instead")
    return prov


def _sources(prov: DicomProvenance, warnings: list[str]) -> list[pydicom.Dataset]:
    """The source headers, with empty type-2 attributes where the series has none."""
    out = []
    missing: set[str] = set()
    for src in prov.instances:
        ds = pydicom.dcmread(src.path, stop_before_pixels=True)
        for keyword in _TYPE2:
            if keyword not in ds:
                setattr(ds, keyword, "")
                missing.add(keyword)
        if "FrameOfReferenceUID" not in ds or not ds.FrameOfReferenceUID:
            raise DelineoError(f"{src.path.name}: no FrameOfReferenceUID: a SEG cannot be "
                               "placed in the source's frame of reference")
        out.append(ds)
    if missing:
        warnings.append("the source series lacks " + ", ".join(sorted(missing))
                        + ": written empty in the SEG (type 2)")
    return out


def build_dicom_seg(labels: LabelMap, reference: Volume, *, algorithm: str, version: str,
                    warnings: Sequence[str] = (), series_number: int = 901,
                    network: bool = True) -> tuple[hd.seg.Segmentation, list[str]]:
    """A DICOM SEG of *labels* on the DICOM series *reference* was read from.

    Parameters
    ----------
    labels : LabelMap
        On *reference*'s grid.
    reference : Volume
        Read by :func:`engine.io.dicom.read_dicom` (it carries the provenance).
    algorithm, version : str
        Algorithm identification (method or pipeline name, Delineo version).
    warnings : sequence of str
        The result's warnings (e.g. run outside its declared use): the series
        description says so ("... [OUTSIDE DECLARED USE]").
    series_number : int
        SeriesNumber of the new series.
    network : bool
        Algorithm family: a network ("Artificial Intelligence") or a classical method.

    Returns
    -------
    (segmentation, notes) : (highdicom.seg.Segmentation, list of str)
        ``notes`` names what the source lacked and was filled empty.
    """
    if not reference.same_grid(labels):
        diffs = reference.grid_differences(labels)
        raise GeometryMismatchError("label map does not match the reference series: "
                                    + "; ".join(diffs), differences=diffs)
    prov = _provenance(reference)
    notes: list[str] = []
    sources = _sources(prov, notes)
    file_order = np.asarray(reference.source.to_source(labels.array))  # [column, row, slice]
    if file_order.shape[2] != len(sources):
        raise DelineoError(f"{file_order.shape[2]} slices but {len(sources)} source instances")
    values = [int(v) for v in np.unique(file_order) if v != 0]
    if not values:
        raise DelineoError("the label map is empty: there is no segment to write")
    relabel = np.zeros(int(file_order.max()) + 1, np.uint8)
    family = codes.DCM.ArtificialIntelligence if network else codes.DCM.MorphologicalOperations
    descriptions = []
    for number, value in enumerate(values, start=1):
        relabel[value] = number
        name = labels.labels.name(value)
        category, kind = _codes_for(name)
        r, g, b = labels.labels.color(value)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=name[:64],
            segmented_property_category=category,
            segmented_property_type=kind,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name=algorithm[:64], version=version[:64],
                family=family),
            tracking_uid=generate_uid(),
            tracking_id=f"{name} ({algorithm})"[:64],
            display_color=hd.color.CIELabColor.from_rgb(r, g, b),
        ))
    # One (rows, columns) frame per source slice, in the sources' order.
    frames = np.stack([relabel[file_order[:, :, k].T] for k in range(file_order.shape[2])])
    description = f"Delineo {algorithm}"
    if warnings:
        description += " [OUTSIDE DECLARED USE]"
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="Delineo",
        manufacturer_model_name=algorithm[:64],
        software_versions=version,
        device_serial_number="0",
        series_description=description[:64],
        content_label="DELINEO",
        content_description=(f"{algorithm}; " + "; ".join(warnings))[:64] if warnings
        else f"{algorithm} segmentation"[:64],
    )
    return seg, notes


def write_dicom_seg(labels: LabelMap, reference: Volume, path: str | Path, **kwargs: Any
                    ) -> tuple[Path, list[str]]:
    """:func:`build_dicom_seg`, written atomically to *path*; returns (path, notes)."""
    path = Path(path)
    seg, notes = build_dicom_seg(labels, reference, **kwargs)
    try:
        with atomic_path(path) as tmp:
            seg.save_as(tmp)
    except OSError as exc:
        raise WriteError(f"could not write ({exc.strerror or exc})", path=path) from None
    return path, notes


def read_dicom_seg(source: str | Path | pydicom.Dataset, reference: Volume) -> LabelMap:
    """A DICOM SEG on *reference*'s grid (read from the SEG's source series).

    Every frame is placed on the slice whose SOP instance it references;
    segments named like Delineo's labels (CSF, Gray matter, White matter,
    Lesion) get those values back, others their segment number; names and
    display colours come from the SEG. A SEG of another series is refused.
    """
    prov = _provenance(reference)
    try:
        seg = hd.seg.segread(source) if not isinstance(source, pydicom.Dataset) \
            else hd.seg.Segmentation.from_dataset(source)
    except Exception as exc:  # highdicom raises several types for a non-SEG file
        raise InvalidImageError(f"not a readable DICOM SEG ({exc})",
                                path=None if isinstance(source, pydicom.Dataset)
                                else Path(source)) from None
    uids = [s.sop_instance_uid for s in prov.instances]
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    if not referenced & set(uids):
        raise GeometryMismatchError("the SEG references none of the reference series' "
                                    "instances", differences=["another series"])
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, combine_segments=True, relabel=False)
    file_order = np.transpose(np.asarray(pixels), (2, 1, 0))  # [column, row, slice]
    # Segments named like Delineo's labels get those labels' values back (CSF 1, ... Lesion 4).
    known = {BRAIN_LESION_LABELS.name(v).lower(): v for v in BRAIN_LESION_LABELS if v}
    names = {int(n): str(seg.get_segment_description(n).SegmentLabel).strip()
             for n in seg.segment_numbers}
    wanted = {n: known.get(name.lower(), n) for n, name in names.items()}
    if len(set(wanted.values())) != len(wanted):
        wanted = {n: n for n in names}
    lut = np.zeros(max([0, *names]) + 1, np.uint8)
    for number, value in wanted.items():
        lut[number] = value
    file_order = lut[file_order]
    entries = [Label(0, "Background", (0, 0, 0))]
    for number in seg.segment_numbers:
        desc = seg.get_segment_description(number)
        colour: tuple[int, ...] = (128, 128, 128)
        if "RecommendedDisplayCIELabValue" in desc:
            lab = [int(v) for v in desc.RecommendedDisplayCIELabValue]
            rgb = hd.color.CIELabColor.from_dicom_value(lab).to_rgb(clip=True)
            colour = tuple(int(v) for v in rgb)
        entries.append(Label(int(wanted[int(number)]), str(desc.SegmentLabel), colour))  # type: ignore[arg-type]
    canonical = Volume.from_file_array(file_order.astype(np.uint8), reference.source.affine)
    table = LabelTable.from_labels(entries)
    return LabelMap(canonical.array, reference.affine.copy(), labels=table,
                    source=reference.source, modality="SEG")
