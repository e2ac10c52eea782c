"""``delineo-engine`` speaks one way on every command.

Option spellings (``-o/--output`` for a file, ``--out`` for a folder,
``--device``, ``--series``, ``--json``), the "unknown X; known: ..." wording,
exit statuses (2 usage, 3 data, 1 internal, 130 interrupted, 141 closed
stdout), outputs checked before any work, no folder left behind by a failed
run, and a progress bar that fits the terminal.
"""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from engine.cli import build_parser, main
from engine.cli.progress import ProgressBar, set_quiet
from engine.methods import METHODS
from engine.methods.pipeline import DEFAULT_PIPELINE, PIPELINES

try:
    from tests.engine import dicom_factory as fac
    from tests.engine.test_methods_phantom import mean_dice, phantom
except ImportError:  # tests/engine is on sys.path (pytest "prepend" import mode)
    import dicom_factory as fac  # type: ignore[no-redef]
    from test_methods_phantom import mean_dice, phantom  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
SPACING = (1.2, 1.2, 1.5)


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    if "stdout" not in kwargs:
        kwargs["capture_output"] = True
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], text=True, timeout=300,
                          cwd=ROOT, **kwargs)


def error_line(stderr: str) -> str:
    """The single line an error prints."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("delineo-engine: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def argparse_error(capsys, argv: list[str]) -> str:
    """Run *argv* in-process, expect argparse's exit 2, return its error line."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The 3-D test phantom (36^3), its truth and brain mask as NIfTI files."""
    folder = tmp_path_factory.mktemp("phantom")
    vol, truth = phantom(3)
    affine = np.diag([*SPACING, 1.0])
    img, gt, mask = folder / "img.nii.gz", folder / "gt.nii.gz", folder / "mask.nii.gz"
    nib.save(nib.Nifti1Image(vol.array, affine), img)
    nib.save(nib.Nifti1Image(truth.astype(np.uint8), affine), gt)
    nib.save(nib.Nifti1Image((truth > 0).astype(np.uint8), affine), mask)
    return {"img": img, "gt": gt, "mask": mask, "truth": truth}


@pytest.fixture(scope="module")
def dicom_dir(tmp_path_factory):
    """A DICOM folder with two series: 40 slices of noise (index 0) and the phantom (1)."""
    folder = tmp_path_factory.mktemp("dicom")
    vol, truth = phantom(3)
    affine = fac.axial_affine(step=1.5, spacing=(1.2, 1.2))
    noise = np.random.default_rng(1).uniform(0, 100, size=(8, 8, 40))
    fac.write_series(folder / "noise", noise, affine, slope=0.01, modality="MR",
                     description="noise", series_uid=pydicom.uid.generate_uid())
    uid = pydicom.uid.generate_uid()
    fac.write_series(folder / "phantom", vol.array, affine, slope=0.01, modality="MR",
                     description="phantom", series_uid=uid)
    return folder, uid, truth


# -- one spelling per option ---------------------------------------------------------------
def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions}


def test_outputs_devices_series_and_json_are_spelled_one_way():
    commands = _commands()
    writes_file = {n for n, p in commands.items() if "output" in _options(p)}
    writes_folder = {n for n, p in commands.items() if "out" in _options(p)}
    assert writes_file == {"segment", "convert", "evaluate", "export"}
    assert writes_folder == {"demo-data", "synth", "train", "compare", "benchmark", "batch",
                             "detect", "train-lesions"}
    for name, parser in commands.items():
        opts = _options(parser)
        positionals = {a.dest for a in parser._actions if not a.option_strings}
        assert not positionals & {"output", "out", "outdir"}, name
        if "output" in opts:
            assert opts["output"].option_strings == ["-o", "--output"], name
        if "out" in opts:
            assert opts["out"].option_strings == ["--out"] and opts["out"].required, name
        assert "json" in opts, f"{name} has no --json"
    with_device = {n: _options(p)["device"] for n, p in commands.items()
                   if "device" in _options(p)}
    assert set(with_device) == {"segment", "evaluate", "compare", "train", "benchmark",
                                "batch", "detect", "train-lesions"}
    first = with_device["segment"]
    for name, action in with_device.items():
        assert (action.help, action.default, action.type, action.metavar, action.choices) == (
            first.help, first.default, first.type, first.metavar, first.choices), name
    with_series = {n for n, p in commands.items() if "series" in _options(p)}
    assert with_series == {"info", "convert", "segment", "evaluate", "compare", "export",
                           "detect"}


