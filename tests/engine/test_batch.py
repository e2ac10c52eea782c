"""``delineo-engine batch``: a cohort on a real Ray cluster (127.0.0.1, two workers).

Small shell phantoms (40^3 voxels of 2.8 mm, so the classical methods accept
them as heads) keep the file short; "gmm" runs most cases, the default
pipeline one case. Checked: outputs voxel-equal to single ``segment`` runs,
bad files as failed rows, a killed worker process, resume and ``--force``,
the summary and the manifest, a per-case time-out, and the one line printed
without Ray.
"""

from __future__ import annotations

import builtins
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from engine.batch import (
    SUMMARY_COLUMNS,
    CaseConfig,
    collect_cases,
    run_batch,
    write_summary,
)
from engine.batch.runner import loopback_only
from engine.cli import main
from engine.cli.common import EXIT_CASES_FAILED
from engine.core.errors import DelineoError
from engine.io import load_labels
from engine.methods.pipeline import DEFAULT_PIPELINE, get_pipeline

try:
    from tests.engine import dicom_factory as fac
    from tests.engine.test_methods_phantom import INTENSITY, shells
except ImportError:  # tests/engine is on sys.path (pytest "prepend" import mode)
    import dicom_factory as fac  # type: ignore[no-redef]
    from test_methods_phantom import INTENSITY, shells  # type: ignore[no-redef]

try:
    import ray
except ImportError:  # only the tests of a missing Ray run
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (delineo[cluster])")

ROOT = Path(__file__).resolve().parents[2]
SPACING = 2.8  # 40 voxels: a 112 mm field of view, within the declared use


