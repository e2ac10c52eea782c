"""Training of the tissue segmentation networks on synthetic MNI phantoms.

Every step synthesises fresh training data (no data loader, no data set on
disk): 2.5-D patches drawn from :func:`engine.data.phantom.training_blocks` --
the template *without* the held-out slab -- deformed in-plane, rendered with
a random contrast, INU field, blur and Rician noise, and normalised as the
whole volume would be at inference (see :class:`SliceSynthesizer` and
:data:`DATA_RECIPE`).

The loss is :class:`engine.models.losses.SegmentationLoss` (soft Dice + CE +
``lambda_tv`` x TV of the probabilities). Optimisers: SGD with Nesterov
momentum or AdamW; linear warm-up then cosine decay; bf16 autocast on CUDA.

Outputs in ``out_dir``: ``checkpoint.safetensors`` (model, optimiser and RNG
states, every ``checkpoint_every`` steps, for ``--resume``), and at the end
``<model>.safetensors`` (weights only) with its JSON model card
``<model>.json``.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias
from torch import nn

from ..core.device import resolve_device
from ..core.errors import ParameterError
from ..core.jobs import CancelToken, check_cancel, report
from ..data.phantom import (
    CONTRAST_MEANS,
    TissueBlock,
    add_rician_noise,
    gaussian_blur,
    lower_resolution,
    random_contrast_means,
    synthesize_phantom,
    toy_tissue_block,
    training_blocks,
)
from . import build_model, count_parameters
from .losses import SegmentationLoss
from .predictor import FOREGROUND_FRACTION, Predictor, _quantile

__all__ = [
    "VALIDATION_PHANTOMS",
    "SliceSynthesizer",
    "TrainConfig",
    "load_checkpoint",
    "save_weights",
    "train",
]

log = logging.getLogger(__name__)

#: Fixed validation phantoms: (name, contrast, noise, inu, seed).
VALIDATION_PHANTOMS: tuple[tuple[str, str, float, float, int], ...] = (
    ("t1_n3_inu20", "t1", 0.03, 0.20, 1001),
    ("t1_n9_inu40", "t1", 0.09, 0.40, 1002),
    ("t2_n3_inu20", "t2", 0.03, 0.20, 1003),
)

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
    "normalisation": "the scale engine.models.predictor.robust_normalise finds on the whole block "
                     "(estimated on 32,768 fixed random voxels rendered alike), then p=0.3 "
                     "gamma U(0.75,1.35) and gain U(0.9,1.1)",
}


@dataclass
class TrainConfig:
    """Everything that defines a training run (recorded in the model card)."""

    model: str = "delineo"
    model_args: dict[str, Any] = field(default_factory=dict)
    steps: int = 6000
    batch_size: int = 16
    volumes_per_step: int = 1
    optimizer: str = "adamw"
    lr: float = 2e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup: int = 200
    lambda_tv: float = 0.02
    context: int = 1
    crop: tuple[int, int] = (96, 96)
    seed: int = 0
    device: str = "auto"
    data: str = "mni"
    val_every: int = 1000
    checkpoint_every: int = 500
    threads: int = 0

    def validated(self) -> TrainConfig:
        if self.optimizer not in ("sgd", "adamw"):
            raise ParameterError(f"optimizer {self.optimizer!r}: choose sgd or adamw")
        if self.steps < 1 or self.batch_size < 1 or self.volumes_per_step < 1:
            raise ParameterError("steps, batch size and volumes per step must be positive")
        if self.data not in ("mni", "toy"):
            raise ParameterError(f"data {self.data!r}: choose mni or toy")
        if self.lr <= 0:
            raise ParameterError("the learning rate must be positive")
        return self


# ---------------------------------------------------------------------------
# On-the-fly synthesis of 2.5-D training patches
# ---------------------------------------------------------------------------
def _legendre(x: torch.Tensor, order: int) -> torch.Tensor:
    if order == 0:
        return torch.ones_like(x)
    if order == 1:
        return x
    if order == 2:
        return 1.5 * x * x - 0.5
    return 2.5 * x**3 - 1.5 * x


#: Exponents (i, j, k) of the Legendre terms of the training INU field (degree <= 3).
_INU_TERMS = [(i, j, k) for i in range(4) for j in range(4) for k in range(4)
              if 0 < i + j + k <= 3]


def legendre_basis(coords: torch.Tensor) -> torch.Tensor:
    """The INU basis ``P_i(x) P_j(y) P_k(z)`` at ``coords (..., 3)`` in [-1, 1]: ``(..., T)``."""
    polys = [[_legendre(coords[..., a], o) for o in range(4)] for a in range(3)]
    return torch.stack([polys[0][i] * polys[1][j] * polys[2][k] for i, j, k in _INU_TERMS],
                       dim=-1)


def polynomial_field(coords: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Smooth field ``sum c_ijk P_i(x) P_j(y) P_k(z)`` at ``coords (B, ..., 3)`` in [-1, 1]."""
    shape = (coeffs.shape[0],) + (1,) * (coords.dim() - 2) + (coeffs.shape[1],)
    return (legendre_basis(coords) * coeffs.view(shape)).sum(dim=-1)


