"""Pipelines in the engine: composition, parameters, cancellation, post-processing,
and ``delineo-engine compare`` agreeing with ``delineo-engine evaluate``."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from engine.cli import main
from engine.core.errors import ParameterError
from engine.core.jobs import Cancelled, CancelToken
from engine.methods.pipeline import PIPELINES, Pipeline, Step, get_pipeline, run_pipeline
from engine.methods.postprocess import (
    connected_components,
    fill_holes,
    largest_brain_component,
    remove_small_islands,
)

try:
    from tests.engine.test_methods_phantom import mean_dice, phantom
except ImportError:  # tests/engine is on sys.path (pytest "prepend" import mode)
    from test_methods_phantom import mean_dice, phantom  # type: ignore[no-redef]


def test_the_named_pipelines_exist_with_their_steps():
    steps = {name: [s.name for s in PIPELINES[name].steps] for name in PIPELINES}
    assert steps["cnn"] == ["delineo", "largest_component"]
    assert steps["cnn+rd"] == ["delineo", "rd_regularize", "largest_component"]
    assert steps["cnn+rd+ac"] == ["delineo", "rd_regularize", "ac_refine", "largest_component"]
    assert steps["unet"] == ["unet", "largest_component"]
    for name in ("reaction_diffusion", "energy", "active_contour", "otsu", "gmm"):
        assert steps[name] == [name]


def test_a_composed_pipeline_runs_every_step_and_reports_each():
    vol, truth = phantom(3)
    pipe = Pipeline("gmm+rd+islands", "test", (
        Step("gmm", {"iterations": 5}), Step("rd_regularize", {"iterations": 10}),
        Step("small_islands", {"min_size_mm3": 20.0})))
    seen = []
    res = run_pipeline(vol, pipe, device="cpu", mask=truth > 0,
                       progress=lambda f, m: seen.append((f, m)))
    assert [s.name for s in res.steps] == ["gmm", "rd_regularize", "small_islands"]
    assert res.steps[0].params["iterations"] == 5 and res.steps[1].params["iterations"] == 10
    assert all(s.seconds >= 0 for s in res.steps) and res.peak_rss_bytes > 0
    assert res.labels.array.shape == truth.shape and res.labels.same_grid(vol)
    assert res.probabilities is not None
    np.testing.assert_allclose(res.probabilities.sum(axis=0), 1.0, atol=1e-4)
    assert mean_dice(res.labels.array, truth) > 0.9
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("step 2/3 rd_regularize" in m for _, m in seen)


def test_overrides_are_validated_and_bad_compositions_refused():
    vol, truth = phantom(2)
    with pytest.raises(ParameterError):
        get_pipeline("gmm").with_params({0: {"iterations": 0}}).steps[0].resolved_params()
    with pytest.raises(ParameterError, match="segmenting step"):
        run_pipeline(vol, Pipeline("x", "", (Step("fill_holes"),)), device="cpu")
    with pytest.raises(ParameterError, match="probabilities"):
        run_pipeline(vol, Pipeline("x", "", (Step("otsu"), Step("rd_regularize"))),
                     device="cpu", mask=truth > 0)
    with pytest.raises(ParameterError, match="unknown pipeline"):
        get_pipeline("nope")


@pytest.mark.parametrize("cancel_at", [0.0, 0.5])
def test_cancelling_stops_the_pipeline(cancel_at):
    vol, truth = phantom(3)
    token = CancelToken()
    steps_started = []

    def progress(fraction, message):
        if "starting" in message:
            steps_started.append(message)
        if fraction >= cancel_at:
            token.cancel()

    with pytest.raises(Cancelled):
        run_pipeline(vol, "reaction_diffusion", device="cpu", mask=truth > 0,
                     progress=progress, cancel=token)
    assert len(steps_started) <= 1


def test_post_processing_steps():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:12, 2:12, 2:12] = 2
    labels[5:8, 5:8, 5:8] = 0          # an enclosed hole
    labels[4, 4, 4] = 3                # a one-voxel island of WM inside GM
    labels[16:18, 16:18, 16:18] = 1    # a detached piece
    largest = largest_brain_component(labels)
    assert largest[16:18, 16:18, 16:18].max() == 0 and largest[2:12, 2:12, 2:12].max() == 3
    islands = remove_small_islands(labels, min_size_mm3=2.0)
    assert islands[4, 4, 4] == 2 and (islands[16:18, 16:18, 16:18] == 1).all()
    filled = fill_holes(labels)
    assert (filled[5:8, 5:8, 5:8] == 2).all()
    small_only = fill_holes(labels, max_hole_mm3=10.0)  # the 27-voxel hole stays
    assert (small_only[5:8, 5:8, 5:8] == 0).all()


def test_post_processing_components_are_face_connected():
    labels = np.zeros((16, 16, 16), np.uint8)
    labels[2:8, 2:8, 2:8] = 2           # 216 voxels
    labels[8:11, 8:11, 8:11] = 3        # 27 voxels touching the first only at a corner
    largest = largest_brain_component(labels)
    assert (largest[8:11, 8:11, 8:11] == 0).all() and (largest[2:8, 2:8, 2:8] == 2).all()
    labels[8:11, 8:11, 8:11] = 2        # the same label: still a separate, small piece
    components, sizes = connected_components(labels == 2)
    assert components.max() == 2
    assert sorted(sizes[1:].tolist()) == [27, 216]
    islands = remove_small_islands(labels, min_size_mm3=30.0)
    assert (islands[8:11, 8:11, 8:11] == 0).all()  # no face neighbour: background
    # lesions are 26-connected: the corner joins the two pieces
    joined, sizes26 = connected_components(labels == 2, connectivity=26)
    assert joined.max() == 1 and sizes26[1] == 243
    assert connected_components(labels == 2, connectivity=18)[0].max() == 2  # no shared edge
    with pytest.raises(ParameterError, match="6, 18 or 26"):
        connected_components(labels == 2, connectivity=8)


def test_compare_command_agrees_with_evaluate(tmp_path, capsys):
    vol, truth = phantom(3, seed=4)
    affine = np.diag([1.0, 1.0, 1.2, 1.0])
    img, gt = tmp_path / "img.nii.gz", tmp_path / "gt.nii.gz"
    nib.save(nib.Nifti1Image(vol.array, affine), img)
    nib.save(nib.Nifti1Image(truth.astype(np.uint8), affine), gt)
    out = tmp_path / "cmp"
    assert main(["compare", str(img), "--force", "--ground-truth", str(gt),
                 "--pipelines", "otsu,gmm", "--out", str(out), "--mask-from-truth"]) == 0
    with (out / "comparison.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert (out / "comparison.md").stat().st_size > 0 and (out / "montage.png").stat().st_size > 0
    names = {"CSF": "csf", "Gray matter": "gm", "White matter": "wm"}
    for pipeline in ("otsu", "gmm"):
        capsys.readouterr()
        assert main(["evaluate", str(out / f"{pipeline}.nii.gz"), "--ground-truth", str(gt),
                     "--slab", "none", "--json"]) == 0
        evaluated = json.loads(capsys.readouterr().out)["whole"]
        table = {names[r["label"]]: float(r["dice"]) for r in rows
                 if r["method"] == pipeline and r["label"] in names}
        assert set(table) == {"csf", "gm", "wm"}
        for tissue, value in table.items():
            assert value == pytest.approx(evaluated[tissue], abs=1e-4)
        assert evaluated["mean"] > 0.8
