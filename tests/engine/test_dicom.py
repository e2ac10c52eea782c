"""Tests of the DICOM reader on real pydicom test files and on series written here."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from engine.core.errors import (
    DicomSeriesError,
    InvalidImageError,
    MissingDecoderError,
    NoImageFoundError,
    ParameterError,
    ReadError,
    TruncatedFileError,
    UnsupportedFormatError,
)
from engine.core.jobs import Cancelled, CancelToken
from engine.core.volume import Volume
from engine.io.dicom import DicomSeriesInfo, is_dicom_file, list_series, read_dicom

try:
    from tests.engine import dicom_factory as fac
except ImportError:  # tests/engine is on sys.path (pytest "prepend" import mode)
    import dicom_factory as fac  # type: ignore[no-redef]

ATOL_MM = 1e-3


def shipped(name: str) -> Path:
    """A pydicom test file that ships with the package (never downloaded)."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not shipped with this pydicom")
    return Path(path)


def assert_same_volume(got: Volume, expected: Volume, *, atol_value=0.0):
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.affine, expected.affine, atol=ATOL_MM)
    np.testing.assert_allclose(got.array, expected.array, atol=atol_value, rtol=0)


def world_of_pixel(ds, row, col):
    """RAS position of pixel (row, col) by the DICOM standard (C.7.6.2.1.1)."""
    ipp = np.array(ds.ImagePositionPatient, float)
    iop = np.array(ds.ImageOrientationPatient, float)
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    lps = ipp + iop[:3] * col_spacing * col + iop[3:] * row_spacing * row
    return lps * np.array([-1.0, -1.0, 1.0])


def value_at(vol: Volume, world):
    ijk = vol.world_to_voxel(world)
    idx = np.rint(ijk).astype(int)
    np.testing.assert_allclose(ijk, idx, atol=1e-3)
    return vol.array[tuple(idx)]


# ---------------------------------------------------------------------------
# Real files shipped with pydicom
# ---------------------------------------------------------------------------
def test_ct_small_is_in_hounsfield_units_at_the_right_place():
    path = shipped("CT_small.dcm")
    ds = pydicom.dcmread(path)
    vol = read_dicom(path)
    assert vol.modality == "CT"
    assert vol.shape == (128, 128, 1)
    assert vol.array.dtype == np.int16
    hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    # Back in file order the slice is the transposed pixel array ([column, row]).
    np.testing.assert_array_equal(vol.source.to_source(vol.array)[:, :, 0], hu.T)
    assert hu.min() < -800 and vol.array.min() == hu.min()  # intercept -1024 applied
    # Pixels land where the DICOM standard puts them (LPS -> RAS).
    for r, c in [(0, 0), (0, 127), (127, 0), (40, 90)]:
        assert value_at(vol, world_of_pixel(ds, r, c)) == hu[r, c]
    np.testing.assert_allclose(vol.spacing, (0.661468, 0.661468, 5.0), atol=1e-6)
    assert vol.metadata["units"] == "HU"
    assert vol.metadata["patient_position"] == "FFS"
    assert vol.metadata["manufacturer"].startswith("GE")
    assert vol.metadata["series_uid"] == ds.SeriesInstanceUID
    assert vol.metadata["n_slices"] == 1


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
    ],
)
def test_mr_small_encodings_agree(name):
    reference = read_dicom(shipped("MR_small.dcm"))
    vol = read_dicom(shipped(name))
    assert vol.modality == "MR"
    assert_same_volume(vol, reference)
    assert vol.metadata["warnings"] == []


def test_mr_small_matches_pydicom_pixels():
    path = shipped("MR_small.dcm")
    ds = pydicom.dcmread(path)
    vol = read_dicom(path)
    for r, c in [(0, 0), (10, 50), (63, 63)]:
        assert value_at(vol, world_of_pixel(ds, r, c)) == ds.pixel_array[r, c]


def test_jpeg_baseline_colour_file_loads_as_grey():
    vol = read_dicom(shipped("SC_rgb_jpeg_dcmtk.dcm"))
    assert vol.shape == (100, 100, 1)
    assert vol.array.dtype == np.float32
    assert vol.array.min() >= 0 and vol.array.max() <= 255
    assert any("colour" in w for w in vol.metadata["warnings"])
    assert any("geometry assumed" in w for w in vol.metadata["warnings"])
    assert vol.metadata["geometry"] == "assumed"


def test_jpeg2000_ct_slice_loads():
    vol = read_dicom(shipped("693_J2KI.dcm"))
    assert vol.shape == (512, 512, 1) and vol.modality == "CT"
    assert vol.array.min() < -900  # air in HU: intercept -1024 applied


def test_rtdose_legacy_multiframe_uses_grid_frame_offsets():
    path = shipped("rtdose.dcm")
    ds = pydicom.dcmread(path)
    vol = read_dicom(path)
    assert vol.shape == (10, 10, 15)
    np.testing.assert_allclose(vol.spacing, (10.0, 10.0, 5.0))
    ipp = np.array(ds.ImagePositionPatient, float)
    np.testing.assert_allclose(vol.affine[2, 3], ipp[2], atol=ATOL_MM)
    dose = ds.pixel_array * float(ds.DoseGridScaling)
    # Frame 14 lies 70 mm above frame 0 (GridFrameOffsetVector).
    world = world_of_pixel(ds, 3, 7) + np.array([0, 0, 70.0])
    assert value_at(vol, world) == pytest.approx(dose[14, 3, 7], rel=1e-6)


