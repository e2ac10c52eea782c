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

__all__ = ["Applicability", "MethodSpec", "RunMethod", "SegmentationResult"]


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
class Applicability:
    """What a method or pipeline was made for (checked by
    :func:`engine.methods.applicability.check_applicability`).

    Attributes
    ----------
    modalities : tuple of str
        DICOM modalities the method is meant for (``("MR",)``).
    body_parts : tuple of str
        Body parts, upper case as in DICOM BodyPartExamined (``("BRAIN", "HEAD")``).
    contrasts : tuple of str
        Image contrasts it was designed or trained for; checked when the
        image's acquisition facts name its contrast
        (:func:`engine.methods.applicability.infer_contrast`).
    spacing_mm : (float, float)
        Smallest and largest voxel spacing, every axis, in mm.
    fov_mm : (float, float)
        Smallest and largest extent, in mm, of the two longest axes (a head is
        roughly 120-250 mm across).
    min_slices : int
        Fewest voxels along every axis (3-D operators and the 2.5-D networks'
        slice-and-neighbours input need at least 3).
    """

    modalities: tuple[str, ...] = ("MR",)
    body_parts: tuple[str, ...] = ("BRAIN", "HEAD")
    contrasts: tuple[str, ...] = ("T1", "T2", "PD")
    spacing_mm: tuple[float, float] = (0.5, 3.0)
    fov_mm: tuple[float, float] = (100.0, 400.0)
    min_slices: int = 3


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its name, one-line summary, parameters and runner.

    ``kind`` is ``"classical"``, ``"baseline"``, ``"cnn"``, ``"refinement"`` or
    ``"brain_extraction"`` (labels 0 background / 1 intracranial, not tissue);
    ``applicability`` says what the method was made for.
    """

    name: str
    summary: str
    params_type: type
    run: RunMethod
    kind: str = "classical"
    applicability: Applicability = field(default_factory=Applicability)

    def default_params(self) -> Any:
        return self.params_type()
