"""Segmentation networks and how they are made: the registry of networks by name,
weights I/O, the predictor, losses and training.

``MODELS`` maps a name to a network class; every class takes keyword
arguments only (recorded in the model card as ``architecture.arguments``),
exposes ``config`` (those arguments) and ``divisor`` (the input size must be a
multiple of it), and its ``forward(x, deep=False)`` returns logits.

Beside the networks: :mod:`~engine.models.weights` (safetensors weights and
model cards, read and written), :mod:`~engine.models.predictor` (a network
over a whole volume), :mod:`~engine.models.losses` and
:mod:`~engine.models.training` (the loop, checkpoints and validation; the
training samples come from :mod:`engine.data.synthesis`).

Examples
--------
>>> net = build_model("unet", base=8)
>>> count_parameters(net) > 0
True
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..core.errors import ParameterError, unknown_name
from .delineo_net import DelineoNet
from .unet import UNet

__all__ = ["MODELS", "DelineoNet", "UNet", "build_model", "count_parameters"]

#: name -> network class
MODELS: dict[str, type[nn.Module]] = {
    "unet": UNet,
    "delineo": DelineoNet,
}


def build_model(name: str, **arguments: Any) -> nn.Module:
    """Instantiate the network registered as *name* with *arguments*."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ParameterError(unknown_name("model", name, sorted(MODELS))) from None
    try:
        return cls(**arguments)
    except TypeError as exc:
        raise ParameterError(f"bad arguments for model {name!r}: {exc}") from None


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