def test_old_positional_outputs_are_refused(tmp_path, capsys):
    nii = str(ROOT / "tests" / "nonexistent.nii")
    line = argparse_error(capsys, ["convert", nii, str(tmp_path / "out.nii")])
    assert "the following arguments are required: -o/--output" in line
    line = argparse_error(capsys, ["synth", str(tmp_path)])
    assert "the following arguments are required: --out" in line
    line = argparse_error(capsys, ["demo-data", str(tmp_path)])
    assert "the following arguments are required: --out" in line


# -- one wording for unknown names ------------------------------------------------------------
def test_unknown_names_share_one_wording(files, dicom_dir, tmp_path, capsys):
    img, out = str(files["img"]), str(tmp_path / "x.nii.gz")
    folder, _, _ = dicom_dir
    png = tmp_path / "picture.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    cases = [  # argv, exit status, expected message
        (["segment", img, "-o", out, "--pipeline", "nope"], 2,
         f"unknown pipeline 'nope'; known: {', '.join(sorted(PIPELINES))}"),
        (["segment", img, "-o", out, "--method", "nope"], 2,
         f"unknown method 'nope'; known: {', '.join(sorted(METHODS))}"),
        (["segment", img, "-o", out, "--method", "otsu", "--param", "nope=1"], 2,
         "unknown parameter 'nope'; known: "),
        (["segment", img, "-o", str(tmp_path / "x.png"), "--method", "otsu"], 2,
         "unknown output format '.png'; known: .nii, .nii.gz"),
        (["benchmark", "--out", str(tmp_path / "b"), "--methods", "otsu,nope"], 2,
         "unknown method 'nope'; known: "),
        (["info", str(folder), "--series", "7"], 3, "unknown series 7; known: 0 = "),
        (["info", str(png)], 3, "unknown file format '.png'; known: NIfTI (.nii, .nii.gz), "),
    ]
    for argv, status, expected in cases:
        assert main(argv) == status, argv
        assert expected in error_line(capsys.readouterr().err), argv
    parse_cases = [
        (["segment", img, "-o", out, "--device", "tpu"],
         "argument --device: unknown device 'tpu'; known: auto, cpu, cuda, cuda:N"),
        (["train", "--model", "nope", "--steps", "1", "--out", str(tmp_path / "t")],
         "argument --model: unknown model 'nope'; known: delineo, unet"),
        (["synth", "--out", str(tmp_path / "s"), "--contrast", "t9"],
         "argument --contrast: unknown contrast 't9'; known: t1, t2, pd, random"),
        (["train", "--model", "unet", "--steps", "1", "--out", str(tmp_path / "t"),
          "--optimizer", "adam"],
         "argument --optimizer: unknown optimizer 'adam'; known: adamw, sgd"),
    ]
    for argv, expected in parse_cases:
        assert argparse_error(capsys, argv).endswith(expected), argv
    assert not (tmp_path / "b").exists() and not (tmp_path / "t").exists()


# -- exit statuses ------------------------------------------------------------------------
def test_help_documents_the_exit_statuses():
    done = run_cli("--help")
    assert done.returncode == 0
    epilog = done.stdout.split("exit status:")[1]
    for status in ("0", "1", "2", "3", "4", "130"):
        assert re.search(rf"^  {status}\s+\S", epilog, flags=re.MULTILINE), status
    assert "usage error" in epilog and "data error" in epilog and "internal error" in epilog


