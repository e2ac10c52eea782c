"""DICOM SEG: lands voxel-exact on the source series (axial, oblique, flipped), keeps names,
codes and warnings, refuses what it cannot reference."""

from __future__ import annotations

import json

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from engine.cli import main
from engine.core.errors import DelineoError, GeometryMismatchError
from engine.core.volume import BRAIN_LESION_LABELS, LabelMap
from engine.io import load, save
from engine.io.dicom.seg import build_dicom_seg, read_dicom_seg, write_dicom_seg
from tests.engine.dicom_factory import rotation, write_series


def _series(tmp_path, affine, *, identity=True, name="s"):
    data = np.random.default_rng(1).normal(100, 5, (24, 28, 10)).astype(np.int16)
    paths = write_series(tmp_path / name, data, affine, modality="MR")
    frame = generate_uid()
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.FrameOfReferenceUID = frame
        if identity:
            ds.PatientName, ds.PatientID, ds.StudyID = "Test^Phantom", "P1", "S1"
            ds.PatientBirthDate = ds.PatientSex = ds.StudyDate = ds.StudyTime = ""
            ds.AccessionNumber = ds.ReferringPhysicianName = ""
        ds.save_as(path)
    return load(tmp_path / name)


def _labels(volume):
    lab = np.zeros(volume.shape, np.uint8)
    lab[3:12, 4:15, 2:6] = 2
    lab[14:20, 5:9, 4:8] = 4
    lab[2:5, 20:25, 7:9] = 1
    return LabelMap.on_grid_of(volume, lab, labels=BRAIN_LESION_LABELS)


AXIAL = np.diag([0.9, 0.9, 2.0, 1.0])
OBLIQUE = np.eye(4)
OBLIQUE[:3, :3] = rotation(10.0, -5.0, 15.0) @ np.diag([0.9, 0.9, 2.0])
OBLIQUE[:3, 3] = (-30.0, 20.0, -10.0)
FLIPPED = np.diag([-0.8, 0.8, -2.5, 1.0])  # rows and slices run against RAS
FLIPPED[:3, 3] = (20.0, -15.0, 30.0)


@pytest.mark.parametrize("affine", [AXIAL, OBLIQUE, FLIPPED], ids=["axial", "oblique", "flipped"])
def test_the_seg_lands_voxel_exact_on_the_source_series(tmp_path, affine):
    volume = _series(tmp_path, affine)
    labels = _labels(volume)
    path, notes = write_dicom_seg(labels, volume, tmp_path / "seg.dcm", algorithm="cnn",
                                  version="0.1.0")
    assert notes == []
    back = read_dicom_seg(path, volume)
    assert back.same_grid(volume)
    for value in (1, 2, 4):  # Dice 1.0 per label
        assert np.array_equal(back.array == value, labels.array == value), value
    seg = hd.seg.segread(path)
    prov = volume.source.header
    assert seg.FrameOfReferenceUID == prov.frame_of_reference_uid
    assert seg.StudyInstanceUID == prov.study_uid and seg.SeriesInstanceUID != prov.series_uid
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == prov.series_uid
    assert seg.PatientID == "P1" and str(seg.PatientName) == "Test^Phantom"
    names = [seg.get_segment_description(n).SegmentLabel for n in seg.segment_numbers]
    assert names == ["CSF", "Gray matter", "Lesion"]
    lesion = seg.get_segment_description(3)
    assert lesion.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"
    assert lesion.SegmentAlgorithmName == "cnn"
    gm = seg.get_segment_description(2)
    assert gm.SegmentedPropertyTypeCodeSequence[0].CodeValue == "389081007"
    assert back.labels.color(4) == pytest.approx(BRAIN_LESION_LABELS.color(4), abs=2)


def test_missing_type2_attributes_are_written_empty_and_said(tmp_path):
    volume = _series(tmp_path, AXIAL, identity=False)
    seg, notes = build_dicom_seg(_labels(volume), volume, algorithm="otsu", version="0.1.0",
                                 network=False)
    assert len(notes) == 1 and "PatientName" in notes[0] and "written empty" in notes[0]
    assert str(seg.PatientName) == "" and seg.StudyID == ""


def test_warnings_reach_the_series_description(tmp_path):
    volume = _series(tmp_path, AXIAL)
    seg, _ = build_dicom_seg(_labels(volume), volume, algorithm="cnn", version="0.1.0",
                             warnings=["modality CT: cnn is made for MR"])
    assert seg.SeriesDescription == "Delineo cnn [OUTSIDE DECLARED USE]"
    assert "modality CT" in seg.ContentDescription


def test_what_cannot_be_referenced_is_refused(tmp_path):
    volume = _series(tmp_path, AXIAL)
    other = _series(tmp_path, OBLIQUE, name="other")
    with pytest.raises(GeometryMismatchError, match="does not match the reference series"):
        build_dicom_seg(_labels(other), volume, algorithm="x", version="1")
    nifti = tmp_path / "v.nii.gz"
    save(volume, nifti)
    from_nifti = load(nifti)
    with pytest.raises(DelineoError, match="needs the image read from its DICOM series"):
        build_dicom_seg(LabelMap.on_grid_of(from_nifti, _labels(volume).array), from_nifti,
                        algorithm="x", version="1")
    empty = LabelMap.on_grid_of(volume, np.zeros(volume.shape, np.uint8))
    with pytest.raises(DelineoError, match="empty"):
        build_dicom_seg(empty, volume, algorithm="x", version="1")
    path, _ = write_dicom_seg(_labels(volume), volume, tmp_path / "seg.dcm", algorithm="x",
                              version="1")
    with pytest.raises(GeometryMismatchError, match="none of the reference"):
        read_dicom_seg(path, other)


def test_cli_export_dicom_seg(tmp_path, capsys):
    volume = _series(tmp_path, OBLIQUE, identity=False)
    labels = _labels(volume)
    labels.metadata.update(method="otsu", warnings=["contrast FLAIR: otsu is made for T1"])
    save(labels, tmp_path / "labels.nii.gz")
    assert main(["export", str(tmp_path / "labels.nii.gz"), "--reference", str(tmp_path / "s"),
                 "-o", str(tmp_path / "seg.dcm"), "--json"]) == 0
    captured = capsys.readouterr()
    done = json.loads(captured.out)
    assert done["format"] == "dicom-seg" and [s["value"] for s in done["segments"]] == [1, 2, 4]
    assert "written empty" in captured.err
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert seg.SeriesDescription == "Delineo otsu [OUTSIDE DECLARED USE]"
    back = read_dicom_seg(tmp_path / "seg.dcm", volume)
    assert np.array_equal(back.array, labels.array)
    nifti_ref = tmp_path / "v.nii.gz"
    save(volume, nifti_ref)
    assert main(["export", str(tmp_path / "labels.nii.gz"), "--reference", str(nifti_ref),
                 "-o", str(tmp_path / "x.dcm")]) == 3
    assert "needs the image read from its DICOM series" in capsys.readouterr().err
