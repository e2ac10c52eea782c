"""The lesion network: training, the ``lesions`` step, its pipelines (pool: test_lesion_pool)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.core.errors import ParameterError
from engine.core.jobs import Cancelled, CancelToken
from engine.core.volume import BRAIN_LESION_LABELS, BRAIN_TISSUE_LABELS, LabelMap, Volume
from engine.data.lesions import add_lesions
from engine.data.phantom import synthesize_phantom
from engine.methods.lesion_step import (
    LESION_MODELS,
    LesionParams,
    find_lesions,
    threshold_lesions,
)
from engine.methods.pipeline import PIPELINES, STEPS, run_pipeline
from engine.models.lesion_training import (
    LESION_CLASSES,
    LesionTrainConfig,
    lesion_checkpoint_config,
    train_lesion,
)
from engine.models.weights import load_model


def test_toy_training_writes_weights_card_and_resumes(tmp_path):
    config = LesionTrainConfig(steps=4, batch_size=4, pool_volumes=2, crop=(32, 32), warmup=2,
                               checkpoint_every=2, device="cpu")
    card = train_lesion(config, tmp_path / "full", toy=True, command="test")
    model, stored = load_model(tmp_path / "full" / "lesion.safetensors")
    assert stored["labels"] == {"0": "background", "1": "lesion"}
    assert stored["architecture"]["arguments"]["n_classes"] == 2
    assert card["training"]["pool"]["volumes"] == 2
    assert lesion_checkpoint_config(tmp_path / "full" / "checkpoint.safetensors").steps == 4

    # interrupted after step 2 (the checkpoint stays), resumed: the same weights
    token = CancelToken()

    def stop(fraction: float, message: str) -> None:
        if message.startswith("step 3/"):
            token.cancel()

    with pytest.raises(Cancelled):
        train_lesion(config, tmp_path / "cut", toy=True, progress=stop, cancel=token)
    assert (tmp_path / "cut" / "checkpoint.safetensors").is_file()
    assert not (tmp_path / "cut" / "lesion.safetensors").exists()
    train_lesion(config, tmp_path / "cut", toy=True, resume=True)
    resumed, _ = load_model(tmp_path / "cut" / "lesion.safetensors")
    for (name, a), (_, b) in zip(model.state_dict().items(), resumed.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    changed = LesionTrainConfig(**{**config.__dict__, "lr": 1e-4})
    with pytest.raises(ParameterError, match="recipe"):
        train_lesion(changed, tmp_path / "cut", toy=True, resume=True)
    runs = json.loads((tmp_path / "cut" / "lesion.json").read_text())["training"]["runs"]
    assert [(r["from_step"], r["to_step"]) for r in runs] == [(0, 2), (2, 4)]


def test_tissue_plus_lesion_starts_from_the_tissue_network(tmp_path):
    """The five-output network keeps the tissue network's four outputs at step 0."""
    tissue, _ = load_model("delineo")
    config = LesionTrainConfig(classes="tissue+lesion", init="delineo",
                               model_args={"base": 16, "skip_channels": 16})
    from engine.models.lesion_training import _build

    grown, args = _build(config, torch.device("cpu"))
    assert args["n_classes"] == len(LESION_CLASSES["tissue+lesion"]) == 5
    grown.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(grown(x)[:, :4], tissue(x), atol=1e-5)
        assert torch.allclose(grown(x)[:, 4], torch.zeros(1, 64, 64))
    with pytest.raises(ParameterError, match="architecture"):
        _build(LesionTrainConfig(init="delineo"), torch.device("cpu"))


def test_threshold_lesions_drops_small_pieces():
    prob = np.zeros((20, 20, 20), np.float32)
    prob[2:6, 2:6, 2:6] = 0.9  # 64 voxels
    prob[12, 12, 12] = 0.95  # 1 voxel
    prob[15:17, 2:4, 2:4] = 0.4  # below the threshold
    prob[8:10, 8:10, 8:10] = 0.8  # 8 voxels in two pieces of 4 touching at a corner only
    prob[8, 8:10, 8:10] = 0.0
    prob[10, 10:12, 10:12] = 0.8
    brain = np.ones_like(prob, bool)
    found = threshold_lesions(prob, brain, 0.5, 6.0, 1.0)
    assert int(found.sum()) == 64 + 8  # 26-connected: the two small pieces are one lesion
    prob[8:11, 8:12, 8:12] = 0.0
    found = threshold_lesions(prob, brain, 0.5, 6.0, 1.0)
    assert int(found.sum()) == 64
    assert int(threshold_lesions(prob, brain, 0.5, 0.0, 1.0).sum()) == 65
    assert not threshold_lesions(prob, np.zeros_like(brain), 0.5, 0.0, 1.0).any()


