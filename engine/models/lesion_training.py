"""Training of the lesion network on synthetic lesions in synthetic phantoms.

A run draws its pool of synthetic volumes and the 2.5-D patches from it with
:mod:`engine.data.lesion_pool` (phantoms and whole heads with painted lesions,
the held-out slab cut out; the recipe in words is
:data:`~engine.data.lesion_pool.LESION_DATA_RECIPE`), then trains on them.

Two kinds of network can be trained (``classes``): ``"lesion"``, a dedicated
network with two outputs (background, lesion), and ``"tissue+lesion"``, a
network with five outputs (background, CSF, GM, WM, lesion) -- the tissue
network with a lesion output added, started from the shipped tissue weights
(``init="delineo"``: its four outputs are copied, the fifth starts at zero).
docs/lesions.md compares them.

The loop, checkpoints (``--resume``), learning-rate schedule and clean-up
are those of :mod:`engine.models.training`. Outputs in ``out_dir``:
``checkpoint.safetensors`` and at the end ``<name>.safetensors`` with its
model card ``<name>.json``.
"""

from __future__ import annotations

import json
import logging
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
from torch import nn

from ..core.device import resolve_device
from ..core.errors import ParameterError
from ..core.jobs import CancelToken, check_cancel, report
from ..data.lesion_pool import (
    ANATOMY_CHOICES,
    LESION_DATA_RECIPE,
    POOL_CONTRASTS,
    POOL_HEAD_CONTRASTS,
    VARIED_SHARE,
    LesionPool,
    PoolSampler,
    lesion_pool,
)
from ..io.atomic import missing_folders
from . import build_model, count_parameters
from .losses import SegmentationLoss
from .training import (
    _clean_up,
    _lr_at,
    _save_checkpoint,
    _software,
    checkpoint_runs,
    load_checkpoint,
    optimiser_step,
)
from .weights import load_model, load_weights, save_weights

__all__ = [
    "LESION_CLASSES",
    "LesionTrainConfig",
    "lesion_checkpoint_config",
    "train_lesion",
]

log = logging.getLogger(__name__)

#: Output sets a lesion run can train: name -> label names.
LESION_CLASSES: dict[str, tuple[str, ...]] = {
    "lesion": ("background", "lesion"),
    "tissue+lesion": ("background", "CSF", "gray matter", "white matter", "lesion"),
}


@dataclass
class LesionTrainConfig:
    """Everything that defines a lesion training run (recorded in the model card)."""

    name: str = "lesion"
    model: str = "delineo"
    model_args: dict[str, Any] = field(default_factory=lambda: {"base": 8,
                                                                "skip_channels": 8})
    classes: str = "lesion"
    init: str | None = None
    steps: int = 4000
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 200
    lambda_tv: float = 0.0
    context: int = 1
    crop: tuple[int, int] = (96, 96)
    pool_volumes: int = 64
    lesion_free_fraction: float = 0.25
    lesion_fraction: float = 0.5
    head_fraction: float = 0.0
    anatomy: str = "template"
    varied_share: float = VARIED_SHARE
    pool_contrasts: dict[str, float] = field(default_factory=lambda: dict(POOL_CONTRASTS))
    head_contrasts: tuple[str, ...] = POOL_HEAD_CONTRASTS
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 250
    threads: int = 0

    def validated(self) -> LesionTrainConfig:
        if self.classes not in LESION_CLASSES:
            raise ParameterError(f"classes {self.classes!r}: choose "
                                 + " or ".join(LESION_CLASSES))
        if self.steps < 1 or self.batch_size < 1 or self.pool_volumes < 1:
            raise ParameterError("steps, batch size and pool volumes must be positive")
        if self.lr <= 0:
            raise ParameterError("the learning rate must be positive")
        if not all(0 <= f <= 1 for f in (self.lesion_free_fraction, self.lesion_fraction,
                                         self.head_fraction, self.varied_share)):
            raise ParameterError("the lesion, lesion-free, head and varied fractions must lie "
                                 "in [0, 1]")
        from ..data.heads import HEAD_CONTRASTS
        self.head_contrasts = tuple(self.head_contrasts)
        bad = sorted(set(self.head_contrasts) - set(HEAD_CONTRASTS))
        if bad or not self.head_contrasts or len(set(self.head_contrasts)) != len(
                self.head_contrasts):
            raise ParameterError(f"head contrasts {list(self.head_contrasts)}: one or more of "
                                 + ", ".join(HEAD_CONTRASTS) + ", each once")
        if self.anatomy not in ANATOMY_CHOICES:
            raise ParameterError(f"anatomy {self.anatomy!r}: choose "
                                 + " or ".join(ANATOMY_CHOICES))
        unknown = sorted(set(self.pool_contrasts) - set(POOL_CONTRASTS))
        if unknown or not self.pool_contrasts:
            raise ParameterError(f"pool contrasts {sorted(self.pool_contrasts)}: choose among "
                                 + ", ".join(POOL_CONTRASTS))
        if any(w < 0 for w in self.pool_contrasts.values()) or \
                sum(self.pool_contrasts.values()) <= 0:
            raise ParameterError("pool contrast shares must be non-negative, some positive")
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ParameterError(f"weights name {self.name!r}: letters, digits, _ or -")
        return self

    @property
    def n_classes(self) -> int:
        return len(LESION_CLASSES[self.classes])


