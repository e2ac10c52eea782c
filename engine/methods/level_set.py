r"""Level sets on the voxel grid: signed distance, narrow band, re-initialisation, evolution.

The model-free part of Delineo's active contours
(:mod:`~engine.methods.active_contour`, click-to-refine); torch only, on
whichever device the tensors are.

A closed surface (a contour in 2-D) is the zero level set [1]_ of a function
:math:`\phi` sampled at the voxel centres of a 3-D torch tensor (a 2-D image is
a volume with one slice). Delineo's convention:

* :math:`\phi` is in **mm** and **negative inside**, positive outside; the
  surface :math:`\{\phi = 0\}` lies half-way between an inside voxel and its
  outside face neighbour, and the inside is ``phi < 0``;
* :math:`\phi` is kept close to a **signed distance** (:math:`|\nabla\phi|
  \approx 1`), so that its value is the distance to the surface and the
  Laplacian approximates the curvature term :math:`\kappa|\nabla\phi|`.

**Initial surface.** :func:`signed_distance` turns a mask into :math:`\phi`
(an exact Euclidean distance up to the band, by separable windowed min-plus
passes); :func:`initial_distance` starts from a seed sphere, a box or a mask
and computes :math:`\phi` near the surface only.

**Narrow band** [3]_. Only the band :math:`|\phi| < b` around the surface
matters: :math:`\phi` is clipped to :math:`\pm b` (flat far from the surface)
and :func:`evolve` works on the bounding box of the band, grown by the
distance the surface can travel before the box is next re-cropped. The cost of
an iteration follows the surface's extent, not the volume's.

**Re-initialisation** [2]_. At every re-crop -- every ``reinit_every``
iterations, fewer when the surface could otherwise leave the band --
:math:`\phi` is pulled back towards a signed distance by Sussman's PDE
:math:`\phi_\tau = S(\phi_0)(1 - |\nabla\phi|)` with Godunov upwinding and
:math:`\Delta\tau = h_{\min}/2`, for 3 steps plus two per voxel the surface
may have travelled; the voxels next to the surface are held at
:math:`\phi_0 / |\nabla\phi_0|`, so the surface does not drift.

**Evolution.** :func:`evolve` steps

.. math::

    \frac{\partial \phi}{\partial t}
      = \mu\, \nabla^2\phi + \nu\, \mathbf{A} \cdot \nabla\phi
      - w\, F\, \delta_b(\phi)

explicitly: curvature flow, advection along a field :math:`\mathbf A` (upwind
differences) and a normal force :math:`F \in [-1, 1]` (positive: the surface
grows) that acts only inside the band, :math:`\delta_b(\phi) =
\mathrm{clip}(100\,(b - |\phi|) / h_{\min}, 0, 1)`. What :math:`\mathbf A`
and :math:`F` are, and the stable time step, are the model's business
(:mod:`~engine.methods.active_contour`).

References
----------
The full list, with DOIs, is ``docs/references.md``.

.. [1] S. Osher, J. A. Sethian, "Fronts propagating with curvature-dependent
   speed: algorithms based on Hamilton--Jacobi formulations", J. Comput. Phys.
   79(1):12--49, 1988. doi:10.1016/0021-9991(88)90002-2
.. [2] M. Sussman, P. Smereka, S. Osher, "A level set approach for computing
   solutions to incompressible two-phase flow", J. Comput. Phys.
   114(1):146--159, 1994. doi:10.1006/jcph.1994.1155
.. [3] D. Adalsteinsson, J. A. Sethian, "A fast level set method for
   propagating interfaces", J. Comput. Phys. 118(2):269--277, 1995.

Examples
--------
The signed distance of a 3-voxel segment, clipped to a 2 mm band:

>>> import torch
>>> inside = torch.zeros(6, 1, 1, dtype=torch.bool); inside[1:4] = True
>>> signed_distance(inside, (1.0, 1.0, 1.0), 2.0).flatten().tolist()
[0.5, -0.5, -1.5, -0.5, 0.5, 1.5]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..core.errors import ParameterError
from ..core.jobs import CancelToken, check_cancel, report
from ..core.morphology import bounding_box
from .numerics import NeumannStencil, Progress

__all__ = ["evolve", "gradient", "initial_distance", "signed_distance"]

log = logging.getLogger(__name__)

#: Re-initialisation steps on top of two per voxel the surface may have travelled.
_REINIT_STEPS = 3


# ---------------------------------------------------------------------------
# Signed distance and finite differences
# ---------------------------------------------------------------------------
def _windowed_sq_distance(seeds: torch.Tensor, spacing: Sequence[float],
                          radius: float) -> torch.Tensor:
    """Squared Euclidean distance (mm²) to the nearest seed voxel, exact up to *radius* mm.

    Separable min-plus passes restricted to a window of *radius*; farther
    voxels get ``inf`` or an over-estimate, which callers clip.
    """
    f = torch.where(seeds, 0.0, math.inf).to(torch.float32)
    for axis, h in enumerate(spacing):
        n = f.shape[axis]
        window = min(math.ceil(radius / h), n - 1)
        if window < 1:
            continue
        g = f.clone()
        for k in range(1, window + 1):
            c = (k * h) ** 2
            head, tail = g.narrow(axis, k, n - k), g.narrow(axis, 0, n - k)
            torch.minimum(head, f.narrow(axis, 0, n - k) + c, out=head)
            torch.minimum(tail, f.narrow(axis, k, n - k) + c, out=tail)
        f = g
    return f


def signed_distance(inside: torch.Tensor, spacing: Sequence[float], band: float) -> torch.Tensor:
    """Signed distance (mm, negative inside) of a binary mask, clipped to ``±band``.

    The interface lies half-way between an inside voxel and its outside
    neighbour. Torch only; runs on the mask's device.

    Examples
    --------
    >>> import torch
    >>> m = torch.zeros(7, 1, 1, dtype=torch.bool); m[:3] = True
    >>> signed_distance(m, (1.0, 1.0, 1.0), 3.0).flatten().tolist()
    [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.0]
    """
    radius = band + 2.0 * max(spacing)
    if not bool(inside.any()):
        return torch.full(inside.shape, band, dtype=torch.float32, device=inside.device)
    if bool(inside.all()):
        return torch.full(inside.shape, -band, dtype=torch.float32, device=inside.device)
    d_out = _windowed_sq_distance(inside, spacing, radius).sqrt_()  # outside: to nearest inside
    d_in = _windowed_sq_distance(~inside, spacing, radius).sqrt_()  # inside: to nearest outside
    half = 0.5 * min(spacing)
    phi = torch.where(inside, half - d_in, d_out - half)
    return phi.clamp_(-band, band)


def _reach(spacing: Sequence[float], band: float) -> list[int]:
    """Voxels per axis beyond which a distance clipped to *band* is *band*, with a margin."""
    return [math.ceil((band + 2 * max(spacing)) / h) + 1 for h in spacing]


def _sphere_distance(shape: Sequence[int], spacing: Sequence[float], band: float,
                     centre: Sequence[int], radius: float, device: torch.device) -> torch.Tensor:
    """φ of a sphere of *radius* mm around the voxel *centre*, computed near it only."""
    phi = torch.full(tuple(shape), band, dtype=torch.float32, device=device)
    reach = _reach(spacing, band)
    r_vox = [math.ceil(radius / h) for h in spacing]
    region = tuple(
        slice(max(centre[a] - r_vox[a] - reach[a], 0),
              min(centre[a] + r_vox[a] + reach[a] + 1, shape[a]))
        for a in range(3)
    )
    axes = [
        (torch.arange(sl.start, sl.stop, device=device, dtype=torch.float32) - centre[a])
        * spacing[a]
        for a, sl in enumerate(region)
    ]
    gx, gy, gz = torch.meshgrid(*axes, indexing="ij")
    dist = torch.sqrt(gx * gx + gy * gy + gz * gz) - radius
    phi[region] = dist.clamp_(-band, band)
    return phi


def _index3(point: Sequence[float], shape: Sequence[int], what: str) -> tuple[int, int, int]:
    p = [round(float(c)) for c in point]
    if len(p) == 2:
        p.append(0)
    if len(p) != 3 or any(not 0 <= c < n for c, n in zip(p, shape, strict=True)):
        raise ParameterError(
            f"{what} {tuple(point)} lies outside the image of shape {tuple(shape)}"
        )
    return p[0], p[1], p[2]


def initial_distance(
    shape: Sequence[int],
    spacing: Sequence[float],
    band: float,
    *,
    seed: Sequence[float] | None = None,
    seed_radius: float = 1.0,
    box: tuple[Sequence[float], Sequence[float]] | None = None,
    mask: np.ndarray | None = None,
    device: torch.device,
) -> torch.Tensor:
    """φ (mm, clipped to ``±band``) of a seed sphere, a box or a mask: the first one given.

    Parameters
    ----------
    shape, spacing : sequences of 3
        The grid and its voxel size in mm.
    band : float
        Narrow-band half-width in mm; φ is computed near the surface only and
        is ``band`` elsewhere.
    seed : sequence of 2 or 3 numbers, optional
        Voxel index of the centre of a sphere of *seed_radius* mm.
    box : ((i0, j0[, k0]), (i1, j1[, k1])), optional
        Voxel-index corners of a box, upper corner exclusive.
    mask : ndarray of bool, optional
        The inside, of *shape*.
    device : torch.device

    Raises
    ------
    ParameterError
        The seed or the box's lower corner lies outside the grid, or the start
        is empty.

    Examples
    --------
    >>> import torch
    >>> phi = initial_distance((5, 1, 1), (1.0, 1.0, 1.0), 2.0, seed=(2, 0), seed_radius=1.5,
    ...                        device=torch.device("cpu"))
    >>> phi.flatten().tolist()
    [0.5, -0.5, -1.5, -0.5, 0.5]
    """
    if seed is not None:
        centre = _index3(seed, shape, "seed point")
        return _sphere_distance(shape, spacing, band, centre, seed_radius, device)
    if box is not None:
        lo = _index3(box[0], shape, "box corner")
        hi_in = [round(float(v)) for v in box[1]] + ([1] if len(box[1]) == 2 else [])
        hi = [min(max(h, l + 1), n) for h, l, n in zip(hi_in, lo, shape, strict=True)]
        inside = np.zeros(tuple(shape), dtype=bool)
        inside[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
        mask = inside
    if mask is None or not mask.any():
        raise ParameterError("the initial contour is empty: give a seed, a box or a non-empty mask")
    phi = torch.full(tuple(shape), band, dtype=torch.float32, device=device)
    region = bounding_box(mask, margin=max(_reach(spacing, band)))
    sub = torch.from_numpy(np.ascontiguousarray(mask[region])).to(device)
    phi[region] = signed_distance(sub, spacing, band)
    return phi


def gradient(img: torch.Tensor, spacing: Sequence[float]) -> list[torch.Tensor]:
    """Central-difference gradient (per mm) of a 3-D tensor, one tensor per axis.

    One-sided differences at the borders; zero along an axis of one voxel.

    Examples
    --------
    >>> import torch
    >>> ramp = torch.arange(4.0).reshape(4, 1, 1)
    >>> [g.flatten().tolist() for g in gradient(ramp, (2.0, 1.0, 1.0))]
    [[0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    """
    grads = []
    for axis, h in enumerate(spacing):
        if img.shape[axis] < 2:
            grads.append(torch.zeros_like(img))
        else:
            grads.append(torch.gradient(img, spacing=h, dim=axis)[0])
    return grads


def _forward_diff(phi: torch.Tensor, axis: int, h: float, out: torch.Tensor) -> torch.Tensor:
    """``(phi[i+1] - phi[i]) / h`` along *axis*, 0 at the last index."""
    n = phi.shape[axis]
    out.narrow(axis, n - 1, 1).zero_()
    dst = out.narrow(axis, 0, n - 1)
    torch.sub(phi.narrow(axis, 1, n - 1), phi.narrow(axis, 0, n - 1), out=dst)
    dst.mul_(1.0 / h)
    return out


def _interface(phi: torch.Tensor) -> torch.Tensor:
    """Voxels with a face neighbour on the other side of the zero level set."""
    neg = phi < 0
    out = torch.zeros_like(neg)
    for axis in range(3):
        n = phi.shape[axis]
        if n < 2:
            continue
        change = neg.narrow(axis, 1, n - 1) ^ neg.narrow(axis, 0, n - 1)
        out.narrow(axis, 1, n - 1).logical_or_(change)
        out.narrow(axis, 0, n - 1).logical_or_(change)
    return out


# ---------------------------------------------------------------------------
# Re-initialisation and the narrow-band box
# ---------------------------------------------------------------------------
def _reinitialise(phi: torch.Tensor, spacing: Sequence[float], band: float, steps: int) -> None:
    """Re-initialise *phi* towards a signed distance (|∇φ| = 1), in place.

    Sussman's PDE ``φ_τ = S(φ0)(1 - |∇φ|)`` with Godunov upwinding, ``dτ =
    h_min/2``. Voxels next to the zero level set are anchored at
    ``φ0 / |∇φ0|`` (central differences) so the contour does not drift.
    """
    h_min = min(spacing)
    sign = phi / torch.sqrt(phi * phi + h_min * h_min)
    sgn = torch.sign(phi)
    anchor_mask = _interface(phi)
    grad2 = torch.zeros_like(phi)
    for g in gradient(phi, spacing):
        grad2.addcmul_(g, g)
    anchor = phi / grad2.sqrt_().clamp_(min=0.5)
    fwd = torch.empty_like(phi)
    ta = torch.empty_like(phi)
    tb = torch.empty_like(phi)
    dtau = 0.5 * h_min
    for _ in range(steps):
        grad2.zero_()
        for axis, h in enumerate(spacing):
            n = phi.shape[axis]
            if n < 2:
                continue
            _forward_diff(phi, axis, h, fwd)  # b = D+φ(i); a = D-φ(i) = fwd(i-1)
            # Godunov: φ > 0 takes max(a⁺, -b⁻), φ < 0 takes max(-a⁻, b⁺); with s = sign(φ)
            # both read max(max(a·s, 0), max(-b·s, 0)).
            ta.narrow(axis, 0, 1).zero_()
            torch.mul(fwd.narrow(axis, 0, n - 1), sgn.narrow(axis, 1, n - 1),
                      out=ta.narrow(axis, 1, n - 1))
            ta.clamp_(min=0.0)
            torch.mul(fwd, sgn, out=tb)
            tb.neg_().clamp_(min=0.0)
            torch.maximum(ta, tb, out=ta)
            grad2.addcmul_(ta, ta)
        grad2.sqrt_().sub_(1.0).mul_(sign)
        phi.sub_(grad2, alpha=dtau)
        torch.where(anchor_mask, anchor, phi, out=phi)
    phi.clamp_(-band, band)


def _tensor_box(active: torch.Tensor) -> tuple[slice, ...] | None:
    """Bounding box of the true voxels of a 3-D bool tensor (on its device); None if empty."""
    out = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hit = torch.nonzero(active.amax(dim=others)).flatten()
        if hit.numel() == 0:
            return None
        out.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(out)


def _grow_box(box: tuple[slice, ...], inner: tuple[slice, ...], margin: int,
              full: Sequence[int]) -> tuple[slice, ...]:
    """Work-box slices of the crop-relative box *inner* of crop *box*, grown by *margin*."""
    return tuple(
        slice(max(b.start + i.start - margin, 0), min(b.start + i.stop + margin, int(full[a])))
        for a, (b, i) in enumerate(zip(box, inner, strict=True))
    )


# ---------------------------------------------------------------------------
# The evolution
# ---------------------------------------------------------------------------
def evolve(
    phi: torch.Tensor,
    force_for_crop: Callable[[torch.Tensor, tuple[slice, ...]], torch.Tensor],
    *,
    spacing: Sequence[float],
    band: float,
    dt: float,
    iterations: int,
    reinit_every: int,
    curvature: float = 0.0,
    advection: torch.Tensor | None = None,
    advection_speed: float = 0.0,
    normal_speed: float = 0.0,
    domain: torch.Tensor | None = None,
    on_crop_done: Callable[[torch.Tensor, tuple[slice, ...]], None] | None = None,
    progress: Progress = None,
    cancel: CancelToken | None = None,
    message: str = "",
) -> int:
    r"""Evolve *phi* in place on its narrow band; return the iterations run.

    Explicit steps of :math:`\phi_t = \mu\nabla^2\phi + \nu\mathbf A\cdot\nabla\phi
    - w F \delta_b(\phi)` on the band's bounding box, re-initialised and
    re-cropped every *reinit_every* iterations or sooner (module docstring).

    Parameters
    ----------
    phi : torch.Tensor
        3-D float32 level set (mm, negative inside), clipped to ``±band``;
        updated in place.
    force_for_crop : callable
        ``force_for_crop(phi_c, box) -> F``: the normal force in [-1, 1]
        (positive: the surface grows) on the crop ``phi[box]``, a new tensor
        the evolution may scale in place. Called at every re-crop, so *F* may
        follow statistics of the current inside.
    spacing : sequence of 3 floats
        Voxel size in mm.
    band : float
        Narrow-band half-width *b* in mm (more than the finest voxel size).
    dt : float
        Time step; the caller checks its stability.
    iterations : int
        Time steps to run.
    reinit_every : int
        Most iterations between re-initialisations and re-crops; fewer when
        the surface could otherwise leave the band.
    curvature : float
        μ (mm²/t.u.), the weight of the Laplacian.
    advection : torch.Tensor, optional
        Field :math:`\mathbf A` of shape ``(3, *phi.shape)`` with
        :math:`|\mathbf A| \le 1`; ``None``: no advection.
    advection_speed : float
        ν (mm/t.u.), the largest advection speed.
    normal_speed : float
        *w* (mm/t.u.), the speed of the normal force at ``|F| = 1``.
    domain : torch.Tensor of bool, optional
        Where the surface may be: outside it, *F* is -1, so the surface
        withdraws from there.
    on_crop_done : callable, optional
        ``on_crop_done(phi_c, box)`` sees each crop before it is written back
        (to update running statistics).
    progress, cancel, message
        ``progress(fraction, message + "iteration i/n")`` every iteration; the
        token is checked every iteration.
    """
    h_min = min(spacing)
    n = iterations
    # The contour may travel at most band - h_min between re-initialisations, which
    # rebuild the distance ahead of it (Sussman moves values by h_min/2 per step).
    speed = advection_speed + normal_speed + curvature / h_min
    period = reinit_every
    if speed > 0:
        period = max(1, min(period, int((band - h_min) / (dt * speed))))
    travel = period * dt * speed
    reinit_steps = math.ceil(2.0 * travel / h_min) + _REINIT_STEPS
    margin = math.ceil((band + travel) / h_min) + 2
    sharp = 100.0 / h_min  # force weight: 1 inside the band, 0 at the clip value ±band
    full = tuple(phi.shape)
    inner = _tensor_box(phi.abs() < band)
    if inner is None:
        return 0
    box = _grow_box(tuple(slice(0, s) for s in full), inner, margin, full)
    done = 0
    while done < n:
        check_cancel(cancel)
        phi_c = phi[box].contiguous()
        force = force_for_crop(phi_c, box).mul_(normal_speed)
        if domain is not None:
            force = torch.where(domain[box], force, torch.full_like(force, -normal_speed))
        stencil = NeumannStencil(phi_c.shape, spacing, None, phi_c.device)
        apos: list[torch.Tensor] = []
        aneg: list[torch.Tensor] = []
        if advection is not None:
            e_c = advection[(slice(None), *box)]
            # fold ν·dt and the 1/h of the forward difference into the upwind coefficients
            apos = [e_c[a].clamp(min=0.0).mul_(dt * advection_speed) for a in range(3)]
            aneg = [e_c[a].clamp(max=0.0).mul_(dt * advection_speed) for a in range(3)]
        lap = torch.empty_like(phi_c)
        adv = torch.empty_like(phi_c)
        diff = torch.empty_like(phi_c)
        weight = torch.empty_like(phi_c)
        for _ in range(min(period, n - done)):
            check_cancel(cancel)
            stencil.laplacian(phi_c, out=lap)
            torch.abs(phi_c, out=weight)
            weight.neg_().add_(band).mul_(sharp).clamp_(0.0, 1.0)
            if apos:
                adv.zero_()
                for axis, h in enumerate(spacing):
                    m = phi_c.shape[axis]
                    if m < 2:
                        continue
                    _forward_diff(phi_c, axis, h, diff)
                    # upwind: forward difference where A > 0, backward where A < 0
                    adv.addcmul_(diff, apos[axis])
                    adv.narrow(axis, 1, m - 1).addcmul_(
                        diff.narrow(axis, 0, m - 1), aneg[axis].narrow(axis, 1, m - 1)
                    )
                phi_c.add_(adv)
            phi_c.add_(lap, alpha=dt * curvature)
            phi_c.addcmul_(force, weight, value=-dt)
            phi_c.clamp_(-band, band)
            done += 1
            report(progress, done / n, f"{message}iteration {done}/{n}")
        _reinitialise(phi_c, spacing, band, reinit_steps)
        if on_crop_done is not None:
            on_crop_done(phi_c, box)
        phi[box] = phi_c
        inner = _tensor_box(phi_c.abs() < band)
        if inner is None:
            log.info("the contour vanished after %d iterations", done)
            break
        box = _grow_box(box, inner, margin, full)
    return done