def test_the_outline_level_grows_found_lesions_and_finds_none_of_its_own():
    prob = np.zeros((20, 20, 20), np.float32)
    prob[2:8, 2:8, 2:8] = 0.7  # a lesion's rim ...
    prob[4:6, 4:6, 4:6] = 0.97  # ... around its core
    prob[12:16, 12:16, 12:16] = 0.8  # a piece above the outline level only: no lesion
    prob[8, 8, 8] = 0.6  # touches the rim at a corner only (26-connected)
    brain = np.ones_like(prob, bool)
    core = threshold_lesions(prob, brain, 0.95, 0.0, 1.0)
    assert int(core.sum()) == 8
    # an outline level at or above the threshold changes nothing
    assert np.array_equal(threshold_lesions(prob, brain, 0.95, 0.0, 1.0, outline=0.99), core)
    assert np.array_equal(threshold_lesions(prob, brain, 0.95, 0.0, 1.0, outline=0.95), core)
    grown = threshold_lesions(prob, brain, 0.95, 0.0, 1.0, outline=0.65)
    assert int(grown.sum()) == 6 ** 3 and not grown[12:16, 12:16, 12:16].any()
    grown = threshold_lesions(prob, brain, 0.95, 0.0, 1.0, outline=0.5)
    assert int(grown.sum()) == 6 ** 3 + 1 and grown[8, 8, 8]
    # the minimum size applies to the outlined lesion; the outline stays inside the brain
    assert int(threshold_lesions(prob, brain, 0.95, 100.0, 1.0, outline=0.5).sum()) == 217
    assert not threshold_lesions(prob, brain, 0.95, 100.0, 1.0).any()
    brain[:, :, 7] = False
    assert int(threshold_lesions(prob, brain, 0.95, 0.0, 1.0, outline=0.65).sum()) == 6 * 6 * 5


def test_lesion_step_and_pipelines_are_declared():
    assert STEPS["lesions"].kind == "refine"
    assert [s.name for s in PIPELINES["head+lesions"].steps] == [
        "brain_mask", "delineo", "largest_component", "lesions"]
    assert [s.name for s in PIPELINES["cnn+lesions"].steps] == [
        "delineo", "largest_component", "lesions"]
    assert PIPELINES["head"].steps[-1].name == "lesions"  # the default finds lesions too


def _lesion_phantom(contrast: str = "t2"):
    """A 50-slice slab of a T2 phantom with one 12 mm white-matter lesion (small and fast).

    The slab (k 95-144) lies above the held-out slab: these tests check that the step
    and ``detect`` work, not accuracy on unseen anatomy, which
    benchmarks/eval_lesions.py measures (docs/lesions.md)."""
    image, truth = synthesize_phantom(contrast, noise=0.03, inu=0.2, seed=321)
    image, labels, found = add_lesions(image, truth, contrast=contrast, count=1,
                                       sizes_mm=(12.0, 13.0), seed=5,
                                       regions={"white_matter": 1.0}, within_k=(105, 130))
    box = (slice(None), slice(None), slice(95, 145))
    affine = image.affine.copy()
    affine[:3, 3] = image.affine[:3, :3] @ np.array([0, 0, 95]) + image.affine[:3, 3]
    crop = Volume(np.ascontiguousarray(image.array[box]), affine, modality="MR")
    lab = LabelMap(np.ascontiguousarray(labels.array[box]), affine.copy(),
                   labels=BRAIN_LESION_LABELS)
    return crop, lab, found