def test_usage_data_and_internal_errors_have_their_own_status(files, tmp_path, monkeypatch,
                                                              capsys):
    img, out = str(files["img"]), str(tmp_path / "x.nii.gz")
    done = run_cli("segment", img)  # argparse: a required option is missing
    assert done.returncode == 2
    assert "the following arguments are required: -o/--output" in done.stderr
    done = run_cli("segment", img, "-o", out, "--mask", str(tmp_path / "nope.nii.gz"))
    assert done.returncode == 3
    assert "nope.nii.gz" in error_line(done.stderr)
    # A parameter refused only once the image's spacing is known is still a usage error.
    assert main(["segment", img, "--force", "-o", out, "--method", "reaction_diffusion",
                 "--param", "dt=50"]) == 2
    # --force (the test image is no head): the applicability warning, then the error
    warned, last = capsys.readouterr().err.strip().splitlines()
    assert warned.startswith("delineo-engine: warning: field of view")
    assert "stability limit" in error_line(last)

    import engine.cli.io_commands as io_commands

    def boom(*args, **kwargs):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(io_commands, "describe_volume", boom)
    assert main(["info", img]) == 1
    line = error_line(capsys.readouterr().err)
    assert "internal error: RuntimeError: something broke" in line and "--debug" in line
    with pytest.raises(RuntimeError, match="something"):
        main(["--debug", "info", img])

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(io_commands, "describe_volume", interrupt)
    assert main(["info", img]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not Path(out).exists()


@pytest.mark.parametrize("argv", [["pipelines"], ["methods"], ["methods", "--json"],
                                  ["pipelines", "--params"], ["--help"]])
def test_output_into_a_closed_pipe_prints_no_traceback(argv):
    """``delineo-engine pipelines | head -1``: the reader is gone before we write."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = run_cli(*argv, stdout=write_end, stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert done.stderr == "", done.stderr
    assert done.returncode == (0 if argv == ["--help"] else 141)


# -- segment --------------------------------------------------------------------------------
def test_segment_without_a_method_runs_the_default_pipeline(files, tmp_path, capsys,
                                                          monkeypatch):
    from engine.methods import cnn

    monkeypatch.setattr(cnn, "_PREDICTORS", {})  # the networks loaded here do not outlive it
    default, named = tmp_path / "default.nii.gz", tmp_path / "named.nii.gz"
    assert main(["segment", str(files["img"]), "--force", "-o", str(default), "--device", "cpu",
                 "--json"]) == 0
    streams = capsys.readouterr()
    summary = json.loads(streams.out)
    assert summary["pipeline"] == DEFAULT_PIPELINE and summary["method"] is None
    assert PIPELINES[DEFAULT_PIPELINE].describe() in streams.err
    assert main(["segment", str(files["img"]), "--force", "-o", str(named),
                 "--pipeline", DEFAULT_PIPELINE, "--device", "cpu"]) == 0
    assert capsys.readouterr().out.strip() == str(named)
    np.testing.assert_array_equal(np.asarray(nib.load(default).dataobj),
                                  np.asarray(nib.load(named).dataobj))


def test_segment_json_summary_describes_the_written_labels(files, tmp_path, capsys):
    out = tmp_path / "otsu.nii.gz"
    assert main(["segment", str(files["img"]), "--force", "-o", str(out), "--method", "otsu",
                 "--mask", str(files["mask"]), "--device", "cpu", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["output"] == str(out) and summary["method"] == "otsu"
    assert summary["device"] == "cpu" and summary["seconds"] >= 0
    labels = np.asarray(nib.load(out).dataobj)
    assert mean_dice(labels, files["truth"]) > 0.85
    voxel_ml = np.prod(SPACING) / 1000
    assert [e["value"] for e in summary["labels"]] == [1, 2, 3]
    for entry in summary["labels"]:
        assert entry["voxels"] == int((labels == entry["value"]).sum())
        assert entry["volume_ml"] == pytest.approx(entry["voxels"] * voxel_ml, abs=1e-3)
    assert [e["name"] for e in summary["labels"]] == ["CSF", "Gray matter", "White matter"]


@pytest.mark.parametrize(
    ("target", "status", "expected"),
    [("missing/labels.nii.gz", 3, "missing: no such folder for the output"),
     ("labels.png", 2, "unknown output format '.png'; known: .nii, .nii.gz"),
     ("labels", 2, "unknown output format 'labels'"),
     ("folder.nii.gz", 3, "folder.nii.gz: is a folder")],
)
def test_segment_and_convert_check_the_output_before_reading(files, tmp_path, monkeypatch,
                                                             capsys, target, status, expected):
    import engine.cli.io_commands as io_commands
    import engine.cli.method_commands as method_commands

    def no_reading(*args, **kwargs):
        raise AssertionError("the input was read before the output was checked")

    monkeypatch.setattr(method_commands, "load", no_reading)
    monkeypatch.setattr(io_commands, "load", no_reading)
    (tmp_path / "folder.nii.gz").mkdir()
    out = str(tmp_path / target)
    for argv in (["segment", str(files["img"]), "--force", "-o", out, "--method", "otsu"],
                 ["segment", str(files["img"]), "--force", "-o", out],
                 ["convert", str(files["img"]), "-o", out]):
        assert main(argv) == status, argv
        assert expected in error_line(capsys.readouterr().err), argv
    assert not (tmp_path / "missing").exists()


def test_quiet_silences_the_informational_lines(files, tmp_path, capsys):
    out = tmp_path / "q.nii.gz"
    argv = ["segment", str(files["img"]), "--force", "-o", str(out), "--method", "otsu",
            "--device", "cpu"]
    assert main(argv) == 0
    assert "otsu on cpu" in capsys.readouterr().err
    assert main(["--quiet", *argv]) == 0
    streams = capsys.readouterr()
    # only the warning of --force (the test image is no head) outlives --quiet
    assert [line for line in streams.err.splitlines()
            if not line.startswith("delineo-engine: warning: ")] == []
    assert streams.out.strip() == str(out)


# -- DICOM series everywhere ---------------------------------------------------------------
def test_series_selects_the_dicom_series_on_every_reading_command(dicom_dir, tmp_path, capsys):
    folder, uid, truth = dicom_dir
    assert main(["series", str(folder), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(s["index"], s["slices"]) for s in listed] == [(0, 40), (1, 36)]
    assert listed[1]["uid"] == uid

    assert main(["info", str(folder), "--series", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["shape"] == [36, 36, 36]

    img = tmp_path / "phantom.nii.gz"
    assert main(["convert", str(folder), "--series", uid, "-o", str(img), "--json"]) == 0
    converted = json.loads(capsys.readouterr().out)
    assert converted["output"] == str(img) and nib.load(img).shape == (36, 36, 36)
    # the truth in the converted file's voxel order, on its grid
    stored = np.asarray(nib.load(img).dataobj)
    image = phantom(3)[0].array
    flips = next(f for f in ((), (0,), (1,), (0, 1), (2,), (0, 2), (1, 2), (0, 1, 2))
                 if np.allclose(np.flip(image, f) if f else image, stored, atol=0.01))
    gt = tmp_path / "truth.nii.gz"
    nib.save(nib.Nifti1Image(np.flip(truth, flips).astype(np.uint8) if flips else
                             truth.astype(np.uint8), nib.load(img).affine), gt)

    seg = tmp_path / "seg.nii.gz"
    assert main(["segment", str(folder), "--force", "--series", "1", "-o", str(seg),
                 "--method", "otsu", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert nib.load(seg).shape == (36, 36, 36)
    assert mean_dice(np.asarray(nib.load(seg).dataobj), np.asarray(nib.load(gt).dataobj)) > 0.85

    pred = tmp_path / "pred.nii.gz"
    assert main(["evaluate", str(folder), "--force", "--series", "1", "--method", "otsu",
                 "--ground-truth", str(gt), "--slab", "none", "--mask-from-truth", "-o", str(pred),
                 "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["whole"]["mean"] > 0.85 and pred.is_file()

    cmp_dir = tmp_path / "cmp"
    assert main(["compare", str(folder), "--force", "--series", "1", "--ground-truth", str(gt),
                 "--pipelines", "otsu", "--out", str(cmp_dir), "--mask-from-truth",
                 "--no-surface", "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["best"]["pipeline"] == "otsu"
    assert report["best"]["mean_dice"] == pytest.approx(table["whole"]["mean"], abs=1e-3)
    assert all(Path(f).is_file() for f in report["files"])
    assert {Path(f).name for f in report["files"]} == {
        "otsu.nii.gz", "comparison.csv", "comparison.md", "montage.png"}


def test_series_and_info_on_a_folder_without_dicom_exit_3(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here\n")
    for argv in (["series", str(tmp_path)], ["series", str(tmp_path), "--json"],
                 ["info", str(tmp_path)]):
        done = run_cli(*argv)
        assert done.returncode == 3, argv
        assert "no DICOM" in error_line(done.stderr)
        assert done.stdout == ""


def test_evaluate_output_needs_a_method(files, tmp_path, capsys):
    out = tmp_path / "pred.nii.gz"
    assert main(["evaluate", str(files["gt"]), "--ground-truth", str(files["gt"]),
                 "-o", str(out)]) == 2
    assert "-o/--output only apply with --method" in error_line(capsys.readouterr().err)
    assert not out.exists()


# -- JSON from the other commands -----------------------------------------------------------
def test_pipelines_json_marks_the_default(capsys):
    assert main(["pipelines", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert {p["name"] for p in facts} == set(PIPELINES)
    assert [p["name"] for p in facts if p["default"]] == [DEFAULT_PIPELINE]
    gmm = next(p for p in facts if p["name"] == "gmm")
    assert gmm["steps"][0]["name"] == "gmm"
    assert "mrf_beta" in {prm["name"] for prm in gmm["steps"][0]["parameters"]}


def test_synth_json_lists_what_it_wrote(tmp_path, monkeypatch, capsys):
    from engine.data import phantom as phantom_module

    block = phantom_module.toy_tissue_block((20, 22, 10))
    monkeypatch.setattr(phantom_module, "mni_tissue_block", lambda: block)
    out = tmp_path / "new" / "synth"
    assert main(["synth", "--out", str(out), "--contrast", "t2", "--seed", "3", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["image"] == str(out / "phantom.nii.gz") and Path(facts["image"]).is_file()
    assert facts["truth"] == str(out / "truth.nii.gz") and Path(facts["truth"]).is_file()
    assert json.loads(Path(facts["metadata"]).read_text()) == facts["phantom"]
    assert nib.load(facts["image"]).shape == (20, 22, 10)


TOY_TRAIN = ["--model", "unet", "--data", "toy", "--batch-size", "2", "--base", "4",
             "--val-every", "0", "--device", "cpu", "--threads", "1"]


def test_train_json_summary(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TOY_TRAIN, "--steps", "2", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["weights"] == str(out / "unet.safetensors")
    assert Path(summary["weights"]).is_file() and Path(summary["card"]).is_file()
    card = json.loads(Path(summary["card"]).read_text())
    assert summary["steps"] == 2 == card["training"]["steps"]
    assert summary["parameters"] == card["parameters"] and summary["validation"] is None


# -- no folder left behind ------------------------------------------------------------------
def test_a_failed_train_leaves_no_folder_it_created(tmp_path, monkeypatch, capsys):
    out = tmp_path / "a" / "run"
    assert main(["train", *TOY_TRAIN, "--steps", "0", "--out", str(out)]) == 2
    assert "must be positive" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "a").exists()
    assert main(["train", *TOY_TRAIN, "--steps", "1", "--out", str(out),
                 "--volume-resolution", "1.5"]) == 2
    assert "must lie in [0, 1]" in error_line(capsys.readouterr().err)
    status = main(["train", *TOY_TRAIN, "--steps", "1", "--out", str(out),
                   "--init", str(tmp_path / "missing.safetensors")])
    assert status != 0 and "weights file not found" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "a").exists()

    from engine.data.synthesis import SliceSynthesizer

    def broken(self, *args, **kwargs):
        raise RuntimeError("synthesis failed")

    monkeypatch.setattr(SliceSynthesizer, "batch", broken)
    assert main(["train", *TOY_TRAIN, "--steps", "3", "--out", str(out)]) == 1
    assert "synthesis failed" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "a").exists()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    assert main(["train", *TOY_TRAIN, "--steps", "3", "--out", str(mine)]) == 1
    capsys.readouterr()
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_a_failed_compare_or_benchmark_leaves_no_folder_it_created(files, tmp_path,
                                                                   monkeypatch, capsys):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x1f\x8b" + b"broken")
    out = tmp_path / "cmp"
    assert main(["compare", str(files["img"]), "--force", "--ground-truth", str(bad), "--pipelines",
                 "otsu", "--out", str(out)]) == 3
    assert "bad.nii.gz" in error_line(capsys.readouterr().err)
    assert not out.exists()
    assert main(["compare", str(files["img"]), "--force", "--ground-truth", str(files["gt"]),
                 "--pipelines", "otsu,nope", "--out", str(out)]) == 2
    capsys.readouterr()
    assert not out.exists()

    bench = tmp_path / "bench" / "new"
    assert main(["benchmark", "--out", str(bench), "--slices", "0"]) == 2
    assert "--slices must be at least 1" in error_line(capsys.readouterr().err)
    import engine.evaluation.benchmark.run as run_module

    def broken(*args, **kwargs):
        raise RuntimeError("no slices today")

    monkeypatch.setattr(run_module, "case_study_slices", broken)
    assert main(["benchmark", "--out", str(bench), "--quick", "--methods", "otsu"]) == 1
    assert "no slices today" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "bench").exists()


def test_benchmark_json_summary(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["benchmark", "--out", str(out), "--quick", "--methods", "otsu", "--slices", "1",
                 "--no-volume", "--device", "cpu", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["out"] == str(out) and summary["slices"] == 1
    assert [row["method"] for row in summary["case_study"]] == ["otsu"]
    assert 0.5 < summary["case_study"][0]["dice_mean"] <= 1
    assert summary["case_study"][0]["seconds_per_volume"] is None  # NaN is not JSON
    assert str(out / "report.md") in summary["files"]
    assert all(Path(f).is_file() for f in summary["files"])


# -- the progress bar -----------------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_only_on_a_terminal_and_not_when_quiet():
    plain = io.StringIO()
    with ProgressBar("otsu", stream=plain) as bar:
        bar(0.5, "half way")
    assert plain.getvalue() == "" and not bar.enabled

    term = _Terminal()
    with ProgressBar("otsu", stream=term, min_interval=0) as bar:
        bar(0.5, "half way")
        assert bar.enabled
        assert "otsu  50%" in term.getvalue() and "half way" in term.getvalue()

    set_quiet(True)
    try:
        quiet = _Terminal()
        with ProgressBar("otsu", stream=quiet) as bar:
            bar(0.5, "half way")
        assert quiet.getvalue() == "" and not bar.enabled
    finally:
        set_quiet(False)


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _run_on_a_terminal(argv: list[str], columns: int) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal *columns* wide; return (status, screen)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", *argv], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=300), b"".join(chunks).decode(errors="replace")


def test_progress_bar_fits_the_terminal_width(files, tmp_path):
    argv = ["segment", str(files["img"]), "--force", "-o", str(tmp_path / "rd.nii.gz"), "--method",
            "reaction_diffusion", "--param", "iterations=40", "--mask", str(files["mask"]),
            "--device", "cpu"]
    status, screen = _run_on_a_terminal(argv, columns=40)
    assert status == 0
    frames = [ANSI.sub("", f) for f in re.split(r"[\r\n]", screen)]
    bars = [f for f in frames if "%|" in f]
    assert bars, screen
    assert max(len(f) for f in bars) <= 40
    assert any(f.startswith("reaction_diffusion") for f in bars)
    status, screen = _run_on_a_terminal(["--quiet", *argv], columns=40)
    assert status == 0 and "%|" not in screen


IMPORTED_TORCH = """
import contextlib, io, sys
from engine.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        status = main(sys.argv[1:])
    except SystemExit as exc:
        status = exc.code
print(status, "torch" in sys.modules, file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["info", "IMAGE"], ["segment", "--help"],
                                  ["models"]])
def test_commands_without_a_network_do_not_import_torch(files, argv):
    """torch takes about a second to import: ``--help`` and the file commands go
    without it (the parser's choices come from torch-free modules)."""
    argv = [str(files["img"]) if a == "IMAGE" else a for a in argv]
    done = subprocess.run([sys.executable, "-c", IMPORTED_TORCH, *argv], text=True,
                          capture_output=True, timeout=120, cwd=ROOT)
    status, torch_loaded = done.stderr.strip().splitlines()[-1].split()
    assert status in ("0", "None") and torch_loaded == "False", done.stderr
