"""Training samples: 2.5-D patches synthesised on the fly from tissue blocks.

:class:`SliceSynthesizer` draws every training batch of
:func:`engine.models.training.train` fresh (no data set on disk): patches of
:func:`engine.data.phantom.training_blocks` -- the template *without* the
held-out slab -- deformed in-plane, rendered with a random contrast, blur or
lower resolution, an INU field (:mod:`engine.data.fields`, Legendre basis)
and Rician noise, then scaled as the whole volume would be at inference
(:func:`engine.core.tensors.robust_scale`). :data:`DATA_RECIPE` states every
range in words; it is copied into the model card of every trained network.

Examples
--------
>>> import torch
>>> from engine.data.phantom import toy_tissue_block, training_blocks
>>> blocks = training_blocks((8, 12), crop=None, source=toy_tissue_block((32, 32, 20)))
>>> synth = SliceSynthesizer(blocks, torch.device("cpu"), torch.Generator().manual_seed(0),
...                          crop=(16, 16))
>>> x, y = synth.batch(4)
>>> tuple(x.shape), tuple(y.shape), y.dtype
((4, 3, 16, 16), (4, 16, 16), torch.int64)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias

from ..core.errors import ParameterError
from ..core.tensors import gaussian_blur, robust_scale
from .fields import (
    field_span,
    inu_multiplier,
    legendre_basis,
    legendre_coefficients,
    polynomial_field,
)
from .phantom import (
    CONTRAST_MEANS,
    TissueBlock,
    add_rician_noise,
    coarser_voxels,
    lower_resolution,
    random_contrast_means,
)

__all__ = ["DATA_RECIPE", "VOLUME_RESOLUTION_RECIPE", "SliceSynthesizer"]

#: The training data in words (stored in every model card's ``training.data_recipe``).
DATA_RECIPE = {
    "source": "MNI ICBM152 2009a GM/WM maps (nilearn 0.14.1 wheel); CSF = brain - GM - WM",
    "held_out_slab_k": [70, 90],
    "blocks": "template cut into k<70 and k>=90 before any processing; in-plane crop 176x208",
    "samples": "2.5-D 96x96 patches: centre slice and its two neighbours, all inside one "
               "block; centre on a random brain voxel (90%) or anywhere (10%), +-6 mm jitter",
    "spatial": "in-plane rotation +-15 deg, scale 0.88-1.12, L-R flip p=0.5, elastic "
               "(5x5 control grid, up to ~3 mm)",
    "contrast": "t1 35% / t2 20% / pd 15% (means jittered x0.9-1.1) / random 30% "
                "(CSF, GM, WM means in [0.05, 1], pairwise gap >= 0.12)",
    "support_mask": "p=0.5: image multiplied by the template support (T1 > 0)",
    "resolution": "p=0.5 in-plane Gaussian blur sigma U(0,1) mm per axis; p=0.25 lower "
                  "resolution x U(1.5,3) along one in-plane axis",
    "inu": "Legendre polynomial field of degree <= 3 over the block, peak-to-peak U(0, 0.5) "
           "over the brain",
    "noise": "Rician, std U(0, 0.10) of the brightest tissue mean",
    "normalisation": "the scale robust_normalise (engine.core.tensors) finds on the whole block "
                     "(estimated on 32,768 fixed random voxels rendered alike), then p=0.3 "
                     "gamma U(0.75,1.35) and gain U(0.9,1.1)",
}

#: Whole-volume resolution simulation in words (added to a card's recipe when it is used).
VOLUME_RESOLUTION_RECIPE = (
    "p={p:g}: the rendered, noisy image (the 2.5-D window and {m} slices either side) is "
    "area down-sampled along all three axes and brought back to 1 mm linearly, as a scan "
    "on a coarser grid is at inference: half of them isotropic x U(1.5,3), half thick "
    "along one axis (either in-plane axis or across slices) x U(2,4)")

#: Slices either side of the 2.5-D window rendered for the whole-volume resolution
#: simulation (a factor of 4 across slices still has three coarse samples in the stack).
VOLUME_MARGIN = 4


class SliceSynthesizer:
    """Draws batches of synthetic 2.5-D patches and labels from tissue blocks.

    Each sample: a centre voxel (90 % inside the brain) whose whole 2.5-D
    window lies in one block; a random in-plane rotation/scaling/flip/elastic
    sampling grid around it; rendering with a random contrast, optional
    support mask, in-plane blur or lower resolution, a smooth polynomial INU
    field defined over the whole block (peak-to-peak ``U(0, 0.5)`` over the
    brain) and Rician noise; then the *whole-volume* normalisation of
    :func:`engine.core.tensors.robust_normalise`, whose percentiles are computed
    on a fixed random sample of 32,768 voxels of the block rendered with the
    same contrast, field and noise -- so a patch is scaled as the whole
    volume would be at inference.

    Parameters
    ----------
    blocks : list of TissueBlock
        Tissue models that may be used (none may hold held-out voxels).
    device : torch.device
    generator : torch.Generator
        On *device*; every random choice comes from it.
    crop : (nx, ny)
        Patch size.
    context : int
        Neighbouring slices on each side.
    volume_resolution : float
        Probability that a sample is also seen as on a coarser grid in all
        three directions (:data:`VOLUME_RESOLUTION_RECIPE`); 0 (the default)
        draws exactly the samples of a synthesizer without it.
    """

    def __init__(self, blocks: list[TissueBlock], device: torch.device,
                 generator: torch.Generator, *, crop: tuple[int, int] = (96, 96),
                 context: int = 1, proxy_voxels: int = 32768,
                 volume_resolution: float = 0.0) -> None:
        if not 0.0 <= volume_resolution <= 1.0:
            raise ParameterError("the volume resolution probability must lie in [0, 1]")
        self.blocks = [b.to(device) for b in blocks]
        self.device = device
        self.gen = generator
        self.crop = tuple(crop)
        self.context = int(context)
        self.volume_resolution = float(volume_resolution)
        self.margin = VOLUME_MARGIN if self.volume_resolution > 0 else 0
        self.proxy_voxels = int(proxy_voxels)
        self.brain_voxels: list[torch.Tensor] = []
        self.proxy: list[dict[str, torch.Tensor]] = []
        self._sizes: list[float] = []
        local = torch.Generator().manual_seed(12345)  # fixed proxy sample, not the run's RNG
        for b in self.blocks:
            vox, proxy, size = self._prepare(b, local)
            self.brain_voxels.append(vox)
            self.proxy.append(proxy)
            self._sizes.append(size)
        self._update_probabilities()

    def _prepare(self, b: TissueBlock, local: torch.Generator
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor], float]:
        """Usable centre voxels, the normalisation proxy and the weight of one block."""
        nx, ny, nz = b.shape
        if nz < 2 * self.context + 1:
            raise ParameterError("a tissue block is too thin for the 2.5-D window")
        vox = torch.nonzero(b.labels > 0)
        ok = (vox[:, 2] >= self.context) & (vox[:, 2] < nz - self.context)
        if not bool(ok.any()):
            return vox[ok], {}, 0.0
        # proxy of the whole block inside its head box, as the predictor would crop it
        lo, hi = vox.min(dim=0).values, vox.max(dim=0).values + 1
        lo = (lo - 6).clamp_min(0).cpu()
        hi = torch.minimum(hi.cpu() + 6, torch.tensor([nx, ny, nz]))
        pts = lo + (torch.rand(self.proxy_voxels, 3, generator=local) * (hi - lo)).long()
        pts = pts.to(self.device)
        frac = b.maps[:, pts[:, 0], pts[:, 1], pts[:, 2]].T  # (n, 4)
        brain = b.labels[pts[:, 0], pts[:, 1], pts[:, 2]] > 0
        basis = legendre_basis(self._norm_coords(pts.float(), b))
        proxy = {"frac": frac[:, :3].contiguous(), "support": frac[:, 3] > 0.5,
                 "basis": basis, "basis_brain": basis[brain].contiguous()}
        return vox[ok], proxy, float(ok.sum())

    def _update_probabilities(self) -> None:
        weights = torch.tensor(self._sizes)
        if float(weights.sum()) == 0:
            raise ParameterError("no brain voxel usable for training")
        self.block_prob = (weights / weights.sum()).to(self.device)

    def replace_block(self, index: int, block: TissueBlock) -> None:
        """Use *block* instead of block *index* from the next batch on (a varied anatomy)."""
        b = block.to(self.device)
        # the proxy's positions depend on nothing but the block: a resumed run rebuilds it alike
        vox, proxy, size = self._prepare(b, torch.Generator().manual_seed(12345))
        self.blocks[index] = b
        self.brain_voxels[index] = vox
        self.proxy[index] = proxy
        self._sizes[index] = size
        self._update_probabilities()

    def add_block(self, block: TissueBlock) -> int:
        """Append *block*; returns its index."""
        self.blocks.append(block.to(self.device))
        self.brain_voxels.append(torch.zeros((0, 3), dtype=torch.long, device=self.device))
        self.proxy.append({})
        self._sizes.append(0.0)
        self.replace_block(len(self.blocks) - 1, block)
        return len(self.blocks) - 1

    @staticmethod
    def _norm_coords(pts: torch.Tensor, block: TissueBlock) -> torch.Tensor:
        size = torch.tensor(block.shape, device=pts.device, dtype=torch.float32)
        return pts / (size - 1).clamp_min(1) * 2 - 1

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.gen, device=self.device)

    def _means(self, n: int) -> torch.Tensor:
        u = self._rand(n)
        rnd = random_contrast_means(n, self.gen, self.device)
        table = torch.tensor([CONTRAST_MEANS["t1"], CONTRAST_MEANS["t2"], CONTRAST_MEANS["pd"]],
                             device=self.device)
        kind = (u >= 0.65).long() + (u >= 0.85).long()
        fixed = table[kind] * (0.9 + 0.2 * self._rand(n, 3))
        fixed = fixed / fixed.max(dim=1, keepdim=True).values
        return torch.where((u < 0.30)[:, None], rnd, fixed)

    def _grids(self, n: int, centres: torch.Tensor, block: TissueBlock) -> torch.Tensor:
        """Sampling grids ``(n, P, P, 2)`` (grid_sample convention) around *centres* (n, 2)."""
        px, py = self.crop
        nx, ny, _ = block.shape
        r = self._rand(n, 3)
        angle = (2 * r[:, 0] - 1) * math.radians(15.0)
        scale = 0.88 + 0.24 * r[:, 1]
        flip = torch.where(r[:, 2] < 0.5, -1.0, 1.0)
        ca, sa = torch.cos(angle), torch.sin(angle)
        u = torch.arange(px, device=self.device, dtype=torch.float32) - (px - 1) / 2
        v = torch.arange(py, device=self.device, dtype=torch.float32) - (py - 1) / 2
        gu, gv = torch.meshgrid(u, v, indexing="ij")
        gu = gu[None] * flip[:, None, None]
        gv = gv[None]
        s = scale[:, None, None]
        x = (ca[:, None, None] * gu - sa[:, None, None] * gv) / s
        y = (sa[:, None, None] * gu + ca[:, None, None] * gv) / s
        ctrl = torch.randn((n, 2, 5, 5), generator=self.gen, device=self.device)
        disp = F.interpolate(ctrl, size=(px, py), mode="bicubic", align_corners=True)
        amp = (1.5 * self._rand(n))[:, None, None]  # up to ~3 mm
        x = x + centres[:, 0, None, None] + amp * disp[:, 0]
        y = y + centres[:, 1, None, None] + amp * disp[:, 1]
        # grid_sample on (n, C, X, Y): last grid coordinate indexes Y (width), first X
        return torch.stack([y / (ny - 1) * 2 - 1, x / (nx - 1) * 2 - 1], dim=-1)

    def _normaliser(self, proxy: dict[str, torch.Tensor], mu: torch.Tensor,
                    coeffs: torch.Tensor, amp: torch.Tensor,
                    span: tuple[torch.Tensor, torch.Tensor],
                    sigma: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Scale robust_normalise would find on the whole block rendered this way (n,)."""
        vals = proxy["frac"] @ mu.T  # (m, n)
        vals = vals.T * torch.where(masked[:, None], proxy["support"][None].float(), 1.0)
        vals = vals * inu_multiplier(coeffs @ proxy["basis"].T, amp, span)  # (n, m)
        vals = add_rician_noise(vals, sigma, self.gen)
        scales = [robust_scale(row) for row in vals]
        return torch.stack(scales).clamp_min(1e-6)

    def batch(self, batch_size: int, volumes: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, 2c+1, P, P)`` and ``y (B, P, P)`` (int64).

        *volumes* is accepted for compatibility; every sample is independent.
        """
        del volumes
        counts = torch.bincount(
            torch.multinomial(self.block_prob, batch_size, replacement=True,
                              generator=self.gen), minlength=len(self.blocks))
        xs, ys = [], []
        for bi, n in enumerate(counts.tolist()):
            if n:
                x, y = self._block_batch(bi, n)
                xs.append(x)
                ys.append(y)
        return torch.cat(xs), torch.cat(ys)

    def _block_batch(self, bi: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        block, proxy = self.blocks[bi], self.proxy[bi]
        nx, ny, nz = block.shape
        c = self.context
        vox = self.brain_voxels[bi]
        pick = vox[torch.randint(len(vox), (n,), generator=self.gen, device=self.device)]
        anywhere = self._rand(n) < 0.1
        uni = self._rand(n, 3)
        rand_pos = torch.stack([uni[:, 0] * (nx - 1), uni[:, 1] * (ny - 1),
                                c + (uni[:, 2] * (nz - 2 * c)).floor().clamp(max=nz - 2 * c - 1)],
                               dim=1)
        pos = torch.where(anywhere[:, None], rand_pos, pick.float())
        ks = pos[:, 2].long()
        centres = pos[:, :2] + 6.0 * (2 * self._rand(n, 2) - 1)
        grid = self._grids(n, centres, block)
        # the 2.5-D window and, for the volume resolution simulation, m slices either side
        # (repeated at the block's ends: a block never reaches into the held-out slab)
        m = self.margin
        width = 2 * (c + m) + 1
        offsets = torch.arange(-c - m, c + m + 1, device=self.device)
        window = (ks[:, None] + offsets[None]).clamp(0, nz - 1)  # (n, width)
        # (n, 4, width, X, Y) -> (n, 4*width, X, Y)
        src = block.maps.permute(3, 0, 1, 2)[window].permute(0, 2, 1, 3, 4)
        src = src.reshape(n, -1, nx, ny)
        maps = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=True).view(n, 4, width, *self.crop)
        lab = block.labels.permute(2, 0, 1)[ks][:, None].float()
        labels = F.grid_sample(lab, grid, mode="nearest", padding_mode="zeros",
                               align_corners=True)[:, 0].round().long()
        # contrast, support mask
        mu = self._means(n)
        img = (maps[:, :3] * mu[:, :, None, None, None]).sum(dim=1)  # (n, width, P, P)
        masked = self._rand(n) < 0.5
        img = torch.where(masked[:, None, None, None], img * (maps[:, 3] > 0.5), img)
        # in-plane blur / lower resolution
        sig = self._rand(n, 2) * (self._rand(n, 1) < 0.5)
        for i in range(n):
            if float(sig[i].max()) > 0.05:
                img[i:i + 1] = gaussian_blur(img[i:i + 1], (float(sig[i, 0]), float(sig[i, 1])))
        low = self._rand(n, 3)
        for i in range(n):
            if float(low[i, 0]) < 0.25:
                img[i:i + 1] = lower_resolution(img[i:i + 1], int(low[i, 1] < 0.5),
                                                1.5 + 1.5 * float(low[i, 2]))
        # INU: polynomial field over the block, normalised over the proxy's brain voxels
        coeffs = legendre_coefficients(n, self.gen, self.device)
        span = field_span(coeffs @ proxy["basis_brain"].T)
        amp = 0.5 * self._rand(n)
        gx = (grid[..., 1] + 1) / 2 * (nx - 1)
        gy = (grid[..., 0] + 1) / 2 * (ny - 1)
        coords = []
        for o in range(width):
            gz = (ks[:, None, None].float() + o - c - m).expand_as(gx)
            pts = torch.stack([gx, gy, gz], dim=-1)
            coords.append(self._norm_coords(pts, block))
        field = torch.stack([polynomial_field(cc, coeffs) for cc in coords], dim=1)
        img = img * inu_multiplier(field, amp, span)
        sigma = 0.10 * self._rand(n) * mu.max(dim=1).values
        img = add_rician_noise(img, sigma, self.gen)
        if m:
            img = self._coarser(img)[:, m:m + 2 * c + 1]
        scale = self._normaliser(proxy, mu, coeffs, amp, span, sigma, masked)
        img = (img / scale[:, None, None, None]).clamp(0, 1.5)
        gamma = torch.where(self._rand(n) < 0.3, 0.75 + 0.6 * self._rand(n), torch.ones(n,
                            device=self.device))
        img = img.clamp_min(0) ** gamma[:, None, None, None]
        img = img * (0.9 + 0.2 * self._rand(n))[:, None, None, None]
        return img, labels

    def _coarser(self, img: torch.Tensor) -> torch.Tensor:
        """The whole-volume resolution simulation of ``(n, width, P, P)`` stacks."""
        n = img.shape[0]
        r = self._rand(n, 4)
        out = img.clone()
        for i in range(n):
            if float(r[i, 0]) >= self.volume_resolution:
                continue
            if float(r[i, 1]) < 0.5:  # isotropic
                factors = [1.5 + 1.5 * float(r[i, 2])] * 3
            else:  # thick along one axis: across slices or either in-plane axis
                factors = [1.0, 1.0, 1.0]
                factors[min(2, int(3 * float(r[i, 3])))] = 2.0 + 2.0 * float(r[i, 2])
            out[i:i + 1] = coarser_voxels(img[i:i + 1, None], factors)[:, 0]
        return out
