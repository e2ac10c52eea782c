"""Label names and colours from ITK-SNAP label descriptions, FreeSurfer lookup tables and
3D Slicer colour tables (engine.io.label_tables), and where Delineo uses them."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from engine.cli import main
from engine.core.errors import InvalidLabelTableError, WriteError
from engine.core.volume import BRAIN_LESION_LABELS, Label, LabelTable
from engine.io import load_labels
from engine.io.label_tables import (
    LONG_TABLE,
    fitted,
    freesurfer_lookup_table,
    read_label_table,
    write_label_table,
)
from engine.io.seg_nrrd import read_seg_nrrd

# The layout of FreeSurfer's FreeSurferColorLUT.txt (these few lines written for the test).
FREESURFER_LINES = """\
#$Id: a lookup table in FreeSurfer's layout
#No. Label Name:                            R   G   B   A

0   Unknown                                 0   0   0   0
2   Left-Cerebral-White-Matter              245 245 245 0
3   Left-Cerebral-Cortex                    205 62  78  0   # after the entry
17  Left-Hippocampus                        220 216 20  0
"""

# The layout ITK-SNAP's "Export label descriptions" writes.
ITKSNAP_LINES = """\
################################################
# ITK-SnAP Label Description File
# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL
################################################
    0     0    0    0        0  0  0    "Clear Label"
    1   255    0    0        1  1  1    "Tumour #1 core"
    7     0  255    0     0.50  1  0    "Oedema"
