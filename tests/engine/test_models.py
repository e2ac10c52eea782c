"""Networks, loss terms, training (tiny), weights files and the shipped models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from engine.core.errors import ParameterError
from engine.models import MODELS, build_model, count_parameters
from engine.models.losses import SegmentationLoss, soft_dice_loss, total_variation
from engine.models.predictor import Predictor
from engine.models.training import TrainConfig, load_checkpoint, train
from engine.models.weights import (
    ModelLoadError,
    load_model,
    load_weights,
    models_dir,
    save_weights,
)


# -- loss terms on hand-made tensors ---------------------------------------------
def _onehot_probs(labels: torch.Tensor, n: int = 4) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, n).movedim(-1, 1).float()


def test_soft_dice_is_zero_for_a_perfect_prediction_and_one_for_disjoint():
    target = torch.tensor([[[0, 1], [2, 3]]])
    assert float(soft_dice_loss(_onehot_probs(target), target)) == pytest.approx(0, abs=1e-6)
    shifted = torch.tensor([[[0, 2], [3, 1]]])  # every foreground pixel wrong
    assert float(soft_dice_loss(_onehot_probs(shifted), target)) == pytest.approx(1, abs=1e-4)


def test_soft_dice_value_on_a_half_overlap():
    target = torch.tensor([[[1, 1, 0, 0]]])
    probs = torch.zeros(1, 2, 1, 4)
    probs[0, 1, 0, :] = torch.tensor([1.0, 0.0, 1.0, 0.0])
    probs[0, 0] = 1 - probs[0, 1]
    # class 1: intersection 1, |S| 2, |T| 2 -> Dice 0.5
    assert float(soft_dice_loss(probs, target)) == pytest.approx(0.5, abs=1e-4)


def test_total_variation_of_constant_and_step_maps():
    assert float(total_variation(torch.full((2, 4, 5, 6), 0.25))) == 0.0
    step = torch.tensor([0.0, 0.0, 1.0, 1.0]).view(1, 1, 1, 4)
    assert float(total_variation(step)) == pytest.approx(1 / 3)  # one jump in 3 differences
    ramp2d = torch.zeros(1, 1, 3, 3)
    ramp2d[0, 0, 2, :] = 1.0  # a jump along H only: 3 of 6 H-differences, no W change
    assert float(total_variation(ramp2d)) == pytest.approx(0.5)


def test_segmentation_loss_parts_and_deep_supervision():
    target = torch.randint(0, 4, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    uniform = torch.zeros(2, 4, 8, 8)
    loss, parts = SegmentationLoss(lambda_tv=0.0, dice_weight=0.0)(uniform, target)
    assert parts["ce"] == pytest.approx(math.log(4), rel=1e-5)
    assert float(loss) == pytest.approx(math.log(4), rel=1e-5)
    assert parts["tv"] == 0.0
    perfect = 30 * _onehot_probs(target)
    loss_deep, _ = SegmentationLoss(lambda_tv=0.1)([perfect, perfect, perfect], target)
    tv = float(total_variation(perfect.softmax(1)))
    assert float(loss_deep) == pytest.approx(0.1 * tv, abs=1e-4)
    noisy = torch.randn(2, 4, 8, 8)
    worse, _ = SegmentationLoss(lambda_tv=0.1)([perfect, noisy], target)
    assert float(worse) > float(loss_deep)


# -- networks ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_networks_shapes_sizes_and_deep_outputs(name):
    net = build_model(name, in_channels=3, base=8)
    x = torch.randn(2, 3, 32, 48)
    net.eval()
    assert net(x).shape == (2, 4, 32, 48)
    net.train()
    outs = net(x, deep=True)
    assert all(o.shape == (2, 4, 32, 48) for o in outs)
    assert len(outs) == (3 if name == "delineo" else 1)
    full = build_model(name)
    assert 300_000 < count_parameters(full) < 1_000_000
    assert full.divisor == 8



def test_delineo_gates_in_place_at_inference_with_the_same_numbers():
    """Without gradients the decoder gates its concatenation in place: the shipped
    network's output is bit-identical to the gradient-tracking forward, and the input
    and gradients are untouched."""
    net = Predictor.from_name("delineo_lesion_varied").model.eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 80).contiguous(memory_format=torch.channels_last)
    before = x.clone()
    tracked = net(x)
    assert tracked.requires_grad
    with torch.inference_mode():
        fast = net(x)
    with torch.no_grad():
        plain = net(x)
    assert torch.equal(fast, tracked.detach()) and torch.equal(plain, fast)
    assert torch.equal(x, before)
    tracked.sum().backward()  # the tracked pass kept what its gradient needs
    gates = [stage.gate for stage in net.decoder.values()]
    assert all(g.fc1.weight.grad is not None and g.fc1.weight.grad.abs().sum() > 0
               for g in gates)

def test_unknown_model_and_bad_arguments_are_parameter_errors():
    with pytest.raises(ParameterError, match="unknown model"):
        build_model("resnet")
    with pytest.raises(ParameterError, match="bad arguments"):
        build_model("unet", nonsense=1)


# -- training -----------------------------------------------------------------------
def _tiny(**changes):
    base = dict(model="unet", model_args={"base": 8}, steps=30, batch_size=8, crop=(32, 32),
                data="toy", val_every=0, checkpoint_every=10, device="cpu", warmup=3, lr=1e-2,
                seed=3)
    base.update(changes)
    return TrainConfig(**base)


def test_tiny_training_run_decreases_the_loss(tmp_path):
    card = train(_tiny(), tmp_path, command="test")
    losses = card["_losses"]
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5])
    written = json.loads((tmp_path / "unet.json").read_text())
    assert written["architecture"]["name"] == "unet"
    assert written["parameters"] == card["parameters"]
    assert written["training"]["command"] == "test"
    assert written["software"]["torch"] == torch.__version__
    model, _ = load_model(tmp_path / "unet.safetensors")
    assert count_parameters(model) == card["parameters"]


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    from engine.core.jobs import Cancelled, CancelToken

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(_tiny(steps=8, checkpoint_every=4), straight)
    token = CancelToken()
    with pytest.raises(Cancelled):  # interrupted after the step-4 checkpoint
        train(_tiny(steps=8, checkpoint_every=4), resumed, cancel=token,
              progress=lambda f, _m: token.cancel() if f >= 0.5 else None)
    assert not (resumed / "unet.safetensors").exists()
    train(_tiny(steps=8, checkpoint_every=4), resumed, resume=True)
    a, _ = load_weights(straight / "unet.safetensors")
    b, _ = load_weights(resumed / "unet.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_resume_refuses_a_changed_recipe_and_records_every_run(tmp_path):
    from engine.core.errors import ParameterError
    from engine.core.jobs import Cancelled, CancelToken

    token = CancelToken()
    with pytest.raises(Cancelled):
        train(_tiny(steps=8, checkpoint_every=4), tmp_path, cancel=token, command="first",
              progress=lambda f, _m: token.cancel() if f >= 0.5 else None)
    with pytest.raises(ParameterError, match="batch_size 8 -> 6"):
        train(_tiny(steps=8, checkpoint_every=4, batch_size=6), tmp_path, resume=True)
    card = train(_tiny(steps=8, checkpoint_every=4, threads=1), tmp_path, resume=True,
                 command="second")
    assert [(r["command"], r["from_step"], r["to_step"]) for r in card["training"]["runs"]] \
        == [("first", 0, 4), ("second", 4, 8)]


def test_a_run_that_fails_its_checks_creates_no_folder(tmp_path):
    out = tmp_path / "new" / "run"
    with pytest.raises(ParameterError, match="multiple of 8"):
        train(_tiny(crop=(30, 30)), out)
    with pytest.raises(ParameterError, match="no checkpoint"):
        train(_tiny(), out, resume=True)
    assert not (tmp_path / "new").exists()


def _cancel_at(step: int, steps: int):
    from engine.core.jobs import CancelToken

    token = CancelToken()
    return token, lambda f, _m: token.cancel() if f >= step / steps else None


def test_a_cancelled_run_removes_the_folders_it_created(tmp_path):
    from engine.core.jobs import Cancelled

    out = tmp_path / "new" / "run"
    token, progress = _cancel_at(2, 8)  # before the first checkpoint (step 4)
    with pytest.raises(Cancelled):
        train(_tiny(steps=8, checkpoint_every=4), out, cancel=token, progress=progress)
    assert not (tmp_path / "new").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_leaves_a_folder_the_user_had_as_it_was(tmp_path, monkeypatch):
    from engine.data.synthesis import SliceSynthesizer

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    calls = []

    def failing_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 6:  # after the step-4 checkpoint
            raise RuntimeError("synthetic failure")
        return original(self, *args, **kwargs)

    original = SliceSynthesizer.batch
    monkeypatch.setattr(SliceSynthesizer, "batch", failing_batch)
    with pytest.raises(RuntimeError, match="synthetic failure"):
        train(_tiny(steps=8, checkpoint_every=4), out)
    # the user's file is untouched; the checkpoint stays for --resume; nothing else
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.safetensors", "notes.txt"]
    assert (out / "notes.txt").read_text() == "keep me"


def test_a_cancelled_run_after_a_checkpoint_keeps_it_for_resume(tmp_path):
    from engine.core.jobs import Cancelled

    out = tmp_path / "new"
    token, progress = _cancel_at(6, 8)
    with pytest.raises(Cancelled):
        train(_tiny(steps=8, checkpoint_every=4), out, cancel=token, progress=progress)
    assert [p.name for p in out.iterdir()] == ["checkpoint.safetensors"]


def test_train_defaults_are_the_command_lines():
    from engine.cli.model_commands import TRAIN_DEFAULTS

    config = TrainConfig()
    for key, value in TRAIN_DEFAULTS.items():
        stored = config.model_args.get(key, 16) if key == "base" else getattr(config, key)
        assert stored == value, key


def test_a_run_can_start_from_earlier_weights_and_records_them(tmp_path):
    import hashlib

    train(_tiny(steps=4), tmp_path / "first")
    start = tmp_path / "first" / "unet.safetensors"
    # one step at a vanishing learning rate: the parameters are the starting point's
    # (normalisation statistics, which a forward pass updates, are not compared)
    card = train(_tiny(steps=1, lr=1e-9, init=str(start), volume_resolution=0.5),
                 tmp_path / "second")
    params = [k for k, _ in build_model("unet", in_channels=3, n_classes=4,
                                        base=8).named_parameters()]
    a, _ = load_weights(start)
    b, _ = load_weights(tmp_path / "second" / "unet.safetensors")
    for key in params:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    train(_tiny(steps=1, lr=1e-9), tmp_path / "fresh")  # the same run without --init
    fresh, _ = load_weights(tmp_path / "fresh" / "unet.safetensors")
    assert any(not torch.allclose(a[k], fresh[k], atol=1e-3) for k in params)
    record = card["training"]["initialised_from"]
    assert record == {"file": "unet.safetensors",
                      "sha256": hashlib.sha256(start.read_bytes()).hexdigest()}
    assert card["training"]["config"]["init"] == "unet.safetensors"  # a name, not a path
    assert "p=0.5" in card["training"]["data_recipe"]["volume_resolution"]
    # an interrupted run resumes from its checkpoint without the file it started from,
    # and still records it
    from engine.core.jobs import Cancelled, CancelToken

    token = CancelToken()
    moved = tmp_path / "start.safetensors"
    moved.write_bytes(start.read_bytes())
    with pytest.raises(Cancelled):
        train(_tiny(steps=8, checkpoint_every=4, init=str(moved)), tmp_path / "third",
              cancel=token, progress=lambda f, _m: token.cancel() if f >= 0.5 else None)
    moved.unlink()
    resumed = train(_tiny(steps=8, checkpoint_every=4, init=str(moved)), tmp_path / "third",
                    resume=True)
    assert resumed["training"]["initialised_from"] == {"file": "start.safetensors",
                                                       "sha256": record["sha256"]}
    # weights of another architecture, or a pickle, are refused before a folder is made
    with pytest.raises(ParameterError, match="do not fit"):
        train(_tiny(steps=1, model_args={"base": 4}, init=str(start)), tmp_path / "bad")
    pickled = tmp_path / "pickled.safetensors"
    torch.save(a, pickled)
    with pytest.raises(ModelLoadError, match="pickled"):
        train(_tiny(steps=1, init=str(pickled)), tmp_path / "bad")
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        train(_tiny(steps=1, volume_resolution=-0.1), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_checkpoint_round_trip_restores_model_optimizer_and_rng(tmp_path):
    train(_tiny(steps=4, checkpoint_every=4), tmp_path)
    model = build_model("unet", in_channels=3, n_classes=4, base=8)
    opt = torch.optim.AdamW(model.parameters())
    gen = torch.Generator()
    step, _ = load_checkpoint(tmp_path / "checkpoint.safetensors", model, opt, gen)
    assert step == 4
    assert len(opt.state_dict()["state"]) == len(list(model.parameters()))


# -- weights files --------------------------------------------------------------------
def test_a_pickled_weights_file_is_refused(tmp_path):
    model = build_model("unet", base=8)
    bad = tmp_path / "evil.safetensors"
    torch.save(model.state_dict(), bad)  # a zip of pickles
    with pytest.raises(ModelLoadError, match="pickled"):
        load_weights(bad)
    legacy = tmp_path / "legacy.safetensors"
    torch.save(model.state_dict(), legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(ModelLoadError, match="pickled"):
        load_weights(legacy)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}" + b"\0" * 20)
    with pytest.raises(ModelLoadError):
        load_weights(garbage)


def test_a_safetensors_header_length_ending_in_0x80_is_not_taken_for_a_pickle(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    tensors = {"w": torch.arange(6, dtype=torch.float32)}
    for pad in range(400):  # the header's length byte runs through every value
        save_file(tensors, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("could not produce a header length ending in 0x80")
    loaded, meta = load_weights(path)
    torch.testing.assert_close(loaded["w"], tensors["w"])
    assert meta["pad"].startswith("x")


def test_weights_that_do_not_fit_the_card_are_refused(tmp_path):
    model = build_model("unet", base=8)
    card = {"name": "unet", "architecture": {"name": "unet", "arguments": {"base": 16}},
            "input": {"context": 1}}
    save_weights(model, tmp_path / "unet.safetensors", card)
    with pytest.raises(ModelLoadError, match="do not fit"):
        load_model(tmp_path / "unet.safetensors")


def test_model_cards_are_read_only_for_the_architecture_name_and_context(tmp_path):
    # Cards are records: descriptions such as input.normalisation (the shipped cards still
    # name the old module engine.inference) may say anything, or be missing.
    torch.manual_seed(0)
    model = build_model("unet", base=8).eval()
    card = {"name": "unet", "architecture": {"name": "unet", "arguments": {"base": 8}},
            "input": {"context": 1, "normalisation": "engine.inference.robust_normalise"}}
    save_weights(model, tmp_path / "old" / "unet.safetensors", card)
    bare = {"name": "unet", "architecture": card["architecture"], "input": {"context": 1}}
    save_weights(model, tmp_path / "bare" / "unet.safetensors", bare)
    from engine.data.phantom import synthesize_phantom, toy_tissue_block

    image, _ = synthesize_phantom("t1", noise=0.03, inu=0.2, seed=0,
                                  block=toy_tissue_block((32, 32, 6)))
    outs = [Predictor.from_name(tmp_path / d / "unet.safetensors", device="cpu")
            .predict_array(image.array) for d in ("old", "bare")]
    np.testing.assert_array_equal(outs[0].probabilities, outs[1].probabilities)


SHIPPED_FLOOR = 0.85  # mean Dice (CSF, GM, WM) on a small T1 phantom, documented in docs/model.md


@pytest.mark.parametrize("name", ["unet", "delineo"])
def test_shipped_weights_load_safely_and_reach_the_dice_floor(name):
    path = models_dir() / f"{name}.safetensors"
    assert path.is_file(), f"{path} is not shipped"
    from safetensors.torch import load_file

    tensors = load_file(str(path))  # plain safetensors, no code
    assert all(t.dtype == torch.float32 for t in tensors.values())
    assert path.stat().st_size <= 20 * 2**20
    from engine.data.phantom import synthesize_phantom

    image, truth = synthesize_phantom("t1", noise=0.03, inu=0.2, seed=11)
    # a small phantom: 24 slices around the held-out slab
    sub = image.array[:, :, 66:90]
    pred = Predictor.from_name(name, device="cpu", batch_size=8).predict_array(sub)
    from engine.core.metrics import confusion

    conf = confusion(pred.labels, truth.array[:, :, 66:90], [1, 2, 3])
    mean = np.mean([conf[v].dice for v in (1, 2, 3)])
    assert mean >= SHIPPED_FLOOR


def test_the_names_known_without_torch_are_the_registry_s():
    from engine.models import MODEL_NAMES

    assert tuple(MODELS) == MODEL_NAMES
    assert [build_model(name, base=4).__class__.__name__ for name in MODEL_NAMES] == [
        "UNet", "DelineoNet"]
