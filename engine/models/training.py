"""Training of the tissue segmentation networks on synthetic MNI phantoms.

Every step draws fresh training patches from
:class:`engine.data.synthesis.SliceSynthesizer` (no data loader, no data set
on disk; the recipe is :data:`engine.data.synthesis.DATA_RECIPE`), built on
:func:`engine.data.phantom.training_blocks` -- the template *without* the
held-out slab.

The loss is :class:`engine.models.losses.SegmentationLoss` (soft Dice + CE +
``lambda_tv`` x TV of the probabilities). Optimisers: SGD with Nesterov
momentum or AdamW; linear warm-up then cosine decay to 1 % of the peak; bf16
autocast on CUDA. Validation runs the :class:`~engine.models.predictor.Predictor`
on :data:`VALIDATION_PHANTOMS` with the held-out slab left out.

Outputs in ``out_dir``: ``checkpoint.safetensors`` (model, optimiser and RNG
states, every ``checkpoint_every`` steps, for ``--resume``), and at the end
``<model>.safetensors`` (weights only) with its JSON model card
``<model>.json`` (:func:`engine.models.weights.save_weights`).

A run that fails or is cancelled removes the output folder if it created
it and wrote no checkpoint there; a checkpoint is kept for ``--resume``.
Files the run did not write are never touched.
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
from torch import nn

from ..core.device import resolve_device
from ..core.errors import ParameterError
from ..core.jobs import CancelToken, check_cancel, report
from ..data.anatomy import TRAINING_VARIATION, deep_csf_centre, vary_anatomy
from ..data.phantom import TissueBlock, synthesize_phantom, toy_tissue_block, training_blocks
from ..data.synthesis import (
    DATA_RECIPE,
    VOLUME_MARGIN,
    VOLUME_RESOLUTION_RECIPE,
    SliceSynthesizer,
)
from ..io.atomic import file_sha256, missing_folders
from . import build_model, count_parameters
from .losses import SegmentationLoss
from .predictor import Predictor
from .weights import load_weights, save_weights

__all__ = [
    "RESUMABLE_CHANGES",
    "VALIDATION_PHANTOMS",
    "TrainConfig",
    "checkpoint_config",
    "checkpoint_runs",
    "load_checkpoint",
    "optimiser_step",
    "train",
]

log = logging.getLogger(__name__)

#: Fixed validation phantoms: (name, contrast, noise, inu, seed).
VALIDATION_PHANTOMS: tuple[tuple[str, str, float, float, int], ...] = (
    ("t1_n3_inu20", "t1", 0.03, 0.20, 1001),
    ("t1_n9_inu40", "t1", 0.09, 0.40, 1002),
    ("t2_n3_inu20", "t2", 0.03, 0.20, 1003),
)

#: How a network's input is scaled, in words (the model card's ``input.normalisation``).
#: Cards are records: nothing reads this field back.
NORMALISATION = ("robust: divide by the 99th percentile of the voxels above 0.15 x the "
                 "99.9th percentile, clip to [0, 1.5] (engine.core.tensors.robust_normalise)")


@dataclass
class TrainConfig:
    """Everything that defines a training run (recorded in the model card).

    The defaults are those of ``delineo-engine train`` (which needs
    ``--steps``). ``volumes_per_step`` has no effect: every patch of a batch
    is drawn independently; the field stays so that older checkpoints and
    cards, which record it, still load.
    """

    model: str = "delineo"
    model_args: dict[str, Any] = field(default_factory=dict)
    steps: int = 6000
    batch_size: int = 32
    volumes_per_step: int = 4
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
    anatomy: str = "template"
    anatomy_pool: int = 8
    anatomy_refresh: int = 25
    volume_resolution: float = 0.0
    init: str = ""

    def validated(self) -> TrainConfig:
        if self.optimizer not in ("sgd", "adamw"):
            raise ParameterError(f"optimizer {self.optimizer!r}: choose sgd or adamw")
        if self.steps < 1 or self.batch_size < 1 or self.volumes_per_step < 1:
            raise ParameterError("steps, batch size and volumes per step must be positive")
        if self.data not in ("mni", "toy"):
            raise ParameterError(f"data {self.data!r}: choose mni or toy")
        if self.lr <= 0:
            raise ParameterError("the learning rate must be positive")
        if self.anatomy not in ("template", "varied"):
            raise ParameterError(f"anatomy {self.anatomy!r}: choose template or varied")
        if self.anatomy_pool < 1 or self.anatomy_refresh < 1:
            raise ParameterError("the anatomy pool and its refresh interval must be positive")
        if not 0.0 <= self.volume_resolution <= 1.0:
            raise ParameterError("the volume resolution probability must lie in [0, 1]")
        return self


# ---------------------------------------------------------------------------
# Checkpoints (safetensors only)
# ---------------------------------------------------------------------------
def _save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer,
                     gen: torch.Generator, step: int, history: list[dict[str, Any]],
                     config: TrainConfig, runs: list[dict[str, Any]] | None = None,
                     init: dict[str, str] | None = None) -> None:
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
            "runs": json.dumps(runs or []), "init": json.dumps(init or {})}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def checkpoint_config(path: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` a checkpoint was written with."""
    _, meta = load_weights(path, tensors=False)
    data = json.loads(meta["config"])
    data["crop"] = tuple(data.get("crop", (96, 96)))
    return TrainConfig(**data)