def test_inconsistent_enhanced_file_is_refused_with_a_reason():
    # liver_1frame.dcm is a SEG cut down to one frame but it kept 3 per-frame items.
    with pytest.raises(InvalidImageError, match="PerFrameFunctionalGroupsSequence") as err:
        read_dicom(shipped("liver_1frame.dcm"))
    assert "liver_1frame.dcm" in str(err.value)


def test_truncated_pydicom_file():
    with pytest.raises(TruncatedFileError, match="truncated") as err:
        read_dicom(shipped("MR_truncated.dcm"))
    assert "MR_truncated.dcm" in str(err.value)


def test_missing_decoder_names_the_package(monkeypatch):
    from pydicom.pixels.decoders import JPEG2000LosslessDecoder

    monkeypatch.setattr(JPEG2000LosslessDecoder, "_available", {})
    assert not JPEG2000LosslessDecoder.is_available
    with pytest.raises(MissingDecoderError) as err:
        read_dicom(shipped("MR_small_jp2klossless.dcm"))
    message = str(err.value)
    assert "pylibjpeg-openjpeg" in message and "JPEG 2000" in message
    assert "MR_small_jp2klossless.dcm" in message
    assert "\n" not in message


def test_missing_decoder_in_a_folder_is_reported_before_decoding(tmp_path, monkeypatch):
    from pydicom.pixels.decoders import JPEGLSLosslessDecoder

    shutil.copy(shipped("MR_small_jpeg_ls_lossless.dcm"), tmp_path / "a.dcm")
    monkeypatch.setattr(JPEGLSLosslessDecoder, "_available", {})
    assert len(list_series(tmp_path)) == 1  # listing needs no decoder
    with pytest.raises(MissingDecoderError, match="pylibjpeg-libjpeg"):
        read_dicom(tmp_path)


# ---------------------------------------------------------------------------
# Series written from a known volume
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(fac.orientations()))
def test_series_matches_known_volume(tmp_path, name):
    affine = fac.orientations()[name]
    data = fac.known_volume(seed=len(name))
    paths = fac.write_series(tmp_path, data, affine, seed=len(name))
    vol = read_dicom(tmp_path)
    expected = Volume.from_file_array(data.astype(np.int16), affine)
    assert vol.array.dtype == np.int16
    assert_same_volume(vol, expected)
    assert vol.axcodes == ("R", "A", "S")
    assert vol.metadata["warnings"] == []
    assert vol.metadata["n_slices"] == data.shape[2]
    assert vol.metadata["slice_spacing"] == pytest.approx(2.5, abs=1e-4)
    # Independent of the factory: every file's corner pixels by the DICOM standard.
    for path in paths:
        ds = pydicom.dcmread(path)
        for r, c in [(0, 0), (4, 0), (0, 5), (2, 3)]:
            assert value_at(vol, world_of_pixel(ds, r, c)) == ds.pixel_array[r, c]


@pytest.mark.parametrize("name", ["axial", "sagittal", "oblique"])
def test_series_matches_nibabel(tmp_path, name):
    affine = fac.orientations()[name]
    data = fac.known_volume(seed=7).astype(np.int16)
    fac.write_series(tmp_path / "dicom", data, affine)
    nii_path = tmp_path / "known.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), nii_path)
    nii = nib.as_closest_canonical(nib.load(nii_path))
    vol = read_dicom(tmp_path / "dicom")
    np.testing.assert_array_equal(vol.array, np.asanyarray(nii.dataobj))
    np.testing.assert_allclose(vol.affine, nii.affine, atol=ATOL_MM)


def test_ct_rescale_keeps_int16_hounsfield(tmp_path):
    data = fac.known_volume(seed=3, low=-1024, high=3000)
    affine = fac.orientations()["axial"]
    fac.write_series(tmp_path, data, affine, intercept=-1024, stored_dtype=np.uint16)
    vol = read_dicom(tmp_path)
    assert vol.array.dtype == np.int16
    assert_same_volume(vol, Volume.from_file_array(data, affine))
    assert vol.array.min() == data.min()


def test_per_slice_rescale_slopes(tmp_path):
    rng = np.random.default_rng(5)
    slopes = np.array([0.5, 1.25, 2.0, 0.75])
    inters = np.array([-10.0, 3.5, 0.0, 100.0])
    stored = rng.integers(0, 4000, size=(6, 5, 4))
    data = stored * slopes + inters
    affine = fac.orientations()["coronal"]
    fac.write_series(tmp_path, data, affine, slope=slopes, intercept=inters, modality="MR",
                     stored_dtype=np.uint16)
    vol = read_dicom(tmp_path)
    assert vol.array.dtype == np.float32
    assert_same_volume(vol, Volume.from_file_array(data, affine), atol_value=1e-3)


