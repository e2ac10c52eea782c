"""``train --recipe``: the shipped weights' recipes as stages of ``train``, in one call."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.core.errors import ParameterError
from engine.core.jobs import Cancelled, CancelToken
from engine.models import recipes
from engine.models.recipes import RECIPES, Stage, recipe_configs, train_recipe
from engine.models.weights import load_weights

MODELS = Path(__file__).resolve().parents[2] / "resources" / "models"


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_each_recipe_ends_in_the_configuration_of_the_shipped_weights(tmp_path, name):
    """The last stage of a recipe is the run that wrote the shipped file: its card's
    configuration, key by key (threads and device are the machine's, not the recipe's)."""
    plan = recipe_configs(name, tmp_path)
    stage, config, folder = plan[-1]
    assert folder == tmp_path
    card = json.loads((MODELS / f"{config.model}.json").read_text())["training"]
    want = asdict(config)
    want["init"] = Path(config.init).name if config.init else ""
    for key, value in want.items():
        if key in ("threads", "device"):
            continue
        stored = card["config"].get(key, "" if key == "init" else value)  # older cards
        assert stored == (list(value) if isinstance(value, tuple) else value), key
    assert card["steps"] == config.steps
    if stage.init_from:  # started from the earlier stage's weights, as the card records
        assert card["initialised_from"]["file"] == Path(config.init).name
        assert Path(config.init).parent == tmp_path / stage.init_from


def test_the_delineo_recipe_is_the_documented_two_commands(tmp_path):
    (_, c1, f1), (_, c2, f2) = recipe_configs("delineo", tmp_path, threads=2)
    assert (c1.model, c1.steps, c1.anatomy, c1.seed, c1.lr, c1.volume_resolution,
            c1.init) == ("delineo", 3000, "varied", 0, 2e-3, 0.0, "")
    assert (c2.steps, c2.volume_resolution, c2.lr, c2.seed, c2.val_every) == (
        800, 0.4, 5e-4, 1, 400)
    assert c2.init == str(f1 / "delineo.safetensors") and f1 == tmp_path / "varied"
    assert c1.threads == c2.threads == 2 and f2 == tmp_path


def _tiny_recipe() -> tuple[Stage, ...]:
    common = {"model": "unet", "model_args": {"base": 4}, "batch_size": 2, "crop": (32, 32),
              "data": "toy", "val_every": 0, "warmup": 1, "checkpoint_every": 2}
    return (Stage("first", {**common, "steps": 3, "lr": 1e-2}),
            Stage("second", {**common, "steps": 4, "lr": 1e-3, "seed": 1},
                  init_from="first"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_stages_run_in_turn_and_a_cut_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    monkeypatch.setitem(RECIPES, "tiny", _tiny_recipe())
    seen: list[str] = []
    card = train_recipe("tiny", tmp_path / "whole", threads=1, device="cpu", command="test",
                        progress=lambda f, m: seen.append(m))
    first = tmp_path / "whole" / "first" / "unet.safetensors"
    last = tmp_path / "whole" / "unet.safetensors"
    assert first.is_file() and last.is_file()
    assert card["training"]["recipe"] == {"name": "tiny", "stage": "second", "index": 2,
                                          "of": 2, "init_from": "first"}
    assert card["training"]["initialised_from"] == {"file": "unet.safetensors",
                                                    "sha256": _sha(first)}
    assert card["training"]["steps"] == 4 and card["training"]["config"]["seed"] == 1
    assert seen[0].startswith("stage 1/2 first: step 1/3")
    assert seen[-1].startswith("stage 2/2 second: step 4/4")

    # cut in the second stage, then resumed: the first stage is kept as it is, the second
    # continues from its checkpoint, and the result is the uninterrupted one
    token = CancelToken()

    def stop(fraction: float, message: str) -> None:
        if message.startswith("stage 2/2 second: step 3/"):
            token.cancel()

    cut = tmp_path / "cut"
    with pytest.raises(Cancelled):
        train_recipe("tiny", cut, threads=1, device="cpu", progress=stop, cancel=token)
    assert (cut / "first" / "unet.safetensors").is_file()
    assert (cut / "checkpoint.safetensors").is_file() and not (cut / "unet.safetensors").exists()
    kept = (cut / "first" / "unet.safetensors").stat().st_mtime_ns
    messages: list[str] = []
    train_recipe("tiny", cut, threads=1, device="cpu", resume=True,
                 progress=lambda f, m: messages.append(m))
    assert (cut / "first" / "unet.safetensors").stat().st_mtime_ns == kept
    assert messages[0] == "stage 1/2 first: already trained, kept"
    assert messages[1].startswith("stage 2/2 second: step 3/4")
    a, _ = load_weights(last)
    b, _ = load_weights(cut / "unet.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # a finished stage is kept only with the recipe's own configuration: a changed one
    # is refused by the stage's checkpoint; without resume every stage trains afresh
    changed = _tiny_recipe()
    monkeypatch.setitem(RECIPES, "tiny", (Stage("first", {**changed[0].config, "lr": 5e-3}),
                                          changed[1]))
    with pytest.raises(ParameterError, match="must keep the checkpoint's recipe"):
        train_recipe("tiny", cut, threads=1, device="cpu", resume=True)
    monkeypatch.setitem(RECIPES, "tiny", changed)
    messages.clear()
    train_recipe("tiny", cut, threads=1, device="cpu", progress=lambda f, m: messages.append(m))
    assert not any("kept" in m for m in messages)
    assert (cut / "first" / "unet.safetensors").stat().st_mtime_ns != kept


def test_train_recipe_on_the_command_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(["train", "--recipe", "delineo", "--steps", "5", "--lr", "1e-3",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "drop --steps, --lr" in err[0]
    assert main(["train", "--recipe", "nope", "--out", str(out)]) == 2
    assert "unknown recipe 'nope'" in capsys.readouterr().err
    assert main(["train", "--out", str(out)]) == 2
    assert "needs --model and --steps (or --recipe NAME)" in capsys.readouterr().err
    assert not out.exists()

    monkeypatch.setattr(recipes, "RECIPES", {"tiny": _tiny_recipe()})
    assert main(["train", "--recipe", "tiny", "--out", str(out), "--threads", "1",
                 "--device", "cpu", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["weights"] == str(out / "unet.safetensors")
    assert summary["stages"] == [str(out / "first"), str(out)] and summary["steps"] == 4
    card = json.loads((out / "unet.json").read_text())
    assert card["training"]["recipe"]["name"] == "tiny"
