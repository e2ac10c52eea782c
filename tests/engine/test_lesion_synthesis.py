"""Synthetic lesions on MNI phantoms: sizes, labels, contrast, determinism, held-out slab."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from engine.core.errors import GeometryMismatchError, ParameterError
from engine.core.volume import BRAIN_LESION_LABELS, LabelMap, Volume
from engine.data.lesions import add_lesions, estimate_noise_sigma
from engine.data.mni import HELD_OUT_SLAB
from engine.data.phantom import mni_tissue_block, synthesize_phantom
from engine.lesions import lesion_instances, measure_lesions


@pytest.fixture(scope="module")
def block():
    return mni_tissue_block()


@pytest.fixture(scope="module")
def t1(block):
    return synthesize_phantom("t1", seed=0, block=block)


def test_sizes_labels_and_footprint(t1) -> None:
    image, truth = t1
    out, labels, found = add_lesions(image, truth, contrast="t1", count=6, seed=1,
                                     mass_effect_probability=0.0)
    assert labels.labels == BRAIN_LESION_LABELS and out.same_grid(image)
    assert [les.id for les in found] == list(range(1, 7))
    lab = np.asarray(labels.array)
    lesion = lab == 4
    # Label 4 only where there was gray or white matter; every other label unchanged.
    assert np.isin(np.asarray(truth.array)[lesion], (2, 3)).all()
    assert np.array_equal(lab[~lesion], np.asarray(truth.array)[~lesion])
    # Six separate lesions, sizes (equivalent diameters) within the requested range.
    inst = lesion_instances(labels)
    assert inst.max() == 6
    measured = sorted(f.equivalent_diameter_mm for f in measure_lesions(inst, out))
    assert measured == pytest.approx(sorted(les.equivalent_diameter_mm for les in found))
    assert all(2.0 <= d <= 30.0 for d in measured)
    for les in found:
        assert abs(les.equivalent_diameter_mm - les.target_diameter_mm) \
            <= 0.25 * les.target_diameter_mm
    # The image changes only in the lesions and their one-voxel partial-volume rim.
    changed = np.asarray(out.array) != np.asarray(image.array)
    assert changed.any()
    assert not (changed & ~ndimage.binary_dilation(lesion, np.ones((3, 3, 3), bool))).any()
    assert out.metadata["lesions"][0]["id"] == 1


@pytest.mark.parametrize(("contrast", "image_contrast"),
                         [("t1", "t1"), ("t2", "t2"), ("flair", "t2"), ("pd", "pd")])
def test_contrast_sign(block, t1, contrast, image_contrast) -> None:
    image, truth = t1 if image_contrast == "t1" else synthesize_phantom(
        image_contrast, seed=2, block=block)
    out, labels, _ = add_lesions(image, truth, contrast=contrast, count=2, seed=4,
                                 sizes_mm=(4.0, 15.0), rim_probability=0.0)
    findings = measure_lesions(lesion_instances(labels), out, tissue=truth)
    assert len(findings) == 2
    signs = {np.sign(f.contrast_difference) for f in findings}
    assert signs == ({-1.0} if contrast == "t1" else {1.0})


def test_enhancing_rim_brighter_than_white_matter(t1) -> None:
    image, truth = t1
    wm = float(np.median(np.asarray(image.array)[np.asarray(truth.array) == 3]))
    out, labels, found = add_lesions(image, truth, contrast="t1", count=2, seed=7,
                                     sizes_mm=(12.0, 20.0), rim_probability=1.0,
                                     oedema_probability=0.0)
    assert all(les.enhancing_rim for les in found)
    inside = np.asarray(out.array)[np.asarray(labels.array) == 4]
    assert np.percentile(inside, 95) > 1.1 * wm  # the rim
    assert np.percentile(inside, 5) < 0.6 * wm  # the hypo-intense core


def test_deterministic_and_count_zero(t1) -> None:
    image, truth = t1
    kw = {"contrast": "t2", "count": range(2, 4), "sizes_mm": (2.0, 10.0)}
    a = add_lesions(image, truth, seed=11, **kw)
    b = add_lesions(image, truth, seed=11, **kw)
    c = add_lesions(image, truth, seed=12, **kw)
    assert np.array_equal(a[0].array, b[0].array) and np.array_equal(a[1].array, b[1].array)
    assert a[2] == b[2] and 2 <= len(a[2]) <= 3
    assert not np.array_equal(a[1].array, c[1].array)
    same, labels, found = add_lesions(image, truth, contrast="t1", count=0, seed=3)
    assert found == [] and np.array_equal(same.array, image.array)
    assert np.array_equal(labels.array, truth.array) and 4 in labels.labels


def test_held_out_slab(t1) -> None:
    image, truth = t1
    k0, k1 = HELD_OUT_SLAB
    out, labels, found = add_lesions(image, truth, contrast="t1", count=5, seed=5,
                                     avoid_k=HELD_OUT_SLAB, mass_effect_probability=1.0)
    assert len(found) == 5
    assert np.array_equal(np.asarray(out.array)[:, :, k0:k1],
                          np.asarray(image.array)[:, :, k0:k1])
    assert np.array_equal(np.asarray(labels.array)[:, :, k0:k1],
                          np.asarray(truth.array)[:, :, k0:k1])
    out, labels, found = add_lesions(image, truth, contrast="t1", count=3, seed=6,
                                     within_k=HELD_OUT_SLAB, sizes_mm=(2.0, 12.0))
    ks = np.nonzero((np.asarray(labels.array) == 4).any(axis=(0, 1)))[0]
    changed = np.nonzero((np.asarray(out.array) != np.asarray(image.array)).any(axis=(0, 1)))[0]
    assert len(found) == 3 and ks.min() >= k0 and ks.max() < k1
    assert changed.min() >= k0 and changed.max() < k1


def test_regions_and_mass_effect(t1) -> None:
    image, truth = t1
    _, _, found = add_lesions(image, truth, contrast="t1", count=2, seed=8,
                              regions={"cerebellum": 1.0}, sizes_mm=(4.0, 10.0))
    # MNI: the cerebellum lies below z = -10 mm and behind y = -35 mm.
    assert all(les.centre_mm[2] < -10 and les.centre_mm[1] < -35 for les in found)
    _, _, found = add_lesions(image, truth, contrast="t1", count=2, seed=9,
                              regions={"periventricular": 1.0}, sizes_mm=(5.0, 10.0))
    assert all(les.touches_ventricle for les in found)
    _, labels, found = add_lesions(image, truth, contrast="t2", count=1, seed=10,
                                   sizes_mm=(12.0, 16.0), mass_effect_probability=1.0,
                                   mass_effect_mm=4.0,
                                     regions={"white_matter": 1.0})
    assert found[0].mass_effect_mm > 0
    lesion = np.asarray(labels.array) == 4
    rim = ndimage.binary_dilation(lesion, np.ones((3, 3, 3), bool), iterations=2)
    moved = (np.asarray(labels.array) != np.asarray(truth.array)) & ~rim
    assert moved.sum() > 20  # tissue labels pushed aside beyond the lesion's edge


def test_padded_head_like_grid(t1) -> None:
    # A whole-head-like input: the phantom padded by 20 voxels, bright tissue around the
    # brain, the origin moved so that world coordinates stay those of the template.
    image, truth = t1
    pad = 20
    arr = np.pad(np.asarray(image.array), pad)
    brain = np.pad(np.asarray(truth.array) > 0, pad)
    shell = ndimage.binary_dilation(brain, iterations=6) & ~brain
    arr[shell] = 1200.0
    affine = image.affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.full(3, pad, float)
    head = Volume(arr, affine)
    head_truth = LabelMap(np.pad(np.asarray(truth.array), pad), affine)
    out, labels, found = add_lesions(head, head_truth, contrast="t1", count=3, seed=2)
    assert len(found) == 3
    assert np.array_equal(np.asarray(out.array)[shell], arr[shell])
    assert np.isin(np.asarray(head_truth.array)[np.asarray(labels.array) == 4], (2, 3)).all()
    # The same seed on the unpadded phantom gives the same lesions (same world centres).
    _, _, plain = add_lesions(image, truth, contrast="t1", count=3, seed=2)
    assert [les.centre_mm for les in found] == [les.centre_mm for les in plain]


def test_noise_estimate(t1) -> None:
    image, truth = t1
    sigma = estimate_noise_sigma(np.asarray(image.array), np.asarray(truth.array) == 3)
    assert sigma == pytest.approx(30.0, rel=0.1)  # 3 % of the brightest tissue (1000)


def test_bad_input(t1) -> None:
    image, truth = t1
    with pytest.raises(ParameterError, match="contrast"):
        add_lesions(image, truth, contrast="ct", count=1)
    with pytest.raises(ParameterError):
        add_lesions(image, truth, contrast="t1", count=-1)
    with pytest.raises(ParameterError):
        add_lesions(image, truth, contrast="t1", count=1, sizes_mm=(5.0, 2.0))
    with pytest.raises(ParameterError, match="region"):
        add_lesions(image, truth, contrast="t1", count=1, regions={"liver": 1.0})
    moved = LabelMap(np.asarray(truth.array), truth.affine + np.eye(4) * 0.5)
    with pytest.raises(GeometryMismatchError):
        add_lesions(image, moved, contrast="t1", count=1)