def test_shuffled_files_and_misleading_instance_numbers(tmp_path):
    data = fac.known_volume(shape=(6, 5, 9), seed=11)
    affine = fac.orientations()["axial"]
    paths = fac.write_series(tmp_path, data, affine, seed=2)
    numbers = [int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber) for p in paths]
    names = [p.name for p in paths]
    assert numbers != sorted(numbers) and names != sorted(names)  # the test means something
    assert_same_volume(read_dicom(tmp_path), Volume.from_file_array(data, affine))


def test_gantry_tilt_keeps_the_true_geometry(tmp_path, caplog):
    data = fac.known_volume(seed=4)
    affine = fac.sheared_affine(0.4)
    fac.write_series(tmp_path, data, affine)
    with caplog.at_level(logging.WARNING, logger="engine.io.dicom"):
        vol = read_dicom(tmp_path)
    assert_same_volume(vol, Volume.from_file_array(data, affine))
    assert any("gantry tilt" in w for w in vol.metadata["warnings"])
    assert vol.metadata["gantry_tilt_deg"] == pytest.approx(np.degrees(np.arctan(0.4 / 2.5)),
                                                            abs=0.01)
    assert "gantry tilt" in caplog.text


def test_enhanced_multiframe_with_per_frame_positions_and_rescale(tmp_path):
    rng = np.random.default_rng(8)
    n = 5
    slopes = np.array([1.0, 0.5, 2.0, 1.0, 0.25])
    inters = np.array([-1024.0, -1000.0, 0.0, -1024.0, 10.0])
    stored = rng.integers(-500, 3000, size=(6, 5, n))
    data = stored * slopes + inters
    affine = fac.orientations()["oblique"]
    path = fac.write_enhanced(tmp_path / "enhanced.dcm", data, affine, slopes=slopes,
                              intercepts=inters, frame_order=[3, 0, 4, 1, 2])
    info = list_series(path)
    assert len(info) == 1 and info[0].n_files == 1 and info[0].n_slices == n
    vol = read_dicom(path)
    assert_same_volume(vol, Volume.from_file_array(data, affine), atol_value=1e-3)
    assert vol.metadata["warnings"] == []


def test_legacy_multiframe_uses_spacing_and_warns(tmp_path):
    data = fac.known_volume(seed=9)
    affine = fac.orientations()["sagittal"]  # third axis along +normal, as the tag assumes
    path = fac.write_legacy_multiframe(tmp_path / "legacy.dcm", data, affine)
    vol = read_dicom(path)
    assert_same_volume(vol, Volume.from_file_array(data, affine))
    assert any("SpacingBetweenSlices" in w for w in vol.metadata["warnings"])


def test_single_slice_without_thickness_warns(tmp_path):
    data = fac.known_volume(shape=(6, 5, 1), seed=1)
    affine = fac.orientations()["axial"]
    (path,) = fac.write_series(tmp_path, data, affine, subfolders=False)
    ds = pydicom.dcmread(path)
    del ds.SliceThickness
    ds.save_as(path)
    vol = read_dicom(path)
    assert vol.shape == (6, 5, 1)
    assert vol.spacing[2] == pytest.approx(1.0)
    assert any("1 mm thickness assumed" in w for w in vol.metadata["warnings"])


def test_window_and_metadata(tmp_path):
    data = fac.known_volume(seed=2)
    fac.write_series(tmp_path, data, fac.orientations()["axial"], window=(40, 400),
                     description="Abdomen 2.5mm")
    meta = read_dicom(tmp_path).metadata
    assert meta["window_center"] == 40 and meta["window_width"] == 400
    assert meta["series_description"] == "Abdomen 2.5mm"
    assert meta["modality"] == "CT" and meta["patient_position"] == "HFS"
    assert meta["slice_spacing"] == pytest.approx(2.5)


# ---------------------------------------------------------------------------
# Irregular stacks
# ---------------------------------------------------------------------------
def ramp_series(folder, coords, *, step=2.0, drop=()):
    """Axial series whose values are a linear ramp of the RAS z coordinate."""
    affine = fac.axial_affine(step=step)
    coords = np.asarray(coords, float)
    z = affine[2, 3] + step * coords
    data = np.broadcast_to(10.0 * z + 5.0, (6, 5, len(coords))).copy()
    keep = [k for k in range(len(coords)) if k not in drop]
    fac.write_series(folder, data[:, :, keep], affine, slice_coords=coords[keep], modality="MR")
    return affine, data


def assert_is_ramp(vol):
    z = vol.voxel_to_world(np.argwhere(np.ones(vol.shape, bool)))[:, 2]
    np.testing.assert_allclose(vol.array.reshape(-1), 10.0 * z + 5.0, atol=1e-3)


def test_missing_slice_error_mode(tmp_path):
    ramp_series(tmp_path, np.arange(8), drop=(3,))
    with pytest.raises(DicomSeriesError, match="missing slice"):
        read_dicom(tmp_path, irregular="error")


