"""engine.core.morphology, and the clean-ups standing on it, against scipy.ndimage, the
reference they replace."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from engine.core.errors import ParameterError
from engine.core.morphology import distance_inside, fill_holes, label
from engine.data.mni import load_demo
from engine.methods.postprocess import components_holding, largest_component, small_components

_RANK = {6: 1, 18: 2, 26: 3}


def _blobs(seed: int, shape: tuple[int, ...], level: float = 0.52) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape), 1.5) > level


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("fortran", [False, True])
def test_label_matches_scipy_numbering(connectivity: int, fortran: bool) -> None:
    for seed in range(6):
        mask = _blobs(seed, (40, 47, 31))
        if fortran:
            mask = np.asfortranarray(mask)
        ref, n_ref = ndimage.label(mask, ndimage.generate_binary_structure(3, _RANK[connectivity]))
        comp, n = label(mask, connectivity)
        assert n == n_ref and n > 5
        np.testing.assert_array_equal(comp, ref)


def test_label_2d_and_empty() -> None:
    mask = _blobs(3, (60, 70))
    for connectivity, rank in ((6, 1), (26, 2)):
        ref, n_ref = ndimage.label(mask, ndimage.generate_binary_structure(2, rank))
        comp, n = label(mask, connectivity)
        assert n == n_ref
        np.testing.assert_array_equal(comp, ref)
    comp, n = label(np.zeros((4, 5, 6), bool))
    assert n == 0 and comp.shape == (4, 5, 6) and not comp.any()
    with pytest.raises(ParameterError, match="connectivity"):
        label(mask, 8)
    with pytest.raises(ParameterError, match="2-D or 3-D"):
        label(np.zeros(5, bool))


def test_fill_holes_matches_scipy() -> None:
    for seed in range(6):
        mask = _blobs(seed, (36, 41, 29), level=0.48)  # dense: many enclosed holes
        ref = ndimage.binary_fill_holes(mask)
        assert (ref & ~mask).sum() > 0
        np.testing.assert_array_equal(fill_holes(mask), ref)
        plane = mask[:, :, 10]
        np.testing.assert_array_equal(fill_holes(plane), ndimage.binary_fill_holes(plane))
    assert not fill_holes(np.zeros((3, 4, 5), bool)).any()


def test_fill_holes_on_the_demo_brain() -> None:
    """The real template's brain with its ventricles cut out: the holes are refilled."""
    _, truth = load_demo()
    brain = truth.array > 0
    hollow = brain & ~(truth.array == 1)  # CSF out: ventricles become holes
    ref = ndimage.binary_fill_holes(hollow)
    out = fill_holes(hollow)
    np.testing.assert_array_equal(out, ref)
    assert out.sum() > hollow.sum()


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 1.0, 3.0)])
def test_distance_inside_matches_scipy(spacing: tuple[float, float, float]) -> None:
    for seed in range(4):
        mask = _blobs(seed, (33, 40, 27), level=0.47)
        ref = ndimage.distance_transform_edt(mask, sampling=spacing)
        out = distance_inside(mask, spacing)
        assert out.shape == mask.shape and out.dtype == np.float32
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
        assert (out[~mask] == 0).all() and out.max() > 2 * min(spacing)
    assert not distance_inside(np.zeros((3, 3, 3), bool), (1.0, 1.0, 1.0)).any()
    with pytest.raises(ParameterError, match="spacing"):
        distance_inside(np.ones((3, 3, 3), bool), (1.0, 1.0))


def _scipy_components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    ref, _ = ndimage.label(mask, ndimage.generate_binary_structure(3, _RANK[connectivity]))
    sizes = np.bincount(ref.ravel())
    sizes[0] = 0
    return ref, sizes


@pytest.mark.parametrize("connectivity", [6, 26])
def test_component_rules_in_the_box_match_the_whole_array(connectivity: int) -> None:
    """The clean-ups label only the mask's box: the same voxels as the rules computed by
    scipy on the whole array, also where the mask meets the array's edge, with seeds
    outside the mask's box, on ties of equal size (first in C order wins), and empty."""
    rng = np.random.default_rng(7)
    for seed in range(5):
        mask = np.zeros((50, 44, 38), bool)
        mask[8:40, 5:44, 3:30] = _blobs(seed, (32, 39, 27))  # touches one face of the array
        seeds = rng.random(mask.shape) < 0.002
        seeds[0, 0, 0] = True  # outside the mask's box
        faces, face_sizes = _scipy_components(mask, 6)  # the largest: face-connected
        np.testing.assert_array_equal(largest_component(mask), faces == np.argmax(face_sizes))
        ref, sizes = _scipy_components(mask, connectivity)
        small = (sizes > 0) & (sizes < 20)
        np.testing.assert_array_equal(small_components(mask, 20, connectivity), small[ref])
        keep = np.zeros(sizes.size, bool)
        keep[np.unique(ref[seeds])] = True
        keep[0] = False
        np.testing.assert_array_equal(components_holding(mask, seeds, connectivity),
                                      keep[ref] | seeds)
    tie = np.zeros((9, 9, 9), bool)
    tie[6:8, 6:8, 6:8] = tie[1:3, 1:3, 1:3] = True  # two cubes of 8 voxels
    first = largest_component(tie)
    assert first[1, 1, 1] and not first[6, 6, 6]
    empty = np.zeros((4, 5, 6), bool)
    assert not largest_component(empty).any() and not small_components(empty, 5).any()
    np.testing.assert_array_equal(components_holding(empty, tie[:4, :5, :6]), tie[:4, :5, :6])
