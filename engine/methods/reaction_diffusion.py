r"""Reaction--diffusion segmentation and probability regularisation (Dai's thesis, eq. 30--31).

Each tissue class ``k`` has a field :math:`u_k(x, t) \in [0, 1]` that evolves by

.. math::

    \frac{\partial u_k}{\partial t} = D \nabla^2 u_k + R(u_k, v_k), \qquad
    R(u, v) = \alpha\, u (1 - u) - \beta\, u v, \qquad v_k = \sum_{j \ne k} u_j,

with zero-flux (Neumann) boundaries on the brain mask and on the image box.
The logistic term :math:`\alpha u(1-u)` lets a field that is present grow
towards 1 (diffusion with logistic growth is Fisher's equation [2]_); the
competition term :math:`-\beta u v` (Lotka--Volterra competition [3]_) lets the
classes suppress one another, so that with :math:`\beta > \alpha` one class wins
at every voxel while diffusion makes the winner spatially coherent. The
equation is that of Dai's thesis [1]_; the discretisation, the stability bounds
and the initial fields below are Delineo's.

Two uses:

* :func:`run_reaction_diffusion` -- a CSF/GM/WM segmentation: the initial
  fields are soft memberships from class means and spreads estimated inside
  the brain mask (1-D k-means on the normalised intensities, then one Gaussian
  E-step); after the evolution each voxel takes the class of largest field.
* :func:`regularize_probabilities` -- smooths per-label probability maps
  (e.g. a CNN softmax) with the same equation, renormalising after every step
  so the maps stay a partition of unity, then takes the argmax.

Discretisation: explicit Euler in time and the 7-point Laplacian (5-point in
2-D) with the true voxel spacing; a voxel's neighbours outside the domain are
left out of its stencil, which is the zero-flux condition and conserves
:math:`\sum u` exactly for pure diffusion. Explicit diffusion is stable for

.. math::

    \Delta t \le \frac{1}{2 D \sum_i h_i^{-2}}
    \;\;\bigl(= h^2 / (2 d D) \text{ for an isotropic grid in } d \text{ dimensions}\bigr),

the sum running over the axes longer than one voxel; the reaction keeps the
fields in :math:`[0, 1]` for :math:`\Delta t\,\alpha \le 1` and
:math:`\Delta t\,\beta \le 1`. Larger steps raise
:class:`~engine.core.errors.ParameterError`.

The pieces the classical methods share -- the zero-flux stencil
:class:`~engine.methods.numerics.NeumannStencil`, intensity normalisation and
the 1-D k-means used to estimate tissue classes -- are in
:mod:`engine.methods.numerics`.

References
----------
The full list, with DOIs, is ``docs/references.md``.

.. [1] Y. Dai, *Deep Learning-based Medical Image Segmentation for Early Cancer
   Detection* (thesis), eq. 30--31 and Table 1.
.. [2] R. A. Fisher, "The wave of advance of advantageous genes", Annals of
   Eugenics 7(4):355--369, 1937. doi:10.1111/j.1469-1809.1937.tb02153.x
.. [3] V. Volterra, "Fluctuations in the abundance of a species considered
   mathematically", Nature 118:558--560, 1926. doi:10.1038/118558a0

Examples
--------
>>> import numpy as np
>>> from engine.core.volume import Volume
>>> img = np.zeros((24, 24, 1), np.float32); img[4:20, 4:20] = 1.0
>>> img[8:16, 8:16] = 2.0; img[10:14, 10:14] = 3.0
>>> vol = Volume(img, np.eye(4))
>>> res = run_reaction_diffusion(vol, ReactionDiffusionParams(iterations=20), device="cpu")
>>> sorted(res.labels.counts())   # 0 is the background outside the rough mask
[0, 1, 2, 3]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

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
    diffusion_step_limit,
    full_probabilities,
    kmeans_1d,
    labels_to_volume,
    prepare_crop,
    rank_labels,
    single_threaded_torch,
)

__all__ = [
    "REGULARIZER_DEFAULTS",
    "ReactionDiffusionParams",
    "RegularizedProbabilities",
    "check_stability",
    "class_statistics",
    "evolve_fields",
    "regularize_probabilities",
    "run_reaction_diffusion",
]

log = logging.getLogger(__name__)

#: Field values below this are set to 0 (avoids float32 denormals).
_TINY = 1e-30
#: Elements (all channels) of one slab of :func:`evolve_fields` on the CPU (~1.2 MB float32).
_SLAB_ELEMENTS = 300_000


# ---------------------------------------------------------------------------
# Initial fields
# ---------------------------------------------------------------------------
def class_statistics(
    image: torch.Tensor, mask: torch.Tensor, k: int = 3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """k-means class means, spreads and proportions of *image* inside *mask*."""
    return kmeans_1d(image[mask], k)


def _gaussian_memberships(
    image: torch.Tensor,
    mask_f: torch.Tensor | None,
    centres: torch.Tensor,
    stds: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """One Gaussian-mixture E-step: ``(k, *image.shape)`` memberships summing to 1."""
    k = centres.numel()
    logp = torch.empty((k, *image.shape), dtype=torch.float32, device=image.device)
    for j in range(k):
        z = (image - float(centres[j])) / float(stds[j])
        logp[j] = -0.5 * z * z - math.log(float(stds[j])) + math.log(float(weights[j]))
    out = torch.softmax(logp, dim=0)
    if mask_f is not None:
        out.mul_(mask_f)
    return out


# ---------------------------------------------------------------------------
# The reaction-diffusion system
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReactionDiffusionParams:
    """Parameters of the reaction-diffusion system (Dai's thesis, eq. 30--31, Table 1).

    Time is in arbitrary time units (t.u.); D in mm²/t.u.; α, β in 1/t.u.
    """

    diffusion: float = param(
        0.05, lo=0.0, hi=100.0, unit="mm²/t.u.",
        doc="D, diffusion coefficient of every field",
    )
    alpha: float = param(
        2.0, lo=0.0, hi=1000.0, unit="1/t.u.",
        doc="α, logistic growth rate of a field towards 1",
    )
    beta: float = param(
        4.0, lo=0.0, hi=1000.0, unit="1/t.u.",
        doc="β, competition rate between classes (β > α: one class wins per voxel)",
    )
    dt: float = param(
        0.2, lo=0.0, hi=100.0, lo_inclusive=False, unit="t.u.",
        doc="explicit time step; stable for dt <= 1/(2 D sum 1/h²), dt·α <= 1, dt·β <= 1",
    )
    iterations: int = param(100, lo=1, hi=100_000, doc="number of time steps")
    contrast: str = param(
        "t1", choices=("t1", "t2"),
        doc="image contrast: t1 (CSF < GM < WM) or t2 (WM < GM < CSF)",
    )


def check_stability(params: ReactionDiffusionParams, spacing: Sequence[float],
                    shape: Sequence[int]) -> None:
    """Raise :class:`ParameterError` if the explicit scheme is unstable.

    Examples
    --------
    >>> check_stability(ReactionDiffusionParams(dt=0.3, diffusion=1.0, alpha=0.0, beta=0.0),
    ...                 (1.0, 1.0, 1.0), (8, 8, 8))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    engine.core.errors.ParameterError: dt=0.3 t.u. exceeds the explicit diffusion stability ...
    """
    validate(params)
    limit = diffusion_step_limit(params.diffusion, spacing, shape)
    if params.dt > limit * (1.0 + 1e-9):
        active = sum(1 for n in shape if n > 1)
        sp = "x".join(f"{h:g}" for h in spacing)
        raise ParameterError(
            f"dt={params.dt:g} t.u. exceeds the explicit diffusion stability limit "
            f"{limit:g} t.u. (1/(2·D·Σ 1/h²) with D={params.diffusion:g} mm²/t.u., "
            f"spacing {sp} mm, {active} active axes)"
        )
    for name, rate in (("alpha", params.alpha), ("beta", params.beta)):
        if params.dt * rate > 1.0 + 1e-9:
            raise ParameterError(
                f"dt·{name} = {params.dt * rate:g} > 1: the reaction step is unstable; "
                f"use dt <= {1.0 / rate:g} t.u."
            )


def evolve_fields(
    fields: torch.Tensor,
    params: ReactionDiffusionParams,
    spacing: Sequence[float],
    *,
    domain: torch.Tensor | None = None,
    renormalize: bool = False,
    clip: bool = True,
    progress: Progress = None,
    cancel: CancelToken | None = None,
) -> torch.Tensor:
    """Integrate eq. 30--31 for ``params.iterations`` explicit steps, in place.

    Parameters
    ----------
    fields : Tensor
        ``(C, X, Y, Z)`` floating-point fields (float32 in the methods; any axis
        may have length 1); evolved in place.
    params : ReactionDiffusionParams
    spacing : sequence of float
        Voxel size (mm) of the three axes.
    domain : Tensor of bool, optional
        ``(X, Y, Z)`` domain with zero-flux boundary; fields are kept 0 outside.
    renormalize : bool
        Divide by the sum over classes after every step (partition of unity).
    clip : bool
        Without *renormalize*, clip the fields at 1 after every step. Fields
        are always clipped at 0 (values below 1e-30 become 0).
    progress, cancel
        ``progress(fraction, "iteration i/n")`` once per step; the token is
        checked before every step (raises :class:`~engine.core.jobs.Cancelled`).

    Returns
    -------
    Tensor
        *fields*, evolved.

    Examples
    --------
    >>> import torch
    >>> u = torch.zeros(1, 16, 1, 1); u[0, 0] = 1.0
    >>> p = ReactionDiffusionParams(diffusion=1.0, alpha=0.0, beta=0.0, dt=0.5, iterations=50)
    >>> round(float(evolve_fields(u, p, (1.0, 1.0, 1.0)).sum()), 5)   # mass is conserved
    1.0
    """
    if fields.ndim != 4:
        raise ParameterError(f"fields must be (C, X, Y, Z); got shape {tuple(fields.shape)}")
    check_stability(params, spacing, fields.shape[1:])
    stencil = NeumannStencil(fields.shape[1:], spacing, domain, fields.device, dtype=fields.dtype)
    channels, nx = fields.shape[0], fields.shape[1]
    # Explicit Euler with two buffers, one slab of the first axis at a time: every update
    # of a slab (Laplacian, reaction, clipping, masking) runs while its ~1 MB of operands
    # are in the CPU cache, instead of ~15 passes over the whole fields per step. On the
    # CPU the slabs are shared among threads (one torch thread each: tiny operations do
    # not parallelise well inside torch); on CUDA the whole box is one slab.
    if fields.device.type == "cuda":
        slab, workers = nx, 1
    else:
        per_row = channels * fields.shape[2] * fields.shape[3]
        slab = max(2, min(nx, _SLAB_ELEMENTS // max(per_row, 1)))
        workers = max(1, min(torch.get_num_threads(), -(-nx // slab)))
    bounds = [round(nx * w / workers) for w in range(workers + 1)]
    u, nxt = fields, torch.empty_like(fields)
    scratch = [
        (torch.empty((channels, slab, *fields.shape[2:]), dtype=u.dtype, device=u.device),
         torch.empty((1, slab, *fields.shape[2:]), dtype=u.dtype, device=u.device))
        for _ in range(workers)
    ]
    a, b, dt, diff = params.alpha, params.beta, params.dt, params.diffusion
    use_reaction = a != 0.0 or b != 0.0

    def update(worker: int, u: torch.Tensor, nxt: torch.Tensor) -> None:
        react, total = scratch[worker]
        for x0 in range(bounds[worker], bounds[worker + 1], slab):
            rows = min(slab, bounds[worker + 1] - x0)
            old = u.narrow(1, x0, rows)
            new = nxt.narrow(1, x0, rows)
            if diff != 0.0:
                stencil.laplacian_rows(u, x0, x0 + rows, new)
                new.mul_(dt * diff).add_(old)
            else:
                new.copy_(old)
            if use_reaction:
                # R = α u (1 - u) - β u (S - u) = u (α - β S + (β - α) u),  S = Σ_j u_j
                tot = total.narrow(1, 0, rows)
                r = react.narrow(1, 0, rows)
                torch.sum(old, dim=0, keepdim=True, out=tot)
                tot.mul_(-b).add_(a)
                torch.add(tot, old, alpha=b - a, out=r)
                r.mul_(old)
                new.add_(r, alpha=dt)
            # Clip below at 0 and flush values under 1e-30 to exactly 0: decaying fields
            # would otherwise reach float32 denormals, which are very slow on CPUs.
            torch.nn.functional.threshold_(new, _TINY, 0.0)
            if renormalize:
                tot = total.narrow(1, 0, rows)
                torch.sum(new, dim=0, keepdim=True, out=tot)
                # A voxel whose fields all vanished (cannot happen for stable steps) stays 0.
                new.div_(tot.clamp_(min=1e-30))
            elif clip:
                new.clamp_(max=1.0)
            if stencil.domain_f is not None:
                new.mul_(stencil.domain_f.narrow(0, x0, rows))

    if stencil.domain_f is not None:
        u.mul_(stencil.domain_f)
    n = params.iterations
    with single_threaded_torch(workers > 1), ThreadPoolExecutor(workers) as pool:
        for it in range(n):
            check_cancel(cancel)
            if workers == 1:
                update(0, u, nxt)
            else:
                list(pool.map(update, range(workers), [u] * workers, [nxt] * workers))
            u, nxt = nxt, u
            report(progress, (it + 1) / n, f"iteration {it + 1}/{n}")
    if u is not fields:
        fields.copy_(u)
    return fields


def run_reaction_diffusion(
    volume: Volume,
    params: ReactionDiffusionParams | None = None,
    *,
    device: str | torch.device = "auto",
    mask: np.ndarray | None = None,
    progress: Progress = None,
    cancel: CancelToken | None = None,
) -> SegmentationResult:
    """Segment CSF/GM/WM inside the brain mask with competing reaction-diffusion fields.

    The intensities inside the mask are normalised (0.5--99.5 percentiles to
    [0, 1]); 1-D k-means gives each class a mean, spread and proportion; the
    Gaussian memberships of the voxels are the initial fields; the fields
    evolve by eq. 30--31 with zero flux across the mask boundary, restricted
    to the mask's bounding box; labels are the argmax.

    Parameters
    ----------
    volume : Volume
    params : ReactionDiffusionParams, optional
    device : "auto", "cpu", "cuda" or torch.device
    mask : ndarray of bool, optional
        Brain mask on the volume grid (default: :func:`~engine.methods.masks.rough_brain_mask`).
    progress, cancel
        Progress callback and cancel token (checked every iteration).

    Returns
    -------
    SegmentationResult
        Labels 0/1/2/3, probabilities ``(4, *shape)`` (background, CSF, GM,
        WM) and ``info`` with the class means and the iterations run.

    References
    ----------
    .. [1] Y. Dai, *Deep Learning-based Medical Image Segmentation for Early
       Cancer Detection* (thesis), eq. 30--31 and Table 1.
    .. [2] R. A. Fisher, "The wave of advance of advantageous genes", Annals of
       Eugenics 7(4):355--369, 1937. doi:10.1111/j.1469-1809.1937.tb02153.x
    .. [3] V. Volterra, "Fluctuations in the abundance of a species considered
       mathematically", Nature 118:558--560, 1926. doi:10.1038/118558a0
    .. [4] S. P. Lloyd, "Least squares quantization in PCM", IEEE Trans.
       Information Theory 28(2):129--137, 1982. doi:10.1109/TIT.1982.1056489
       (the k-means of the initial class statistics)

    Examples
    --------
    >>> import numpy as np
    >>> from engine.core.volume import Volume
    >>> img = np.zeros((20, 20, 20), np.float32); img[4:16, 4:16, 4:16] = 1.0
    >>> img[7:13, 7:13, 7:13] = 2.0; img[9:11, 9:11, 9:11] = 3.0
    >>> res = run_reaction_diffusion(Volume(img + 1.0, np.eye(4)), device="cpu")
    >>> int(res.labels.array[10, 10, 10])
    3
    """
    params = validate(params or ReactionDiffusionParams())
    check_stability(params, volume.spacing, volume.shape)
    ranks = rank_labels(params.contrast)
    dev = resolve_device(device)
    check_cancel(cancel)
    full_mask, crop = prepare_crop(volume, mask, dev)
    centres, stds, weights = class_statistics(crop.image, crop.mask, 3)
    fields = _gaussian_memberships(crop.image, crop.mask_f, centres, stds, weights)
    evolve_fields(
        fields, params, crop.spacing, domain=None if crop.mask_f is None else crop.mask,
        progress=progress, cancel=cancel,
    )
    rank = torch.argmax(fields, dim=0)
    lut = torch.tensor(ranks, dtype=torch.uint8, device=dev)
    crop_labels = torch.where(crop.mask, lut[rank], torch.zeros_like(rank, dtype=torch.uint8))
    labels = labels_to_volume(volume, crop.box, crop_labels.cpu().numpy())
    probs = full_probabilities(volume, crop.box, full_mask, fields, ranks)
    info = {
        "iterations": params.iterations,
        "class_means": [float(c) for c in centres.cpu()],
        "class_stds": [float(s) for s in stds.cpu()],
        "device": str(dev),
    }
    return SegmentationResult(labels=labels, probabilities=probs, info=info)


#: Defaults of :func:`regularize_probabilities`: more diffusion and a gentler competition
#: than the segmentation, so isolated wrong voxels are averaged away before the maps sharpen.
REGULARIZER_DEFAULTS = ReactionDiffusionParams(
    diffusion=0.3, alpha=1.0, beta=1.5, dt=0.2, iterations=50
)


class RegularizedProbabilities(NamedTuple):
    """Output of :func:`regularize_probabilities`."""

    probabilities: np.ndarray | torch.Tensor
    labels: np.ndarray | torch.Tensor


def regularize_probabilities(
    probs: np.ndarray | torch.Tensor,
    params: ReactionDiffusionParams | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    mask: np.ndarray | torch.Tensor | None = None,
    device: str | torch.device = "auto",
    progress: Progress = None,
    cancel: CancelToken | None = None,
) -> RegularizedProbabilities:
    """Smooth per-label probability maps by reaction-diffusion, keeping a partition of unity.

    Every step applies eq. 30--31 to all channels, clips at 0 and divides by
    the channel sum, so the maps sum to 1 at every voxel after every step;
    diffusion removes isolated (salt-and-pepper) label noise and the
    competition term (β > α) sharpens the maps again. The label of a voxel
    is the index of its largest channel (channel ``c`` is label ``c``, as in
    a CNN softmax with the background as channel 0).

    Parameters
    ----------
    probs : ndarray or Tensor
        ``(C, X, Y, Z)`` or ``(C, X, Y)`` probabilities (any non-negative
        maps; they are normalised first).
    params : ReactionDiffusionParams, optional
        ``contrast`` is not used here. Default :data:`REGULARIZER_DEFAULTS`:
        D = 0.3 mm²/t.u., α = 1, β = 1.5 (1/t.u.), dt = 0.2 t.u., 50 iterations.
    spacing : sequence of float
        Voxel size in mm (2 or 3 values).
    mask : ndarray or Tensor of bool, optional
        Only voxels in the mask are regularised (zero flux across its
        boundary); the others keep their input probabilities.
    device : "auto", "cpu", "cuda" or torch.device
    progress, cancel
        As for the methods.

    Returns
    -------
    RegularizedProbabilities
        ``(probabilities, labels)`` of the input's shape (labels without the
        channel axis, ``uint8`` if C <= 256); torch tensors on the compute
        device if a tensor was given, numpy arrays otherwise.

    Notes
    -----
    For maps that sum to 1, ``v_k = 1 - u_k`` and the reaction is
    ``(α - β) u_k (1 - u_k)``; with the renormalisation this is a replicator
    dynamic [3]_ that lets the largest channel win (for β > α).

    References
    ----------
    .. [1] Y. Dai, *Deep Learning-based Medical Image Segmentation for Early
       Cancer Detection* (thesis), eq. 30--31.
    .. [2] R. A. Fisher, "The wave of advance of advantageous genes", Annals of
       Eugenics 7(4):355--369, 1937. doi:10.1111/j.1469-1809.1937.tb02153.x
    .. [3] P. D. Taylor, L. B. Jonker, "Evolutionarily stable strategies and
       game dynamics", Mathematical Biosciences 40(1--2):145--156, 1978.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.zeros((2, 9, 9), np.float32); p[0] = 1.0; p[:, 4, 4] = (0.1, 0.9)
    >>> out = regularize_probabilities(p, device="cpu")
    >>> int(out.labels[4, 4]), bool(np.allclose(out.probabilities.sum(0), 1.0, atol=1e-5))
    (0, True)
    """
    params = validate(params or REGULARIZER_DEFAULTS)
    as_tensor = isinstance(probs, torch.Tensor)
    dev = resolve_device(device)
    p = probs if as_tensor else torch.from_numpy(np.asarray(probs))
    if p.ndim not in (3, 4):
        raise ParameterError(f"probabilities must be (C, X, Y[, Z]); got shape {tuple(p.shape)}")
    two_d = p.ndim == 3
    if two_d:
        p = p.unsqueeze(-1)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) == 2:
        spacing = (*spacing, 1.0)
    if len(spacing) != 3:
        raise ParameterError(f"spacing must have 2 or 3 values; got {spacing}")
    u = p.to(device=dev, dtype=torch.float32).clone()
    if not bool(torch.isfinite(u).all()) or bool((u < 0).any()):
        raise ParameterError("probabilities must be finite and non-negative")
    total = u.sum(0, keepdim=True)
    u = torch.where(total > 0, u / total.clamp(min=1e-30), 1.0 / u.shape[0])
    domain = None
    if mask is not None:
        m = mask if isinstance(mask, torch.Tensor) else torch.from_numpy(np.asarray(mask))
        if m.ndim == 2:
            m = m.unsqueeze(-1)
        if tuple(m.shape) != tuple(u.shape[1:]):
            raise ParameterError(
                f"mask of shape {tuple(m.shape)} does not match probabilities {tuple(u.shape[1:])}"
            )
        domain = m.to(device=dev, dtype=torch.bool)
    keep = None if domain is None else u.clone()
    evolve_fields(u, params, spacing, domain=domain, renormalize=True,
                  progress=progress, cancel=cancel)
    if keep is not None and domain is not None:
        u = torch.where(domain, u, keep)
    labels = torch.argmax(u, dim=0)
    labels = labels.to(torch.uint8) if u.shape[0] <= 256 else labels.to(torch.int32)
    if two_d:
        u, labels = u[..., 0], labels[..., 0]
    if as_tensor:
        return RegularizedProbabilities(u, labels)
    return RegularizedProbabilities(u.cpu().numpy(), labels.cpu().numpy())