def test_missing_slice_is_resampled_onto_the_full_grid(tmp_path, caplog):
    affine, data = ramp_series(tmp_path, np.arange(8), drop=(3,))
    with caplog.at_level(logging.WARNING, logger="engine.io.dicom"):
        vol = read_dicom(tmp_path)
    expected = Volume.from_file_array(data, affine)
    assert_same_volume(vol, expected, atol_value=1e-3)
    assert_is_ramp(vol)
    (warning,) = [w for w in vol.metadata["warnings"] if "missing" in w]
    assert "resampled" in warning and "\n" not in warning
    assert "missing slice" in caplog.text


def test_non_uniform_spacing_error_mode(tmp_path):
    ramp_series(tmp_path, [0, 1, 2, 3.2, 4.2, 5.2])
    with pytest.raises(DicomSeriesError, match="non-uniform"):
        read_dicom(tmp_path, irregular="error")


def test_non_uniform_spacing_is_resampled_at_the_right_positions(tmp_path):
    coords = [0, 1, 2, 3.2, 4.2, 5.2]
    affine, _ = ramp_series(tmp_path, coords)
    vol = read_dicom(tmp_path)
    assert any("non-uniform" in w for w in vol.metadata["warnings"])
    assert vol.array.dtype == np.float32
    assert vol.shape[2] == 6  # span 10.4 mm at a median step of 2 mm
    # First and last slices keep their world positions; everything is on the ramp.
    z_first = affine[2, 3]
    z_last = affine[2, 3] + 2.0 * coords[-1]
    z_axis = vol.voxel_to_world([[0, 0, 0], [0, 0, vol.shape[2] - 1]])[:, 2]
    np.testing.assert_allclose(sorted(z_axis), [z_first, z_last], atol=ATOL_MM)
    assert_is_ramp(vol)


def test_regular_series_within_tolerance_is_not_resampled(tmp_path):
    # 0.5 % jitter: below the 1 % threshold.
    ramp_series(tmp_path, [0, 1, 2.005, 3, 4])
    vol = read_dicom(tmp_path, irregular="error")
    assert vol.metadata["warnings"] == []


def test_invalid_irregular_option(tmp_path):
    with pytest.raises(ParameterError):
        read_dicom(tmp_path, irregular="ignore")


# ---------------------------------------------------------------------------
# Geometry tags: malformed, incomplete or absent
# ---------------------------------------------------------------------------
def _one_slice(tmp_path, seed=1):
    data = fac.known_volume(shape=(6, 5, 1), seed=seed)
    (path,) = fac.write_series(tmp_path, data, fac.orientations()["axial"], subfolders=False)
    return path


def _assert_names(err, path, tag):
    message = str(err.value)
    assert path.name in message and tag in message and "\n" not in message


MALFORMED = [
    ("ImagePositionPatient", b"12.5\\-30.25", "has 2 value(s), 3 expected"),
    ("ImagePositionPatient", b"12.5\\abc\\44", "is not 3 numbers"),
    ("ImagePositionPatient", b"12.5\\\\44", "is not 3 numbers"),  # one empty item
    ("ImagePositionPatient", b"nan\\0\\0", "NaN or infinite"),
    ("ImagePositionPatient", b"0\\inf\\0", "NaN or infinite"),
    ("ImageOrientationPatient", b"1\\0\\0\\0\\1", "has 5 value(s), 6 expected"),
    ("ImageOrientationPatient", b"1", "has 1 value(s), 6 expected"),
    ("ImageOrientationPatient", b"1\\0\\0\\0\\x\\0", "is not 6 numbers"),
    ("ImageOrientationPatient", b"1\\0\\0\\0\\nan\\0", "NaN or infinite"),
    ("ImageOrientationPatient", b"0\\0\\0\\0\\1\\0", "not two orthogonal unit vectors"),
    ("ImageOrientationPatient", b"1\\0\\0\\1\\0\\0", "not two orthogonal unit vectors"),
    ("ImageOrientationPatient", b"2\\0\\0\\0\\2\\0", "not two orthogonal unit vectors"),
    ("PixelSpacing", b"0.8", "has 1 value(s), 2 expected"),
    ("PixelSpacing", b"0.8\\mm", "is not 2 numbers"),
]


@pytest.mark.parametrize(("tag", "raw", "problem"), MALFORMED)
def test_malformed_geometry_tag_in_one_file_is_refused(tmp_path, tag, raw, problem):
    # Before: a malformed value read as "absent" and the image was put on an
    # invented axial grid at the origin, without an error.
    path = fac.rewrite(_one_slice(tmp_path), lambda ds: fac.set_raw(ds, tag, raw))
    with pytest.raises(InvalidImageError, match=re.escape(problem)) as err:
        read_dicom(path)
    _assert_names(err, path, tag)


@pytest.mark.parametrize(("tag", "raw", "problem"), MALFORMED[::3])
def test_malformed_geometry_tag_in_a_series_names_the_file(tmp_path, tag, raw, problem):
    paths = fac.write_series(tmp_path, fac.known_volume(seed=3), fac.orientations()["axial"])
    fac.rewrite(paths[2], lambda ds: fac.set_raw(ds, tag, raw))
    with pytest.raises(InvalidImageError, match=re.escape(problem)) as err:
        read_dicom(tmp_path)
    _assert_names(err, paths[2], tag)


