"""``delineo-engine segment --pipeline``: named pipelines from the command line."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from engine.cli import main
from engine.cli.method_commands import pipeline_overrides
from engine.core.errors import ParameterError
from engine.methods.pipeline import PIPELINES

try:
    from tests.engine.test_methods_phantom import mean_dice, phantom
except ImportError:  # tests/engine is on sys.path (pytest "prepend" import mode)
    from test_methods_phantom import mean_dice, phantom  # type: ignore[no-redef]


@pytest.fixture
def ras_flipped_files(tmp_path):
    """The 3-D phantom stored in LPS voxel order, and its brain mask."""
    vol, truth = phantom(3)
    affine = np.array([[-1.2, 0, 0, 40.0], [0, -1.2, 0, 30.0], [0, 0, 1.5, -20.0], [0, 0, 0, 1]])
    img = tmp_path / "img.nii.gz"
    nib.save(nib.Nifti1Image(vol.array, affine), img)
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image((truth > 0).astype(np.uint8), affine), mask)
    return img, mask, truth, affine


def test_segment_pipeline_writes_labels_on_the_input_grid(ras_flipped_files, tmp_path, capsys):
    img, mask, truth, affine = ras_flipped_files
    out = tmp_path / "gmm.nii.gz"
    status = main(["segment", str(img), "--force", "-o", str(out), "--pipeline", "gmm",
                   "--mask", str(mask), "--device", "cpu", "--param", "iterations=5",
                   "--param", "gmm.mrf_beta=0.5"])
    assert status == 0
    written = nib.load(out)
    assert written.shape == truth.shape
    assert np.allclose(written.affine, affine, atol=1e-4)
    labels = np.asarray(written.dataobj)
    assert mean_dice(labels, truth) > 0.85
    streams = capsys.readouterr()
    assert str(out) in streams.out
    assert "gmm(iterations=5, mrf_beta=0.5)" in streams.err


def test_segment_pipeline_matches_the_method_alone(ras_flipped_files, tmp_path):
    img, mask, _, _ = ras_flipped_files
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    assert main(["segment", str(img), "--force", "-o", str(a), "--pipeline", "otsu",
                 "--mask", str(mask), "--device", "cpu"]) == 0
    assert main(["segment", str(img), "--force", "-o", str(b), "--method", "otsu",
                 "--mask", str(mask), "--device", "cpu"]) == 0
    assert np.array_equal(np.asarray(nib.load(a).dataobj), np.asarray(nib.load(b).dataobj))


def test_method_and_pipeline_are_exclusive(ras_flipped_files, tmp_path, capsys):
    img, _, _, _ = ras_flipped_files
    with pytest.raises(SystemExit) as info:
        main(["segment", str(img), "--force", "-o", str(tmp_path / "x.nii.gz"), "--method", "otsu",
              "--pipeline", "otsu"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_unknown_pipeline_and_bad_params_exit_2(ras_flipped_files, tmp_path, capsys):
    img, _, _, _ = ras_flipped_files
    out = tmp_path / "x.nii.gz"
    for extra in (["--pipeline", "nope"],
                  ["--pipeline", "otsu", "--param", "bins=3"],
                  ["--pipeline", "otsu", "--param", "nonsense=1"],
                  ["--pipeline", "otsu", "--param", "gmm.iterations=4"]):
        assert main(["segment", str(img), "--force", "-o", str(out), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("delineo-engine: error:"), extra
    assert not out.exists()


def test_cnn_pipeline_without_weights_fails_clearly(ras_flipped_files, tmp_path, capsys,
                                                    monkeypatch):
    from engine.methods import cnn

    monkeypatch.setenv("DELINEO_MODELS_DIR", str(tmp_path / "no-models"))
    monkeypatch.setattr(cnn, "_PREDICTORS", {})  # no network loaded by an earlier test
    img, _, _, _ = ras_flipped_files
    out = tmp_path / "cnn.nii.gz"
    assert main(["segment", str(img), "--force", "-o", str(out), "--pipeline", "cnn",
                 "--device", "cpu"]) == 3  # missing weights: a data error
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress lines
    assert last.startswith("delineo-engine: error:")
    assert "delineo.safetensors" in last and "not found" in last
    assert not out.exists()


def test_pipeline_overrides_name_steps_by_name_or_position():
    pipe = PIPELINES["cnn+rd+ac"]  # rd_regularize and ac_refine both have "iterations"
    assert pipeline_overrides(pipe, ["rd_regularize.iterations=5"]) == {1: {"iterations": 5}}
    assert pipeline_overrides(pipe, ["3.iterations=7", "mu=0.1"]) == {
        2: {"iterations": 7, "mu": 0.1}}
    assert pipeline_overrides(pipe, ["delineo.tta=yes"]) == {0: {"tta": True}}
    with pytest.raises(ParameterError, match="several steps"):
        pipeline_overrides(pipe, ["iterations=5"])
    with pytest.raises(ParameterError, match="has no step"):
        pipeline_overrides(pipe, ["unet.tta=1"])
