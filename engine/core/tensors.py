"""Small torch numerics shared by the methods, the networks and the data synthesis.

* :func:`quantile` -- order statistics of large tensors (sub-sampled with a
  fixed stride, so results are deterministic);
* :func:`gaussian_kernel`, :func:`gaussian_blur` -- separable Gaussian
  smoothing along the trailing axes, with replicated borders;
* :func:`robust_scale`, :func:`robust_normalise` -- the intensity scaling of
  the networks' input, shared by inference and the training-sample synthesis.

Examples
--------
>>> import torch
>>> x = torch.arange(101, dtype=torch.float32)
>>> float(quantile(x, 0.25)), [float(v) for v in quantile(x, [0.1, 0.9], interpolation="linear")]
(25.0, [10.0, 90.0])
>>> step = torch.zeros(1, 1, 9); step[..., 5:] = 1.0
>>> [round(float(v), 3) for v in gaussian_blur(step, [1.0])[0, 0, 3:7]]
[0.058, 0.3, 0.7, 0.942]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias

__all__ = [
    "FOREGROUND_FRACTION",
    "gaussian_blur",
    "gaussian_kernel",
    "quantile",
    "robust_normalise",
    "robust_scale",
]

#: Foreground threshold of :func:`robust_scale`, as a fraction of the 99.9th percentile.
FOREGROUND_FRACTION = 0.15

#: Largest input ``torch.quantile`` accepts.
_TORCH_QUANTILE_LIMIT = 1 << 24


def quantile(
    x: torch.Tensor,
    q: float | Sequence[float],
    *,
    interpolation: str = "nearest",
    max_samples: int = 1 << 20,
) -> torch.Tensor:
    """Quantile(s) *q* in [0, 1] of all values of *x*.

    Parameters
    ----------
    x : Tensor
        Any shape; flattened.
    q : float or sequence of float
        One quantile (0-d result) or several (1-d result, same order).
    interpolation : {"nearest", "linear"}
        ``"nearest"``: the order statistic of rank ``round(q (n - 1))``, found
        with ``kthvalue`` in O(n) per quantile (no sort). ``"linear"``:
        ``torch.quantile``'s linear interpolation between neighbouring ranks.
    max_samples : int
        Above this many values, every ``n // max_samples + 1``-th value is used
        (a fixed stride: the same input always gives the same result).
        At most 2**24 for ``"linear"`` (``torch.quantile``'s limit).
    """
    if interpolation not in ("nearest", "linear"):
        raise ValueError(f"interpolation {interpolation!r}: choose nearest or linear")
    if interpolation == "linear" and max_samples > _TORCH_QUANTILE_LIMIT:
        raise ValueError("linear quantiles take at most 2**24 samples")
    flat = x.reshape(-1)
    if flat.numel() == 0:
        raise ValueError("quantile of an empty tensor")
    if flat.numel() > max_samples:
        flat = flat[:: flat.numel() // max_samples + 1]
    flat = flat.float()
    single = isinstance(q, (int, float))
    qs = [float(q)] if single else [float(v) for v in q]  # type: ignore[union-attr]
    if interpolation == "linear":
        out = _linear(flat, qs)
    else:
        n = flat.numel()
        out = torch.stack([flat.kthvalue(min(n, max(1, round(v * (n - 1)) + 1))).values
                           for v in qs])
    return out[0] if single else out


def _linear(flat: torch.Tensor, qs: list[float]) -> torch.Tensor:
    """``torch.quantile(flat, qs)`` (linear), the same numbers: its rank and weight in
    *flat*'s dtype and its ``lerp`` between the order statistics at the rank's floor
    and ceiling -- found by selection instead of a full sort (on the CPU numpy's
    partition, about 10x faster on a whole head's 128^3 thumbnail; elsewhere
    ``kthvalue``). With NaN present: torch.quantile itself (NaN out)."""
    q = torch.tensor(qs, dtype=flat.dtype, device=flat.device)
    if bool(torch.isnan(flat).any()):
        return torch.quantile(flat, q)
    ranks = q * (flat.numel() - 1)
    below = ranks.long()
    above = ranks.ceil().long()
    wanted = sorted({int(k) for k in torch.cat([below, above])})
    if flat.device.type == "cpu":  # one partial sort for every rank at once
        part = torch.from_numpy(np.partition(flat.detach().numpy(), wanted))
        order = {k: part[k] for k in wanted}
    else:
        order = {k: flat.kthvalue(k + 1).values for k in wanted}
    low = torch.stack([order[int(k)] for k in below])
    high = torch.stack([order[int(k)] for k in above])
    return low.lerp(high, ranks - below)


def gaussian_kernel(
    sigma: float,
    *,
    radius: int | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Normalised 1-D Gaussian of standard deviation *sigma* (voxels).

    The radius is ``max(1, ceil(3 sigma))`` unless given; the kernel has
    ``2 radius + 1`` taps summing to 1.
    """
    if radius is None:
        radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def gaussian_blur(
    x: torch.Tensor, sigma: Sequence[float], *, min_sigma: float = 0.05
) -> torch.Tensor:
    """Separable Gaussian blur of the last ``len(sigma)`` axes of *x*.

    Parameters
    ----------
    x : Tensor
        Floating point; leading axes (batch, channels) are left alone.
    sigma : sequence of float
        Standard deviation in voxels along each trailing axis, first to last.
    min_sigma : float
        Axes with a smaller sigma, or fewer than two voxels, are not blurred.

    Borders are replicated; the kernel radius is ``ceil(3 sigma)``, at most
    the axis length minus one. Returns a new tensor (or *x* itself when no
    axis is blurred).
    """
    sig = [float(s) for s in sigma]
    if len(sig) > x.dim():
        raise ValueError(f"{len(sig)} sigmas for a {x.dim()}-D tensor")
    out = x
    first = x.dim() - len(sig)
    for offset, s in enumerate(sig):
        axis = first + offset
        n = out.shape[axis]
        if n < 2 or s < min_sigma:
            continue
        r = min(max(1, math.ceil(3.0 * s)), n - 1)
        kernel = gaussian_kernel(s, radius=r, device=x.device, dtype=x.dtype).view(1, 1, -1)
        moved = out.movedim(axis, -1)
        shape = moved.shape
        flat = moved.reshape(-1, 1, n)
        flat = F.conv1d(F.pad(flat, (r, r), mode="replicate"), kernel)
        out = flat.reshape(shape).movedim(-1, axis).contiguous()
    return out


def robust_scale(x: torch.Tensor) -> torch.Tensor:
    """The intensity :func:`robust_normalise` divides by (0-d tensor).

    The 99th percentile of the foreground, the voxels above
    :data:`FOREGROUND_FRACTION` times the 99.9th percentile; that percentile
    itself when there is no such voxel, and when it is not positive.
    """
    top = quantile(x, 0.999)
    if top <= 0:
        return top
    flat = x.reshape(-1)
    fg = flat[flat > FOREGROUND_FRACTION * top]
    return quantile(fg, 0.99) if fg.numel() > 0 else top


def robust_normalise(x: torch.Tensor) -> torch.Tensor:
    """Scale an MR image so its bright tissue sits near 1 (background stays 0).

    Negative values (some scanners) are first shifted so the minimum is 0;
    the image is then divided by :func:`robust_scale` and clipped to
    [0, 1.5]. An image without a positive 99.9th percentile gives zeros.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(10, 10, 10); x[2:8, 2:8, 2:8] = 500.0
    >>> y = robust_normalise(x)
    >>> float(y.max()), float(y[0, 0, 0])
    (1.0, 0.0)
    """
    x = x.float()
    lo = x.min()
    if lo < 0:
        x = x - lo
    scale = robust_scale(x)
    if scale <= 0:
        return torch.zeros_like(x)
    return (x / scale.clamp_min(1e-6)).clamp(0, 1.5)