class SliceSynthesizer:
    """Draws batches of synthetic 2.5-D patches and labels from tissue blocks.

    Each sample: a centre voxel (90 % inside the brain) whose whole 2.5-D
    window lies in one block; a random in-plane rotation/scaling/flip/elastic
    sampling grid around it; rendering with a random contrast, optional
    support mask, in-plane blur or lower resolution, a smooth polynomial INU
    field defined over the whole block (peak-to-peak ``U(0, 0.5)`` over the
    brain) and Rician noise; then the *whole-volume* normalisation of
    :func:`engine.models.predictor.robust_normalise`, whose percentiles are computed
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
    """

    def __init__(self, blocks: list[TissueBlock], device: torch.device,
                 generator: torch.Generator, *, crop: tuple[int, int] = (96, 96),
                 context: int = 1, proxy_voxels: int = 32768) -> None:
        self.blocks = [b.to(device) for b in blocks]
        self.device = device
        self.gen = generator
        self.crop = tuple(crop)
        self.context = int(context)
        self.brain_voxels: list[torch.Tensor] = []
        self.proxy: list[dict[str, torch.Tensor]] = []
        sizes = []
        local = torch.Generator().manual_seed(12345)  # fixed proxy sample, not the run's RNG
        for b in self.blocks:
            nx, ny, nz = b.shape
            if nz < 2 * self.context + 1:
                raise ParameterError("a tissue block is too thin for the 2.5-D window")
            vox = torch.nonzero(b.labels > 0)
            ok = (vox[:, 2] >= self.context) & (vox[:, 2] < nz - self.context)
            self.brain_voxels.append(vox[ok])
            sizes.append(float(ok.sum()))
            # proxy of the whole block inside its head box, as the predictor would crop it
            lo, hi = vox.min(dim=0).values, vox.max(dim=0).values + 1
            lo = (lo - 6).clamp_min(0).cpu()
            hi = torch.minimum(hi.cpu() + 6, torch.tensor([nx, ny, nz]))
            pts = lo + (torch.rand(proxy_voxels, 3, generator=local) * (hi - lo)).long()
            pts = pts.to(device)
            frac = b.maps[:, pts[:, 0], pts[:, 1], pts[:, 2]].T  # (n, 4)
            brain = b.labels[pts[:, 0], pts[:, 1], pts[:, 2]] > 0
            basis = legendre_basis(self._norm_coords(pts.float(), b))
            self.proxy.append({
                "frac": frac[:, :3].contiguous(), "support": frac[:, 3] > 0.5,
                "basis": basis, "basis_brain": basis[brain].contiguous(),
            })
        weights = torch.tensor(sizes)
        if float(weights.sum()) == 0:
            raise ParameterError("no brain voxel usable for training")
        self.block_prob = (weights / weights.sum()).to(device)

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
                    coeffs: torch.Tensor, amp: torch.Tensor, lo_hi: tuple[torch.Tensor, ...],
                    sigma: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Scale robust_normalise would find on the whole block rendered this way (n,)."""
        vals = proxy["frac"] @ mu.T  # (m, n)
        vals = vals.T * torch.where(masked[:, None], proxy["support"][None].float(), 1.0)
        f = coeffs @ proxy["basis"].T  # (n, m)
        lo, hi = lo_hi
        f = (f - lo[:, None]) / (hi - lo).clamp_min(1e-6)[:, None] * 2 - 1
        vals = vals * (1 + 0.5 * amp[:, None] * f)
        vals = add_rician_noise(vals, sigma, self.gen)
        scales = []
        for row in vals:
            top = _quantile(row, 0.999)
            fg = row[row > FOREGROUND_FRACTION * top]
            scales.append(_quantile(fg, 0.99) if fg.numel() else top)
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
        offsets = torch.arange(-c, c + 1, device=self.device)
        window = ks[:, None] + offsets[None]  # (n, 2c+1)
        # (n, 4, 2c+1, X, Y) -> (n, 4*(2c+1), X, Y)
        src = block.maps.permute(3, 0, 1, 2)[window].permute(0, 2, 1, 3, 4)
        src = src.reshape(n, -1, nx, ny)
        maps = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=True).view(n, 4, 2 * c + 1, *self.crop)
        lab = block.labels.permute(2, 0, 1)[ks][:, None].float()
        labels = F.grid_sample(lab, grid, mode="nearest", padding_mode="zeros",
                               align_corners=True)[:, 0].round().long()
        # contrast, support mask
        mu = self._means(n)
        img = (maps[:, :3] * mu[:, :, None, None, None]).sum(dim=1)  # (n, 2c+1, P, P)
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
        coeffs = torch.randn((n, len(_INU_TERMS)), generator=self.gen, device=self.device)
        coeffs = coeffs / torch.tensor([1.0 + i + j + k for i, j, k in _INU_TERMS],
                                       device=self.device)
        fb = coeffs @ proxy["basis_brain"].T
        lo_hi = (fb.amin(dim=1), fb.amax(dim=1))
        amp = 0.5 * self._rand(n)
        gx = (grid[..., 1] + 1) / 2 * (nx - 1)
        gy = (grid[..., 0] + 1) / 2 * (ny - 1)
        coords = []
        for o in range(2 * c + 1):
            gz = (ks[:, None, None].float() + o - c).expand_as(gx)
            pts = torch.stack([gx, gy, gz], dim=-1)
            coords.append(self._norm_coords(pts, block))
        field = torch.stack([polynomial_field(cc, coeffs) for cc in coords], dim=1)
        field = (field - lo_hi[0][:, None, None, None]) \
            / (lo_hi[1] - lo_hi[0]).clamp_min(1e-6)[:, None, None, None] * 2 - 1
        img = img * (1 + 0.5 * amp[:, None, None, None] * field)
        sigma = 0.10 * self._rand(n) * mu.max(dim=1).values
        img = add_rician_noise(img, sigma, self.gen)
        scale = self._normaliser(proxy, mu, coeffs, amp, lo_hi, sigma, masked)
        img = (img / scale[:, None, None, None]).clamp(0, 1.5)
        gamma = torch.where(self._rand(n) < 0.3, 0.75 + 0.6 * self._rand(n), torch.ones(n,
                            device=self.device))
        img = img.clamp_min(0) ** gamma[:, None, None, None]
        img = img * (0.9 + 0.2 * self._rand(n))[:, None, None, None]
        return img, labels


# ---------------------------------------------------------------------------
# Saving and loading (safetensors only)
# ---------------------------------------------------------------------------
def save_weights(model: nn.Module, path: str | Path, card: dict[str, Any]) -> Path:
    """Write the model's float32 weights as safetensors, the card beside it as JSON."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": "pt", "card": json.dumps({"name": card.get("name"),
                                                "architecture": card.get("architecture"),
                                                "input": card.get("input")})}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return path