def test_find_lesions_finds_a_large_lesion_and_keeps_tissue():
    image, labels, _ = _lesion_phantom()
    tissue = LabelMap(np.where(labels.array == 4, 3, labels.array).astype(np.uint8),
                      image.affine.copy(), labels=BRAIN_TISSUE_LABELS)
    out, prob = find_lesions(image, tissue, LesionParams(), device="cpu")
    truth = labels.array == 4
    hit = out == 4
    assert prob.shape == image.shape and prob.dtype == np.float32
    assert 2 * (hit & truth).sum() / (hit.sum() + truth.sum()) > 0.6
    # outside the lesions the tissue labels are untouched; no lesion outside the brain
    assert np.array_equal(out[~hit], tissue.array[~hit])
    assert not (hit & (tissue.array == 0)).any()


def test_both_networks_are_averaged_and_the_second_runs_only_where_the_mean_can_reach():
    """The step's default averages the two shipped lesion networks. Without an outline
    level the second runs only on the slices where the first gives at least 2t - 1, and
    the lesions and the map above the threshold are exactly those of running both
    everywhere; elsewhere the map is half the first network's probability, below the
    threshold. With one, it runs where the outlines can reach, and the outlined lesions
    are exactly those of the full mean."""
    image, labels, _ = _lesion_phantom()
    tissue = LabelMap(np.where(labels.array == 4, 3, labels.array).astype(np.uint8),
                      image.affine.copy(), labels=BRAIN_TISSUE_LABELS)
    t = LesionParams().min_probability
    params = LesionParams(outline_probability=t)  # no outline level
    messages = []
    out, prob = find_lesions(image, tissue, params, device="cpu",
                             progress=lambda f, m: messages.append(m))
    _, p1 = find_lesions(image, tissue, params, device="cpu", model=LESION_MODELS[0])
    _, p2 = find_lesions(image, tissue, params, device="cpu", model=LESION_MODELS[1])
    mean = (p1 + p2) / 2
    brain = tissue.array > 0
    assert np.array_equal(out == 4, threshold_lesions(mean, brain, t, params.min_lesion_mm3,
                                                      image.voxel_volume_ml * 1000.0))
    assert (out == 4).sum() > 500  # the 12 mm lesion
    ran = [m for m in messages if m.startswith(f"lesion network {LESION_MODELS[1]} on ")]
    n_ran, n_all = (int(w) for w in ran[0].split(" on ")[1].split(" slices")[0].split(" of "))
    assert 0 < n_ran < n_all
    second = (p1 >= 2 * t - 1).any(axis=(0, 1))  # slices of the volume the second saw
    np.testing.assert_allclose(prob[:, :, second], mean[:, :, second], atol=1e-5)
    np.testing.assert_allclose(prob[:, :, ~second], p1[:, :, ~second] / 2, atol=1e-6)
    assert prob[:, :, ~second].max() < t
    # the first network alone, as before the ensemble
    _, p_single = find_lesions(image, tissue, LesionParams(ensemble=False), device="cpu")
    assert np.array_equal(p_single, p1)
    # with an outline level (the default, and a lower one): the second network runs on
    # the slices the outlines can reach, and the outlined lesions are exactly those of
    # the full mean
    assert LesionParams().outline_probability == 0.7
    for outline in (0.7, 0.6):
        grown_params = LesionParams(outline_probability=outline)
        messages.clear()
        grown, _ = find_lesions(image, tissue, grown_params, device="cpu",
                                progress=lambda f, m: messages.append(m))
        full = threshold_lesions(mean, brain, t, 0.0, 1.0, outline=outline)
        assert np.array_equal(grown == 4, full)
        assert full.sum() > (out == 4).sum() and (full >= (out == 4)).all()
        ran = [m for m in messages if m.startswith(f"lesion network {LESION_MODELS[1]} on ")]
        assert int(ran[0].split(" on ")[1].split(" of ")[0]) >= n_ran


def test_cnn_plus_lesions_pipeline_paints_label_4():
    image, _, _ = _lesion_phantom()
    result = run_pipeline(image, "cnn+lesions", device="cpu")
    assert result.labels.labels == BRAIN_LESION_LABELS
    assert 4 in set(np.unique(result.labels.array).tolist())
    assert result.info["lesion_probability"].shape == image.shape
    assert result.info["lesion_networks"] == list(LESION_MODELS)
    assert [s.name for s in result.steps][-1] == "lesions"
