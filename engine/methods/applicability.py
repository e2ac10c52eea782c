"""Is a method or pipeline meant for this image? -- :func:`check_applicability`.

Every :class:`~engine.core.steps.MethodSpec` carries an
:class:`~engine.core.steps.Applicability`: the modality, body part, contrasts,
voxel spacing, field of view and fewest slices it was made for. A pipeline is
meant for what all its method steps are meant for. :func:`check_applicability`
compares a volume with that declaration using only what the volume carries
(modality, metadata, spacing, shape, values) and returns one-line reasons,
empty when the image fits.

Rules (nothing is guessed silently):

* **modality**: ``Volume.modality`` when known (DICOM Modality); ``"CT"`` or any
  modality not declared is a reason. When unknown (a NIfTI carries none), the
  values decide: Hounsfield-like values (air near -1000 and dense tissue, see
  :func:`engine.display.looks_like_ct`) are taken as CT; anything else is
  accepted as MR.
* **body part**: ``metadata["body_part"]`` (DICOM BodyPartExamined) when a
  reader provides it; otherwise the field of view stands in for it.
* **field of view**: the extents (shape x spacing) of the two longest axes must
  lie in the declared range (100-400 mm: a head is about 120-250 mm across).
* **spacing**: every axis within the declared range (0.5-3 mm).
* **slices**: every axis at least ``min_slices`` voxels (a single 2-D slice fails).
* **contrast**: inferred by :func:`infer_contrast` from what a DICOM file says
  about its acquisition (``metadata["acquisition"]``: series and protocol names,
  ImageType, sequence, TR/TE/TI, b-value). A contrast the method is not made for
  (FLAIR, diffusion, susceptibility, angiography, perfusion, BOLD) is a reason;
  when nothing says which contrast an image has (a NIfTI file, a DICOM file with
  no usable names or timings), the contrast is not checked and
  :func:`check_applicability` says nothing about it.

Examples
--------
>>> import numpy as np
>>> from engine.core.volume import Volume
>>> from engine.methods import get_method
>>> ct = Volume(np.full((128, 128), -1000.0), np.diag([0.7, 0.7, 5.0, 1.0]), modality="CT")
>>> check_applicability(ct, get_method("otsu"))[0]
'modality CT: otsu is made for MR'
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.errors import DelineoError
from ..core.steps import Applicability, MethodSpec
from ..core.volume import Volume
from ..display import looks_like_ct

__all__ = [
    "Applicability",
    "NotApplicableError",
    "applicability_of",
    "check_applicability",
    "describe_applicability",
    "infer_contrast",
    "refusal",
]

log = logging.getLogger(__name__)

_TOL = 1e-3


class NotApplicableError(DelineoError):
    """A method or pipeline was asked to run on an image outside its declared use."""


def refusal(reasons: Sequence[str], override: str) -> NotApplicableError:
    """The error refusing an image for *reasons* (:func:`check_applicability`), on one
    line: the first three reasons, how many more, and *override* (how to run anyway).

    Examples
    --------
    >>> str(refusal(["contrast FLAIR: head is made for T1, T2, PD", "voxel spacing 5 mm"],
    ...             "--force"))
    'contrast FLAIR: head is made for T1, T2, PD; voxel spacing 5 mm; use --force to run anyway'
    """
    text = "; ".join(reasons[:3])
    if len(reasons) > 3:
        text += f"; {len(reasons) - 3} more reason{'s' if len(reasons) > 4 else ''}"
    return NotApplicableError(f"{text}; use {override} to run anyway")


def applicability_of(spec: Any) -> tuple[str, list[Applicability]]:
    """``(name, declarations)`` of a MethodSpec, a Pipeline or an Applicability."""
    if isinstance(spec, Applicability):
        return "the method", [spec]
    if isinstance(spec, MethodSpec):
        return spec.name, [spec.applicability]
    steps = getattr(spec, "steps", None)
    if steps is not None:
        from .registry import METHODS

        found = []
        for step in steps:
            method = METHODS.get(step.name)
            if method is not None:
                found.append(method.applicability)
        return spec.name, found or [Applicability()]
    raise TypeError(f"no applicability for {type(spec).__name__}")


def _merge(items: list[Applicability]) -> Applicability:
    """The narrowest declaration that satisfies every item."""
    first = items[0]
    mods = tuple(m for m in first.modalities if all(m in a.modalities for a in items))
    parts = tuple(b for b in first.body_parts if all(b in a.body_parts for a in items))
    cons = tuple(c for c in first.contrasts if all(c in a.contrasts for a in items))
    return Applicability(
        modalities=mods,
        body_parts=parts,
        contrasts=cons,
        spacing_mm=(max(a.spacing_mm[0] for a in items), min(a.spacing_mm[1] for a in items)),
        fov_mm=(max(a.fov_mm[0] for a in items), min(a.fov_mm[1] for a in items)),
        min_slices=max(a.min_slices for a in items),
    )


# Words in series, protocol and sequence names that name a contrast, checked in this
# order (the first match wins): specific sequences first, T1/T2/PD last, so that
# "T2 FLAIR" is FLAIR and "T2*" is susceptibility, while "T1 FLAIR" is a T1.
_CONTRAST_WORDS: tuple[tuple[str, str], ...] = (
    (r"\b(dwi|dti|diff\w*|adc|trace\w?|b\d{3,4})\b", "DWI"),
    (r"\b(swi|swan|t2star|hemo\w*)\b|\bt2\*", "SWI"),
    (r"\b(tof|angio\w*|mra)\b", "MRA"),
    (r"\b(perf\w*|pwi|dsc|dce|asl|pcasl|pasl)\b", "perfusion"),
    (r"\b(bold|fmri|resting|rest|task)\b", "BOLD"),
    (r"\b(t1 ?flair|t1w?|t1\w+)\b|\bmp ?rage\b|\bmp2rage\b|\bf?spgr\b|\bbravo\b|"
     r"\btfl\b", "T1"),
    (r"\b(flair|dark ?fluid|tirm)\b", "FLAIR"),
    (r"\b(pd|pdw|proton density)\b", "PD"),
    (r"\bt2w?\b", "T2"),
)
_DIFFUSION_IMAGE_TYPES = {"DIFFUSION", "ADC", "TRACEW", "FA", "EADC", "TRACE"}


def infer_contrast(metadata: dict[str, Any]) -> tuple[str | None, str]:
    """The image contrast a volume's metadata names, and the evidence for it.

    Parameters
    ----------
    metadata : dict
        :attr:`Volume.metadata`: ``metadata["acquisition"]`` (filled by the
        DICOM reader) and ``metadata["original_shape"]`` (NIfTI) are used.

    Returns
    -------
    (contrast, evidence) : (str or None, str)
        ``contrast`` is ``"T1"``, ``"T2"``, ``"PD"``, ``"FLAIR"``, ``"DWI"``,
        ``"SWI"``, ``"MRA"``, ``"perfusion"``, ``"BOLD"``, ``"4-D series"``
        (a NIfTI file of several volumes: a time or diffusion series) or
        ``None`` when nothing says; ``evidence`` is a short phrase for messages.

    Names are trusted before timings: a description such as ``"AX T2 FLAIR"``
    names the contrast directly; without a telling name, the repetition, echo
    and inversion times decide (inversion time above 1500 ms with a long echo:
    FLAIR; 300-1200 ms: T1 inversion recovery; TR < 1000 ms and TE < 30 ms: T1;
    TR >= 1800 ms with TE >= 70 ms: T2, with TE <= 40 ms: PD).

    Examples
    --------
    >>> infer_contrast({"acquisition": {"series_description": "AX T2 FLAIR"}})
    ('FLAIR', "series description 'AX T2 FLAIR'")
    >>> infer_contrast({"acquisition": {"repetition_time_ms": 4000.0, "echo_time_ms": 100.0}})
    ('T2', 'TR 4000 ms, TE 100 ms')
    >>> infer_contrast({})
    (None, 'no acquisition facts')
    """
    import re

    shape = metadata.get("original_shape") or ()
    if len(shape) >= 4 and int(shape[3]) > 1:
        return "4-D series", (f"a 4-D file of {int(shape[3])} volumes: fMRI, diffusion or "
                              "perfusion, not a structural scan")
    facts = metadata.get("acquisition") or {}
    if not isinstance(facts, dict) or not facts:
        return None, "no acquisition facts"
    image_type = {t.strip().upper() for t in str(facts.get("image_type", "")).split("\\")}
    if image_type & _DIFFUSION_IMAGE_TYPES:
        return "DWI", "image type " + str(facts["image_type"])
    b_value = facts.get("diffusion_b_value")
    if isinstance(b_value, int | float) and b_value > 0:
        return "DWI", f"b-value {b_value:g}"
    for key, what in (("series_description", "series description"),
                      ("protocol_name", "protocol name"),
                      ("sequence_name", "sequence name")):
        # Underscores and hyphens separate words in protocol names ("t1_mprage_sag").
        text = re.sub(r"[_\-]+", " ", str(facts.get(key, "")).lower())
        if not text:
            continue
        for pattern, contrast in _CONTRAST_WORDS:
            if re.search(pattern, text):
                return contrast, f"{what} {facts[key]!r}"
    tr = facts.get("repetition_time_ms")
    te = facts.get("echo_time_ms")
    ti = facts.get("inversion_time_ms")
    timing = ", ".join(f"{n} {v:g} ms" for n, v in (("TR", tr), ("TE", te), ("TI", ti))
                       if isinstance(v, int | float))
    if isinstance(ti, int | float) and ti > 0:
        if ti > 1500 and isinstance(te, int | float) and te >= 60:
            return "FLAIR", timing
        if 300 <= ti <= 1200:
            return "T1", timing
    if isinstance(tr, int | float) and isinstance(te, int | float) and tr > 0 and te > 0:
        if tr < 1000 and te < 30:
            return "T1", timing
        if tr >= 1800 and te >= 70:
            return "T2", timing
        if tr >= 1800 and te <= 40:
            return "PD", timing
    return None, f"no telling name or timing ({timing or 'none'})"


def describe_applicability(spec: Any) -> str:
    """One line: what *spec* is made for, e.g. ``MR brain/head (T1, T2, PD), 0.5-3 mm ...``."""
    _, items = applicability_of(spec)
    a = _merge(items)
    return (f"{'/'.join(a.modalities)} {'/'.join(b.lower() for b in a.body_parts)} "
            f"({', '.join(a.contrasts)}), voxels {a.spacing_mm[0]:g}-{a.spacing_mm[1]:g} mm, "
            f"field of view {a.fov_mm[0]:g}-{a.fov_mm[1]:g} mm, "
            f"at least {a.min_slices} slices")


def check_applicability(volume: Volume, spec: Any) -> list[str]:
    """Reasons why *spec* (MethodSpec, Pipeline or Applicability) does not fit *volume*.

    Parameters
    ----------
    volume : Volume
        The image to be segmented.
    spec : MethodSpec, Pipeline or Applicability
        What is to run.

    Returns
    -------
    list of str
        One-line reasons; empty when the image is within the declared use.
    """
    name, items = applicability_of(spec)
    a = _merge(items)
    reasons: list[str] = []
    wanted = "/".join(a.modalities) or "no modality"
    modality = (volume.modality or "unknown").strip().upper()
    if modality in ("", "UNKNOWN", "OT"):
        if looks_like_ct(volume.array) and "CT" not in a.modalities:
            reasons.append(f"values look like CT (Hounsfield units near -1000): "
                           f"{name} is made for {wanted}")
    elif modality not in a.modalities:
        reasons.append(f"modality {modality}: {name} is made for {wanted}")
    body = str(volume.metadata.get("body_part", "") or "").strip().upper()
    if body and a.body_parts and not any(b in body for b in a.body_parts):
        reasons.append(f"body part {body}: {name} is made for "
                       + "/".join(b.lower() for b in a.body_parts))
    if modality in ("MR", "", "UNKNOWN", "OT") and a.contrasts:
        contrast, evidence = infer_contrast(volume.metadata)
        if contrast is not None and contrast not in a.contrasts:
            reasons.append(f"contrast {contrast} ({evidence}): {name} is made for "
                           + ", ".join(a.contrasts))
    shape = np.array(volume.shape)
    spacing = np.array(volume.spacing, dtype=float)
    if shape.min() < a.min_slices:
        reasons.append(f"{int(shape.min())} slice(s) along one axis (shape "
                       + "x".join(str(int(n)) for n in shape)
                       + f"): {name} needs a 3-D volume with at least {a.min_slices}")
    lo, hi = a.spacing_mm
    if spacing.min() < lo - _TOL or spacing.max() > hi + _TOL:
        reasons.append("voxel spacing " + "x".join(f"{s:.3g}" for s in spacing)
                       + f" mm: {name} is made for {lo:g}-{hi:g} mm")
    extent = np.sort(shape * spacing)[::-1][:2]
    lo, hi = a.fov_mm
    if extent.min() < lo - _TOL or extent.max() > hi + _TOL:
        reasons.append("field of view " + "x".join(f"{e:.0f}" for e in extent)
                       + f" mm: {name} is made for a head ({lo:g}-{hi:g} mm across)")
    if reasons:
        log.info("%s outside its declared use: %s", name, "; ".join(reasons))
    return reasons
