"""Synthetic brain MRI phantoms from the fuzzy tissue maps of the MNI template.

The recipe follows BrainWeb (a fuzzy tissue model rendered into an image)
and SynthSeg (randomise everything the network must not depend on):

1. **Tissue model.** Per-voxel fractions of CSF, GM and WM (the MNI ICBM152
   2009a maps; CSF is brain minus GM minus WM) and the template's support
   (where the template T1 is non-zero), with the ground-truth labels of
   :func:`engine.data.mni.build_ground_truth`.
2. **Spatial augmentation** (training): in-plane rotation, scaling, left-right
   flips and a smooth elastic displacement, applied to the fractions
   (linear) and the labels (nearest) with one sampling grid. The
   displacement has no through-plane component, so axial slices never mix.
3. **Contrast.** ``image = sum_c fraction_c * mean_c`` with T1-like, T2-like,
   PD-like or random (well separated) class means; background is air (0).
4. **Resolution.** Gaussian blur (:func:`engine.core.tensors.gaussian_blur`)
   and/or a lower resolution along one axis (down-sampled and interpolated back).
5. **Intensity non-uniformity** (INU, :mod:`engine.data.fields`): a smooth
   multiplicative field ``1 + a/2 * f`` with ``f`` spanning [-1, 1] over the
   brain, so that an INU of ``a`` (e.g. 0.2 for "20 %") is the field's
   peak-to-peak range.
6. **Rician noise** with standard deviation ``noise * brightest tissue mean``
   (BrainWeb's convention: "3 %" noise is ``0.03`` of the brightest tissue).

Intensity augmentation never touches the labels.

**Held-out protocol.** Training data come from :func:`training_blocks`, which
cuts the template into the z ranges *outside* ``HELD_OUT_SLAB`` before any
processing: no voxel with ``k`` in ``[70, 90)`` enters a training tensor.

Examples
--------
>>> image, truth = synthesize_phantom("t1", noise=0.03, inu=0.2, seed=0)  # doctest: +SKIP
>>> image.shape, truth.array.max()                                       # doctest: +SKIP
((197, 233, 189), 3)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias

from ..core.tensors import gaussian_blur
from ..core.volume import BRAIN_TISSUE_LABELS, LabelMap, Volume
from .contrasts import CONTRAST_MEANS, CONTRASTS, FLAIR_MEANS, sequence_means
from .fields import inu_field

__all__ = [
    "CONTRASTS",
    "CONTRAST_MEANS",
    "FLAIR_MEANS",
    "TissueBlock",
    "add_rician_noise",
    "coarser_voxels",
    "deform_inplane",
    "lower_resolution",
    "mni_tissue_block",
    "random_contrast_means",
    "render",
    "sequence_means",
    "synthesize_phantom",
    "toy_tissue_block",
    "training_blocks",
]

log = logging.getLogger(__name__)

#: Channel order of a tissue block's ``maps``.
MAP_CHANNELS = ("csf", "gm", "wm", "support")


@dataclass
class TissueBlock:
    """Tissue fractions and labels on a box of the 1 mm template grid.

    Attributes
    ----------
    maps : Tensor (4, X, Y, Z)
        Fractions of CSF, GM, WM and the template support (0/1), float32.
    labels : Tensor (X, Y, Z)
        Ground truth 0/1/2/3 (uint8).
    k_index : ndarray (Z,)
        Template-file slice index ``k`` of every z plane of the block -- the
        audit trail of the held-out protocol.
    origin : tuple of int
        Template voxel index of the block's first voxel.
    affine : ndarray (4, 4)
        Voxel-to-world affine of the block.
    """

    maps: torch.Tensor
    labels: torch.Tensor
    k_index: np.ndarray
    origin: tuple[int, int, int]
    affine: np.ndarray

    def to(self, device: torch.device | str) -> TissueBlock:
        return TissueBlock(self.maps.to(device), self.labels.to(device), self.k_index,
                           self.origin, self.affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.labels.shape)  # type: ignore[return-value]


def _mni_arrays() -> tuple[Volume, np.ndarray, np.ndarray]:
    from .mni import build_ground_truth, load_tissue_maps

    t1, maps = load_tissue_maps()
    stack = np.stack([maps["csf"], maps["gm"], maps["wm"],
                      (t1.array > 0).astype(np.float32)]).astype(np.float32)
    return t1, stack, build_ground_truth(maps["gm"], maps["wm"])


def mni_tissue_block() -> TissueBlock:
    """The whole template (197 x 233 x 189) as one :class:`TissueBlock`."""
    t1, stack, labels = _mni_arrays()
    return TissueBlock(torch.from_numpy(stack), torch.from_numpy(labels),
                       np.arange(labels.shape[2]), (0, 0, 0), t1.affine.copy())


def training_blocks(
    held_out: tuple[int, int] | None = None,
    *,
    crop: tuple[int, int] | None = (176, 208),
    source: TissueBlock | None = None,
) -> list[TissueBlock]:
    """The template cut into the z ranges outside the held-out slab.

    Parameters
    ----------
    held_out : (k0, k1), optional
        Slab of slice indices never to use; default
        :data:`engine.data.mni.HELD_OUT_SLAB`.
    crop : (nx, ny), optional
        In-plane size of the box kept around the brain's bounding box
        (padded with air where the template is smaller).
    source : TissueBlock, optional
        Tissue model to cut (default: the MNI template).

    Returns
    -------
    list of TissueBlock
        One block per contiguous z range outside the slab (two for the MNI
        template). The slab's planes are dropped *before* any copy is made.
    """
    if held_out is None:
        from .mni import HELD_OUT_SLAB

        held_out = HELD_OUT_SLAB
    src = source if source is not None else mni_tissue_block()
    k0, k1 = held_out
    nz = src.shape[2]
    ranges = [(0, max(0, min(k0, nz))), (min(max(k1, 0), nz), nz)]
    blocks = []
    brain = src.labels > 0
    if crop is not None:
        nx, ny = crop
        xs = torch.nonzero(brain.any(dim=2).any(dim=1)).flatten()
        ys = torch.nonzero(brain.any(dim=2).any(dim=0)).flatten()
        cx = (int(xs.min()) + int(xs.max()) + 1) // 2
        cy = (int(ys.min()) + int(ys.max()) + 1) // 2
        x0, y0 = cx - nx // 2, cy - ny // 2
    for z0, z1 in ranges:
        if z1 - z0 < 3:
            continue
        maps = src.maps[:, :, :, z0:z1]
        labels = src.labels[:, :, z0:z1]
        origin = [src.origin[0], src.origin[1], src.origin[2] + z0]
        if crop is not None:
            maps = _crop_pad(maps, x0, y0, nx, ny)
            labels = _crop_pad(labels[None], x0, y0, nx, ny)[0]
            origin[0] += x0
            origin[1] += y0
        affine = src.affine.copy()
        affine[:3, 3] = src.affine[:3, :3] @ np.array(origin, float) + src.affine[:3, 3] \
            - src.affine[:3, :3] @ np.array(src.origin, float)
        blocks.append(TissueBlock(maps.contiguous().clone(), labels.contiguous().clone(),
                                  src.k_index[z0:z1].copy(), tuple(origin), affine))
    for b in blocks:
        if np.any((b.k_index >= k0) & (b.k_index < k1)):  # pragma: no cover - invariant
            raise AssertionError("held-out slab leaked into a training block")
    return blocks


def _crop_pad(t: torch.Tensor, x0: int, y0: int, nx: int, ny: int) -> torch.Tensor:
    """``t[:, x0:x0+nx, y0:y0+ny]`` with zero padding outside."""
    out = torch.zeros((t.shape[0], nx, ny, *t.shape[3:]), dtype=t.dtype)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + nx, t.shape[1]), min(y0 + ny, t.shape[2])
    out[:, sx0 - x0:sx1 - x0, sy0 - y0:sy1 - y0] = t[:, sx0:sx1, sy0:sy1]
    return out


def toy_tissue_block(shape: tuple[int, int, int] = (48, 48, 24)) -> TissueBlock:
    """A tiny ellipsoidal "brain" (WM core, GM shell, CSF rim) for fast tests."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    r = np.sqrt((grid**2).sum(axis=0))
    wobble = 0.05 * np.sin(6 * np.arctan2(grid[1], grid[0]))
    wm = np.clip((0.45 + wobble - r) / 0.06 + 0.5, 0, 1)
    inside = np.clip((0.75 + wobble - r) / 0.06 + 0.5, 0, 1)
    brain = np.clip((0.9 - r) / 0.06 + 0.5, 0, 1)
    gm = np.clip(inside - wm, 0, 1)
    csf = np.clip(brain - inside, 0, 1)
    stack = np.stack([csf, gm, wm, (brain > 0).astype(float)]).astype(np.float32)
    tissue = np.argmax(stack[:3], axis=0) + 1
    labels = np.where(brain >= 0.5, tissue, 0).astype(np.uint8)
    return TissueBlock(torch.from_numpy(stack), torch.from_numpy(labels),
                       np.arange(shape[2]), (0, 0, 0), np.eye(4))


