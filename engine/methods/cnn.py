"""The shipped networks as registry methods: ``unet``, ``delineo`` and ``delineo_lesion_varied``.

``delineo_lesion_varied`` is the second shipped lesion network
(:mod:`engine.methods.lesion_step`), a ``delineo`` network with a fifth,
lesion output trained on synthetic heads and phantoms with and without
lesions; as a method it segments tissue (its lesion output is left to a
``lesions`` step after it, which then does not run it again). It is the
tissue network of the default pipeline ``head`` (docs/model.md,
*One network for tissue and lesions*).

The weights load on first use (from ``resources/models/``) and stay cached
per device, so running a network twice, or in a pipeline, does not re-read
them. The network code itself lives in :mod:`engine.models` and the
predictor in :mod:`engine.models.predictor`.

Examples
--------
>>> from engine.methods.cnn import CNN_SPECS, CNNParams
>>> [s.name for s in CNN_SPECS], CNNParams().batch_size
(['unet', 'delineo', 'delineo_lesion_varied'], 16)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..core.device import PRECISIONS, resolve_device
from ..core.jobs import CancelToken
from ..core.params import param
from ..core.steps import MethodSpec, SegmentationResult
from ..core.volume import Volume

if TYPE_CHECKING:
    from ..models.predictor import Predictor

__all__ = ["CNN_SPECS", "CNNParams", "cached_predictor"]


@dataclass(frozen=True)
class CNNParams:
    """Parameters of the CNN tissue segmenters."""

    tta: bool = param(False, doc="average with the left-right mirrored prediction")
    batch_size: int = param(16, lo=1, hi=512, unit="slices", doc="slices per forward pass")
    precision: str = param("auto", choices=PRECISIONS,
                           doc="arithmetic of the network: auto is bfloat16 on a GPU or a CPU "
                               "with AMX, float32 elsewhere")


_PREDICTORS: dict[tuple[str, str], Predictor] = {}  # loaded networks, by (name, device)


def cached_predictor(name: str, device: str) -> Predictor:
    """The predictor of the shipped network *name* on *device*, loaded once and kept."""
    from ..models.predictor import Predictor

    key = (name, str(resolve_device(device)))
    if key not in _PREDICTORS:
        _PREDICTORS[key] = Predictor.from_name(name, device=device)
    return _PREDICTORS[key]


def _runner(name: str) -> Callable[..., SegmentationResult]:
    def run(volume: Volume, params: CNNParams | None = None, *, device: str = "auto",
            mask: np.ndarray | None = None,
            progress: Callable[[float, str], None] | None = None,
            cancel: CancelToken | None = None) -> SegmentationResult:
        params = params or CNNParams()
        pred = cached_predictor(name, device)
        pred.tta = bool(params.tta)
        pred.batch_size = int(params.batch_size)
        pred.precision = params.precision
        return pred.predict(volume, mask=mask, progress=progress, cancel=cancel)

    run.__name__ = f"run_{name}"
    run.__doc__ = f"Segment brain tissue with the shipped ``{name}`` network."
    return run


#: MethodSpecs of the shipped networks.
CNN_SPECS: tuple[MethodSpec, ...] = (
    MethodSpec("unet", "plain 2.5-D U-Net trained on synthetic MNI phantoms (CSF/GM/WM)",
               CNNParams, _runner("unet"), kind="cnn"),
    MethodSpec("delineo", "Delineo network: multi-scale features, full-scale gated skips "
               "(CSF/GM/WM)", CNNParams, _runner("delineo"), kind="cnn"),
    MethodSpec("delineo_lesion_varied", "Delineo network with a lesion output, trained with "
               "synthetic lesions and whole heads (CSF/GM/WM; its lesion output feeds a "
               "lesions step)", CNNParams, _runner("delineo_lesion_varied"), kind="cnn"),
)