def checkpoint_runs(path: str | Path) -> list[dict[str, Any]]:
    """The runs (command, first and last step) that produced a checkpoint, oldest first."""
    _, meta = load_weights(path, tensors=False)
    return json.loads(meta.get("runs", "[]"))


def _checkpoint_init(path: Path) -> dict[str, str] | None:
    """The record of the weights a checkpoint's run started from (``--init``), if any."""
    _, meta = load_weights(path, tensors=False)
    return json.loads(meta.get("init", "{}")) or None


def recorded_config(config: TrainConfig) -> dict[str, Any]:
    """*config* as a model card records it: JSON types, and ``init`` as the file's name
    (its digest goes beside it), never a path of this machine."""
    recorded = json.loads(json.dumps(asdict(config)))
    if config.init:
        recorded["init"] = Path(config.init).name
    return recorded


#: Fields of :class:`TrainConfig` that may change when resuming (they do not change the
#: arithmetic of a step beyond floating-point reduction order).
RESUMABLE_CHANGES = ("device", "threads")


def load_checkpoint(path: str | Path, model: nn.Module, opt: torch.optim.Optimizer,
                    gen: torch.Generator) -> tuple[int, list[dict[str, Any]]]:
    """Restore a checkpoint written by :func:`train`; returns ``(step, history)``."""
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
    # float32 on every machine: the validation history does not depend on the hardware
    pred = Predictor(model, context=config.context, device=device, batch_size=32,
                     name=config.model, precision="float32")
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
def optimiser_step(model: nn.Module, opt: torch.optim.Optimizer, loss_fn: nn.Module,
                   x: torch.Tensor, y: torch.Tensor, lr: float, *,
                   amp: bool = False) -> dict[str, float]:
    """One training step at learning rate *lr* (deep supervision, gradients clipped at
    norm 12); returns the loss parts. *amp*: bfloat16 autocast of the forward pass (CUDA)."""
    for group in opt.param_groups:
        group["lr"] = lr
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        outputs = model(x, deep=True)
    loss, parts = loss_fn(outputs, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 12.0)
    opt.step()
    return parts


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
    recipe: dict[str, Any] | None = None,
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
    recipe : dict, optional
        The recipe stage this run is (:mod:`engine.models.recipes`), recorded in the
        card as ``training.recipe``.

    Nothing is created before the configuration, the model, the data and a
    resumed checkpoint have been checked. If the run then fails or is
    cancelled, the folders it created are removed again unless it wrote a
    checkpoint into them (kept for ``resume``).
    """
    config = config.validated()
    out = Path(out_dir)
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
    # a resumed run takes its weights from the checkpoint, and the record of its start too
    init = _initialise(model, config.init) if config.init and not resume else None
    gen = torch.Generator(device=device).manual_seed(config.seed)
    synth = SliceSynthesizer(blocks, device, gen, crop=config.crop, context=config.context,
                             volume_resolution=config.volume_resolution)
    loss_fn = SegmentationLoss(lambda_tv=config.lambda_tv)

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
        init = _checkpoint_init(ckpt)
        step, history = load_checkpoint(ckpt, model, opt, gen)
        log.info("resumed %s at step %d", config.model, step)
    pool = (AnatomyPool(synth, blocks, size=config.anatomy_pool,
                        refresh=config.anatomy_refresh, seed=config.seed, step=step)
            if config.anatomy == "varied" else None)
    val_set = _validation_set(config.data) if config.val_every > 0 else []

    # Everything that can be checked has been: only now the output folder is made.
    created = missing_folders(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        card = _run(config, out, model, opt, gen, synth, loss_fn, val_set, device, args,
                    pool=pool, step=step, history=history, runs=runs, command=command,
                    init=init, recipe=recipe, progress=progress, cancel=cancel, written=written)
    except BaseException:
        _clean_up(created, written, ckpt)
        raise
    return card


def _initialise(model: nn.Module, path: str) -> dict[str, str]:
    """Start *model* from the weights in *path* (safetensors only); returns its record.

    The file must hold exactly the parameters of the architecture being
    trained (same network, same ``--base``); anything else is refused before
    a folder is created.
    """
    tensors, _ = load_weights(path)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParameterError(f"--init {Path(path).name}: the weights do not fit this "
                             f"network ({first})") from None
    return {"file": Path(path).name, "sha256": file_sha256(path)}


def _data_recipe(config: TrainConfig) -> dict[str, Any]:
    recipe: dict[str, Any] = dict(DATA_RECIPE) if config.data == "mni" else {
        "source": "toy ellipsoid"}
    if config.volume_resolution > 0:
        recipe["volume_resolution"] = VOLUME_RESOLUTION_RECIPE.format(
            p=config.volume_resolution, m=VOLUME_MARGIN)
    if config.anatomy == "varied":
        recipe["anatomy"] = {
            "what": f"{config.anatomy_pool} varied anatomies of the training blocks beside the "
                    f"blocks themselves (all drawn alike by brain size), one replaced every "
                    f"{config.anatomy_refresh} steps (engine.data.anatomy.vary_anatomy)",
            "ranges": TRAINING_VARIATION.record(),
        }
    return recipe


class AnatomyPool:
    """Varied anatomies of the training blocks, added to a :class:`SliceSynthesizer`.

    *size* anatomies (each: every training block varied by
    :func:`engine.data.anatomy.vary_anatomy`) are held beside the original
    blocks; every *refresh* steps the oldest is replaced. Anatomy ``j`` is drawn
    from a generator seeded by ``(seed, j)`` alone, so a run resumed at step
    ``s`` holds exactly the anatomies an uninterrupted run holds at ``s``.
    """

    def __init__(self, synth: SliceSynthesizer, blocks: list[TissueBlock], *, size: int,
                 refresh: int, seed: int, step: int = 0) -> None:
        self.synth, self.blocks = synth, blocks
        self.size, self.refresh, self.seed = int(size), int(refresh), int(seed)
        self.centres = [deep_csf_centre(b) for b in blocks]
        self.index: dict[tuple[int, int], int] = {}
        n = self.drawn(step)
        t0 = time.perf_counter()
        for j in range(n - self.size, n):
            self._put(j)
        log.info("anatomy pool: %d varied anatomies of %d blocks, %.1f s", self.size,
                 len(blocks), time.perf_counter() - t0)

    def drawn(self, step: int) -> int:
        """Anatomies drawn so far at *step*."""
        return self.size + step // self.refresh

    def _put(self, j: int) -> None:
        slot = j % self.size
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + j)
        for bi, block in enumerate(self.blocks):
            varied = vary_anatomy(block, gen, TRAINING_VARIATION,
                                  ventricle_centre=self.centres[bi])
            key = (slot, bi)
            if key in self.index:
                self.synth.replace_block(self.index[key], varied)
            else:
                self.index[key] = self.synth.add_block(varied)

    def advance(self, step: int) -> None:
        """Before the batch of *step*: replace the oldest anatomy when one is due."""
        if step > 0 and step % self.refresh == 0:
            self._put(self.drawn(step) - 1)


def _clean_up(created: list[Path], written: list[Path], ckpt: Path) -> None:
    """After a failed or cancelled run: remove what it wrote, except a checkpoint.

    Its temporary files go. A checkpoint the run wrote stays (``--resume``
    needs it), and with it the folder. Folders the run created are removed
    when empty; files it did not write are never touched.
    """
    keep = ckpt if ckpt in written else None
    for path in [*written, ckpt.with_suffix(".tmp")]:
        if path != keep:
            path.unlink(missing_ok=True)
    if keep is not None:
        log.info("run stopped; %s kept for --resume", keep)
    for folder in created:  # deepest first
        try:
            folder.rmdir()
        except OSError:  # not empty (a checkpoint, or files of someone else)
            break


def _run(config: TrainConfig, out: Path, model: nn.Module, opt: torch.optim.Optimizer,
         gen: torch.Generator, synth: SliceSynthesizer, loss_fn: SegmentationLoss,
         val_set: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], device: torch.device,
         args: dict[str, Any], *, pool: AnatomyPool | None, step: int,
         history: list[dict[str, Any]],
         runs: list[dict[str, Any]], command: str | None, init: dict[str, str] | None,
         recipe: dict[str, Any] | None, progress: Callable[[float, str], None] | None,
         cancel: CancelToken | None, written: list[Path]) -> dict[str, Any]:
    """The loop of :func:`train` from *step*; appends every file it writes to *written*."""
    ckpt = out / "checkpoint.safetensors"
    use_amp = device.type == "cuda"
    runs.append({"command": command, "from_step": step, "to_step": step})
    model.train()
    t_start = time.perf_counter()
    running: dict[str, float] = {}
    first_loss: float | None = None
    losses: list[float] = []
    while step < config.steps:
        check_cancel(cancel)
        if pool is not None:
            pool.advance(step)
        x, y = synth.batch(config.batch_size, config.volumes_per_step)
        parts = optimiser_step(model, opt, loss_fn, x, y, _lr_at(step, config), amp=use_amp)
        step += 1
        losses.append(parts["loss"])
        if first_loss is None:
            first_loss = parts["loss"]
        for k, v in parts.items():
            running[k] = 0.98 * running.get(k, v) + 0.02 * v
        report(progress, step / config.steps,
               f"step {step}/{config.steps} loss {running['loss']:.4f}")
        if step % 100 == 0:
            log.info("training %s", json.dumps({
                "step": step, "seconds": round(time.perf_counter() - t_start, 1),
                "loss": round(running["loss"], 4)}))
        if config.val_every > 0 and (step % config.val_every == 0 or step == config.steps):
            val = _validate(model, config, device, val_set)
            entry = {"step": step, "seconds": round(time.perf_counter() - t_start, 1),
                     "loss": round(running["loss"], 4), **val}
            history.append(entry)
            log.info("validation %s", json.dumps(entry))
        runs[-1]["to_step"] = step
        if step % config.checkpoint_every == 0 or step == config.steps:
            _save_checkpoint(ckpt, model, opt, gen, step, history, config, runs, init)
            if ckpt not in written:
                written.append(ckpt)

    seconds = time.perf_counter() - t_start
    recorded = recorded_config(config)
    card = {
        "name": config.model,
        "architecture": {"name": config.model, "class": type(model).__name__,
                         "arguments": args},
        "parameters": count_parameters(model),
        "input": {"context": config.context, "channels": 2 * config.context + 1,
                  "plane": "axial", "spacing_mm": 1.0,
                  "normalisation": NORMALISATION},
        "labels": {"0": "background", "1": "CSF", "2": "gray matter", "3": "white matter"},
        "training": {
            "command": command,
            "runs": runs,
            "config": recorded,
            **({"initialised_from": init} if init else {}),
            **({"recipe": recipe} if recipe else {}),
            "device": str(device),
            "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                            else platform.processor() or platform.machine()),
            "steps": step,
            "seconds_this_run": round(seconds, 1),
            "loss_first": first_loss,
            "loss_last_smoothed": round(running.get("loss", float("nan")), 4),
            "loss": "soft Dice (CSF, GM, WM) + cross-entropy + lambda_tv * TV(probabilities); "
                    "deep supervision weights 1, 1/2, 1/4 (normalised)",
            "data_recipe": _data_recipe(config),
            "seed": config.seed,
        },
        "validation": history,
        "software": _software(),
        "argv": [Path(sys.argv[0]).name, *sys.argv[1:]],  # no path of this machine
    }
    weights = out / f"{config.model}.safetensors"
    written.append(weights.with_suffix(".tmp"))  # the weights replace an older file only whole
    save_weights(model, weights, card)
    card["_losses"] = losses  # in-memory only (tests), not written
    return card
