"""Export: 3D Slicer seg.nrrd with the image's geometry, findings and reports from labels."""

from __future__ import annotations

import json

import nibabel as nib
import nrrd
import numpy as np
import pytest

from engine.cli import main
from engine.core.volume import BRAIN_LESION_LABELS
from engine.io import load, load_labels
from engine.io.seg_nrrd import read_seg_nrrd, write_seg_nrrd
from tests.engine.dicom_factory import rotation


def _image_and_labels(tmp_path, affine):
    """A NIfTI image with *affine* (file voxel order) and a label file on its grid."""
    rng = np.random.default_rng(0)
    data = rng.normal(100.0, 5.0, (30, 34, 26)).astype(np.float32)
    lab = np.zeros(data.shape, np.uint8)
    lab[5:25, 6:28, 4:22] = 3
    lab[8:22, 9:25, 6:20] = 2
    lab[12:16, 14:18, 10:13] = 4  # a lesion, 4 x 4 x 3 voxels
    data[lab == 4] = 160.0
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "image.nii.gz")
    img = nib.Nifti1Image(lab, affine)
    img.header.set_intent("label")
    nib.save(img, tmp_path / "labels.nii.gz")
    image = load(tmp_path / "image.nii.gz")
    labels = load_labels(tmp_path / "labels.nii.gz", reference=image)
    labels.labels = BRAIN_LESION_LABELS
    return image, labels, lab


OBLIQUE = np.eye(4)
OBLIQUE[:3, :3] = rotation(12.0, -8.0, 20.0) @ np.diag([0.9, 1.1, 2.5])
OBLIQUE[:3, 3] = (-40.0, 25.0, -10.0)
LPS_ORDER = np.diag([-1.0, -1.0, 1.2, 1.0])
LPS_ORDER[:3, 3] = (30.0, 40.0, -20.0)


@pytest.mark.parametrize("affine", [np.diag([1.0, 1.0, 1.0, 1.0]), LPS_ORDER, OBLIQUE],
                         ids=["ras", "lps-order", "oblique"])
def test_seg_nrrd_has_the_image_geometry_and_the_segments(tmp_path, affine):
    image, labels, file_array = _image_and_labels(tmp_path, affine)
    out = write_seg_nrrd(labels, tmp_path / "mask.seg.nrrd")
    data, header = nrrd.read(str(out), index_order="F")
    assert header["space"] == "left-posterior-superior"
    # The file's own voxel order and geometry: RAS affine = diag(-1,-1,1) @ LPS geometry.
    assert np.array_equal(data, file_array)
    lps = np.diag([-1.0, -1.0, 1.0])
    np.testing.assert_allclose(lps @ np.asarray(header["space directions"]).T, affine[:3, :3],
                               atol=1e-6)
    np.testing.assert_allclose(lps @ np.asarray(header["space origin"]), affine[:3, 3],
                               atol=1e-6)
    names = {header[f"Segment{n}_Name"]: int(header[f"Segment{n}_LabelValue"])
             for n in range(3)}
    assert names == {"Gray matter": 2, "White matter": 3, "Lesion": 4}
    assert "Segment3_Name" not in header
    r, g, b = (float(c) for c in header["Segment2_Color"].split())
    assert (round(r * 255), round(g * 255), round(b * 255)) == BRAIN_LESION_LABELS.color(4)
    assert header["Segment2_Extent"] == "12 15 14 17 10 12"
    back = read_seg_nrrd(out)
    assert back.same_grid(image)
    assert np.array_equal(back.array, labels.array)
    assert back.labels.name(4) == "Lesion"


def test_seg_nrrd_refuses_other_names_and_reads_only_labelmaps(tmp_path):
    from engine.core.errors import InvalidImageError, UnsupportedFormatError, WriteError

    _, labels, _ = _image_and_labels(tmp_path, np.eye(4))
    with pytest.raises(WriteError, match=r"\.seg\.nrrd"):
        write_seg_nrrd(labels, tmp_path / "mask.nii.gz")
    nrrd.write(str(tmp_path / "four.nrrd"), np.zeros((2, 3, 4, 5), np.uint8))
    with pytest.raises(InvalidImageError, match="4-D"):
        read_seg_nrrd(tmp_path / "four.nrrd")
    (tmp_path / "junk.seg.nrrd").write_bytes(b"not nrrd at all")
    with pytest.raises(UnsupportedFormatError, match="not an NRRD file"):
        read_seg_nrrd(tmp_path / "junk.seg.nrrd")


def test_cli_export_writes_every_format(tmp_path, capsys):
    _image_and_labels(tmp_path, OBLIQUE)
    base = ["export", str(tmp_path / "labels.nii.gz"),
            "--reference", str(tmp_path / "image.nii.gz")]
    assert main([*base, "-o", str(tmp_path / "out.seg.nrrd"), "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["format"] == "seg.nrrd" and [s["value"] for s in done["segments"]] == [2, 3, 4]
    assert main([*base, "-o", str(tmp_path / "copy.nii.gz")]) == 0
    capsys.readouterr()
    assert np.array_equal(nib.load(tmp_path / "copy.nii.gz").get_fdata(),
                          nib.load(tmp_path / "labels.nii.gz").get_fdata())
    assert main([*base, "-o", str(tmp_path / "lesions.json"), "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["lesions"] == 1 and (tmp_path / "lesions.csv").exists()
    findings = json.loads((tmp_path / "lesions.json").read_text())
    assert len(findings["findings"]) == 1
    assert main([*base, "-o", str(tmp_path / "report.html")]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "Lesion" in html
    assert main([*base, "-o", str(tmp_path / "report.pdf")]) == 0
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")


def test_cli_export_errors_are_one_line(tmp_path, capsys):
    _image_and_labels(tmp_path, np.eye(4))
    base = ["export", str(tmp_path / "labels.nii.gz"),
            "--reference", str(tmp_path / "image.nii.gz")]
    assert main([*base, "-o", str(tmp_path / "out.png")]) == 2
    assert "unknown output format '.png'" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "out.nii.gz"), "--format", "seg.nrrd"]) == 2
    assert "seg.nrrd writes .seg.nrrd files" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "missing" / "out.seg.nrrd")]) == 3
    assert "no such folder" in capsys.readouterr().err
    other = nib.Nifti1Image(np.zeros((10, 10, 10), np.uint8), np.eye(4))
    nib.save(other, tmp_path / "other.nii.gz")
    assert main(["export", str(tmp_path / "other.nii.gz"), "--reference",
                 str(tmp_path / "image.nii.gz"), "-o", str(tmp_path / "x.seg.nrrd")]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not match the image grid" in err[0]
