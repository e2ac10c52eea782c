r"""Energy-minimisation segmentation by gradient descent (Dai's thesis, eq. 32--33).

A smooth image :math:`v` is found by minimising

.. math::

    E(v) = \sum_{x \in \Omega} \bigl(I(x) - v(x)\bigr)^2
         + \lambda \sum_{x \in \Omega} \lVert \nabla v(x) \rVert^2

over the brain mask :math:`\Omega`, where :math:`I` are the intensities
normalised to [0, 1] inside the mask (0.5--99.5 percentiles) and
:math:`\nabla` are forward differences divided by the voxel spacing, taken
only between voxels that both lie in :math:`\Omega` (zero flux). Gradient
descent with step :math:`\eta`:

.. math::

    v \leftarrow v - \eta \nabla E(v), \qquad
    \nabla E(v) = -2 (I - v) - 2 \lambda \nabla^2 v .

The Hessian of :math:`E` has largest eigenvalue at most
:math:`L = 2 + 8 \lambda \sum_i h_i^{-2}`; the descent decreases :math:`E`
at every step for :math:`\eta < 2 / L`, i.e.

.. math::

    \eta < \frac{1}{1 + 4 \lambda \sum_i h_i^{-2}}

(axes longer than one voxel only). A larger :math:`\eta` raises
:class:`~engine.core.errors.ParameterError`. The energy of every iterate is kept
in ``SegmentationResult.info["energy"]`` (``iterations + 1`` values, the
first for :math:`v = I`). Finally the voxels of the mask are classified by
1-D k-means of :math:`v` into three classes (CSF, GM, WM by increasing
intensity on T1).

The energy is that of Dai's thesis [1]_: a quadratic data term and a
quadratic (Tikhonov [2]_) smoothness term -- the Mumford--Shah functional [3]_
without its edge set, so :math:`v` is smoothed across tissue boundaries too and
the classes come from k-means [4]_ of :math:`v`, not from the energy.

References
----------
The full list, with DOIs, is ``docs/references.md``.

.. [1] Y. Dai, *Deep Learning-based Medical Image Segmentation for Early Cancer
   Detection* (thesis), eq. 32--33 and Table 1.
.. [2] A. N. Tikhonov, "Solution of incorrectly formulated problems and the
   regularization method", Soviet Mathematics Doklady 4:1035--1038, 1963.
.. [3] D. Mumford, J. Shah, "Optimal approximations by piecewise smooth
   functions and associated variational problems", Communications on Pure and
   Applied Mathematics 42(5):577--685, 1989. doi:10.1002/cpa.3160420503
.. [4] S. P. Lloyd, "Least squares quantization in PCM", IEEE Trans. Information
   Theory 28(2):129--137, 1982. doi:10.1109/TIT.1982.1056489

Examples
--------
>>> import numpy as np
>>> from engine.core.volume import Volume
>>> img = np.zeros((20, 20, 20), np.float32); img[4:16, 4:16, 4:16] = 1.0
>>> img[7:13, 7:13, 7:13] = 2.0; img[9:11, 9:11, 9:11] = 3.0
>>> res = run_energy(Volume(img + 1.0, np.eye(4)), device="cpu")
>>> e = res.info["energy"]; all(b <= a for a, b in zip(e, e[1:]))
True
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..core.device import resolve_device
from ..core.errors import ParameterError
from ..core.jobs import CancelToken, check_cancel, report
from ..core.params import param, validate
from ..core.steps import SegmentationResult
from ..core.volume import Volume
from .numerics import (
    NeumannStencil,
    Progress,
    inverse_square_sum,
    kmeans_1d,
    labels_to_volume,
    prepare_crop,
    rank_labels,
)

__all__ = ["EnergyParams", "descend", "energy_step_limit", "run_energy"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnergyParams:
    """Parameters of the energy descent (Dai's thesis, eq. 32--33, Table 1)."""

    eta: float = param(
        0.03, lo=0.0, hi=10.0, lo_inclusive=False,
        doc="η, gradient-descent step; must be < 1/(1 + 4 λ Σ 1/h²)",
    )
    lam: float = param(
        0.5, lo=0.0, hi=1000.0, unit="mm²",
        doc="λ, weight of the smoothness term Σ‖∇v‖²",
    )
    iterations: int = param(60, lo=1, hi=100_000, doc="number of descent steps")
    contrast: str = param(
        "t1", choices=("t1", "t2"),
        doc="image contrast: t1 (CSF < GM < WM) or t2 (WM < GM < CSF)",
    )


def energy_step_limit(lam: float, spacing: Sequence[float], shape: Sequence[int]) -> float:
    """The bound ``1 / (1 + 4 λ Σ 1/h²)`` that η must stay below.

    Examples
    --------
    >>> round(energy_step_limit(1.0, (1.0, 1.0, 1.0), (8, 8, 8)), 4)
    0.0769
    """
    return 1.0 / (1.0 + 4.0 * lam * inverse_square_sum(spacing, shape))


def _check(params: EnergyParams, spacing: Sequence[float], shape: Sequence[int]) -> None:
    validate(params)
    limit = energy_step_limit(params.lam, spacing, shape)
    if params.eta >= limit:
        sp = "x".join(f"{h:g}" for h in spacing)
        raise ParameterError(
            f"eta={params.eta:g} is not below the stability bound {limit:g} "
            f"(1/(1 + 4·λ·Σ 1/h²) with λ={params.lam:g} mm², spacing {sp} mm): "
            "the energy would not decrease"
        )


def descend(
    image: torch.Tensor,
    params: EnergyParams,
    spacing: Sequence[float],
    *,
    domain: torch.Tensor | None = None,
    progress: Progress = None,
    cancel: CancelToken | None = None,
) -> tuple[torch.Tensor, list[float]]:
    """Minimise ``E(v)`` from ``v = image``; return ``v`` and the energy of every iterate.

    Parameters
    ----------
    image : Tensor
        ``(X, Y, Z)`` float32 normalised intensities (any axis may have length 1).
    params : EnergyParams
    spacing : sequence of float
        Voxel size (mm).
    domain : Tensor of bool, optional
        The mask Ω (default: the whole box); *image* is taken as 0 outside.
    progress, cancel
        ``progress(fraction, "iteration i/n")`` once per step; the token is
        checked before every step.

    Returns
    -------
    (Tensor, list of float)
        The minimiser estimate (float64) and ``iterations + 1`` energies.

    Notes
    -----
    The descent runs in float64: in float32 the rounding of the iterates and
    of the energy sums (about 1e-7 relative) exceeds the true decrease of E
    once the descent has nearly converged, and E would appear to wobble.

    Examples
    --------
    >>> import torch
    >>> img = torch.rand(16, 16, 1)
    >>> v, e = descend(img, EnergyParams(eta=0.1, lam=0.5, iterations=10), (1.0, 1.0, 1.0))
    >>> e[-1] < e[0]
    True
    """
    _check(params, spacing, image.shape)
    stencil = NeumannStencil(image.shape, spacing, domain, image.device, dtype=torch.float64)
    target = image.double()
    if stencil.domain_f is not None:
        target = target * stencil.domain_f
    v = target.clone()
    lap = torch.empty_like(v)
    resid = torch.empty_like(v)
    tmp = torch.empty_like(v)
    eta, lam, n = params.eta, params.lam, params.iterations

    def energy() -> float:
        torch.mul(resid, resid, out=tmp)
        data = tmp.sum()
        torch.mul(v, lap, out=tmp)
        smooth = tmp.sum()  # Σ v·∇²v = -Σ_edges w (Δv)²
        return float(data - lam * smooth)

    energies: list[float] = []
    for it in range(n):
        check_cancel(cancel)
        stencil.laplacian(v, out=lap)
        torch.sub(target, v, out=resid)
        energies.append(energy())
        # v <- v - η ∇E = v + 2η (I - v) + 2ηλ ∇²v
        v.add_(resid, alpha=2.0 * eta).add_(lap, alpha=2.0 * eta * lam)
        if stencil.domain_f is not None:
            v.mul_(stencil.domain_f)
        report(progress, (it + 1) / n, f"iteration {it + 1}/{n}")
    stencil.laplacian(v, out=lap)
    torch.sub(target, v, out=resid)
    energies.append(energy())
    return v, energies


def run_energy(
    volume: Volume,
    params: EnergyParams | None = None,
    *,
    device: str | torch.device = "auto",
    mask: np.ndarray | None = None,
    progress: Progress = None,
    cancel: CancelToken | None = None,
) -> SegmentationResult:
    """Segment CSF/GM/WM by energy descent (Dai's thesis, eq. 32--33) and k-means of the result.

    Parameters
    ----------
    volume : Volume
    params : EnergyParams, optional
    device : "auto", "cpu", "cuda" or torch.device
    mask : ndarray of bool, optional
        Brain mask (default: :func:`~engine.methods.masks.rough_brain_mask`).
    progress, cancel
        Progress callback and cancel token (checked every iteration).

    Returns
    -------
    SegmentationResult
        Labels 0/1/2/3; ``info["energy"]`` holds E per iterate (decreasing),
        ``info["class_means"]`` the k-means centres of v.

    References
    ----------
    .. [1] Y. Dai, *Deep Learning-based Medical Image Segmentation for Early
       Cancer Detection* (thesis), eq. 32--33 and Table 1.
    .. [2] D. Mumford, J. Shah, "Optimal approximations by piecewise smooth
       functions and associated variational problems", Communications on Pure
       and Applied Mathematics 42(5):577--685, 1989. doi:10.1002/cpa.3160420503
       (E is its smooth part, without the edge set)
    .. [3] S. P. Lloyd, "Least squares quantization in PCM", IEEE Trans.
       Information Theory 28(2):129--137, 1982. doi:10.1109/TIT.1982.1056489

    Examples
    --------
    >>> import numpy as np
    >>> from engine.core.volume import Volume
    >>> img = np.zeros((24, 24), np.float32); img[4:20, 4:20] = 1.0; img[8:16, 8:16] = 2.0
    >>> img[11:13, 11:13] = 3.0
    >>> res = run_energy(Volume(img + 1.0, np.eye(4)), EnergyParams(lam=0.2), device="cpu")
    >>> int(res.labels.array[12, 12, 0]), len(res.info["energy"])
    (3, 61)
    """
    params = validate(params or EnergyParams())
    _check(params, volume.spacing, volume.shape)
    ranks = rank_labels(params.contrast)
    dev = resolve_device(device)
    check_cancel(cancel)
    _, crop = prepare_crop(volume, mask, dev)
    v, energies = descend(
        crop.image, params, crop.spacing,
        domain=None if crop.mask_f is None else crop.mask,
        progress=progress, cancel=cancel,
    )
    v = v.float()
    centres, _, _ = kmeans_1d(v[crop.mask], 3)
    rank = torch.bucketize(v, 0.5 * (centres[1:] + centres[:-1]))
    lut = torch.tensor(ranks, dtype=torch.uint8, device=dev)
    crop_labels = torch.where(crop.mask, lut[rank], torch.zeros_like(rank, dtype=torch.uint8))
    labels = labels_to_volume(volume, crop.box, crop_labels.cpu().numpy())
    info = {
        "energy": energies,
        "iterations": params.iterations,
        "class_means": [float(c) for c in centres.cpu()],
        "device": str(dev),
    }
    return SegmentationResult(labels=labels, info=info)
