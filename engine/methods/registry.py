"""The registry of segmentation methods: name -> :class:`~engine.core.steps.MethodSpec`.

:data:`METHODS` is an explicit dict filled here with the classical methods,
the baselines, the shipped networks (``"unet"``, ``"delineo"``, from
:data:`engine.methods.cnn.CNN_SPECS`) and brain extraction (``"brain_mask"``,
kind ``"brain_extraction"``: its labels are 0 background / 1 intracranial, not
tissue); :func:`register` adds more. The CLI
(``delineo-engine methods``, ``segment --method``) and the viewer list and
run methods only through this registry. The equation numbers in the summaries
("eq. 30-31", ...) are those of Dai's thesis (``docs/references.md``).

Examples
--------
>>> spec = get_method("otsu")
>>> spec.kind, spec.params_type.__name__
('baseline', 'OtsuParams')
>>> sorted(METHODS)[:3]
['active_contour', 'brain_mask', 'delineo']
"""

from __future__ import annotations

import logging

from ..core.errors import ParameterError, unknown_name
from ..core.steps import MethodSpec
from .active_contour import ActiveContourParams, run_active_contour
from .baselines import GMMParams, OtsuParams, run_gmm, run_otsu
from .brain_extraction import BrainExtractionParams, run_brain_mask
from .cnn import CNN_SPECS
from .energy import EnergyParams, run_energy
from .reaction_diffusion import ReactionDiffusionParams, run_reaction_diffusion

__all__ = ["METHODS", "get_method", "method_names", "register"]

log = logging.getLogger(__name__)

METHODS: dict[str, MethodSpec] = {
    "reaction_diffusion": MethodSpec(
        name="reaction_diffusion",
        summary="competing reaction-diffusion fields per tissue from intensity memberships "
        "(eq. 30-31), argmax",
        params_type=ReactionDiffusionParams,
        run=run_reaction_diffusion,
        kind="classical",
    ),
    "energy": MethodSpec(
        name="energy",
        summary="gradient descent on E(v) = Σ(I - v)² + λΣ‖∇v‖² (eq. 32-33), then k-means "
        "tissue classes",
        params_type=EnergyParams,
        run=run_energy,
        kind="classical",
    ),
    "active_contour": MethodSpec(
        name="active_contour",
        summary="level sets with curvature, edge attraction and region force (eq. 34) "
        "refining multi-Otsu tissue boundaries",
        params_type=ActiveContourParams,
        run=run_active_contour,
        kind="classical",
    ),
    "otsu": MethodSpec(
        name="otsu",
        summary="multi-Otsu thresholds inside the brain mask (baseline)",
        params_type=OtsuParams,
        run=run_otsu,
        kind="baseline",
    ),
    "gmm": MethodSpec(
        name="gmm",
        summary="Gaussian mixture EM with a mean-field Potts MRF prior (FAST/Atropos family)",
        params_type=GMMParams,
        run=run_gmm,
        kind="baseline",
    ),
    "brain_mask": MethodSpec(
        name="brain_mask",
        summary="brain extraction: the intracranial mask (brain and all CSF to the inner "
        "table of the skull) of a whole head, by the deepbet network",
        params_type=BrainExtractionParams,
        run=run_brain_mask,
        kind="brain_extraction",
    ),
}
METHODS.update({spec.name: spec for spec in CNN_SPECS})


def register(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Add *spec* to :data:`METHODS` (e.g. a CNN method) and return it.

    Raises :class:`~engine.core.errors.ParameterError` if the name is taken and
    *replace* is false.

    Examples
    --------
    >>> from engine.core.steps import MethodSpec
    >>> spec = MethodSpec("demo_copy", "otsu again", OtsuParams, run_otsu, kind="baseline")
    >>> register(spec) is METHODS.pop("demo_copy")
    True
    """
    if not spec.name or not spec.name.replace("_", "").replace("-", "").isalnum():
        raise ParameterError(f"method name {spec.name!r} must be letters, digits, _ or -")
    if spec.name in METHODS and not replace:
        raise ParameterError(f"a method named {spec.name!r} is already registered")
    METHODS[spec.name] = spec
    log.debug("registered method %s (%s)", spec.name, spec.kind)
    return spec


def method_names() -> list[str]:
    """Registered method names, sorted."""
    return sorted(METHODS)


def get_method(name: str) -> MethodSpec:
    """The method called *name*; :class:`~engine.core.errors.ParameterError` lists the known ones.

    Examples
    --------
    >>> get_method("nope")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    engine.core.errors.ParameterError: unknown method 'nope'; known: active_contour, ...
    """
    try:
        return METHODS[name]
    except KeyError:
        raise ParameterError(unknown_name("method", name, method_names())) from None
