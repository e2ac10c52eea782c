"""Segmentation methods and how they compose: classical PDE methods, baselines,
the network as a method, the method registry, pipelines and post-processing.

Every method is ``run(volume, params, *, device, mask, progress, cancel) ->
SegmentationResult`` with a frozen parameter dataclass (see
:mod:`engine.core.steps`). The classical methods are device-agnostic torch
code (CPU or CUDA, 2-D or 3-D):

* :mod:`~engine.methods.reaction_diffusion` -- reaction-diffusion fields
  (eq. 30--31) and :func:`regularize_probabilities` for CNN softmax maps;
* :mod:`~engine.methods.energy` -- energy-minimisation descent (eq. 32--33);
* :mod:`~engine.methods.active_contour` -- level-set active contours (eq. 34):
  :func:`active_contour` (binary, from a seed, box or mask) and
  :func:`refine_labels`, on the signed distance, narrow band and
  re-initialisation of :mod:`~engine.methods.level_set`;
* :mod:`~engine.methods.baselines` -- multi-Otsu and Gaussian mixture + MRF;
* :mod:`~engine.methods.masks` -- the rough brain mask used when none is given;
* :mod:`~engine.methods.numerics` -- the Neumann stencil, 1-D k-means and the
  brain-crop helpers the methods share;
* :mod:`~engine.methods.cnn` -- the shipped networks (``engine.models``) as
  methods;
* :mod:`~engine.methods.registry` -- name -> :class:`~engine.core.steps.MethodSpec`;
* :mod:`~engine.methods.pipeline` -- named pipelines: method -> refinement ->
  post-processing (:mod:`~engine.methods.postprocess`).

Equation and table numbers are those of Dai's thesis, *Deep Learning-based
Medical Image Segmentation for Early Cancer Detection*; each module's
References section names the method's literature, and ``docs/references.md``
lists every work with its DOI.

Examples
--------
>>> from engine.methods import get_method
>>> get_method("gmm").default_params().iterations
15
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module (relative to this package) that defines it. Loaded on
#: first use, so that importing one light module (``masks``, ``postprocess``) does
#: not import every method and the networks with it. ``engine.methods.active_contour``
#: is the module; its binary level-set function is ``active_contour.active_contour``.
_EXPORTS = {
    "MethodSpec": "..core.steps",
    "RunMethod": "..core.steps",
    "SegmentationResult": "..core.steps",
    "ActiveContourParams": ".active_contour",
    "refine_labels": ".active_contour",
    "run_active_contour": ".active_contour",
    "GMMParams": ".baselines",
    "OtsuParams": ".baselines",
    "run_gmm": ".baselines",
    "run_otsu": ".baselines",
    "EnergyParams": ".energy",
    "run_energy": ".energy",
    "bounding_box": "..core.morphology",
    "resolve_mask": ".masks",
    "rough_brain_mask": ".masks",
    "ReactionDiffusionParams": ".reaction_diffusion",
    "RegularizedProbabilities": ".reaction_diffusion",
    "regularize_probabilities": ".reaction_diffusion",
    "run_reaction_diffusion": ".reaction_diffusion",
    "METHODS": ".registry",
    "get_method": ".registry",
    "method_names": ".registry",
    "register": ".registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
