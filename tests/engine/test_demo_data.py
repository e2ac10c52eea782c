"""The demo brain: MNI ICBM152 2009a from the nilearn wheel, and its ground truth."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from engine.cli import main
from engine.data import mni
from engine.io.atomic import file_sha256


@pytest.fixture(scope="module")
def demo():
    return mni.load_demo()


def test_template_is_cached_with_verified_hashes_and_notice():
    paths = mni.ensure_template()
    folder = mni.cache_dir()
    for key, (name, sha) in mni.TEMPLATE_FILES.items():
        assert paths[key] == folder / name
        assert file_sha256(paths[key]) == sha
    notice = (folder / "COPYRIGHT.txt").read_text()
    assert "Louis Collins" in notice and "McGill University" in notice


def test_demo_geometry_and_labels(demo):
    t1, truth = demo
    assert t1.shape == (197, 233, 189)
    assert t1.spacing == pytest.approx((1.0, 1.0, 1.0))
    assert t1.axcodes == ("R", "A", "S")
    np.testing.assert_allclose(t1.affine[:3, 3], [-98, -134, -72])
    assert truth.same_grid(t1)
    assert set(truth.present_values()) == {0, 1, 2, 3}


def _maps_from_the_files() -> tuple[np.ndarray, np.ndarray]:
    """pGM and pWM read straight from the template files (nibabel), not through the engine."""
    paths = mni.ensure_template()
    gm, wm = (nib.load(paths[k]) for k in ("gm", "wm"))
    assert nib.aff2axcodes(gm.affine) == ("R", "A", "S")  # already in the engine's order
    return (np.asanyarray(gm.dataobj).astype(np.float32) / 255.0,
            np.asanyarray(wm.dataobj).astype(np.float32) / 255.0)


def test_ground_truth_follows_the_documented_rule(demo):
    from scipy import ndimage

    t1, truth = demo
    gm, wm = _maps_from_the_files()
    labels = truth.array
    # 1. brain = holes filled in the closing, by a ball of radius 3 mm, of pGM + pWM > 0.1
    tissue = gm + wm > 0.1
    r = 3
    offsets = np.mgrid[-r:r + 1, -r:r + 1, -r:r + 1]
    ball = (offsets**2).sum(axis=0) <= r * r
    padded = np.pad(tissue, r + 1)  # room for the dilation: the closing sees no border
    closed = ndimage.binary_erosion(ndimage.binary_dilation(padded, ball), ball)
    brain = ndimage.binary_fill_holes(closed[r + 1:-r - 1, r + 1:-r - 1, r + 1:-r - 1])
    np.testing.assert_array_equal(labels > 0, brain)
    assert brain[tissue].all()  # a closing only adds
    # 2. inside the brain, the most probable of pCSF = 1 - pGM - pWM, pGM, pWM
    csf = np.clip(1 - gm - wm, 0, 1)
    stacked = np.stack([csf, gm, wm])[:, brain]
    np.testing.assert_array_equal(labels[brain], np.argmax(stacked, axis=0) + 1)
    # the volumes docs/data.md states: CSF 201.6 mL, GM 1090.9 mL, WM 635.5 mL (1 mm voxels)
    assert np.bincount(labels.ravel(), minlength=4)[1:].tolist() == [201635, 1090888, 635537]
    # Sanity: white matter is bright in T1, CSF is dark.
    mean = {v: float(t1.array[labels == v].mean()) for v in (1, 2, 3)}
    assert mean[3] > mean[2] > mean[1]


def test_brain_mask_is_one_component_without_holes(demo):
    from scipy import ndimage

    _, truth = demo
    brain = truth.array > 0
    _, n = ndimage.label(brain)
    assert n == 1
    # no holes: the background outside the brain is one piece (it touches the border)
    _, n_background = ndimage.label(~brain)
    assert n_background == 1


def test_held_out_slab_is_world_z_minus_2_to_17(demo):
    t1, _ = demo
    k0, k1 = mni.HELD_OUT_SLAB
    assert t1.voxel_to_world([0, 0, k0])[2] == pytest.approx(-2.0)
    assert t1.voxel_to_world([0, 0, k1 - 1])[2] == pytest.approx(17.0)


def test_demo_data_command_writes_files_that_align(tmp_path, capsys):
    assert main(["demo-data", "--out", str(tmp_path)]) == 0
    t1 = nib.load(tmp_path / "mni152_t1.nii.gz")
    labels = nib.load(tmp_path / "mni152_tissue_labels.nii.gz")
    assert t1.shape == labels.shape == (197, 233, 189)
    np.testing.assert_allclose(t1.affine, labels.affine)
    assert "Louis Collins" in (tmp_path / "COPYRIGHT-MNI152.txt").read_text()
    assert set(np.unique(np.asanyarray(labels.dataobj))) == {0, 1, 2, 3}
