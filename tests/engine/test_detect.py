"""``delineo-engine detect``: lesion instances and findings from a whole head, a DICOM series,
and one-line refusals of bad input."""

from __future__ import annotations

import csv
import hashlib
import json

import nibabel as nib
import numpy as np
import pytest

from engine.cli import main
from engine.data.heads import synthetic_head
from engine.data.lesions import add_lesions
from engine.io import load, load_labels
from engine.methods.lesion_step import LESION_MODELS, LesionParams
from engine.models.weights import model_path

try:
    from tests.engine import dicom_factory as fac
    from tests.engine.test_lesion_model import _lesion_phantom
except ImportError:  # tests/engine is on sys.path (pytest "prepend" import mode)
    import dicom_factory as fac  # type: ignore[no-redef]
    from test_lesion_model import _lesion_phantom  # type: ignore[no-redef]

def _check_outputs(out, volume_shape):
    """The instance map and the findings agree; returns (instances canonical, findings)."""
    inst = load_labels(out / "lesions.nii.gz").array
    assert inst.shape == volume_shape
    n = int(inst.max())
    assert sorted(np.unique(inst).tolist()) == list(range(n + 1))  # 1..N, no gap
    doc = json.loads((out / "findings.json").read_text())
    assert doc["format"] == "delineo-findings" and doc["n_lesions"] == n
    rows = list(csv.DictReader((out / "findings.csv").read_text().splitlines()))
    assert len(rows) == n
    counts = np.bincount(inst.ravel(), minlength=n + 1)
    for finding, row in zip(doc["findings"], rows, strict=True):
        i = finding["id"]
        assert int(row["id"]) == i
        assert finding["voxel_count"] == counts[i]
        assert finding["volume_ml"] == pytest.approx(counts[i] / 1000.0, rel=1e-6)
        assert finding["axial_diameter_mm"] >= finding["perpendicular_diameter_mm"]
        assert finding["diameter_3d_mm"] >= finding["axial_diameter_mm"] - 1e-6
        assert 0.0 <= finding["confidence"] <= 1.0
        assert finding["tissue"] in ("CSF", "Gray matter", "White matter", None) or \
            isinstance(finding["tissue"], str)
        centroid = np.array(finding["voxel_centroid"])
        assert inst[tuple(np.round(centroid).astype(int))] >= 0
    assert counts[1:].tolist() == sorted(counts[1:].tolist(), reverse=True)
    return inst, doc["findings"]