"""


def test_a_freesurfer_lookup_table_reads_values_names_and_colours(tmp_path):
    path = tmp_path / "FreeSurferColorLUT.txt"
    path.write_text(FREESURFER_LINES)
    table = read_label_table(path)
    assert [(v, table.name(v), table.color(v)) for v in table] == [
        (0, "Unknown", (0, 0, 0)), (2, "Left-Cerebral-White-Matter", (245, 245, 245)),
        (3, "Left-Cerebral-Cortex", (205, 62, 78)), (17, "Left-Hippocampus", (220, 216, 20))]


def test_itk_snap_label_descriptions_keep_quoted_names(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text(ITKSNAP_LINES)
    table = read_label_table(path)
    assert [(v, table.name(v)) for v in table] == [
        (0, "Clear Label"), (1, "Tumour #1 core"), (7, "Oedema")]
    assert table.color(7) == (0, 255, 0)


@pytest.mark.parametrize("suffix", [".txt", ".ctbl"])
def test_written_tables_read_back(tmp_path, suffix):
    table = BRAIN_LESION_LABELS.with_label(Label(12, 'Left "amygdala"', (10, 20, 30)))
    back = read_label_table(write_label_table(table, tmp_path / f"names{suffix}"))
    assert list(back) == list(table)
    assert [back.color(v) for v in back] == [table.color(v) for v in table]
    if suffix == ".txt":  # ITK-SNAP names keep their spaces
        assert back.name(2) == "Gray matter" and back.name(12) == "Left 'amygdala'"
    else:  # a colour table's names have none
        assert back.name(2) == "Gray_matter" and back.name(12) == "Left_amygdala"
    with pytest.raises(WriteError, match="ITK-SNAP"):
        write_label_table(table, tmp_path / "names.csv")


@pytest.mark.parametrize(("text", "message"), [
    ("0 Unknown 0 0 0 0\n2 Cortex 300 0 0 0\n", "line 2: colour component 300"),
    ("0 Unknown 0 0 0 0\n0 Again 1 1 1 0\n", "line 2: label value 0 is given twice"),
    ("0 Unknown 0 0\n", "line 1: a colour-table line has 5 or 6 fields"),
    ('    1   255 0 0   1 1 1  "Open\n', "line 1: No closing quotation"),
    ('    1   255 0 0   1.5 1 1  "Too opaque"\n', "line 1: opacity 1.5 is outside 0..1"),
    ("# only a comment\n\n", "no label entry"),
    ("x Unknown 0 0 0 0\n", "label value 'x' is not a whole number"),
])
def test_bad_tables_are_refused_in_one_line_naming_the_line(tmp_path, text, message):
    path = tmp_path / "names.txt"
    path.write_text(text)
    with pytest.raises(InvalidLabelTableError, match=message) as caught:
        read_label_table(path)
    assert "\n" not in str(caught.value) and "names.txt" in str(caught.value)


def test_binary_and_missing_files_are_refused(tmp_path):
    (tmp_path / "image.nii").write_bytes(b"\x00\xff\xfe" * 100)
    with pytest.raises(InvalidLabelTableError, match="not a text file"):
        read_label_table(tmp_path / "image.nii")
    with pytest.raises(InvalidLabelTableError, match="no such file"):
        read_label_table(tmp_path / "absent.txt")


def test_a_long_lookup_table_is_cut_to_the_values_a_map_holds():
    long = LabelTable.from_labels(Label(v, f"L{v}", (v % 256, 0, 0))
                                  for v in range(LONG_TABLE + 10))
    assert list(fitted(long, {3, 17})) == [0, 3, 17]
    short = LabelTable.from_labels(Label(v, f"L{v}", (0, 0, 0)) for v in range(5))
    assert fitted(short, {3}) is short  # a map's own label set is kept whole


def _aseg(tmp_path):
    aseg = np.zeros((20, 20, 20), np.int32)
    aseg[5:10, 5:10, 5:10], aseg[10:15, 5:10, 5:10], aseg[2:4, 2:4, 2:4] = 2, 3, 17
    nib.save(nib.MGHImage(aseg, np.eye(4)), tmp_path / "aseg.mgz")
    return tmp_path / "aseg.mgz"


def test_a_freesurfer_label_map_takes_freesurfer_s_names_when_installed(tmp_path,
                                                                        monkeypatch):
    home = tmp_path / "freesurfer"
    home.mkdir()
    atlas = "".join(f"{v} Structure-{v} {v % 256} 0 0 0\n" for v in range(100, 700))
    (home / "FreeSurferColorLUT.txt").write_text(FREESURFER_LINES + atlas)
    monkeypatch.setenv("FREESURFER_HOME", str(home))
    assert freesurfer_lookup_table() == home / "FreeSurferColorLUT.txt"
    labels = load_labels(_aseg(tmp_path))
    assert [labels.labels.name(v) for v in (2, 3, 17)] == [
        "Left-Cerebral-White-Matter", "Left-Cerebral-Cortex", "Left-Hippocampus"]
    assert list(labels.labels) == [0, 2, 3, 17]  # the atlas-wide table cut to the map
    monkeypatch.setenv("FREESURFER_HOME", str(tmp_path / "nowhere"))
    assert freesurfer_lookup_table() is None
    assert load_labels(_aseg(tmp_path)).labels.name(2) == "Label 2"


def test_cli_export_names_segments_and_writes_label_names(tmp_path, capsys):
    aseg = np.zeros((20, 22, 18), np.uint8)
    aseg[4:10, 5:12, 4:9], aseg[10:16, 5:12, 4:9] = 2, 17
    image = np.random.default_rng(0).normal(100, 5, aseg.shape).astype(np.float32)
    nib.save(nib.Nifti1Image(image, np.eye(4)), tmp_path / "image.nii.gz")
    nib.save(nib.Nifti1Image(aseg, np.eye(4)), tmp_path / "aseg.nii.gz")
    (tmp_path / "lut.txt").write_text(FREESURFER_LINES)
    base = ["export", str(tmp_path / "aseg.nii.gz"), "--reference",
            str(tmp_path / "image.nii.gz"), "--label-names", str(tmp_path / "lut.txt")]
    assert main([*base, "-o", str(tmp_path / "aseg.seg.nrrd")]) == 0
    seg = read_seg_nrrd(tmp_path / "aseg.seg.nrrd")
    assert [seg.labels.name(v) for v in (2, 17)] == [
        "Left-Cerebral-White-Matter", "Left-Hippocampus"]
    capsys.readouterr()
    # the names of what the map holds, for ITK-SNAP beside the NIfTI file
    assert main([*base, "-o", str(tmp_path / "aseg-names.txt"), "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["format"] == "label-names"
    names = read_label_table(tmp_path / "aseg-names.txt")
    assert [(v, names.name(v)) for v in names] == [
        (0, "Unknown"), (2, "Left-Cerebral-White-Matter"), (17, "Left-Hippocampus")]
    (tmp_path / "bad.txt").write_text("2 Cortex 300 0 0\n")
    bad = [*base[:-1], str(tmp_path / "bad.txt"), "-o", str(tmp_path / "x.seg.nrrd")]
    assert main(bad) == 3  # an input that does not read
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "line 1: colour component 300" in err
