"""Numerical pieces shared by the classical methods and baselines.

* :class:`NeumannStencil` -- the zero-flux (Neumann) Laplacian on a masked
  domain with the true voxel spacing, by shifted-slice additions;
* :func:`normalize_intensities`, :func:`kmeans_1d` -- robust intensity
  scaling and 1-D k-means of the brain's intensities;
* :func:`prepare_crop`, :func:`labels_to_volume`, :func:`full_probabilities`
  -- the brain's bounding box in and out of the methods;
* :func:`rank_labels`, :func:`inverse_square_sum`,
  :func:`diffusion_step_limit` -- tissue order and explicit-scheme stability;
* :func:`single_threaded_torch` -- one torch intra-op thread for work split
  into pieces too small to parallelise inside torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch

from ..core.errors import ParameterError
from ..core.jobs import ProgressCallback
from ..core.morphology import bounding_box
from ..core.tensors import quantile
from ..core.volume import BRAIN_TISSUE_LABELS, LabelMap, Volume
from .masks import resolve_mask

__all__ = [
    "Crop",
    "NeumannStencil",
    "Progress",
    "diffusion_step_limit",
    "full_probabilities",
    "inverse_square_sum",
    "kmeans_1d",
    "labels_to_volume",
    "normalize_intensities",
    "prepare_crop",
    "rank_labels",
    "single_threaded_torch",
]

Progress = ProgressCallback | Callable[[float, str], None] | None

#: Tissue labels in the order of increasing intensity, per image contrast.
_RANKS = {"t1": (1, 2, 3), "t2": (3, 2, 1)}


def rank_labels(contrast: str) -> tuple[int, int, int]:
    """Tissue labels (1 CSF, 2 GM, 3 WM) ordered by increasing intensity.

    ``"t1"``: CSF < GM < WM; ``"t2"``: WM < GM < CSF.

    Examples
    --------
    >>> rank_labels("t2")
    (3, 2, 1)
    """
    try:
        return _RANKS[contrast]
    except KeyError:
        raise ParameterError(f"contrast={contrast!r} is not allowed; choose t1 or t2") from None


def inverse_square_sum(spacing: Sequence[float], shape: Sequence[int]) -> float:
    """``sum(1/h_i**2)`` over the axes longer than one voxel."""
    total = 0.0
    for h, n in zip(spacing, shape, strict=True):
        if h <= 0 or not math.isfinite(h):
            raise ParameterError(f"voxel spacing {tuple(spacing)} mm is not positive")
        if n > 1:
            total += 1.0 / (h * h)
    return total


def diffusion_step_limit(diffusion: float, spacing: Sequence[float], shape: Sequence[int]) -> float:
    """Largest stable explicit time step ``1 / (2 D sum(1/h_i^2))`` (``inf`` if D = 0).

    Parameters
    ----------
    diffusion : float
        Diffusion coefficient D (mm² per time unit).
    spacing : sequence of float
        Voxel size (mm) along each axis.
    shape : sequence of int
        Grid shape; axes of length 1 do not count (a 2-D image is one slice).

    Examples
    --------
    >>> round(diffusion_step_limit(1.0, (1.0, 1.0, 1.0), (10, 10, 10)), 4)   # h²/(2·3·D)
    0.1667
    >>> diffusion_step_limit(1.0, (1.0, 1.0, 1.0), (10, 10, 1))               # h²/(2·2·D)
    0.25
    """
    s = inverse_square_sum(spacing, shape)
    if diffusion <= 0 or s == 0:
        return math.inf
    return 1.0 / (2.0 * diffusion * s)


class NeumannStencil:
    """The discrete Laplacian with zero-flux boundaries on a domain inside a box.

    For a voxel ``c`` of the domain, ``lap(u)(c) = sum_n w_n (u_n - u_c)`` over
    its face neighbours ``n`` that lie in the box *and* in the domain, with
    ``w_n = 1/h²`` of the neighbour's axis. Fields must be zero outside the
    domain (multiply by :attr:`domain_f` after each update); values computed
    outside the domain are meaningless. The operator is symmetric, so
    ``sum(lap(u)) == 0``: diffusion conserves mass.

    Parameters
    ----------
    shape : sequence of int
        Box shape ``(X, Y, Z)``; any axis may have length 1.
    spacing : sequence of float
        Voxel size (mm) per axis.
    domain : Tensor of bool, optional
        Domain inside the box; ``None`` means the whole box.
    device : torch.device
    dtype : torch.dtype
        Floating type of the fields the stencil is applied to.

    Examples
    --------
    >>> import torch
    >>> st = NeumannStencil((4, 4, 1), (1.0, 1.0, 1.0), None, torch.device("cpu"))
    >>> u = torch.zeros(4, 4, 1); u[0, 0, 0] = 1.0
    >>> float(st.laplacian(u).sum())
    0.0
    """

    def __init__(
        self,
        shape: Sequence[int],
        spacing: Sequence[float],
        domain: torch.Tensor | None,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.spacing = tuple(float(h) for h in spacing)
        self.weights = tuple(1.0 / (h * h) for h in self.spacing)
        self.device = device
        ones = (
            torch.ones(self.shape, dtype=dtype, device=device)
            if domain is None
            else domain.to(device=device, dtype=dtype)
        )
        self.domain_f = None if domain is None else ones
        k = torch.zeros(self.shape, dtype=dtype, device=device)
        self._shift_add(ones, k)
        #: Minus the sum of the in-domain neighbour weights of every voxel.
        self.neg_k = k.neg_()
        #: Upper bound of the spectral radius of the operator (1/mm²).
        self.max_rate = 4.0 * inverse_square_sum(self.spacing, self.shape)

    def _shift_add(self, u: torch.Tensor, out: torch.Tensor) -> None:
        lead = u.ndim - 3
        for axis, w in enumerate(self.weights):
            ax = lead + axis
            n = u.shape[ax]
            if n < 2:
                continue
            out.narrow(ax, 1, n - 1).add_(u.narrow(ax, 0, n - 1), alpha=w)
            out.narrow(ax, 0, n - 1).add_(u.narrow(ax, 1, n - 1), alpha=w)

    def laplacian(self, u: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``lap(u)`` for ``u`` of shape ``(..., X, Y, Z)``, written into *out*."""
        if out is None:
            out = torch.empty_like(u)
        torch.mul(u, self.neg_k, out=out)
        self._shift_add(u, out)
        return out

    def laplacian_rows(self, u: torch.Tensor, x0: int, x1: int, out: torch.Tensor) -> torch.Tensor:
        """``lap(u)`` of the rows ``x0 <= x < x1`` of the first spatial axis, into *out*.

        *out* has the shape of those rows (``u.narrow(-3, x0, x1 - x0)``); the
        neighbours across the slab's faces are read from *u*. Working slab by
        slab keeps the operands in the CPU cache (see :func:`evolve_fields`).
        """
        lead = u.ndim - 3
        rows = x1 - x0
        centre = u.narrow(lead, x0, rows)
        torch.mul(centre, self.neg_k.narrow(0, x0, rows), out=out)
        n, w = u.shape[lead], self.weights[0]
        if n >= 2:
            first = max(x0, 1)  # rows with a neighbour at x - 1
            if first < x1:
                out.narrow(lead, first - x0, x1 - first).add_(
                    u.narrow(lead, first - 1, x1 - first), alpha=w)
            last = min(x1, n - 1)  # rows with a neighbour at x + 1
            if last > x0:
                out.narrow(lead, 0, last - x0).add_(u.narrow(lead, x0 + 1, last - x0), alpha=w)
        for axis in (1, 2):
            ax, size, w = lead + axis, centre.shape[lead + axis], self.weights[axis]
            if size < 2:
                continue
            out.narrow(ax, 1, size - 1).add_(centre.narrow(ax, 0, size - 1), alpha=w)
            out.narrow(ax, 0, size - 1).add_(centre.narrow(ax, 1, size - 1), alpha=w)
        return out

    def neighbour_sum(self, u: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``sum_n w_n u_n`` over the face neighbours (the Laplacian without its centre)."""
        if out is None:
            out = torch.zeros_like(u)
        else:
            out.zero_()
        self._shift_add(u, out)
        return out


def _quantiles(values: torch.Tensor, qs: Sequence[float]) -> list[float]:
    """Linearly interpolated quantiles, on at most 2**24 values (fixed stride)."""
    q = quantile(values, qs, interpolation="linear", max_samples=1 << 24)
    return [float(x) for x in q.cpu()]


def normalize_intensities(
    image: torch.Tensor,
    mask: torch.Tensor,
    *,
    low: float = 0.5,
    high: float = 99.5,
) -> torch.Tensor:
    """Map the *low*..*high* percentiles of the intensities inside *mask* onto [0, 1].

    Values are clipped to [0, 1] and set to 0 outside the mask.

    Examples
    --------
    >>> import torch
    >>> img = torch.linspace(0, 100, 101).reshape(101, 1, 1)
    >>> out = normalize_intensities(img, torch.ones_like(img, dtype=torch.bool), low=0, high=100)
    >>> float(out.max()), float(out[50, 0, 0])
    (1.0, 0.5)
    """
    inside = image[mask].float()
    if inside.numel() == 0:
        raise ParameterError("the brain mask is empty")
    lo, hi = _quantiles(inside, (low / 100.0, high / 100.0))
    if not hi > lo:
        lo, hi = float(inside.min()), float(inside.max())
    scale = 1.0 / (hi - lo) if hi > lo else 1.0
    out = (image.float() - lo).mul_(scale).clamp_(0.0, 1.0)
    return out.mul_(mask)


def kmeans_1d(
    values: torch.Tensor, k: int = 3, *, iterations: int = 50, max_samples: int = 2_000_000
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on scalar values: sorted centres, standard deviations, weights.

    The centres start at the ``(i + 0.5) / k`` quantiles (evenly spaced over the
    range if those nearly coincide); more than
    *max_samples* values are sub-sampled with a fixed stride (deterministic).

    Examples
    --------
    >>> import torch
    >>> x = torch.cat([torch.full((50,), 0.1), torch.full((30,), 0.5), torch.full((20,), 0.9)])
    >>> [round(float(c), 2) for c in kmeans_1d(x, 3)[0]]
    [0.1, 0.5, 0.9]
    """
    x = values.reshape(-1).float()
    if x.numel() > max_samples:
        x = x[:: math.ceil(x.numel() / max_samples)]
    if x.numel() < k:
        raise ParameterError(f"k-means needs at least {k} voxels inside the mask")
    centres = torch.tensor(
        _quantiles(x, [(i + 0.5) / k for i in range(k)]), dtype=torch.float32, device=x.device
    )
    lo, hi = float(x.min()), float(x.max())
    span = (hi - lo) or 1.0
    if k > 1 and float(torch.diff(centres).min()) < 0.05 * span:
        # Quantiles collapse when one value dominates: start evenly spaced instead.
        centres = lo + span * (torch.arange(k, device=x.device, dtype=torch.float32) + 0.5) / k
    idx = torch.zeros_like(x, dtype=torch.long)
    for _ in range(iterations):
        bounds = 0.5 * (centres[1:] + centres[:-1])
        idx = torch.bucketize(x, bounds)
        count = torch.bincount(idx, minlength=k).float()
        total = torch.bincount(idx, weights=x, minlength=k).float()
        new = torch.where(count > 0, total / count.clamp(min=1.0), centres)
        new, _ = torch.sort(new)
        if float((new - centres).abs().max()) < 1e-7 * span:
            centres = new
            break
        centres = new
    bounds = 0.5 * (centres[1:] + centres[:-1])
    idx = torch.bucketize(x, bounds)
    count = torch.bincount(idx, minlength=k).float()
    sq = torch.bincount(idx, weights=(x - centres[idx]) ** 2, minlength=k).float()
    stds = torch.sqrt(sq / count.clamp(min=1.0)).clamp(min=1e-3 * span)
    weights = (count / count.sum()).clamp(min=1e-6)
    return centres, stds, weights


class Crop(NamedTuple):
    """The brain's bounding box (+1 voxel) with normalised intensities and mask."""

    box: tuple[slice, ...]
    image: torch.Tensor  # normalised intensities in [0, 1], zero outside the mask
    mask: torch.Tensor  # bool
    mask_f: torch.Tensor | None  # float mask, None when the mask fills the box
    spacing: tuple[float, float, float]


def prepare_crop(
    volume: Volume, mask: np.ndarray | None, device: torch.device
) -> tuple[np.ndarray, Crop]:
    """Brain mask, its bounding box (+1 voxel) and the normalised intensities there."""
    full_mask = resolve_mask(volume, mask)
    box = bounding_box(full_mask, margin=1)
    array = np.asarray(volume.array[box], dtype=np.float32)
    if not np.all(np.isfinite(array)):
        array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    m = torch.from_numpy(np.ascontiguousarray(full_mask[box])).to(device)
    img = torch.from_numpy(np.ascontiguousarray(array)).to(device)
    img = normalize_intensities(img, m)
    mask_f = None if bool(m.all()) else m.float()
    return full_mask, Crop(box, img, m, mask_f, tuple(volume.spacing))  # type: ignore[arg-type]


def labels_to_volume(volume: Volume, box: tuple[slice, ...], crop_labels: np.ndarray) -> LabelMap:
    out = np.zeros(volume.shape, dtype=np.uint8)
    out[box] = crop_labels
    return LabelMap.on_grid_of(volume, out, labels=BRAIN_TISSUE_LABELS)


def full_probabilities(
    volume: Volume,
    box: tuple[slice, ...],
    full_mask: np.ndarray,
    fields: torch.Tensor,
    ranks: Sequence[int],
) -> np.ndarray:
    """``(4, *shape)`` probabilities: background 1 outside the mask, classes inside."""
    total = fields.sum(0, keepdim=True)
    norm = torch.where(total > 0, fields / total.clamp(min=1e-12), 1.0 / fields.shape[0])
    probs = np.zeros((4, *volume.shape), dtype=np.float32)
    crop = norm.cpu().numpy()
    inside = full_mask[box]
    for j, label in enumerate(ranks):
        probs[label][box] = np.where(inside, crop[j], 0.0)
    probs[0] = ~full_mask
    return probs


@contextmanager
def single_threaded_torch(active: bool = True) -> Iterator[None]:
    """Run the block (or the decorated function) with one torch intra-op thread.

    Small operations (a slab, a click's crop) do not parallelise well inside
    torch, and on a busy CPU OpenMP spin-waits can stretch them many-fold. The
    previous thread count is restored afterwards.
    """
    before = torch.get_num_threads()
    if active:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if active:
            torch.set_num_threads(before)
