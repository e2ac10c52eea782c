"""A small brain-like phantom for the viewer tests of methods, comparison and refine."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from engine.core.volume import BRAIN_TISSUE_LABELS, LabelMap, Volume

SHAPE = (40, 40, 28)
#: Mean intensity of background, CSF, gray matter and white matter (T1-like).
INTENSITY = np.array([5.0, 40.0, 90.0, 140.0], np.float32)


def tissue_phantom(seed: int = 0, noise: float = 6.0) -> tuple[Volume, LabelMap]:
    """Nested ellipsoid shells (CSF outside, GM, WM core) with Gaussian noise, 1 mm voxels."""
    i, j, k = np.indices(SHAPE).astype(np.float32)
    c = [(n - 1) / 2.0 for n in SHAPE]
    r = np.sqrt(((i - c[0]) / 1.0) ** 2 + ((j - c[1]) / 1.1) ** 2 + ((k - c[2]) / 0.75) ** 2)
    labels = np.zeros(SHAPE, np.uint8)
    labels[r < 17.0] = 1
    labels[r < 14.0] = 2
    labels[r < 8.5] = 3
    rng = np.random.default_rng(seed)
    image = INTENSITY[labels] + rng.normal(0.0, noise, SHAPE).astype(np.float32)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = (-20.0, -22.0, -14.0)
    volume = Volume(image.astype(np.float32), affine, modality="MR")
    return volume, LabelMap.on_grid_of(volume, labels, labels=BRAIN_TISSUE_LABELS)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small volumes: one torch thread avoids OpenMP spin-waits on a shared, busy CPU.

    Import it into a test module (``from phantom_testing import one_torch_thread``)
    to use it there.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def methods_of(window):
    """The window's methods controller (the Methods dock, comparison, click-to-refine)."""
    return window.methods


def wait_until(qtbot, condition, timeout_s: float = 60.0) -> None:
    """Process events until *condition()* holds (fails after *timeout_s*)."""
    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, "timed out"
        qtbot.wait(10)