def lesion_checkpoint_config(path: str | Path) -> LesionTrainConfig:
    """The :class:`LesionTrainConfig` a lesion checkpoint was written with."""
    _, meta = load_weights(path, tensors=False)
    data = json.loads(meta["config"])
    if "classes" not in data:
        raise ParameterError(f"{path}: not a lesion training checkpoint")
    data["crop"] = tuple(data.get("crop", (96, 96)))
    data.setdefault("head_fraction", 0.0)  # checkpoints written before whole heads joined
    data.setdefault("anatomy", "template")  # ... and before anatomy variation
    data.setdefault("pool_contrasts", dict(POOL_CONTRASTS))
    data.setdefault("varied_share", VARIED_SHARE)  # ... and before these two were options
    data["head_contrasts"] = tuple(data.get("head_contrasts", POOL_HEAD_CONTRASTS))
    return LesionTrainConfig(**data)


# ---------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------
def _build(config: LesionTrainConfig, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    args = {"in_channels": 2 * config.context + 1, **config.model_args,
            "n_classes": config.n_classes}
    model = build_model(config.model, **args)
    if config.init:
        source, _ = load_model(config.init)
        src_cfg = dict(getattr(source, "config", {}))
        n_src = int(src_cfg.get("n_classes", 4))
        mine = dict(getattr(model, "config", {}))
        if {k: v for k, v in src_cfg.items() if k != "n_classes"} != {
                k: v for k, v in mine.items() if k != "n_classes"}:
            raise ParameterError(f"--init {config.init}: its architecture {src_cfg} differs "
                                 f"from the one trained here {mine}")
        state = model.state_dict()
        for key, value in source.state_dict().items():
            target = state[key]
            if target.shape == value.shape:
                state[key] = value.clone()
            elif value.shape[0] == n_src and target.shape[0] > n_src:  # an output layer
                grown = torch.zeros_like(target)
                grown[:n_src] = value
                state[key] = grown
            else:
                raise ParameterError(f"--init {config.init}: cannot map {key}")
        model.load_state_dict(state)
    return model.to(device), args


def train_lesion(
    config: LesionTrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    command: str | None = None,
    toy: bool = False,
    progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Train a lesion network (module docstring); returns the model card (also written).

    Parameters
    ----------
    config : LesionTrainConfig
    out_dir : path
        Receives ``checkpoint.safetensors``, ``<name>.safetensors`` and ``<name>.json``.
    resume : bool
        Continue from ``out_dir/checkpoint.safetensors`` (the same recipe required;
        the pool is drawn again from its seed).
    toy : bool
        A tiny ellipsoid pool instead of the MNI template (tests).
    """
    config = config.validated()
    out = Path(out_dir)
    device = resolve_device(config.device)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    model, args = _build(config, device)
    divisor = int(getattr(model, "divisor", 8))
    if any(s % divisor for s in config.crop):
        raise ParameterError(f"crop {config.crop} must be a multiple of {divisor}")
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    ckpt = out / "checkpoint.safetensors"
    step, history, runs = 0, [], []
    if resume:
        if not ckpt.is_file():
            raise ParameterError(f"--resume: no checkpoint in {out}")
        stored = asdict(lesion_checkpoint_config(ckpt))
        given = asdict(config)
        changed = [k for k in given if k not in ("device", "threads")
                   and given[k] != stored.get(k)]
        if changed:
            diffs = ", ".join(f"{k} {stored.get(k)!r} -> {given[k]!r}" for k in changed)
            raise ParameterError(f"--resume must keep the checkpoint's recipe; changed: {diffs}")
        runs = checkpoint_runs(ckpt)
    report(progress, 0.0, "drawing the lesion pool")
    pool = lesion_pool(config.pool_volumes, seed=config.seed,
                       lesion_free_fraction=config.lesion_free_fraction,
                       head_fraction=config.head_fraction, anatomy=config.anatomy,
                       varied_share=config.varied_share, contrasts=config.pool_contrasts,
                       head_contrasts=config.head_contrasts,
                       context=config.context, toy=toy, cancel=cancel)
    log.info("lesion pool: %d volumes, %d lesions, %.1f s", len(pool.volumes), pool.n_lesions,
             pool.seconds)
    if resume:
        step, history = load_checkpoint(ckpt, model, opt, gen)
        log.info("resumed %s at step %d", config.name, step)
    sampler = PoolSampler(pool, gen, crop=config.crop, context=config.context,
                          classes=config.classes, lesion_fraction=config.lesion_fraction)
    loss_fn = SegmentationLoss(lambda_tv=config.lambda_tv)

    created = missing_folders(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        return _loop(config, out, model, opt, gen, sampler, loss_fn, device, args, pool,
                     step=step, history=history, runs=runs, command=command, toy=toy,
                     progress=progress, cancel=cancel, written=written)
    except BaseException:
        _clean_up(created, written, ckpt)
        raise


def _loop(config: LesionTrainConfig, out: Path, model: nn.Module, opt: torch.optim.Optimizer,
          gen: torch.Generator, sampler: PoolSampler, loss_fn: SegmentationLoss,
          device: torch.device, args: dict[str, Any], pool: LesionPool, *, step: int,
          history: list[dict[str, Any]], runs: list[dict[str, Any]], command: str | None,
          toy: bool, progress: Callable[[float, str], None] | None,
          cancel: CancelToken | None, written: list[Path]) -> dict[str, Any]:
    ckpt = out / "checkpoint.safetensors"
    runs.append({"command": command, "from_step": step, "to_step": step})
    model.train()
    t_start = time.perf_counter()
    running: dict[str, float] = {}
    first_loss: float | None = None
    losses: list[float] = []
    while step < config.steps:
        check_cancel(cancel)
        x, y = sampler.batch(config.batch_size)
        parts = optimiser_step(model, opt, loss_fn, x.to(device), y.to(device),
                               _lr_at(step, config))  # type: ignore[arg-type]
        step += 1
        losses.append(parts["loss"])
        if first_loss is None:
            first_loss = parts["loss"]
        for k, v in parts.items():
            running[k] = 0.98 * running.get(k, v) + 0.02 * v
        report(progress, step / config.steps,
               f"step {step}/{config.steps} loss {running['loss']:.4f}")
        if step % 100 == 0:
            history.append({"step": step, "seconds": round(time.perf_counter() - t_start, 1),
                            "loss": round(running["loss"], 4),
                            "dice_loss": round(running["dice"], 4)})
            log.info("lesion training %s", json.dumps(history[-1]))
        runs[-1]["to_step"] = step
        if step % config.checkpoint_every == 0 or step == config.steps:
            _save_checkpoint(ckpt, model, opt, gen, step, history, config, runs)  # type: ignore[arg-type]
            if ckpt not in written:
                written.append(ckpt)
    seconds = time.perf_counter() - t_start
    names = LESION_CLASSES[config.classes]
    card = {
        "name": config.name,
        "architecture": {"name": config.model, "class": type(model).__name__,
                         "arguments": args},
        "parameters": count_parameters(model),
        "input": {"context": config.context, "channels": 2 * config.context + 1,
                  "plane": "axial", "spacing_mm": 1.0,
                  "normalisation": "robust_normalise (engine.core.tensors), as the tissue "
                                   "networks"},
        "labels": {str(i): n for i, n in enumerate(names)},
        "training": {
            "command": command,
            "runs": runs,
            "config": asdict(config),
            "device": str(device),
            "device_name": platform.processor() or platform.machine(),
            "steps": step,
            "seconds_this_run": round(seconds, 1),
            "pool_seconds": round(pool.seconds, 1),
            "pool": {"volumes": len(pool.volumes), "lesions": pool.n_lesions,
                     "whole_heads": sum(1 for d in pool.descriptions if d.get("head")),
                     "varied_anatomy": sum(1 for d in pool.descriptions
                                           if d.get("varied_anatomy")),
                     "contrasts": {c: sum(1 for d in pool.descriptions
                                          if d.get("contrast") == c and not d.get("head"))
                                   for c in POOL_CONTRASTS},
                     "lesion_free_volumes": sum(1 for d in pool.descriptions
                                                if d["lesions"] == 0)},
            "loss_first": first_loss,
            "loss_last_smoothed": round(running.get("loss", float("nan")), 4),
            "loss": "soft Dice (foreground classes, batch) + cross-entropy; deep supervision "
                    "weights 1, 1/2, 1/4 (normalised)",
            "data_recipe": {"source": "toy ellipsoid"} if toy else LESION_DATA_RECIPE,
            "seed": config.seed,
            "init": config.init,
        },
        "history": history,
        "software": _software(),
        "argv": [Path(sys.argv[0]).name, *sys.argv[1:]],
    }
    weights = out / f"{config.name}.safetensors"
    written.append(weights.with_suffix(".tmp"))
    save_weights(model, weights, card)
    card["_losses"] = losses
    return card