def _save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer,
                     gen: torch.Generator, step: int, history: list[dict[str, Any]],
                     config: TrainConfig, runs: list[dict[str, Any]] | None = None) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    osd = opt.state_dict()
    for pid, st in osd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = val.detach().cpu().contiguous()
    tensors["rng.synth"] = gen.get_state().cpu()
    tensors["rng.torch_cpu"] = torch.get_rng_state()
    meta = {"step": str(step), "param_groups": json.dumps(osd["param_groups"]),
            "history": json.dumps(history), "config": json.dumps(asdict(config)),
            "runs": json.dumps(runs or [])}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def checkpoint_config(path: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` a checkpoint was written with."""
    from .predictor import load_weights

    _, meta = load_weights(path)
    data = json.loads(meta["config"])
    data["crop"] = tuple(data.get("crop", (96, 96)))
    return TrainConfig(**data)


def checkpoint_runs(path: str | Path) -> list[dict[str, Any]]:
    """The runs (command, first and last step) that produced a checkpoint, oldest first."""
    from .predictor import load_weights

    _, meta = load_weights(path)
    return json.loads(meta.get("runs", "[]"))


#: Fields of :class:`TrainConfig` that may change when resuming (they do not change the
#: arithmetic of a step beyond floating-point reduction order).
RESUMABLE_CHANGES = ("device", "threads")


def load_checkpoint(path: str | Path, model: nn.Module, opt: torch.optim.Optimizer,
                    gen: torch.Generator) -> tuple[int, list[dict[str, Any]]]:
    """Restore a checkpoint written by :func:`train`; returns ``(step, history)``."""
    from .predictor import load_weights

    tensors, meta = load_weights(path)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, val in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = val
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    gen.set_state(tensors["rng.synth"].to(torch.uint8))
    torch.set_rng_state(tensors["rng.torch_cpu"].to(torch.uint8))
    return int(meta["step"]), json.loads(meta.get("history", "[]"))


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------
def _validation_set(data: str) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, image, truth, voxels-counted mask) -- the held-out slab is never counted."""
    from ..data.mni import HELD_OUT_SLAB

    out = []
    if data == "toy":
        block = toy_tissue_block()
        img, truth = synthesize_phantom("t1", noise=0.03, inu=0.2, seed=7, block=block)
        keep = np.ones(truth.shape, bool)
        return [("toy_t1", img.array, truth.array, keep)]
    for name, contrast, noise, inu, seed in VALIDATION_PHANTOMS:
        img, truth = synthesize_phantom(contrast, noise=noise, inu=inu, seed=seed)
        keep = np.ones(truth.shape, bool)
        keep[:, :, HELD_OUT_SLAB[0]:HELD_OUT_SLAB[1]] = False
        out.append((name, img.array, truth.array, keep))
    return out


def _validate(model: nn.Module, config: TrainConfig, device: torch.device,
              val_set: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    from ..core.metrics import confusion

    model.eval()
    pred = Predictor(model, context=config.context, device=device, batch_size=32,
                     name=config.model)
    result: dict[str, Any] = {}
    for name, image, truth, keep in val_set:
        labels = pred.predict_array(image).labels
        conf = confusion(labels[keep], truth[keep], [1, 2, 3])
        dices = [conf[v].dice for v in (1, 2, 3)]
        result[name] = {"csf": round(dices[0], 4), "gm": round(dices[1], 4),
                        "wm": round(dices[2], 4), "mean": round(float(np.mean(dices)), 4)}
    model.train()
    return result


# ---------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------
def _lr_at(step: int, config: TrainConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    t = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _software() -> dict[str, str]:
    import numpy
    import safetensors

    from .. import __version__

    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "safetensors": safetensors.__version__,
            "delineo": __version__, "platform": platform.platform()}


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    command: str | None = None,
    progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Train ``config.model``; returns the model card (also written beside the weights).

    Parameters
    ----------
    config : TrainConfig
    out_dir : path
        Receives ``checkpoint.safetensors``, ``<model>.safetensors`` and ``<model>.json``.
    resume : bool
        Continue from ``out_dir/checkpoint.safetensors`` (same config required).
    command : str, optional
        The exact command line, recorded in the model card.
    """
    config = config.validated()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)

    if config.data == "toy":
        blocks = training_blocks((10, 14), crop=None, source=toy_tissue_block())
    else:
        blocks = training_blocks()
    args = {"in_channels": 2 * config.context + 1, "n_classes": 4, **config.model_args}
    model = build_model(config.model, **args).to(device)
    divisor = int(getattr(model, "divisor", 8))
    if any(s % divisor for s in config.crop):
        raise ParameterError(f"crop {config.crop} must be a multiple of {divisor}")
    if config.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
            weight_decay=config.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                weight_decay=config.weight_decay)
    gen = torch.Generator(device=device).manual_seed(config.seed)
    synth = SliceSynthesizer(blocks, device, gen, crop=config.crop, context=config.context)
    loss_fn = SegmentationLoss(lambda_tv=config.lambda_tv)
    use_amp = device.type == "cuda"

    ckpt = out / "checkpoint.safetensors"
    step, history = 0, []
    runs: list[dict[str, Any]] = []
    if resume:
        if not ckpt.is_file():
            raise ParameterError(f"--resume: no checkpoint in {out}")
        stored = asdict(checkpoint_config(ckpt))
        given = asdict(config)
        changed = [k for k in given if k not in RESUMABLE_CHANGES and given[k] != stored.get(k)]
        if changed:
            diffs = ", ".join(f"{k} {stored.get(k)!r} -> {given[k]!r}" for k in changed)
            raise ParameterError(f"--resume must keep the checkpoint's recipe; changed: {diffs}")
        runs = checkpoint_runs(ckpt)
        step, history = load_checkpoint(ckpt, model, opt, gen)
        log.info("resumed %s at step %d", config.model, step)
    val_set = _validation_set(config.data) if config.val_every > 0 else []

    runs.append({"command": command, "from_step": step, "to_step": step})
    model.train()
    t_start = time.perf_counter()
    running: dict[str, float] = {}
    first_loss: float | None = None
    losses: list[float] = []
    while step < config.steps:
        check_cancel(cancel)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, config)
        x, y = synth.batch(config.batch_size, config.volumes_per_step)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            outputs = model(x, deep=True)
        loss, parts = loss_fn(outputs, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 12.0)
        opt.step()
        step += 1
        losses.append(parts["loss"])
        if first_loss is None:
            first_loss = parts["loss"]
        for k, v in parts.items():
            running[k] = 0.98 * running.get(k, v) + 0.02 * v
        report(progress, step / config.steps,
               f"step {step}/{config.steps} loss {running['loss']:.4f}")
        if config.val_every > 0 and (step % config.val_every == 0 or step == config.steps):
            val = _validate(model, config, device, val_set)
            entry = {"step": step, "seconds": round(time.perf_counter() - t_start, 1),
                     "loss": round(running["loss"], 4), **val}
            history.append(entry)
            log.info("validation %s", json.dumps(entry))
        runs[-1]["to_step"] = step
        if step % config.checkpoint_every == 0 or step == config.steps:
            _save_checkpoint(ckpt, model, opt, gen, step, history, config, runs)

    seconds = time.perf_counter() - t_start
    card = {
        "name": config.model,
        "architecture": {"name": config.model, "class": type(model).__name__,
                         "arguments": args},
        "parameters": count_parameters(model),
        "input": {"context": config.context, "channels": 2 * config.context + 1,
                  "plane": "axial", "spacing_mm": 1.0,
                  "normalisation": "engine.models.predictor.robust_normalise"},
        "labels": {"0": "background", "1": "CSF", "2": "gray matter", "3": "white matter"},
        "training": {
            "command": command,
            "runs": runs,
            "config": asdict(config),
            "device": str(device),
            "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                            else platform.processor() or platform.machine()),
            "steps": step,
            "seconds_this_run": round(seconds, 1),
            "loss_first": first_loss,
            "loss_last_smoothed": round(running.get("loss", float("nan")), 4),
            "loss": "soft Dice (CSF, GM, WM) + cross-entropy + lambda_tv * TV(probabilities); "
                    "deep supervision weights 1, 1/2, 1/4 (normalised)",
            "data_recipe": DATA_RECIPE if config.data == "mni" else {"source": "toy ellipsoid"},
            "seed": config.seed,
        },
        "validation": history,
        "software": _software(),
        "argv": [Path(sys.argv[0]).name, *sys.argv[1:]],  # no path of this machine
    }
    save_weights(model, out / f"{config.model}.safetensors", card)
    card["_losses"] = losses  # in-memory only (tests), not written
    return card
