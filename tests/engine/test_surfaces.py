"""Label surfaces for the 3-D view: right place, closed, updated by blocks, picked by rays."""

from __future__ import annotations

import numpy as np
import pytest

from engine.surfaces import BLOCK, LabelSurfaces, ray_hit


def _ball(shape=(70, 60, 50), centre=(35, 30, 25), radius=15.0, value=1):
    i, j, k = np.indices(shape)
    lab = np.zeros(shape, np.uint8)
    lab[(i - centre[0]) ** 2 + (j - centre[1]) ** 2 + (k - centre[2]) ** 2 <= radius ** 2] = value
    return lab


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 0.8, 2.0)])
def test_a_ball_gives_a_surface_at_its_radius(spacing):
    lab = _ball()
    mesh = LabelSurfaces(lab, spacing).mesh(1)
    centre_mm = np.array([35, 30, 25]) * np.array(spacing)
    # In voxel units the surface lies at the ball's radius (15 voxels), within smoothing.
    r = np.linalg.norm((mesh.vertices - centre_mm) / np.array(spacing), axis=1)
    assert abs(np.median(r) - 15.0) < 0.8
    assert r.min() > 13.0 and r.max() < 16.5


def test_normals_are_unit_outward_and_in_millimetres():
    """A ball of radius 12 mm on 0.8 x 0.8 x 2 mm voxels: every vertex normal points away
    from the centre in mm. Taken in voxel units (before the spacing correction) they
    were off by a median of 21 degrees (up to 41)."""
    spacing = np.array([0.8, 0.8, 2.0])
    i, j, k = np.indices((50, 50, 30))
    centre = np.array([25.0, 25.0, 15.0])
    mm = np.stack([i, j, k], -1) * spacing - centre * spacing
    lab = (np.linalg.norm(mm, axis=-1) <= 12.0).astype(np.uint8)
    mesh = LabelSurfaces(lab, spacing).mesh(1)
    np.testing.assert_allclose(np.linalg.norm(mesh.normals, axis=1), 1.0, atol=1e-5)
    radial = mesh.vertices - centre * spacing
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    cos = (radial * mesh.normals).sum(axis=1)
    assert np.all(cos > 0) and np.median(cos) > 0.99


def test_the_pieces_of_the_blocks_meet_without_cracks():
    lab = _ball(shape=(80, 80, 80), centre=(40, 40, 40), radius=20.0)  # crosses 8 blocks
    mesh = LabelSurfaces(lab, (1.0, 1.0, 1.0)).mesh(1)
    # A closed surface: every edge is shared by two triangles once duplicate vertices
    # on block borders are merged.
    keys = np.round(mesh.vertices, 4)
    _, index = np.unique(keys, axis=0, return_inverse=True)
    faces = index.ravel()[mesh.faces] if index.ndim > 1 else index[mesh.faces]
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]),
                    axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)


def test_a_label_touching_the_volume_face_is_closed_there():
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[:, 5:15, 5:15] = 2  # runs through both x faces
    mesh = LabelSurfaces(lab, (1.0, 1.0, 1.0)).mesh(2)
    assert mesh.vertices[:, 0].min() < 0.0 and mesh.vertices[:, 0].max() > 19.0


def test_an_update_recomputes_only_the_touched_blocks_and_equals_a_rebuild():
    lab = _ball(shape=(96, 96, 64), centre=(48, 48, 32), radius=25.0, value=3)
    surf = LabelSurfaces(lab, (1.0, 1.0, 1.0))
    blocks = surf.blocks_touching(((5, 10), (5, 10), (5, 10)))
    assert blocks == [(0, 0, 0)]
    assert len(surf.blocks_touching(((30, 34), (30, 34), (30, 34)))) == 8  # at a corner
    lab[5:10, 5:10, 5:10] = 1  # a new label far from the ball
    changed = surf.update(((5, 10), (5, 10), (5, 10)), values=[1])
    # Only the touched block is recomputed: the new label and the ball's piece there.
    assert changed == [(1, (0, 0, 0)), (3, (0, 0, 0))]
    assert surf.piece((1, (0, 0, 0))) is not None
    fresh = LabelSurfaces(lab, (1.0, 1.0, 1.0))
    for value in (1, 3):
        a, b = surf.mesh(value), fresh.mesh(value)
        assert len(a.faces) == len(b.faces)
        np.testing.assert_allclose(np.sort(a.vertices, axis=0), np.sort(b.vertices, axis=0))
    lab[5:10, 5:10, 5:10] = 0  # erased again: the mesh of label 1 goes
    assert surf.update(((5, 10), (5, 10), (5, 10))) == [(1, (0, 0, 0)), (3, (0, 0, 0))]
    assert surf.piece((1, (0, 0, 0))) is None
    assert len(surf.mesh(1).faces) == 0
    assert BLOCK == 32


