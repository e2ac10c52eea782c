"""Is this result plausible? A cheap per-case quality report for a segmentation.

No ground truth is needed. :func:`assess` looks at a tissue label map (with
the network's class probabilities when there are any, and the image) and
returns a :class:`PlausibilityReport`:

* **uncertainty** -- the normalised entropy of the class probabilities,
  ``H(p) / log(K)`` in [0, 1], per voxel (:func:`uncertainty_map`); the report
  gives its mean and 95th percentile over the labelled voxels and the fraction
  of labelled voxels above :data:`UNCERTAIN` (0.5);
* **volumes** -- every tissue in mL and as a fraction of everything labelled,
  and the labelled (brain-mask) volume, each against the wide adult ranges of
  :data:`ADULT_RANGES`;
* **signal** -- the fraction of labelled voxels that have no signal at all
  (at or below the image's background level): tissue is never labelled in air;
* a one-line **verdict**: ``"looks typical"`` when nothing is out of range, or
  ``"review this"`` with the reasons.

The ranges are screening bounds, deliberately wide, not norms: a healthy
adult's intracranial volume is roughly 1.1-1.9 L (the MNI152 template, an
average of 152 registered brains, is larger: 1.93 L labelled by Delineo's
rule), gray matter is about 40-55 % of it, white matter 30-40 % and CSF
10-30 %, growing with age. The bounds below add a margin on each side for
atrophy, children and the blur of 2-3 mm images, so that a result outside
them is almost certainly a failure (skull, scalp or neck labelled as tissue, a
contrast the network does not know, an image that is not a brain) rather than
an unusual brain. The uncertainty bounds were set on synthetic phantoms and
synthetic heads only (docs/methods.md, "Plausibility"); no scan of a person
was used.

:func:`uncertain_regions` lists the connected regions of high uncertainty,
most uncertain first, for the viewer's "next uncertain region".

Examples
--------
>>> import numpy as np
>>> from engine.core.volume import LabelMap
>>> lab = np.zeros((120, 140, 110), np.uint8)
>>> lab[10:110, 10:130, 10:100] = 2            # 1.08 L of gray matter only
>>> report = assess(LabelMap(lab, np.eye(4)))
>>> report.verdict
'review this'
>>> report.reasons[-1]
'white matter is 0% of the labelled volume (adult range 22-45%)'
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ..core import morphology
from ..core.volume import (
    INTRACRANIAL_LABELS,
    Label,
    LabelMap,
    LabelTable,
    Volume,
    value_counts,
)

__all__ = [
    "ADULT_RANGES",
    "LIMITS",
    "UNCERTAIN",
    "PlausibilityReport",
    "UncertainRegion",
    "assess",
    "uncertain_regions",
    "uncertainty_bands",
    "uncertainty_limits",
    "uncertainty_map",
]

#: Voxels with a normalised entropy above this count as uncertain.
UNCERTAIN = 0.5

#: Wide adult screening ranges: labelled volume in mL, tissue fractions of it.
ADULT_RANGES: dict[str, tuple[float, float]] = {
    "labelled_ml": (900.0, 2200.0),
    "CSF": (0.03, 0.40),
    "Gray matter": (0.30, 0.65),
    "White matter": (0.22, 0.45),
}

#: Limits on the uncertainty (for 1 mm voxels) and on labels without signal.
LIMITS: dict[str, float] = {
    "uncertainty_mean": 0.15,
    "uncertain_fraction": 0.06,
    "no_signal_fraction": 0.05,
}

#: How the uncertainty limits grow with the voxel size ``s`` (geometric mean of the
#: spacing in mm, at least 1): the share of voxels that straddle a tissue border --
#: honestly uncertain -- grows with ``s``. Measured on the synthetic phantoms at 1
#: and 2 mm: the mean grows about as ``s ** 0.8``, the uncertain fraction as ``s ** 2``.
LIMIT_GROWTH: dict[str, float] = {"uncertainty_mean": 0.8, "uncertain_fraction": 2.0}


def uncertainty_limits(spacing: tuple[float, ...]) -> dict[str, float]:
    """The uncertainty limits for voxels of *spacing* mm (:data:`LIMIT_GROWTH`).

    >>> {k: round(v, 3) for k, v in uncertainty_limits((2.0, 2.0, 2.0)).items()}
    {'uncertainty_mean': 0.261, 'uncertain_fraction': 0.24}
    """
    size = max(1.0, float(np.exp(np.mean(np.log(np.asarray(spacing, dtype=float))))))
    return {key: min(1.0, LIMITS[key] * size ** power) for key, power in LIMIT_GROWTH.items()}

_TISSUE_NAMES = {1: "CSF", 2: "Gray matter", 3: "White matter"}

#: Bands of the uncertainty map as a label layer: (lower bound, name, colour).
UNCERTAINTY_BAND_EDGES: tuple[tuple[float, str, tuple[int, int, int]], ...] = (
    (0.25, "Some doubt (0.25-0.5)", (255, 230, 90)),
    (0.50, "Uncertain (0.5-0.75)", (255, 150, 30)),
    (0.75, "Very uncertain (0.75-1)", (230, 30, 30)),
)


@dataclass(frozen=True)
class PlausibilityReport:
    """The quality report of one result (:func:`assess`).

    Attributes
    ----------
    verdict : str
        ``"looks typical"`` or ``"review this"``.
    reasons : tuple of str
        Why to review, one line each (empty when typical).
    labelled_ml : float
        Volume of all non-zero labels (the brain mask the result implies).
    volumes_ml, fractions : dict
        Per tissue name: mL, and fraction of ``labelled_ml``.
    uncertainty_mean, uncertainty_p95, uncertain_fraction : float or None
        Normalised entropy over the labelled voxels: mean, 95th percentile and
        the fraction above :data:`UNCERTAIN`; ``None`` without probabilities.
    no_signal_fraction : float or None
        Fraction of labelled voxels at or below the background level of the
        image; ``None`` without the image.
    """

    verdict: str
    reasons: tuple[str, ...]
    labelled_ml: float
    volumes_ml: dict[str, float] = field(default_factory=dict)
    fractions: dict[str, float] = field(default_factory=dict)
    uncertainty_mean: float | None = None
    uncertainty_p95: float | None = None
    uncertain_fraction: float | None = None
    no_signal_fraction: float | None = None

    @property
    def typical(self) -> bool:
        return not self.reasons

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict (rounded)."""
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        for key, value in list(out.items()):
            if isinstance(value, float):
                out[key] = round(value, 4)
            elif isinstance(value, dict):
                out[key] = {k: round(v, 4) for k, v in value.items()}
        return out

    def summary_line(self) -> str:
        """One line for a terminal or a status bar."""
        facts = [f"{self.labelled_ml:.0f} mL labelled"]
        if self.uncertainty_mean is not None:
            facts.append(f"uncertainty mean {self.uncertainty_mean:.2f}, "
                         f"{100 * (self.uncertain_fraction or 0):.1f}% uncertain")
        text = f"{self.verdict} ({'; '.join(facts)})"
        if self.reasons:
            text += ": " + "; ".join(self.reasons)
        return text


