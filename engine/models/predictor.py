"""The CNN predictor: a :class:`~engine.core.volume.Volume` in, tissue probabilities and labels out.

Steps of :meth:`Predictor.predict`:

1. resample to the networks' 1 mm grid if the voxels are not ~1 mm (the
   probabilities are interpolated back at the end);
2. crop to the head's bounding box (found on a 4x down-sampled copy, so
   noise in the air does not widen it), padded to the network's divisor;
3. normalise intensities robustly (:func:`robust_normalise`, the same
   function the training uses);
4. run axial slices -- each with its neighbours as channels (2.5-D) -- in
   batches on the chosen device, optionally averaging with the left-right
   mirrored input (test-time augmentation);
5. return per-label probabilities ``(4, *volume.shape)`` and the arg-max label
   map 0/1/2/3 on the input's grid.

CUDA out-of-memory halves the batch until it fits and finally falls back to
the CPU. Progress is reported per batch and :class:`~engine.core.jobs.CancelToken`
is polled between batches.

Weights are read from ``safetensors`` files only (no pickled code is ever
unpickled); the JSON model card beside them names the architecture.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias
from torch import nn

from ..core.device import resolve_device
from ..core.errors import DelineoError, ParameterError
from ..core.jobs import CancelToken, check_cancel, report
from ..core.steps import SegmentationResult
from ..core.volume import BRAIN_TISSUE_LABELS, LabelMap, Volume

__all__ = [
    "ModelLoadError",
    "Predictor",
    "fuse_batchnorm",
    "load_model",
    "load_weights",
    "model_path",
    "models_dir",
    "robust_normalise",
]

log = logging.getLogger(__name__)

#: Foreground threshold, as a fraction of the 99.9th percentile of the volume.
FOREGROUND_FRACTION = 0.15
#: Grid the networks were trained on (mm).
NETWORK_SPACING_MM = 1.0


class ModelLoadError(DelineoError):
    """A weights file is missing, not safetensors, or does not fit its architecture."""


# ---------------------------------------------------------------------------
# Intensity normalisation (shared with training)
# ---------------------------------------------------------------------------
def _quantile(x: torch.Tensor, q: float, max_samples: int = 1 << 20) -> torch.Tensor:
    flat = x.reshape(-1)
    if flat.numel() > max_samples:
        step = flat.numel() // max_samples + 1
        flat = flat[::step]
    k = min(flat.numel(), max(1, round(q * (flat.numel() - 1)) + 1))
    return flat.float().kthvalue(k).values  # an order statistic: O(n), no full sort


def robust_normalise(x: torch.Tensor) -> torch.Tensor:
    """Scale an MR image so its bright tissue sits near 1 (background stays 0).

    The foreground is every voxel above ``0.15 x`` the 99.9th percentile; the
    image is divided by the 99th percentile of the foreground and clipped to
    [0, 1.5]. Negative values (some scanners) are shifted so the minimum is 0.
    """
    x = x.float()
    lo = x.min()
    if lo < 0:
        x = x - lo
    top = _quantile(x, 0.999)
    if top <= 0:
        return torch.zeros_like(x)
    fg = x.reshape(-1)
    fg = fg[fg > FOREGROUND_FRACTION * top]
    scale = _quantile(fg, 0.99) if fg.numel() > 0 else top
    return (x / scale.clamp_min(1e-6)).clamp(0, 1.5)


# ---------------------------------------------------------------------------
# Weights: safetensors + JSON model card
# ---------------------------------------------------------------------------
def models_dir() -> Path:
    """Folder of the shipped weights (``DELINEO_MODELS_DIR`` overrides)."""
    override = os.environ.get("DELINEO_MODELS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "resources" / "models"


def model_path(name_or_path: str | Path) -> Path:
    """The weights file of a shipped model name, or the given path."""
    p = Path(name_or_path)
    if p.suffix or p.exists():
        return p
    return models_dir() / f"{name_or_path}.safetensors"


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a ``.safetensors`` file; anything else is refused.

    A pickle (``torch.save``) file is rejected before it is unpickled, whatever
    its name: only the safetensors format (a JSON header and raw tensor bytes)
    is parsed.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError("weights file not found", path=path)
    with path.open("rb") as fh:
        head = fh.read(16)
    # safetensors: an 8-byte little-endian header length, then the JSON header ("{").
    # A torch.save file is a zip ("PK") or a bare pickle (0x80, protocol 2-5).
    looks_safetensors = len(head) > 8 and head[8:9] == b"{"
    if not looks_safetensors and (head[:2] == b"PK" or head[:1] == b"\x80"):
        raise ModelLoadError(
            "refusing a pickled (torch.save) weights file: Delineo loads safetensors only",
            path=path,
        )
    try:
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = dict(fh.metadata() or {})
            for key in fh.keys():  # noqa: SIM118 - safe_open has no __iter__
                tensors[key] = fh.get_tensor(key)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"not a valid safetensors file ({exc})", path=path) from None
    return tensors, meta


def load_model(name_or_path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Build a network from its weights and model card; returns ``(model, card)``.

    The card is ``<weights>.json`` beside the weights; without it, the
    architecture stored in the safetensors metadata is used.
    """
    from . import build_model

    path = model_path(name_or_path)
    tensors, meta = load_weights(path)
    card_path = path.with_suffix(".json")
    if card_path.is_file():
        card = json.loads(card_path.read_text())
    elif "card" in meta:
        card = json.loads(meta["card"])
    else:
        raise ModelLoadError("no model card (.json) beside the weights", path=path)
    arch = card.get("architecture", {})
    model = build_model(arch.get("name", ""), **arch.get("arguments", {}))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelLoadError(f"weights do not fit the architecture: {first}", path=path) \
            from None
    model.eval()
    return model, card


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every ``Conv2d -> BatchNorm2d`` pair of ``nn.Sequential`` containers (eval only).

    The arithmetic is unchanged up to rounding; inference saves one pass over
    every feature map. Returns a fused copy; *model* is left untouched.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for a, b in itertools.pairwise(names):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[a] = fuse_conv_bn_eval(conv, bn)
                module._modules[b] = nn.Identity()
    return fused


