"""The contract every segmentation method fulfils, and the registry type.

A method is a function ``run(volume, params, *, device, mask, progress,
cancel) -> SegmentationResult`` plus a frozen parameter dataclass declared with
:func:`engine.core.params.param`. Classical methods, baselines and the networks
are registered the same way, so the CLI, pipelines and the viewer treat them
alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .jobs import CancelToken, ProgressCallback
from .volume import LabelMap, Volume

__all__ = ["MethodSpec", "RunMethod", "SegmentationResult"]


@dataclass
class SegmentationResult:
    """Output of a method.

    Attributes
    ----------
    labels : LabelMap
        The label map (0 background, 1 CSF, 2 GM, 3 WM for brain tissue) on the
        input volume's grid.
    probabilities : ndarray or None
        Per-label probabilities, shape ``(n_labels, *volume.shape)``, float32,
        summing to 1 over the first axis, when the method produces them.
    info : dict
        Method-specific extras (energy per iteration, iterations run, ...).
    """

    labels: LabelMap
    probabilities: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


class RunMethod(Protocol):
    def __call__(
        self,
        volume: Volume,
        params: Any,
        *,
        device: str = "auto",
        mask: np.ndarray | None = None,
        progress: ProgressCallback | Callable[[float, str], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> SegmentationResult: ...


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its name, one-line summary, parameters and runner.

    ``kind`` is ``"classical"``, ``"baseline"``, ``"cnn"`` or ``"refinement"``.
    """

    name: str
    summary: str
    params_type: type
    run: RunMethod
    kind: str = "classical"

    def default_params(self) -> Any:
        return self.params_type()
