"""Segmentation networks and how they are made: the registry of networks by name,
weights I/O, the predictor, losses and training.

``MODELS`` maps a name to a network class (imported with torch when first
asked for; ``MODEL_NAMES`` are the names without it); every class takes keyword
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

import functools
from typing import TYPE_CHECKING, Any

from ..core.errors import ParameterError, unknown_name

if TYPE_CHECKING:
    from torch import nn

    from .delineo_net import DelineoNet
    from .unet import UNet

__all__ = ["MODELS", "MODEL_NAMES", "DelineoNet", "UNet", "build_model", "count_parameters"]

#: The networks' names, known without importing torch (the command line's choices);
#: :data:`MODELS` maps each to its class.
MODEL_NAMES = ("unet", "delineo")


@functools.cache
def _models() -> dict[str, type[nn.Module]]:
    """name -> network class: the networks (and torch) imported on first use, so that
    importing this package -- or its model cards -- does not import torch."""
    from .delineo_net import DelineoNet
    from .unet import UNet

    return {"unet": UNet, "delineo": DelineoNet}


def __getattr__(name: str) -> Any:
    if name == "MODELS":
        return _models()
    if name in ("DelineoNet", "UNet"):
        return _models()["delineo" if name == "DelineoNet" else "unet"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_model(name: str, **arguments: Any) -> nn.Module:
    """Instantiate the network registered as *name* with *arguments*."""
    models = _models()
    try:
        cls = models[name]
    except KeyError:
        raise ParameterError(unknown_name("model", name, sorted(models))) from None
    try:
        return cls(**arguments)
    except TypeError as exc:
        raise ParameterError(f"bad arguments for model {name!r}: {exc}") from None


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
