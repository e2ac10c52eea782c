"""The synthetic pool of a lesion training run, and the patches drawn from it.

The tissue networks draw every patch fresh from the tissue maps
(:mod:`engine.data.synthesis`); lesions cannot be drawn that way -- painting
them (:func:`engine.data.lesions.add_lesions`) works on whole volumes and
takes a second or two each. So a lesion run
(:func:`engine.models.lesion_training.train_lesion`) first builds a **pool**
of volumes (:func:`lesion_pool`), then draws its 2.5-D patches from the pool
(:class:`PoolSampler`), with fresh in-plane and intensity augmentation every
step:

* a pool volume is a phantom of the MNI template
  (:func:`engine.data.phantom.synthesize_phantom`) with a drawn contrast
  (T1-, T2-, PD- or FLAIR-like class means, jittered), noise, INU, blur and,
  for half of them, a random in-plane deformation of the anatomy; with
  ``anatomy="varied"`` three volumes of four (``varied_share``) are drawn on a
  new 3-D shape of the template (:func:`varied_template`: each block outside
  the held-out slab varied by :func:`engine.data.anatomy.vary_anatomy`, the
  tissue network's training family); then
  :func:`~engine.data.lesions.add_lesions` paints 1-8 lesions (2-30 mm) into
  three volumes of four and none into the fourth (lesion-free volumes teach
  the network what is *not* a lesion);
* **held-out protocol**: lesions are painted with
  ``avoid_k=HELD_OUT_SLAB`` (the slab is bit-for-bit untouched and nothing of
  it enters the lesions' statistics), then the slab's slices are cut out of
  the volume before anything else (:func:`pool_blocks`): a pool volume is two
  blocks, ``k < 70`` and ``k >= 90``, and a patch never spans the cut. The
  intensity scale (:func:`~engine.core.tensors.robust_normalise`, as the
  predictor applies it) is computed without the slab too;
* with ``head_fraction`` > 0, that share of the pool volumes are synthetic
  **whole heads** (:func:`engine.data.heads.synthetic_head`) with lesions,
  seen through a perturbed intracranial mask (:func:`draw_head_volume`): the
  network learns that CSF rim, skull, orbits and neck left by brain
  extraction are not lesions; their sequences are ``head_contrasts`` (T1, T2
  and PD unless the run adds FLAIR-like heads);
* a patch is centred on a lesion voxel (``lesion_fraction`` of the patches,
  when the volume has lesions), on a brain voxel (most of the rest) or
  anywhere (5 %); rotated +-15 degrees, scaled 0.9-1.1, mirrored left-right
  (p = 0.5), shifted +-6 mm; then gamma U(0.75, 1.35) (p = 0.3) and a gain
  U(0.9, 1.1).

:data:`LESION_DATA_RECIPE` states all of it in words; it is copied into the
model card of every lesion network.

Examples
--------
>>> import torch
>>> pool = lesion_pool(2, seed=0, toy=True)
>>> sampler = PoolSampler(pool, torch.Generator().manual_seed(0), crop=(32, 32), context=1,
...                       classes="lesion", lesion_fraction=0.5)
>>> x, y = sampler.batch(3)
>>> tuple(x.shape), tuple(y.shape)
((3, 3, 32, 32), (3, 32, 32))
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias

from ..core.errors import ParameterError
from ..core.jobs import CancelToken, check_cancel, report
from ..core.tensors import robust_normalise
from .phantom import sequence_means

__all__ = [
    "ANATOMY_CHOICES",
    "LESION_DATA_RECIPE",
    "POOL_CONTRASTS",
    "POOL_HEAD_CONTRASTS",
    "VARIED_SHARE",
    "LesionPool",
    "PoolBlock",
    "PoolSampler",
    "draw_head_volume",
    "draw_pool_volume",
    "is_head_volume",
    "lesion_pool",
    "pool_blocks",
    "template_centres",
    "varied_template",
]

#: Sequences of the pool's whole heads (drawn uniformly; fixed here so that a new head
#: contrast does not change the shipped recipe's pool).
POOL_HEAD_CONTRASTS = ("pd", "t1", "t2")

#: Sequences of the pool volumes and their probabilities (the lesion contrast follows).
POOL_CONTRASTS: dict[str, float] = {"t1": 0.35, "t2": 0.25, "pd": 0.2, "flair": 0.2}

#: Anatomy of the pool phantoms: the template (with an in-plane deformation for half)
#: or, for three of four, a varied 3-D shape of it (:func:`varied_template`).
ANATOMY_CHOICES = ("template", "varied")

#: Share of the pool phantoms drawn on a varied template when ``anatomy="varied"``.
VARIED_SHARE = 0.75

#: The training data in words (copied into the model card).
LESION_DATA_RECIPE = {
    "source": "synthetic lesions (engine.data.lesions.add_lesions) in synthetic phantoms of "
              "the MNI ICBM152 2009a template; no scan of a person, no real lesion",
    "held_out_slab_k": [70, 90],
    "pool": "phantoms of the whole template (synthesize_phantom): contrast t1 35% / t2 25% / "
            "pd 20% / flair-like 20% (class means jittered x0.9-1.1), Rician noise "
            "U(1%, 8%), INU U(0, 40%), p=0.3 Gaussian blur sigma U(0, 1) mm, p=0.5 a random "
            "in-plane deformation of the anatomy",
    "lesions": "add_lesions with the pool volume's sequence: 1-8 lesions of 2-30 mm "
               "(equivalent diameter, log-uniform; default regions, oedema, T1 enhancing rim "
               "and mass effect) in 3 volumes of 4, none in the 4th; avoid_k = the held-out "
               "slab",
    "anatomy": "with --anatomy varied, p=varied_share (default 0.75) the phantom is drawn on "
               "a varied template: the "
               "blocks k<70 and k>=90 each given a new 3-D shape by "
               "engine.data.anatomy.vary_anatomy (TRAINING_VARIATION, the 'spline' field "
               "family; rotation, scaling, asymmetry, elastic warp, ventricle enlargement, "
               "cortical atrophy), the slab left as it is (it is cut out below)",
    "contrasts": "the sequence shares are the run's pool_contrasts (the pool line gives the "
                 "default)",
    "whole_heads": "with --head-fraction f > 0, that share of the pool volumes are synthetic "
                   "whole heads (engine.data.heads.synthetic_head: the run's head_contrasts, "
                   "default t1, t2 or pd, drawn uniformly; noise "
                   "U(1%, 6%), INU U(0, 40%)) with lesions as above, seen through a perturbed "
                   "intracranial mask (signed distance <= a smooth random thickness from "
                   "-1.5 to +14 mm; zero outside); the held-out slab moves with the head's "
                   "margin",
    "blocks": "the held-out slab's slices are cut out of every pool volume after the lesions "
              "are painted: two blocks k<70 and k>=90; a 2.5-D patch never spans the cut",
    "samples": "2.5-D 96x96 patches (slice and two neighbours), centred on a lesion voxel "
               "(50% when the volume has lesions), a brain voxel or anywhere (5%); rotation "
               "+-15 deg, scale 0.9-1.1, L-R flip p=0.5, shift +-6 mm",
    "normalisation": "robust_normalise (engine.core.tensors) of the whole volume without the "
                     "slab, as the predictor does at inference; then p=0.3 gamma U(0.75,1.35) "
                     "and gain U(0.9,1.1)",
}


# ---------------------------------------------------------------------------
# The pool
# ---------------------------------------------------------------------------
@dataclass
class PoolBlock:
    """One piece of a pool volume (below or above the held-out slab), cropped to the brain,
    with the voxels its patch centres are drawn from."""

    image: torch.Tensor  # (X, Y, Z) float16, normalised
    labels: torch.Tensor  # (X, Y, Z) uint8: 0..4
    brain: torch.Tensor  # (M, 3) int16: sampled brain voxels whose window fits
    lesion: torch.Tensor  # (L, 3) int16: lesion voxels whose window fits
    k_index: np.ndarray  # the volume's slice index of every plane


@dataclass
class LesionPool:
    """Pool volumes, each a list of blocks outside the held-out slab."""

    volumes: list[list[PoolBlock]]
    descriptions: list[dict[str, Any]]
    seconds: float

    @property
    def n_lesions(self) -> int:
        return sum(d["lesions"] for d in self.descriptions)


def _z_range(block: Any, a: int, b: int) -> Any:
    """The planes ``a <= k < b`` of a :class:`~engine.data.phantom.TissueBlock` (views)."""
    from .phantom import TissueBlock

    return TissueBlock(block.maps[..., a:b], block.labels[..., a:b], block.k_index[a:b],
                       tuple(block.origin), block.affine)


def varied_template(block: Any, gen: torch.Generator, held_out: tuple[int, int],
                    centres: list[Any] | None = None) -> Any:
    """*block* (the whole template) with each z range outside *held_out* given a new shape.

    The ranges ``k < held_out[0]`` and ``k >= held_out[1]`` are varied
    separately by :func:`engine.data.anatomy.vary_anatomy` (the training
    family), so nothing of the held-out slab moves into them; the slab's own
    planes are kept as they are (a lesion pool cuts them out). *centres*: the
    ranges' deep-CSF centres (:func:`template_centres`) when already known.
    """
    from .anatomy import TRAINING_VARIATION, vary_anatomy
    from .phantom import TissueBlock

    nz = block.labels.shape[2]
    k0, k1 = max(0, min(held_out[0], nz)), max(0, min(held_out[1], nz))
    centres = template_centres(block, (k0, k1)) if centres is None else centres
    maps, labels = [], []
    for n, (a, b) in enumerate(((0, k0), (k0, k1), (k1, nz))):
        part = _z_range(block, a, b)
        if n != 1 and b - a >= 8 and bool((part.labels > 0).any()):
            part = vary_anatomy(part, gen, TRAINING_VARIATION, ventricle_centre=centres[n // 2])
        maps.append(part.maps.float())
        labels.append(part.labels)
    return TissueBlock(torch.cat(maps, dim=-1).contiguous(), torch.cat(labels, dim=-1),
                       block.k_index.copy(), tuple(block.origin), block.affine.copy())


def template_centres(block: Any, held_out: tuple[int, int]) -> list[Any]:
    """Deep-CSF centres (:func:`~engine.data.anatomy.deep_csf_centre`) of the two
    ranges :func:`varied_template` varies."""
    from .anatomy import deep_csf_centre

    nz = block.labels.shape[2]
    return [deep_csf_centre(_z_range(block, a, b))
            for a, b in ((0, held_out[0]), (held_out[1], nz))]


def draw_pool_volume(index: int, seed: int, lesion_free_fraction: float,
                      block: Any, *, contrasts: dict[str, float] | None = None,
                      anatomy: str = "template", varied_share: float = VARIED_SHARE,
                      centres: list[Any] | None = None) -> tuple[Any, Any, dict[str, Any]]:
    from .lesions import add_lesions
    from .mni import HELD_OUT_SLAB
    from .phantom import synthesize_phantom

    rng = np.random.default_rng([seed, index])
    shares = POOL_CONTRASTS if contrasts is None else contrasts
    names = list(shares)
    p = np.array([shares[n] for n in names], float)
    contrast = str(rng.choice(names, p=p / p.sum()))
    base = np.array(sequence_means(contrast))
    means = base * rng.uniform(0.9, 1.1, 3)
    means = tuple(float(v) for v in means / means.max())
    noise = float(rng.uniform(0.01, 0.08))
    inu = float(rng.uniform(0.0, 0.4))
    blur = float(rng.uniform(0.0, 1.0)) if rng.uniform() < 0.3 else 0.0
    deform = bool(rng.uniform() < 0.5)
    lesion_free = bool(rng.uniform() < lesion_free_fraction)
    phantom_seed = int(rng.integers(2**31))
    lesion_seed = int(rng.integers(2**31))
    varied = False
    if anatomy == "varied":  # drawn after everything above: the template stream is unchanged
        varied = bool(rng.uniform() < varied_share)
        anatomy_seed = int(rng.integers(2**31))
        if varied:
            block = varied_template(block, torch.Generator().manual_seed(anatomy_seed),
                                    HELD_OUT_SLAB, centres)
    image, truth = synthesize_phantom(contrast if contrast != "flair" else "t1", noise=noise,
                                      inu=inu, seed=phantom_seed, blur=blur, deform=deform,
                                      means=means, block=block)
    image, labels, lesions = add_lesions(image, truth, contrast=contrast,
                                         count=0 if lesion_free else range(1, 9),
                                         seed=lesion_seed, avoid_k=HELD_OUT_SLAB)
    desc = {"contrast": contrast, "means": [round(m, 4) for m in means],
            "noise": round(noise, 4), "inu": round(inu, 4), "blur_mm": round(blur, 3),
            "deform": deform, "lesions": len(lesions),
            "sizes_mm": [round(les.equivalent_diameter_mm, 2) for les in lesions]}
    if anatomy == "varied":
        desc["varied_anatomy"] = varied
    return image, labels, desc


def is_head_volume(index: int, head_fraction: float) -> bool:
    """Whether pool volume *index* is a whole head: spread evenly, ``head_fraction`` of all."""
    return math.floor((index + 1) * head_fraction) > math.floor(index * head_fraction)


def draw_head_volume(index: int, seed: int, lesion_free_fraction: float,
                      contrasts: tuple[str, ...] = POOL_HEAD_CONTRASTS
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, dict[str, Any]]:
    """A synthetic whole head with lesions, seen through an imperfect brain mask.

    At inference the lesion network sees the image inside the voxels the tissue
    step labelled, whose outline comes from brain extraction; on whole heads
    that outline strays into the CSF rim, skull, orbits and neck (deepbet on
    T2/PD, docs/lesions.md). So the input here is the head inside a *perturbed*
    intracranial mask: the voxels whose signed distance to the true mask is at
    most a smooth random thickness (from 1.5 mm inside to 14 mm outside), zero
    elsewhere; everything outside the brain tissue is background in the target.

    Returns ``(image, labels, sample_mask, k_offset, description)``; *k_offset*
    is the head's slice index of template slice 0 (the held-out slab moves with it).
    """
    from scipy import ndimage

    from .heads import smooth_field, synthetic_head
    from .lesions import add_lesions
    from .mni import HELD_OUT_SLAB
    from .phantom import mni_tissue_block

    rng = np.random.default_rng([seed, index, 1])
    contrast = str(rng.choice(list(contrasts)))
    lesion_free = bool(rng.uniform() < lesion_free_fraction)
    head_seed = int(rng.integers(2**31))
    head = synthetic_head(contrast, seed=head_seed, noise=float(rng.uniform(0.01, 0.06)),
                          inu=float(rng.uniform(0.0, 0.4)))
    block_affine = mni_tissue_block().affine
    k_offset = round(float(block_affine[2, 3] - head.image.affine[2, 3])
                     / float(head.image.affine[2, 2]))
    slab = (HELD_OUT_SLAB[0] + k_offset, HELD_OUT_SLAB[1] + k_offset)
    image, labels, lesions = add_lesions(head.image, head.truth, contrast=contrast,
                                         count=0 if lesion_free else range(1, 9),
                                         seed=int(rng.integers(2**31)), avoid_k=slab)
    icr = np.asarray(head.intracranial, bool)
    signed = ndimage.distance_transform_edt(~icr) - ndimage.distance_transform_edt(icr)
    base = float(rng.uniform(-1.5, 6.0))
    amplitude = float(rng.uniform(0.0, 8.0))
    thick = base + amplitude * np.maximum(smooth_field(icr.shape, rng, 40.0), 0.0)
    mask = signed <= thick
    img = np.where(mask, np.asarray(image.array, np.float32), 0.0).astype(np.float32)
    lab = np.where(mask, np.asarray(labels.array), 0).astype(np.uint8)
    desc = {"contrast": contrast, "head": True, "head_seed": head_seed,
            "mask_mm": [round(base, 2), round(amplitude, 2)], "lesions": len(lesions),
            "sizes_mm": [round(les.equivalent_diameter_mm, 2) for les in lesions]}
    return img, lab, mask, k_offset, desc


def pool_blocks(image: np.ndarray, labels: np.ndarray, held_out: tuple[int, int],
               context: int, gen: torch.Generator, brain_samples: int = 40000,
               sample_mask: np.ndarray | None = None) -> list[PoolBlock]:
    """Cut the slab out, normalise without it, crop in-plane to the brain (+8 voxels).

    Patch centres are drawn from the brain (labels > 0), or from *sample_mask*
    when given (a whole head: the region the network sees)."""
    nz = image.shape[2]
    k0, k1 = held_out
    ranges = [(0, max(0, min(k0, nz))), (min(max(k1, 0), nz), nz)]
    keep = np.concatenate([np.arange(a, b) for a, b in ranges])
    # Normalise on the volume without the slab, as robust_normalise would the whole image.
    x = torch.from_numpy(np.ascontiguousarray(image[:, :, keep], dtype=np.float32))
    x = robust_normalise(torch.nan_to_num(x))
    lab_kept = labels[:, :, keep]
    where = (lab_kept > 0) if sample_mask is None else np.asarray(sample_mask)[:, :, keep]
    brain_xy = np.nonzero(where.any(axis=2))
    x0, x1 = max(0, int(brain_xy[0].min()) - 8), min(image.shape[0], int(brain_xy[0].max()) + 9)
    y0, y1 = max(0, int(brain_xy[1].min()) - 8), min(image.shape[1], int(brain_xy[1].max()) + 9)
    blocks = []
    offset = 0
    for a, b in ranges:
        n = b - a
        if n < 2 * context + 1:
            offset += n
            continue
        img = x[x0:x1, y0:y1, offset:offset + n].to(torch.float16).contiguous()
        lab = torch.from_numpy(np.ascontiguousarray(lab_kept[x0:x1, y0:y1, offset:offset + n]))
        centres = lab > 0 if sample_mask is None else torch.from_numpy(
            np.ascontiguousarray(where[x0:x1, y0:y1, offset:offset + n]))
        offset += n
        vox = torch.nonzero(centres)
        fits = (vox[:, 2] >= context) & (vox[:, 2] < n - context)
        vox = vox[fits]
        if len(vox) > brain_samples:
            vox = vox[torch.randperm(len(vox), generator=gen)[:brain_samples]]
        les = torch.nonzero(lab == 4)
        les = les[(les[:, 2] >= context) & (les[:, 2] < n - context)]
        blocks.append(PoolBlock(img, lab, vox.to(torch.int16), les.to(torch.int16),
                             np.arange(a, b)))
    for blk in blocks:
        if np.any((blk.k_index >= k0) & (blk.k_index < k1)):  # pragma: no cover - invariant
            raise AssertionError("held-out slab leaked into a lesion pool block")
    return blocks


def lesion_pool(
    n_volumes: int,
    *,
    seed: int = 0,
    lesion_free_fraction: float = 0.25,
    head_fraction: float = 0.0,
    anatomy: str = "template",
    varied_share: float = VARIED_SHARE,
    contrasts: dict[str, float] | None = None,
    head_contrasts: tuple[str, ...] = POOL_HEAD_CONTRASTS,
    context: int = 1,
    toy: bool = False,
    progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> LesionPool:
    """Draw the pool of a lesion run (see the module docstring); deterministic in *seed*.

    ``toy=True`` uses the tiny ellipsoid of :func:`~engine.data.phantom.toy_tissue_block`
    (tests): no held-out slab, lesions of 2-6 mm. ``head_fraction`` of the volumes
    are synthetic whole heads seen through a perturbed brain mask (:func:`draw_head_volume`).
    ``anatomy="varied"``: *varied_share* of the phantoms (default three of four) on a
    varied template (:func:`varied_template`); *contrasts*: sequence shares (default
    :data:`POOL_CONTRASTS`); *head_contrasts*: the whole heads' sequences, drawn
    uniformly (default :data:`POOL_HEAD_CONTRASTS`).
    """
    from .mni import HELD_OUT_SLAB
    from .phantom import mni_tissue_block, toy_tissue_block

    t0 = time.perf_counter()
    block = toy_tissue_block((64, 64, 32)) if toy else mni_tissue_block()
    held_out = (0, 0) if toy else HELD_OUT_SLAB
    gen = torch.Generator().manual_seed(int(seed) + 7)
    centres = template_centres(block, held_out) if anatomy == "varied" and not toy else None
    volumes, descriptions = [], []
    for i in range(int(n_volumes)):
        check_cancel(cancel)
        if toy:
            image, labels, desc = _toy_pool_volume(i, seed, lesion_free_fraction, block)
        elif is_head_volume(i, head_fraction):
            img, lab, mask, k_offset, desc = draw_head_volume(i, seed, lesion_free_fraction,
                                                               head_contrasts)
            volumes.append(pool_blocks(img, lab, (held_out[0] + k_offset,
                                                 held_out[1] + k_offset), context, gen,
                                      sample_mask=mask))
            descriptions.append(desc)
            report(progress, (i + 1) / n_volumes, f"lesion pool: volume {i + 1}/{n_volumes}")
            continue
        else:
            image, labels, desc = draw_pool_volume(i, seed, lesion_free_fraction, block,
                                                    contrasts=contrasts, anatomy=anatomy,
                                                    varied_share=varied_share, centres=centres)
        volumes.append(pool_blocks(image.array, labels.array, held_out, context, gen))
        descriptions.append(desc)
        report(progress, (i + 1) / n_volumes, f"lesion pool: volume {i + 1}/{n_volumes}")
    return LesionPool(volumes, descriptions, time.perf_counter() - t0)


def _toy_pool_volume(index: int, seed: int, lesion_free_fraction: float,
                     block: Any) -> tuple[Any, Any, dict[str, Any]]:
    from .lesions import add_lesions
    from .phantom import synthesize_phantom

    rng = np.random.default_rng([seed, index])
    image, truth = synthesize_phantom("t1", noise=0.02, inu=0.1, seed=int(rng.integers(1000)),
                                      block=block)
    free = bool(rng.uniform() < lesion_free_fraction)
    image, labels, lesions = add_lesions(image, truth, contrast="t1", count=0 if free else 2,
                                         sizes_mm=(3.0, 6.0), seed=int(rng.integers(1000)),
                                         regions={"white_matter": 1.0})
    return image, labels, {"contrast": "t1", "lesions": len(lesions)}


# ---------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------
class PoolSampler:
    """Draws augmented 2.5-D patches and targets from a :class:`LesionPool`."""

    def __init__(self, pool: LesionPool, gen: torch.Generator, *, crop: tuple[int, int],
                 context: int, classes: str, lesion_fraction: float) -> None:
        self.pool = pool
        self.gen = gen
        self.crop = tuple(crop)
        self.context = int(context)
        self.classes = classes
        self.lesion_fraction = float(lesion_fraction)
        self.items = [(v, b) for v, blocks in enumerate(pool.volumes)
                      for b in range(len(blocks)) if len(blocks[b].brain)]
        if not self.items:
            raise ParameterError("the lesion pool holds no brain voxel")
        weights = torch.tensor([float(len(pool.volumes[v][b].brain)) for v, b in self.items])
        self.item_prob = weights / weights.sum()

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.gen)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (n, 2c+1, P, P)`` float32 and ``y (n, P, P)`` int64."""
        c = self.context
        px, py = self.crop
        picks = torch.multinomial(self.item_prob, n, replacement=True, generator=self.gen)
        xs, ys = [], []
        for pick in picks.tolist():
            v, b = self.items[pick]
            blk = self.pool.volumes[v][b]
            nx, ny, nz = blk.labels.shape
            u = self._rand(3)
            if len(blk.lesion) and float(u[0]) < self.lesion_fraction:
                pool = blk.lesion
            else:
                pool = blk.brain
            pos = pool[int(torch.randint(len(pool), (1,), generator=self.gen))].float()
            if float(u[1]) < 0.05:
                r = self._rand(3)
                pos = torch.stack([r[0] * (nx - 1), r[1] * (ny - 1),
                                   torch.floor(c + r[2] * (nz - 2 * c)).clamp(max=nz - c - 1)])
            k = int(pos[2])
            img = blk.image[:, :, k - c:k + c + 1].permute(2, 0, 1).float()  # (2c+1, X, Y)
            lab = blk.labels[:, :, k].float()[None]
            grid = self._grid(pos[:2] + 6.0 * (2 * self._rand(2) - 1), nx, ny, px, py)
            xs.append(F.grid_sample(img[None], grid, mode="bilinear", padding_mode="zeros",
                                    align_corners=True)[0])
            ys.append(F.grid_sample(lab[None], grid, mode="nearest", padding_mode="zeros",
                                    align_corners=True)[0, 0])
        x = torch.stack(xs)
        y = torch.stack(ys).round().long()
        # intensity: p=0.3 gamma, then a gain
        r = self._rand(n, 3)
        gamma = torch.where(r[:, 0] < 0.3, 0.75 + 0.6 * r[:, 1], torch.ones(n))
        x = 1.5 * (x.clamp(0, 1.5) / 1.5) ** gamma[:, None, None, None]
        x = x * (0.9 + 0.2 * r[:, 2])[:, None, None, None]
        if self.classes == "lesion":
            y = (y == 4).long()
        return x, y

    def _grid(self, centre: torch.Tensor, nx: int, ny: int, px: int, py: int) -> torch.Tensor:
        r = self._rand(3)
        angle = (2 * float(r[0]) - 1) * math.radians(15.0)
        scale = 0.9 + 0.2 * float(r[1])
        flip = -1.0 if float(r[2]) < 0.5 else 1.0
        ca, sa = math.cos(angle), math.sin(angle)
        u = torch.arange(px, dtype=torch.float32) - (px - 1) / 2
        w = torch.arange(py, dtype=torch.float32) - (py - 1) / 2
        gu, gv = torch.meshgrid(u, w, indexing="ij")
        gu = gu * flip
        x = (ca * gu - sa * gv) / scale + centre[0]
        y = (sa * gu + ca * gv) / scale + centre[1]
        return torch.stack([y / (ny - 1) * 2 - 1, x / (nx - 1) * 2 - 1], dim=-1)[None]