def test_malformed_geometry_in_every_slice_is_refused(tmp_path):
    # Before: every slice without usable geometry, so the whole series was
    # stacked by InstanceNumber on an invented axial grid.
    paths = fac.write_series(tmp_path, fac.known_volume(seed=3), fac.orientations()["axial"])
    for path in paths:
        fac.rewrite(path, lambda ds: fac.set_raw(ds, "ImagePositionPatient", b"nan\\nan\\nan"))
    with pytest.raises(InvalidImageError, match="ImagePositionPatient") as err:
        read_dicom(tmp_path)
    assert "4 broken files" in str(err.value)


def test_malformed_position_in_an_enhanced_frame_names_the_frame(tmp_path):
    data = fac.known_volume(seed=6)
    path = fac.write_enhanced(tmp_path / "enhanced.dcm", data, fac.orientations()["oblique"],
                              slopes=np.ones(4), intercepts=np.zeros(4))

    def break_frame_3(ds):
        item = ds.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence[0]
        fac.set_raw(item, "ImagePositionPatient", b"1\\2")

    fac.rewrite(path, break_frame_3)
    with pytest.raises(InvalidImageError, match="frame 3: ImagePositionPatient") as err:
        read_dicom(path)
    _assert_names(err, path, "ImagePositionPatient")


@pytest.mark.parametrize(("raw", "problem"), [(b"0\\2.5\\x\\7.5", "is not 4 numbers"),
                                              (b"0\\2.5", "has 2 value(s), 4 expected")])
def test_malformed_grid_frame_offsets_are_refused(tmp_path, raw, problem):
    # Before: non-numeric offsets were ignored and the frames spaced by
    # SpacingBetweenSlices instead.
    data = fac.known_volume(seed=9)
    path = fac.write_legacy_multiframe(tmp_path / "legacy.dcm", data,
                                       fac.orientations()["sagittal"])
    fac.rewrite(path, lambda ds: fac.set_raw(ds, "GridFrameOffsetVector", raw))
    with pytest.raises(InvalidImageError, match=re.escape(problem)) as err:
        read_dicom(path)
    _assert_names(err, path, "GridFrameOffsetVector")


@pytest.mark.parametrize(("present", "absent"), [
    ("ImagePositionPatient", "ImageOrientationPatient"),
    ("ImageOrientationPatient", "ImagePositionPatient"),
])
def test_position_without_orientation_is_refused(tmp_path, present, absent):
    # Before: the half that was there was dropped and an axial grid invented.
    path = fac.rewrite(_one_slice(tmp_path), lambda ds: delattr(ds, absent))
    with pytest.raises(InvalidImageError, match=f"{present} is given but {absent} is missing"):
        read_dicom(path)


def test_empty_geometry_tags_count_as_absent(tmp_path):
    def blank(ds):
        fac.set_raw(ds, "ImagePositionPatient", b"")
        fac.set_raw(ds, "ImageOrientationPatient", b"")

    path = fac.rewrite(_one_slice(tmp_path), blank)
    assert read_dicom(path).metadata["geometry"] == "assumed"


def test_series_without_any_geometry_is_refused(tmp_path):
    # Before: stacked by InstanceNumber 2.5 mm apart and shown as axial (a warning only).
    paths = fac.write_series(tmp_path, fac.known_volume(seed=3), fac.orientations()["coronal"])
    for path in paths:
        fac.rewrite(path, lambda ds: (delattr(ds, "ImagePositionPatient"),
                                      delattr(ds, "ImageOrientationPatient")))
    with pytest.raises(DicomSeriesError, match="4 images without ImagePositionPatient") as err:
        read_dicom(tmp_path)
    assert "\n" not in str(err.value)


def test_multiframe_file_without_geometry_is_refused():
    # A 30-frame ultrasound cine: its frames are not slices at known places.
    path = shipped("examples_ybr_color.dcm")
    with pytest.raises(DicomSeriesError, match="30 frames without ImagePositionPatient") as err:
        read_dicom(path)
    assert path.name in str(err.value)


def test_legacy_multiframe_without_any_frame_spacing_is_refused(tmp_path):
    # Before: the frames were placed 1 mm apart, a guess.
    data = fac.known_volume(seed=9)
    path = fac.write_legacy_multiframe(tmp_path / "legacy.dcm", data,
                                       fac.orientations()["sagittal"])
    fac.rewrite(path, lambda ds: delattr(ds, "SpacingBetweenSlices"))
    with pytest.raises(InvalidImageError, match="distance between them") as err:
        read_dicom(path)
    assert path.name in str(err.value)


def test_single_image_without_geometry_is_flagged_and_logged(caplog):
    path = shipped("SC_rgb_rle.dcm")
    with caplog.at_level(logging.WARNING, logger="engine.io.dicom"):
        vol = read_dicom(path)
    assert vol.shape == (100, 100, 1)
    assert vol.metadata["geometry"] == "assumed"
    assert "geometry assumed" in caplog.text and path.name in caplog.text
    np.testing.assert_allclose(vol.spacing, (1.0, 1.0, 1.0))


