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
not a network of Delineo's own, and its measured accuracy on synthetic T1, T2,
PD and FLAIR-like heads (intracranial Dice 0.991-0.997 on T1 and 0.987-0.993
on FLAIR-like heads with the dark-fluid rim below, 0.97-0.99 on T2 and PD with
the second pass below): docs/brain-extraction.md.

deepbet was made for T1, where CSF is dark. Where CSF is bright (T2, PD) it
keeps bright fluid and soft tissue next to the brain -- eyes, orbits, the
neck -- so :func:`extract_brain` first looks at how fluid shows inside its
first mask (:func:`fluid_contrast`: the outer 4 mm of the mask, CSF rim and
cortex, against its core deeper than 20 mm, white matter and deep nuclei).
Where the rim is not darker than the core (ratio >= :data:`BRIGHT_FLUID_RATIO`;
measured 0.44-0.57 on T1 and 1.13-1.34 on PD and T2 heads) a second pass runs on
the inverted image (fluid dark, as the network knows it), and the mask is the
first one inside the second grown by *rim_mm* (the CSF rim the second pass
leaves out). ``fluid="dark"`` or ``"bright"`` sets the choice instead; the
result says which was taken and why (``info["csf_contrast"]``).

With dark fluid the network stops near the brain's surface and leaves out
much of the CSF between it and the inner table of the skull (on synthetic T1
heads 5-10 % of the intracranial volume, all within 5 mm of its edge). So the
mask then grows through voxels as dark as CSF (:func:`dark_fluid_rim`: from
half the CSF level, darker being bone or air, up to a quarter of the way from
CSF to white matter, brighter being tissue), at most *dark_rim_mm* beyond the
network's edge.

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
from ..core.morphology import bounding_box, distance_inside, fill_holes
from ..core.params import param
from ..core.steps import SegmentationResult
from ..core.volume import INTRACRANIAL_LABELS, LabelMap, Volume
from .postprocess import components_holding, largest_component

__all__ = [
    "BRAIN_EXTRACTOR",
    "BRIGHT_FLUID_RATIO",
    "BrainExtractionParams",
    "BrainMask",
    "brain_extractor_facts",
    "dark_fluid_rim",
    "extract_brain",
    "fluid_contrast",
    "preload",
    "run_brain_mask",
]

#: The brain-extraction network and the version of the package that ships it.
BRAIN_EXTRACTOR = {"name": "deepbet", "version": "1.0.2", "licence": "MIT",
                   "trained_on": "T1-weighted MR images of healthy adults (its authors' data; "
                                 "real scans, not synthetic)",
                   "reference": "Fisch L et al., deepbet: Fast brain extraction of T1-weighted "
                                "MRI using Convolutional Neural Networks, Comput Biol Med 2024"}


#: Rim-to-core intensity ratio (:func:`fluid_contrast`) from which CSF counts as bright.
BRIGHT_FLUID_RATIO = 0.9

_RIM_SHELL_MM = 4.0  # the outer shell of a first mask: CSF rim and cortex
_CORE_DEPTH_MM = 20.0  # deeper than this: white matter and deep nuclei
_MIN_CORE_VOXELS = 1000  # fewer: too small a brain to tell
_DARK_FLOOR = 0.1  # of white matter: darker voxels inside a mask are air, bone, or no signal
#: Pure CSF: this percentile of the dark voxels inside a mask (their median is pulled up
#: by partial volume with tissue; on FLAIR far above the CSF next to the skull).
_PURE_FLUID_PERCENTILE = 10.0
#: Dark fluid: a voxel counts as CSF from this fraction of pure CSF (darker: bone, air) ...
DARK_FLUID_LOW = 0.6
#: ... up to this fraction of the way from the CSF median to white matter (brighter: tissue).
DARK_FLUID_HIGH = 0.25


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
        ("Measured here", "intracranial Dice 0.991-0.997 on synthetic T1 whole heads, "
                          "1-3 mm and oblique, and 0.987-0.993 on FLAIR-like heads, where "
                          "Delineo grows the mask through dark CSF out to the skull, and "
                          "0.97-0.99 on T2 and PD heads, where it adds a second pass on the "
                          "inverted image (docs/brain-extraction.md); made for T1 by its "
                          "authors, so T2, PD and FLAIR figures come from synthetic heads "
                          "only"),
        ("Reference", b["reference"]),
    ]