def test_detect_on_a_whole_head_in_its_own_orientation(tmp_path, capsys):
    """A T2 head with lesions, stored in LPS voxel order: instances land on the file's grid."""
    head = synthetic_head("t2", seed=131)
    image, labels, painted = add_lesions(head.image, head.truth, contrast="t2", count=3,
                                         sizes_mm=(9.0, 16.0), seed=11,
                                         regions={"white_matter": 1.0})
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:3, 3] = [image.shape[0] - 1, image.shape[1] - 1, 0]
    affine = image.affine @ flip  # the same head, stored with i and j reversed
    path = tmp_path / "head.nii.gz"
    nib.save(nib.Nifti1Image(image.array[::-1, ::-1, :].copy(), affine), path)
    out = tmp_path / "found"
    assert main(["detect", str(path), "--out", str(out), "--device", "cpu", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pipeline"] == "head"  # the default pipeline finds lesions
    written = nib.load(out / "lesions.nii.gz")
    assert written.shape == image.shape
    assert np.allclose(written.affine, affine, atol=1e-4)
    inst, findings = _check_outputs(out, image.shape)
    assert summary["n_lesions"] == len(findings) >= 1
    # the instance file in the file's own voxel order is the canonical map, flipped back
    raw = np.asarray(written.dataobj)
    assert np.array_equal(raw[::-1, ::-1, :], inst)
    truth = labels.array == 4
    found_any = [bool((inst[lab_mask] > 0).any())
                 for lab_mask in (_component(truth, les.centre_voxel) for les in painted)]
    assert sum(found_any) >= 2, found_any  # lesions of 9-16 mm in white matter
    tissue = load_labels(out / "labels.nii.gz").array
    assert np.array_equal(tissue == 4, inst > 0)


def _component(mask: np.ndarray, centre) -> np.ndarray:
    from scipy import ndimage

    comps, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    ids = comps[tuple(round(c) for c in centre)]
    if ids == 0:  # an irregular lesion whose drawn centre is outside it: nearest voxel
        pts = np.argwhere(comps > 0)
        ids = comps[tuple(pts[np.argmin(((pts - np.array(centre)) ** 2).sum(1))])]
    return comps == ids


def test_detect_on_a_dicom_series(tmp_path, capsys):
    image, labels, _ = _lesion_phantom()
    folder = tmp_path / "series"
    fac.write_series(folder, image.array, image.affine, slope=0.1, modality="MR",
                     description="AX T2 brain")
    volume = load(folder)
    out = tmp_path / "found"
    status = main(["detect", str(folder), "--out", str(out), "--pipeline", "cnn+lesions",
                   "--device", "cpu"])
    assert status == 0
    text = capsys.readouterr().out
    inst, findings = _check_outputs(out, volume.shape)
    assert findings and "lesion(s)" in text
    truth = labels.array == 4
    best = inst == 1  # the largest finding is the painted 12 mm lesion
    assert 2 * (best & truth).sum() / (best.sum() + truth.sum()) > 0.6
    assert np.allclose(nib.load(out / "lesions.nii.gz").affine[:3, :3],
                       nib.load(out / "labels.nii.gz").affine[:3, :3])
    _check_source(out / "findings.json", str(folder), "cnn+lesions")


def _check_source(path, image: str, pipeline: str) -> None:
    """findings.json says what made it: input, pipeline, both lesion networks with the
    sha256 of their shipped weights, threshold, outline level and minimum size."""
    source = json.loads(path.read_text())["source"]
    assert source["input"] == image and source["pipeline"] == pipeline
    assert [n["name"] for n in source["lesion_networks"]] == list(LESION_MODELS)
    for net in source["lesion_networks"]:
        weights = model_path(net["name"]).read_bytes()
        assert net["sha256"] == hashlib.sha256(weights).hexdigest()
    assert source["min_probability"] == LesionParams().min_probability
    assert source["outline_probability"] == LesionParams().outline_probability
    assert source["min_lesion_mm3"] == LesionParams().min_lesion_mm3


def test_batch_findings_carry_the_lesion_networks_confidences(tmp_path):
    """What a batch case writes with --detect and a lesion pipeline: findings with the
    networks' confidences, as detect's, and where they came from."""
    from engine.batch import run_case
    from engine.io import save

    image, labels, _ = _lesion_phantom()
    path = save(image, tmp_path / "slab.nii.gz")
    result = run_case(path, tmp_path / "labels.nii.gz", pipeline="cnn+lesions", detect=True,
                      device="cpu", findings_folder=tmp_path / "findings",
                      findings_stem="slab")
    doc = json.loads((tmp_path / "findings" / "slab.json").read_text())
    assert result.lesion_count == doc["n_lesions"] >= 1
    assert all(0.9 <= f["confidence"] <= 1.0 for f in doc["findings"])
    found = load_labels(tmp_path / "labels.nii.gz").array == 4
    truth = labels.array == 4
    assert 2 * (found & truth).sum() / (found.sum() + truth.sum()) > 0.6  # the 12 mm lesion
    _check_source(tmp_path / "findings" / "slab.json", str(path), "cnn+lesions")


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("delineo-engine: error: ")
    return err[0]


def test_detect_refuses_bad_input_in_one_line(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["detect", str(tmp_path / "missing.nii.gz"), "--out", out]) == 3
    _error_line(capsys)
    assert not (tmp_path / "out").exists()

    img = tmp_path / "img.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((40, 40, 1)).astype(np.float32),
                             np.eye(4)), img)
    assert main(["detect", str(img), "--out", out, "--pipeline", "cnn"]) == 2
    assert "lesions step" in _error_line(capsys)
    assert main(["detect", str(img), "--out", out, "--param", "lesions.min_probability=2"]) == 2
    _error_line(capsys)
    assert main(["detect", str(img), "--out", out, "--pipeline", "nope"]) == 2
    _error_line(capsys)
    assert main(["detect", str(img), "--out", out]) == 3  # one slice: not a head
    assert "--force" in _error_line(capsys)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["detect", str(img), "--out", str(blocker)]) == 3
    _error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_train_lesions_refuses_bad_options(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train-lesions", "--out", out, "--steps", "0"]) == 2
    _error_line(capsys)
    assert main(["train-lesions", "--out", out, "--steps", "2", "--resume"]) == 2
    assert "checkpoint" in _error_line(capsys)
    assert main(["train-lesions", "--out", out, "--steps", "2", "--base", "0"]) == 2
    _error_line(capsys)
    with pytest.raises(SystemExit) as usage:  # a usage error: argparse exits
        main(["train-lesions", "--out", out, "--steps", "2", "--pool-contrasts", "t1=0.5,flair"])
    assert usage.value.code == 2
    assert "SEQUENCE=SHARE" in capsys.readouterr().err.strip().splitlines()[-1]
    assert main(["train-lesions", "--out", out, "--steps", "2",
                 "--pool-contrasts", "t1=0.5,dwi=0.5"]) == 2
    assert "dwi" in _error_line(capsys)
    with pytest.raises(SystemExit) as usage:
        main(["train-lesions", "--out", out, "--steps", "2", "--anatomy", "bent"])
    assert usage.value.code == 2
    assert "unknown anatomy 'bent'" in capsys.readouterr().err.strip().splitlines()[-1]
    assert main(["train-lesions", "--out", out, "--steps", "2",
                 "--head-contrasts", "t1,dwi"]) == 2
    assert "dwi" in _error_line(capsys)
    assert main(["train-lesions", "--out", out, "--steps", "2", "--varied-share", "2"]) == 2
    assert "varied" in _error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_train_lesions_head_contrasts_keep_the_default_order():
    """The heads' sequences are drawn from a list in the shipped recipe's order, so
    ``--head-contrasts t2,pd,t1`` draws the very pool of the default."""
    from engine.cli.lesion_commands import _head_contrasts

    assert _head_contrasts("t2,PD,t1") == ("pd", "t1", "t2")
    assert _head_contrasts("flair, t1") == ("t1", "flair")