def test_decimation_keeps_the_shape_with_fewer_triangles():
    lab = _ball(shape=(80, 80, 80), centre=(40, 40, 40), radius=25.0)
    full = LabelSurfaces(lab, (1.0, 1.0, 1.0), step=1)
    coarse = LabelSurfaces(lab, (1.0, 1.0, 1.0), step=2)
    assert coarse.triangle_count() < 0.4 * full.triangle_count()
    r = np.linalg.norm(coarse.mesh(1).vertices - 40.0, axis=1)
    assert abs(np.median(r) - 25.0) < 1.0


def test_preview_surfaces_are_the_coarser_step_and_follow_updates():
    lab = _ball(shape=(80, 80, 80), centre=(40, 40, 40), radius=25.0, value=2)
    surf = LabelSurfaces(lab, (1.0, 1.0, 1.0), step=2, preview_step=4)
    alone = LabelSurfaces(lab, (1.0, 1.0, 1.0), step=4)
    # the preview is what marching at that step gives, the full surfaces are untouched
    assert surf.triangle_count(preview=True) == alone.triangle_count()
    assert surf.triangle_count() == LabelSurfaces(lab, (1.0, 1.0, 1.0), step=2).triangle_count()
    assert surf.triangle_count(preview=True) < 0.4 * surf.triangle_count()
    r = np.linalg.norm(surf.mesh(2, preview=True).vertices - 40.0, axis=1)
    assert abs(np.median(r) - 25.0) < 1.5
    # an edit: the preview changes with the full surface, and goes with it
    lab[5:15, 5:15, 5:15] = 1
    surf.update(((5, 15), (5, 15), (5, 15)), values=[1])
    assert len(surf.mesh(1, preview=True).faces) > 0 and len(surf.mesh(1).faces) > 0
    lab[5:15, 5:15, 5:15] = 0
    surf.update(((5, 15), (5, 15), (5, 15)))
    assert len(surf.mesh(1, preview=True).faces) == 0 and len(surf.mesh(1).faces) == 0
    # without a preview step there is no preview; a preview step must be coarser
    assert len(LabelSurfaces(lab, (1.0, 1.0, 1.0)).mesh(2, preview=True).faces) == 0
    with pytest.raises(ValueError, match="preview step"):
        LabelSurfaces(lab, (1.0, 1.0, 1.0), step=2, preview_step=2)


def test_a_ray_stops_at_the_first_visible_label():
    lab = np.zeros((30, 30, 30), np.uint8)
    lab[10:20, 10:20, 10:20] = 2
    lab[14:16, 14:16, 14:16] = 4
    spacing = (1.0, 1.0, 2.0)
    origin = np.array([15.0, -40.0, 30.0])  # in front (anterior is +y), mid height
    hit = ray_hit(lab, [2, 4], origin, np.array([0.0, 1.0, 0.0]), spacing)
    assert hit == (15, 10, 15)
    assert ray_hit(lab, [4], origin, np.array([0.0, 1.0, 0.0]), spacing) == (15, 14, 15)
    assert ray_hit(lab, [2], origin, np.array([0.0, -1.0, 0.0]), spacing) is None
    assert ray_hit(lab, [3], origin, np.array([0.0, 1.0, 0.0]), spacing) is None
