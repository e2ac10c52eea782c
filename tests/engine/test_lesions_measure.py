"""Lesion instances and measurements: exact diameters on known shapes, geometry, contrast, files."""

from __future__ import annotations

import csv
import io
import json
import math
from itertools import combinations

import numpy as np
import pytest
from scipy import ndimage

from engine.core.errors import GeometryMismatchError, ParameterError, WriteError
from engine.core.volume import BRAIN_TISSUE_LABELS, Label, LabelMap, Volume
from engine.data.phantom import synthesize_phantom, toy_tissue_block
from engine.lesions import (
    FINDINGS_COLUMNS,
    Finding,
    findings_csv,
    lesion_instances,
    measure_lesions,
    slice_axis_closest_to_s,
    write_findings,
)

try:
    from tests.engine.dicom_factory import rotation
except ImportError:  # tests/engine is on sys.path (pytest "prepend" import mode)
    from dicom_factory import rotation  # type: ignore[no-redef]

SPACING = (0.8, 0.8, 3.0)
LESION_LABELS = BRAIN_TISSUE_LABELS.with_label(Label(4, "Lesion", (230, 30, 30)))


def ellipsoid(shape, centre, semi_mm, spacing=SPACING):
    """Voxels whose centres lie inside an axis-aligned ellipsoid (semi-axes in mm)."""
    grid = np.indices(shape, dtype=float)
    r2 = sum(((grid[a] - centre[a]) * spacing[a] / semi_mm[a]) ** 2 for a in range(3))
    return r2 <= 1.0 + 1e-9


def label_map(mask, affine=None, value=4):
    affine = np.diag([*SPACING, 1.0]) if affine is None else affine
    return LabelMap(np.where(mask, value, 0).astype(np.uint8), affine, labels=LESION_LABELS)


def image_for(labels, inside=200.0, outside=100.0):
    return Volume(np.where(labels.array == 4, inside, outside).astype(np.float32), labels.affine)


def brute_axial(mask, spacing, axis=2):
    """Longest in-slice centre-to-centre distance, slice by slice, by brute force."""
    best = (0.0, None)
    for k in range(mask.shape[axis]):
        pts = np.argwhere(np.take(mask, k, axis=axis)) * np.delete(np.array(spacing), axis)
        if len(pts) == 0:
            continue
        d = max((float(np.linalg.norm(p - q)) for p, q in combinations(pts, 2)), default=0.0)
        if d > best[0] + 1e-9:
            best = (d, k)
    return best


def brute_3d(mask, affine):
    pts = np.argwhere(mask) @ np.asarray(affine)[:3, :3].T
    d2 = ((pts[:, None] - pts[None]) ** 2).sum(-1)
    return float(np.sqrt(d2.max()))


def ends_mm(ends, affine):
    a, b = (np.asarray(affine)[:3, :3] @ np.asarray(p) for p in ends)
    return a, b


# ---------------------------------------------------------------------------
# Known shapes
# ---------------------------------------------------------------------------
def test_ellipsoid_at_anisotropic_spacing_is_measured_exactly():
    mask = ellipsoid((40, 30, 9), (20, 15, 4), (8.0, 4.8, 6.0))
    labels = label_map(mask)
    (f,) = measure_lesions(lesion_instances(labels), image_for(labels))
    assert f.id == 1 and f.voxel_count == int(mask.sum())
    assert f.volume_ml == pytest.approx(mask.sum() * 0.8 * 0.8 * 3.0 / 1000)
    # the voxelised volume is close to the analytic one (4/3 pi abc)
    assert f.volume_ml == pytest.approx(4 / 3 * math.pi * 8.0 * 4.8 * 6.0 / 1000, rel=0.15)
    assert f.voxel_centroid == pytest.approx((20, 15, 4))
    assert (f.slice_axis, f.slice_index, f.slice_tilt_deg) == (2, 4, 0.0)
    assert f.axial_diameter_mm == pytest.approx(16.0, abs=1e-9)          # 2 x 8 mm along i
    assert f.perpendicular_diameter_mm == pytest.approx(9.6, abs=1e-9)   # 2 x 4.8 mm along j
    assert f.diameter_3d_mm == pytest.approx(16.0, abs=1e-9)
    # the end points are where they should be, and the two diameters are perpendicular
    a, b = ends_mm(f.axial_diameter_ends, labels.affine)
    p, q = ends_mm(f.perpendicular_diameter_ends, labels.affine)
    assert sorted([f.axial_diameter_ends[0][0], f.axial_diameter_ends[1][0]]) == [10.0, 30.0]
    assert np.linalg.norm(b - a) == pytest.approx(16.0)
    assert np.linalg.norm(q - p) == pytest.approx(9.6)
    assert abs(np.dot(b - a, q - p)) < 1e-9
    assert all(e[2] == 4.0 for e in (*f.axial_diameter_ends, *f.perpendicular_diameter_ends))
    assert f.equivalent_diameter_mm == pytest.approx(
        (6 * f.volume_ml * 1000 / math.pi) ** (1 / 3))