def test_series_without_pixel_spacing_is_flagged_as_assumed(tmp_path):
    paths = fac.write_series(tmp_path, fac.known_volume(seed=3), fac.orientations()["axial"])
    for path in paths:
        fac.rewrite(path, lambda ds: delattr(ds, "PixelSpacing"))
    vol = read_dicom(tmp_path)
    assert vol.metadata["geometry"] == "assumed"
    assert any("1 mm pixels assumed" in w for w in vol.metadata["warnings"])


def test_image_with_patient_geometry_is_flagged_as_from_the_file():
    assert read_dicom(shipped("CT_small.dcm")).metadata["geometry"] == "file"


def test_every_shipped_pydicom_image_loads_or_fails_for_a_stated_reason():
    """Each image in pydicom's test files: a volume flagged "file" or "assumed" as its
    tags say, or a one-line typed error naming the file."""
    from pydicom.data import get_testdata_files

    n_loaded = 0
    for name in get_testdata_files():
        path = Path(name)
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            has_geometry = "ImagePositionPatient" in ds or "PerFrameFunctionalGroupsSequence" in ds
        except Exception:
            has_geometry = None
        try:
            vol = read_dicom(path)
        except ReadError as exc:
            message = str(exc)
            assert path.name in message and "\n" not in message, message
            continue
        n_loaded += 1
        assert vol.metadata["geometry"] == ("file" if has_geometry else "assumed"), path.name
        assert np.isfinite(vol.affine).all()
    assert n_loaded >= 80  # most of the corpus are images that load


# ---------------------------------------------------------------------------
# Inconsistent series, duplicates, several series
# ---------------------------------------------------------------------------
def test_mixed_orientations_raise(tmp_path):
    data = fac.known_volume(seed=1)
    paths = fac.write_series(tmp_path, data, fac.orientations()["axial"])
    ds = pydicom.dcmread(paths[2])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.save_as(paths[2])
    with pytest.raises(DicomSeriesError, match="mixed slice orientations"):
        read_dicom(tmp_path)


def test_mixed_image_sizes_raise(tmp_path):
    data = fac.known_volume(seed=1)
    paths = fac.write_series(tmp_path, data, fac.orientations()["axial"])
    ds = pydicom.dcmread(paths[1])
    ds.Rows, ds.Columns = 3, 4
    ds.PixelData = np.zeros((3, 4), np.int16).tobytes()
    ds.save_as(paths[1])
    with pytest.raises(DicomSeriesError, match="different sizes"):
        read_dicom(tmp_path)


def test_identical_duplicate_file_is_dropped(tmp_path):
    data = fac.known_volume(seed=6)
    affine = fac.orientations()["axial"]
    paths = fac.write_series(tmp_path, data, affine)
    shutil.copy(paths[1], tmp_path / "copy_of_slice.dcm")
    vol = read_dicom(tmp_path)
    assert_same_volume(vol, Volume.from_file_array(data, affine))
    assert any("duplicate" in w for w in vol.metadata["warnings"])


def test_different_images_at_one_position_raise(tmp_path):
    data = fac.known_volume(seed=6)
    affine = fac.orientations()["axial"]
    paths = fac.write_series(tmp_path, data, affine)
    ds = pydicom.dcmread(paths[1])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "second_echo.dcm")
    with pytest.raises(DicomSeriesError, match="share slice position"):
        read_dicom(tmp_path)


def make_two_series(folder):
    big = fac.known_volume(shape=(6, 5, 7), seed=1)
    small = fac.known_volume(shape=(4, 3, 3), seed=2)
    study = pydicom.uid.generate_uid()
    uid_big, uid_small = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    fac.write_series(folder, big, fac.orientations()["axial"], series_uid=uid_big,
                     study_uid=study, description="big", series_number=2)
    fac.write_series(folder / "nested" / "deeper", small, fac.orientations()["coronal"],
                     series_uid=uid_small, study_uid=study, description="small",
                     series_number=1, modality="MR")
    (folder / "notes.txt").write_text("not an image\n")
    (folder / ".hidden.dcm").write_bytes(b"\x00" * 10)
    shutil.copy(shipped("rtstruct.dcm"), folder / "DICOMDIR")  # DICOM without pixels
    return uid_big, uid_small


def test_list_series(tmp_path):
    uid_big, uid_small = make_two_series(tmp_path)
    infos = list_series(tmp_path)
    assert [i.uid for i in infos] == [uid_big, uid_small]
    big, small = infos
    assert isinstance(big, DicomSeriesInfo)
    assert (big.n_files, big.n_slices, big.rows, big.columns) == (7, 7, 5, 6)
    assert (small.n_files, small.n_slices, small.modality, small.description) == (
        3, 3, "MR", "small")
    assert big.series_number == 2 and big.study_uid == small.study_uid
    assert all(p.is_file() for p in big.files) and len(set(big.files)) == 7


def test_series_selection(tmp_path):
    uid_big, uid_small = make_two_series(tmp_path)
    assert read_dicom(tmp_path).metadata["series_uid"] == uid_big
    by_uid = read_dicom(tmp_path, series=uid_small)
    assert by_uid.metadata["series_uid"] == uid_small and by_uid.modality == "MR"
    assert read_dicom(tmp_path, series=1).metadata["series_uid"] == uid_small
    with pytest.raises(DicomSeriesError, match=uid_big):
        read_dicom(tmp_path, series="1.2.3.4")
    with pytest.raises(DicomSeriesError, match="unknown series 5; known: 0 = "):
        read_dicom(tmp_path, series=5)