@dataclass(frozen=True)
class UncertainRegion:
    """A connected region of uncertain voxels (:func:`uncertain_regions`)."""

    index: int
    voxels: int
    mean_uncertainty: float
    centroid: tuple[int, int, int]
    bbox: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def uncertainty_map(probabilities: np.ndarray) -> np.ndarray:
    """Normalised entropy ``-sum p log p / log K`` per voxel, float32 in [0, 1].

    Parameters
    ----------
    probabilities : ndarray, shape (K, ...)
        Class probabilities summing to 1 over the first axis.

    Examples
    --------
    >>> p = np.array([[1.0, 0.5], [0.0, 0.5]])
    >>> uncertainty_map(p).round(3).tolist()
    [0.0, 1.0]
    """
    p = np.asarray(probabilities, dtype=np.float32)
    if p.ndim < 2 or p.shape[0] < 2:
        raise ValueError("probabilities need a class axis of length >= 2 first")
    out = np.zeros(p.shape[1:], dtype=np.float32)
    for k in range(p.shape[0]):  # one class at a time: no (K, ...) temporary
        pk = p[k]
        np.subtract(out, np.where(pk > 0, pk * np.log(np.maximum(pk, 1e-12)), 0.0), out=out)
    out /= math.log(p.shape[0])
    return np.clip(out, 0.0, 1.0, out=out)


