"""Every method beats a trivial baseline on noisy three-tissue phantoms (2-D and 3-D).

The phantom helpers here are shared by the other ``test_methods_*`` modules.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from engine.core.errors import ParameterError
from engine.core.params import replace
from engine.core.steps import MethodSpec
from engine.core.volume import Volume
from engine.methods import METHODS, get_method, register

#: T1-like intensities of background, CSF, GM, WM.
INTENSITY = np.array([5.0, 30.0, 60.0, 90.0], dtype=np.float32)


def shells(shape: tuple[int, ...], radii: tuple[float, float, float]) -> np.ndarray:
    """Nested shells: WM inside radii[0], GM to radii[1], CSF to radii[2], background outside."""
    centre = [(n - 1) / 2.0 for n in shape]
    grids = np.meshgrid(*[np.arange(n) - c for n, c in zip(shape, centre, strict=True)],
                        indexing="ij")
    r = np.sqrt(sum(g.astype(np.float64) ** 2 for g in grids))
    labels = np.zeros(shape, dtype=np.uint8)
    labels[r < radii[2]] = 1
    labels[r < radii[1]] = 2
    labels[r < radii[0]] = 3
    return labels


def phantom(dim: int, *, noise: float = 8.0, seed: int = 0) -> tuple[Volume, np.ndarray]:
    """A noisy nested-shell phantom: 2-D 72x72 (one slice) or 3-D 36^3."""
    rng = np.random.default_rng(seed)
    if dim == 2:
        labels = shells((72, 72), (14.0, 24.0, 32.0))[:, :, np.newaxis]
    else:
        labels = shells((36, 36, 36), (7.0, 12.0, 16.0))
    image = INTENSITY[labels] + rng.normal(0.0, noise, labels.shape).astype(np.float32)
    return Volume(image.astype(np.float32), np.eye(4)), labels


def mean_dice(pred: np.ndarray, truth: np.ndarray) -> float:
    scores = []
    for k in (1, 2, 3):
        a, b = pred == k, truth == k
        denom = a.sum() + b.sum()
        scores.append(1.0 if denom == 0 else 2.0 * (a & b).sum() / denom)
    return float(np.mean(scores))


def quantile_baseline(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Trivial baseline: thresholds at the 1/3 and 2/3 intensity quantiles inside the mask."""
    t = np.quantile(image[mask], [1 / 3, 2 / 3])
    return np.where(mask, np.digitize(image, t) + 1, 0).astype(np.uint8)


def all_gm_baseline(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, 2, 0).astype(np.uint8)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("name", ["reaction_diffusion", "energy", "active_contour", "otsu", "gmm"])
def test_method_beats_trivial_baselines(name, dim):
    vol, truth = phantom(dim)
    mask = truth > 0
    spec = get_method(name)
    params = spec.default_params()
    if name == "active_contour":  # keep the suite fast: boundaries move a few voxels only
        params = replace(params, {"iterations": 30})
    start = time.perf_counter()
    res = spec.run(vol, params, device="cpu", mask=mask)
    elapsed = time.perf_counter() - start
    labels = res.labels.array
    assert labels.shape == vol.shape and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    assert np.all(labels[~mask] == 0)
    score = mean_dice(labels, truth)
    quantile = mean_dice(quantile_baseline(vol.array, mask), truth)
    all_gm = mean_dice(all_gm_baseline(mask), truth)
    assert score > max(quantile, all_gm) + 0.1, (name, dim, score, quantile, all_gm, elapsed)
    assert score > 0.85, (name, dim, score)
    if res.probabilities is not None:
        assert res.probabilities.shape == (4, *vol.shape)
        assert np.allclose(res.probabilities.sum(0), 1.0, atol=1e-5)


def test_spatial_methods_beat_otsu_under_heavy_noise():
    vol, truth = phantom(3, noise=14.0, seed=1)
    mask = truth > 0
    otsu = mean_dice(get_method("otsu").run(vol, device="cpu", mask=mask).labels.array, truth)
    for name in ("reaction_diffusion", "energy", "gmm"):
        spec = get_method(name)
        score = mean_dice(spec.run(vol, spec.default_params(), device="cpu",
                                   mask=mask).labels.array, truth)
        assert score > otsu + 0.03, (name, score, otsu)


def test_rough_mask_is_used_without_a_mask():
    vol, truth = phantom(3)
    res = get_method("otsu").run(vol, device="cpu")
    assert mean_dice(res.labels.array, truth) > 0.8


def test_registry_lists_and_registers():
    assert set(METHODS) >= {"reaction_diffusion", "energy", "active_contour", "otsu", "gmm"}
    with pytest.raises(ParameterError, match="; known: active_contour, "):
        get_method("unet_that_does_not_exist")
    spec = MethodSpec("test_dummy", "a copy of otsu", METHODS["otsu"].params_type,
                      METHODS["otsu"].run, kind="cnn")
    try:
        assert register(spec) is spec and get_method("test_dummy") is spec
        with pytest.raises(ParameterError, match="already registered"):
            register(spec)
        register(spec, replace=True)
    finally:
        METHODS.pop("test_dummy", None)
