"""Canonical orientation: flips and permutations never move a voxel in world space."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.volume import (
    BRAIN_TISSUE_LABELS,
    Label,
    LabelMap,
    LabelTable,
    Volume,
    axcodes,
    canonicalize,
)


def _reorient(array, affine, perm, flips):
    """Apply an axis permutation and flips to (array, affine) consistently."""
    out = np.transpose(array, perm)
    aff = affine[:, [*perm, 3]].copy()
    for ax, flip in enumerate(flips):
        if flip:
            out = np.flip(out, axis=ax)
            n = out.shape[ax]
            aff[:3, 3] = aff[:3, 3] + aff[:3, ax] * (n - 1)
            aff[:3, ax] = -aff[:3, ax]
    return np.ascontiguousarray(out), aff


def _rotation(angles):
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@settings(max_examples=60, deadline=None)
@given(
    perm=st.permutations([0, 1, 2]),
    flips=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    spacing=st.tuples(*[st.floats(0.3, 4.0)] * 3),
    angles=st.tuples(*[st.floats(-0.6, 0.6)] * 3),
    origin=st.tuples(*[st.floats(-200, 200)] * 3),
)
def test_any_flip_or_permutation_loads_to_the_same_canonical_array(
    perm, flips, spacing, angles, origin
):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 1000, size=(5, 6, 7)).astype(np.int16)
    affine = np.eye(4)
    affine[:3, :3] = _rotation(angles) @ np.diag(spacing)
    affine[:3, 3] = origin
    reference = Volume.from_file_array(array, affine)

    moved, moved_affine = _reorient(array, affine, list(perm), flips)
    vol = Volume.from_file_array(moved, moved_affine)

    np.testing.assert_array_equal(vol.array, reference.array)
    np.testing.assert_allclose(vol.affine, reference.affine, atol=1e-9)
    # Every voxel keeps its world position: check a few explicitly.
    for ijk in itertools.product([0, 2], [0, 5], [1, 6]):
        world = affine[:3, :3] @ np.array(ijk) + affine[:3, 3]
        back = np.rint(vol.world_to_voxel(world)).astype(int)
        assert vol.array[tuple(back)] == array[ijk]
    # ...and the source geometry takes the canonical array back to the file's order.
    np.testing.assert_array_equal(vol.source.to_source(vol.array), moved)


@pytest.mark.parametrize(
    ("diag", "codes"),
    [((1, 1, 1), ("R", "A", "S")), ((-1, -1, 1), ("L", "P", "S")), ((-1, 1, -1), ("L", "A", "I"))],
)
def test_canonicalize_reaches_ras(diag, codes):
    affine = np.diag([*diag, 1.0])
    assert axcodes(affine) == codes
    arr = np.arange(24).reshape(2, 3, 4)
    out, new_affine, _ = canonicalize(arr, affine)
    assert axcodes(new_affine) == ("R", "A", "S")
    # The voxel at file index (0,0,0) has world position 0; find it in the output.
    idx = np.rint(np.linalg.inv(new_affine) @ [0, 0, 0, 1])[:3].astype(int)
    assert out[tuple(idx)] == arr[0, 0, 0]


def test_spacing_and_voxel_volume_from_affine():
    vol = Volume(np.zeros((3, 3, 3)), np.diag([0.5, 0.8, 2.5, 1.0]))
    assert vol.spacing == pytest.approx((0.5, 0.8, 2.5))
    assert vol.voxel_volume_ml == pytest.approx(0.5 * 0.8 * 2.5 / 1000)


def test_two_dimensional_array_becomes_one_slice():
    vol = Volume(np.ones((4, 5)), np.eye(4))
    assert vol.shape == (4, 5, 1)


def test_singular_or_nonfinite_affine_is_rejected():
    with pytest.raises(ValueError, match="singular"):
        Volume(np.zeros((2, 2, 2)), np.diag([1.0, 0.0, 1.0, 1.0]))
    bad = np.eye(4)
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        Volume(np.zeros((2, 2, 2)), bad)


def test_grid_differences_are_described():
    a = Volume(np.zeros((4, 4, 4)), np.eye(4))
    b = Volume(np.zeros((4, 4, 5)), np.diag([1.0, 1.0, 2.0, 1.0]))
    diffs = a.grid_differences(b)
    assert any("shape" in d for d in diffs)
    assert any("spacing" in d for d in diffs)
    assert a.grid_differences(Volume(np.ones((4, 4, 4)), np.eye(4))) == []


def test_label_map_rejects_floats_and_negatives():
    with pytest.raises(ValueError, match="integers"):
        LabelMap(np.zeros((2, 2, 2), np.float32), np.eye(4))
    with pytest.raises(ValueError, match="negative"):
        LabelMap(-np.ones((2, 2, 2), np.int16), np.eye(4))


def test_brain_tissue_table_follows_brainweb():
    assert [BRAIN_TISSUE_LABELS.name(v) for v in range(4)] == [
        "Background", "CSF", "Gray matter", "White matter"]
    assert BRAIN_TISSUE_LABELS.foreground() == [1, 2, 3]


def test_label_table_json_round_trip_and_unknown_colours_are_stable():
    table = BRAIN_TISSUE_LABELS.with_label(Label(7, "Lesion", (255, 0, 0)))
    back = LabelTable.from_json(table.to_json())
    assert back == table
    assert back.color(42) == back.color(42)
    assert back.name(42) == "Label 42"


def test_label_counts_agree_with_unique_in_any_memory_order_and_type():
    rng = np.random.default_rng(3)
    arrays = [rng.integers(0, 5, (6, 7, 8)).astype(np.uint8),
              np.asfortranarray(rng.integers(0, 5, (6, 7, 8)).astype(np.int16)),
              rng.integers(0, 5, (8, 7, 6)).astype(np.int32).transpose(2, 0, 1),
              np.array([[[70000, 2, 2]]], np.int32),  # too high for a histogram
              np.zeros((3, 3, 3), np.uint8), np.zeros((0, 2, 2), np.uint8)]
    for array in arrays:
        values, counts = np.unique(array, return_counts=True)
        lm = LabelMap(array, np.eye(4))
        assert lm.counts() == {int(v): int(c) for v, c in zip(values, counts, strict=True)}
        assert lm.present_values() == [int(v) for v in values]
