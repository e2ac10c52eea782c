"""Weights files: ``safetensors`` tensors plus a JSON model card, read and written.

* :func:`models_dir`, :func:`model_path` -- where the shipped weights live
  (``resources/models/``; ``DELINEO_MODELS_DIR`` overrides);
* :func:`load_weights` -- tensors and metadata of a ``.safetensors`` file;
  anything else is refused, and a pickle (``torch.save``) file is refused
  *before* it is unpickled, whatever its name;
* :func:`load_model` -- a network built from its card and loaded strictly;
* :func:`save_weights` -- float32 weights and the card beside them.

The loader reads only ``architecture`` (``name``, ``arguments``) from a card,
and :meth:`engine.models.predictor.Predictor.from_name` adds ``name`` and
``input.context``; every other field (training record, software versions,
descriptions such as ``input.normalisation``) is documentation and may say
anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import DelineoError

if TYPE_CHECKING:  # torch loads with the weights (safetensors' torch reader), not before:
    import torch  # the model cards are read without it (``delineo-engine models``)
    from torch import nn

__all__ = [
    "ModelLoadError",
    "load_model",
    "load_weights",
    "model_path",
    "models_dir",
    "save_weights",
]


class ModelLoadError(DelineoError):
    """A weights file is missing, not safetensors, or does not fit its architecture."""


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


def load_weights(path: str | Path, *, tensors: bool = True
                 ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a ``.safetensors`` file; anything else is refused.

    A pickle (``torch.save``) file is rejected before it is unpickled, whatever
    its name: only the safetensors format (a JSON header and raw tensor bytes)
    is parsed. ``tensors=False`` reads the header's metadata only (an empty
    dictionary of tensors), e.g. a checkpoint's recipe.
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
        found: dict[str, torch.Tensor] = {}
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = dict(fh.metadata() or {})
            for key in fh.keys() if tensors else ():
                found[key] = fh.get_tensor(key)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"not a valid safetensors file ({exc})", path=path) from None
    return found, meta


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


def save_weights(model: nn.Module, path: str | Path, card: dict[str, Any]) -> Path:
    """Write the model's float32 weights as safetensors, the card beside it as JSON.

    The safetensors metadata repeats the card's ``name``, ``architecture`` and
    ``input``, so the weights still load if the JSON file is lost.
    """
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