def _phantom(seed: int, size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    scale = size / 40
    labels = shells((size, size, size), (8.0 * scale, 13.0 * scale, (16.0 + seed) * scale))
    rng = np.random.default_rng(seed)
    image = INTENSITY[labels] + rng.normal(0.0, 8.0, labels.shape)
    return image.astype(np.float32), labels.astype(np.uint8)


def _save(path: Path, array: np.ndarray, spacing: float = SPACING) -> Path:
    nib.save(nib.Nifti1Image(array, np.diag([spacing, spacing, spacing, 1.0])), path)
    return path


#: Ray's setting of its workers' niceness, read from the environment when a cluster starts.
WORKER_NICENESS = "RAY_worker_niceness"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local Ray cluster for the module (2 CPUs, 127.0.0.1), stopped whatever happens."""
    if ray is None:
        pytest.skip("Ray is not installed (delineo[cluster])")
    temp = Path(os.environ.get("TMPDIR", "/tmp")) / f"delineo-test-ray-{os.getpid()}"
    # Ray lowers its workers' priority (a positive niceness): beside busy processes (a
    # parallel test worker) they would starve, and the time-out tests would time the wait.
    niceness = os.environ.get(WORKER_NICENESS)
    os.environ[WORKER_NICENESS] = "0"
    with loopback_only():
        try:
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                     _node_ip_address="127.0.0.1", _temp_dir=str(temp), logging_level="error")
            yield ray
        finally:
            ray.shutdown()
            shutil.rmtree(temp, ignore_errors=True)
            if niceness is None:
                os.environ.pop(WORKER_NICENESS, None)
            else:
                os.environ[WORKER_NICENESS] = niceness


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Four phantoms with truths, a DICOM series, a garbage file; a CSV naming them."""
    folder = tmp_path_factory.mktemp("cohort")
    images, truths = folder / "images", folder / "truth"
    images.mkdir()
    truths.mkdir()
    rows = []
    for k in range(4):
        image, labels = _phantom(k)
        _save(images / f"sub-{k:02d}.nii.gz", image)
        _save(truths / f"sub-{k:02d}.nii.gz", labels)
        rows.append((f"sub-{k:02d}", f"images/sub-{k:02d}.nii.gz",
                     f"truth/sub-{k:02d}.nii.gz"))
    (images / "broken.nii.gz").write_bytes(b"this is not an image\n" * 20)
    image, _ = _phantom(5)
    fac.write_series(folder / "dicom" / "sub-05", image, fac.axial_affine(
        step=SPACING, spacing=(SPACING, SPACING)), slope=0.01, modality="MR",
        description="t1", series_uid=pydicom.uid.generate_uid())
    table = folder / "cohort.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "image", "ground_truth"])
        writer.writerows(rows)
        writer.writerow(["sub-05", "dicom/sub-05", ""])
        writer.writerow(["broken", "images/broken.nii.gz", ""])
        writer.writerow(["absent", "images/absent.nii.gz", ""])
    return folder


def _summary(out: Path) -> dict[str, dict[str, str]]:
    with (out / "summary.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == SUMMARY_COLUMNS
        return {row["case"]: row for row in reader}


def _segment(image: Path, output: Path, *extra: str) -> np.ndarray:
    assert main(["-q", "segment", str(image), "-o", str(output), *extra]) == 0
    return np.asarray(load_labels(output).array)


# -- inputs -------------------------------------------------------------------------------
def test_cases_from_folders_files_and_csv(cohort, tmp_path):
    cases = collect_cases([cohort / "cohort.csv"])
    assert [c.case_id for c in cases] == ["sub-00", "sub-01", "sub-02", "sub-03", "sub-05",
                                          "broken", "absent"]
    assert cases[0].ground_truth == str(cohort / "truth" / "sub-00.nii.gz")
    assert cases[4].image == str(cohort / "dicom" / "sub-05") and cases[4].ground_truth is None
    scanned = collect_cases([cohort / "images", cohort / "dicom"])
    assert sorted(c.case_id for c in scanned) == ["broken", "sub-00", "sub-01", "sub-02",
                                                  "sub-03", "sub-05"]
    # the same name twice, and unsafe characters: cleaned and numbered
    odd = tmp_path / "a b&c.nii.gz"
    odd.write_bytes(b"")
    twice = collect_cases([odd, odd, cohort / "images" / "sub-00.nii.gz"])
    assert [c.case_id for c in twice] == ["a_b_c", "a_b_c-2", "sub-00"]
    bad = tmp_path / "bad.csv"
    bad.write_text("case,image\nx/../y,img.nii.gz\n")
    with pytest.raises(DelineoError, match="not filesystem-safe"):
        collect_cases([bad])
    bad.write_text("case,image\nA,1.nii.gz\na,2.nii.gz\n")
    with pytest.raises(DelineoError, match="appears twice"):
        collect_cases([bad])
    bad.write_text("id,path\nA,1.nii.gz\n")
    with pytest.raises(DelineoError, match="needs the columns case and image"):
        collect_cases([bad])


# -- a run, against single segment runs ----------------------------------------------------
def test_batch_equals_segment_and_isolates_bad_cases(cluster, cohort, tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["batch", str(cohort / "cohort.csv"), "--out", str(out), "--method", "gmm",
                   "--workers", "2", "--detect", "--json"])
    captured = capsys.readouterr()
    # the run completes; two failed cases give their own exit status and one closing line
    assert status == EXIT_CASES_FAILED == 4, captured.err
    assert captured.err.strip().splitlines()[-1] == (
        f"delineo-engine: warning: 2 of 7 case(s) failed; their rows in "
        f"{out / 'summary.csv'} say why (exit status 4)")
    report = json.loads(captured.out)
    assert (report["done"], report["failed"], report["skipped"]) == (5, 2, 0)
    rows = _summary(out)
    assert list(rows) == ["sub-00", "sub-01", "sub-02", "sub-03", "sub-05", "broken", "absent"]
    for name in ("broken", "absent"):
        row = rows[name]
        assert row["status"] == "failed" and row["labels"] == "" and row["csf_ml"] == ""
        assert "\n" not in row["error"] and row["error"].startswith(str(cohort / "images"))
    assert "not a NIfTI file" in rows["broken"]["error"]
    assert "no such file" in rows["absent"]["error"]
    assert f"delineo-engine: warning: broken: {rows['broken']['error']}" in captured.err

    for k in range(4):
        case = f"sub-{k:02d}"
        row = rows[case]
        assert row["status"] == "done" and row["error"] == ""
        single = _segment(cohort / "images" / f"{case}.nii.gz", tmp_path / f"{case}.nii.gz",
                          "--method", "gmm")
        batch = load_labels(out / row["labels"])
        np.testing.assert_array_equal(np.asarray(batch.array), single)
        # volumes, Dice and the verdict come from the result itself
        ml = SPACING ** 3 / 1000
        for value, key in ((1, "csf"), (2, "gm"), (3, "wm")):
            assert float(row[f"{key}_ml"]) == pytest.approx((single == value).sum() * ml,
                                                            abs=1e-3)
        truth = np.asarray(nib.load(cohort / "truth" / f"{case}.nii.gz").dataobj)
        gm = 2 * ((single == 2) & (truth == 2)).sum() / ((single == 2).sum() + (truth == 2).sum())
        assert float(row["dice_gm"]) == pytest.approx(gm, abs=1e-4)
        assert float(row["dice_mean"]) > 0.9
        record = batch.metadata["result"]
        assert row["verdict"] == record["plausibility"]["verdict"]
        assert row["warnings"] == "; ".join(record.get("warnings", []))
        assert row["lesion_count"] == "0" and float(row["lesion_ml"]) == 0.0
        findings = json.loads((out / "findings" / f"{case}.json").read_text())
        assert findings["n_lesions"] == 0 and (out / "findings" / f"{case}.csv").is_file()
        assert float(row["runtime_s"]) > 0 and row["worker"] and row["attempts"] == "1"
    dicom = _segment(cohort / "dicom" / "sub-05", tmp_path / "sub-05.nii.gz", "--method", "gmm")
    np.testing.assert_array_equal(
        np.asarray(load_labels(out / rows["sub-05"]["labels"]).array), dicom)
    assert rows["sub-05"]["dice_gm"] == ""  # no ground truth given
    assert len({rows[c]["worker"] for c in rows if rows[c]["status"] == "done"}) == 2

    manifest = json.loads((out / "manifest.json").read_text())
    from engine import __version__

    assert manifest["delineo_version"] == __version__
    assert (manifest["method"], manifest["engine"]) == ("gmm", "ray")
    assert manifest["model_card_sha256"] is None  # a classical method uses no network
    assert manifest["brain_extractor"] is None
    assert manifest["cluster"]["workers"] == 2 and manifest["cluster"]["cpus"] == 2
    assert (manifest["cases"], manifest["done"], manifest["failed"]) == (7, 5, 2)
    assert manifest["started"] <= manifest["ended"]
    assert not list(out.rglob("*.tmp*")), "no temporary file left behind"


def test_resume_skips_finished_cases_and_force_redoes_them(cluster, cohort, tmp_path, capsys):
    out = tmp_path / "run"
    images = [str(cohort / "images" / f"sub-{k:02d}.nii.gz") for k in range(3)]
    args = ["batch", *images, "--out", str(out), "--method", "gmm", "--workers", "2"]
    assert main(args) == 0
    first = {p.name: p.stat().st_mtime_ns for p in (out / "labels").iterdir()}
    capsys.readouterr()
    # a damaged output is redone, the others are skipped
    (out / "labels" / "sub-01.nii.gz").write_bytes(b"\x1f\x8b truncated")
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "skipped 2 case(s) whose outputs exist and load back" in err
    assert "sub-00, sub-02" in err
    rows = _summary(out)
    assert [rows[c]["status"] for c in ("sub-00", "sub-01", "sub-02")] == [
        "skipped", "done", "skipped"]
    assert rows["sub-00"]["gm_ml"] != "" and rows["sub-00"]["verdict"]
    assert (out / "labels" / "sub-00.nii.gz").stat().st_mtime_ns == first["sub-00.nii.gz"]
    # other settings: not the same result, so not skipped
    assert main([*args[:-4], "--method", "otsu", "--workers", "2"]) == 0
    assert "whose outputs exist" not in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert "whose outputs exist" not in capsys.readouterr().err
    assert {r["status"] for r in _summary(out).values()} == {"done"}
    json.loads((out / "manifest.json").read_text())


# -- failures of the machinery -------------------------------------------------------------
def test_a_killed_worker_process_still_yields_every_output(cluster, cohort, tmp_path):
    # a large first case for worker 1, small ones elsewhere: when worker 0 reports its first
    # (small) case, worker 1 is still busy with the large one, and its process is killed
    big = _save(tmp_path / "big.nii.gz", _phantom(1, size=96)[0], spacing=1.2)
    small = [cohort / "images" / f"sub-{k:02d}.nii.gz" for k in range(4)]
    cases = collect_cases([small[0], big, *small[1:], *small])
    killed: list[int] = []

    def kill_the_other_worker(result, run):
        if killed:
            return
        mine = int(result.worker.rpartition(":")[2])
        other = next(pid for pid in run.worker_pids.values() if pid != mine)
        os.kill(other, signal.SIGKILL)
        killed.append(other)

    run = run_batch(cases, tmp_path / "run", CaseConfig(method="gmm"), workers=2,
                    on_result=kill_the_other_worker)
    assert killed
    assert [r.status for r in run.results] == ["done"] * len(cases), [r.error for r in run.results]
    for case in cases:
        assert load_labels(tmp_path / "run" / "labels" / f"{case.case_id}.nii.gz").shape[0] in (
            40, 96)
    by_id = {r.case: r for r in run.results}
    assert by_id["big"].attempts == 2, "the case of the killed worker was given again"
    assert int(by_id["big"].worker.rpartition(":")[2]) != killed[0]
    assert {r.attempts for r in run.results if r.case != "big"} == {1}


def test_a_case_past_its_time_out_fails_and_the_run_goes_on(cluster, tmp_path):
    fast = _save(tmp_path / "fast.nii.gz", _phantom(0)[0])
    slow = _save(tmp_path / "slow.nii", _phantom(1, size=200)[0], spacing=0.56)
    cases = collect_cases([fast, slow])
    # gmm alone takes 0.05 s on the fast case and 9.5 s on the slow one (one thread); the
    # 5 s limit leaves the fast case room for a loaded machine and still stops the slow one.
    # One thread: two OpenMP threads on a CPU shared with a parallel test worker spin-wait
    # at every small torch call, and the fast case then took more than 5 s.
    run = run_batch(cases, tmp_path / "run", CaseConfig(method="gmm"), workers=1, threads=1,
                    timeout=5.0)
    done, late = run.results
    assert done.status == "done", done.error
    assert late.status == "failed" and late.error.startswith("timed out after 5 s")
    assert not (tmp_path / "run" / "labels" / "slow.nii.gz").exists()


def test_outside_declared_use_fails_unless_allowed(cluster, tmp_path):
    small = _save(tmp_path / "small.nii.gz", _phantom(0)[0], spacing=1.0)  # 40 mm across
    out = tmp_path / "run"
    refused = run_batch(collect_cases([small]), out, CaseConfig(method="gmm"), workers=1)
    row = refused.results[0]
    assert row.status == "failed"
    assert "use --allow-outside-use to run anyway" in row.error and "\n" not in row.error
    allowed = run_batch(collect_cases([small]), out,
                        CaseConfig(method="gmm", allow_outside_use=True), workers=1)
    row = allowed.results[0]
    assert row.status == "done" and row.warnings
    write_summary(allowed.results, out)
    written = _summary(out)["small"]
    assert written["warnings"] == "; ".join(
        load_labels(out / "labels" / "small.nii.gz").metadata["result"]["warnings"])


def test_without_ray_one_line_and_exit_2(cohort, tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    out = tmp_path / "never"
    assert main(["batch", str(cohort / "cohort.csv"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'delineo[cluster]'" in err[0]
    assert err[0].startswith("delineo-engine: error: ")
    assert not out.exists()


def test_options_are_checked_before_any_work(cohort, tmp_path, capsys):
    out = tmp_path / "never"
    for extra in (["--workers", "-1"], ["--retries", "-2"], ["--timeout", "-1"],
                  ["--pipeline", "nope"], ["--method", "gmm", "--param", "iterations=0"]):
        assert main(["batch", str(cohort / "cohort.csv"), "--out", str(out), *extra]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not out.exists()


# -- the command line as users run it: its own embedded cluster, the default pipeline -------
@needs_ray
def test_command_line_with_embedded_cluster_and_default_pipeline(cohort, tmp_path):
    out = tmp_path / "run"
    image = cohort / "images" / "sub-00.nii.gz"
    done = subprocess.run([sys.executable, "-m", "engine.cli", "batch", str(image), "--out",
                           str(out), "--workers", "1", "--allow-outside-use"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out / "summary.csv")
    single = _segment(image, tmp_path / "single.nii.gz", "--force")
    np.testing.assert_array_equal(np.asarray(load_labels(out / "labels" / "sub-00.nii.gz")
                                             .array), single)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pipeline"] == DEFAULT_PIPELINE and manifest["address"] == "local"
    assert manifest["model_card_sha256"] and len(manifest["model_card_sha256"]) == 64
    # the default pipeline extracts the brain first, with deepbet's networks
    assert manifest["brain_extractor"]["name"] == "deepbet"


def test_the_manifest_names_the_lesion_network_of_a_lesion_pipeline():
    """A pipeline with the lesions step runs the tissue network and both lesion networks:
    every model card is hashed (and each is what a worker preloads); with the step's
    ensemble turned off, the first lesion network alone."""
    from engine.batch import model_card_hash
    from engine.batch.runner import _network_names
    from engine.methods.lesion_step import LESION_MODELS

    plain_hash, plain = model_card_hash(CaseConfig(pipeline="cnn"))
    assert not set(LESION_MODELS) & set(plain) and plain_hash
    # the default pipeline's tissue network is the second lesion network: each once
    assert _network_names(CaseConfig(pipeline="head")) == [LESION_MODELS[1],
                                                           LESION_MODELS[0]]
    config = CaseConfig(pipeline="head+lesions", detect=True)
    assert _network_names(config)[-2:] == list(LESION_MODELS)
    lesion_hash, cards = model_card_hash(config)
    assert set(cards) == set(plain) | set(LESION_MODELS)
    assert all(len(v) == 64 for v in cards.values()) and lesion_hash != plain_hash
    steps = [s.name for s in get_pipeline("head+lesions").steps]
    single = CaseConfig(pipeline="head+lesions", detect=True,
                        overrides={steps.index("lesions"): {"ensemble": False}})
    assert _network_names(single)[-1] == LESION_MODELS[0]
    assert LESION_MODELS[1] not in _network_names(single)
