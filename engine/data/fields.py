"""The intensity non-uniformity (INU) field of the synthetic images.

One model serves the phantoms (:func:`engine.data.phantom.synthesize_phantom`)
and the training patches (:class:`engine.data.synthesis.SliceSynthesizer`):
a random smooth field ``g``, rescaled so that it spans exactly [-1, 1] over
a reference region (the brain), multiplies the image by

    ``1 + a/2 * (2 (g - min g) / (max g - min g) - 1)``

so that an INU of ``a`` (0.2 for "20 %") is the field's peak-to-peak range
over the brain (:func:`field_span`, :func:`inu_multiplier`).

The smooth field ``g`` is drawn from one of two bases:

* :func:`control_point_field` -- Gaussian control points on a coarse grid
  (4 per axis), interpolated cubically (2-D) or trilinearly (3-D) over the
  image: the phantoms;
* :func:`polynomial_field` -- Legendre polynomials ``P_i(x) P_j(y) P_k(z)`` of
  total degree 1 to 3 with Gaussian coefficients (:func:`legendre_coefficients`),
  defined over a whole tissue block so a patch can be evaluated anywhere
  inside it (:func:`legendre_basis`): the training patches.

Examples
--------
>>> import torch
>>> like = torch.zeros(1, 1, 16, 16)
>>> field = inu_field(like, 0.2, torch.Generator().manual_seed(0))
>>> round(float(field.max() - field.min()), 4)
0.2
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias

__all__ = [
    "INU_TERMS",
    "control_point_field",
    "field_span",
    "inu_field",
    "inu_multiplier",
    "legendre_basis",
    "legendre_coefficients",
    "polynomial_field",
]

#: Exponents (i, j, k) of the Legendre terms of the polynomial field (total degree 1 to 3).
INU_TERMS: tuple[tuple[int, int, int], ...] = tuple(
    (i, j, k) for i in range(4) for j in range(4) for k in range(4) if 0 < i + j + k <= 3
)


# ---------------------------------------------------------------------------
# The INU model: span normalisation and the multiplier
# ---------------------------------------------------------------------------
def field_span(
    raw: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample minimum and maximum ``(B,), (B,)`` of a raw field ``(B, ...)``.

    Only voxels where *mask* (same shape, bool) is true count; default all.
    """
    flat = raw.flatten(1)
    if mask is None:
        return flat.amin(dim=1), flat.amax(dim=1)
    m = mask.flatten(1).bool()
    lo = torch.where(m, flat, torch.full_like(flat, math.inf)).amin(dim=1)
    hi = torch.where(m, flat, torch.full_like(flat, -math.inf)).amax(dim=1)
    return lo, hi


def inu_multiplier(
    raw: torch.Tensor,
    amplitude: torch.Tensor | float,
    span: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """The multiplicative field ``1 + amplitude/2 * f`` of a raw field ``(B, ...)``.

    ``f`` is *raw* mapped linearly so that ``span = (lo, hi)`` (per sample,
    from :func:`field_span` over the reference region) becomes [-1, 1].
    *amplitude* is one float or one value per sample.
    """
    lo, hi = span
    b = raw.shape[0]
    shape = (b,) + (1,) * (raw.dim() - 1)
    f = (raw - lo.view(shape)) / (hi - lo).clamp_min(1e-6).view(shape) * 2 - 1
    amp = torch.as_tensor(amplitude, dtype=f.dtype, device=f.device).reshape(-1)
    amp = amp.expand(b).reshape(shape)
    return 1 + 0.5 * amp * f


# ---------------------------------------------------------------------------
# Basis 1: interpolated control points (phantoms)
# ---------------------------------------------------------------------------
def control_point_field(
    like: torch.Tensor, gen: torch.Generator | None = None, *, coarse: int = 4
) -> torch.Tensor:
    """Raw smooth field ``(B, 1, *spatial)``: ``coarse`` Gaussian control points per axis.

    *like* ``(B, C, *spatial)`` (2-D or 3-D) gives the batch size, the
    spatial shape and the device.
    """
    b, spatial = like.shape[0], like.shape[2:]
    dims = len(spatial)
    ctrl = torch.randn((b, 1) + (coarse,) * dims, generator=gen, device=like.device)
    mode = "bicubic" if dims == 2 else "trilinear"
    return F.interpolate(ctrl, size=tuple(spatial), mode=mode, align_corners=True)


def inu_field(
    like: torch.Tensor,
    amplitude: torch.Tensor | float,
    gen: torch.Generator | None = None,
    *,
    mask: torch.Tensor | None = None,
    coarse: int = 4,
) -> torch.Tensor:
    """Smooth multiplicative field ``1 + amplitude/2 * f`` with ``f`` in [-1, 1].

    Parameters
    ----------
    like : Tensor (B, 1, *spatial)
        Gives the batch size, spatial shape (2-D or 3-D) and device.
    amplitude : float or Tensor (B,)
        Peak-to-peak range of the field (0.2 for "20 % INU").
    gen : torch.Generator, optional
        Source of the control points.
    mask : Tensor (B, 1, *spatial), optional
        Region where ``f`` spans exactly [-1, 1] (e.g. the brain); default
        the whole image.
    coarse : int
        Control points per axis of the random field (low frequency).
    """
    raw = control_point_field(like, gen, coarse=coarse)
    return inu_multiplier(raw, amplitude, field_span(raw, mask))


# ---------------------------------------------------------------------------
# Basis 2: Legendre polynomials over a block (training patches)
# ---------------------------------------------------------------------------
def _legendre(x: torch.Tensor, order: int) -> torch.Tensor:
    if order == 0:
        return torch.ones_like(x)
    if order == 1:
        return x
    if order == 2:
        return 1.5 * x * x - 0.5
    return 2.5 * x**3 - 1.5 * x


def legendre_basis(coords: torch.Tensor) -> torch.Tensor:
    """The basis ``P_i(x) P_j(y) P_k(z)`` of :data:`INU_TERMS` at ``coords (..., 3)``.

    Coordinates are in [-1, 1] over the block; the result is ``(..., T)``.
    """
    polys = [[_legendre(coords[..., a], o) for o in range(4)] for a in range(3)]
    return torch.stack([polys[0][i] * polys[1][j] * polys[2][k] for i, j, k in INU_TERMS],
                       dim=-1)


def legendre_coefficients(
    n: int, gen: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``(n, T)`` random coefficients: Gaussian, divided by ``1 + i + j + k`` (smoother)."""
    coeffs = torch.randn((n, len(INU_TERMS)), generator=gen, device=device)
    return coeffs / torch.tensor([1.0 + i + j + k for i, j, k in INU_TERMS], device=device)


def polynomial_field(coords: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Raw field ``sum c_ijk P_i(x) P_j(y) P_k(z)`` at ``coords (B, ..., 3)`` in [-1, 1]."""
    shape = (coeffs.shape[0],) + (1,) * (coords.dim() - 2) + (coeffs.shape[1],)
    return (legendre_basis(coords) * coeffs.view(shape)).sum(dim=-1)