def _background_level(image: np.ndarray) -> float:
    """The signal level of air: a little above the image's lowest values.

    The 1st percentile plus 2 % of the robust range (1st to 99th percentile),
    so that noise in air counts as no signal while the darkest tissue (CSF in
    T1) stays above it.
    """
    lo, hi = np.percentile(image, [1.0, 99.0])
    return float(lo + 0.02 * (hi - lo))


def assess(labels: LabelMap, probabilities: np.ndarray | None = None,
           image: Volume | None = None) -> PlausibilityReport:
    """The plausibility report of a tissue label map (or of an intracranial mask).

    Parameters
    ----------
    labels : LabelMap
        0 background, 1 CSF, 2 gray matter, 3 white matter (other values count
        in the labelled volume only). An intracranial mask (the labels of
        :data:`~engine.core.volume.INTRACRANIAL_LABELS`, from brain extraction)
        is checked for its volume, uncertainty and signal, not for tissue shares.
    probabilities : ndarray (K, *labels.shape), optional
        The network's class probabilities, for the uncertainty figures.
    image : Volume, optional
        The segmented image, for the check of labels without signal.
    """
    array = np.asarray(labels.array)
    labelled = array > 0
    n = int(np.count_nonzero(labelled))
    ml = labels.voxel_volume_ml
    labelled_ml = n * ml
    counts = value_counts(array)
    intracranial = (set(labels.labels) <= set(INTRACRANIAL_LABELS)
                    and labels.labels.name(1) == INTRACRANIAL_LABELS.name(1))
    names = {1: INTRACRANIAL_LABELS.name(1)} if intracranial else _TISSUE_NAMES
    volumes = {name: float(counts.get(v, 0) * ml) for v, name in names.items()}
    fractions = {name: (float(counts.get(v, 0)) / n if n else 0.0) for v, name in names.items()}
    reasons: list[str] = []
    lo, hi = ADULT_RANGES["labelled_ml"]
    if not lo <= labelled_ml <= hi:
        side = "below" if labelled_ml < lo else "above"
        reasons.append(f"labelled volume {labelled_ml:.0f} mL is {side} the adult range "
                       f"{lo:.0f}-{hi:.0f} mL (skull or neck labelled, or not a whole brain?)"
                       if side == "above" else
                       f"labelled volume {labelled_ml:.0f} mL is {side} the adult range "
                       f"{lo:.0f}-{hi:.0f} mL (not a whole brain?)")
    for name in () if intracranial else _TISSUE_NAMES.values():
        flo, fhi = ADULT_RANGES[name]
        share = fractions[name]
        if n and not flo <= share <= fhi:
            reasons.append(f"{name.lower() if name != 'CSF' else name} is {100 * share:.0f}% "
                           f"of the labelled volume (adult range "
                           f"{100 * flo:.0f}-{100 * fhi:.0f}%)")
    u_mean = u_p95 = u_frac = None
    if probabilities is not None and n:
        probs = np.asarray(probabilities)
        if probs.shape[1:] != array.shape:
            raise ValueError(f"probabilities of shape {probs.shape} do not fit labels "
                             f"{array.shape}")
        # the labelled voxels' probabilities only: the same per-voxel figures as the
        # whole map's, without computing them in the air around the head
        u = uncertainty_map(probs[:, labelled])
        u_mean = float(u.mean())
        u_p95 = float(np.percentile(u, 95))
        u_frac = float(np.count_nonzero(u > UNCERTAIN)) / n
        limits = uncertainty_limits(labels.spacing)
        if u_mean > limits["uncertainty_mean"]:
            reasons.append(f"mean uncertainty {u_mean:.2f} is above "
                           f"{limits['uncertainty_mean']:.2f}")
        if u_frac > limits["uncertain_fraction"]:
            reasons.append(f"{100 * u_frac:.1f}% of the labelled voxels are uncertain "
                           f"(limit {100 * limits['uncertain_fraction']:.0f}%)")
    no_signal = None
    if image is not None and n:
        values = np.asarray(image.array, dtype=np.float32)
        if values.shape != array.shape:
            raise ValueError(f"image of shape {values.shape} does not fit labels {array.shape}")
        level = _background_level(values)
        no_signal = float(np.count_nonzero(values[labelled] <= level)) / n
        if no_signal > LIMITS["no_signal_fraction"]:
            reasons.append(f"{100 * no_signal:.1f}% of the labelled voxels have no signal "
                           "(tissue labelled in air)")
    if n == 0:
        reasons.append("nothing was labelled")
    return PlausibilityReport(
        verdict="review this" if reasons else "looks typical",
        reasons=tuple(reasons),
        labelled_ml=float(labelled_ml),
        volumes_ml=volumes,
        fractions=fractions,
        uncertainty_mean=u_mean,
        uncertainty_p95=u_p95,
        uncertain_fraction=u_frac,
        no_signal_fraction=no_signal,
    )


