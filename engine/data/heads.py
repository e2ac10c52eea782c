"""Synthetic whole heads: the MNI brain inside scalp, skull, face and neck.

A clinical MRI shows the whole head, not a skull-stripped brain. No head of a
person is used for training or tuning in Delineo, so heads are *synthesised*
around the template brain, SynthStrip-style: extra-cerebral layers of random
thickness and random intensity, built from the distance to the brain surface.

From the inside out (thicknesses in mm, each varying smoothly around the head
by up to +-40 % with a low-frequency random field):

=====================  ===========  ==========================================
layer                  thickness    notes
=====================  ===========  ==========================================
CSF rim                1.5-4        subarachnoid CSF out to the inner table
inner table            1.5-3        cortical bone (no MR signal)
diploe (marrow)        1.5-5        fatty marrow
outer table            1-2.5        cortical bone
scalp fat              2-6          subcutaneous fat
muscle and skin        2-5          temporalis / galea / skin
=====================  ===========  ==========================================

Below the brain a neck (a soft-tissue column with a fat rim and a vertebral
body) reaches the lower edge of the field of view, and two eyes (fluid-filled
globes in orbital fat) sit in front of the frontal lobes. The intracranial mask
(the target of brain extraction: brain plus all CSF out to the inner table) is
the brain mask plus the CSF rim.

Contrasts follow the usual weighting of each tissue (:data:`HEAD_CONTRASTS`: T1, T2,
PD, and FLAIR-like -- fluid suppressed, so CSF and the eyes dark, fat and marrow
moderately bright, the brain as :data:`~engine.data.phantom.FLAIR_MEANS`),
with a random +-15 % jitter per tissue, an intensity non-uniformity field and
Rician noise as in :func:`engine.data.phantom.synthesize_phantom`, so the same
anatomy appears as T1, T2, PD or FLAIR-like.

Examples
--------
>>> head = synthetic_head("t1", seed=1)                      # doctest: +SKIP
>>> head.image.shape, round(head.intracranial.sum() / 1000)  # doctest: +SKIP
((257, 293, 249), 2113)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from ..core.errors import ParameterError, unknown_name
from ..core.volume import BRAIN_TISSUE_LABELS, LabelMap, Volume
from .fields import inu_field
from .phantom import (
    CONTRAST_MEANS,
    FLAIR_MEANS,
    add_rician_noise,
    mni_tissue_block,
    render,
    sequence_means,
)

__all__ = ["HEAD_CONTRASTS", "HEAD_LAYERS", "SyntheticHead", "smooth_field", "synthetic_head"]

#: Extra-cerebral layers from the inside out: (name, min mm, max mm).
HEAD_LAYERS: tuple[tuple[str, float, float], ...] = (
    ("csf_rim", 1.5, 4.0),
    ("inner_table", 1.5, 3.0),
    ("diploe", 1.5, 5.0),
    ("outer_table", 1.0, 2.5),
    ("scalp_fat", 2.0, 6.0),
    ("muscle_skin", 2.0, 5.0),
)

#: Mean intensity of each extra-cerebral tissue relative to the brightest brain tissue.
HEAD_CONTRASTS: dict[str, dict[str, float]] = {
    "t1": {"csf_rim": CONTRAST_MEANS["t1"][0], "inner_table": 0.03, "diploe": 0.75,
           "outer_table": 0.03, "scalp_fat": 1.25, "muscle_skin": 0.55, "eye": 0.25,
           "orbit_fat": 1.2, "neck": 0.55, "vertebra": 0.7},
    "t2": {"csf_rim": CONTRAST_MEANS["t2"][0], "inner_table": 0.03, "diploe": 0.55,
           "outer_table": 0.03, "scalp_fat": 0.8, "muscle_skin": 0.3, "eye": 1.0,
           "orbit_fat": 0.8, "neck": 0.3, "vertebra": 0.5},
    "pd": {"csf_rim": CONTRAST_MEANS["pd"][0], "inner_table": 0.05, "diploe": 0.7,
           "outer_table": 0.05, "scalp_fat": 0.9, "muscle_skin": 0.6, "eye": 0.95,
           "orbit_fat": 0.9, "neck": 0.6, "vertebra": 0.65},
    "flair": {"csf_rim": FLAIR_MEANS[0], "inner_table": 0.03, "diploe": 0.6,
              "outer_table": 0.03, "scalp_fat": 0.7, "muscle_skin": 0.35, "eye": 0.1,
              "orbit_fat": 0.7, "neck": 0.35, "vertebra": 0.45},
}

_MARGIN_MM = 30.0


@dataclass
class SyntheticHead:
    """A synthetic whole head and what is known about it.

    Attributes
    ----------
    image : Volume
        float32 intensities (brightest brain tissue about 1000).
    truth : LabelMap
        Brain tissue labels (1 CSF, 2 GM, 3 WM) inside the brain; 0 elsewhere,
        the CSF rim included (it is intracranial CSF, but not part of the
        brain tissue ground truth of the template).
    intracranial : ndarray of bool
        Brain plus the CSF rim out to the inner table.
    brain_image : Volume
        The same brain without anything outside the brain (a skull-stripped
        version of the same scan, for agreement checks).
    """

    image: Volume
    truth: LabelMap
    intracranial: np.ndarray
    brain_image: Volume


def smooth_field(shape: tuple[int, ...], rng: np.random.Generator, sigma: float) -> np.ndarray:
    """A smooth random field in [-1, 1]: coarse noise (one value per *sigma* voxels)
    interpolated (trilinear) to *shape*."""
    small = tuple(max(2, int(np.ceil(s / sigma)) + 1) for s in shape)
    coarse = torch.from_numpy(rng.standard_normal(small).astype(np.float32))[None, None]
    field = torch.nn.functional.interpolate(coarse, size=shape, mode="trilinear",
                                            align_corners=True)[0, 0].numpy()
    peak = np.abs(field).max()
    return (field / peak) if peak > 0 else field


def synthetic_head(contrast: str = "t1", *, seed: int = 0, noise: float = 0.03,
                   inu: float = 0.2, jitter: float = 0.15) -> SyntheticHead:
    """A whole head around the MNI brain (see the module docstring).

    Parameters
    ----------
    contrast : {"t1", "t2", "pd", "flair"}
    seed : int
        Seed of every random choice (thicknesses, intensities, field, noise).
    noise : float
        Rician noise std as a fraction of the brightest brain tissue.
    inu : float
        Peak-to-peak range of the multiplicative INU field over the head.
    jitter : float
        Random relative change of each extra-cerebral tissue's intensity.
    """
    if contrast not in HEAD_CONTRASTS:
        raise ParameterError(unknown_name("head contrast", contrast, HEAD_CONTRASTS))
    rng = np.random.default_rng(int(seed))
    block = mni_tissue_block()
    spacing = np.sqrt((block.affine[:3, :3] ** 2).sum(axis=0))
    pad = [round(_MARGIN_MM / s) for s in spacing]
    labels = np.pad(block.labels.numpy().astype(np.uint8), [(p, p) for p in pad])
    maps = torch.nn.functional.pad(block.maps[:3][None], [p for p in pad[::-1] for _ in (0, 1)])
    brain = labels > 0
    shape = labels.shape
    affine = block.affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.array(pad, float)

    # Distance (mm) from the brain, outside it; layers are shells of that distance.
    outside = ndimage.distance_transform_edt(~brain, sampling=spacing)
    region = np.zeros(shape, np.uint8)  # 0 air/brain, i + 1 = HEAD_LAYERS[i]
    edge = np.zeros(shape, np.float32)
    for i, (_, lo, hi) in enumerate(HEAD_LAYERS):
        thick = rng.uniform(lo, hi) * (1.0 + 0.4 * smooth_field(shape, rng, 40.0))
        edge = edge + thick.astype(np.float32)
        region[(region == 0) & ~brain & (outside <= edge)] = i + 1

    # Neck: a soft-tissue column under the brain, down to the lower edge.
    ii, jj, kk = np.indices(shape, sparse=True)
    zs = np.nonzero(brain.any(axis=(0, 1)))[0]
    centre = np.array(ndimage.center_of_mass(brain))
    bottom = int(zs.min())
    radius_x, radius_y = 45.0 / spacing[0], 40.0 / spacing[1]
    neck = (((ii - centre[0]) / radius_x) ** 2 + ((jj - centre[1] + 10 / spacing[1])
                                                  / radius_y) ** 2 <= 1.0)
    neck = neck & (kk < bottom + int(25 / spacing[2])) & ~brain & (region == 0)
    vertebra = (((ii - centre[0]) / (9 / spacing[0])) ** 2
                + ((jj - centre[1] + 20 / spacing[1]) / (9 / spacing[1])) ** 2 <= 1.0)
    vertebra = vertebra & (kk < bottom + int(10 / spacing[2])) & ~brain

    # Eyes: fluid globes in orbital fat, in front of the frontal lobes.
    front = int(np.nonzero(brain.any(axis=(0, 2)))[0].max())
    eyes = np.zeros(shape, bool)
    fat = np.zeros(shape, bool)
    for side in (-1, 1):
        c = np.array([centre[0] + side * 32 / spacing[0], front - 8 / spacing[1],
                      bottom + 40 / spacing[2]])
        r2 = sum(((g - cc) * sp) ** 2 for g, cc, sp in zip((ii, jj, kk), c, spacing,
                                                              strict=True))
        eyes |= (r2 <= 12.0 ** 2) & ~brain
        fat |= (r2 <= 17.0 ** 2) & ~brain
    fat &= ~eyes

    means = HEAD_CONTRASTS[contrast]
    tissue_means = sequence_means(contrast)
    image = render(maps, torch.tensor([tissue_means], dtype=torch.float32))[0, 0].numpy()
    image = image.copy()

    def level(name: str) -> float:
        return means[name] * (1.0 + jitter * rng.uniform(-1.0, 1.0))

    for i, (name, _, _) in enumerate(HEAD_LAYERS):
        image[region == i + 1] = level(name)
    image[neck] = level("neck")
    image[vertebra] = level("vertebra")
    image[fat] = level("orbit_fat")
    image[eyes] = level("eye")
    # Partial volume at tissue borders: a slight blur of the extra-cerebral part only.
    outer = ~brain
    blurred = ndimage.gaussian_filter(image, 0.6 / spacing)
    image[outer] = blurred[outer]

    img = torch.from_numpy(image.astype(np.float32))[None, None]
    gen = torch.Generator().manual_seed(int(seed))
    head = img > 0.01
    img = img * inu_field(img, inu, gen, mask=head if bool(head.any()) else None)
    img = add_rician_noise(img, noise * max(tissue_means), gen)
    array = (img[0, 0] * 1000.0).numpy().astype(np.float32)

    intracranial = brain | (region == 1)
    desc = f"Delineo synthetic head: contrast={contrast} seed={seed}"
    meta = {"description": desc,
            "phantom": {"contrast": contrast, "seed": seed, "noise": noise, "inu": inu,
                        "head": True}}
    volume = Volume(array, affine, modality="MR", metadata=meta)
    stripped = volume.with_array(np.where(brain, array, 0.0).astype(np.float32))
    stripped.metadata = {**meta, "description": desc + " (brain only)"}
    truth = LabelMap(labels, affine.copy(), labels=BRAIN_TISSUE_LABELS,
                     metadata={"description": desc + " (truth)"})
    return SyntheticHead(volume, truth, intracranial, stripped)
