"""NRRD (3D Slicer, ITK) and MGH/MGZ (FreeSurfer) images: read onto the same world grid as
the NIfTI file of the same scan, checked before reading, refused with one-line errors.

The scan is nibabel's ``anatomical.nii`` (a real T1, 2 mm, 33 x 41 x 25), written again
in each format from its own voxels and geometry."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest

from engine.cli import main
from engine.core.errors import InvalidImageError, TruncatedFileError, UnsupportedFormatError
from engine.core.volume import LabelMap
from engine.io import detect_format, load, load_labels
from engine.io.nrrd_volume import SPACES
from engine.io.seg_nrrd import write_seg_nrrd

ANATOMICAL = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"
TEST_MGZ = Path(nib.__file__).parent / "tests" / "data" / "test.mgz"


def _rotation(degrees: float) -> np.ndarray:
    """A rotation about an oblique axis: an image acquired off the scanner's axes."""
    axis = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
    t = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    r = np.eye(4)
    r[:3, :3] = np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k
    return r


def _scan(oblique: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The scan's voxels in its file's order and its affine (RAS), optionally rotated."""
    img = nib.load(str(ANATOMICAL))
    affine = img.affine @ np.eye(4) if not oblique else _rotation(25.0) @ img.affine
    return np.asarray(img.dataobj), affine


def _write_nrrd(path: Path, data: np.ndarray, affine: np.ndarray, space: str = "LPS",
                **header: object) -> Path:
    flip = SPACES[space.lower()]  # its own inverse: RAS <-> that space
    fields = {"space": space, "space directions": (flip @ affine[:3, :3]).T,
              "space origin": flip @ affine[:3, 3], "encoding": "raw", **header}
    nrrd.write(str(path), data, fields, index_order="F")
    return path


@pytest.mark.parametrize("space", ["LPS", "RAS", "LAS", "left-posterior-superior"])
@pytest.mark.parametrize("oblique", [False, True], ids=["axial", "oblique"])
def test_an_nrrd_lands_where_the_nifti_of_the_same_scan_does(tmp_path, space, oblique):
    data, affine = _scan(oblique)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "scan.nii.gz")
    path = _write_nrrd(tmp_path / "scan.nrrd", data, affine, space,
                       encoding="gzip" if oblique else "raw")
    assert detect_format(path) == "nrrd"
    ref, vol = load(tmp_path / "scan.nii.gz"), load(path)
    assert vol.shape == ref.shape and vol.axcodes == ref.axcodes
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-4)
    np.testing.assert_array_equal(vol.array, ref.array)
    assert vol.metadata["geometry"] == "file" and vol.metadata["format"] == "nrrd"
    assert not vol.metadata["warnings"]


def test_a_detached_header_reads_its_data_file(tmp_path):
    data, affine = _scan()
    path = tmp_path / "scan.nhdr"
    nrrd.write(str(path), data, {"space": "LPS", "encoding": "gzip",
                                 "space directions": (SPACES["lps"] @ affine[:3, :3]).T,
                                 "space origin": SPACES["lps"] @ affine[:3, 3]},
               detached_header=True, index_order="F")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nhdr", "scan.raw.gz"]
    np.testing.assert_array_equal(load(path).array, load(ANATOMICAL).array)
    (tmp_path / "scan.raw.gz").unlink()
    with pytest.raises(TruncatedFileError, match=r"scan\.nhdr"):
        load(path)


def test_without_a_patient_space_the_grid_is_assumed_and_said(tmp_path):
    data, _ = _scan()
    nrrd.write(str(tmp_path / "plain.nrrd"), data, {"spacings": [2.0, 2.0, 3.0]},
               index_order="F")
    vol = load(tmp_path / "plain.nrrd")
    assert vol.metadata["geometry"] == "assumed" and vol.spacing == (2.0, 2.0, 3.0)
    assert "no patient orientation" in vol.metadata["warnings"][0]
    nrrd.write(str(tmp_path / "scanner.nrrd"), data,
               {"space": "scanner-xyz", "space directions": np.diag([1.0, 1.0, 1.0])},
               index_order="F")
    vol = load(tmp_path / "scanner.nrrd")
    assert vol.metadata["geometry"] == "assumed" and "'scanner-xyz'" in vol.metadata[
        "warnings"][0]


def test_a_list_axis_gives_its_first_item_with_a_warning(tmp_path):
    data, affine = _scan()
    stack = np.stack([data, data * 2], axis=0)  # two echoes, the list axis first
    flip = SPACES["lps"]
    directions = np.vstack([np.full((1, 3), np.nan), (flip @ affine[:3, :3]).T])
    nrrd.write(str(tmp_path / "echoes.nrrd"), stack,
               {"space": "LPS", "space directions": directions,
                "space origin": flip @ affine[:3, 3],
                "kinds": ["list", "domain", "domain", "domain"]}, index_order="F")
    first = load(tmp_path / "echoes.nrrd")
    np.testing.assert_array_equal(first.array, load(ANATOMICAL).array)
    assert first.metadata["warnings"] == ["list axis of 2 items: using item 0 only"]
    second = load(tmp_path / "echoes.nrrd", volume_index=1)
    np.testing.assert_array_equal(second.array, 2 * first.array)
    with pytest.raises(InvalidImageError, match="item 2 asked"):
        load(tmp_path / "echoes.nrrd", volume_index=2)


def test_bad_nrrd_files_are_refused_with_one_line(tmp_path):
    data, affine = _scan()
    path = _write_nrrd(tmp_path / "cut.nrrd", data, affine)
    raw = path.read_bytes()
    path.write_bytes(raw[:-500])
    with pytest.raises(TruncatedFileError, match="truncated"):
        load(path)
    # a header claiming 500 GB is refused before anything is allocated
    (tmp_path / "huge.nrrd").write_bytes(b"NRRD0004\ntype: float\ndimension: 3\n"
                                         b"sizes: 5000 5000 5000\nencoding: raw\n\n")
    with pytest.raises(InvalidImageError, match="over 8 GiB"):
        load(tmp_path / "huge.nrrd")
    nrrd.write(str(tmp_path / "slice.nrrd"), data[:, :, 0],
               {"space": "LPS", "space directions": [[2.0, 0, 0], [0, 2.0, 0]]},
               index_order="F")
    with pytest.raises(InvalidImageError, match="2 spatial axes"):
        load(tmp_path / "slice.nrrd")
    _write_nrrd(tmp_path / "flat.nrrd", data, np.diag([2.0, 2.0, 0.0, 1.0]))
    with pytest.raises(InvalidImageError, match="singular"):
        load(tmp_path / "flat.nrrd")
    _write_nrrd(tmp_path / "nan.nrrd", np.full(data.shape, np.nan, np.float32), affine)
    with pytest.raises(InvalidImageError, match="NaN"):
        load(tmp_path / "nan.nrrd")
    (tmp_path / "junk.nrrd").write_text("a text file named .nrrd\n")
    with pytest.raises(UnsupportedFormatError, match="not an NRRD file"):
        load(tmp_path / "junk.nrrd")
    for name in ("cut.nrrd", "huge.nrrd", "slice.nrrd"):
        status = main(["info", str(tmp_path / name)])
        assert status != 0


def test_a_slicer_segmentation_opens_as_labels_with_its_names(tmp_path):
    data, affine = _scan(oblique=True)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "scan.nii.gz")
    image = load(tmp_path / "scan.nii.gz")
    array = np.where(image.array > np.percentile(image.array, 70), 3, 0).astype(np.uint8)
    array[image.array > np.percentile(image.array, 95)] = 2
    write_seg_nrrd(LabelMap(array, image.affine, source=image.source),
                   tmp_path / "mask.seg.nrrd")
    labels = load_labels(tmp_path / "mask.seg.nrrd", reference=image)
    np.testing.assert_array_equal(labels.array, array)
    assert labels.labels.name(2) == "Gray matter" and labels.labels.name(3) == "White matter"
    # two layers (overlapping segments) cannot become one label map
    two = np.stack([array, array], axis=0)
    nrrd.write(str(tmp_path / "layers.seg.nrrd"), two,
               {"space": "LPS", "space directions": np.vstack(
                   [np.full((1, 3), np.nan), (SPACES["lps"] @ affine[:3, :3]).T]),
                "kinds": ["list", "domain", "domain", "domain"], "Segment0_LabelValue": "2",
                "Segment0_Name": "Gray matter", "Segment0_Layer": "0"}, index_order="F")
    with pytest.raises(InvalidImageError, match="2 layers"):
        load_labels(tmp_path / "layers.seg.nrrd")


def test_an_mgz_lands_where_the_nifti_of_the_same_scan_does(tmp_path):
    data, affine = _scan(oblique=True)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "scan.nii.gz")
    nib.save(nib.MGHImage(data.astype(np.float32), affine), tmp_path / "T1.mgz")
    nib.save(nib.MGHImage(data.astype(np.float32), affine), tmp_path / "T1.mgh")
    ref = load(tmp_path / "scan.nii.gz")
    for name in ("T1.mgz", "T1.mgh"):
        assert detect_format(tmp_path / name) == "mgh"
        vol = load(tmp_path / name)
        np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-4)
        np.testing.assert_array_equal(vol.array, ref.array)
        assert vol.metadata["geometry"] == "file" and not vol.metadata["warnings"]


def test_a_freesurfer_label_map_is_not_given_tissue_names(tmp_path, monkeypatch):
    """aseg.mgz's 2 and 3 are left cerebral white matter and cortex: calling them
    Delineo's gray and white matter would swap them; without FreeSurfer's lookup table
    they are named by value."""
    monkeypatch.delenv("FREESURFER_HOME", raising=False)
    aseg = np.zeros((20, 20, 20), np.int32)
    aseg[5:10, 5:10, 5:10], aseg[10:15, 5:10, 5:10], aseg[2:4, 2:4, 2:4] = 2, 3, 17
    nib.save(nib.MGHImage(aseg, np.eye(4)), tmp_path / "aseg.mgz")
    labels = load_labels(tmp_path / "aseg.mgz")
    assert [labels.labels.name(v) for v in (2, 3, 17)] == ["Label 2", "Label 3", "Label 17"]
    np.testing.assert_array_equal(np.unique(labels.array), [0, 2, 3, 17])


def test_bad_mgh_files_are_refused_and_frames_are_said(tmp_path):
    vol = load(TEST_MGZ)  # nibabel's own MGZ: 3 x 4 x 5, two frames
    assert vol.metadata["warnings"] == ["2 frames: using frame 0 only"]
    assert not np.array_equal(load(TEST_MGZ, volume_index=1).array, vol.array)
    raw = gzip.decompress(TEST_MGZ.read_bytes())
    (tmp_path / "cut.mgh").write_bytes(raw[:300])
    with pytest.raises(TruncatedFileError):
        load(tmp_path / "cut.mgh")
    (tmp_path / "cut.mgz").write_bytes(TEST_MGZ.read_bytes()[:300])
    with pytest.raises(TruncatedFileError):
        load(tmp_path / "cut.mgz")
    (tmp_path / "text.mgz").write_bytes(gzip.compress(b"not a volume at all"))
    with pytest.raises(UnsupportedFormatError, match="not an MGH"):
        load(tmp_path / "text.mgz")


def test_a_result_for_an_nrrd_lands_on_its_grid(tmp_path, capsys):
    """segment writes NIfTI labels in the NRRD's own voxel order and world geometry, so
    they overlay the NRRD in 3D Slicer voxel for voxel."""
    data, affine = _scan(oblique=True)
    path = _write_nrrd(tmp_path / "scan.nrrd", data, affine)
    out = tmp_path / "labels.nii.gz"
    assert main(["segment", str(path), "-o", str(out), "--method", "otsu", "--force",
                 "--device", "cpu"]) == 0
    written = nib.load(str(out))
    assert written.shape == data.shape
    np.testing.assert_allclose(written.affine, affine, atol=1e-4)
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    assert "33 x 41 x 25" in capsys.readouterr().out
