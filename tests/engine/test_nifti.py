"""NIfTI reading and writing on real files from nibabel's test data and on files we make."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from engine.core.errors import (
    GeometryMismatchError,
    InvalidImageError,
    ReadError,
    TruncatedFileError,
    UnsupportedFormatError,
    WriteError,
)
from engine.core.volume import Label, LabelMap, Volume
from engine.io import load, load_labels, save

NIB_DATA = Path(nib.__file__).parent / "tests" / "data"


def nib_file(name: str) -> Path:
    path = NIB_DATA / name
    if not path.exists():
        pytest.skip(f"nibabel test file {name} not installed")
    return path


def _world_value_pairs(img: nib.Nifti1Image, n: int = 20):
    data = np.asanyarray(img.dataobj)
    rng = np.random.default_rng(1)
    for _ in range(n):
        ijk = tuple(int(rng.integers(0, s)) for s in data.shape[:3])
        world = img.affine @ [*ijk, 1]
        value = data[ijk] if data.ndim == 3 else data[(*ijk, 0)]
        yield world[:3], value


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz", "example_nifti2.nii.gz",
                                  "standard.nii.gz", "reoriented_anat_moved.nii"])
def test_real_files_keep_every_voxel_at_its_world_position(name):
    path = nib_file(name)
    img = nib.load(path)
    vol = load(path)
    assert vol.axcodes == ("R", "A", "S")
    assert vol.array.flags.c_contiguous and vol.array.dtype.isnative
    for world, value in _world_value_pairs(img):
        ijk = np.rint(vol.world_to_voxel(world)).astype(int)
        assert vol.array[tuple(ijk)] == pytest.approx(value)


def test_anatomical_is_las_in_file_and_ras_in_delineo():
    vol = load(nib_file("anatomical.nii"))
    assert vol.source.axcodes == ("L", "A", "S")
    assert vol.source.format == "nifti"
    assert vol.shape == (33, 41, 25)
    assert vol.spacing == pytest.approx((2.0, 2.0, 2.0))


def test_4d_input_takes_first_volume_with_a_warning_and_index_selects():
    path = nib_file("example4d.nii.gz")
    first = load(path)
    assert first.shape == (128, 96, 24)
    assert any("4-D" in w for w in first.metadata["warnings"])
    second = load(path, volume_index=1)
    raw = np.asanyarray(nib.load(path).dataobj)
    assert np.array_equal(second.source.to_source(second.array), raw[..., 1])
    with pytest.raises(InvalidImageError, match="volume index 5"):
        load(path, volume_index=5)


def test_nifti2_is_read():
    vol = load(nib_file("example_nifti2.nii.gz"))
    assert vol.metadata["format"] == "nifti2"


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_image_round_trip_keeps_file_geometry(tmp_path, suffix):
    src = nib_file("anatomical.nii")
    vol = load(src)
    out = save(vol, tmp_path / f"copy{suffix}")
    back = nib.load(out)
    orig = nib.load(src)
    assert back.shape == orig.shape
    np.testing.assert_allclose(back.affine, orig.affine, atol=1e-5)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), np.asanyarray(orig.dataobj))
    assert int(back.header["sform_code"]) == int(orig.header["sform_code"])


def _oblique_lps_image(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    data = rng.normal(100, 20, size=(12, 10, 8)).astype(np.float32)
    angle = 0.3
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                    [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([-0.9, -1.1, 2.5])  # L, P, S-ish and oblique
    affine[:3, 3] = [40.0, 60.0, -30.0]
    path = tmp_path / "oblique_lps.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_labels_saved_for_an_image_land_on_it_whatever_the_orientation(tmp_path):
    img_path = _oblique_lps_image(tmp_path)
    vol = load(img_path)
    labels = LabelMap.empty_like(vol)
    labels.array[2:5, 3:6, 1:4] = 2
    labels.array[0, 0, 0] = 3
    out = save(labels, tmp_path / "mask.nii.gz")
    written = nib.load(out)
    original = nib.load(img_path)
    assert written.shape == original.shape
    np.testing.assert_allclose(written.affine, original.affine, atol=1e-5)
    assert written.get_data_dtype() == np.uint8
    assert written.header.get_intent()[0] == "label"
    # The labelled voxels sit at the same world points as in Delineo's canonical grid.
    data = np.asanyarray(written.dataobj)
    for ijk in zip(*np.nonzero(labels.array), strict=True):
        world = vol.voxel_to_world(ijk)
        file_ijk = np.rint(np.linalg.inv(written.affine) @ [*world, 1])[:3].astype(int)
        assert data[tuple(file_ijk)] == labels.array[ijk]
    # And the round trip through load_labels restores the canonical mask and its table.
    back = load_labels(out, reference=vol)
    np.testing.assert_array_equal(back.array, labels.array)
    assert back.labels == labels.labels


def test_custom_label_table_is_stored_in_the_file(tmp_path):
    vol = Volume(np.zeros((4, 4, 4), np.float32), np.eye(4))
    table = LabelMap.empty_like(vol).labels.with_label(Label(9, "Lesion", (250, 20, 20)))
    labels = LabelMap.empty_like(vol, labels=table)
    labels.array[1, 1, 1] = 9
    back = load_labels(save(labels, tmp_path / "l.nii"))
    assert back.labels[9].name == "Lesion"
    assert back.labels[9].color == (250, 20, 20)


def test_large_label_values_get_a_wider_type(tmp_path):
    vol = Volume(np.zeros((3, 3, 3), np.float32), np.eye(4))
    labels = LabelMap(np.full((3, 3, 3), 300, np.int32), vol.affine)
    back = nib.load(save(labels, tmp_path / "wide.nii.gz"))
    assert back.get_data_dtype() == np.int16
    assert np.asanyarray(back.dataobj).max() == 300


def test_mismatched_label_grid_is_refused_or_resampled(tmp_path):
    img = Volume(np.zeros((10, 10, 10), np.float32), np.eye(4))
    save(img, tmp_path / "img.nii.gz")
    reference = load(tmp_path / "img.nii.gz")
    coarse = LabelMap(np.zeros((5, 5, 5), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]))
    coarse.array[1, 1, 1] = 3  # covers world [1.5..2.5]^3 -> fine voxels 2
    save(coarse, tmp_path / "coarse.nii.gz")
    with pytest.raises(GeometryMismatchError) as info:
        load_labels(tmp_path / "coarse.nii.gz", reference=reference)
    assert any("shape" in d for d in info.value.differences)
    assert "coarse.nii.gz" in str(info.value)
    resampled = load_labels(tmp_path / "coarse.nii.gz", reference=reference, resample=True)
    assert resampled.shape == reference.shape
    assert resampled.array[2, 2, 2] == 3
    assert resampled.array[5, 5, 5] == 0


def test_float_image_is_not_accepted_as_labels(tmp_path):
    data = np.random.default_rng(0).normal(size=(4, 4, 4)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "img.nii")
    with pytest.raises(InvalidImageError, match="not a label map"):
        load_labels(tmp_path / "img.nii")


def test_float_labels_with_integer_values_are_accepted(tmp_path):
    data = np.zeros((4, 4, 4), np.float32)
    data[1, 2, 3] = 2.0
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "labels_float.nii")
    labels = load_labels(tmp_path / "labels_float.nii")
    assert labels.array.dtype == np.uint8 and labels.array[1, 2, 3] == 2


# -- bad input ------------------------------------------------------------------
def test_empty_file(tmp_path):
    path = tmp_path / "empty.nii.gz"
    path.write_bytes(b"")
    with pytest.raises(TruncatedFileError, match="empty") as info:
        load(path)
    assert "empty.nii.gz" in str(info.value)


def test_text_file_with_image_extension(tmp_path):
    path = tmp_path / "notes.nii"
    path.write_text("this is not an image\n" * 30)
    with pytest.raises(UnsupportedFormatError, match="not a NIfTI"):
        load(path)


def test_unknown_format(tmp_path):
    path = tmp_path / "picture.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    with pytest.raises(UnsupportedFormatError, match=r"unknown file format '\.png'; known: NIfTI"):
        load(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.nii")


def test_truncated_uncompressed_file(tmp_path):
    raw = nib_file("anatomical.nii").read_bytes()
    path = tmp_path / "cut.nii"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(TruncatedFileError, match="header needs"):
        load(path)


def test_truncated_gzip_file(tmp_path):
    raw = nib_file("example4d.nii.gz").read_bytes()
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ReadError) as info:
        load(path)
    assert "cut.nii.gz" in str(info.value)


def _members(raw: bytes, sizes) -> bytes:
    """*raw* as consecutive gzip members of the given uncompressed sizes (rest in the last)."""
    out, start = [], 0
    for size in sizes:
        out.append(gzip.compress(raw[start:start + size]))
        start += size
    out.append(gzip.compress(raw[start:]))
    return b"".join(out)


def _bgzf_like(raw: bytes, block: int = 65280) -> bytes:
    """Blocked gzip as written by bgzip/pigz-style tools: many members, then an empty one."""
    blocks = [gzip.compress(raw[i:i + block]) for i in range(0, len(raw), block)]
    return b"".join(blocks) + gzip.compress(b"")


def _assert_same_as_nibabel(path: Path, reference: Path):
    vol = load(path)
    nii = nib.as_closest_canonical(nib.load(path))
    np.testing.assert_array_equal(vol.array, np.asanyarray(nii.dataobj))
    np.testing.assert_allclose(vol.affine, nii.affine)
    # ... and the file really is the reference image, voxel for voxel.
    np.testing.assert_array_equal(np.asanyarray(nib.load(path).dataobj),
                                  np.asanyarray(nib.load(reference).dataobj))


@pytest.mark.parametrize("layout", ["two_members", "three_members", "header_apart",
                                    "bgzf_blocks", "zero_padding"])
def test_multi_member_gzip_is_read_like_nibabel(tmp_path, layout):
    # Before: the gzip trailer of the *last* member was taken for the whole
    # file's size and a valid file was refused as truncated.
    source = nib_file("anatomical.nii")
    raw = source.read_bytes()
    data = {
        "two_members": lambda: _members(raw, [len(raw) // 2]),  # gzip -c a > f; gzip -c b >> f
        "three_members": lambda: _members(raw, [1000, 20000]),
        "header_apart": lambda: _members(raw, [352, 30000]),  # header flushed first
        "bgzf_blocks": lambda: _bgzf_like(raw, block=4096),
        "zero_padding": lambda: gzip.compress(raw) + b"\0" * 512,  # tape/block padding
    }[layout]()
    path = tmp_path / f"{layout}.nii.gz"
    path.write_bytes(data)
    _assert_same_as_nibabel(path, source)


def test_truncated_multi_member_gzip_is_still_refused(tmp_path):
    raw = nib_file("anatomical.nii").read_bytes()
    data = _bgzf_like(raw, block=4096)
    cut_points = [len(data) // 3, len(data) - 100]
    # A cut exactly between two members: gzip itself sees a clean, shorter stream.
    first_members = _bgzf_like(raw[: 4096 * 3], block=4096)[: -len(gzip.compress(b""))]
    assert data.startswith(first_members)
    cut_points.append(len(first_members))
    for cut in cut_points:
        path = tmp_path / f"cut{cut}.nii.gz"
        path.write_bytes(data[:cut])
        with pytest.raises(TruncatedFileError) as info:
            load(path)
        message = str(info.value)
        assert path.name in message and "\n" not in message


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz"])
def test_gzip_cut_anywhere_is_refused_unless_the_voxels_are_all_there(tmp_path, name):
    raw = nib_file(name).read_bytes()
    data = raw if name.endswith(".gz") else gzip.compress(raw)
    needed = len(gzip.decompress(data))
    rng = np.random.default_rng(3)
    cuts = sorted({10, 40, 400, len(data) - 1, len(data) - 4, len(data) - 8, len(data) - 40,
                   *rng.integers(20, len(data) - 8, size=12).tolist()})
    n_complete = 0
    for cut in cuts:
        path = tmp_path / f"cut{cut}.nii.gz"
        path.write_bytes(data[:cut])
        # What a cut stream still yields, by zlib directly.
        complete = len(zlib.decompressobj(wbits=31).decompress(data[:cut])) >= needed
        if complete:  # only the gzip trailer is missing: nibabel reads every voxel
            n_complete += 1
            vol = load(path)
            assert any("gzip stream damaged after the image data" in w
                       for w in vol.metadata["warnings"])
            full = nib.as_closest_canonical(nib.load(nib_file(name)))
            expected = np.asanyarray(full.dataobj)
            expected = expected[..., 0] if expected.ndim == 4 else expected
            np.testing.assert_array_equal(vol.array, expected)
            continue
        with pytest.raises(TruncatedFileError) as info:
            load(path)
        message = str(info.value)
        assert path.name in message and "\n" not in message, message
    assert 0 < n_complete < len(cuts)  # both kinds of cut were tried


def test_truncated_later_volume_of_a_4d_gzip_is_refused(tmp_path):
    # Reading volume 0 never touches volume 1, so only a length check sees the cut.
    # Before: decided by the 4 bytes that happened to end the cut file.
    raw = gzip.decompress(nib_file("example4d.nii.gz").read_bytes())
    path = tmp_path / "half4d.nii.gz"
    for keep in (len(raw) - 1000, len(raw) - 5000, len(raw) * 3 // 4, len(raw) // 2 + 7):
        stream = zlib.compressobj(6, zlib.DEFLATED, 31)
        cut = stream.compress(raw[:keep]) + stream.flush(zlib.Z_SYNC_FLUSH)
        assert len(zlib.decompressobj(wbits=31).decompress(cut)) == keep < len(raw)
        path.write_bytes(cut)
        with pytest.raises(TruncatedFileError, match=f"holds {keep} bytes .* header needs"):
            load(path)


def test_gzip_with_garbage_inside(tmp_path):
    path = tmp_path / "junk.nii.gz"
    path.write_bytes(gzip.compress(b"hello world, no header here" * 20))
    with pytest.raises(UnsupportedFormatError):
        load(path)


def test_absurd_header_dimensions_are_refused_before_allocating(tmp_path):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((4, 4, 4))
    hdr.set_data_dtype(np.float32)
    raw = bytearray(hdr.binaryblock) + b"\0" * 4 + b"\0" * (4 * 4 * 4 * 4)
    # Patch dim[1..3] to 30000 each: 2.7e13 voxels (~100 TB) claimed.
    struct.pack_into("<8h", raw, 40, 3, 30000, 30000, 30000, 1, 1, 1, 1)
    path = tmp_path / "absurd.nii"
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidImageError, match="GiB"):
        load(path)


def test_all_nan_data_is_refused(tmp_path):
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(np.full((3, 3, 3), np.nan, np.float32), np.eye(4)), path)
    with pytest.raises(InvalidImageError, match="NaN"):
        load(path)


def test_some_nan_voxels_are_zeroed_with_a_warning(tmp_path):
    data = np.ones((3, 3, 3), np.float32)
    data[0, 0, 0] = np.nan
    path = tmp_path / "somenan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    vol = load(path)
    assert vol.array[0, 0, 0] == 0
    assert any("NaN" in w for w in vol.metadata["warnings"])


def test_file_without_qform_or_sform_is_flagged_as_assumed_geometry(tmp_path):
    img = nib.Nifti1Image(np.ones((3, 3, 3), np.float32), None)  # no affine: codes stay 0
    img.header.set_zooms((2.0, 2.0, 2.0))
    nib.save(img, tmp_path / "bare.nii")
    assert int(nib.load(tmp_path / "bare.nii").header["sform_code"]) == 0
    vol = load(tmp_path / "bare.nii")
    assert vol.metadata["geometry"] == "assumed"
    np.testing.assert_allclose(vol.spacing, (2.0, 2.0, 2.0))
    assert any("no qform/sform" in w for w in vol.metadata["warnings"])
    assert load(nib_file("anatomical.nii")).metadata["geometry"] == "file"


def test_zero_voxel_size_without_sform_is_refused(tmp_path):
    img = nib.Nifti1Image(np.ones((3, 3, 3), np.float32), np.eye(4))
    img.header.set_zooms((1.0, 0.0, 1.0))
    img.header["sform_code"] = 0
    img.header["qform_code"] = 1
    raw = bytearray(img.header.binaryblock) + b"\0" * 4 + np.ones(27, np.float32).tobytes()
    path = tmp_path / "zero_zoom.nii"
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidImageError, match="voxel sizes"):
        load(path)


# -- atomic writes -------------------------------------------------------------------
def test_write_leaves_no_temporary_files(tmp_path):
    vol = Volume(np.ones((4, 4, 4), np.float32), np.eye(4))
    save(vol, tmp_path / "a.nii.gz")
    assert sorted(os.listdir(tmp_path)) == ["a.nii.gz"]


def test_failed_write_keeps_the_previous_file_and_leaves_nothing_else(tmp_path, monkeypatch):
    vol = Volume(np.ones((4, 4, 4), np.float32), np.eye(4))
    target = tmp_path / "keep.nii.gz"
    save(vol, target)
    before = target.read_bytes()

    def boom(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nib, "save", boom)
    with pytest.raises(WriteError, match="No space left"):
        save(Volume(np.zeros((4, 4, 4), np.float32), np.eye(4)), target)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.nii.gz"]


def test_unsupported_output_extension(tmp_path):
    vol = Volume(np.ones((2, 2, 2), np.float32), np.eye(4))
    with pytest.raises(WriteError, match=r"unknown output format '\.png'; known: \.nii, \.nii\.gz"):
        save(vol, tmp_path / "out.png")


def test_missing_output_folder(tmp_path):
    vol = Volume(np.ones((2, 2, 2), np.float32), np.eye(4))
    with pytest.raises(WriteError, match="does not exist"):
        save(vol, tmp_path / "nope" / "out.nii")