# ---------------------------------------------------------------------------
# Contrast, noise, resolution and deformation (torch, any device, 2-D or 3-D)
# ---------------------------------------------------------------------------
def _uniform(n: int, lo: float, hi: float, gen: torch.Generator | None,
             device: torch.device | str) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def random_contrast_means(
    n: int,
    gen: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    *,
    min_gap: float = 0.12,
) -> torch.Tensor:
    """``(n, 3)`` random CSF/GM/WM means in [0.05, 1], pairwise at least *min_gap* apart.

    The brightest of the three is scaled to 1.
    """
    out = torch.empty(n, 3, device=device)
    filled = 0
    while filled < n:
        cand = _uniform(64 * 3, 0.05, 1.0, gen, device).view(64, 3)
        s = cand.sort(dim=1).values
        ok = ((s[:, 1] - s[:, 0]) >= min_gap) & ((s[:, 2] - s[:, 1]) >= min_gap)
        good = cand[ok][: n - filled]
        out[filled:filled + len(good)] = good
        filled += len(good)
    return out / out.max(dim=1, keepdim=True).values


def render(fractions: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Fuzzy tissue model: ``sum_c fractions[:, c] * means[:, c]``.

    Parameters
    ----------
    fractions : Tensor (B, 3, ...)
        CSF, GM, WM fractions.
    means : Tensor (B, 3)
    """
    shape = (means.shape[0], 3) + (1,) * (fractions.dim() - 2)
    return (fractions * means.view(shape)).sum(dim=1, keepdim=True)


def add_rician_noise(
    image: torch.Tensor, sigma: torch.Tensor | float, gen: torch.Generator | None = None
) -> torch.Tensor:
    """Magnitude of the image plus complex Gaussian noise of std *sigma* (per sample)."""
    b = image.shape[0]
    s = torch.as_tensor(sigma, dtype=image.dtype, device=image.device).reshape(-1).expand(b)
    s = s.reshape((b,) + (1,) * (image.dim() - 1))
    n1 = torch.randn(image.shape, generator=gen, device=image.device, dtype=image.dtype)
    n2 = torch.randn(image.shape, generator=gen, device=image.device, dtype=image.dtype)
    return torch.sqrt((image + s * n1) ** 2 + (s * n2) ** 2)


def lower_resolution(image: torch.Tensor, axis: int, factor: float) -> torch.Tensor:
    """Simulate thicker voxels along spatial *axis*: area down-sampling, linear back."""
    factors = [1.0] * (image.dim() - 2)
    factors[axis] = factor
    return coarser_voxels(image, factors)


def coarser_voxels(image: torch.Tensor, factors: Sequence[float]) -> torch.Tensor:
    """Simulate voxels *factors* times larger along each spatial axis of ``(N, C, ...)``.

    Every spatial axis with a factor above 1 is area down-sampled to
    ``round(n / factor)`` samples (at least 2) and the whole image is brought
    back to its grid by (bi/tri)linear interpolation -- what a scan acquired
    on the coarser grid looks like once resampled to the fine one.
    """
    spatial = list(image.shape[2:])
    if len(factors) != len(spatial) or len(spatial) not in (2, 3):
        raise ValueError(f"{len(factors)} factors for {len(spatial)} spatial axes")
    small = [max(2, round(n / f)) if f > 1.0 else n for n, f in zip(spatial, factors, strict=True)]
    if small == spatial:
        return image
    mode = "bilinear" if len(spatial) == 2 else "trilinear"
    down = F.interpolate(image, size=small, mode="area")
    return F.interpolate(down, size=spatial, mode=mode, align_corners=False)


def deform_inplane(
    maps: torch.Tensor,
    labels: torch.Tensor,
    gen: torch.Generator | None = None,
    *,
    out_size: tuple[int, int] | None = None,
    max_rotation_deg: float = 15.0,
    scale_range: tuple[float, float] = (0.88, 1.12),
    flip: bool = True,
    elastic_mm: float = 3.0,
    shift_mm: float = 8.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random in-plane affine + elastic deformation of a block, slice-preserving.

    Every axial plane is resampled in its own plane only: the displacement
    has no z component (it may vary smoothly with z), so no voxel moves from
    one slice to another.

    Parameters
    ----------
    maps : Tensor (C, X, Y, Z)
    labels : Tensor (X, Y, Z)
    out_size : (nx, ny), optional
        In-plane size of the output (default: the input's), centred.

    Returns
    -------
    maps, labels : Tensors (C, nx, ny, Z) and (nx, ny, Z) (labels uint8)
    """
    dev = maps.device
    _, nx, ny, nz = maps.shape
    ox, oy = out_size or (nx, ny)
    r = _uniform(4, 0, 1, gen, dev)
    angle = math.radians(max_rotation_deg) * (2 * float(r[0]) - 1)
    scale = scale_range[0] + (scale_range[1] - scale_range[0]) * float(r[1])
    sx = -1.0 if flip and float(r[2]) < 0.5 else 1.0
    # output voxel (mm, centred) -> input voxel (mm, centred)
    ca, sa = math.cos(angle), math.sin(angle)
    mat = torch.tensor([[ca * sx, -sa], [sa * sx, ca]], device=dev) / scale
    shift = shift_mm * (2 * _uniform(2, 0, 1, gen, dev) - 1)
    gx = torch.arange(ox, device=dev, dtype=torch.float32) - (ox - 1) / 2
    gy = torch.arange(oy, device=dev, dtype=torch.float32) - (oy - 1) / 2
    px, py = torch.meshgrid(gx, gy, indexing="ij")
    pts = torch.stack([px, py], dim=-1) @ mat.T + shift  # (ox, oy, 2) in input mm
    pts = pts[:, :, None, :].expand(ox, oy, nz, 2)
    if elastic_mm > 0:
        ctrl = torch.randn((1, 2, 5, 5, 3), generator=gen, device=dev)
        disp = F.interpolate(ctrl, size=(ox, oy, nz), mode="trilinear", align_corners=True)
        disp = disp[0].permute(1, 2, 3, 0)
        amp = elastic_mm * float(_uniform(1, 0, 1, gen, dev)[0]) / 2.0
        pts = pts + amp * disp
    # to grid_sample's normalised coordinates (align_corners=True): -1..1 over the input
    ix = (pts[..., 0] + (nx - 1) / 2) / (nx - 1) * 2 - 1
    iy = (pts[..., 1] + (ny - 1) / 2) / (ny - 1) * 2 - 1
    iz = torch.linspace(-1, 1, nz, device=dev).view(1, 1, nz).expand(ox, oy, nz)
    # grid_sample wants (x, y, z) = (last, middle, first) spatial axes of (D, H, W)
    grid = torch.stack([iz, iy, ix], dim=-1)[None]  # (1, ox, oy, nz, 3)
    out_maps = F.grid_sample(maps[None], grid, mode="bilinear", padding_mode="zeros",
                             align_corners=True)[0]
    out_lab = F.grid_sample(labels[None, None].float(), grid, mode="nearest",
                            padding_mode="zeros", align_corners=True)[0, 0]
    return out_maps, out_lab.round().to(torch.uint8)


# ---------------------------------------------------------------------------
# One phantom, as a volume (the `synth` command and evaluation sets)
# ---------------------------------------------------------------------------
def synthesize_phantom(
    contrast: str = "t1",
    *,
    noise: float = 0.03,
    inu: float = 0.2,
    seed: int = 0,
    blur: float = 0.0,
    deform: bool = False,
    means: tuple[float, float, float] | None = None,
    block: TissueBlock | None = None,
) -> tuple[Volume, LabelMap]:
    """One phantom on the template grid, with its ground truth.

    Parameters
    ----------
    contrast : {"t1", "t2", "pd", "random"}
        Class means of :data:`CONTRAST_MEANS`, or random well-separated means.
    noise : float
        Rician noise std as a fraction of the brightest tissue mean (0.03 = 3 %).
    inu : float
        Peak-to-peak range of the multiplicative INU field over the brain (0.2 = 20 %).
    seed : int
        Seed of every random choice (field, noise, contrast, deformation).
    blur : float
        Gaussian blur sigma in mm (0 = none).
    deform : bool
        Apply a random in-plane deformation (then the slab protocol no longer
        maps voxel to voxel).
    means : (csf, gm, wm), optional
        Explicit class means (override *contrast*).
    block : TissueBlock, optional
        Tissue model (default: the whole MNI template).

    Returns
    -------
    image : Volume
        float32 intensities (brightest tissue mean = 1000) on the block's grid.
    truth : LabelMap
        0 background, 1 CSF, 2 GM, 3 WM.
    """
    if contrast not in CONTRASTS and means is None:
        from ..core.errors import ParameterError, unknown_name

        raise ParameterError(unknown_name("contrast", contrast, CONTRASTS))
    gen = torch.Generator().manual_seed(int(seed))
    src = block if block is not None else mni_tissue_block()
    maps, labels = src.maps, src.labels
    if deform:
        maps, labels = deform_inplane(maps, labels, gen)
    if means is not None:
        mu = torch.tensor([means], dtype=torch.float32)
    elif contrast == "random":
        mu = random_contrast_means(1, gen)
    else:
        mu = torch.tensor([CONTRAST_MEANS[contrast]], dtype=torch.float32)
    img = render(maps[None, :3], mu)
    if blur > 0:
        img = gaussian_blur(img, (blur,) * (img.dim() - 2))
    brain = (labels > 0)[None, None]
    img = img * inu_field(img, inu, gen, mask=brain)
    img = add_rician_noise(img, noise * float(mu.max()), gen)
    array = (img[0, 0] * 1000.0).numpy().astype(np.float32)
    desc = (f"Delineo phantom: contrast={contrast} noise={noise * 100:g}% inu={inu * 100:g}% "
            f"blur={blur:g}mm seed={seed}{' deformed' if deform else ''}")
    image = Volume(array, src.affine.copy(), modality="MR",
                   metadata={"description": desc,
                             "phantom": {"contrast": contrast, "noise": noise, "inu": inu,
                                         "blur_mm": blur, "seed": seed, "deform": deform,
                                         "means": [float(v) for v in mu[0]]}})
    truth = LabelMap(labels.numpy().astype(np.uint8), src.affine.copy(),
                     labels=BRAIN_TISSUE_LABELS, metadata={"description": desc + " (truth)"})
    return image, truth