@dataclass(frozen=True)
class BrainExtractionParams:
    """Parameters of brain extraction."""

    threshold: float = param(0.5, lo=0.05, hi=0.95,
                             doc="network probability above which a voxel is intracranial")
    margin: int = param(0, lo=-5, hi=5, unit="voxels",
                        doc="grow (positive) or shrink (negative) the mask by whole voxels")
    fluid: str = param("auto", choices=("auto", "dark", "bright"),
                       doc="how CSF shows: dark (T1, FLAIR: one pass), bright (T2, PD: a "
                           "second pass on the inverted image), or auto (told from the "
                           "image)")
    rim_mm: float = param(3.0, lo=0.0, hi=10.0, unit="mm",
                          doc="with bright fluid: how far the mask may reach beyond the "
                              "second pass's brain (the CSF rim)")
    dark_rim_mm: float = param(4.0, lo=0.0, hi=10.0, unit="mm",
                               doc="with dark fluid: how far the mask may grow beyond the "
                                   "network's edge through voxels as dark as CSF, out to "
                                   "the inner table (0: not at all)")


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
    csf_contrast : str
        ``"dark"`` (one pass) or ``"bright"`` (a second pass on the inverted image).
    fluid_ratio : float or None
        What :func:`fluid_contrast` measured (None: not measured, or too small a brain).
    why : str
        How *csf_contrast* was chosen, in words.
    rim_ml : float
        With dark fluid: the volume :func:`dark_fluid_rim` added (mL).
    """

    mask: np.ndarray
    probability: np.ndarray
    intracranial_ml: float
    seconds: float
    csf_contrast: str = "dark"
    fluid_ratio: float | None = None
    why: str = ""
    rim_ml: float = 0.0


@dataclass(frozen=True)
class _Levels:
    """Median intensities inside a first mask: its outer shell (CSF rim and cortex), its
    core (white matter, deep nuclei) and its voxels between a tenth and half of the core
    (dark fluid; darker ones are air, bone or the zeros around a skull-stripped brain);
    *pure* is the tenth percentile of those dark voxels (CSF without partial volume); both
    None when there are too few of them."""

    shell: float
    core: float
    dark: float | None
    pure: float | None


def _levels(image: np.ndarray, mask: np.ndarray, spacing: tuple[float, ...]
            ) -> _Levels | None:
    """The :class:`_Levels` of *mask* in *image*; None when its core is too small."""
    box = bounding_box(mask, 1)
    inner = mask[box]
    # padded: where the mask meets the array's edge, beyond it counts as outside
    depth = distance_inside(np.pad(inner, 1), spacing)[1:-1, 1:-1, 1:-1]
    core = depth > _CORE_DEPTH_MM
    if np.count_nonzero(core) < _MIN_CORE_VOXELS:
        return None
    x = np.asarray(image[box], np.float32)
    deep = float(np.median(x[core]))
    dark = x[inner & (x > _DARK_FLOOR * deep) & (x < 0.5 * deep)]
    shell = float(np.median(x[inner & (depth <= _RIM_SHELL_MM)]))
    if dark.size < _MIN_CORE_VOXELS:
        return _Levels(shell, deep, None, None)
    return _Levels(shell, deep, float(np.median(dark)),
                   float(np.percentile(dark, _PURE_FLUID_PERCENTILE)))


def fluid_contrast(image: np.ndarray, mask: np.ndarray,
                   spacing: tuple[float, ...]) -> float | None:
    """Median intensity of the outer 4 mm of *mask* (CSF rim, cortex) over that of its
    core deeper than 20 mm (white matter, deep nuclei); None when the core is too small.

    Below 1 fluid is dark (T1, FLAIR); above, bright (T2, PD).
    """
    return _ratio(_levels(image, mask, spacing))


def _ratio(levels: _Levels | None) -> float | None:
    return None if levels is None or levels.core <= 0 else levels.shell / levels.core


def dark_fluid_rim(image: np.ndarray, mask: np.ndarray, spacing: tuple[float, ...],
                   mm: float, *, levels: _Levels | None = None,
                   measured: bool = False) -> tuple[np.ndarray, str]:
    """*mask* grown through voxels as dark as CSF, at most *mm* beyond its edge.

    The levels come from inside the mask: white matter is the median of its
    core deeper than 20 mm, CSF the median of its voxels between a tenth and
    half of that (ventricles, sulci; darker ones are air, bone, or the zeros
    around a skull-stripped brain), pure CSF their tenth percentile. A voxel
    counts as fluid from :data:`DARK_FLUID_LOW` of pure CSF (darker: bone or
    air) up to :data:`DARK_FLUID_HIGH` of the way from CSF to white matter
    (brighter: tissue). The mask grows through connected fluid voxels only, so bone
    stops it; holes are filled. Returns the mask (unchanged where the levels
    cannot be told) and what was done, in words. *levels*: those of *mask*
    when already measured (*measured*: they were, and None means too small a
    brain to tell, so they are not measured again).
    """
    if mm <= 0:
        return mask, ""
    if not measured and levels is None:
        levels = _levels(image, mask, spacing)
    if levels is None:
        return mask, "too small a brain to tell the CSF level; the mask was not grown"
    if levels.dark is None or levels.pure is None or levels.core <= 0:
        return mask, "no CSF-dark voxels inside the mask; the mask was not grown"
    csf, white = levels.dark, levels.core
    lo, hi = DARK_FLUID_LOW * levels.pure, csf + DARK_FLUID_HIGH * (white - csf)
    box = bounding_box(mask, int(np.ceil(mm / min(spacing))) + 2)
    inner = mask[box]
    x = image[box]
    fluid = _grown(inner, mm, spacing) & (x >= lo) & (x <= hi)
    # the fluid face-connected to the mask (a binary propagation from it), holes filled
    grown = fill_holes(components_holding(inner | fluid, inner))
    out = mask.copy()
    out[box] = grown
    ml = float(np.count_nonzero(grown & ~inner)) * float(np.prod(spacing)) / 1000.0
    return out, (f"grown by {ml:.0f} mL through CSF-dark voxels ({lo:.0f}-{hi:.0f}) "
                 f"within {mm:g} mm of the network's edge")


def _inverted(x: np.ndarray) -> np.ndarray:
    """The head with its contrast turned over: bright becomes dark, background stays 0."""
    top = np.percentile(x[x > 0.1 * float(x.max())], 99)
    out = np.subtract(np.float32(top), x, dtype=np.float32)  # in place from here on
    np.maximum(out, 0.0, out=out)
    out += np.float32(0.1 * top)
    out[x <= 0.1 * top] = 0.0  # outside the head
    return out


def _grown(mask: np.ndarray, mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    if mm <= 0:
        return mask
    margin = int(np.ceil(mm / min(spacing))) + 1
    box = bounding_box(mask, margin)
    out = np.zeros_like(mask)
    out[box] = distance_inside(~mask[box], spacing) <= mm
    return out


def _largest_filled(mask: np.ndarray) -> np.ndarray:
    """The largest face-connected component of *mask*, holes filled; computed in the
    mask's bounding box with a margin of one voxel, which gives the same result as on
    the whole array (the margin is background all round)."""
    out = np.zeros_like(mask, dtype=bool)
    if not mask.any():
        return out
    box = bounding_box(mask, 1)
    out[box] = fill_holes(largest_component(mask[box]))
    return out


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
    x = np.asarray(array, np.float32)  # read only below: no copy of a float32 image
    if not x.flags.writeable or not np.isfinite(x).all():
        # NaN/inf: the readers zero them, an image made in memory may not; a read-only
        # array: torch, which runs the networks on it, takes writable ones
        x = np.nan_to_num(x)
    if x.min() == x.max():
        raise DelineoError("brain extraction: the image is constant; there is no head in it")
    spacing = tuple(float(v) for v in volume.spacing)
    probability, mask = _one_pass(bet, x, params)
    wanted = params.fluid == "auto" or (params.fluid == "dark" and params.dark_rim_mm > 0)
    levels = _levels(x, mask, spacing) if wanted else None
    ratio = _ratio(levels) if params.fluid == "auto" else None
    if params.fluid == "auto":
        bright = ratio is not None and ratio >= BRIGHT_FLUID_RATIO
        why = ("too small a brain to tell how fluid shows; taken as dark" if ratio is None
               else f"rim/core intensity {ratio:.2f} "
                    f"{'>=' if bright else '<'} {BRIGHT_FLUID_RATIO}")
    else:
        bright = params.fluid == "bright"
        why = f"fluid={params.fluid} as asked"
    dark_fluid = not bright  # stays so when a bright second pass is not used
    if bright:
        check_cancel(cancel)
        report(progress, 0.55, "brain extraction: bright fluid, a second pass on the "
                               "inverted image")
        p2, m2 = _one_pass(bet, _inverted(x), params)
        allowed = _grown(m2, params.rim_mm, spacing)
        both = _largest_filled(mask & allowed)
        if np.count_nonzero(both) < 0.5 * np.count_nonzero(mask):
            bright = False  # the inverted pass lost the brain: keep the first mask
            why += "; the second pass kept under half of the first mask, so it was not used"
        else:
            mask = both
            # outside the grown second mask the lower of the two passes' probabilities
            np.minimum(probability, p2, out=probability, where=~allowed)
    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    rim_ml = 0.0
    if dark_fluid:
        check_cancel(cancel)
        report(progress, 0.9, "brain extraction: the CSF out to the inner table")
        grown, done = dark_fluid_rim(x, mask, spacing, params.dark_rim_mm, levels=levels,
                                     measured=wanted)
        if done:
            why += "; " + done
        added = grown & ~mask
        rim_ml = float(np.count_nonzero(added)) * voxel_ml
        # grown voxels are intracranial by the rim rule: their probability reaches the
        # threshold so that the probability and the mask agree
        probability = np.where(added, np.maximum(probability, params.threshold),
                               probability).astype(np.float32, copy=False)
        mask = grown
    report(progress, 1.0, "brain extraction: done")
    return BrainMask(mask, probability, float(mask.sum()) * voxel_ml,
                     time.perf_counter() - t0, "bright" if bright else "dark",
                     None if ratio is None else round(ratio, 3), why, rim_ml)


def _network_probability(bet: Any, x: np.ndarray) -> np.ndarray:
    """deepbet's intracranial probability of *x*, computed as its
    ``BrainExtraction.run_model`` computes it (the same networks, resampling and
    normalisation, and the same numbers: tested), with its two intensity quantiles
    found by selection instead of a full sort (:func:`engine.core.tensors.quantile`;
    0.2 s each on a whole head) and no full-size copy on the way. Sets ``bet.bbox``
    for deepbet's post-processing."""
    import torch
    import torch.nn.functional as F  # noqa: N812 - the usual torch alias
    from deepbet.utils import keep_largest_connected_component, normalize

    from ..core.tensors import quantile

    device = next(bet.model.parameters()).device
    image = torch.from_numpy(x)
    small = F.interpolate(image[None, None], (128, 128, 128), mode="nearest-exact")[0, 0]
    # torch.quantile's numbers (deepbet calls it), by selection instead of a full sort
    low, high = quantile(small, (0.005, 0.995), interpolation="linear",
                         max_samples=small.numel())
    with torch.no_grad():
        box_probability = bet.bbox_model(normalize(small, low, high)[None, None].to(device))[0, 1]
    found = (box_probability > 0.5).float().cpu().numpy()
    if not found.any():
        raise DelineoError("brain extraction found no head in this image")
    head = keep_largest_connected_component(found)
    bet.bbox = bet.get_bbox_with_margin(torch.from_numpy(head), image.shape, 0.1)
    crop = F.interpolate(image[bet.bbox][None, None], (256, 256, 256), mode="nearest-exact")
    with torch.no_grad():
        fine = bet.model(normalize(crop[0, 0], low, high)[None, None].to(device))[0, 1]
    out = np.zeros(x.shape, np.float32)
    region = out[bet.bbox]
    region[...] = F.interpolate(fine[None, None].cpu(), region.shape,
                                mode="nearest-exact")[0, 0].numpy()
    return out


def _one_pass(bet: Any, x: np.ndarray, params: BrainExtractionParams
              ) -> tuple[np.ndarray, np.ndarray]:
    """deepbet on *x*: its probability and its post-processed mask."""
    with _LOCK:
        try:
            probability = _network_probability(bet, x)
            mask = probability > params.threshold
            if not mask.any():
                raise DelineoError("brain extraction found no brain in this image")
            mask = np.asarray(bet.postprocess(mask, params.margin), dtype=bool)
        except AssertionError as exc:  # deepbet's own check: no foreground for a bounding box
            raise DelineoError(f"brain extraction found no head in this image ({exc})") from None
    return probability, mask


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
    probabilities = np.stack([1.0 - found.probability, found.probability]).astype(
        np.float32, copy=False)
    info = {"intracranial_ml": round(found.intracranial_ml, 1),
            "brain_extractor": f"{BRAIN_EXTRACTOR['name']} {BRAIN_EXTRACTOR['version']}",
            "brain_extraction_seconds": round(found.seconds, 2),
            "csf_contrast": found.csf_contrast, "csf_contrast_why": found.why,
            "dark_rim_ml": round(found.rim_ml, 1)}
    return SegmentationResult(labels=labels, probabilities=probabilities, info=info)
