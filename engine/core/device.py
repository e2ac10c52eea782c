"""Torch device selection shared by every method and model.

torch is imported by the functions, not with the module: the command line's
parser and the viewer import this module without needing torch yet.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .errors import ParameterError, unknown_name

if TYPE_CHECKING:
    import torch

__all__ = ["PRECISIONS", "fast_bfloat16", "resolve_device", "resolve_precision"]

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a device into a torch device.

    ``"auto"`` (and ``None``) picks CUDA when available, else the CPU. Asking
    for CUDA on a machine without it raises :class:`~engine.core.errors.ParameterError`.
    """
    import torch

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


#: Arithmetic of a network's forward passes: ``auto`` is bfloat16 where the device computes
#: it natively (:func:`fast_bfloat16`), float32 elsewhere.
PRECISIONS = ("auto", "float32", "bfloat16")


def fast_bfloat16(device: torch.device) -> bool:
    """Whether *device* computes bfloat16 convolutions natively: a CUDA GPU, or a CPU
    with AMX tiles (where oneDNN runs them on the tile unit). Other CPUs keep
    float32: bfloat16 without the tile unit was not measured to be faster."""
    import torch

    if device.type == "cuda":
        return True
    if device.type == "cpu":
        probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool(probe is not None and probe())
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of the forward passes on *device* for a ``precision`` of :data:`PRECISIONS`."""
    import torch

    if precision not in PRECISIONS:
        raise ParameterError(f"precision must be one of {', '.join(PRECISIONS)}, "
                             f"not {precision!r}")
    if precision == "bfloat16" or (precision == "auto" and fast_bfloat16(device)):
        return torch.bfloat16
    return torch.float32
