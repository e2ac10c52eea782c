r"""Level-set active contours (Dai's thesis, eq. 34): curvature, edge attraction, region force.

A contour is the zero level set [2]_ of :math:`\phi` (negative inside, in mm),
kept close to a signed distance function. It evolves by the equation of Dai's
thesis [1]_

.. math::

    \frac{\partial \phi}{\partial t}
      = \mu\, \kappa |\nabla\phi|
      + \nu\, \mathbf{A} \cdot \nabla\phi
      - w\, F(x)\, \delta_b(\phi),

* **curvature / elasticity** :math:`\mu \kappa|\nabla\phi|` (mean-curvature
  flow, smooths and shortens the contour). With :math:`|\nabla\phi| \approx 1`
  near the contour, :math:`\kappa|\nabla\phi| \approx \nabla^2\phi`, the
  zero-flux Laplacian of :mod:`~engine.methods.numerics`;
* **edge attraction** (geodesic active contour [3]_):
  :math:`g = 1 / (1 + |\nabla I_\sigma|^2 / k^2)` is small on edges of the
  Gaussian-smoothed normalised image and :math:`\mathbf{A} = \nabla g /
  \max|\nabla g|` points away from them, so the advection
  :math:`\nu\,\mathbf A\cdot\nabla\phi` (upwind differences) pulls the
  contour onto edges; :math:`\nu` is its largest speed (mm/t.u.);
* **region** (Chan--Vese [4]_): :math:`(I - c_{out})^2 - (I - c_{in})^2`, divided
  by the squared contrast :math:`(c_{in} - c_{out})^2` and clipped to
  [-1, 1], i.e. :math:`F = \mathrm{clip}\bigl((2I - c_{in} - c_{out}) /
  (c_{in} - c_{out})\bigr)`: the contour grows where the intensity is closer to
  the inside mean and shrinks elsewhere, at up to :math:`w` mm/t.u. For a
  label map (:func:`refine_labels`), :math:`F` is instead half the Gaussian
  log-likelihood ratio of the label's class against the most likely other
  class at each voxel (region competition [5]_), clipped to [-1, 1].
  :math:`\delta_b(\phi)` is 1 inside the narrow band :math:`|\phi| < b` and 0
  at its edge, so no contour appears far from the current one.

**Narrow band, re-initialisation.** The evolution is
:func:`~engine.methods.level_set.evolve`: on the bounding box of the band only,
re-initialised towards a signed distance and re-cropped every
``reinit_every`` iterations (see :mod:`~engine.methods.level_set`).

**Stability.** Explicit steps need

.. math::

    \Delta t \,\Bigl(2 \mu \sum_i h_i^{-2} + \frac{\nu + w}{h_{\min}}\Bigr) \le 1

(axes longer than one voxel); a larger time step raises
:class:`~engine.core.errors.ParameterError`.

Uses: :func:`active_contour` (binary, from a seed point, a box or a mask)
and :func:`refine_labels` (moves the boundaries of the labels of another
method's label map); :func:`run_active_contour` is the registered tissue
method: multi-Otsu labels refined by :func:`refine_labels`.

References
----------
The full list, with DOIs, is ``docs/references.md``.

.. [1] Y. Dai, *Deep Learning-based Medical Image Segmentation for Early Cancer
   Detection* (thesis), eq. 34 and Table 1.
.. [2] S. Osher, J. A. Sethian, "Fronts propagating with curvature-dependent
   speed: algorithms based on Hamilton--Jacobi formulations", J. Comput. Phys.
   79(1):12--49, 1988. doi:10.1016/0021-9991(88)90002-2
.. [3] V. Caselles, R. Kimmel, G. Sapiro, "Geodesic active contours", Int. J.
   Computer Vision 22(1):61--79, 1997. doi:10.1023/A:1007979827043
.. [4] T. F. Chan, L. A. Vese, "Active contours without edges", IEEE Trans.
   Image Processing 10(2):266--277, 2001. doi:10.1109/83.902291
.. [5] S. C. Zhu, A. Yuille, "Region competition: unifying snakes, region
   growing, and Bayes/MDL for multiband image segmentation", IEEE Trans. PAMI
   18(9):884--900, 1996.

Examples
--------
>>> import numpy as np
>>> from engine.core.volume import Volume
>>> yy, xx = np.mgrid[:48, :48]
>>> img = ((xx - 24) ** 2 + (yy - 24) ** 2 < 12 ** 2).astype(np.float32)
>>> res = active_contour(Volume(img, np.eye(4)), seed=(24, 24), device="cpu")
>>> disk = img[:, :, None] > 0
>>> got = res.labels.array.astype(bool)
>>> bool(2 * (got & disk).sum() / (disk.sum() + got.sum()) > 0.98)
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..core.device import resolve_device
from ..core.errors import ParameterError
from ..core.jobs import CancelToken, check_cancel, scaled_progress
from ..core.morphology import bounding_box
from ..core.params import param, validate
from ..core.steps import SegmentationResult
from ..core.tensors import gaussian_blur
from ..core.volume import BRAIN_TISSUE_LABELS, Label, LabelMap, LabelTable, Volume
from .level_set import evolve, gradient, initial_distance, signed_distance
from .masks import resolve_mask
from .numerics import Progress, inverse_square_sum, normalize_intensities

__all__ = [
    "ActiveContourParams",
    "active_contour",
    "check_stability",
    "refine_labels",
    "run_active_contour",
]

#: Label table of a binary contour result.
CONTOUR_LABELS = LabelTable.from_labels(
    [Label(0, "Background", (0, 0, 0)), Label(1, "Contour", (255, 90, 90))]
)


@dataclass(frozen=True)
class ActiveContourParams:
    """Parameters of the level-set evolution (Dai's thesis, eq. 34, Table 1)."""

    mu: float = param(
        0.2, lo=0.0, hi=100.0, unit="mm²/t.u.",
        doc="μ, curvature (elasticity) weight",
    )
    nu: float = param(
        0.3, lo=0.0, hi=100.0, unit="mm/t.u.",
        doc="ν, edge attraction: largest speed of the advection along ∇g",
    )
    region: float = param(
        1.0, lo=0.0, hi=100.0, unit="mm/t.u.",
        doc="w, Chan–Vese region force (largest speed)",
    )
    dt: float = param(
        0.3, lo=0.0, hi=100.0, lo_inclusive=False, unit="t.u.",
        doc="time step; needs dt·(2μ Σ 1/h² + (ν + w)/h_min) <= 1",
    )
    iterations: int = param(80, lo=1, hi=100_000, doc="time steps (per label when refining)")
    edge_scale: float = param(
        0.05, lo=0.0, hi=100.0, lo_inclusive=False, unit="1/mm",
        doc="k, gradient of the normalised image at which the edge function g is 1/2",
    )
    smoothing: float = param(
        1.0, lo=0.0, hi=20.0, unit="mm",
        doc="σ of the Gaussian smoothing before the image gradient",
    )
    band: float = param(
        3.0, lo=1.5, hi=50.0, unit="voxels",
        doc="narrow-band half-width b (in voxels of the finest axis)",
    )
    reinit_every: int = param(
        10, lo=1, hi=10_000,
        doc="iterations between re-initialisations and re-crops",
    )
    seed_radius: float = param(
        3.0, lo=0.0, hi=1000.0, lo_inclusive=False, unit="mm",
        doc="radius of the initial sphere around a seed point",
    )
    contrast: str = param(
        "t1", choices=("t1", "t2"),
        doc="image contrast for the multi-Otsu start of run_active_contour",
    )


def check_stability(params: ActiveContourParams, spacing: Sequence[float],
                    shape: Sequence[int]) -> None:
    """Raise :class:`ParameterError` if the explicit level-set step is unstable.

    Examples
    --------
    >>> check_stability(ActiveContourParams(dt=5.0), (1.0, 1.0, 1.0), (9, 9, 9))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    engine.core.errors.ParameterError: dt=5 t.u. exceeds the stability limit 0.4 t.u. ...
    """
    validate(params)
    s = inverse_square_sum(spacing, shape)
    active = [h for h, n in zip(spacing, shape, strict=True) if n > 1] or list(spacing)
    rate = 2.0 * params.mu * s + (params.nu + params.region) / min(active)
    limit = math.inf if rate == 0 else 1.0 / rate
    if params.dt > limit * (1.0 + 1e-9):
        sp = "x".join(f"{h:g}" for h in spacing)
        raise ParameterError(
            f"dt={params.dt:g} t.u. exceeds the stability limit {limit:g} t.u. of the level-set "
            f"step (dt·(2μ Σ 1/h² + (ν + w)/h_min) <= 1 with μ={params.mu:g}, ν={params.nu:g}, "
            f"w={params.region:g}, spacing {sp} mm)"
        )


# ---------------------------------------------------------------------------
# Image features and region forces
# ---------------------------------------------------------------------------
def _gaussian_smooth(img: torch.Tensor, sigma: float, spacing: Sequence[float]) -> torch.Tensor:
    """Separable Gaussian smoothing (σ in mm) with replicated borders; below 0.3 voxel: none."""
    return gaussian_blur(img, [sigma / h for h in spacing], min_sigma=0.3)


def _edge_field(image: torch.Tensor, params: ActiveContourParams,
                spacing: Sequence[float]) -> torch.Tensor | None:
    """``A = ∇g / max|∇g|`` with ``g = 1/(1 + |∇I_σ|²/k²)``; ``None`` when ν = 0."""
    if params.nu == 0:
        return None
    smooth = _gaussian_smooth(image, params.smoothing, spacing)
    grad2 = torch.zeros_like(smooth)
    for gax in gradient(smooth, spacing):
        grad2.addcmul_(gax, gax)
    g = 1.0 / (1.0 + grad2 / params.edge_scale**2)
    field = torch.stack(gradient(g, spacing))
    norm = float(field.square().sum(0).sqrt().max())
    if norm <= 0:
        return None
    return field.div_(norm)


class _BinaryStats:
    """Chan–Vese means inside/outside the contour, updated from crop differences."""

    def __init__(self, phi: torch.Tensor, image: torch.Tensor, domain: torch.Tensor | None) -> None:
        w = torch.ones_like(image) if domain is None else domain.float()
        self.n_all = float(w.sum(dtype=torch.float64))
        self.s_all = float((image * w).sum(dtype=torch.float64))
        self.n_in, self.s_in = self._sums(phi, image, w)
        self.weights = w

    @staticmethod
    def _sums(phi: torch.Tensor, image: torch.Tensor, w: torch.Tensor) -> tuple[float, float]:
        inside = (phi < 0).float().mul_(w)
        n_in = float(inside.sum(dtype=torch.float64))
        return n_in, float((inside * image).sum(dtype=torch.float64))

    def crop_sums(self, phi_c: torch.Tensor, image_c: torch.Tensor,
                  box: tuple[slice, ...]) -> tuple[float, float]:
        return self._sums(phi_c, image_c, self.weights[box])

    def means(self) -> tuple[float, float]:
        n_out = self.n_all - self.n_in
        c_in = self.s_in / self.n_in if self.n_in > 0 else 0.0
        c_out = (self.s_all - self.s_in) / n_out if n_out > 0 else 0.0
        return c_in, c_out


def _clip_force(num: torch.Tensor) -> torch.Tensor:
    return num.clamp_(-1.0, 1.0)


def _region_binary(image_c: torch.Tensor, c_in: float, c_out: float) -> torch.Tensor:
    if abs(c_in - c_out) < 1e-6:
        return torch.zeros_like(image_c)
    return _clip_force((2.0 * image_c - (c_in + c_out)) / (c_in - c_out))


def _log_likelihood(image_c: torch.Tensor, stats: tuple[float, float, float]) -> torch.Tensor:
    mean, std, prior = stats
    z = (image_c - mean) / std
    return z.mul_(z).mul_(-0.5).add_(math.log(prior) - math.log(std))


def _region_multilabel(image_c: torch.Tensor, stats_k: tuple[float, float, float],
                       others: Sequence[tuple[float, float, float]]) -> torch.Tensor:
    """min over the other classes of the Gaussian log-likelihood ratio / 2, clipped to [-1, 1]."""
    own = _log_likelihood(image_c, stats_k)
    out = torch.full_like(image_c, math.inf)
    for st in others:
        torch.minimum(out, own - _log_likelihood(image_c, st), out=out)
    out = torch.where(torch.isinf(out), torch.zeros_like(out), out)
    return _clip_force(out.mul_(0.5))


# ---------------------------------------------------------------------------
# Inputs and the public entry points
# ---------------------------------------------------------------------------
def _volume_array(volume: Volume) -> np.ndarray:
    array = np.asarray(volume.array, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    return array


def _as_3d_mask(mask: np.ndarray | None, shape: Sequence[int], what: str) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.ndim == 2:
        m = m[:, :, np.newaxis]
    if m.shape != tuple(shape):
        raise ParameterError(
            f"{what} of shape {m.shape} does not match the image shape {tuple(shape)}"
        )
    return m.astype(bool, copy=False)


def active_contour(
    volume: Volume,
    params: ActiveContourParams | None = None,
    *,
    seed: Sequence[float] | None = None,
    box: tuple[Sequence[float], Sequence[float]] | None = None,
    init_mask: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    device: str | torch.device = "auto",
    progress: Progress = None,
    cancel: CancelToken | None = None,
) -> SegmentationResult:
    """Binary level-set segmentation from a seed point, a box or an initial mask.

    Parameters
    ----------
    volume : Volume
        The image (a 2-D image is a volume with one slice).
    params : ActiveContourParams, optional
    seed : sequence of 2 or 3 numbers, optional
        Voxel index of a point inside the object; the contour starts as a
        sphere of ``params.seed_radius`` mm around it.
    box : ((i0, j0[, k0]), (i1, j1[, k1])), optional
        Voxel-index corners of a starting box, upper corner exclusive.
    init_mask : ndarray of bool, optional
        A starting mask (e.g. a rough or perturbed segmentation).
    mask : ndarray of bool, optional
        Domain to work in (the contour stays inside it; the Chan–Vese means
        are taken inside it). Default: the whole image.
    device : "auto", "cpu", "cuda" or torch.device
    progress, cancel
        ``progress(fraction, "iteration i/n")`` every iteration; the token is
        checked every iteration.

    Returns
    -------
    SegmentationResult
        Labels 0/1 (label table "Background", "Contour"); ``info`` has the
        iterations run and the final inside/outside means.

    References
    ----------
    .. [1] Y. Dai, *Deep Learning-based Medical Image Segmentation for Early
       Cancer Detection* (thesis), eq. 34.
    .. [2] V. Caselles, R. Kimmel, G. Sapiro, "Geodesic active contours", Int. J.
       Computer Vision 22(1):61--79, 1997. doi:10.1023/A:1007979827043
    .. [3] T. F. Chan, L. A. Vese, "Active contours without edges", IEEE Trans.
       Image Processing 10(2):266--277, 2001. doi:10.1109/83.902291
    .. [4] M. Sussman, P. Smereka, S. Osher, "A level set approach for computing
       solutions to incompressible two-phase flow", J. Comput. Phys.
       114(1):146--159, 1994. doi:10.1006/jcph.1994.1155

    Examples
    --------
    >>> import numpy as np
    >>> from engine.core.volume import Volume
    >>> img = np.zeros((40, 40, 1), np.float32); img[10:30, 12:28] = 1.0
    >>> res = active_contour(Volume(img, np.eye(4)), box=((5, 5), (35, 35)), device="cpu")
    >>> int(res.labels.array.sum())
    320
    """
    params = validate(params or ActiveContourParams())
    if sum(x is not None for x in (seed, box, init_mask)) != 1:
        raise ParameterError("give exactly one of seed, box or init_mask")
    spacing = tuple(volume.spacing)
    check_stability(params, spacing, volume.shape)
    dev = resolve_device(device)
    check_cancel(cancel)
    array = _volume_array(volume)
    domain_np = _as_3d_mask(mask, volume.shape, "mask")
    init_np = _as_3d_mask(init_mask, volume.shape, "initial mask")
    band = params.band * min(spacing)
    if domain_np is not None:
        if not domain_np.any():
            raise ParameterError("the mask is empty")
        work = bounding_box(domain_np, margin=1)
    else:
        work = tuple(slice(0, n) for n in volume.shape)
    offset = [sl.start for sl in work]
    wshape = [sl.stop - sl.start for sl in work]
    image = torch.from_numpy(np.ascontiguousarray(array[work])).to(dev)
    domain = None
    if domain_np is not None:
        domain = torch.from_numpy(np.ascontiguousarray(domain_np[work])).to(dev)
    image = normalize_intensities(
        image, domain if domain is not None else torch.ones_like(image, dtype=torch.bool)
    )
    def shift(p: Sequence[float]) -> list[float]:
        padded = [*list(p), *([0] * (3 - len(p)))]
        return [float(c) - o for c, o in zip(padded, offset, strict=True)]

    phi = initial_distance(
        wshape, spacing, band,
        seed=None if seed is None else shift(seed),
        box=None if box is None else (shift(box[0]), shift(box[1])),
        mask=None if init_np is None else init_np[work],
        seed_radius=params.seed_radius, device=dev,
    )
    edge = _edge_field(image, params, spacing)
    stats = _BinaryStats(phi, image, domain)
    before: dict[str, tuple[float, float]] = {}

    def region(phi_c: torch.Tensor, crop: tuple[slice, ...]) -> torch.Tensor:
        image_c = image[crop].contiguous()
        before["sums"] = stats.crop_sums(phi_c, image_c, crop)
        c_in, c_out = stats.means()
        return _region_binary(image_c, c_in, c_out)

    def update(phi_c: torch.Tensor, crop: tuple[slice, ...]) -> None:
        n_new, s_new = stats.crop_sums(phi_c, image[crop], crop)
        n_old, s_old = before["sums"]
        stats.n_in += n_new - n_old
        stats.s_in += s_new - s_old

    done = evolve(phi, region, spacing=spacing, band=band, dt=params.dt,
                  iterations=params.iterations, reinit_every=params.reinit_every,
                  curvature=params.mu, advection=edge, advection_speed=params.nu,
                  normal_speed=params.region, domain=domain, on_crop_done=update,
                  progress=progress, cancel=cancel)
    inside = phi < 0
    if domain is not None:
        inside &= domain
    out = np.zeros(volume.shape, dtype=np.uint8)
    out[work] = inside.cpu().numpy().astype(np.uint8)
    labels = LabelMap.on_grid_of(volume, out, labels=CONTOUR_LABELS)
    c_in, c_out = stats.means()
    info = {"iterations": done, "mean_inside": c_in, "mean_outside": c_out, "device": str(dev)}
    return SegmentationResult(labels=labels, info=info)


def refine_labels(
    volume: Volume,
    labels: LabelMap | np.ndarray,
    params: ActiveContourParams | None = None,
    labels_to_refine: Sequence[int] = (1, 2, 3),
    *,
    mask: np.ndarray | None = None,
    device: str | torch.device = "auto",
    progress: Progress = None,
    cancel: CancelToken | None = None,
) -> SegmentationResult:
    """Move the boundaries of each label of *labels* by the level-set evolution.

    For each label ``k`` in *labels_to_refine* (in that order), the contour
    of ``labels == k`` evolves with the multi-class region force (half the
    Gaussian log-likelihood ratio of class ``k`` against the most likely other
    class present, each class with its mean, spread and proportion), the
    curvature and the edge terms, inside the domain *mask*. Voxels that join
    the contour become ``k``; voxels that leave it take the other class under
    which their intensity is most likely.

    Parameters
    ----------
    volume : Volume
    labels : LabelMap or ndarray
        Label map on the volume's grid (e.g. the output of another method).
    params : ActiveContourParams, optional
        ``iterations`` is per label.
    labels_to_refine : sequence of int
        Labels whose boundaries move; others stay (but compete).
    mask : ndarray of bool, optional
        Domain (default: ``labels > 0``); voxels outside keep their label.
    device, progress, cancel
        As for the methods; progress messages read ``"label k: iteration i/n"``.

    Returns
    -------
    SegmentationResult
        The refined labels; ``info["class_means"]`` maps label to its mean
        normalised intensity.

    References
    ----------
    .. [1] Y. Dai, *Deep Learning-based Medical Image Segmentation for Early
       Cancer Detection* (thesis), eq. 34.
    .. [2] S. C. Zhu, A. Yuille, "Region competition: unifying snakes, region
       growing, and Bayes/MDL for multiband image segmentation", IEEE Trans.
       PAMI 18(9):884--900, 1996.
    .. [3] V. Caselles, R. Kimmel, G. Sapiro, "Geodesic active contours", Int. J.
       Computer Vision 22(1):61--79, 1997. doi:10.1023/A:1007979827043

    Examples
    --------
    >>> import numpy as np
    >>> from engine.core.volume import Volume
    >>> img = np.ones((32, 32, 1), np.float32); img[8:24, 8:24] = 2.0
    >>> rough = np.ones(img.shape, np.uint8); rough[10:26, 10:26] = 2   # shifted by 2 voxels
    >>> out = refine_labels(Volume(img, np.eye(4)), rough, labels_to_refine=(2,), device="cpu")
    >>> int((out.labels.array == 2).sum())
    256
    """
    params = validate(params or ActiveContourParams())
    spacing = tuple(volume.spacing)
    check_stability(params, spacing, volume.shape)
    dev = resolve_device(device)
    check_cancel(cancel)
    lab = labels.array if isinstance(labels, Volume) else np.asarray(labels)
    if lab.ndim == 2:
        lab = lab[:, :, np.newaxis]
    if lab.shape != volume.shape:
        raise ParameterError(
            f"label map of shape {lab.shape} does not match the image {volume.shape}"
        )
    if not np.issubdtype(lab.dtype, np.integer):
        raise ParameterError("labels must be an integer array")
    domain_np = _as_3d_mask(mask, volume.shape, "mask") if mask is not None else lab > 0
    if not domain_np.any():
        raise ParameterError("nothing to refine: the mask (or label map) is empty")
    work = bounding_box(domain_np, margin=1)
    band = params.band * min(spacing)
    dom = torch.from_numpy(np.ascontiguousarray(domain_np[work])).to(dev)
    image = torch.from_numpy(np.ascontiguousarray(_volume_array(volume)[work])).to(dev)
    image = normalize_intensities(image, dom)
    cur = torch.from_numpy(np.ascontiguousarray(lab[work]).astype(np.int64)).to(dev)
    present = [int(v) for v in torch.unique(cur[dom]).cpu() if int(v) != 0]
    n_dom = float(dom.sum())
    stats: dict[int, tuple[float, float, float]] = {}
    for j in present:
        vals = image[(cur == j) & dom]
        stats[j] = (float(vals.mean()), max(float(vals.std()) if vals.numel() > 1 else 0.0, 0.02),
                    max(vals.numel() / n_dom, 1e-4))
    means = {j: st[0] for j, st in stats.items()}
    todo = [int(k) for k in labels_to_refine if int(k) in means]
    edge = _edge_field(image, params, spacing)
    done_total = 0
    for idx, k in enumerate(todo):
        others = [stats[j] for j in present if j != k]
        if not others:
            continue
        phi = signed_distance((cur == k) & dom, spacing, band)

        def region(phi_c: torch.Tensor, crop: tuple[slice, ...],
                   own: tuple[float, float, float] = stats[k],
                   others: list[tuple[float, float, float]] = others) -> torch.Tensor:
            return _region_multilabel(image[crop].contiguous(), own, others)

        sub = scaled_progress(progress, idx / len(todo), (idx + 1) / len(todo))
        done_total += evolve(phi, region, spacing=spacing, band=band, dt=params.dt,
                             iterations=params.iterations, reinit_every=params.reinit_every,
                             curvature=params.mu, advection=edge, advection_speed=params.nu,
                             normal_speed=params.region, domain=dom, progress=sub,
                             cancel=cancel, message=f"label {k}: ")
        new_k = (phi < 0) & dom
        lost = (cur == k) & ~new_k
        if bool(lost.any()):
            competitors = [j for j in present if j != k]
            values = image[lost]
            scores = torch.stack([_log_likelihood(values.clone(), stats[j]) for j in competitors])
            cur[lost] = torch.tensor(competitors, device=dev)[torch.argmax(scores, dim=0)]
        cur[new_k] = k
    out = np.array(lab, copy=True)
    out[work] = np.where(domain_np[work], cur.cpu().numpy(), lab[work]).astype(lab.dtype)
    table = labels.labels if isinstance(labels, LabelMap) else BRAIN_TISSUE_LABELS
    result = LabelMap.on_grid_of(volume, out, labels=table)
    info = {"iterations": done_total, "class_means": means, "device": str(dev)}
    return SegmentationResult(labels=result, info=info)


def run_active_contour(
    volume: Volume,
    params: ActiveContourParams | None = None,
    *,
    device: str | torch.device = "auto",
    mask: np.ndarray | None = None,
    progress: Progress = None,
    cancel: CancelToken | None = None,
) -> SegmentationResult:
    """CSF/GM/WM: multi-Otsu labels inside the brain mask, refined by :func:`refine_labels`.

    References
    ----------
    .. [1] Y. Dai, *Deep Learning-based Medical Image Segmentation for Early
       Cancer Detection* (thesis), eq. 34 and Table 1.
    .. [2] P.-S. Liao, T.-S. Chen, P.-C. Chung, "A fast algorithm for multilevel
       thresholding", J. Information Science and Engineering 17(5):713--727,
       2001 (the multi-Otsu start).

    Examples
    --------
    >>> import numpy as np
    >>> from engine.core.volume import Volume
    >>> img = np.zeros((24, 24, 24), np.float32); img[4:20, 4:20, 4:20] = 1.0
    >>> img[7:17, 7:17, 7:17] = 2.0; img[10:14, 10:14, 10:14] = 3.0
    >>> res = run_active_contour(Volume(img + 1, np.eye(4)), ActiveContourParams(iterations=20),
    ...                          device="cpu")
    >>> int(res.labels.array[12, 12, 12]), int(res.labels.array[5, 5, 5])
    (3, 1)
    """
    from .baselines import otsu_labels

    params = validate(params or ActiveContourParams())
    check_stability(params, tuple(volume.spacing), volume.shape)
    check_cancel(cancel)
    full_mask = resolve_mask(volume, mask)
    start, _ = otsu_labels(_volume_array(volume), full_mask, contrast=params.contrast)
    result = refine_labels(volume, start, params, (1, 2, 3), mask=full_mask, device=device,
                           progress=progress, cancel=cancel)
    result.info["start"] = "multi-Otsu"
    return result
