"""Random anatomy: 3-D shape variation of a tissue model.

The tissue network learned one brain's shape when it only saw the MNI
template under small in-plane warps. :func:`vary_anatomy` gives a tissue
model (a :class:`~engine.data.phantom.TissueBlock`) a new shape in 3-D, the
way a cohort differs from the template:

* **head pose**: a rotation about each axis (tilt, pitch, yaw) and a scaling
  per axis, about the brain's centre;
* **asymmetry**: one hemisphere stretched or shrunk laterally against the other;
* **large elastic deformation**: a smooth displacement field of up to
  ``elastic_mm``;
* **ventricle enlargement**: a local magnification about the centre of the deep
  CSF (the lateral ventricles grow, the tissue around them is pushed outward);
* **cortical atrophy**: part of the gray/white tissue at every CSF boundary
  becomes CSF (sulci and the outer CSF widen), inside an unchanged
  intracranial outline.

Labels are recomputed from the moved fractions by the template's rule (the
brain outline moved with the tissue; inside it, the largest fraction), so
image and truth always agree.

Two *families* of displacement field keep training and evaluation apart:
``"spline"`` (a coarse random control grid, trilinear; what training draws
from) and ``"smooth"`` (Gaussian-smoothed white noise, as in
:func:`engine.data.heads.smooth_field`; what the held-out evaluation uses,
with seeds training never draws). :func:`held_out_anatomy` is the whole
template under the ``"smooth"`` family: the held-out slab *and* a deformation
the network has never seen.

Examples
--------
>>> import torch
>>> from engine.data.phantom import toy_tissue_block
>>> block = toy_tissue_block((40, 40, 24))
>>> varied = vary_anatomy(block, torch.Generator().manual_seed(0))
>>> varied.shape == block.shape, int(varied.labels.max()) <= 3
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias

from ..core.errors import ParameterError
from .phantom import TissueBlock

__all__ = [
    "HELD_OUT_VARIATION",
    "TRAINING_VARIATION",
    "AnatomyVariation",
    "deep_csf_centre",
    "held_out_anatomy",
    "vary_anatomy",
]


@dataclass(frozen=True)
class AnatomyVariation:
    """Ranges of the random shape changes (each drawn uniformly from 0 or ±)."""

    rotation_deg: float = 15.0
    """Largest rotation about each of the three axes."""
    scale: tuple[float, float] = (0.85, 1.15)
    """Scaling range, drawn per axis."""
    asymmetry: float = 0.08
    """Largest lateral stretch (+) or shrink (-) of one hemisphere."""
    elastic_mm: float = 8.0
    """Largest displacement of the elastic field (mm)."""
    ventricles: float = 0.45
    """Largest magnification strength about the deep CSF (0.45: ventricles ~1.8x wider)."""
    atrophy: float = 1.0
    """Largest share of one erosion step of gray/white tissue turned into CSF."""
    family: str = "spline"
    """Displacement field basis: "spline" (training) or "smooth" (evaluation)."""

    def record(self) -> dict[str, object]:
        return asdict(self)


#: What training draws from (``delineo-engine train --anatomy varied``).
TRAINING_VARIATION = AnatomyVariation()
#: What the held-out evaluation uses: same ranges, the other field family.
HELD_OUT_VARIATION = AnatomyVariation(family="smooth")


def _u(gen: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand(1, generator=gen)[0])


def _field(shape: tuple[int, int, int], gen: torch.Generator, family: str) -> torch.Tensor:
    """A smooth random displacement field (3, X, Y, Z), peak |value| 1 per component."""
    if family == "spline":
        ctrl = torch.randn((1, 3, 5, 5, 5), generator=gen)
    elif family == "smooth":
        # white noise at 1/4 resolution, Gaussian-smoothed (sigma 6 coarse voxels)
        small = tuple(max(4, s // 4) for s in shape)
        noise = torch.randn((1, 3, *small), generator=gen)
        from ..core.tensors import gaussian_blur

        ctrl = gaussian_blur(noise, (6.0, 6.0, 6.0))
    else:
        raise ParameterError(f"anatomy field family {family!r}: choose spline or smooth")
    disp = F.interpolate(ctrl, size=shape, mode="trilinear", align_corners=True)[0]
    peak = disp.flatten(1).abs().max(dim=1).values.clamp_min(1e-6)
    return disp / peak[:, None, None, None]


def deep_csf_centre(block: TissueBlock) -> np.ndarray | None:
    """Voxel centre of the CSF deeper than 12 mm inside the brain (the ventricles)."""
    from scipy.ndimage import distance_transform_edt

    brain = block.labels.cpu().numpy() > 0
    if brain.sum() < 1000:
        return None
    depth = distance_transform_edt(brain)
    deep = (block.labels.cpu().numpy() == 1) & (depth > 12)
    if deep.sum() < 50:
        return None
    return np.argwhere(deep).mean(axis=0)


def vary_anatomy(block: TissueBlock, gen: torch.Generator,
                 variation: AnatomyVariation = TRAINING_VARIATION, *,
                 ventricle_centre: np.ndarray | str | None = "find") -> TissueBlock:
    """*block* with a random new shape (see the module docstring); same grid and shape.

    Parameters
    ----------
    block : TissueBlock
        Tissue fractions (CSF, GM, WM, support) and labels, 1 mm voxels.
    gen : torch.Generator
        CPU generator; every random choice comes from it.
    variation : AnatomyVariation
        Ranges of the changes.
    ventricle_centre : ndarray (3,) or None, optional
        :func:`deep_csf_centre` of *block* when already known (None: no deep
        CSF, no ventricle enlargement); found when not given.

    Returns
    -------
    TissueBlock
        The moved fractions and their labels (0 outside the moved brain outline),
        with the same ``k_index``, ``origin`` and ``affine`` (the grid is unchanged).
    """
    maps = block.maps.float().cpu()
    labels = block.labels.cpu()
    nx, ny, nz = labels.shape
    brain = labels > 0
    if not bool(brain.any()):
        raise ParameterError("the tissue block has no brain to vary")
    idx = torch.nonzero(brain).float()
    centre = idx.mean(dim=0)  # voxel = mm at 1 mm
    v = variation
    # output point p (mm from centre) -> input point: inverse pose, then displacements
    angles = [math.radians(v.rotation_deg) * _u(gen, -1, 1) for _ in range(3)]
    scales = [_u(gen, *v.scale) for _ in range(3)]
    rot = torch.eye(3)
    for axis, a in enumerate(angles):
        c, s = math.cos(a), math.sin(a)
        i, j = [k for k in range(3) if k != axis]
        r = torch.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rot = r @ rot
    inv = torch.linalg.inv(rot @ torch.diag(torch.tensor(scales)))
    gx, gy, gz = (torch.arange(n, dtype=torch.float32) for n in (nx, ny, nz))
    px, py, pz = torch.meshgrid(gx - centre[0], gy - centre[1], gz - centre[2], indexing="ij")
    p = torch.stack([px, py, pz], dim=0)  # (3, X, Y, Z), mm from the centre
    q = torch.einsum("ij,jxyz->ixyz", inv, p)
    # asymmetry: one hemisphere (x > 0 after the pose) stretched laterally by (1 + b)
    b = v.asymmetry * _u(gen, -1, 1)
    side = torch.sigmoid(q[0] / 5.0)
    q[0] = q[0] / (1.0 + b * side)
    # elastic
    amp = v.elastic_mm * _u(gen)
    q = q + amp * _field((nx, ny, nz), gen, v.family)
    # ventricles: magnification about the deep CSF (input points pulled towards it)
    vc = deep_csf_centre(block) if isinstance(ventricle_centre, str) else ventricle_centre
    a = v.ventricles * _u(gen)
    if vc is not None and a > 0:
        rel = q - (torch.from_numpy(vc).float() - centre)[:, None, None, None]
        w = torch.exp(-(rel ** 2).sum(dim=0) / (2 * 22.0 ** 2))
        q = q - a * w * rel
    # to grid_sample coordinates (input voxel = q + centre), align_corners=True
    ix = (q[0] + centre[0]) / max(nx - 1, 1) * 2 - 1
    iy = (q[1] + centre[1]) / max(ny - 1, 1) * 2 - 1
    iz = (q[2] + centre[2]) / max(nz - 1, 1) * 2 - 1
    grid = torch.stack([iz, iy, ix], dim=-1)[None]  # (1, X, Y, Z, 3): (W, H, D) order
    del p, q, px, py, pz
    out = F.grid_sample(maps[None], grid, mode="bilinear", padding_mode="zeros",
                        align_corners=True)[0]
    outline = F.grid_sample(brain[None, None].float(), grid, mode="bilinear",
                            padding_mode="zeros", align_corners=True)[0, 0] >= 0.5
    del grid
    # cortical atrophy: a share t of one erosion step of GM+WM becomes CSF
    t = v.atrophy * _u(gen)
    if t > 0:
        tissue = out[1] + out[2]
        eroded = -F.max_pool3d(-tissue[None, None], 3, stride=1, padding=1)[0, 0]
        lost = t * (tissue - eroded).clamp_min(0) * outline
        share = torch.where(tissue > 1e-6, lost / tissue.clamp_min(1e-6), torch.zeros(()))
        out[0] = out[0] + lost
        out[1] = out[1] * (1 - share)
        out[2] = out[2] * (1 - share)
    tissue_label = torch.argmax(out[:3], dim=0).to(torch.uint8) + 1
    new_labels = torch.where(outline, tissue_label, torch.zeros((), dtype=torch.uint8))
    return TissueBlock(out.contiguous(), new_labels.contiguous(), block.k_index.copy(),
                       tuple(block.origin), block.affine.copy())


def held_out_anatomy(seed: int, variation: AnatomyVariation = HELD_OUT_VARIATION
                     ) -> TissueBlock:
    """The whole MNI template (held-out slab included) with a held-out deformation.

    *seed* selects the deformation; the generator is offset so that no seed of
    a training run draws the same stream, and the ``"smooth"`` field family is
    one training never uses.
    """
    from .phantom import mni_tissue_block

    gen = torch.Generator().manual_seed(10_000_019 + int(seed))
    return vary_anatomy(mni_tissue_block(), gen, variation)