def test_sphere_with_a_thick_slice_axis():
    mask = ellipsoid((24, 24, 7), (12, 12, 3), (4.8, 4.8, 4.8))
    labels = label_map(mask)
    (f,) = measure_lesions(lesion_instances(labels), image_for(labels))
    assert np.unique(np.argwhere(mask)[:, 2]).tolist() == [2, 3, 4]  # +-3 mm of 4.8 mm
    assert f.slice_index == 3
    assert f.axial_diameter_mm == pytest.approx(9.6, abs=1e-9)
    assert f.perpendicular_diameter_mm == pytest.approx(9.6, abs=1e-9)
    assert f.diameter_3d_mm == pytest.approx(9.6, abs=1e-9)


def test_cuboid_diameters_follow_the_diagonals():
    mask = np.zeros((20, 16, 8), bool)
    mask[2:13, 3:8, 1:6] = True  # centre extents 8.0 x 3.2 x 12.0 mm
    labels = label_map(mask)
    (f,) = measure_lesions(lesion_instances(labels), image_for(labels))
    w, h, d = 10 * 0.8, 4 * 0.8, 4 * 3.0
    diag = math.hypot(w, h)
    assert f.axial_diameter_mm == pytest.approx(diag, abs=1e-9)
    # the longest chord at right angles to a rectangle's diagonal: h * diag / w, through the centre
    assert f.perpendicular_diameter_mm == pytest.approx(h * diag / w, abs=1e-9)
    p, q = ends_mm(f.perpendicular_diameter_ends, labels.affine)
    centre = labels.affine[:3, :3] @ np.array([7.0, 5.0, 3.0])
    assert (p + q) / 2 == pytest.approx(centre)
    assert f.slice_index == 3  # every slice ties: the one through the centroid
    assert f.diameter_3d_mm == pytest.approx(math.sqrt(w * w + h * h + d * d), abs=1e-9)


def test_irregular_lesion_matches_brute_force():
    rng = np.random.default_rng(3)
    noise = ndimage.gaussian_filter(rng.normal(size=(22, 20, 8)), 2.0)
    mask = ellipsoid((22, 20, 8), (11, 10, 4), (7.0, 6.0, 9.0)) & (noise > -0.02)
    labels = label_map(mask)
    instances = lesion_instances(labels, connectivity=6)
    biggest = instances == 1
    (f, *_) = measure_lesions(instances, image_for(labels))
    diameter, k = brute_axial(biggest, SPACING)
    assert f.axial_diameter_mm == pytest.approx(diameter, abs=1e-9)
    assert f.slice_index == k
    assert f.diameter_3d_mm == pytest.approx(brute_3d(biggest, labels.affine), abs=1e-9)
    a, b = ends_mm(f.axial_diameter_ends, labels.affine)
    p, q = ends_mm(f.perpendicular_diameter_ends, labels.affine)
    assert np.linalg.norm(q - p) == pytest.approx(f.perpendicular_diameter_mm)
    assert abs(np.dot((b - a) / np.linalg.norm(b - a), q - p)) < 1e-9
    # the caliper chord is no longer than the slice's width across the long axis
    pts = np.argwhere(biggest[:, :, k]) * np.array(SPACING[:2])
    u = (b - a)[:2] / np.linalg.norm(b - a)
    width = np.ptp(pts @ np.array([-u[1], u[0]]))
    assert 0 < f.perpendicular_diameter_mm <= width + 1e-9


