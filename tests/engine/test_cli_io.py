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