# ---------------------------------------------------------------------------
# Predictor
# ---------------------------------------------------------------------------
def _head_box(x: torch.Tensor, divisor: int, margin: int = 6) -> tuple[slice, slice, slice]:
    """Bounding box of the head on a 4x average-pooled copy (noise-robust)."""
    top = _quantile(x, 0.999)
    # pool by 4 along each axis that has at least 4 voxels (a single slice stays one)
    kernel = tuple(4 if n >= 4 else 1 for n in x.shape)
    coarse = F.avg_pool3d(x[None, None], kernel, stride=kernel, ceil_mode=True)[0, 0]
    fg = coarse > FOREGROUND_FRACTION * top
    if not bool(fg.any()):
        return slice(0, x.shape[0]), slice(0, x.shape[1]), slice(0, x.shape[2])
    out = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = torch.nonzero(fg.any(dim=other[1]).any(dim=other[0])).flatten()
        k = kernel[axis]
        lo = max(0, int(idx.min()) * k - margin)
        hi = min(x.shape[axis], (int(idx.max()) + 1) * k + margin)
        out.append(slice(lo, hi))
    return tuple(out)  # type: ignore[return-value]


@dataclass
class Prediction:
    """Raw output of :meth:`Predictor.predict_array`."""

    probabilities: np.ndarray
    labels: np.ndarray
    seconds: float
    device: str
    batch_size: int


