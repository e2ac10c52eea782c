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
  :func:`refine_labels`;
* :mod:`~engine.methods.baselines` -- multi-Otsu and Gaussian mixture + MRF;
* :mod:`~engine.methods.masks` -- the rough brain mask used when none is given;
* :mod:`~engine.methods.numerics` -- the Neumann stencil, 1-D k-means and the
  brain-crop helpers the methods share;
* :mod:`~engine.methods.cnn` -- the shipped networks (``engine.models``) as
  methods;
* :mod:`~engine.methods.registry` -- name -> :class:`~engine.core.steps.MethodSpec`;
* :mod:`~engine.methods.pipeline` -- named pipelines: method -> refinement ->
  post-processing (:mod:`~engine.methods.postprocess`).

Example
-------
>>> from engine.methods import get_method
>>> get_method("gmm").default_params().iterations
15
"""

from ..core.steps import MethodSpec, RunMethod, SegmentationResult
from .active_contour import ActiveContourParams, active_contour, refine_labels, run_active_contour
from .baselines import GMMParams, OtsuParams, run_gmm, run_otsu
from .energy import EnergyParams, run_energy
from .masks import bounding_box, resolve_mask, rough_brain_mask
from .reaction_diffusion import (
    ReactionDiffusionParams,
    RegularizedProbabilities,
    regularize_probabilities,
    run_reaction_diffusion,
)
from .registry import METHODS, get_method, method_names, register

__all__ = [
    "METHODS",
    "ActiveContourParams",
    "EnergyParams",
    "GMMParams",
    "MethodSpec",
    "OtsuParams",
    "ReactionDiffusionParams",
    "RegularizedProbabilities",
    "RunMethod",
    "SegmentationResult",
    "active_contour",
    "bounding_box",
    "get_method",
    "method_names",
    "refine_labels",
    "register",
    "regularize_probabilities",
    "resolve_mask",
    "rough_brain_mask",
    "run_active_contour",
    "run_energy",
    "run_gmm",
    "run_otsu",
    "run_reaction_diffusion",
]
