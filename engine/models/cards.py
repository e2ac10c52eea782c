"""What a shipped network was trained on, in plain words: the model cards read for people.

Every network ships with a JSON model card beside its weights
(:func:`engine.models.weights.save_weights` writes it). :func:`model_cards`
reads the cards of the shipped networks; :func:`card_facts` turns one into
``(heading, text)`` rows a reader can take in: what it segments, what data it
saw (and that it is synthetic, from one anatomy), what was held out, how it
was trained, and its validation figures -- labelled as figures on the
*training anatomy*, which they are. The viewer's Help → About the Networks and
``delineo-engine models`` show these rows.

Examples
--------
>>> card = {"name": "toy", "parameters": 1000, "labels": {"0": "background", "1": "CSF"},
...         "training": {"data_recipe": {"source": "phantoms"}, "steps": 10,
...                      "seconds_this_run": 60.0, "device": "cpu"}}
>>> dict(card_facts(card))["Segments"]
'CSF'
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .weights import models_dir

__all__ = ["TRAINING_ANATOMY", "card_facts", "model_cards"]

log = logging.getLogger(__name__)

#: The one anatomy every shipped network learnt from (the demo brain is this anatomy).
TRAINING_ANATOMY = ("the MNI ICBM152 2009a template (an average of 152 adults), rendered as "
                    "synthetic phantoms; no scan of a person")


def model_cards(folder: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The JSON cards of the shipped networks, by name (unreadable cards are skipped)."""
    where = Path(folder) if folder is not None else models_dir()
    cards: dict[str, dict[str, Any]] = {}
    for path in sorted(where.glob("*.json")):
        if not path.with_suffix(".safetensors").exists():
            continue
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable model card (%s)", path.name, exc)
            continue
        if isinstance(card, dict):
            cards[str(card.get("name") or path.stem)] = card
    return cards


def _last_validation(card: dict[str, Any]) -> str:
    rows = card.get("validation") or []
    if not rows or not isinstance(rows, list):
        return ""
    last = rows[-1]
    parts = []
    for key, value in last.items():
        if isinstance(value, dict) and "mean" in value:
            parts.append(f"{key}: mean Dice {value['mean']:.3f}")
    return "; ".join(parts)


def card_facts(card: dict[str, Any]) -> list[tuple[str, str]]:
    """``(heading, text)`` rows describing a model card for a reader (see the module doc)."""
    training = card.get("training") or {}
    recipe = training.get("data_recipe") or {}
    labels = card.get("labels") or {}
    rows: list[tuple[str, str]] = [("Network", str(card.get("name", "?")))]
    arch = (card.get("architecture") or {}).get("class")
    if arch or card.get("parameters"):
        rows.append(("Architecture", f"{arch or '?'}, {int(card.get('parameters', 0)):,} "
                     "parameters"))
    names = [str(v) for k, v in sorted(labels.items(), key=lambda kv: int(kv[0]))
             if str(k) != "0"]
    if names:
        rows.append(("Segments", ", ".join(names)))
    inp = card.get("input") or {}
    if inp:
        rows.append(("Input", f"{inp.get('plane', '?')} slices with {inp.get('context', 0)} "
                     f"neighbour(s) on each side, resampled to {inp.get('spacing_mm', '?')} mm"))
    rows.append(("Trained on", f"{recipe.get('source', 'synthetic data')}: "
                 f"{TRAINING_ANATOMY}"))
    if recipe.get("contrast"):
        rows.append(("Contrasts seen", str(recipe["contrast"])))
    if recipe.get("spatial"):
        rows.append(("Shape variation", str(recipe["spatial"])))
    anatomy = recipe.get("anatomy")
    if isinstance(anatomy, dict):
        r = anatomy.get("ranges") or {}
        rows.append(("Anatomy variation", f"{anatomy.get('what', '')}: in 3-D, rotation up to "
                     f"{r.get('rotation_deg', '?')} deg about each axis, scaling "
                     f"{r.get('scale', '?')} per axis, hemisphere asymmetry up to "
                     f"{r.get('asymmetry', '?')}, elastic warps up to {r.get('elastic_mm', '?')}"
                     f" mm, enlarged ventricles (strength up to {r.get('ventricles', '?')}), "
                     f"cortical atrophy (up to {r.get('atrophy', '?')} of an erosion step). "
                     "Still one template's anatomy, deformed"))
    if recipe.get("resolution"):
        rows.append(("Resolutions seen", str(recipe["resolution"]) + (
            "; whole-volume simulation " + str(recipe["volume_resolution"])
            if recipe.get("volume_resolution") else "")))
    pool = training.get("pool")
    if isinstance(pool, dict) and pool.get("volumes"):  # a lesion run's drawn pool
        seqs = ", ".join(f"{k.upper() if k != 'flair' else 'FLAIR-like'} {v}"
                         for k, v in (pool.get("contrasts") or {}).items())
        rows.append(("Pool", f"{pool['volumes']} synthetic volumes: "
                     f"{pool.get('whole_heads', 0)} whole heads (skull, scalp, eyes, neck "
                     f"around the template's brain), {pool.get('varied_anatomy', 0)} phantoms "
                     f"on a varied anatomy, {pool.get('lesion_free_volumes', 0)} without "
                     f"lesions, {pool.get('lesions', 0)} synthetic lesions in all"
                     + (f"; sequences of the phantoms {seqs}" if seqs else "")))
    if recipe.get("held_out_slab_k"):
        k0, k1 = recipe["held_out_slab_k"]
        rows.append(("Held out", f"axial slab k = {k0}-{k1 - 1} of the template, never used "
                     "for training; it is still the same anatomy"))
    if training:
        hours = float(training.get("seconds_this_run", 0.0)) / 3600.0
        runs = [r for r in training.get("runs") or [] if isinstance(r, dict)]
        if len(runs) > 1:  # the first command holds the recipe; the others resumed it
            how = f"command: {runs[0].get('command')}; " + "; ".join(
                f"resumed at step {r.get('from_step', '?')} with: {r.get('command')}"
                for r in runs[1:])
        else:
            how = f"command: {training.get('command', 'see docs/model.md')}"
        rows.append(("Training", f"{training.get('steps', '?')} steps on "
                     f"{training.get('device', '?')} ({hours:.1f} h for the last run); {how}"))
        start = training.get("initialised_from")
        if isinstance(start, dict):
            rows.append(("Started from", f"the weights {start.get('file', '?')} (sha256 "
                         f"{str(start.get('sha256', '?'))[:12]}...), trained before by the "
                         "command docs/model.md gives; the steps above continue them"))
        elif isinstance(training.get("init"), str) and training["init"]:
            rows.append(("Started from", f"the shipped network {training['init']} (its "
                         "weights of the day); the steps above continue them"))
    validation = _last_validation(card)
    if validation:
        rows.append(("Validation (training anatomy)", validation + " -- fresh phantoms of "
                     "the training anatomy, counted outside the held-out slab: expect lower "
                     "figures on other brains"))
    software = card.get("software") or {}
    if software:
        rows.append(("Software", ", ".join(f"{k} {v}" for k, v in software.items()
                                           if k != "platform")))
    return rows
