"""Phantom synthesis: noise and INU statistics, untouched labels, the held-out protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.data import phantom
from engine.data.fields import (
    field_span,
    inu_field,
    inu_multiplier,
    legendre_basis,
    legendre_coefficients,
    polynomial_field,
)
from engine.data.phantom import (
    CONTRAST_MEANS,
    add_rician_noise,
    coarser_voxels,
    random_contrast_means,
    synthesize_phantom,
    toy_tissue_block,
    training_blocks,
)
from engine.data.synthesis import SliceSynthesizer


def test_rician_noise_matches_the_requested_level():
    gen = torch.Generator().manual_seed(0)
    bright = torch.ones(1, 1, 128, 128, 8)
    noisy = add_rician_noise(bright, 0.05, gen)
    # at high SNR Rician noise is close to Gaussian with the same sigma
    assert float(noisy.std()) == pytest.approx(0.05, rel=0.05)
    assert float(noisy.mean()) == pytest.approx(1.0, abs=0.005)
    air = add_rician_noise(torch.zeros(1, 1, 128, 128, 8), 0.05, gen)
    # in the air it is Rayleigh: mean sigma * sqrt(pi / 2)
    assert float(air.mean()) == pytest.approx(0.05 * np.sqrt(np.pi / 2), rel=0.03)
    assert float(air.min()) >= 0


@pytest.mark.parametrize("amplitude", [0.0, 0.2, 0.4])
def test_inu_field_spans_the_requested_range_over_the_mask(amplitude):
    gen = torch.Generator().manual_seed(1)
    like = torch.zeros(2, 1, 24, 20, 16)
    mask = torch.zeros_like(like, dtype=torch.bool)
    mask[:, :, 4:20, 3:17, 2:14] = True
    field = inu_field(like, amplitude, gen, mask=mask)
    inside = field[mask].view(2, -1)
    span = inside.amax(dim=1) - inside.amin(dim=1)
    np.testing.assert_allclose(span.numpy(), amplitude, atol=1e-5)
    np.testing.assert_allclose(inside.amin(dim=1).numpy(), 1 - amplitude / 2, atol=1e-5)
    # smooth: neighbouring voxels differ by a small fraction of the range
    assert float(field.diff(dim=2).abs().max()) <= max(amplitude, 1e-6) * 0.35


@pytest.mark.parametrize("amplitude", [0.1, 0.5])
def test_the_training_polynomial_field_spans_the_requested_range_over_the_brain(amplitude):
    # The same INU model as the phantoms (span over the brain -> 1 +- a/2), Legendre basis.
    block = toy_tissue_block((24, 20, 16))
    gen = torch.Generator().manual_seed(3)
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, n) for n in block.shape],
                                      indexing="ij"), dim=-1)  # (X, Y, Z, 3)
    coeffs = legendre_coefficients(2, gen)
    raw = polynomial_field(grid[None].expand(2, *grid.shape), coeffs)  # (2, X, Y, Z)
    brain = (block.labels > 0)[None].expand(2, *block.shape)
    field = inu_multiplier(raw, amplitude, field_span(raw, brain))
    inside = field[brain].view(2, -1)
    np.testing.assert_allclose((inside.amax(dim=1) - inside.amin(dim=1)).numpy(), amplitude,
                               atol=1e-5)
    np.testing.assert_allclose(inside.amin(dim=1).numpy(), 1 - amplitude / 2, atol=1e-5)
    # the raw field is the basis weighted by the coefficients, term by term
    basis = legendre_basis(grid)
    np.testing.assert_allclose(raw[1].numpy(), (basis @ coeffs[1]).numpy(), atol=1e-5)
    # a polynomial of degree <= 3: smooth, and never the same for two draws
    assert float(field.diff(dim=1).abs().max()) <= amplitude * 0.35
    assert not torch.allclose(field[0], field[1])


def test_random_contrasts_are_separated_and_scaled():
    mu = random_contrast_means(200, torch.Generator().manual_seed(2), min_gap=0.12)
    s = mu.sort(dim=1).values
    assert torch.all(s[:, 2] == 1.0)
    # the gap holds before scaling to 1; after it, never below gap * smallest scale
    assert torch.all(s[:, 1:] - s[:, :-1] >= 0.12 - 1e-6)


def test_labels_are_untouched_by_intensity_augmentation():
    block = toy_tissue_block((32, 32, 12))
    truths = []
    for contrast, noise, inu, seed in [("t1", 0.0, 0.0, 0), ("t2", 0.09, 0.4, 1),
                                       ("random", 0.05, 0.3, 2), ("pd", 0.03, 0.2, 3)]:
        image, truth = synthesize_phantom(contrast, noise=noise, inu=inu, seed=seed,
                                          blur=0.7 if seed else 0.0, block=block)
        truths.append(truth.array)
        assert image.array.dtype == np.float32 and truth.array.dtype == np.uint8
    for t in truths[1:]:
        np.testing.assert_array_equal(t, truths[0])
    np.testing.assert_array_equal(truths[0], block.labels.numpy())


def test_noise_free_phantom_renders_the_class_means():
    block = toy_tissue_block((32, 32, 12))
    image, truth = synthesize_phantom("t1", noise=0.0, inu=0.0, seed=0, block=block)
    pure_wm = block.maps[2].numpy() > 0.999
    assert pure_wm.any()
    np.testing.assert_allclose(image.array[pure_wm], 1000 * CONTRAST_MEANS["t1"][2], rtol=1e-4)
    assert float(image.array[truth.array == 0].max()) < 1e-3 + 1000 * 0.3


def test_phantom_noise_is_relative_to_the_brightest_tissue():
    block = toy_tissue_block((40, 40, 16))
    noise_free, _ = synthesize_phantom("t2", noise=0.0, inu=0.0, seed=3, block=block)
    noisy, _ = synthesize_phantom("t2", noise=0.09, inu=0.0, seed=3, block=block)
    pure = block.maps[1].numpy() > 0.999  # pure GM, well above the noise floor
    diff = noisy.array[pure] - noise_free.array[pure]
    assert np.std(diff) == pytest.approx(0.09 * 1000 * max(CONTRAST_MEANS["t2"]), rel=0.1)


def test_training_blocks_never_hold_the_held_out_slab():
    block = toy_tissue_block((24, 24, 30))
    marker = 123.0
    block.maps[:, :, :, 10:16] = marker  # anything from the slab would show this value
    blocks = training_blocks((10, 16), crop=None, source=block)
    assert [b.k_index.tolist() for b in blocks] == [list(range(10)), list(range(16, 30))]
    for b in blocks:
        assert float(b.maps.max()) < marker
        assert not np.any((b.k_index >= 10) & (b.k_index < 16))
    # ... and the synthesiser draws windows inside the blocks only
    synth = SliceSynthesizer(blocks, torch.device("cpu"), torch.Generator().manual_seed(0),
                             crop=(16, 16), context=1)
    for b, vox in zip(synth.blocks, synth.brain_voxels, strict=True):
        assert int(vox[:, 2].min()) >= 1 and int(vox[:, 2].max()) <= b.shape[2] - 2
    x, y = synth.batch(8)
    assert x.shape == (8, 3, 16, 16) and y.shape == (8, 16, 16)
    assert float(x.max()) <= 1.5**1.35 * 1.1 + 1e-4  # normalised (+gamma, gain), no marker
    assert set(torch.unique(y).tolist()) <= {0, 1, 2, 3}


def test_coarser_voxels_blurs_only_along_the_coarser_axes():
    img = torch.zeros(1, 1, 12, 16, 16)
    img[:, :, 6:] = 1.0  # an edge across the first axis, constant within each slice
    across = coarser_voxels(img, [3.0, 1.0, 1.0])
    profile = across[0, 0, :, 8, 8]
    assert int(((profile > 0.05) & (profile < 0.95)).sum()) >= 2  # the edge spreads
    assert float(profile[0]) < 0.05 and float(profile[-1]) > 0.95
    # ... and every slice stays constant: nothing moved in plane
    torch.testing.assert_close(across[0, 0], across[0, 0, :, :1, :1].expand(12, 16, 16))
    # coarser in plane only: the edge between slices stays sharp
    torch.testing.assert_close(coarser_voxels(img, [1.0, 3.0, 2.5]), img)
    assert coarser_voxels(img, [1.0, 1.0, 1.0]) is img
    # white noise loses most of its variance on a grid twice as coarse in all directions
    noise = torch.randn(1, 1, 24, 24, 24, generator=torch.Generator().manual_seed(0))
    assert float(coarser_voxels(noise, [2.0, 2.0, 2.0]).std()) < 0.25
    # one axis in 2-D, as lower_resolution uses it
    flat = torch.randn(1, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(phantom.lower_resolution(flat, 1, 2.0),
                               coarser_voxels(flat, [1.0, 2.0]))
    with pytest.raises(ValueError, match="2 factors for 3 spatial axes"):
        coarser_voxels(img, [2.0, 2.0])


def _step_differences(x: torch.Tensor) -> tuple[float, float]:
    """Mean absolute difference of neighbours in plane and across the 2.5-D slices."""
    return (float((x[..., 1:, :] - x[..., :-1, :]).abs().mean()),
            float((x[:, 1:] - x[:, :-1]).abs().mean()))


def test_volume_resolution_simulation_coarsens_patches_in_all_three_directions():
    from engine.core.errors import ParameterError

    blocks = [toy_tissue_block((40, 40, 14))]
    found = {}
    for p in (0.0, 1.0):
        synth = SliceSynthesizer(blocks, torch.device("cpu"), torch.Generator().manual_seed(4),
                                 crop=(32, 32), volume_resolution=p)
        x, y = synth.batch(48)
        assert x.shape == (48, 3, 32, 32) and y.shape == (48, 32, 32)
        assert set(torch.unique(y).tolist()) <= {0, 1, 2, 3}
        found[p] = _step_differences(x)
    # noise and edges are smoothed in plane and from slice to slice
    assert found[1.0][0] < 0.75 * found[0.0][0]
    assert found[1.0][1] < 0.75 * found[0.0][1]
    # a block as thin as the 2.5-D window: the extra slices repeat its end slices
    thin = SliceSynthesizer([toy_tissue_block((40, 40, 3))], torch.device("cpu"),
                            torch.Generator().manual_seed(5), crop=(32, 32),
                            volume_resolution=1.0)
    assert thin.batch(4)[0].shape == (4, 3, 32, 32)
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        SliceSynthesizer(blocks, torch.device("cpu"), torch.Generator(), crop=(32, 32),
                         volume_resolution=1.5)


def test_mni_training_blocks_exclude_k70_to_90():
    src = phantom.mni_tissue_block()  # the template the set-up caches (docs/data.md)
    blocks = training_blocks(source=src)
    ks = np.concatenate([b.k_index for b in blocks])
    assert not np.any((ks >= 70) & (ks < 90))
    assert ks.min() == 0 and ks.max() == 188 and len(ks) == 189 - 20
    x0, y0, _ = blocks[0].origin
    # the kept planes are the template's own, voxel for voxel
    np.testing.assert_array_equal(blocks[0].labels[60:110, 80:130].numpy(),
                                  src.labels[x0 + 60:x0 + 110, y0 + 80:y0 + 130, :70].numpy())
    np.testing.assert_array_equal(blocks[1].maps[:, 60:110, 80:130].numpy(),
                                  src.maps[:, x0 + 60:x0 + 110, y0 + 80:y0 + 130, 90:].numpy())


def test_synth_command_writes_phantom_and_truth(tmp_path, monkeypatch):
    from engine.cli import main
    from engine.io import load, load_labels

    block = toy_tissue_block((20, 22, 10))
    monkeypatch.setattr(phantom, "mni_tissue_block", lambda: block)
    args = ["--contrast", "t2", "--noise", "3", "--inu", "20", "--seed", "5"]
    assert main(["synth", "--out", str(tmp_path), *args]) == 0
    image = load(tmp_path / "phantom.nii.gz")
    truth = load_labels(tmp_path / "truth.nii.gz", reference=image)
    assert image.shape == (20, 22, 10)
    np.testing.assert_array_equal(truth.array, block.labels.numpy())
    again = tmp_path / "again"
    assert main(["synth", "--out", str(again), *args]) == 0
    np.testing.assert_array_equal(load(again / "phantom.nii.gz").array, image.array)
