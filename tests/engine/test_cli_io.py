"""The batch CLI: info, convert, demo-data; bad input prints one line and exits 3."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from engine.cli import main

NIB_DATA = Path(nib.__file__).parent / "tests" / "data"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_info_json_describes_a_real_file(capsys):
    assert main(["info", str(NIB_DATA / "anatomical.nii"), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["shape"] == [33, 41, 25]
    assert facts["source_orientation"] == "LAS"
    assert facts["orientation"] == "RAS"
    assert facts["spacing_mm"] == [2.0, 2.0, 2.0]
    assert facts["format"] == "nifti"
    assert np.allclose(facts["source_affine"], nib.load(NIB_DATA / "anatomical.nii").affine)


def test_info_text_lists_the_affine(capsys):
    assert main(["info", str(NIB_DATA / "example4d.nii.gz")]) == 0
    out = capsys.readouterr().out
    assert "128 x 96 x 24" in out
    assert "affine" in out
    assert "warning: 4-D file" in out


def test_convert_keeps_geometry(tmp_path):
    out = tmp_path / "anat.nii.gz"
    assert main(["convert", str(NIB_DATA / "anatomical.nii"), "-o", str(out)]) == 0
    a, b = nib.load(NIB_DATA / "anatomical.nii"), nib.load(out)
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-5)
    np.testing.assert_array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))


def test_convert_canonical_writes_ras(tmp_path):
    out = tmp_path / "ras.nii"
    assert main(["convert", "--canonical", str(NIB_DATA / "anatomical.nii"), "--output",
                 str(out)]) == 0
    assert nib.aff2axcodes(nib.load(out).affine) == ("R", "A", "S")


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "empty"), (b"plain text, not an image\n" * 20, "not a NIfTI")],
)
def test_bad_input_prints_one_line_and_exits_3(tmp_path, content, expected):
    bad = tmp_path / "bad.nii"
    bad.write_bytes(content)
    done = run_cli("info", str(bad))
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "bad.nii" in lines[0] and expected in lines[0]
    assert "Traceback" not in done.stderr


def test_missing_file_exits_3(tmp_path):
    done = run_cli("convert", str(tmp_path / "nope.nii"), "-o", str(tmp_path / "out.nii"))
    assert done.returncode == 3
    assert "nope.nii" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.nii").exists()


def test_failed_convert_writes_no_output(tmp_path):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x1f\x8b" + b"broken")
    done = run_cli("convert", str(bad), "-o", str(tmp_path / "out.nii.gz"))
    assert done.returncode == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.nii.gz"]


def test_help_lists_the_commands():
    done = run_cli("--help")
    assert done.returncode == 0
    for cmd in ("info", "convert", "demo-data", "series"):
        assert cmd in done.stdout


def _pydicom_test_folder(tmp_path: Path) -> Path:
    import shutil

    import pydicom

    folder = tmp_path / "test_files"
    shutil.copytree(Path(pydicom.__file__).parent / "data" / "test_files", folder)
    return folder


def test_info_on_a_folder_of_many_series_says_which_it_took(tmp_path, capsys):
    folder = _pydicom_test_folder(tmp_path)
    assert main(["info", str(folder)]) == 0
    captured = capsys.readouterr()
    assert "warning: folder holds " in captured.out
    assert "the largest that reads" in captured.out
    hint = [line for line in captured.err.splitlines() if "--series" in line]
    assert len(hint) == 1 and hint[0].startswith("delineo-engine: warning: ")
    assert main(["info", str(folder), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["n_series"] > 2 and facts["skipped_series"]
    assert all(s["reason"] for s in facts["skipped_series"])


def test_series_marks_unreadable_series(tmp_path, capsys):
    folder = _pydicom_test_folder(tmp_path)
    assert main(["series", str(folder), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["slices"] == 50 and rows[0]["readable"] is False
    assert "truncated" in rows[0]["problem"]
    readable = [r for r in rows if r["readable"]]
    assert readable and all(r["problem"] is None for r in readable)
    assert main(["series", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "UNREADABLE: " in lines[0]
    assert sum("UNREADABLE" not in line for line in lines) == len(readable)
