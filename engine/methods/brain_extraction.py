"""Brain extraction: the intracranial mask of a whole head, as a method and a step.

A scan as it comes off the scanner shows scalp, skull, face and neck around
the brain. Delineo's tissue networks were made for the brain alone, so a
whole-head pipeline first finds the **intracranial mask** -- the brain plus
all CSF out to the inner table of the skull -- and segments tissue only inside
it (:data:`engine.methods.pipeline.DEFAULT_PIPELINE` is ``head``).

The network is **deepbet** (Fisch et al. 2024, MIT licence): a 3-D U-Net pair
(a coarse one at 128^3 finds the head's bounding box, a fine one at 256^3
segments inside it), trained by its authors on T1-weighted MR images of
healthy adults -- real scans of people, unlike Delineo's own networks, which
learn from synthetic images only. Its PyPI wheel ships the two networks as
TorchScript files, loaded here the way deepbet loads them. Why deepbet and
not a network of Delineo's own, and its measured accuracy on synthetic T1, T2
and PD heads (intracranial Dice 0.94-0.98): docs/brain-extraction.md.

The result is a :class:`~engine.core.volume.LabelMap` with
:data:`~engine.core.volume.INTRACRANIAL_LABELS` (0 background, 1 intracranial)
on the input's grid; :func:`extract_brain` also returns the network's
probability and the intracranial volume.

Examples
--------
>>> from engine.methods.brain_extraction import BrainExtractionParams
>>> BrainExtractionParams().threshold
0.5
>>> mask = extract_brain(head).mask                       # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.device import resolve_device
from ..core.errors import DelineoError, ParameterError
from ..core.jobs import CancelToken, check_cancel, report
from ..core.params import param
from ..core.steps import SegmentationResult
from ..core.volume import INTRACRANIAL_LABELS, LabelMap, Volume

__all__ = [
    "BRAIN_EXTRACTOR",
    "BrainExtractionParams",
    "BrainMask",
    "brain_extractor_facts",
    "extract_brain",
    "preload",
    "run_brain_mask",
]

#: The brain-extraction network and the version of the package that ships it.
BRAIN_EXTRACTOR = {"name": "deepbet", "version": "1.0.2", "licence": "MIT",
                   "trained_on": "T1-weighted MR images of healthy adults (its authors' data; "
                                 "real scans, not synthetic)",
                   "reference": "Fisch L et al., deepbet: Fast brain extraction of T1-weighted "
                                "MRI using Convolutional Neural Networks, Comput Biol Med 2024"}


def brain_extractor_facts() -> list[tuple[str, str]]:
    """``(heading, text)`` rows about the brain-extraction network, for a reader (the
    viewer's About the Networks and ``delineo-engine models``)."""
    b = BRAIN_EXTRACTOR
    return [
        ("Network", f"{b['name']} {b['version']} (brain extraction; {b['licence']} licence, "
                    "shipped in its own package)"),
        ("Architecture", "two 3-D U-Nets: one at 128^3 finds the head's bounding box, one "
                         "at 256^3 segments inside it"),
        ("Segments", "the intracranial mask: the brain and all CSF out to the inner table "
                     "of the skull"),
        ("Trained on", f"{b['trained_on']}; Delineo neither trained nor tuned it"),
        ("Measured here", "intracranial Dice 0.94-0.98 on synthetic T1, T2 and PD whole "
                          "heads, 1-3 mm and oblique (docs/brain-extraction.md); made for "
                          "T1 by its authors, so T2 and PD figures come from synthetic "
                          "heads only"),
        ("Reference", b["reference"]),
    ]


@dataclass(frozen=True)
class BrainExtractionParams:
    """Parameters of brain extraction."""

    threshold: float = param(0.5, lo=0.05, hi=0.95,
                             doc="network probability above which a voxel is intracranial")
    margin: int = param(0, lo=-5, hi=5, unit="voxels",
                        doc="grow (positive) or shrink (negative) the mask by whole voxels")


@dataclass
class BrainMask:
    """What :func:`extract_brain` found.

    Attributes
    ----------
    mask : ndarray of bool
        The intracranial mask on the input's (canonical) grid.
    probability : ndarray of float32
        The network's intracranial probability on the same grid.
    intracranial_ml : float
        The mask's volume in millilitres.
    seconds : float
        Wall time of the extraction.
    """

    mask: np.ndarray
    probability: np.ndarray
    intracranial_ml: float
    seconds: float


_LOCK = threading.Lock()  # deepbet keeps the last bounding box on the object
_EXTRACTORS: dict[str, Any] = {}  # loaded networks by device


def _extractor(device: str) -> Any:
    key = str(resolve_device(device))
    if key not in _EXTRACTORS:
        try:
            from deepbet import BrainExtraction
        except ImportError as exc:  # a declared dependency; only a broken install lacks it
            raise DelineoError(
                f"brain extraction needs the deepbet package ({exc}); install it with "
                f"pip install deepbet=={BRAIN_EXTRACTOR['version']}") from None
        with warnings.catch_warnings():  # torch deprecates the TorchScript loader deepbet uses
            warnings.simplefilter("ignore", DeprecationWarning)
            _EXTRACTORS[key] = BrainExtraction(no_gpu=key == "cpu")
    return _EXTRACTORS[key]


def preload(device: str = "auto") -> None:
    """Load the brain-extraction networks for *device* now (a batch worker does this once)."""
    _extractor(device)


def extract_brain(
    volume: Volume,
    params: BrainExtractionParams | None = None,
    *,
    device: str = "auto",
    progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> BrainMask:
    """The intracranial mask of the whole head (or brain) in *volume*.

    Works on any voxel spacing and orientation: the networks see the head's
    bounding box resized to their own grid, in canonical (RAS+) voxel order,
    which :class:`~engine.core.volume.Volume` already is.

    Raises
    ------
    ParameterError
        If the image is not 3-D or too small.
    DelineoError
        If no head is found (an empty or constant image).
    """
    params = params or BrainExtractionParams()
    array = np.asarray(volume.array)
    if array.ndim != 3 or min(array.shape) < 3:
        raise ParameterError(f"brain extraction needs a 3-D image, got shape {array.shape}")
    t0 = time.perf_counter()
    check_cancel(cancel)
    report(progress, 0.0, "brain extraction: loading the network")
    bet = _extractor(device)
    check_cancel(cancel)
    report(progress, 0.1, "brain extraction: finding the head, then the brain")
    x = np.nan_to_num(array.astype(np.float32, copy=True))
    if not np.any(x != x.flat[0]):
        raise DelineoError("brain extraction: the image is constant; there is no head in it")
    with _LOCK:
        try:
            probability = np.asarray(bet.run_model(x), dtype=np.float32)
            check_cancel(cancel)
            mask = probability > params.threshold
            if not mask.any():
                raise DelineoError("brain extraction found no brain in this image")
            mask = np.asarray(bet.postprocess(mask, params.margin), dtype=bool)
        except AssertionError as exc:  # deepbet's own check: no foreground for a bounding box
            raise DelineoError(f"brain extraction found no head in this image ({exc})") from None
    report(progress, 1.0, "brain extraction: done")
    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    return BrainMask(mask, probability, float(mask.sum()) * voxel_ml,
                     time.perf_counter() - t0)


def run_brain_mask(
    volume: Volume,
    params: BrainExtractionParams | None = None,
    *,
    device: str = "auto",
    mask: np.ndarray | None = None,
    progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> SegmentationResult:
    """Brain extraction as a method: a label map 0 background / 1 intracranial.

    A *mask* given by the caller limits the result to it (never grows it).
    """
    found = extract_brain(volume, params, device=device, progress=progress, cancel=cancel)
    inside = found.mask if mask is None else found.mask & np.asarray(mask, bool)
    labels = LabelMap.on_grid_of(volume, inside.astype(np.uint8), labels=INTRACRANIAL_LABELS)
    labels.metadata["description"] = "intracranial mask (brain extraction)"
    probabilities = np.stack([1.0 - found.probability, found.probability]).astype(np.float32)
    info = {"intracranial_ml": round(found.intracranial_ml, 1),
            "brain_extractor": f"{BRAIN_EXTRACTOR['name']} {BRAIN_EXTRACTOR['version']}",
            "brain_extraction_seconds": round(found.seconds, 2)}
    return SegmentationResult(labels=labels, probabilities=probabilities, info=info)
