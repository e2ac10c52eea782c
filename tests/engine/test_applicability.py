"""Applicability: the guard fires on CT and single slices, never on brain MR."""

from __future__ import annotations

import json
from functools import lru_cache

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from engine.cli import main
from engine.core.volume import Volume
from engine.data.phantom import synthesize_phantom
from engine.io import load
from engine.io.resample import resample_to
from engine.methods import METHODS, get_method
from engine.methods.applicability import (
    check_applicability,
    describe_applicability,
    infer_contrast,
    refusal,
)
from engine.methods.pipeline import PIPELINES, get_pipeline

SPECS = [METHODS[n] for n in sorted(METHODS)] + [get_pipeline(n) for n in sorted(PIPELINES)]
SPEC_IDS = [f"method:{s.name}" for s in SPECS[: len(METHODS)]] + \
    [f"pipeline:{s.name}" for s in SPECS[len(METHODS):]]


@lru_cache(maxsize=4)
def _phantom(contrast: str) -> Volume:
    return synthesize_phantom(contrast, seed=1)[0]


def _nifti_like(vol: Volume, array: np.ndarray | None = None,
                affine: np.ndarray | None = None) -> Volume:
    """As read from a NIfTI file: no modality."""
    return Volume(vol.array if array is None else array,
                  vol.affine if affine is None else affine, modality="unknown")


