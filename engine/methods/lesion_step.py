"""The ``lesions`` pipeline step: the lesion network paints label 4 into the tissue labels.

After a tissue segmentation (and, for a whole head, brain extraction: the
step then sees the skull-stripped image), :func:`find_lesions`

1. runs the shipped lesion network (``resources/models/delineo_lesion.safetensors``:
   the tissue network with a fifth, lesion output, trained by
   :mod:`engine.models.lesion_training`; chosen over a dedicated lesion
   network by measurement, docs/lesions.md) over the bounding box of the
   labelled brain, with the tissue networks' predictor
   (:class:`~engine.models.predictor.Predictor`: 1 mm grid, robust intensity
   scaling, batches of axial slices);
2. keeps the voxels whose lesion probability is at least *min_probability* and that
   the tissue segmentation labels as brain (label > 0);
3. drops 26-connected pieces smaller than *min_lesion_mm3*;
4. writes label 4 ("Lesion", :data:`~engine.core.volume.BRAIN_LESION_LABELS`)
   into them.

The result keeps the tissue step's probabilities (for the uncertainty of the
tissue labels) and carries the lesion probability map in
``info["lesion_probability"]`` (float32, on the volume's grid, 0 outside the
box), from which ``detect`` takes each lesion's confidence.

Examples
--------
>>> LesionParams().min_probability
0.9
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.device import PRECISIONS
from ..core.errors import ParameterError
from ..core.jobs import CancelToken, report
from ..core.memory import release_free_memory
from ..core.params import param
from ..core.steps import SegmentationResult
from ..core.volume import BRAIN_LESION_LABELS, LabelMap, Volume
from .masks import bounding_box
from .postprocess import small_components

__all__ = ["LESION_MODEL", "LESION_VALUE", "LesionParams", "find_lesions", "threshold_lesions"]

log = logging.getLogger(__name__)

#: The shipped lesion network (``resources/models/<name>.safetensors``).
LESION_MODEL = "delineo_lesion"

#: Label value of lesions (BrainWeb MS-lesion convention).
LESION_VALUE = 4

_MARGIN = 4  # voxels around the brain's bounding box given to the network


@dataclass(frozen=True)
class LesionParams:
    """Parameters of the ``lesions`` step.

    The defaults (0.9, 6 mm³) were chosen on training-anatomy phantoms only: the
    fewest false positives that keep the sensitivity at 0.6 for 3-5 mm and 0.9 for
    larger lesions, with a minimum size below a 3 mm lesion's volume (14 mm³)
    (docs/lesions.md, *Choosing the threshold*).
    """

    min_probability: float = param(0.9, lo=0.05, hi=0.99,
                                   doc="lesion probability from which a voxel is lesion")
    min_lesion_mm3: float = param(6.0, lo=0.0, hi=10000.0, unit="mm³",
                                  doc="connected lesions smaller than this are dropped")
    batch_size: int = param(8, lo=1, hi=512, unit="slices",
                            doc="slices per forward pass of the lesion network")
    tta: bool = param(False, doc="average with the left-right mirrored prediction")
    precision: str = param("float32", choices=PRECISIONS,
                           doc="arithmetic of the lesion network; float32, the arithmetic its "
                               "threshold was chosen in (auto: bfloat16 on a GPU or a CPU with "
                               "AMX, float32 elsewhere)")


def threshold_lesions(probability: np.ndarray, brain: np.ndarray, threshold: float,
                      min_size_mm3: float, voxel_mm3: float) -> np.ndarray:
    """Lesion voxels: probability >= *threshold* inside *brain*, in 26-connected pieces of
    at least *min_size_mm3*."""
    found = (probability >= threshold) & brain
    if found.any() and min_size_mm3 > 0:
        found &= ~small_components(found, min_size_mm3 / voxel_mm3, connectivity=26)
    return found


def find_lesions(
    volume: Volume,
    tissue: LabelMap,
    params: LesionParams | None = None,
    *,
    device: str = "auto",
    model: str = LESION_MODEL,
    progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, lesion_probability)``: *tissue* with 4 in every lesion, and the
    network's lesion probability (float32, 0 outside the brain's box).

    *model* is a shipped network name or a weights file; its last output is the
    lesion class (a two-output lesion network, or a tissue network with a lesion
    output)."""
    from .cnn import cached_predictor

    params = params or LesionParams()
    if not volume.same_grid(tissue):
        raise ParameterError("the lesions step needs the tissue labels on the image's grid")
    labels = np.array(tissue.array, copy=True)
    prob = np.zeros(volume.shape, np.float32)
    brain = labels > 0
    if not brain.any():
        return labels, prob
    box = bounding_box(brain, _MARGIN)
    pred = cached_predictor(model, device)
    pred.tta = bool(params.tta)
    pred.batch_size = int(params.batch_size)
    pred.precision = params.precision
    sub = np.where(brain[box], np.asarray(volume.array[box], np.float32), 0.0)
    report(progress, 0.0, "lesion network")
    release_free_memory()  # the tissue network's activations, before the second network
    out = pred.predict_array(sub, volume.spacing, progress=progress, cancel=cancel)
    prob[box] = out.probabilities[-1]
    del out, sub
    found = threshold_lesions(prob, brain, params.min_probability, params.min_lesion_mm3,
                              volume.voxel_volume_ml * 1000.0)
    labels[found] = LESION_VALUE
    report(progress, 1.0, f"{int(found.sum())} lesion voxels")
    return labels, prob


def run_lesion_step(ctx: Any) -> SegmentationResult:
    """The ``lesions`` step of :mod:`engine.methods.pipeline` (*ctx*: its StepContext)."""
    prev = ctx.previous
    if prev is None:
        raise ParameterError("the lesions step needs a tissue segmentation before it")
    labels, prob = find_lesions(ctx.volume, prev.labels, ctx.params, device=ctx.device,
                                progress=ctx.progress, cancel=ctx.cancel)
    table = prev.labels.labels
    if LESION_VALUE not in table.entries:
        table = BRAIN_LESION_LABELS
    out = prev.labels.with_array(labels.astype(prev.labels.array.dtype, copy=False),
                                 labels=table)
    info = dict(prev.info)
    info["lesion_probability"] = prob
    info["lesion_threshold"] = ctx.params.min_probability
    return SegmentationResult(labels=out, probabilities=prev.probabilities, info=info)
