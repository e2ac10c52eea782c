"""Active contours recover noisy disks and spheres; refinement fixes shifted boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.errors import ParameterError
from engine.core.volume import Volume
from engine.methods import ActiveContourParams, refine_labels
from engine.methods.active_contour import active_contour

PARAMS = ActiveContourParams(iterations=160)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def _disk(noise: float = 0.35, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    disk = ((xx - 33) ** 2 + (yy - 30) ** 2 < 17**2)[:, :, None]
    img = disk * 1.0 + rng.normal(0.0, noise, disk.shape)
    return Volume(img.astype(np.float32), np.diag([0.9, 0.9, 2.0, 1.0])), disk


def _sphere(noise: float = 0.35, seed: int = 0):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:36, :36, :36]
    ball = (xx - 18) ** 2 + (yy - 17) ** 2 + (zz - 19) ** 2 < 11**2
    img = ball * 1.0 + rng.normal(0.0, noise, ball.shape)
    return Volume(img.astype(np.float32), np.eye(4)), ball


def _perturbed(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """Shifted by 3 voxels, with 10 % of its voxels dropped."""
    rng = np.random.default_rng(seed)
    return np.roll(mask, 3, axis=0) & (rng.random(mask.shape) > 0.1)


@pytest.mark.parametrize("start", ["seed", "box", "mask"])
def test_disk_2d_recovered(start):
    vol, disk = _disk()
    kwargs = {
        "seed": {"seed": (30, 33)},
        "box": {"box": ((4, 4), (60, 60))},
        "mask": {"init_mask": _perturbed(disk)},
    }[start]
    res = active_contour(vol, PARAMS, device="cpu", **kwargs)
    assert res.labels.shape == vol.shape
    assert _dice(res.labels.array, disk) >= 0.95
    assert res.info["mean_inside"] > res.info["mean_outside"]


@pytest.mark.parametrize("start", ["seed", "box", "mask"])
def test_sphere_3d_recovered(start):
    vol, ball = _sphere()
    kwargs = {
        "seed": {"seed": (19, 17, 18)},
        "box": {"box": ((3, 3, 3), (33, 33, 33))},
        "mask": {"init_mask": _perturbed(ball)},
    }[start]
    res = active_contour(vol, PARAMS, device="cpu", **kwargs)
    assert _dice(res.labels.array, ball) >= 0.95


def test_contour_stays_in_its_domain_and_grows_its_crop():
    vol, disk = _disk(noise=0.1)
    domain = np.zeros(disk.shape, bool)
    domain[:, :40] = True
    res = active_contour(vol, PARAMS, seed=(30, 33), mask=domain, device="cpu")
    out = res.labels.array.astype(bool)
    assert not (out & ~domain).any()
    assert _dice(out, disk & domain) >= 0.95


def test_refine_moves_shifted_boundaries_back():
    rng = np.random.default_rng(2)
    truth = np.ones((60, 60, 1), np.uint8)
    truth[12:48, 12:48] = 2
    truth[22:38, 22:38] = 3
    img = np.array([0, 30, 60, 90], np.float32)[truth] + rng.normal(0, 6, truth.shape)
    vol = Volume(img.astype(np.float32), np.eye(4))
    rough = np.roll(truth, (3, -2), axis=(0, 1))
    res = refine_labels(vol, rough, ActiveContourParams(iterations=40), device="cpu")
    for k in (1, 2, 3):
        assert _dice(res.labels.array == k, truth == k) > 0.97
        assert _dice(res.labels.array == k, truth == k) > _dice(rough == k, truth == k)


def test_contour_arguments_are_checked():
    vol, _ = _disk()
    with pytest.raises(ParameterError, match="exactly one"):
        active_contour(vol, seed=(3, 3), box=((0, 0), (5, 5)), device="cpu")
    with pytest.raises(ParameterError, match="outside the image"):
        active_contour(vol, seed=(300, 3), device="cpu")
    with pytest.raises(ParameterError, match="does not match"):
        active_contour(vol, init_mask=np.ones((5, 5), bool), device="cpu")
    with pytest.raises(ParameterError, match="stability limit"):
        active_contour(vol, ActiveContourParams(dt=5.0), seed=(30, 30), device="cpu")
