r"""Baselines: multi-Otsu thresholds and a Gaussian mixture with an MRF prior.

* :func:`run_otsu` -- two thresholds of the intensities inside the brain mask
  that maximise the between-class variance (multi-Otsu [1]_ [2]_,
  ``skimage.filters.threshold_multiotsu``); CSF < GM < WM on T1.
* :func:`run_gmm` -- the FAST [4]_ / Atropos [5]_ family: a three-class
  Gaussian mixture of the normalised intensities inside the mask, fitted by
  EM [3]_, with a Potts Markov random field smoothness prior handled by mean
  field [6]_. At every iteration

  .. math::

      q_k(x) \propto \pi_k\, \mathcal N\bigl(I(x); \mu_k, \sigma_k^2\bigr)
      \exp\Bigl(\beta_{\mathrm{MRF}} \sum_{n \in N(x) \cap \Omega}
      \tfrac{h_{\min}^2}{h_n^2}\, q_k(n)\Bigr)

  (E-step with the mean-field Potts prior over the 6 face neighbours, weighted
  by inverse squared spacing), followed by the M-step
  :math:`\mu_k = \sum q_k I / \sum q_k`,
  :math:`\sigma_k^2 = \sum q_k (I-\mu_k)^2 / \sum q_k`,
  :math:`\pi_k = \sum q_k / |\Omega|`. Labels are the argmax of :math:`q`.

References
----------
The full list, with DOIs, is ``docs/references.md``.

.. [1] N. Otsu, "A threshold selection method from gray-level histograms", IEEE
   Trans. Systems, Man, and Cybernetics 9(1):62--66, 1979.
   doi:10.1109/TSMC.1979.4310076
.. [2] P.-S. Liao, T.-S. Chen, P.-C. Chung, "A fast algorithm for multilevel
   thresholding", J. Information Science and Engineering 17(5):713--727, 2001.
.. [3] A. P. Dempster, N. M. Laird, D. B. Rubin, "Maximum likelihood from
   incomplete data via the EM algorithm", J. Royal Statistical Society B
   39(1):1--38, 1977. doi:10.1111/j.2517-6161.1977.tb01600.x
.. [4] Y. Zhang, M. Brady, S. Smith, "Segmentation of brain MR images through
   a hidden Markov random field model and the expectation-maximization
   algorithm", IEEE Trans. Medical Imaging 20(1):45--57, 2001.
   doi:10.1109/42.906424
.. [5] B. B. Avants, N. J. Tustison, J. Wu, P. A. Cook, J. C. Gee, "An open
   source multivariate framework for n-tissue segmentation with evaluation on
   public data", Neuroinformatics 9(4):381--400, 2011.
   doi:10.1007/s12021-011-9109-y
.. [6] J. Zhang, "The mean field theory in EM procedures for Markov random
   fields", IEEE Trans. Signal Processing 40(10):2570--2583, 1992.

Examples
--------
>>> import numpy as np
>>> from engine.core.volume import Volume
>>> img = np.zeros((20, 20, 20), np.float32); img[4:16, 4:16, 4:16] = 1.0
>>> img[7:13, 7:13, 7:13] = 2.0; img[9:11, 9:11, 9:11] = 3.0
>>> vol = Volume(img + 1.0, np.eye(4))
>>> otsu, gmm = run_otsu(vol).labels.array, run_gmm(vol, device="cpu").labels.array
>>> int(otsu[10, 10, 10]), int(gmm[5, 5, 5])
(3, 1)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core.device import resolve_device
from ..core.errors import ParameterError
from ..core.jobs import CancelToken, check_cancel, report
from ..core.morphology import bounding_box
from ..core.params import param, validate
from ..core.steps import SegmentationResult
from ..core.volume import Volume
from .masks import resolve_mask
from .numerics import (
    NeumannStencil,
    Progress,
    full_probabilities,
    kmeans_1d,
    labels_to_volume,
    prepare_crop,
    rank_labels,
)

__all__ = ["GMMParams", "OtsuParams", "otsu_labels", "run_gmm", "run_otsu"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OtsuParams:
    """Parameters of the multi-Otsu baseline."""

    bins: int = param(256, lo=16, hi=65536, doc="histogram bins of the Otsu search")
    contrast: str = param(
        "t1", choices=("t1", "t2"),
        doc="image contrast: t1 (CSF < GM < WM) or t2 (WM < GM < CSF)",
    )


@dataclass(frozen=True)
class GMMParams:
    """Parameters of the Gaussian-mixture EM with a Potts MRF prior."""

    iterations: int = param(15, lo=1, hi=10_000, doc="EM iterations (one mean-field sweep each)")
    mrf_beta: float = param(
        0.2, lo=0.0, hi=10.0,
        doc="β_MRF, Potts coupling of the mean-field prior (0: plain Gaussian mixture)",
    )
    contrast: str = param(
        "t1", choices=("t1", "t2"),
        doc="image contrast: t1 (CSF < GM < WM) or t2 (WM < GM < CSF)",
    )


def otsu_labels(values: np.ndarray, mask: np.ndarray, *, bins: int = 256,
                contrast: str = "t1") -> tuple[np.ndarray, list[float]]:
    """Multi-Otsu tissue labels of *values* inside *mask* and the two thresholds.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 1.1, 1.2, 5.0, 5.1, 5.2, 9.0, 9.1, 9.2]])
    >>> otsu_labels(x, np.ones_like(x, bool))[0].tolist()
    [[1, 1, 1, 2, 2, 2, 3, 3, 3]]
    """
    from skimage.filters import threshold_multiotsu

    inside = np.asarray(values, dtype=np.float32)[mask]
    if inside.size < 3 or float(inside.max()) <= float(inside.min()):
        raise ParameterError("multi-Otsu needs at least three distinct intensities in the mask")
    try:
        thresholds = threshold_multiotsu(inside, classes=3, nbins=bins)
    except ValueError as exc:  # too few distinct intensities for three classes
        raise ParameterError(
            f"multi-Otsu cannot split the mask into three classes: {exc}"
        ) from None
    rank = np.digitize(values, thresholds)
    lut = np.array(rank_labels(contrast), dtype=np.uint8)
    labels = np.where(mask, lut[np.clip(rank, 0, 2)], 0).astype(np.uint8)
    return labels, [float(t) for t in thresholds]


def run_otsu(
    volume: Volume,
    params: OtsuParams | None = None,
    *,
    device: str | torch.device = "auto",
    mask: np.ndarray | None = None,
    progress: Progress = None,
    cancel: CancelToken | None = None,
) -> SegmentationResult:
    """Multi-Otsu CSF/GM/WM thresholds inside the brain mask (CPU; *device* is ignored).

    References
    ----------
    .. [1] N. Otsu, "A threshold selection method from gray-level histograms",
       IEEE Trans. Systems, Man, and Cybernetics 9(1):62--66, 1979.
       doi:10.1109/TSMC.1979.4310076
    .. [2] P.-S. Liao, T.-S. Chen, P.-C. Chung, "A fast algorithm for multilevel
       thresholding", J. Information Science and Engineering 17(5):713--727,
       2001.

    Examples
    --------
    >>> import numpy as np
    >>> from engine.core.volume import Volume
    >>> rng = np.random.default_rng(0)
    >>> img = np.repeat(np.array([10.0, 50.0, 90.0]), 20) + rng.normal(0, 3, 60)
    >>> res = run_otsu(Volume(img.reshape(60, 1, 1), np.eye(4)), mask=np.ones((60, 1, 1)))
    >>> res.labels.array.ravel()[::20].tolist()
    [1, 2, 3]
    """
    params = validate(params or OtsuParams())
    resolve_device(device)  # validates the argument; the baseline runs on the CPU
    check_cancel(cancel)
    full_mask = resolve_mask(volume, mask)
    box = bounding_box(full_mask, margin=0)
    values = np.asarray(volume.array[box], dtype=np.float32)
    crop_labels, thresholds = otsu_labels(
        values, full_mask[box], bins=params.bins, contrast=params.contrast
    )
    report(progress, 1.0, "thresholds applied")
    labels = labels_to_volume(volume, box, crop_labels)
    return SegmentationResult(labels=labels, info={"thresholds": thresholds})


def run_gmm(
    volume: Volume,
    params: GMMParams | None = None,
    *,
    device: str | torch.device = "auto",
    mask: np.ndarray | None = None,
    progress: Progress = None,
    cancel: CancelToken | None = None,
) -> SegmentationResult:
    """Three-class Gaussian mixture EM with a mean-field Potts prior, in torch.

    Parameters
    ----------
    volume : Volume
    params : GMMParams, optional
    device : "auto", "cpu", "cuda" or torch.device
    mask : ndarray of bool, optional
        Brain mask (default: :func:`~engine.methods.masks.rough_brain_mask`).
    progress, cancel
        Progress callback and cancel token (checked every iteration).

    Returns
    -------
    SegmentationResult
        Labels 0/1/2/3, probabilities ``(4, *shape)`` and ``info`` with the
        fitted means, standard deviations and proportions (normalised units).

    References
    ----------
    .. [1] Y. Zhang, M. Brady, S. Smith, "Segmentation of brain MR images
       through a hidden Markov random field model and the
       expectation-maximization algorithm", IEEE Trans. Medical Imaging
       20(1):45--57, 2001. doi:10.1109/42.906424
    .. [2] A. P. Dempster, N. M. Laird, D. B. Rubin, "Maximum likelihood from
       incomplete data via the EM algorithm", J. Royal Statistical Society B
       39(1):1--38, 1977. doi:10.1111/j.2517-6161.1977.tb01600.x
    .. [3] J. Zhang, "The mean field theory in EM procedures for Markov random
       fields", IEEE Trans. Signal Processing 40(10):2570--2583, 1992.

    Examples
    --------
    >>> import numpy as np
    >>> from engine.core.volume import Volume
    >>> rng = np.random.default_rng(0)
    >>> img = np.zeros((30, 30), np.float32); img[5:25, 5:25] = 1.0; img[10:20, 10:20] = 2.0
    >>> img[13:17, 13:17] = 3.0
    >>> vol = Volume(img + rng.normal(0, 0.2, img.shape), np.eye(4))
    >>> res = run_gmm(vol, mask=img > 0, device="cpu")
    >>> int(res.labels.array[15, 15, 0]), int(res.labels.array[6, 6, 0])
    (3, 1)
    """
    params = validate(params or GMMParams())
    ranks = rank_labels(params.contrast)
    dev = resolve_device(device)
    check_cancel(cancel)
    full_mask, crop = prepare_crop(volume, mask, dev)
    image = crop.image
    inside = image[crop.mask]
    n_in = float(inside.numel())
    mu, sigma, pi = kmeans_1d(inside, 3)
    k = 3
    stencil = NeumannStencil(image.shape, crop.spacing, None if crop.mask_f is None else crop.mask,
                             dev)
    h_min = min(crop.spacing)
    q = torch.empty((k, *image.shape), dtype=torch.float32, device=dev)
    prior = torch.zeros_like(q)
    logp = torch.empty_like(q)
    tmp = torch.empty_like(image)
    n = params.iterations
    for it in range(n):
        check_cancel(cancel)
        if float(sigma.min()) <= 0 or not bool(torch.isfinite(mu).all()):
            raise ParameterError("the Gaussian mixture degenerated (a class became empty)")
        for j in range(k):
            s = float(sigma[j])
            torch.sub(image, float(mu[j]), out=tmp)
            tmp.mul_(1.0 / s)
            torch.mul(tmp, tmp, out=logp[j])
            logp[j].mul_(-0.5).add_(math.log(float(pi[j])) - math.log(s))
        if it > 0 and params.mrf_beta > 0:
            stencil.neighbour_sum(q, out=prior)
            logp.add_(prior, alpha=params.mrf_beta * h_min * h_min)
        q = torch.softmax(logp, dim=0)
        torch.nn.functional.threshold_(q, 1e-30, 0.0)  # no float32 denormals
        if crop.mask_f is not None:
            q.mul_(crop.mask_f)
        # M-step
        weights = q.sum(dim=(1, 2, 3), dtype=torch.float64)
        wsum = torch.stack([(q[j] * image).sum(dtype=torch.float64) for j in range(k)])
        mu64 = wsum / weights.clamp(min=1e-12)
        var = torch.stack([
            (q[j] * (image - float(mu64[j])) ** 2).sum(dtype=torch.float64) for j in range(k)
        ]) / weights.clamp(min=1e-12)
        mu = mu64.float()
        sigma = var.sqrt().float().clamp(min=1e-3)
        pi = (weights / n_in).float().clamp(min=1e-6)
        report(progress, (it + 1) / n, f"iteration {it + 1}/{n}")
    # Keep the classes in intensity order (EM may swap them on odd images).
    order = torch.argsort(mu)
    q = q[order]
    mu, sigma, pi = mu[order], sigma[order], pi[order]
    rank = torch.argmax(q, dim=0)
    lut = torch.tensor(ranks, dtype=torch.uint8, device=dev)
    crop_labels = torch.where(crop.mask, lut[rank], torch.zeros_like(rank, dtype=torch.uint8))
    labels = labels_to_volume(volume, crop.box, crop_labels.cpu().numpy())
    probs = full_probabilities(volume, crop.box, full_mask, q, ranks)
    info = {
        "means": [float(x) for x in mu.cpu()],
        "stds": [float(x) for x in sigma.cpu()],
        "proportions": [float(x) for x in pi.cpu()],
        "iterations": n,
        "device": str(dev),
    }
    return SegmentationResult(labels=labels, probabilities=probs, info=info)