# ---------------------------------------------------------------------------
# Geometry: flips, translation, oblique grids
# ---------------------------------------------------------------------------
def test_world_centroid_through_flipped_permuted_translated_affine():
    # file voxel order: axis 0 runs posterior, axis 1 runs left, axis 2 superior
    file_affine = np.array([[0.0, -0.8, 0.0, 31.5],
                            [-0.8, 0.0, 0.0, -12.25],
                            [0.0, 0.0, 3.0, -48.0],
                            [0.0, 0.0, 0.0, 1.0]])
    centre_file = (17, 12, 3)
    mask = ellipsoid((30, 26, 8), centre_file, (4.8, 8.0, 6.0), spacing=(0.8, 0.8, 3.0))
    vol = Volume.from_file_array(np.where(mask, 4, 0).astype(np.uint8), file_affine)
    assert vol.axcodes == ("R", "A", "S")
    labels = LabelMap(vol.array, vol.affine, labels=LESION_LABELS)
    (f,) = measure_lesions(lesion_instances(labels), image_for(labels))
    expected = file_affine @ np.array([*centre_file, 1.0])
    assert f.world_centroid_mm == pytest.approx(tuple(expected[:3]), abs=1e-9)
    # the long axis runs along file axis 1 = the R-L axis
    assert f.axial_diameter_mm == pytest.approx(16.0, abs=1e-9)
    assert f.perpendicular_diameter_mm == pytest.approx(9.6, abs=1e-9)
    a, b = ends_mm(f.axial_diameter_ends, labels.affine)
    assert abs((b - a)[0]) == pytest.approx(16.0)


def test_in_plane_rotation_changes_nothing_but_the_centroid():
    mask = ellipsoid((40, 30, 9), (20, 15, 4), (8.0, 4.8, 6.0))
    rotated = np.eye(4)
    rotated[:3, :3] = rotation(az_deg=30) @ np.diag(SPACING)
    rotated[:3, 3] = (5.0, -7.0, 11.0)
    labels = label_map(mask, rotated)
    (f,) = measure_lesions(lesion_instances(labels), image_for(labels))
    assert (f.slice_axis, f.slice_tilt_deg) == (2, 0.0)
    assert f.axial_diameter_mm == pytest.approx(16.0, abs=1e-9)
    assert f.perpendicular_diameter_mm == pytest.approx(9.6, abs=1e-9)
    assert f.world_centroid_mm == pytest.approx(tuple(rotated[:3, :3] @ (20, 15, 4) + (5, -7, 11)))


@pytest.mark.parametrize(("tilt", "axis"), [(20.0, 2), (70.0, 1)])
def test_oblique_grid_measures_in_the_slices_closest_to_axial(tilt, axis):
    affine = np.eye(4)
    affine[:3, :3] = rotation(ax_deg=tilt) @ np.diag(SPACING)
    assert slice_axis_closest_to_s(affine) == (axis, pytest.approx(min(tilt, 90 - tilt)))
    mask = ellipsoid((40, 30, 9), (20, 15, 4), (8.0, 4.8, 6.0))
    labels = label_map(mask, affine)
    (f,) = measure_lesions(lesion_instances(labels), image_for(labels))
    assert f.slice_axis == axis
    assert f.slice_tilt_deg == pytest.approx(min(tilt, 90 - tilt))
    if axis == 2:  # the acquired slices, tilted: the same in-plane ellipse
        assert f.axial_diameter_mm == pytest.approx(16.0, abs=1e-9)
        assert f.perpendicular_diameter_mm == pytest.approx(9.6, abs=1e-9)
    else:  # slices of constant j: the i-k ellipse (16 mm by 12 mm)
        diameter, k = brute_axial(mask, SPACING, axis=1)
        assert (f.axial_diameter_mm, f.slice_index) == (pytest.approx(diameter), k)
        assert f.axial_diameter_mm == pytest.approx(16.0, abs=1e-9)
        assert f.perpendicular_diameter_mm == pytest.approx(12.0, abs=1e-9)
    assert f.diameter_3d_mm == pytest.approx(16.0, abs=1e-9)


def test_sheared_grid_uses_true_in_plane_distances():
    affine = np.diag([*SPACING, 1.0])
    affine[0, 1] = 0.4  # j steps move 0.4 mm along R too (in-plane shear)
    mask = np.zeros((10, 10, 3), bool)
    mask[2, 2, 1] = mask[2, 7, 1] = True
    mask[2, 3:7, 1] = True
    labels = label_map(mask, affine)
    (f,) = measure_lesions(lesion_instances(labels), image_for(labels))
    assert f.axial_diameter_mm == pytest.approx(5 * math.hypot(0.4, 0.8), abs=1e-9)
    assert f.perpendicular_diameter_mm == 0.0
    assert f.diameter_3d_mm == pytest.approx(f.axial_diameter_mm)


