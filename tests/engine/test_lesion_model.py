"""The lesion network: its training data, training, the ``lesions`` step and its pipelines."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.core.errors import ParameterError
from engine.core.jobs import Cancelled, CancelToken
from engine.core.volume import BRAIN_LESION_LABELS, BRAIN_TISSUE_LABELS, LabelMap, Volume
from engine.data.lesions import add_lesions
from engine.data.mni import HELD_OUT_SLAB
from engine.data.phantom import mni_tissue_block, synthesize_phantom, toy_tissue_block
from engine.methods.lesion_step import (
    LESION_MODELS,
    LesionParams,
    find_lesions,
    threshold_lesions,
)
from engine.methods.pipeline import PIPELINES, STEPS, run_pipeline
from engine.models.lesion_training import (
    LESION_CLASSES,
    POOL_HEAD_CONTRASTS,
    LesionTrainConfig,
    PoolSampler,
    _draw_head_volume,
    _draw_pool_volume,
    _to_blocks,
    is_head_volume,
    lesion_checkpoint_config,
    lesion_pool,
    train_lesion,
    varied_template,
)
from engine.models.weights import load_model


def test_pool_blocks_never_hold_the_held_out_slab():
    """A pool volume is cut into k < 70 and k >= 90 after the lesions are painted."""
    rng = np.random.default_rng(0)
    image = rng.random((20, 22, 120)).astype(np.float32)
    labels = np.zeros((20, 22, 120), np.uint8)
    labels[4:16, 4:18, 5:115] = 3
    labels[8:11, 8:11, 30:33] = 4
    blocks = _to_blocks(image, labels, HELD_OUT_SLAB, 1, torch.Generator().manual_seed(0))
    assert [(int(b.k_index[0]), int(b.k_index[-1])) for b in blocks] == [(0, 69), (90, 119)]
    for b in blocks:
        assert not np.any((b.k_index >= HELD_OUT_SLAB[0]) & (b.k_index < HELD_OUT_SLAB[1]))
    assert len(blocks[0].lesion) == 27 and len(blocks[1].lesion) == 0
    assert float(blocks[0].image.float().max()) <= 1.5


def test_head_volumes_are_spread_through_the_pool():
    assert [i for i in range(12) if is_head_volume(i, 0.25)] == [3, 7, 11]
    assert not any(is_head_volume(i, 0.0) for i in range(50))
    assert sum(is_head_volume(i, 0.3) for i in range(100)) == 30


def test_a_head_pool_volume_is_seen_through_a_perturbed_mask_and_keeps_the_slab_out():
    """A whole head: zero outside its mask, the mask strays beyond the intracranial
    space (as brain extraction does on whole heads), targets are brain tissue and
    lesions only, and the held-out slab (moved by the head's margin) stays out."""
    img, lab, mask, k_offset, desc = _draw_head_volume(3, 0, 0.0)
    assert desc["head"] and desc["lesions"] >= 1 and k_offset == 30
    assert img.shape == lab.shape == mask.shape
    assert not img[~mask].any() and not lab[~mask].any()
    assert set(np.unique(lab).tolist()) <= {0, 1, 2, 3, 4} and (lab == 4).any()
    outside_brain = mask & (lab == 0)
    assert outside_brain.sum() > 0.05 * mask.sum()  # rim, and more, around the brain
    assert img[outside_brain].max() > 0  # the network sees what lies there
    slab = (HELD_OUT_SLAB[0] + k_offset, HELD_OUT_SLAB[1] + k_offset)
    assert not (lab[:, :, slab[0]:slab[1]] == 4).any()  # no lesion painted into the slab
    blocks = _to_blocks(img, lab, slab, 1, torch.Generator().manual_seed(0), sample_mask=mask)
    assert [(int(b.k_index[0]), int(b.k_index[-1])) for b in blocks] == [
        (0, slab[0] - 1), (slab[1], img.shape[2] - 1)]
    assert sum(len(b.lesion) for b in blocks) == int((lab == 4).sum())


def test_varied_template_moves_each_block_alone_and_keeps_the_slab():
    """Anatomy variation of a lesion pool: the ranges outside the held-out slab get
    new shapes, each from its own planes only; the slab's planes are untouched."""
    block = toy_tissue_block((40, 40, 28))
    held_out = (12, 16)
    a = varied_template(block, torch.Generator().manual_seed(1), held_out)
    b = varied_template(block, torch.Generator().manual_seed(1), held_out)
    c = varied_template(block, torch.Generator().manual_seed(2), held_out)
    assert a.labels.shape == block.labels.shape and a.maps.shape == block.maps.shape
    assert torch.equal(a.labels, b.labels) and not torch.equal(a.labels, c.labels)
    assert torch.equal(a.labels[..., 12:16], block.labels[..., 12:16])
    assert torch.equal(a.maps[..., 12:16], block.maps[..., 12:16])
    for lo, hi in ((0, 12), (16, 28)):
        assert not torch.equal(a.labels[..., lo:hi], block.labels[..., lo:hi])
    assert int(a.labels.max()) <= 3 and int((a.labels > 0).sum()) > 0
    # a block whose planes all hold air outside the slab would stay air: nothing of the
    # slab's tissue moves into the varied ranges
    only_slab = block.labels.clone()
    only_slab[..., :12] = 0
    only_slab[..., 16:] = 0
    maps = block.maps.clone()
    maps[..., :12] = 0
    maps[..., 16:] = 0
    slab_block = type(block)(maps, only_slab, block.k_index, block.origin, block.affine)
    moved = varied_template(slab_block, torch.Generator().manual_seed(1), held_out)
    assert not moved.labels[..., :12].any() and not moved.labels[..., 16:].any()


def test_flair_like_heads_join_the_pool_only_when_asked():
    """``head_contrasts`` adds FLAIR-like whole heads (dark CSF, bright lesions); the
    default draws the shipped recipe's heads unchanged; bad choices are refused."""
    img, lab, _, _, desc = _draw_head_volume(3, 0, 0.0, ("flair",))
    assert desc["contrast"] == "flair" and desc["lesions"] >= 1
    med = {c: float(np.median(img[lab == c])) for c in (1, 2, 3, 4)}
    assert med[1] < 0.6 * med[3] and med[4] > 1.3 * med[3]  # CSF dark, lesions bright
    # the default is the shipped recipe's sequences, in its order (the draw picks from it)
    assert POOL_HEAD_CONTRASTS == ("pd", "t1", "t2")
    assert LesionTrainConfig().validated().head_contrasts == POOL_HEAD_CONTRASTS
    for bad in (("t1", "dwi"), (), ("t1", "t1")):
        with pytest.raises(ParameterError, match="head contrasts"):
            LesionTrainConfig(head_contrasts=bad).validated()
    with pytest.raises(ParameterError, match="fractions"):
        LesionTrainConfig(varied_share=1.5).validated()


def test_varied_share_sets_how_many_phantoms_get_a_new_shape():
    """``varied_share`` draws from the same stream: at 0 a phantom stays on the template,
    with exactly the template recipe's choices and lesions."""
    cfg = LesionTrainConfig(varied_share=0.5).validated()
    assert cfg.varied_share == 0.5 and cfg.head_contrasts == ("pd", "t1", "t2")
    _, _, never = _draw_pool_volume(1, 0, 0.0, mni_tissue_block(), anatomy="varied",
                                    varied_share=0.0)
    _, _, plain = _draw_pool_volume(1, 0, 0.0, mni_tissue_block())
    assert never["varied_anatomy"] is False
    assert {k: v for k, v in never.items() if k != "varied_anatomy"} == plain


def test_a_varied_pool_volume_keeps_the_template_stream_and_the_slab():
    """``anatomy="varied"`` draws its choices after the template recipe's, so the
    sequence, noise and lesion seeds stay those of the template pool; the phantom
    is drawn on a varied shape and the held-out slab holds no lesion."""
    block = mni_tissue_block()
    _, lab_t, desc_t = _draw_pool_volume(1, 0, 0.0, block)
    _, lab_v, desc_v = _draw_pool_volume(1, 0, 0.0, block, anatomy="varied")
    assert desc_v["varied_anatomy"] is True  # volume 1 of seed 0 draws a varied shape
    assert {k: v for k, v in desc_v.items() if k not in ("varied_anatomy", "lesions",
                                                         "sizes_mm")} == \
        {k: v for k, v in desc_t.items() if k not in ("lesions", "sizes_mm")}
    lv, lt = np.asarray(lab_v.array), np.asarray(lab_t.array)
    k0, k1 = HELD_OUT_SLAB
    assert not (lv[:, :, k0:k1] == 4).any() and (lv == 4).any()
    outside = np.r_[0:k0, k1:lv.shape[2]]
    changed = (np.minimum(lv, 3) != np.minimum(lt, 3))[:, :, outside].mean()
    assert changed > 0.02  # a new shape, not the template's


def test_toy_pool_is_deterministic_and_samples_lesions():
    a = lesion_pool(3, seed=4, toy=True, lesion_free_fraction=0.0)
    b = lesion_pool(3, seed=4, toy=True, lesion_free_fraction=0.0)
    assert a.n_lesions == b.n_lesions > 0
    assert torch.equal(a.volumes[0][0].image, b.volumes[0][0].image)
    sampler = PoolSampler(a, torch.Generator().manual_seed(0), crop=(32, 32), context=1,
                          classes="lesion", lesion_fraction=1.0)
    x, y = sampler.batch(6)
    assert tuple(x.shape) == (6, 3, 32, 32) and tuple(y.shape) == (6, 32, 32)
    assert set(torch.unique(y).tolist()) <= {0, 1} and int(y.sum()) > 0
    five = PoolSampler(a, torch.Generator().manual_seed(0), crop=(32, 32), context=1,
                       classes="tissue+lesion", lesion_fraction=1.0)
    _, y5 = five.batch(6)
    assert int(y5.max()) == 4


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
    assert PIPELINES["head"].steps[-1].name == "largest_component"  # the default is unchanged


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
