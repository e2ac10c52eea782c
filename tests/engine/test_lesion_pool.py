"""The synthetic pool of a lesion run (engine.data.lesion_pool): blocks, heads, anatomy, patches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.core.errors import ParameterError
from engine.data.lesion_pool import (
    POOL_HEAD_CONTRASTS,
    PoolSampler,
    draw_head_volume,
    draw_pool_volume,
    is_head_volume,
    lesion_pool,
    pool_blocks,
    varied_template,
)
from engine.data.mni import HELD_OUT_SLAB
from engine.data.phantom import mni_tissue_block, toy_tissue_block
from engine.models.lesion_training import LesionTrainConfig


def test_pool_blocks_never_hold_the_held_out_slab():
    """A pool volume is cut into k < 70 and k >= 90 after the lesions are painted."""
    rng = np.random.default_rng(0)
    image = rng.random((20, 22, 120)).astype(np.float32)
    labels = np.zeros((20, 22, 120), np.uint8)
    labels[4:16, 4:18, 5:115] = 3
    labels[8:11, 8:11, 30:33] = 4
    blocks = pool_blocks(image, labels, HELD_OUT_SLAB, 1, torch.Generator().manual_seed(0))
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
    img, lab, mask, k_offset, desc = draw_head_volume(3, 0, 0.0)
    assert desc["head"] and desc["lesions"] >= 1 and k_offset == 30
    assert img.shape == lab.shape == mask.shape
    assert not img[~mask].any() and not lab[~mask].any()
    assert set(np.unique(lab).tolist()) <= {0, 1, 2, 3, 4} and (lab == 4).any()
    outside_brain = mask & (lab == 0)
    assert outside_brain.sum() > 0.05 * mask.sum()  # rim, and more, around the brain
    assert img[outside_brain].max() > 0  # the network sees what lies there
    slab = (HELD_OUT_SLAB[0] + k_offset, HELD_OUT_SLAB[1] + k_offset)
    assert not (lab[:, :, slab[0]:slab[1]] == 4).any()  # no lesion painted into the slab
    blocks = pool_blocks(img, lab, slab, 1, torch.Generator().manual_seed(0), sample_mask=mask)
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
    img, lab, _, _, desc = draw_head_volume(3, 0, 0.0, ("flair",))
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
    _, _, never = draw_pool_volume(1, 0, 0.0, mni_tissue_block(), anatomy="varied",
                                    varied_share=0.0)
    _, _, plain = draw_pool_volume(1, 0, 0.0, mni_tissue_block())
    assert never["varied_anatomy"] is False
    assert {k: v for k, v in never.items() if k != "varied_anatomy"} == plain


def test_a_varied_pool_volume_keeps_the_template_stream_and_the_slab():
    """``anatomy="varied"`` draws its choices after the template recipe's, so the
    sequence, noise and lesion seeds stay those of the template pool; the phantom
    is drawn on a varied shape and the held-out slab holds no lesion."""
    block = mni_tissue_block()
    _, lab_t, desc_t = draw_pool_volume(1, 0, 0.0, block)
    _, lab_v, desc_v = draw_pool_volume(1, 0, 0.0, block, anatomy="varied")
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