def _truncate_series(folder, uid):
    """Cut every file of series *uid* in *folder* in the middle of its pixel data."""
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file() or path.name.startswith(".") or path.suffix == ".txt":
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if ds.get("SeriesInstanceUID") == uid:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) - 20])


def test_default_series_is_the_largest_that_reads(tmp_path, caplog):
    uid_big, uid_small = make_two_series(tmp_path)
    _truncate_series(tmp_path, uid_big)
    caplog.set_level(logging.WARNING)
    vol = read_dicom(tmp_path)
    assert vol.metadata["series_uid"] == uid_small
    assert vol.metadata["n_series"] == 2
    [skipped] = vol.metadata["skipped_series"]
    assert skipped["uid"] == uid_big and "truncated" in skipped["reason"]
    note = vol.metadata["warnings"][0]
    assert note.startswith(f"folder holds 2 series; took {uid_small} (MR 'small', 3 slices)")
    assert "1 larger series cannot be read" in note and "\n" not in note
    assert any(note in r.getMessage() for r in caplog.records)
    # Asked for by name, the broken series still fails with its own error.
    with pytest.raises(TruncatedFileError, match="broken files in the series"):
        read_dicom(tmp_path, series=uid_big)
    big, small = list_series(tmp_path)
    assert big.uid == uid_big and "truncated" in big.problem
    assert small.problem == ""


def test_default_series_when_all_read_notes_the_others(tmp_path):
    uid_big, _ = make_two_series(tmp_path)
    vol = read_dicom(tmp_path)
    assert vol.metadata["series_uid"] == uid_big and vol.metadata["skipped_series"] == []
    assert vol.metadata["warnings"][0].startswith("folder holds 2 series; took ")
    assert "the largest; 1 other series not read" in vol.metadata["warnings"][0]
    one = read_dicom(tmp_path, series=uid_big)
    assert one.metadata["n_series"] == 2
    assert not any("folder holds" in w for w in one.metadata["warnings"])


def test_no_series_reads_raises_the_largest_ones_error(tmp_path):
    uid_big, uid_small = make_two_series(tmp_path)
    _truncate_series(tmp_path, uid_big)
    _truncate_series(tmp_path, uid_small)
    with pytest.raises(TruncatedFileError, match="largest of 2 series; none of them reads"):
        read_dicom(tmp_path)


def test_pydicom_test_file_folder_takes_the_largest_readable_series(tmp_path):
    # pydicom's own test files: the largest "series" is 50 truncated files.
    folder = tmp_path / "test_files"
    shutil.copytree(shipped("CT_small.dcm").parent, folder)
    infos = list_series(folder)
    vol = read_dicom(folder)
    first_ok = next(i for i in infos if not i.problem)
    assert vol.metadata["series_uid"] == first_ok.uid
    assert infos[0].problem and infos[0].n_slices > first_ok.n_slices
    assert vol.metadata["n_series"] == len(infos)
    skipped = [s["uid"] for s in vol.metadata["skipped_series"]]
    assert skipped == [i.uid for i in infos[: infos.index(first_ok)]]


def test_progress_and_cancel(tmp_path):
    fac.write_series(tmp_path, fac.known_volume(seed=1), fac.orientations()["axial"])
    seen = []
    read_dicom(tmp_path, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in fractions)
    assert fractions == sorted(fractions)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        read_dicom(tmp_path, cancel=token)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
def test_empty_file(tmp_path):
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")
    with pytest.raises(TruncatedFileError, match="empty") as err:
        read_dicom(path)
    assert "empty.dcm" in str(err.value)
    assert not is_dicom_file(path)


def test_text_file_named_dcm(tmp_path):
    path = tmp_path / "x.dcm"
    path.write_text("patient: anonymous\nthis is not an image\n" * 10)
    with pytest.raises(UnsupportedFormatError, match="not a DICOM file") as err:
        read_dicom(path)
    assert "x.dcm" in str(err.value)
    assert not is_dicom_file(path)


def test_truncated_copy_of_ct_small(tmp_path):
    data = shipped("CT_small.dcm").read_bytes()
    path = tmp_path / "ct_cut.dcm"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedFileError, match="pixel data") as err:
        read_dicom(path)
    assert "ct_cut.dcm" in str(err.value)


@pytest.mark.parametrize("cut", [60, 131, 200, 1000, 3000, 6000, 6290, 6300, -200])
def test_truncated_anywhere_gives_a_typed_error(tmp_path, cut):
    data = shipped("CT_small.dcm").read_bytes()
    path = tmp_path / f"cut{cut}.dcm"
    path.write_bytes(data[:cut])
    with pytest.raises(ReadError) as err:
        read_dicom(path)
    assert path.name in str(err.value) and "\n" not in str(err.value)


