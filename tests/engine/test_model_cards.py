"""Model cards in plain words: what each shipped network was trained on."""

from __future__ import annotations

import json

from engine.cli import main
from engine.models.cards import card_facts, model_cards


def test_every_shipped_network_says_it_saw_one_synthetic_anatomy():
    cards = model_cards()
    assert {"delineo", "unet"} <= set(cards)
    for name, card in cards.items():
        facts = dict(card_facts(card))
        assert facts["Network"] == name
        assert "MNI ICBM152" in facts["Trained on"] and "no scan of a person" in facts["Trained on"]
        if "Validation (training anatomy)" in facts:
            assert "training anatomy" in facts["Validation (training anatomy)"]
        if "Held out" in facts:
            assert "same anatomy" in facts["Held out"]


def test_a_resumed_run_shows_its_first_command_and_each_resumption():
    card = {"name": "n", "training": {"steps": 30, "device": "cpu", "command": "train --resume",
                                      "runs": [{"command": "train --anatomy varied",
                                                "from_step": 0, "to_step": 10},
                                               {"command": "train --resume", "from_step": 10,
                                                "to_step": 30}]}}
    text = dict(card_facts(card))["Training"]
    assert "command: train --anatomy varied; resumed at step 10 with: train --resume" in text


def test_a_run_started_from_earlier_weights_says_so_and_what_resolutions_it_saw():
    card = {"name": "n", "training": {
        "steps": 800, "device": "cpu", "command": "train --init delineo.safetensors",
        "initialised_from": {"file": "delineo.safetensors", "sha256": "ab" * 32},
        "data_recipe": {"resolution": "in-plane blur", "volume_resolution": "p=0.4: coarser"}}}
    facts = dict(card_facts(card))
    assert facts["Started from"].startswith("the weights delineo.safetensors (sha256 abababab")
    assert facts["Resolutions seen"] == "in-plane blur; whole-volume simulation p=0.4: coarser"
    assert "Started from" not in dict(card_facts({"name": "m", "training": {"steps": 1}}))


def test_cards_without_weights_or_unreadable_are_skipped(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"name": "a"}))  # no weights beside it
    (tmp_path / "b.json").write_text("{not json")
    (tmp_path / "b.safetensors").write_bytes(b"")
    (tmp_path / "c.json").write_text(json.dumps({"name": "c", "parameters": 5}))
    (tmp_path / "c.safetensors").write_bytes(b"")
    assert list(model_cards(tmp_path)) == ["c"]


def test_cli_models_lists_the_cards(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("delineo\n") and "Trained on:" in out and "Held out:" in out
    assert "brain_mask (brain extraction)\n    Network: deepbet 1.0.2" in out
    assert main(["models", "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert cards["delineo"]["architecture"]["class"] == "DelineoNet"


def test_the_default_tissue_network_says_it_saw_whole_heads_and_lesions():
    """delineo_lesion_varied segments tissue in the default pipeline: its card must say
    what its pool held, and what it started from."""
    facts = dict(card_facts(model_cards()["delineo_lesion_varied"]))
    assert facts["Segments"] == "CSF, gray matter, white matter, lesion"
    assert facts["Pool"].startswith("256 synthetic volumes: 64 whole heads")
    assert "104 phantoms on a varied anatomy" in facts["Pool"]
    assert "FLAIR-like 33" in facts["Pool"]
    assert facts["Started from"].startswith("the shipped network delineo")