def _resampled(vol: Volume, mm: float) -> Volume:
    step = np.diag([mm, mm, mm, 1.0])
    step[:3, 3] = vol.affine[:3, 3]
    shape = tuple(int(n // mm) for n in np.array(vol.shape) * vol.spacing)
    ref = Volume(np.zeros(shape, np.float32), step)
    return Volume(resample_to(vol, ref), step, modality="unknown")


def _rotated(vol: Volume, degrees: float) -> Volume:
    t = np.deg2rad(degrees)
    rot = np.eye(4)
    rot[:3, :3] = [[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]]
    return _nifti_like(vol, affine=rot @ vol.affine)


def _flipped(vol: Volume) -> Volume:
    affine = vol.affine.copy()
    affine[:, 0] *= -1
    return _nifti_like(vol, array=vol.array[::-1].copy(), affine=affine)


BRAINS = {
    "t1": lambda: _phantom("t1"),
    "t2": lambda: _phantom("t2"),
    "pd": lambda: _phantom("pd"),
    "t1-nifti": lambda: _nifti_like(_phantom("t1")),
    "t2-2mm": lambda: _resampled(_phantom("t2"), 2.0),
    "pd-3mm": lambda: _resampled(_phantom("pd"), 3.0),
    "t1-flipped": lambda: _flipped(_phantom("t1")),
    "t1-oblique": lambda: _rotated(_phantom("t1"), 25.0),
    "mni-demo": lambda: __import__("engine.data.mni", fromlist=["load_demo"]).load_demo()[0],
    "mni-demo-nifti": lambda: _nifti_like(
        __import__("engine.data.mni", fromlist=["load_demo"]).load_demo()[0]),
}


@pytest.mark.parametrize("brain", sorted(BRAINS))
def test_never_fires_on_brain_mr(brain):
    vol = BRAINS[brain]()
    for spec in SPECS:
        assert check_applicability(vol, spec) == [], (brain, spec.name, vol)


@pytest.mark.parametrize("name", ["CT_small.dcm", "693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm"])
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_fires_on_pydicom_ct(name, spec):
    vol = load(get_testdata_file(name))
    reasons = check_applicability(vol, spec)
    assert any(r.startswith("modality CT") for r in reasons)
    assert any("1 slice(s)" in r for r in reasons)


def test_ct_without_modality_is_judged_by_its_values():
    ct = load(get_testdata_file("CT_small.dcm"))
    # a CT head-sized block of Hounsfield values, modality unknown (as from NIfTI)
    rng = np.random.default_rng(0)
    hu = rng.normal(40.0, 10.0, (180, 200, 40)).astype(np.float32)
    hu[:20] = -1000.0
    hu[-10:] = 1200.0
    vol = Volume(hu, np.diag([1.0, 1.0, 3.0, 1.0]))
    reasons = check_applicability(vol, get_method("otsu"))
    assert len(reasons) == 1 and reasons[0].startswith("values look like CT")
    assert ct.modality == "CT"


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_fires_on_a_single_slice(spec):
    vol = _phantom("t1")
    mid = vol.shape[2] // 2
    one = Volume(vol.array[:, :, mid], vol.affine, modality="MR")
    reasons = check_applicability(one, spec)
    assert len(reasons) == 1 and "1 slice(s)" in reasons[0]


def test_fov_too_small_and_spacing_too_coarse():
    tiny = Volume(np.ones((36, 36, 36), np.float32), np.eye(4), modality="MR")
    assert any("field of view" in r for r in check_applicability(tiny, get_method("gmm")))
    coarse = Volume(np.ones((40, 40, 30), np.float32), np.diag([5.0, 5.0, 5.0, 1.0]))
    assert any("voxel spacing" in r for r in check_applicability(coarse, get_method("gmm")))


def test_describe_says_what_it_is_for():
    text = describe_applicability(get_pipeline("cnn"))
    assert text.startswith("MR brain/head (T1, T2, PD)") and "at least 3 slices" in text


def _ct_block_file(tmp_path):
    rng = np.random.default_rng(3)
    hu = rng.normal(-1000.0, 5.0, (150, 150, 20)).astype(np.float32)
    hu[30:120, 30:120] = rng.normal(40.0, 10.0, (90, 90, 20))
    hu[50:100, 50:100] = rng.normal(300.0, 10.0, (50, 50, 20))
    hu[60:70, 60:70] = 1000.0
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(hu, np.diag([1.0, 1.0, 2.0, 1.0])), path)
    return path


def test_cli_segment_stops_before_computing(tmp_path, capsys):
    out = tmp_path / "labels.nii.gz"
    status = main(["segment", get_testdata_file("CT_small.dcm"), "-o", str(out),
                   "--method", "otsu", "--device", "cpu"])
    assert status == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert "modality CT: otsu is made for MR" in err[-1] and "--force" in err[-1]
    assert not out.exists()


def test_cli_names_every_reason_on_one_line(tmp_path, capsys):
    """A small single-slice MR (pydicom's MR_small: 64 x 64 x 1 at 0.31 mm) is outside
    the default pipeline's use for three reasons; the one line names each of them, not
    the first with "(and 2 more)"."""
    out = tmp_path / "labels.nii.gz"
    assert main(["segment", get_testdata_file("MR_small.dcm"), "-o", str(out),
                 "--device", "cpu"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    line = err[-1]
    for words in ("1 slice(s) along one axis", "voxel spacing", "field of view",
                  "use --force to run anyway"):
        assert words in line
    assert "more" not in line and not out.exists()


def test_refusal_counts_the_reasons_it_does_not_show():
    text = str(refusal([f"reason {i}" for i in range(5)], "--force"))
    assert text == "reason 0; reason 1; reason 2; 2 more reasons; use --force to run anyway"
    assert str(refusal(["a", "b", "c", "d"], "x")) == "a; b; c; 1 more reason; use x to run anyway"


def test_cli_segment_force_records_warnings(tmp_path, capsys):
    img = _ct_block_file(tmp_path)
    out = tmp_path / "labels.nii.gz"
    assert main(["segment", str(img), "-o", str(out), "--method", "otsu",
                 "--device", "cpu"]) == 3
    assert not out.exists()
    capsys.readouterr()
    assert main(["segment", str(img), "-o", str(out), "--method", "otsu", "--device", "cpu",
                 "--force", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert out.exists()
    assert len(summary["warnings"]) == 1 and "CT" in summary["warnings"][0]


def test_cli_evaluate_and_compare_stop_too(tmp_path, capsys):
    img = _ct_block_file(tmp_path)
    gt = tmp_path / "gt.nii.gz"
    truth = np.zeros((150, 150, 20), np.uint8)
    truth[30:120, 30:120] = 2
    nib.save(nib.Nifti1Image(truth, np.diag([1.0, 1.0, 2.0, 1.0])), gt)
    evaluate = ["evaluate", str(img), "--ground-truth", str(gt), "--method", "otsu",
                "--slab", "none", "--device", "cpu"]
    assert main(evaluate) == 3
    assert "otsu is made for MR" in capsys.readouterr().err.strip().splitlines()[-1]
    assert main([*evaluate, "--force", "--json"]) == 0
    assert "CT" in json.loads(capsys.readouterr().out)["warnings"][0]
    out = tmp_path / "cmp"
    compare = ["compare", str(img), "--ground-truth", str(gt), "--pipelines", "otsu",
               "--out", str(out), "--device", "cpu", "--no-surface"]
    assert main(compare) == 3
    assert "otsu is made for MR" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not out.exists()
    assert main([*compare, "--force", "--json"]) == 0
    assert "CT" in json.loads(capsys.readouterr().out)["warnings"]["otsu"][0]


# -- contrast --------------------------------------------------------------------------
def _mr_series(tmp_path, description: str, **attrs) -> Volume:
    """A T1 phantom block written as an MR DICOM series with *description* and *attrs*."""
    import pydicom

    from tests.engine.dicom_factory import MR_IMAGE_STORAGE, write_series

    vol = _phantom("t1")
    block = np.ascontiguousarray(vol.array[40:160, 40:190, 60:70]).astype(np.int16)
    paths = write_series(tmp_path / "series", block, vol.affine, modality="MR",
                         description=description)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.SOPClassUID = MR_IMAGE_STORAGE
        ds.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
        for key, value in attrs.items():
            setattr(ds, key, value)
        ds.save_as(path)
    return load(tmp_path / "series")


@pytest.mark.parametrize(("description", "attrs", "contrast"), [
    ("AX T1 MPRAGE", {}, "T1"),
    ("sag t1_mprage_iso", {}, "T1"),
    ("AX T2 TSE", {}, "T2"),
    ("PD_TSE_AX", {}, "PD"),
    ("AX T2 FLAIR", {}, "FLAIR"),
    ("T1 FLAIR AX", {}, "T1"),
    ("ep2d_diff_3scan_trace", {}, "DWI"),
    ("AXIAL", {"ImageType": ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]}, "DWI"),
    ("SWI_Images", {}, "SWI"),
    ("TOF_3D_multi-slab", {}, "MRA"),
    ("AXIAL", {"RepetitionTime": "9000", "EchoTime": "120", "InversionTime": "2500"}, "FLAIR"),
    ("AXIAL", {"RepetitionTime": "450", "EchoTime": "12"}, "T1"),
    ("AXIAL", {"RepetitionTime": "3000", "EchoTime": "15"}, "PD"),
    ("AXIAL", {}, None),
])
def test_contrast_is_read_from_the_dicom_series(tmp_path, description, attrs, contrast):
    vol = _mr_series(tmp_path, description, **attrs)
    found, evidence = infer_contrast(vol.metadata)
    assert found == contrast, evidence
    reasons = check_applicability(vol, get_method("delineo"))
    if contrast in (None, "T1", "T2", "PD"):
        assert not any("contrast" in r for r in reasons), reasons
    else:
        assert any(r.startswith(f"contrast {contrast}") for r in reasons), reasons


def test_cli_segment_refuses_a_diffusion_series(tmp_path, capsys):
    _mr_series(tmp_path, "ep2d_diff_b1000_TRACEW")
    out = tmp_path / "labels.nii.gz"
    assert main(["segment", str(tmp_path / "series"), "-o", str(out), "--method", "otsu",
                 "--device", "cpu"]) == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "contrast DWI" in err and "made for T1, T2, PD" in err and "--force" in err
    assert not out.exists()


def test_forced_result_carries_its_warnings_in_the_label_file(tmp_path, capsys):
    """--force: the label file itself says it was made outside the declared use."""
    img = _ct_block_file(tmp_path)
    out = tmp_path / "labels.nii.gz"
    assert main(["segment", str(img), "-o", str(out), "--method", "otsu", "--device", "cpu",
                 "--force"]) == 0
    capsys.readouterr()
    back = load(out)
    assert back.metadata["method"] == "otsu"
    assert any("CT" in w for w in back.metadata["result"]["warnings"])
    assert "OUTSIDE DECLARED USE" in back.metadata["description"]
    assert main(["info", str(out)]) == 0
    assert "OUTSIDE DECLARED USE" in capsys.readouterr().out