def test_cut_in_trailing_padding_still_loads(tmp_path):
    # CT_small.dcm ends with DataSetTrailingPadding after the pixel data.
    data = shipped("CT_small.dcm").read_bytes()
    path = tmp_path / "ct_padding_cut.dcm"
    path.write_bytes(data[:-1])
    assert_same_volume(read_dicom(path), read_dicom(shipped("CT_small.dcm")))


def test_truncated_slice_in_a_folder(tmp_path):
    paths = fac.write_series(tmp_path, fac.known_volume(seed=1), fac.orientations()["axial"])
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[:-20])
    assert list_series(tmp_path)[0].n_files == 4  # still listed...
    with pytest.raises(TruncatedFileError) as err:  # ...but never silently read
        read_dicom(tmp_path)
    assert paths[2].name in str(err.value)


def test_absurd_image_size(tmp_path):
    ds = fac.base_dataset(rows=60000, columns=60000)
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
    ds.PixelData = np.zeros((4, 4), np.int16).tobytes()
    path = tmp_path / "huge.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InvalidImageError, match="needs") as err:
        read_dicom(path)
    assert "huge.dcm" in str(err.value)
    ds.NumberOfFrames = 5000
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InvalidImageError, match="implausible"):
        read_dicom(path)


def test_empty_folder(tmp_path):
    with pytest.raises(NoImageFoundError) as err:
        read_dicom(tmp_path)
    assert tmp_path.name in str(err.value)
    assert list_series(tmp_path) == []


def test_folder_with_only_text_and_non_image_dicom(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(NoImageFoundError, match="non-DICOM"):
        read_dicom(tmp_path)
    shutil.copy(shipped("rtstruct.dcm"), tmp_path / "rtstruct.dcm")
    with pytest.raises(NoImageFoundError, match="without pixel data"):
        read_dicom(tmp_path)


def test_single_dicom_file_without_image(tmp_path):
    with pytest.raises(NoImageFoundError, match="no image"):
        read_dicom(shipped("rtstruct.dcm"))


def test_is_dicom_file(tmp_path):
    assert is_dicom_file(shipped("CT_small.dcm"))
    assert not is_dicom_file(tmp_path)
    assert not is_dicom_file(tmp_path / "missing.dcm")
    assert not is_dicom_file(shipped("ExplVR_LitEndNoMeta.dcm"))  # bare, but no image
    # A bare data set (no preamble, no file meta) holding an image is accepted.
    ds = pydicom.dcmread(shipped("CT_small.dcm"))
    bare = tmp_path / "bare_image"
    del ds.file_meta
    ds.preamble = None
    ds.save_as(bare, implicit_vr=True, little_endian=True)
    assert bare.read_bytes()[128:132] != b"DICM"
    assert is_dicom_file(bare)
    vol = read_dicom(bare)
    assert vol.shape == (128, 128, 1) and vol.array.dtype == np.int16


def test_too_irregular_stack_is_not_resampled(tmp_path):
    ramp_series(tmp_path, [0, 0.1, 0.2, 0.3, 60])
    with pytest.raises(DicomSeriesError, match="too irregular"):
        read_dicom(tmp_path)


def test_missing_path():
    with pytest.raises(FileNotFoundError):
        read_dicom("/nonexistent/folder/for/delineo")


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs named pipes")
def test_named_pipe_never_blocks(tmp_path):
    import os

    fac.write_series(tmp_path, fac.known_volume(seed=1), fac.orientations()["axial"])
    os.mkfifo(tmp_path / "pipe.dcm")
    assert read_dicom(tmp_path).shape == (6, 5, 4)  # the pipe is skipped, not read
    with pytest.raises(UnsupportedFormatError, match="not a regular file"):
        read_dicom(tmp_path / "pipe.dcm")


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_RLE.dcm", "rtdose.dcm"])
def test_corrupted_bytes_give_typed_errors_only(tmp_path, name):
    rng = np.random.default_rng(len(name))
    original = shipped(name).read_bytes()
    for trial in range(25):
        data = bytearray(original)
        for pos in rng.integers(128, len(data), size=rng.integers(1, 6)):
            data[pos] = rng.integers(0, 256)
        if trial % 3 == 0:
            data = data[: rng.integers(0, len(data))]
        path = tmp_path / f"corrupt{trial}.dcm"
        path.write_bytes(bytes(data))
        message = ""
        try:
            read_dicom(path)
        except ReadError as exc:  # anything else fails the test with its traceback
            message = str(exc)
        if message:
            assert path.name in message and "\n" not in message


def test_pydicom_log_capture_is_limited_to_the_reading_thread(caplog):
    import threading

    from engine.io.dicom.headers import capture_pydicom_log

    caplog.set_level(logging.WARNING)
    pydicom_log = logging.getLogger("pydicom")
    with capture_pydicom_log() as gists:
        pydicom_log.warning("tolerated a bad value\nsecond line")
        other = threading.Thread(target=pydicom_log.warning, args=("from another thread",))
        other.start()
        other.join()
    pydicom_log.warning("after the read")
    assert gists == ["tolerated a bad value"]
    assert [r.getMessage() for r in caplog.records if r.name == "pydicom"] == [
        "from another thread", "after the read"]