class Predictor:
    """Runs a 2.5-D segmentation network over a whole volume.

    Parameters
    ----------
    model : nn.Module
        A network of :data:`engine.models.MODELS`; the predictor runs a copy
        in eval mode with batch normalisation folded into the convolutions.
    context : int
        Neighbouring slices on each side given as channels
        (``in_channels = 2 * context + 1``).
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    batch_size : int
        Slices per forward pass (halved automatically on CUDA OOM).
    tta : bool
        Average with the left-right mirrored prediction.
    name : str
        For messages.
    """

    def __init__(self, model: nn.Module, *, context: int = 1, device: str | torch.device = "auto",
                 batch_size: int = 16, tta: bool = False, name: str = "cnn") -> None:
        self.model = fuse_batchnorm(model)
        self.context = int(context)
        self.device = resolve_device(device)
        self.batch_size = max(1, int(batch_size))
        self.tta = bool(tta)
        self.name = name
        self.divisor = int(getattr(model, "divisor", 8))
        self.model.to(self.device)

    @classmethod
    def from_name(cls, name_or_path: str | Path, **kwargs: Any) -> Predictor:
        """Predictor of a shipped model name (``unet``, ``delineo``) or weights file."""
        model, card = load_model(name_or_path)
        context = int(card.get("input", {}).get("context", 1))
        kwargs.setdefault("name", card.get("name", str(name_or_path)))
        pred = cls(model, context=context, **kwargs)
        pred.card = card
        return pred

    # -- the network over slices ------------------------------------------------
    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        use_amp = self.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            logits = self.model(batch)
            if self.tta:
                logits_f = self.model(batch.flip(-2)).flip(-2)
        probs = logits.float().softmax(dim=1)
        if self.tta:
            probs = 0.5 * (probs + logits_f.float().softmax(dim=1))
        return probs

    def _run_slices(self, vol: torch.Tensor, progress: Callable[[float, str], None] | None,
                    cancel: CancelToken | None) -> torch.Tensor:
        """Probabilities ``(4, X, Y, Z)`` of a normalised, padded volume on ``self.device``."""
        nx, ny, nz = vol.shape
        c = self.context
        padded = F.pad(vol.permute(2, 0, 1)[None, None], (0, 0, 0, 0, c, c),
                       mode="replicate")[0, 0]  # (Z + 2c, X, Y)
        out = None
        start = 0
        batch = self.batch_size
        while start < nz:
            check_cancel(cancel)
            stop = min(nz, start + batch)
            idx = torch.arange(start, stop, device=vol.device)
            window = idx[:, None] + torch.arange(2 * c + 1, device=vol.device)[None]
            x = padded[window]  # (b, 2c+1, X, Y)
            try:
                with torch.inference_mode():
                    probs = self._forward(x.to(self.device))
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                if batch > 1:
                    batch = max(1, batch // 2)
                    log.warning("%s: CUDA out of memory; batch size %d", self.name, batch)
                    continue
                if self.device.type == "cpu":
                    raise
                log.warning("%s: CUDA out of memory at batch 1; falling back to the CPU",
                            self.name)
                self.device = torch.device("cpu")
                self.model.to(self.device)
                vol = vol.cpu()
                padded = padded.cpu()
                out = out.cpu() if out is not None else None
                continue
            if out is None:
                out = torch.empty((probs.shape[1], nz, nx, ny), dtype=torch.float32,
                                  device=probs.device)
            if out.device != probs.device:
                out = out.to(probs.device)
            out[:, start:stop] = probs.permute(1, 0, 2, 3)
            start = stop
            report(progress, start / nz, f"{self.name}: slice {start}/{nz}")
        self.batch_size = batch
        assert out is not None
        return out.permute(0, 2, 3, 1)

    def predict_array(
        self,
        array: np.ndarray,
        spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
        *,
        mask: np.ndarray | None = None,
        progress: Callable[[float, str], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> Prediction:
        """Probabilities and labels of a canonical (RAS+) array with voxel *spacing*."""
        t0 = time.perf_counter()
        shape = tuple(array.shape)
        work_dev = self.device
        x = torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32)
        x = torch.nan_to_num(x).to(work_dev)
        sp = np.asarray(spacing, float)
        resampled = bool(np.any(np.abs(sp - NETWORK_SPACING_MM) > 0.05 * NETWORK_SPACING_MM))
        if resampled:
            size = tuple(max(1, round(n * s / NETWORK_SPACING_MM)) for n, s in zip(shape, sp,
                                                                                   strict=True))
            x = F.interpolate(x[None, None], size=size, mode="trilinear",
                              align_corners=False)[0, 0]
        box = _head_box(x, self.divisor)
        crop = x[box]
        nx, ny, _ = crop.shape
        d = self.divisor
        px, py = (-nx) % d, (-ny) % d
        crop = robust_normalise(crop)
        crop = F.pad(crop, (0, 0, py // 2, py - py // 2, px // 2, px - px // 2))
        probs_crop = self._run_slices(crop, progress, cancel)
        probs_crop = probs_crop[:, px // 2:px // 2 + nx, py // 2:py // 2 + ny]
        full = torch.zeros((probs_crop.shape[0], *x.shape), dtype=torch.float32,
                           device=probs_crop.device)
        full[0] = 1.0
        full[(slice(None), *box)] = probs_crop
        if resampled:
            full = F.interpolate(full[None], size=shape, mode="trilinear",
                                 align_corners=False)[0]
            full = full / full.sum(dim=0, keepdim=True).clamp_min(1e-6)
        probs = full.cpu().numpy()
        if mask is not None:
            # A brain mask says which voxels are tissue, as for the classical methods:
            # outside it is background, inside it the most likely of CSF/GM/WM.
            inside = np.asarray(mask, bool)
            probs[:, ~inside] = 0.0
            probs[0, ~inside] = 1.0
            tissue = probs[1:, inside]
            sums = tissue.sum(axis=0, keepdims=True)
            probs[1:, inside] = np.where(sums > 1e-6, tissue / np.maximum(sums, 1e-6),
                                         np.float32(1.0 / 3.0))
            probs[0, inside] = 0.0
        labels = probs.argmax(axis=0).astype(np.uint8)
        return Prediction(probs, labels, time.perf_counter() - t0, str(self.device),
                          self.batch_size)

    def predict(
        self,
        volume: Volume,
        *,
        mask: np.ndarray | None = None,
        progress: Callable[[float, str], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> SegmentationResult:
        """Segment *volume* into background/CSF/GM/WM on its own grid."""
        if volume.array.ndim != 3 or min(volume.shape) < 1:
            raise ParameterError("the CNN needs a 3-D image")
        report(progress, 0.0, f"{self.name}: preparing")
        pred = self.predict_array(volume.array, volume.spacing, mask=mask, progress=progress,
                                  cancel=cancel)
        labels = LabelMap.on_grid_of(volume, pred.labels, labels=BRAIN_TISSUE_LABELS)
        labels.metadata["description"] = f"{self.name} tissue segmentation"
        report(progress, 1.0, f"{self.name}: done in {pred.seconds:.1f} s")
        return SegmentationResult(
            labels=labels,
            probabilities=pred.probabilities,
            info={"model": self.name, "seconds": pred.seconds, "device": pred.device,
                  "batch_size": pred.batch_size, "tta": self.tta},
        )
