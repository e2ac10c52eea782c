"""Export of the lesions as a DICOM SR (TID 1500) referencing a DICOM SEG, from the engine
function and from ``delineo-engine export``."""

from __future__ import annotations

import json

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from engine.cli import main
from engine.core.errors import DelineoError, ParameterError, ReadError
from engine.core.volume import BRAIN_LESION_LABELS, LabelMap
from engine.io import load, save
from engine.lesions import lesion_instances, measure_lesions
from engine.reports.export import export_labels, format_of
from tests.engine.dicom_factory import rotation, write_series

OBLIQUE = np.eye(4)
OBLIQUE[:3, :3] = rotation(8.0, -4.0, 12.0) @ np.diag([0.9, 0.9, 2.0])
OBLIQUE[:3, 3] = (-30.0, 20.0, -10.0)


def _series(folder):
    data = np.random.default_rng(3).normal(100, 5, (24, 28, 10)).astype(np.int16)
    paths = write_series(folder, data, OBLIQUE, modality="MR")
    frame = generate_uid()
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.FrameOfReferenceUID = frame
        ds.PatientName, ds.PatientID, ds.StudyID = "Test^Phantom", "P1", "S1"
        ds.PatientBirthDate = ds.PatientSex = ds.StudyDate = ds.StudyTime = ""
        ds.AccessionNumber = ds.ReferringPhysicianName = ""
        ds.save_as(path)
    return load(folder)


def _labels(volume, *, lesions=True):
    lab = np.zeros(volume.shape, np.uint8)
    lab[3:12, 4:15, 2:6] = 2
    if lesions:
        lab[14:20, 5:9, 4:8] = 4   # a large lesion
        lab[2:5, 20:23, 7:9] = 4   # a small one, apart from it
    return LabelMap.on_grid_of(volume, lab, labels=BRAIN_LESION_LABELS)


def _check_sr(sr_path, seg_path, image, labels):
    seg = pydicom.dcmread(seg_path)
    raw = pydicom.dcmread(sr_path)
    assert raw.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert raw.StudyInstanceUID == seg.StudyInstanceUID
    lesion_number = next(int(s.SegmentNumber) for s in seg.SegmentSequence
                         if s.SegmentLabel == "Lesion")
    expected = measure_lesions(lesion_instances(labels), image, tissue=labels)
    assert len(expected) == 2
    groups = hd.sr.srread(sr_path).content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(expected)
    series_uid = image.source.header.series_uid
    for group, finding in zip(groups, expected, strict=True):
        assert group.tracking_identifier == f"Lesion {finding.id}"
        sop = group.referenced_segment[0].ReferencedSOPSequence[0]
        assert sop.ReferencedSOPInstanceUID == seg.SOPInstanceUID
        assert sop.ReferencedSegmentNumber == lesion_number
        assert group.referenced_segment[1].value == series_uid
        got = {m.name.meaning: m.value for m in group.get_measurements()}
        assert got["Volume"] == pytest.approx(finding.volume_ml, rel=1e-6)
        assert got["Long axis"] == pytest.approx(finding.axial_diameter_mm, rel=1e-6)
        assert got["Perpendicular Axis"] == pytest.approx(finding.perpendicular_diameter_mm,
                                                          rel=1e-6)
        assert got["Diameter"] == pytest.approx(finding.diameter_3d_mm, rel=1e-6)


def test_seg_with_sr_in_one_go_and_sr_on_an_existing_seg(tmp_path):
    image = _series(tmp_path / "series")
    labels = _labels(image)
    result = export_labels(labels, image, tmp_path / "seg.dcm", algorithm="manual",
                           with_sr=tmp_path / "sr.dcm")
    assert result.format == "dicom-seg" and result.lesions == 2
    assert result.files == [tmp_path / "seg.dcm", tmp_path / "sr.dcm"]
    _check_sr(tmp_path / "sr.dcm", tmp_path / "seg.dcm", image, labels)
    # the SR on its own, referencing the SEG written before
    alone = export_labels(labels, image, tmp_path / "sr2.dcm", "dicom-sr",
                          seg_path=tmp_path / "seg.dcm")
    assert alone.files == [tmp_path / "sr2.dcm"] and alone.lesions == 2
    _check_sr(tmp_path / "sr2.dcm", tmp_path / "seg.dcm", image, labels)


def test_cli_writes_seg_and_sr(tmp_path, capsys):
    image = _series(tmp_path / "series")
    labels = _labels(image)
    save(labels, tmp_path / "labels.nii.gz")
    base = ["export", str(tmp_path / "labels.nii.gz"), "--reference", str(tmp_path / "series")]
    assert main([*base, "-o", str(tmp_path / "seg.dcm"), "--with-sr",
                 str(tmp_path / "sr.dcm"), "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["files"] == [str(tmp_path / "seg.dcm"), str(tmp_path / "sr.dcm")]
    assert done["lesions"] == 2
    assert main([*base, "-o", str(tmp_path / "sr2.dcm"), "--format", "dicom-sr", "--seg",
                 str(tmp_path / "seg.dcm")]) == 0
    capsys.readouterr()
    # labels read back from NIfTI still measure the same lesions on the DICOM image
    _check_sr(tmp_path / "sr2.dcm", tmp_path / "seg.dcm", image, labels)


def test_sr_refusals_are_one_line(tmp_path, capsys):
    image = _series(tmp_path / "series")
    other = _series(tmp_path / "other")
    labels = _labels(image)
    export_labels(labels, image, tmp_path / "seg.dcm")
    export_labels(_labels(other), other, tmp_path / "other_seg.dcm")
    with pytest.raises(ParameterError, match="needs --seg"):
        export_labels(labels, image, tmp_path / "sr.dcm", "dicom-sr")
    with pytest.raises(ReadError, match="no such file"):
        export_labels(labels, image, tmp_path / "sr.dcm", "dicom-sr",
                      seg_path=tmp_path / "none.dcm")
    with pytest.raises(ReadError, match="not a DICOM SEG"):
        export_labels(labels, image, tmp_path / "sr.dcm", "dicom-sr",
                      seg_path=next(p for p in (tmp_path / "series").rglob("*") if p.is_file()))
    with pytest.raises(ReadError, match="not made on the reference series"):
        export_labels(labels, image, tmp_path / "sr.dcm", "dicom-sr",
                      seg_path=tmp_path / "other_seg.dcm")
    # no lesion: highdicom's TID 1500 needs a measurement group, so nothing is written
    with pytest.raises(ParameterError, match="no lesion"):
        export_labels(_labels(image, lesions=False), image, tmp_path / "seg2.dcm",
                      with_sr=tmp_path / "sr.dcm")
    assert not (tmp_path / "seg2.dcm").exists() and not (tmp_path / "sr.dcm").exists()
    # a NIfTI image has no series to reference
    save(image, tmp_path / "image.nii.gz")
    nifti = load(tmp_path / "image.nii.gz")
    with pytest.raises(DelineoError, match="DICOM"):
        export_labels(LabelMap.on_grid_of(nifti, labels.array, labels=BRAIN_LESION_LABELS),
                      nifti, tmp_path / "sr.dcm", "dicom-sr", seg_path=tmp_path / "seg.dcm")
    assert format_of(tmp_path / "x.dcm") == "dicom-seg"
    save(labels, tmp_path / "labels.nii.gz")
    assert main(["export", str(tmp_path / "labels.nii.gz"), "--reference",
                 str(tmp_path / "series"), "-o", str(tmp_path / "sr.dcm"), "--format",
                 "dicom-sr", "--seg", str(tmp_path / "other_seg.dcm")]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not made on the reference series" in err[0]
