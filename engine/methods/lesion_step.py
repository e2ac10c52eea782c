"""The ``lesions`` pipeline step: the lesion networks paint label 4 into the tissue labels.

After a tissue segmentation (and, for a whole head, brain extraction: the
step then sees the skull-stripped image), :func:`find_lesions`

1. runs the shipped lesion networks (:data:`LESION_MODELS`: two tissue
   networks with a fifth, lesion output, trained by
   :mod:`engine.models.lesion_training` on different synthetic pools; chosen
   over a dedicated lesion network and over either network alone by
   measurement, docs/lesions.md) over the bounding box of the labelled brain,
   with the tissue networks' predictor
   (:class:`~engine.models.predictor.Predictor`: 1 mm grid, robust intensity
   scaling, batches of axial slices), and averages their lesion
   probabilities;
2. finds lesions where the mean lesion probability is at least
   *min_probability* inside the brain (tissue label > 0), and outlines each of
   them out to where the mean falls below *outline_probability*: a hysteresis
   threshold, so the lower outline level adds voxels to lesions already found
   but never finds a lesion of its own (every 26-connected piece above the
   outline level that holds no voxel above *min_probability* is dropped);
3. drops lesions smaller than *min_lesion_mm3*;
4. writes label 4 ("Lesion", :data:`~engine.core.volume.BRAIN_LESION_LABELS`)
   into them.

The networks after the first run only where their output can still change
the lesions: with N networks, a voxel whose first k probabilities sum to less
than N·t − (N − k) stays below a mean of *t* whatever the others say. So
network k + 1 runs on the axial slices (of its 2.5-D input) that hold a voxel
of a piece still in reach of the outline level *o* (26-connected, first k
probabilities summing to at least N·o − (N − k)) that also holds a voxel still
in reach of *t*. The lesions, their outlines and their confidences are exactly
those of running every network everywhere; with two networks and the
defaults the second network runs on a small part of the brain. Where a
network did not run, its probability counts as 0 in the mean, so there the
map is a lower bound (below the outline level, or in no lesion).

A network of the step that was also the tissue network before it (the default
pipeline ``head`` segments tissue with ``delineo_lesion_varied``, a tissue
network with a lesion output) is not run again: the tissue step's own pass
gave its lesion probability (``info["network_lesion_probability"]``, as the
network gave it, on the same skull-stripped image), which the step takes as
that network's output when the tissue step ran it in the step's precision
and mirroring; that network then counts as one of the first, and the others
run only where a lesion is still in reach. So in ``head`` the lesion step
costs the other network's pass over a few slices. The tissue step's pass is
cropped from the whole volume, the step's own from the brain's box: the
network's grid can sit a voxel apart, and its lesion output (not
shift-invariant) differs by some voxels at lesion borders -- measured in
docs/lesions.md, *In the default pipeline*.

The result keeps the tissue step's probabilities (for the uncertainty of the
tissue labels) and carries the mean lesion probability map in
``info["lesion_probability"]`` (float32, on the volume's grid, 0 outside the
box), from which ``detect`` and the Findings panel take each lesion's
confidence.

Examples
--------
>>> LesionParams().min_probability
0.95
>>> LESION_MODELS
('delineo_lesion', 'delineo_lesion_varied')
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.device import PRECISIONS
from ..core.errors import ParameterError
from ..core.jobs import CancelToken, report, scaled_progress
from ..core.memory import release_free_memory
from ..core.morphology import bounding_box
from ..core.params import param
from ..core.steps import SegmentationResult
from ..core.volume import BRAIN_LESION_LABELS, LESION_VALUE, LabelMap, Volume
from ..io.atomic import file_sha256
from .postprocess import components_holding, small_components

__all__ = ["LESION_MODEL", "LESION_MODELS", "LESION_VALUE", "NETWORK_LESION_KEY", "LesionParams",
           "find_lesions", "findings_source", "in_reach", "lesion_networks", "lesion_source",
           "reusable_output", "threshold_lesions"]

log = logging.getLogger(__name__)

#: The shipped lesion networks (``resources/models/<name>.safetensors``), averaged:
#: the first trained on phantoms of the template's shape and whole T1/T2/PD heads,
#: the second on a pool twice the size with varied anatomy and FLAIR-like heads.
LESION_MODELS = ("delineo_lesion", "delineo_lesion_varied")

#: The first of them: the network that runs everywhere.
LESION_MODEL = LESION_MODELS[0]

#: Key of a tissue step's result info holding the lesion output of its network
#: (:meth:`engine.models.predictor.Predictor.predict`).
NETWORK_LESION_KEY = "network_lesion_probability"

_MARGIN = 4  # voxels around the brain's bounding box given to the network


@dataclass(frozen=True)
class LesionParams:
    """Parameters of the ``lesions`` step.

    The defaults (a mean of 0.95, no minimum size) were chosen for the mean of the
    two networks on training-anatomy phantoms only: the fewest false positives that
    keep the sensitivity at 0.6 for 3-5 mm and 0.9 for larger lesions, with a
    minimum size below a 3 mm lesion's volume (14 mm³), ties going to the higher
    sensitivity (docs/lesions.md, *Choosing the threshold*). With ``ensemble``
    false, the first network's own choice was 0.9 and 6 mm³. The outline level
    0.7 had the highest lesion-wise Dice on the same phantoms at that threshold
    (docs/lesions.md, *Outlines*).
    """

    min_probability: float = param(0.95, lo=0.05, hi=0.99,
                                   doc="mean lesion probability from which a voxel is lesion")
    outline_probability: float = param(0.7, lo=0.05, hi=0.99,
                                       doc="mean lesion probability out to which a found "
                                           "lesion is outlined (hysteresis: it finds no "
                                           "lesion of its own; at or above min_probability "
                                           "the outline is the threshold's)")
    min_lesion_mm3: float = param(0.0, lo=0.0, hi=10000.0, unit="mm³",
                                  doc="connected lesions smaller than this are dropped")
    batch_size: int = param(8, lo=1, hi=512, unit="slices",
                            doc="slices per forward pass of the lesion networks")
    tta: bool = param(False, doc="average with the left-right mirrored prediction")
    ensemble: bool = param(True, doc="average both shipped lesion networks (false: the first "
                                     "alone, the step before 2026-12-06, whose own operating "
                                     "point was 0.9 and 6 mm³)")
    precision: str = param("float32", choices=PRECISIONS,
                           doc="arithmetic of the lesion networks; float32, the arithmetic "
                               "their threshold was chosen in (auto: bfloat16 on a GPU or a "
                               "CPU with AMX, float32 elsewhere)")

    @property
    def outline_level(self) -> float:
        """The outline level in effect: *outline_probability*, or the threshold where that
        is higher (then the outlines are the threshold's)."""
        return min(float(self.outline_probability), float(self.min_probability))


def lesion_networks(ensemble: bool = True) -> tuple[str, ...]:
    """The shipped lesion networks the step runs: both, or the first alone without
    *ensemble*."""
    return LESION_MODELS if ensemble else LESION_MODELS[:1]


def threshold_lesions(probability: np.ndarray, brain: np.ndarray, threshold: float,
                      min_size_mm3: float, voxel_mm3: float,
                      outline: float | None = None) -> np.ndarray:
    """Lesion voxels: the 26-connected pieces of (probability >= *outline*) inside
    *brain* that hold a voxel of probability >= *threshold* (a hysteresis threshold;
    *outline* None or at least *threshold*: the pieces of probability >= *threshold*),
    each of at least *min_size_mm3*."""
    found = (probability >= threshold) & brain
    if outline is not None and outline < threshold and found.any():
        found = components_holding((probability >= outline) & brain, found, connectivity=26)
    if found.any() and min_size_mm3 > 0:
        found &= ~small_components(found, min_size_mm3 / voxel_mm3, connectivity=26)
    return found


def in_reach(partial: np.ndarray, brain: np.ndarray, k: int, n: int, threshold: float,
             outline: float) -> np.ndarray:
    """Where the mean of *n* networks can still be in a lesion, given the sum *partial*
    of the first *k* networks' probabilities.

    A voxel whose *k* probabilities sum to less than ``n*t - (n - k)`` stays below a mean
    of *t* whatever the others say (each gives at most 1); so a voxel can be in a lesion
    only if it lies in a piece still in reach of the *outline* level that holds a voxel
    still in reach of the *threshold* (:func:`threshold_lesions` on those bounds).
    """
    return threshold_lesions(partial, brain, n * threshold - (n - k) - 1e-6, 0.0, 1.0,
                             outline=n * outline - (n - k) - 1e-6)


def find_lesions(
    volume: Volume,
    tissue: LabelMap,
    params: LesionParams | None = None,
    *,
    device: str = "auto",
    model: str | Sequence[str] | None = None,
    known: Mapping[str, np.ndarray] | None = None,
    progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, lesion_probability)``: *tissue* with 4 in every lesion, and the
    networks' mean lesion probability (float32, 0 outside the brain's box).

    *model* is a shipped network name or a weights file, or several of them to
    average; its last output is the lesion class (a two-output lesion network,
    or a tissue network with a lesion output). None: :data:`LESION_MODELS`
    (the first alone with ``params.ensemble`` false). *known* gives the lesion
    probability (on the volume's grid) of some of those networks, already
    computed (by the tissue step, :func:`reusable_output`): they are not run,
    and count as the first networks of the mean."""
    params = params or LesionParams()
    if model is None:
        models = list(lesion_networks(params.ensemble))
    else:
        models = [model] if isinstance(model, str) else list(model)
    if not models:
        raise ParameterError("the lesions step needs at least one lesion network")
    if not volume.same_grid(tissue):
        raise ParameterError("the lesions step needs the tissue labels on the image's grid")
    known = {name: p for name, p in (known or {}).items() if name in models}
    for name, p in known.items():
        if np.shape(p) != volume.shape:
            raise ParameterError(f"the known lesion probability of {name} has shape "
                                 f"{np.shape(p)}, not the image's {volume.shape}")
    # The networks whose output is known first: the in-reach bounds need the first k.
    models = [m for m in models if m in known] + [m for m in models if m not in known]
    labels = np.array(tissue.array, copy=True)
    prob = np.zeros(volume.shape, np.float32)
    brain = labels > 0
    if not brain.any():
        return labels, prob
    box = bounding_box(brain, _MARGIN)
    sub = np.where(brain[box], np.asarray(volume.array[box], np.float32), 0.0)
    inside = brain[box]
    total = np.zeros(sub.shape, np.float32)
    n = len(models)
    t = float(params.min_probability)
    o = params.outline_level
    release_free_memory()  # the tissue network's activations, before the lesion networks
    for k, name in enumerate(models):
        if name in known:
            total += np.asarray(known[name][box], np.float32)
            report(progress, 0.0 if k == 0 else 0.8, f"lesion network {name}: output of the "
                   "tissue step")
            continue
        slices = None
        if k:
            slices = in_reach(total, inside, k, n, t, o).any(axis=(0, 1))
            if not slices.any():
                break
        part = _stage(progress, k, n, name, slices)
        # the lesion output alone: no buffer for the classes the step does not use
        total += _predictor(name, device, params).class_probability(
            sub, volume.spacing, -1, slices=slices, progress=part, cancel=cancel)
    prob[box] = total / n
    del total, sub
    found = threshold_lesions(prob, brain, t, params.min_lesion_mm3,
                              volume.voxel_volume_ml * 1000.0, outline=o)
    labels[found] = LESION_VALUE
    report(progress, 1.0, f"{int(found.sum())} lesion voxels")
    return labels, prob


def reusable_output(info: Mapping[str, Any], params: LesionParams,
                    device: str) -> dict[str, np.ndarray]:
    """``{network: lesion probability}`` that a tissue step's result *info* holds and a
    lesions step with *params* on *device* may take instead of running that network:
    the tissue network is one of the step's networks and ran in the step's arithmetic
    and mirroring. Empty otherwise."""
    import torch

    from ..core.device import resolve_precision

    prob = info.get(NETWORK_LESION_KEY)
    name = info.get("model")
    if not isinstance(prob, np.ndarray) or name not in lesion_networks(params.ensemble):
        return {}
    want = str(resolve_precision(params.precision, torch.device(device))).removeprefix("torch.")
    if info.get("precision") != want or bool(info.get("tta")) != bool(params.tta):
        return {}
    return {str(name): prob}


def _predictor(name: str, device: str, params: LesionParams) -> Any:
    """The cached predictor of lesion network *name*, set to the step's parameters."""
    from .cnn import cached_predictor

    pred = cached_predictor(name, device)
    pred.tta = bool(params.tta)
    pred.batch_size = int(params.batch_size)
    pred.precision = params.precision
    return pred


def _stage(progress: Callable[[float, str], None] | None, k: int, n: int, name: str,
           slices: np.ndarray | None) -> Callable[[float, str], None] | None:
    """Progress of network *k* of *n* as its share of the step (the first runs on every
    slice and takes most of the time)."""
    if progress is None:
        return None
    what = (f"lesion network {name}" if slices is None
            else f"lesion network {name} on {int(slices.sum())} of {slices.size} slices")
    lo, hi = (0.0, 0.8 if n > 1 else 1.0) if k == 0 else (0.8 + 0.2 * (k - 1) / max(1, n - 1),
                                        0.8 + 0.2 * k / max(1, n - 1))
    report(progress, lo, what)
    return scaled_progress(progress, lo, hi)


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    """sha256 of a weights file, read once per version of the file (a batch writes the
    source of every case's findings)."""
    return file_sha256(path)


def lesion_source(info: Mapping[str, Any]) -> dict[str, Any]:
    """What made a lesions step's findings, from its result's *info*: the lesion networks
    (name and the sha256 of the weights file used) and the threshold and minimum size;
    empty when no lesions step ran. Written into ``findings.json`` (``source``)."""
    from ..models.weights import model_path

    names = info.get("lesion_networks")
    if not names:
        return {}
    networks = []
    for name in names:
        path = model_path(name)
        digest = None
        if path.is_file():
            stat = path.stat()
            digest = _file_sha256(str(path), stat.st_mtime_ns, stat.st_size)
        networks.append({"name": name, "sha256": digest})
    return {"lesion_networks": networks, "min_probability": info.get("lesion_threshold"),
            "outline_probability": info.get("lesion_outline"),
            "min_lesion_mm3": info.get("lesion_min_mm3")}


def findings_source(image: str, result: Any) -> dict[str, Any]:
    """``findings.json``'s ``source`` for findings from a pipeline *result* (a
    :class:`~engine.methods.pipeline.PipelineResult`) of the input *image*: the input,
    the pipeline and its description, the Delineo version and :func:`lesion_source`."""
    from .. import __version__

    return {"input": str(image), "pipeline": result.pipeline,
            "description": result.description, "delineo": __version__,
            **lesion_source(result.info)}


def run_lesion_step(ctx: Any) -> SegmentationResult:
    """The ``lesions`` step of :mod:`engine.methods.pipeline` (*ctx*: its StepContext)."""
    prev = ctx.previous
    if prev is None:
        raise ParameterError("the lesions step needs a tissue segmentation before it")
    known = reusable_output(prev.info, ctx.params, ctx.device)
    labels, prob = find_lesions(ctx.volume, prev.labels, ctx.params, device=ctx.device,
                                known=known, progress=ctx.progress, cancel=ctx.cancel)
    table = prev.labels.labels
    if LESION_VALUE not in table.entries:
        table = BRAIN_LESION_LABELS
    out = prev.labels.with_array(labels.astype(prev.labels.array.dtype, copy=False),
                                 labels=table)
    info = dict(prev.info)
    info.pop(NETWORK_LESION_KEY, None)  # consumed (or not of use): the mean is kept below
    info["lesion_networks_reused"] = sorted(known)
    info["lesion_probability"] = prob
    info["lesion_threshold"] = ctx.params.min_probability
    info["lesion_outline"] = ctx.params.outline_level
    info["lesion_min_mm3"] = ctx.params.min_lesion_mm3
    info["lesion_networks"] = list(lesion_networks(ctx.params.ensemble))
    return SegmentationResult(labels=out, probabilities=prev.probabilities, info=info)