def uncertain_regions(uncertainty: np.ndarray, *, threshold: float = UNCERTAIN,
                      min_voxels: int = 20, limit: int = 200) -> list[UncertainRegion]:
    """Connected regions (26-connected) above *threshold*, most uncertain first.

    Regions are ranked by their summed uncertainty (size times mean), so a
    large doubtful region comes before a speck; regions smaller than
    *min_voxels* are left out, and at most *limit* are returned.
    """
    u = np.asarray(uncertainty, dtype=np.float32)
    mask = u > threshold
    # in the uncertain voxels' box (the same regions, in the same order): scipy's
    # find_objects holds Python's lock, and a viewer's event loop waits meanwhile
    box = morphology.bounding_box(mask)
    offset = np.array([s.start for s in box])
    u, mask = u[box], mask[box]
    components, count = morphology.label(mask, 26)
    if count == 0:
        return []
    # sizes and summed uncertainty from the uncertain voxels alone (a few percent of the
    # box; the same sums, in the same order, as over the whole box)
    members = components[mask]
    sizes = np.bincount(members, minlength=count + 1)[1:]
    sums = np.bincount(members, weights=u[mask], minlength=count + 1)[1:]
    slices = ndimage.find_objects(components)
    order = np.argsort(-sums, kind="stable")
    regions: list[UncertainRegion] = []
    for i in order:
        if sizes[i] < min_voxels:
            continue
        region = slices[i]
        start = np.array([s.start for s in region])
        sub = components[region] == i + 1
        centre = np.array(ndimage.center_of_mass(sub)) + start
        # The centroid of a curved region can fall outside it: take its nearest member.
        members = np.argwhere(sub) + start
        nearest = members[np.argmin(((members - centre) ** 2).sum(axis=1))] + offset
        regions.append(UncertainRegion(
            index=len(regions),
            voxels=int(sizes[i]),
            mean_uncertainty=float(sums[i] / sizes[i]),
            centroid=tuple(int(c) for c in nearest),  # type: ignore[arg-type]
            bbox=tuple((int(s.start + o), int(s.stop + o))  # type: ignore[arg-type]
                       for s, o in zip(region, offset, strict=True)),
        ))
        if len(regions) >= limit:
            break
    return regions


def uncertainty_bands(uncertainty: np.ndarray, like: Volume) -> LabelMap:
    """The uncertainty map in bands, as a label map on *like*'s grid (for display).

    0 below 0.25 (certain, not drawn), then the bands of
    :data:`UNCERTAINTY_BAND_EDGES`: 1 some doubt, 2 uncertain, 3 very uncertain.
    A viewer shows, hides and fades it like any other label layer.
    """
    u = np.asarray(uncertainty, dtype=np.float32)
    edges = [edge for edge, _, _ in UNCERTAINTY_BAND_EDGES]
    bands = np.digitize(u, edges).astype(np.uint8)
    table = LabelTable.from_labels(
        [Label(0, "Certain (< 0.25)", (0, 0, 0))]
        + [Label(i + 1, name, colour)
           for i, (_, name, colour) in enumerate(UNCERTAINTY_BAND_EDGES)])
    out = LabelMap.on_grid_of(like, bands, labels=table)
    out.metadata["description"] = "Delineo uncertainty (normalised entropy), in bands"
    return out