# ---------------------------------------------------------------------------
# Instances
# ---------------------------------------------------------------------------
def test_touching_lesions_merge_with_26_connectivity_only():
    mask = np.zeros((16, 16, 6), bool)
    mask[2:5, 2:5, 1:3] = True        # 18 voxels
    mask[5:7, 5:7, 3:5] = True        # 8 voxels, touching the first at one corner only
    labels = label_map(mask)
    inst26 = lesion_instances(labels)
    inst6 = lesion_instances(labels, connectivity=6)
    assert inst26.dtype == np.int32 and inst26.max() == 1
    assert inst6.max() == 2
    assert (inst6 == 1).sum() == 18 and (inst6 == 2).sum() == 8
    mask[5:7, 5:7, 3:5] = False
    mask[10:14, 10:14, 1:4] = True   # 48 voxels, apart: the larger is lesion 1
    inst = lesion_instances(label_map(mask))
    assert inst.max() == 2 and (inst == 1).sum() == 48 and (inst == 2).sum() == 18
    found = measure_lesions(inst, image_for(label_map(mask)))
    assert [f.voxel_count for f in found] == [48, 18]


def test_other_labels_and_the_lesion_value():
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[1:3, 1:3, 1] = 4
    arr[5:7, 5:7, 2] = 3
    labels = LabelMap(arr, np.eye(4), labels=LESION_LABELS)
    assert lesion_instances(labels).max() == 1
    assert (lesion_instances(labels, lesion_value=3) == 1).sum() == 4


def test_empty_map_gives_no_findings():
    labels = label_map(np.zeros((6, 6, 3), bool))
    instances = lesion_instances(labels)
    assert instances.shape == (6, 6, 3) and not instances.any()
    assert measure_lesions(instances, image_for(labels)) == []


def test_single_voxel_lesion():
    mask = np.zeros((5, 5, 5), bool)
    mask[2, 2, 2] = True
    labels = label_map(mask)
    (f,) = measure_lesions(lesion_instances(labels), image_for(labels))
    assert (f.axial_diameter_mm, f.perpendicular_diameter_mm, f.diameter_3d_mm) == (0, 0, 0)
    assert f.volume_ml == pytest.approx(0.8 * 0.8 * 3 / 1000)


# ---------------------------------------------------------------------------
# Contrast, tissue, confidence
# ---------------------------------------------------------------------------
def test_contrast_shell_leaves_out_other_lesions_and_far_voxels():
    spacing = (1.0, 1.0, 1.0)
    shape = (40, 40, 20)
    lesion = ellipsoid(shape, (12, 20, 10), (3.0, 3.0, 3.0), spacing)
    other = ellipsoid(shape, (19, 20, 10), (2.0, 2.0, 2.0), spacing)  # 2 mm gap: in the shell
    arr = np.zeros(shape, np.uint8)
    arr[lesion | other] = 4
    labels = LabelMap(arr, np.eye(4), labels=LESION_LABELS)
    inst = lesion_instances(labels, connectivity=6)
    dist = ndimage.distance_transform_edt(~lesion)
    values = np.full(shape, 100.0, np.float32)
    values[lesion] = 250.0
    values[other] = 1000.0           # must not count
    values[dist > 3.0] = 5000.0      # outside the 3 mm shell: must not count
    values[other] = 1000.0           # (the other lesion lies 2 mm away)
    (big, small) = measure_lesions(inst, Volume(values, np.eye(4)))
    assert big.voxel_count == int(lesion.sum())
    assert big.mean_intensity == pytest.approx(250.0)
    assert big.shell_mean_intensity == pytest.approx(100.0)
    assert big.contrast_ratio == pytest.approx(2.5)
    assert big.contrast_difference == pytest.approx(150.0)
    assert big.tissue is None and big.confidence is None
    assert small.shell_mean_intensity > 100.0  # its shell reaches the far, bright voxels


