"""Plausibility: the verdict passes the demo brain and flags a whole head."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.cli import main
from engine.core.volume import LabelMap, Volume
from engine.data.heads import synthetic_head
from engine.data.mni import load_demo
from engine.evaluation.plausibility import (
    ADULT_RANGES,
    assess,
    uncertain_regions,
    uncertainty_map,
)
from engine.io import load, save
from engine.methods.pipeline import DEFAULT_PIPELINE, run_pipeline


def test_uncertainty_is_zero_when_sure_and_one_when_uniform():
    p = np.zeros((4, 3, 3, 3), np.float32)
    p[2] = 1.0
    assert np.array_equal(uncertainty_map(p), np.zeros((3, 3, 3), np.float32))
    p[:] = 0.25
    np.testing.assert_allclose(uncertainty_map(p), 1.0, atol=1e-6)
    p[:, 0, 0, 0] = [0.5, 0.5, 0.0, 0.0]  # two classes tied out of four: log 2 / log 4
    assert uncertainty_map(p)[0, 0, 0] == pytest.approx(0.5, abs=1e-6)


def test_volumes_and_fractions_are_measured_in_ml():
    lab = np.zeros((100, 100, 100), np.uint8)
    lab[10:90, 10:90, 10:90] = 3  # 512 000 voxels
    lab[20:80, 20:80, 20:60] = 2  # 144 000
    lab[45:55, 45:55, 45:55] = 1  # 1 000
    affine = np.diag([1.2, 1.2, 1.2, 1.0])  # 1.728 uL per voxel
    report = assess(LabelMap(lab, affine))
    ml = 1.728e-3
    assert report.labelled_ml == pytest.approx(512_000 * ml)
    assert report.volumes_ml["CSF"] == pytest.approx(1_000 * ml)
    assert report.volumes_ml["Gray matter"] == pytest.approx((144_000 - 1_000) * ml)
    assert report.fractions["White matter"] == pytest.approx((512_000 - 144_000) / 512_000)
    assert report.verdict == "review this"  # 885 mL, 1 % CSF: outside the adult ranges
    assert any("below the adult range" in r for r in report.reasons)
    assert any(r.startswith("CSF is 0%") for r in report.reasons)


def test_ground_truth_of_the_demo_looks_typical():
    t1, truth = load_demo()
    report = assess(truth, None, t1)
    assert report.verdict == "looks typical", report.reasons
    lo, hi = ADULT_RANGES["labelled_ml"]
    assert lo < report.labelled_ml < hi


def test_labels_in_air_are_flagged():
    t1, truth = load_demo()
    grown = truth.array.copy()
    from scipy import ndimage

    shell = ndimage.binary_dilation(grown > 0, iterations=4) & (grown == 0)
    grown[shell] = 1  # CSF painted into the empty space around the stripped brain
    report = assess(truth.with_array(grown), None, t1)
    assert report.verdict == "review this"
    assert any("have no signal" in r for r in report.reasons), report.reasons
    assert report.no_signal_fraction > 0.05


def test_uncertain_regions_are_ranked_and_their_centres_lie_inside():
    u = np.zeros((40, 40, 40), np.float32)
    u[5:10, 5:10, 5:10] = 0.9  # 125 voxels, sum 112.5
    u[20:35, 20:35, 20:23] = 0.6  # 675 voxels, sum 405
    u[30, 5, 5] = 1.0  # a speck: left out
    # a ring: its centre of mass is outside it
    yy, xx = np.mgrid[0:40, 0:40]
    ring = (np.hypot(yy - 20, xx - 20) > 12) & (np.hypot(yy - 20, xx - 20) < 14)
    u[:, :, 36][ring] = 0.55
    regions = uncertain_regions(u, min_voxels=20)
    assert regions[0].voxels == 675
    assert all(r.voxels >= 20 for r in regions)
    assert {r.voxels for r in regions} == {675, 125, int(ring.sum())}
    for r in regions:
        assert u[r.centroid] > 0.5
    sums = [r.voxels * r.mean_uncertainty for r in regions]
    assert sums == sorted(sums, reverse=True)
    # the same regions wherever they sit in a larger volume (found in their box)
    big = np.zeros((57, 61, 50), np.float32)
    big[7:47, 13:53, 3:43] = u
    moved = uncertain_regions(big, min_voxels=20)
    assert [(r.voxels, r.mean_uncertainty) for r in moved] == [
        (r.voxels, r.mean_uncertainty) for r in regions]
    for r, m in zip(regions, moved, strict=True):
        assert m.centroid == tuple(c + o for c, o in zip(r.centroid, (7, 13, 3), strict=True))
        assert m.bbox == tuple((a + o, b + o)
                               for (a, b), o in zip(r.bbox, (7, 13, 3), strict=True))
    assert uncertain_regions(np.zeros((5, 6, 7), np.float32)) == []


@pytest.fixture(scope="module")
def demo_result():
    t1, _ = load_demo()
    return t1, run_pipeline(t1, DEFAULT_PIPELINE, device="cpu")


def test_network_result_on_the_demo_looks_typical(demo_result):
    t1, result = demo_result
    report = assess(result.labels, result.segment_probabilities, t1)
    assert report.verdict == "looks typical", report.reasons
    assert 0.0 < report.uncertainty_mean < 0.15
    assert report.uncertainty_p95 > report.uncertainty_mean


@pytest.mark.slow
def test_whole_head_failure_is_flagged_and_brain_extraction_fixes_it():
    """The real-heads failure: a brain-only network on a whole head labels skull and neck
    as tissue and the verdict must catch it; the default pipeline extracts the brain first."""
    head = synthetic_head("t1", seed=3)
    brain_only = run_pipeline(head.image, "cnn", device="cpu")
    report = assess(brain_only.labels, brain_only.segment_probabilities, head.image)
    assert report.verdict == "review this"
    assert report.labelled_ml > ADULT_RANGES["labelled_ml"][1]
    assert any("above the adult range" in r for r in report.reasons)
    assert DEFAULT_PIPELINE == "head"
    on_head = run_pipeline(head.image, DEFAULT_PIPELINE, device="cpu")
    report = assess(on_head.labels, on_head.segment_probabilities, head.image)
    assert report.verdict == "looks typical", report.reasons
    # Tissue only inside the intracranial mask, which is close to the true one.
    mask = on_head.brain_mask
    assert mask is not None and not on_head.labels.array[~mask].any()
    truth = head.intracranial
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) > 0.93
    stripped = run_pipeline(head.brain_image, DEFAULT_PIPELINE, device="cpu")
    report = assess(stripped.labels, stripped.segment_probabilities, head.brain_image)
    assert report.verdict == "looks typical", report.reasons


def test_cli_segment_prints_the_verdict_and_writes_the_uncertainty(tmp_path, capsys):
    t1, _ = load_demo()
    block = Volume(t1.array[40:160, 40:200, 60:120].astype(np.float32), t1.affine, modality="MR")
    image = tmp_path / "block.nii.gz"
    save(block, image)
    out, unc = tmp_path / "labels.nii.gz", tmp_path / "uncertainty.nii.gz"
    assert main(["segment", str(image), "-o", str(out), "--uncertainty", str(unc),
                 "--device", "cpu", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    verdict = summary["plausibility"]["verdict"]
    assert verdict in ("looks typical", "review this")
    # A 120 x 160 x 60 mm block is no whole brain: the labelled volume is too small.
    assert verdict == "review this"
    assert "plausibility: review this" in captured.err
    back = load(out)
    assert back.metadata["plausibility"]["verdict"] == "review this"
    assert "review this" in back.metadata["description"]
    u = load(unc)
    assert u.shape == block.shape and u.same_grid(block)
    assert float(u.array.min()) >= 0.0 and float(u.array.max()) <= 1.0
    assert float(u.array.max()) > 0.3


def test_cli_uncertainty_needs_probabilities(tmp_path, capsys):
    t1, _ = load_demo()
    image = tmp_path / "demo.nii.gz"
    save(t1, image)
    status = main(["segment", str(image), "-o", str(tmp_path / "l.nii.gz"), "--method", "otsu",
                   "--uncertainty", str(tmp_path / "u.nii.gz"), "--device", "cpu"])
    assert status == 3
    assert "needs class probabilities" in capsys.readouterr().err
    assert not (tmp_path / "l.nii.gz").exists() and not (tmp_path / "u.nii.gz").exists()
