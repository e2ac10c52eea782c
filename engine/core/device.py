"""Torch device selection shared by every method and model."""

from __future__ import annotations

import logging

import torch

from .errors import ParameterError, unknown_name

__all__ = ["resolve_device"]

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a device into a torch device.

    ``"auto"`` (and ``None``) picks CUDA when available, else the CPU. Asking
    for CUDA on a machine without it raises :class:`~engine.core.errors.ParameterError`.
    """
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParameterError("device 'cuda' was requested but no CUDA GPU is available")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ParameterError(unknown_name("device", device, ("auto", "cpu", "cuda", "cuda:N")))
