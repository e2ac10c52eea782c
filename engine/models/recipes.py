"""Recipes of the shipped tissue weights: one call (``train --recipe NAME``) reproduces them.

Some shipped weights come from more than one training run: the shipped
``delineo`` is an anatomy-varied run of 3,000 steps continued by an 800-step
whole-volume resolution stage started from its weights (docs/model.md). A
recipe lists those runs as **stages** of :func:`engine.models.training.train`,
each with its full :class:`~engine.models.training.TrainConfig`; a stage may
start from the weights an earlier stage wrote (``init_from``). Every stage but
the last trains into ``OUT/<stage>/``, the last into ``OUT`` itself, so the
result lies where a plain ``train`` puts it (``OUT/<model>.safetensors``), and
its card records the recipe and the stage (``training.recipe``) besides its
own configuration and the digest of the weights it started from.

``resume=True`` keeps every stage whose weights are already there with the
recipe's configuration and all its steps, and continues the stage in progress
from its checkpoint; without it every stage is trained afresh.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import ParameterError
from ..core.jobs import CancelToken, report, scaled_progress
from .training import RESUMABLE_CHANGES, TrainConfig, recorded_config, train

__all__ = ["RECIPES", "Stage", "recipe_configs", "train_recipe"]


@dataclass(frozen=True)
class Stage:
    """One ``train`` run of a recipe."""

    name: str
    #: TrainConfig fields (``threads`` and ``device`` come from the call).
    config: dict[str, Any] = field(default_factory=dict)
    #: The earlier stage whose weights this one starts from ("": a random start).
    init_from: str = ""


#: The recipes of the shipped weights (the commands of docs/model.md, as stages).
RECIPES: dict[str, tuple[Stage, ...]] = {
    "delineo": (
        # delineo-engine train --model delineo --steps 3000 --anatomy varied
        Stage("varied", {"model": "delineo", "model_args": {"base": 16}, "steps": 3000,
                         "anatomy": "varied"}),
        # ... --steps 800 --anatomy varied --volume-resolution 0.4 --init <the above>
        #     --lr 5e-4 --seed 1 --val-every 400
        Stage("resolution", {"model": "delineo", "model_args": {"base": 16}, "steps": 800,
                             "anatomy": "varied", "volume_resolution": 0.4, "lr": 5e-4,
                             "seed": 1, "val_every": 400},
              init_from="varied"),
    ),
    # delineo-engine train --model unet --steps 2600 (the recipe; the shipped file came
    # from an interrupted run, docs/model.md)
    "unet": (Stage("template", {"model": "unet", "model_args": {"base": 16},
                                "steps": 2600}),),
}


def _recipe(name: str) -> tuple[Stage, ...]:
    if name not in RECIPES:
        raise ParameterError(f"unknown recipe {name!r}; choose one of "
                             + ", ".join(sorted(RECIPES)))
    return RECIPES[name]


def _folder(out: Path, stages: tuple[Stage, ...], index: int) -> Path:
    return out if index == len(stages) - 1 else out / stages[index].name


def recipe_configs(name: str, out: str | Path, *, threads: int = 0,
                   device: str = "auto") -> list[tuple[Stage, TrainConfig, Path]]:
    """Each stage of recipe *name* with its validated configuration and folder."""
    stages, out = _recipe(name), Path(out)
    result: list[tuple[Stage, TrainConfig, Path]] = []
    written: dict[str, Path] = {}
    for i, stage in enumerate(stages):
        config = TrainConfig(**{**stage.config, "threads": threads, "device": device})
        if stage.init_from:
            if stage.init_from not in written:  # pragma: no cover - a recipe error
                raise ParameterError(f"recipe {name}: stage {stage.name} starts from "
                                     f"{stage.init_from!r}, not an earlier stage")
            config.init = str(written[stage.init_from])
        folder = _folder(out, stages, i)
        written[stage.name] = folder / f"{config.model}.safetensors"
        result.append((stage, config.validated(), folder))
    return result


def _finished(folder: Path, config: TrainConfig) -> bool:
    """Whether *folder* holds this stage's weights: its configuration, all its steps."""
    weights = folder / f"{config.model}.safetensors"
    card_path = weights.with_suffix(".json")
    if not (weights.is_file() and card_path.is_file()):
        return False
    try:
        training = json.loads(card_path.read_text())["training"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    have = dict(training.get("config", {}))
    have.setdefault("init", "")
    same = all(have.get(k) == v for k, v in recorded_config(config).items()
               if k not in RESUMABLE_CHANGES)
    return same and training.get("steps") == config.steps


def train_recipe(
    name: str,
    out_dir: str | Path,
    *,
    threads: int = 0,
    device: str = "auto",
    resume: bool = False,
    command: str | None = None,
    progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Train every stage of recipe *name* into *out_dir*; returns the last stage's card.

    Progress runs over all stages (weighted by their steps). With *resume*,
    finished stages are kept (:func:`_finished`) and the stage in progress
    continues from its checkpoint.
    """
    plan = recipe_configs(name, out_dir, threads=threads, device=device)
    total = sum(config.steps for _, config, _ in plan)
    done = 0
    card: dict[str, Any] = {}
    for i, (stage, config, folder) in enumerate(plan):
        label = f"stage {i + 1}/{len(plan)} {stage.name}"
        if resume and _finished(folder, config):
            card = json.loads((folder / f"{config.model}.json").read_text())
            done += config.steps
            report(progress, done / total, f"{label}: already trained, kept")
            continue
        scaled = scaled_progress(progress, done / total, (done + config.steps) / total,
                                 f"{label}: ")
        resumed = resume and (folder / "checkpoint.safetensors").is_file()
        card = train(config, folder, resume=resumed, command=command,
                     recipe={"name": name, "stage": stage.name, "index": i + 1,
                             "of": len(plan), "init_from": stage.init_from or None},
                     progress=scaled, cancel=cancel)
        done += config.steps
    return card
