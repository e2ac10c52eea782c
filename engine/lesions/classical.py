"""A classical lesion detector: intensity outliers against the fitted tissue model.

The reference every learned lesion detector is measured against. No training,
no data beyond the image:

1. **Tissue model.** The three-class Gaussian mixture with a Potts prior of
   :func:`engine.methods.baselines.run_gmm` is fitted inside the brain mask on
   the normalised intensities of :func:`engine.methods.numerics.prepare_crop`;
   it gives each tissue's mean and standard deviation and each voxel's
   posteriors and tissue label.
2. **z-score against white matter.** The white-matter mean is made local
   (normalised convolution of the white-matter posterior-weighted image over
   *local_mm*: it follows the intensity non-uniformity);
   ``z = |x - local WM mean| / s`` with ``s`` the larger of the mixture's
   white-matter standard deviation and the noise level
   (:func:`engine.data.lesions.estimate_noise_sigma`). Voxels within *edge_mm*
   of the edge of the brain mask score 0.
3. **Candidates**: voxels the mixture did not label white matter with
   ``z >= z_threshold``, opened *opening* times with the 6-neighbourhood
   (partial-volume sheets and thin bridges go), split into 26-connected
   components.
4. **Lesions**: components of *min_size_mm3* to *max_size_mm3* whose
   surrounding shell (two voxels wide) is at least *shell_wm* white matter --
   something that is not white matter, inside white matter. The opening is
   undone on the kept components (grown back into their candidate voxels).
5. **Confidence** of a lesion: ``1 - exp(-max(mean z - z_threshold / 2, 0) /
   z_threshold)`` over its voxels, in [0, 1), increasing with its contrast.

What it cannot do, by construction: lesions in gray matter (cortex, deep
nuclei, cerebellar cortex), and lesions touching the cortex or a ventricle
(their candidate voxels join the gray matter or CSF around them), are not
"inside white matter" and are missed; gray-matter islands inside white matter
(e.g. a nucleus cut by the mask) can be false positives. It is a reference,
not a detector to use. Measured figures are in docs/lesions.md.

Examples
--------
>>> from engine.data.phantom import synthesize_phantom       # doctest: +SKIP
>>> from engine.data.lesions import add_lesions              # doctest: +SKIP
>>> image, truth = synthesize_phantom("t1", seed=0)          # doctest: +SKIP
>>> out = add_lesions(image, truth, contrast="t1", count=4, seed=0)  # doctest: +SKIP
>>> image, labels, _ = out                                   # doctest: +SKIP
>>> found = detect_outliers(image, contrast="t1", mask=truth.array > 0)  # doctest: +SKIP
>>> int(found.instances.max()) == len(found.confidences)     # doctest: +SKIP
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ..core.errors import GeometryMismatchError, ParameterError
from ..core.volume import BRAIN_LESION_LABELS, LabelMap, Volume
from ..data.lesions import estimate_noise_sigma
from ..methods.baselines import GMMParams, run_gmm
from ..methods.numerics import prepare_crop, rank_labels
from ..methods.postprocess import connected_components
from .measure import LESION_VALUE, lesion_instances

__all__ = ["OutlierDetection", "detect_outliers"]

#: Image contrasts and the tissue intensity order the mixture assumes for each.
_ORDER = {"t1": "t1", "t2": "t2", "flair": "t1", "pd": "t2"}


@dataclass
class OutlierDetection:
    """What :func:`detect_outliers` found.

    Attributes
    ----------
    instances : ndarray of int32
        0 outside lesions, ``1..N`` by decreasing volume (as
        :func:`~engine.lesions.measure.lesion_instances`).
    confidences : list of float
        Confidence of lesion ``i`` at index ``i - 1``.
    score : Volume
        z of every voxel against the local white matter (0 outside the mask), float32.
    lesion_probability : Volume
        Each lesion's confidence painted into its voxels (0 elsewhere), for
        :func:`engine.evaluation.lesionwise.evaluate_case`.
    tissue : LabelMap
        The mixture's tissue labels 1/2/3.
    info : dict
        Tissue means and standard deviations (normalised), parameters.
    """

    instances: np.ndarray
    confidences: list[float]
    score: Volume
    lesion_probability: Volume
    tissue: LabelMap
    info: dict[str, Any] = field(default_factory=dict)

    def labels(self) -> LabelMap:
        """The tissue labels with 4 ("Lesion") in every detected lesion."""
        arr = np.where(self.instances > 0, LESION_VALUE, self.tissue.array).astype(np.uint8)
        return LabelMap(arr, self.tissue.affine.copy(), labels=BRAIN_LESION_LABELS)


def detect_outliers(
    image: Volume,
    *,
    contrast: str = "t1",
    mask: np.ndarray | None = None,
    z_threshold: float = 3.0,
    min_size_mm3: float = 15.0,
    max_size_mm3: float = 15000.0,
    shell_wm: float = 0.6,
    edge_mm: float = 2.0,
    local_mm: float = 8.0,
    opening: int = 1,
    context_mm: float = 3.0,
    context_wm: float = 0.3,
    gmm: GMMParams | None = None,
) -> OutlierDetection:
    """Lesions as intensity outliers against the fitted tissue model (module docstring).

    Parameters
    ----------
    image : Volume
        A brain image (skull-stripped, or with *mask* giving the brain).
    contrast : {"t1", "t2", "flair", "pd"}
        Sets the mixture's tissue order (T1/FLAIR: CSF < GM < WM; T2/PD: WM < GM < CSF).
    mask : ndarray of bool, optional
        Brain mask (default: the mixture's own rough brain mask).
    z_threshold : float
        z (against the local white matter) a candidate voxel needs.
    min_size_mm3, max_size_mm3 : float
        Smallest and largest lesion kept (mm^3; 15 mm^3 is a sphere of about
        3 mm, 15000 mm^3 one of about 31 mm).
    shell_wm : float
        Fraction of white matter the shell around a lesion needs.
    edge_mm : float
        Margin inside the edge of the brain mask where nothing is detected.
    local_mm : float
        Gaussian sigma (mm) of the local white-matter mean.
    opening : int
        Openings (6-neighbourhood) of the candidate mask.
    gmm : GMMParams, optional
        Mixture parameters (its contrast is set from *contrast*).
    """
    if contrast not in _ORDER:
        raise ParameterError(f"unknown contrast {contrast!r} (use t1, t2, flair or pd)")
    for name, value in (("z_threshold", z_threshold), ("local_mm", local_mm),
                        ("max_size_mm3", max_size_mm3)):
        if not (math.isfinite(value) and value > 0):
            raise ParameterError(f"{name} must be positive, not {value}")
    for name, value in (("min_size_mm3", min_size_mm3), ("edge_mm", edge_mm)):
        if not (math.isfinite(value) and value >= 0):
            raise ParameterError(f"{name} must be 0 or more, not {value}")
    if not 0 <= shell_wm <= 1:
        raise ParameterError(f"shell_wm must be in [0, 1], not {shell_wm}")
    if mask is not None and np.asarray(mask).shape != image.shape:
        raise GeometryMismatchError(
            f"the mask has shape {np.asarray(mask).shape}, the image {image.shape}",
            differences=[f"shape {np.asarray(mask).shape} vs {image.shape}"])
    order = _ORDER[contrast]
    params = GMMParams(**{**(gmm.__dict__ if gmm else {}), "contrast": order})
    fit = run_gmm(image, params, device="cpu", mask=None if mask is None else
                  np.asarray(mask, bool))
    full_mask, crop = prepare_crop(image, None if mask is None else np.asarray(mask, bool),
                                   torch.device("cpu"))
    box = crop.box
    x = crop.image.numpy()
    inside = crop.mask.numpy()
    ranks = rank_labels(order)
    means = dict(zip(ranks, fit.info["means"], strict=True))
    stds = dict(zip(ranks, fit.info["stds"], strict=True))
    probs = fit.probabilities
    spacing = np.asarray(image.spacing, float)

    # Tissue means that follow the intensity non-uniformity: a normalised convolution of
    # each tissue's voxels (posterior-weighted) over local_mm; robust spreads from the
    # voxels the mixture is sure of.
    local_sigma = local_mm / spacing
    hard = np.asarray(fit.labels.array[box])
    # One noise level for every tissue, from the white matter (the largest homogeneous
    # tissue); tissue means that follow the intensity non-uniformity.
    spread = max(estimate_noise_sigma(x, inside & (hard == 3)), float(stds[3]), 1e-3)
    # The white matter's local mean (it follows the intensity non-uniformity).
    post = np.asarray(probs[3][box], np.float32) * inside
    num = ndimage.gaussian_filter(x * post, local_sigma)
    den = ndimage.gaussian_filter(post, local_sigma)
    wm_mean = np.where(den > 0.05, num / np.maximum(den, 1e-6), means[3])
    score = np.abs(x - wm_mean) / spread
    score = np.where(inside, score, 0.0).astype(np.float32)
    if edge_mm > 0:
        depth = ndimage.distance_transform_edt(inside, sampling=spacing)
        score[depth <= edge_mm] = 0.0

    # Candidates: voxels the mixture did not call white matter and that lie z_threshold
    # spreads or more from the local white-matter mean; thin sheets opened away.
    six = ndimage.generate_binary_structure(3, 1)
    wm_context = ndimage.gaussian_filter(post, context_mm / spacing)
    raw = (score >= z_threshold) & (hard != 3)
    seeds = raw & (wm_context >= context_wm)
    candidate = ndimage.binary_opening(seeds, structure=six, iterations=opening)
    comps, counts = connected_components(candidate, connectivity=26)
    n = len(counts) - 1
    voxel_mm3 = float(np.prod(spacing))
    keep = np.zeros(n + 1, bool)
    if n:
        sizes = counts * voxel_mm3
        for c, sl in enumerate(ndimage.find_objects(comps), start=1):
            if sl is None or not (min_size_mm3 <= sizes[c] <= max_size_mm3):
                continue
            grown = tuple(slice(max(0, q.start - 3), q.stop + 3) for q in sl)
            comp = comps[grown] == c
            shell = ndimage.binary_dilation(comp, structure=six, iterations=2) & ~comp \
                & inside[grown]
            if shell.any() and float((hard[grown][shell] == 3).mean()) >= shell_wm:
                keep[c] = True
    # Back into the voxels the opening took from the kept lesions' edges.
    kept = keep[comps]
    candidate = ndimage.binary_fill_holes(
        ndimage.binary_dilation(kept, structure=six, iterations=opening + 1) & raw)
    lesion_mask = np.zeros(image.shape, bool)
    lesion_mask[box] = candidate
    inst = lesion_instances(LabelMap(lesion_mask.astype(np.uint8) * LESION_VALUE,
                                     image.affine.copy(), labels=BRAIN_LESION_LABELS))
    full_score = np.zeros(image.shape, np.float32)
    full_score[box] = score
    n_found = int(inst.max())
    confidences: list[float] = []
    prob = np.zeros(image.shape, np.float32)
    if n_found:
        mean_z = ndimage.mean(full_score, inst, np.arange(1, n_found + 1))
        conf = 1.0 - np.exp(-np.maximum(np.asarray(mean_z) - z_threshold / 2.0, 0.0)
                            / z_threshold)
        confidences = [float(c) for c in conf]
        table = np.concatenate([[0.0], conf]).astype(np.float32)
        prob = table[inst]
    info = {"means": {int(k): float(v) for k, v in means.items()},
            "stds": {int(k): float(v) for k, v in stds.items()},
            "z_threshold": z_threshold, "min_size_mm3": min_size_mm3,
            "max_size_mm3": max_size_mm3, "shell_wm": shell_wm, "local_mm": local_mm,
            "white_matter_spread": spread, "edge_mm": edge_mm,
            "contrast": contrast, "brain_voxels": int(full_mask.sum())}
    score_vol = image.with_array(full_score)
    prob_vol = image.with_array(prob.astype(np.float32))
    return OutlierDetection(instances=inst, confidences=confidences, score=score_vol,
                            lesion_probability=prob_vol, tissue=fit.labels, info=info)
