"""Random anatomy (engine.data.anatomy) and its use in training (AnatomyPool)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.core.errors import ParameterError
from engine.data.anatomy import (
    TRAINING_VARIATION,
    AnatomyVariation,
    _field,
    deep_csf_centre,
    vary_anatomy,
)
from engine.data.phantom import TissueBlock, toy_tissue_block, training_blocks
from engine.data.synthesis import SliceSynthesizer
from engine.models.cards import card_facts
from engine.models.training import AnatomyPool, TrainConfig, train

NOTHING = AnatomyVariation(rotation_deg=0.0, scale=(1.0, 1.0), asymmetry=0.0, elastic_mm=0.0,
                           ventricles=0.0, atrophy=0.0)


def _ball_brain(n: int = 72, radius: float = 30.0, ventricle: float = 8.0) -> TissueBlock:
    """A ball of brain: a CSF ball (the 'ventricles') in the middle, WM, a 4 mm GM shell."""
    c = (n - 1) / 2
    g = np.stack(np.meshgrid(*[np.arange(n) - c] * 3, indexing="ij"))
    r = np.sqrt((g ** 2).sum(axis=0))
    brain = np.clip(radius - r + 0.5, 0, 1)
    csf_in = np.clip(ventricle - r + 0.5, 0, 1)
    gm = np.clip(np.clip(r - (radius - 4) + 0.5, 0, 1) * brain, 0, 1)
    wm = np.clip(brain - gm - csf_in, 0, 1)
    csf = np.clip(brain - gm - wm, 0, 1)
    maps = np.stack([csf, gm, wm, (brain > 0).astype(float)]).astype(np.float32)
    labels = np.where(brain >= 0.5, np.argmax(maps[:3], axis=0) + 1, 0).astype(np.uint8)
    return TissueBlock(torch.from_numpy(maps), torch.from_numpy(labels), np.arange(n),
                       (0, 0, 0), np.eye(4))


def _counts(block: TissueBlock) -> list[int]:
    return [int((block.labels == k).sum()) for k in (1, 2, 3)]


def test_varied_labels_follow_the_moved_fractions():
    block = toy_tissue_block((40, 44, 28))
    varied = vary_anatomy(block, torch.Generator().manual_seed(3))
    assert varied.shape == block.shape
    assert np.array_equal(varied.k_index, block.k_index)
    assert np.array_equal(varied.affine, block.affine)
    inside = varied.labels > 0
    expected = torch.argmax(varied.maps[:3], dim=0).to(torch.uint8) + 1
    assert torch.equal(varied.labels[inside], expected[inside])
    assert float(varied.maps.min()) >= 0.0
    assert float(varied.maps[:3].sum(dim=0).max()) <= 1.0 + 1e-4
    assert not torch.equal(varied.labels, block.labels)  # the shape did change


def test_the_same_generator_state_gives_the_same_anatomy():
    block = toy_tissue_block((32, 32, 20))
    a = vary_anatomy(block, torch.Generator().manual_seed(7))
    b = vary_anatomy(block, torch.Generator().manual_seed(7))
    c = vary_anatomy(block, torch.Generator().manual_seed(8))
    assert torch.equal(a.maps, b.maps)
    assert not torch.equal(a.maps, c.maps)


def test_ventricle_enlargement_grows_the_deep_csf_far_more_than_the_brain():
    block = _ball_brain(n=124, radius=58.0, ventricle=10.0)
    assert deep_csf_centre(block) == pytest.approx([61.5] * 3, abs=0.5)
    only = AnatomyVariation(**{**NOTHING.record(), "ventricles": 0.45})
    csf0, brain0 = _counts(block)[0], int((block.labels > 0).sum())
    for s in range(2):
        grown = vary_anatomy(block, torch.Generator().manual_seed(s), only)
        assert _counts(grown)[0] > 2.0 * csf0  # the 'ventricles' at least double
        # the magnification fades with the distance: the outline 58 mm away hardly moves
        assert brain0 <= int((grown.labels > 0).sum()) < 1.06 * brain0


def test_atrophy_turns_tissue_at_csf_boundaries_into_csf_inside_the_same_outline():
    block = toy_tissue_block((40, 40, 32))
    only = AnatomyVariation(**{**NOTHING.record(), "atrophy": 1.0})
    atrophic = vary_anatomy(block, torch.Generator().manual_seed(1), only)
    assert torch.equal(atrophic.labels > 0, block.labels > 0)
    before, after = _counts(block), _counts(atrophic)
    assert after[0] > before[0] and after[1] < before[1]
    # fractions are moved, not made: CSF + GM + WM unchanged everywhere
    assert torch.allclose(atrophic.maps[:3].sum(dim=0), block.maps[:3].sum(dim=0), atol=1e-5)


def test_nothing_varied_gives_the_block_back():
    block = toy_tissue_block((32, 36, 20))
    same = vary_anatomy(block, torch.Generator().manual_seed(0), NOTHING)
    assert torch.allclose(same.maps, block.maps, atol=1e-4)
    assert torch.equal(same.labels, block.labels)


def test_pose_and_scaling_change_the_brain_volume_within_their_ranges():
    block = _ball_brain(n=80, radius=26.0)
    pose = AnatomyVariation(**{**NOTHING.record(), "rotation_deg": 15.0,
                               "scale": (0.85, 1.15)})
    v0 = int((block.labels > 0).sum())
    for s in range(4):
        v = int((vary_anatomy(block, torch.Generator().manual_seed(s), pose).labels > 0).sum())
        assert 0.85 ** 3 * 0.97 * v0 <= v <= 1.15 ** 3 * 1.03 * v0


def test_training_and_held_out_field_families_differ():
    a = _field((20, 20, 20), torch.Generator().manual_seed(0), "spline")
    b = _field((20, 20, 20), torch.Generator().manual_seed(0), "smooth")
    assert a.shape == b.shape == (3, 20, 20, 20)
    assert float(a.abs().max()) == pytest.approx(1.0) and float(b.abs().max()) == pytest.approx(1.0)
    assert float((a - b).abs().mean()) > 0.1
    with pytest.raises(ParameterError, match="family"):
        _field((8, 8, 8), torch.Generator(), "bspline")


def test_the_pool_resumed_at_a_step_holds_the_anatomies_of_an_uninterrupted_run():
    blocks = training_blocks((8, 12), crop=None, source=toy_tissue_block((32, 32, 20)))

    def synth() -> SliceSynthesizer:
        return SliceSynthesizer(blocks, torch.device("cpu"), torch.Generator().manual_seed(0),
                                crop=(16, 16))

    running = synth()
    pool = AnatomyPool(running, blocks, size=2, refresh=3, seed=5)
    n_before = len(running.blocks)
    for step in range(8):
        pool.advance(step)
    resumed = synth()
    AnatomyPool(resumed, blocks, size=2, refresh=3, seed=5, step=7)
    assert len(running.blocks) == len(resumed.blocks) == n_before == len(blocks) * 3
    for a, b in zip(running.blocks, resumed.blocks, strict=True):
        assert torch.equal(a.maps, b.maps)
    # the held-out slab stays out of every varied block too
    for b in running.blocks:
        assert not np.any((b.k_index >= 8) & (b.k_index < 12))
    x, y = running.batch(6)
    assert x.shape == (6, 3, 16, 16) and int(y.max()) <= 3


def test_a_varied_training_run_records_its_anatomy_recipe(tmp_path):
    config = TrainConfig(model="unet", model_args={"base": 8}, steps=3, batch_size=2,
                         crop=(32, 32), data="toy", val_every=0, anatomy="varied",
                         anatomy_pool=2, anatomy_refresh=2, device="cpu")
    card = train(config, tmp_path)
    recipe = card["training"]["data_recipe"]["anatomy"]
    assert recipe["ranges"] == TRAINING_VARIATION.record()
    assert card["training"]["config"]["anatomy"] == "varied"
    facts = dict(card_facts(card))  # what the viewer's About the Networks shows
    assert "enlarged ventricles" in facts["Anatomy variation"]
    assert "one template's anatomy" in facts["Anatomy variation"]
    with pytest.raises(ParameterError, match="anatomy"):
        TrainConfig(anatomy="warped").validated()


@pytest.mark.parametrize("contrast", ["t1", "t2"])
def test_the_shipped_network_beats_the_gaussian_mixture_on_a_held_out_deformation(contrast):
    """Anatomy generalisation (docs/model.md, held-out deformations): a deformation of the
    other field family, seeds training never draws, 40 slices around the held-out slab;
    both methods get the true brain mask."""
    from engine.core.metrics import dice
    from engine.core.volume import Volume
    from engine.data.anatomy import held_out_anatomy
    from engine.data.phantom import synthesize_phantom
    from engine.methods.baselines import run_gmm
    from engine.models.predictor import Predictor

    image, truth = synthesize_phantom(contrast, seed=2, block=held_out_anatomy(2))
    sub = np.ascontiguousarray(image.array[:, :, 60:100])
    ref = truth.array[:, :, 60:100]
    brain = ref > 0
    net = Predictor.from_name("delineo", device="cpu", batch_size=8).predict_array(
        sub, mask=brain).labels
    gmm = run_gmm(Volume(sub, image.affine), mask=brain, device="cpu").labels.array
    for value in (1, 2, 3):
        assert dice(net, ref, value) > dice(gmm, ref, value), value
