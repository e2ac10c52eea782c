"""Numerical behaviour of the classical methods' building blocks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from engine.core.errors import ParameterError
from engine.core.jobs import Cancelled, CancelToken
from engine.core.volume import Volume
from engine.methods import (
    ActiveContourParams,
    EnergyParams,
    GMMParams,
    ReactionDiffusionParams,
    regularize_probabilities,
    run_energy,
    run_gmm,
    run_reaction_diffusion,
)
from engine.methods.active_contour import active_contour
from engine.methods.active_contour import check_stability as contour_stability
from engine.methods.energy import descend, energy_step_limit
from engine.methods.level_set import signed_distance
from engine.methods.numerics import NeumannStencil, diffusion_step_limit, kmeans_1d
from engine.methods.reaction_diffusion import check_stability, evolve_fields

try:
    from tests.engine.test_methods_phantom import phantom
except ImportError:  # tests/engine is on sys.path (pytest "prepend" import mode)
    from test_methods_phantom import phantom  # type: ignore[no-redef]

CPU = torch.device("cpu")


def test_stencil_is_symmetric_and_neumann():
    gen = torch.Generator().manual_seed(1)
    domain = torch.rand(9, 7, 5, generator=gen) > 0.3
    st = NeumannStencil((9, 7, 5), (1.0, 2.0, 0.5), domain, CPU)
    u = torch.rand(9, 7, 5, generator=gen, dtype=torch.float32) * domain
    w = torch.rand(9, 7, 5, generator=gen, dtype=torch.float32) * domain
    lu, lw = st.laplacian(u) * domain, st.laplacian(w) * domain
    assert float((u * lw).sum()) == pytest.approx(float((w * lu).sum()), rel=1e-5)
    assert abs(float(lu.sum())) < 1e-4
    const = domain.float() * 3.0
    assert float((st.laplacian(const) * domain).abs().max()) < 1e-5


@pytest.mark.parametrize("shape", [(20, 16, 12), (24, 24, 1), (30, 1, 1)])
def test_pure_diffusion_conserves_mass(shape):
    gen = torch.Generator().manual_seed(0)
    u = torch.rand((1, *shape), generator=gen, dtype=torch.float64)
    mass = float(u.sum())
    spacing = (1.0, 0.8, 1.5)
    limit = diffusion_step_limit(1.0, spacing, shape)
    p = ReactionDiffusionParams(diffusion=1.0, alpha=0.0, beta=0.0, dt=limit, iterations=200)
    out = evolve_fields(u.clone(), p, spacing, clip=False)
    assert float(out.sum()) == pytest.approx(mass, rel=1e-12)
    out32 = evolve_fields(u.float(), p, spacing)  # float32, as the methods run
    assert float(out32.sum(dtype=torch.float64)) == pytest.approx(mass, rel=1e-4)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0  # maximum principle
    assert float(out.std()) < 0.2 * float(u.std())  # it did diffuse


def test_diffusion_conserves_mass_inside_a_mask():
    yy, xx = np.mgrid[:40, :40]
    domain = torch.from_numpy(((xx - 20) ** 2 + (yy - 18) ** 2 < 15**2)[:, :, None])
    u = torch.zeros(1, 40, 40, 1)
    u[0, 18, 10:30] = 1.0
    p = ReactionDiffusionParams(diffusion=0.5, alpha=0.0, beta=0.0, dt=0.4, iterations=300)
    out = evolve_fields(u.clone(), p, (1.0, 1.0, 1.0), domain=domain, clip=False)
    assert float(out.sum()) == pytest.approx(20.0, rel=1e-5)
    assert float(out[0][~domain].abs().max()) == 0.0
    inside = out[0][domain]
    assert float(inside.max() - inside.min()) < 0.01  # uniform: no flux out of the mask


def test_logistic_reaction_drives_positive_field_to_one():
    u = torch.tensor([0.0, 1e-3, 0.05, 0.5, 0.99]).reshape(1, 5, 1, 1)
    p = ReactionDiffusionParams(diffusion=0.0, alpha=1.0, beta=0.0, dt=0.5, iterations=100)
    out = evolve_fields(u.clone(), p, (1.0, 1.0, 1.0)).flatten()
    assert float(out[0]) == 0.0
    assert torch.all(out[1:] > 0.99)
    # monotone growth, never above 1
    p2 = ReactionDiffusionParams(diffusion=0.0, alpha=1.0, beta=0.0, dt=0.5, iterations=3)
    mid = evolve_fields(u.clone(), p2, (1.0, 1.0, 1.0)).flatten()
    assert torch.all(mid[1:] > u.flatten()[1:]) and torch.all(mid <= 1.0)


def test_competition_makes_one_class_win():
    u = torch.tensor([0.55, 0.45]).reshape(2, 1, 1, 1).repeat(1, 4, 4, 1).contiguous()
    p = ReactionDiffusionParams(diffusion=0.1, alpha=1.0, beta=2.0, dt=0.2, iterations=300)
    out = evolve_fields(u, p, (1.0, 1.0, 1.0))
    assert torch.allclose(out[0], torch.ones(4, 4, 1), atol=1e-3)
    assert float(out[1].max()) < 1e-3


@pytest.mark.parametrize(("shape", "spacing"), [((10, 10, 10), (1.0, 1.0, 1.0)),
                                               ((10, 10, 1), (0.5, 0.5, 3.0))])
def test_unstable_time_step_raises(shape, spacing):
    limit = diffusion_step_limit(0.5, spacing, shape)
    d = sum(1 for n in shape if n > 1)
    assert limit == pytest.approx(min(spacing[:d]) ** 2 / (2 * d * 0.5))
    ok = ReactionDiffusionParams(diffusion=0.5, alpha=0.0, beta=0.0, dt=limit)
    check_stability(ok, spacing, shape)
    with pytest.raises(ParameterError, match="stability limit"):
        check_stability(ReactionDiffusionParams(diffusion=0.5, alpha=0.0, beta=0.0,
                                                dt=limit * 1.01), spacing, shape)
    with pytest.raises(ParameterError, match="reaction step"):
        check_stability(ReactionDiffusionParams(diffusion=0.0, alpha=5.0, dt=0.3), spacing, shape)
    vol = Volume(np.random.default_rng(0).random(shape).astype(np.float32) + 1,
                 np.diag([*spacing, 1.0]))
    with pytest.raises(ParameterError, match="stability limit"):
        run_reaction_diffusion(vol, ReactionDiffusionParams(diffusion=0.5, alpha=0.0, beta=0.0,
                                                            dt=limit * 1.5), device="cpu")
    eta_max = energy_step_limit(1.0, spacing, shape)
    with pytest.raises(ParameterError, match="stability bound"):
        run_energy(vol, EnergyParams(lam=1.0, eta=eta_max * 1.01), device="cpu")
    with pytest.raises(ParameterError, match="stability limit"):
        contour_stability(ActiveContourParams(dt=10.0), spacing, shape)


def test_energy_descent_decreases_monotonically():
    vol, _ = phantom(3, noise=10.0)
    spacing = (1.0, 1.0, 1.0)
    eta = 0.95 * energy_step_limit(2.0, spacing, vol.shape)
    res = run_energy(vol, EnergyParams(lam=2.0, eta=eta, iterations=40), device="cpu")
    e = np.array(res.info["energy"])
    assert len(e) == 41
    assert np.all(np.diff(e) < 0)
    # converges to the exact minimiser of the quadratic: (1 - λ∇²) v = I
    img = torch.rand(12, 10, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    v, e2 = descend(img.float(), EnergyParams(lam=0.5, eta=0.19, iterations=400), (1.0, 1.0, 1.0))
    st = NeumannStencil(img.shape, (1.0, 1.0, 1.0), None, CPU, dtype=torch.float64)
    residual = v - 0.5 * st.laplacian(v) - img.float().double()
    assert float(residual.abs().max()) < 1e-4
    assert all(b <= a + 1e-12 * e2[0] for a, b in itertools.pairwise(e2))


def test_regularizer_keeps_partition_of_unity_and_removes_salt_and_pepper():
    rng = np.random.default_rng(0)
    truth = np.zeros((48, 48, 8), dtype=np.int64)
    truth[16:, :, :] = 1
    truth[30:, 20:, :] = 2
    noisy = truth.copy()
    flip = rng.random(truth.shape) < 0.15
    noisy[flip] = rng.integers(0, 3, flip.sum())
    probs = np.full((3, *truth.shape), 0.15, dtype=np.float32)
    np.put_along_axis(probs, noisy[None], 0.7, axis=0)
    out = regularize_probabilities(probs, spacing=(1.0, 1.0, 2.0), device="cpu")
    assert out.probabilities.shape == probs.shape
    assert np.allclose(out.probabilities.sum(0), 1.0, atol=1e-5)
    assert out.probabilities.min() >= 0.0
    before = (np.argmax(probs, 0) != truth).mean()
    after = (out.labels != truth).mean()
    assert before > 0.08 and after < 0.01
    # partition of unity at every step, tensors in -> tensors out, 2-D input
    sums = []
    t = torch.from_numpy(probs[:, :, :, 0])

    def watch(fraction, message):
        sums.append(message)

    res = regularize_probabilities(t, spacing=(1.0, 1.0), device="cpu", progress=watch)
    assert isinstance(res.probabilities, torch.Tensor) and res.labels.shape == (48, 48)
    assert torch.allclose(res.probabilities.sum(0), torch.ones(48, 48), atol=1e-5)
    assert len(sums) == 50


def test_regularizer_partition_holds_after_every_step():
    probs = torch.rand(4, 10, 9, 3, generator=torch.Generator().manual_seed(5))
    for n in (1, 2, 7):
        p = ReactionDiffusionParams(iterations=n)
        out = regularize_probabilities(probs, p, device="cpu")
        assert float((out.probabilities.sum(0) - 1).abs().max()) < 1e-5
    mask = torch.zeros(10, 9, 3, dtype=torch.bool)
    mask[2:8, 1:7] = True
    out = regularize_probabilities(probs, mask=mask, device="cpu")
    assert float((out.probabilities.sum(0) - 1).abs().max()) < 1e-5
    normalised = probs / probs.sum(0, keepdim=True)
    assert torch.allclose(out.probabilities[:, ~mask], normalised[:, ~mask])
    assert not torch.allclose(out.probabilities[:, mask], normalised[:, mask])


def test_signed_distance_is_euclidean():
    zz, yy, xx = np.mgrid[:21, :21, :21]
    r = np.sqrt((xx - 10.0) ** 2 + (yy - 10.0) ** 2 + (zz - 10.0) ** 2)
    inside = torch.from_numpy(r < 6.0)
    phi = signed_distance(inside, (1.0, 1.0, 1.0), 4.0).numpy()
    near = np.abs(r - 6.0) < 3.0
    assert np.abs(phi[near] - (r[near] - 6.0)).max() < 0.75
    assert phi.max() == 4.0 and phi.min() == -4.0


def test_kmeans_finds_three_classes():
    x = torch.cat([torch.randn(3000) * 0.02 + 0.2, torch.randn(2000) * 0.02 + 0.5,
                   torch.randn(1000) * 0.02 + 0.8])
    centres, stds, weights = kmeans_1d(x, 3)
    assert np.allclose(centres.numpy(), [0.2, 0.5, 0.8], atol=0.01)
    assert np.allclose(weights.numpy(), [0.5, 1 / 3, 1 / 6], atol=0.01)
    assert np.all(stds.numpy() < 0.03)


def _cancel_after(k):
    token = CancelToken()
    seen = []

    def progress(fraction, message):
        if "iteration" in message:
            seen.append(message)
            if len(seen) == k:
                token.cancel()

    return token, seen, progress


@pytest.mark.parametrize("method", ["reaction_diffusion", "energy", "gmm", "active_contour",
                                    "regularize"])
def test_cancel_stops_within_one_iteration(method):
    vol, truth = phantom(2)
    k = 3
    token, seen, progress = _cancel_after(k)
    probs = np.random.default_rng(0).random((3, 20, 20, 1)).astype(np.float32)
    runs = {
        "reaction_diffusion": lambda: run_reaction_diffusion(
            vol, ReactionDiffusionParams(iterations=50), device="cpu", mask=truth > 0,
            progress=progress, cancel=token),
        "energy": lambda: run_energy(vol, EnergyParams(iterations=50), device="cpu",
                                     mask=truth > 0, progress=progress, cancel=token),
        "gmm": lambda: run_gmm(vol, GMMParams(iterations=50), device="cpu", mask=truth > 0,
                               progress=progress, cancel=token),
        "active_contour": lambda: active_contour(
            vol, ActiveContourParams(iterations=50), seed=(36, 36), device="cpu",
            progress=progress, cancel=token),
        "regularize": lambda: regularize_probabilities(
            probs, ReactionDiffusionParams(iterations=50), device="cpu", progress=progress,
            cancel=token),
    }
    with pytest.raises(Cancelled):
        runs[method]()
    assert len(seen) in (k, k + 1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_cuda_agree():
    from engine.methods import METHODS

    vol, truth = phantom(3)
    mask = truth > 0
    for name, spec in METHODS.items():
        params = spec.default_params()
        a = spec.run(vol, params, device="cpu", mask=mask).labels.array
        b = spec.run(vol, params, device="cuda", mask=mask).labels.array
        assert (a == b).mean() > 0.995, name
    probs = np.random.default_rng(0).random((3, 24, 20, 6)).astype(np.float32)
    pa = regularize_probabilities(probs, device="cpu").probabilities
    pb = regularize_probabilities(probs, device="cuda").probabilities
    assert np.allclose(pa, pb, atol=1e-4)
    yy, xx = np.mgrid[:48, :48]
    disk = Volume(((xx - 24) ** 2 + (yy - 24) ** 2 < 144).astype(np.float32), np.eye(4))
    ca = active_contour(disk, seed=(24, 24), device="cpu").labels.array
    cb = active_contour(disk, seed=(24, 24), device="cuda").labels.array
    assert (ca == cb).mean() > 0.999


# -- the shared torch numerics of engine.core.tensors ---------------------------------
def test_quantiles_match_numpy():
    from engine.core.tensors import quantile

    values = np.random.default_rng(4).normal(size=10_001).astype(np.float32)
    x = torch.from_numpy(values)
    qs = [0.0, 0.005, 0.37, 0.5, 0.995, 1.0]
    linear = quantile(x, qs, interpolation="linear", max_samples=1 << 24)
    np.testing.assert_allclose(linear.numpy(), np.quantile(values, qs), rtol=1e-5, atol=1e-6)
    # "nearest": the order statistic of rank round(q (n - 1)), an element of the data
    for q in qs:
        rank = round(q * (values.size - 1))
        assert float(quantile(x, q)) == float(np.sort(values)[rank])
    # above max_samples a fixed stride is used: same answer every time, close to the truth
    big = torch.from_numpy(np.random.default_rng(5).random(3_000_001).astype(np.float32))
    a, b = quantile(big, 0.9, max_samples=1 << 16), quantile(big, 0.9, max_samples=1 << 16)
    assert float(a) == float(b) and float(a) == pytest.approx(0.9, abs=0.01)
    with pytest.raises(ValueError, match="2\\*\\*24"):
        quantile(x, 0.5, interpolation="linear", max_samples=1 << 25)


def test_linear_quantiles_are_torch_quantiles():
    """Found by selection, the same numbers as torch.quantile's full sort (brain
    extraction relies on it to reproduce deepbet), NaN included."""
    from engine.core.tensors import quantile

    rng = np.random.default_rng(4)
    for values in (rng.gamma(2.0, 100.0, (37, 41, 29)).astype(np.float32),
                   np.round(rng.normal(0, 3, 10_001)).astype(np.float32),  # many ties
                   np.array([5.0], np.float32)):
        qs = (0.0, 0.005, 0.5, 0.995, 1.0)
        x = torch.from_numpy(values)
        ours = quantile(x, qs, interpolation="linear", max_samples=x.numel())
        theirs = torch.quantile(x.reshape(-1), torch.tensor(qs))
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with_nan = torch.tensor([1.0, float("nan"), 2.0])
    assert torch.isnan(quantile(with_nan, [0.5], interpolation="linear")).all()


@pytest.mark.parametrize("sigmas", [(1.0, 2.0, 0.0), (2.0, 1.0, 1.0)])
def test_gaussian_blur_matches_scipy(sigmas):
    from scipy import ndimage

    from engine.core.tensors import gaussian_blur

    image = np.random.default_rng(6).random((1, 2, 17, 23, 15)).astype(np.float32)
    out = gaussian_blur(torch.from_numpy(image), sigmas).numpy()
    ref = image.astype(np.float64)
    for axis, s in enumerate(sigmas):
        if s > 0:  # scipy's radius int(3 s + 0.5) equals ceil(3 s) for these sigmas
            ref = ndimage.gaussian_filter1d(ref, s, axis=2 + axis, mode="nearest", truncate=3.0)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    # the leading (batch, channel) axes are never mixed
    np.testing.assert_allclose(gaussian_blur(torch.from_numpy(image[:, 1:]), sigmas).numpy(),
                               out[:, 1:], rtol=1e-6, atol=1e-7)


def test_contour_smoothing_is_a_gaussian_in_millimetres():
    from scipy import ndimage

    from engine.methods.active_contour import _gaussian_smooth

    img = torch.rand(20, 18, 9, generator=torch.Generator().manual_seed(7))
    # sigma 1 mm on (1, 0.5, 4) mm voxels: 1 and 2 voxels in-plane, 0.25 voxel through
    # the slices -- below 0.3 voxel, so that axis is left alone
    out = _gaussian_smooth(img, 1.0, (1.0, 0.5, 4.0)).numpy()
    ref = img.numpy().astype(np.float64)
    for axis, s in ((0, 1.0), (1, 2.0)):
        ref = ndimage.gaussian_filter1d(ref, s, axis=axis, mode="nearest", truncate=3.0)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