def test_tissue_and_confidence_on_a_phantom_with_painted_lesions():
    image, truth = synthesize_phantom("t1", noise=0.02, inu=0.0, seed=1,
                                      block=toy_tissue_block((48, 48, 24)))
    labels_arr = truth.array.copy()
    values = image.array.copy()
    lesion_a = ellipsoid(labels_arr.shape, (24, 24, 12), (3.0, 3.0, 3.0), image.spacing)
    lesion_b = ellipsoid(labels_arr.shape, (24, 31, 12), (1.5, 1.5, 1.5), image.spacing)
    assert (truth.array[lesion_a | lesion_b] == 3).all()  # both inside white matter
    labels_arr[lesion_a | lesion_b] = 4
    values[lesion_a | lesion_b] *= 0.5  # T1-dark lesions
    labels = LabelMap(labels_arr, truth.affine, labels=LESION_LABELS)
    prob = np.where(lesion_a, 0.9, np.where(lesion_b, 0.6, 0.0))
    found = measure_lesions(lesion_instances(labels), image.with_array(values),
                            tissue=truth, probability=prob)
    assert [f.voxel_count for f in found] == [int(lesion_a.sum()), int(lesion_b.sum())]
    assert [f.tissue for f in found] == ["White matter", "White matter"]
    assert [f.confidence for f in found] == [pytest.approx(0.9), pytest.approx(0.6)]
    for f in found:
        assert f.contrast_ratio == pytest.approx(0.5, abs=0.05)
        assert f.contrast_difference < 0


# ---------------------------------------------------------------------------
# Bad input and files
# ---------------------------------------------------------------------------
def test_bad_input_raises_typed_errors():
    labels = label_map(np.zeros((6, 6, 3), bool))
    image = image_for(labels)
    with pytest.raises(ParameterError, match="connectivity"):
        lesion_instances(labels, connectivity=8)
    with pytest.raises(ParameterError, match="shape"):
        measure_lesions(np.zeros((6, 6, 4), np.int32), image)
    with pytest.raises(ParameterError, match="integers"):
        measure_lesions(np.zeros((6, 6, 3), np.float32), image)
    other = LabelMap(labels.array, np.diag([1.0, 1.0, 2.0, 1.0]))
    with pytest.raises(GeometryMismatchError):
        measure_lesions(other, image)
    with pytest.raises(ParameterError, match="shell"):
        measure_lesions(labels.array, image, shell_mm=0)
    with pytest.raises(ParameterError, match="lesion_instances"):
        measure_lesions(labels, image)  # tissue 1-3 would be taken for lesions


def test_write_findings_json_and_csv(tmp_path):
    mask = ellipsoid((40, 30, 9), (20, 15, 4), (8.0, 4.8, 6.0))
    mask |= ellipsoid((40, 30, 9), (4, 4, 4), (2.4, 2.4, 3.0))
    labels = label_map(mask)
    found = measure_lesions(lesion_instances(labels), image_for(labels))
    paths = write_findings(found, tmp_path, stem="case1")
    assert [p.name for p in paths] == ["case1.json", "case1.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case1.csv", "case1.json"]
    doc = json.loads(paths[0].read_text())
    assert doc["n_lesions"] == 2 and doc["units"]["volume"] == "mL"
    assert doc["findings"][0]["axial_diameter_mm"] == pytest.approx(16.0)
    assert doc["findings"][0]["confidence"] is None
    assert Finding.from_json(doc["findings"][1]) == found[1]
    with paths[1].open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == FINDINGS_COLUMNS
    assert {"volume_ml", "axial_diameter_mm", "centroid_R_mm"} <= set(rows[0])
    assert float(rows[0]["perpendicular_diameter_mm"]) == pytest.approx(9.6)
    assert rows[1]["id"] == "2" and rows[1]["tissue"] == "" and rows[1]["confidence"] == ""
    assert float(rows[1]["volume_ml"]) == pytest.approx(found[1].volume_ml, rel=1e-5)
    with pytest.raises(WriteError):
        write_findings(found, tmp_path / "missing")
    write_findings([], tmp_path)
    assert json.loads((tmp_path / "findings.json").read_text())["findings"] == []
    assert (tmp_path / "findings.csv").read_text().count("\n") == 1


def test_findings_csv_with_an_extra_column():
    mask = ellipsoid((40, 30, 9), (20, 15, 4), (8.0, 4.8, 6.0))
    mask |= ellipsoid((40, 30, 9), (4, 4, 4), (2.4, 2.4, 3.0))
    labels = label_map(mask)
    found = measure_lesions(lesion_instances(labels), image_for(labels))
    rows = list(csv.reader(io.StringIO(findings_csv(found, extra_columns={
        "status": ["accepted", None]}))))
    assert rows[0] == [*FINDINGS_COLUMNS, "status"]
    assert [r[-1] for r in rows[1:]] == ["accepted", ""]
    assert rows[1][:-1] == list(csv.reader(io.StringIO(findings_csv(found))))[1]
    with pytest.raises(ParameterError, match="2 findings"):
        findings_csv(found, extra_columns={"status": ["accepted"]})
    with pytest.raises(ParameterError, match="already"):
        findings_csv(found, extra_columns={"id": [1, 2]})
