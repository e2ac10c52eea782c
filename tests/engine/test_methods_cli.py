"""``delineo-engine segment`` and ``delineo-engine methods``."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from engine.cli import main
from engine.methods import METHODS

try:
    from tests.engine.test_methods_phantom import mean_dice, phantom
except ImportError:  # tests/engine is on sys.path (pytest "prepend" import mode)
    from test_methods_phantom import mean_dice, phantom  # type: ignore[no-redef]


@pytest.fixture
def lps_files(tmp_path):
    """The 3-D phantom stored in LPS voxel order with a flipped, shifted affine."""
    vol, truth = phantom(3)
    affine = np.array([[-1.2, 0, 0, 40.0], [0, -1.2, 0, 30.0], [0, 0, 1.5, -20.0], [0, 0, 0, 1]])
    img = tmp_path / "img.nii.gz"
    nib.save(nib.Nifti1Image(vol.array, affine), img)
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image((truth > 0).astype(np.uint8), affine), mask)
    return img, mask, truth, affine


@pytest.mark.parametrize("method", ["otsu", "gmm"])
def test_segment_writes_labels_on_the_input_grid(lps_files, tmp_path, capsys, method):
    img, mask, truth, affine = lps_files
    out = tmp_path / "labels.nii.gz"
    status = main(["segment", str(img), "--force", "-o", str(out), "--method", method,
                   "--mask", str(mask), "--device", "cpu", "--param", "contrast=t1"])
    assert status == 0
    written = nib.load(out)
    assert written.shape == truth.shape
    assert np.allclose(written.affine, affine, atol=1e-4)
    labels = np.asarray(written.dataobj)
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    assert mean_dice(labels, truth) > 0.85  # lands voxel for voxel on the file's own order
    assert str(out) in capsys.readouterr().out


def test_segment_without_mask_and_with_params(lps_files, tmp_path):
    img, _, truth, _ = lps_files
    out = tmp_path / "rd.nii.gz"
    status = main(["segment", str(img), "--force", "-o", str(out), "--method", "reaction_diffusion",
                   "--param", "iterations=20", "--param", "diffusion=0.1"])
    assert status == 0
    labels = np.asarray(nib.load(out).dataobj)
    assert mean_dice(labels, truth) > 0.8


@pytest.mark.parametrize("bad", ["iterations=abc", "nonsense=1", "dt=-1", "noequals",
                                 "dt=50"])
def test_bad_param_exits_2_with_one_line(lps_files, tmp_path, capsys, bad):
    img, _, _, _ = lps_files
    out = tmp_path / "x.nii.gz"
    status = main(["segment", str(img), "--force", "-o", str(out), "--method", "reaction_diffusion",
                   "--param", bad])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    # the toy image is no head: run with --force, its warning may precede the error
    assert err[-1].startswith("delineo-engine: error:")
    assert all(line.startswith("delineo-engine: warning: field of view") for line in err[:-1])
    assert not out.exists()


def test_unknown_method_exits_2(lps_files, tmp_path, capsys):
    img, _, _, _ = lps_files
    assert main(["segment", str(img), "-o", str(tmp_path / "x.nii.gz"), "--method", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("delineo-engine: error: unknown method 'nope'; known: ")
    assert ", ".join(sorted(METHODS)) in err[0]


def test_methods_lists_every_method(capsys):
    assert main(["methods"]) == 0
    text = capsys.readouterr().out
    for name, spec in METHODS.items():
        assert name in text and spec.summary in text
    assert "--param dt=" in text and "mm²/t.u." in text
    assert "made for: MR brain/head (T1, T2, PD), voxels 0.5-3 mm" in text
    assert main(["methods", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert {m["name"] for m in facts} == set(METHODS)
    assert all(m["made_for"].startswith("MR brain/head") for m in facts)
    rd = next(m for m in facts if m["name"] == "reaction_diffusion")
    names = {p["name"] for p in rd["parameters"]}
    assert {"diffusion", "alpha", "beta", "dt", "iterations"} <= names
