"""Named, composable segmentation pipelines: method → refinement → post-processing.

A pipeline is a list of steps, each a registered step type with its
parameters. A pipeline for a whole head starts by *extracting* the brain
(:mod:`engine.methods.brain_extraction`: the intracranial mask); the steps
after it see the image with everything outside that mask set to zero and
segment only inside it. The next step *segments* (any method of
:mod:`engine.methods.registry`: a network, a classical method, a baseline);
later steps *refine* the previous result (reaction-diffusion regularisation of
the probabilities, active-contour boundary refinement) or *post-process* the
labels (largest brain component, small-island removal, hole filling).

:func:`run_pipeline` reports progress per step, honours the cancel token at
any point, runs on the chosen device and returns the labels, the
probabilities when the first step has them, the runtime of each step and the
peak memory (process RSS sampled during the run; CUDA peak allocation on
CUDA).

Examples
--------
>>> sorted(PIPELINES)[:3]
['active_contour', 'brain_mask', 'cnn']
>>> result = run_pipeline(volume, "cnn+rd", device="cpu")  # doctest: +SKIP
>>> [s.name for s in result.steps]                         # doctest: +SKIP
['delineo', 'rd_regularize', 'largest_component']
>>> [s.name for s in PIPELINES["head"].steps]
['brain_mask', 'delineo_lesion_varied', 'largest_component', 'lesions']
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.device import resolve_device
from ..core.errors import ParameterError, unknown_name
from ..core.jobs import CancelToken, check_cancel, report, scaled_progress
from ..core.memory import PeakMemory, release_free_memory
from ..core.params import describe, validate
from ..core.params import replace as replace_params
from ..core.steps import SegmentationResult
from ..core.volume import LabelMap, Volume
from .postprocess import (
    FillHolesParams,
    LargestComponentParams,
    SmallIslandsParams,
    fill_holes,
    largest_brain_component,
    remove_small_islands,
)

__all__ = [
    "DEFAULT_PIPELINE",
    "PIPELINES",
    "STEPS",
    "Pipeline",
    "PipelineResult",
    "Step",
    "StepReport",
    "StepSpec",
    "get_pipeline",
    "run_pipeline",
]

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None] | None


@dataclass
class StepContext:
    """What a step runner receives."""

    volume: Volume
    previous: SegmentationResult | None
    params: Any
    device: str
    mask: np.ndarray | None
    progress: ProgressFn
    cancel: CancelToken | None


@dataclass(frozen=True)
class StepSpec:
    """A step type: ``kind`` is ``"extract"`` (brain extraction, first only),
    ``"segment"``, ``"refine"`` or ``"post"``."""

    name: str
    kind: str
    summary: str
    params_type: type
    run: Callable[[StepContext], SegmentationResult]
    needs_probabilities: bool = False


# -- step runners -------------------------------------------------------------------
def _method_runner(method_name: str) -> Callable[[StepContext], SegmentationResult]:
    def run(ctx: StepContext) -> SegmentationResult:
        from .registry import get_method

        spec = get_method(method_name)
        return spec.run(ctx.volume, ctx.params, device=ctx.device, mask=ctx.mask,
                        progress=ctx.progress, cancel=ctx.cancel)

    return run


def _relabel(ctx: StepContext, array: np.ndarray, info: dict[str, Any],
             probabilities: np.ndarray | None = None) -> SegmentationResult:
    prev = ctx.previous
    assert prev is not None
    labels = prev.labels.with_array(array.astype(prev.labels.array.dtype, copy=False))
    merged = dict(prev.info)
    merged.update(info)
    probs = probabilities if probabilities is not None else prev.probabilities
    return SegmentationResult(labels=labels, probabilities=probs, info=merged)


def _run_rd_regularize(ctx: StepContext) -> SegmentationResult:
    from .reaction_diffusion import regularize_probabilities

    prev = ctx.previous
    if prev is None or prev.probabilities is None:
        raise ParameterError("rd_regularize needs a previous step that gives probabilities")
    out = regularize_probabilities(prev.probabilities, ctx.params, ctx.volume.spacing,
                                   device=ctx.device, progress=ctx.progress, cancel=ctx.cancel)
    return _relabel(ctx, np.asarray(out.labels), {"rd_iterations": ctx.params.iterations},
                    np.asarray(out.probabilities, dtype=np.float32))


def _run_ac_refine(ctx: StepContext) -> SegmentationResult:
    from .active_contour import refine_labels

    prev = ctx.previous
    if prev is None:
        raise ParameterError("ac_refine needs a previous step")
    refined = refine_labels(ctx.volume, prev.labels, ctx.params, device=ctx.device,
                            progress=ctx.progress, cancel=ctx.cancel)
    array = refined.labels.array if isinstance(refined, SegmentationResult) else np.asarray(
        refined.array if isinstance(refined, LabelMap) else refined)
    return _relabel(ctx, array, {})


def _post_runner(
    fn: Callable[..., np.ndarray], uses_spacing: bool
) -> Callable[[StepContext], SegmentationResult]:
    def run(ctx: StepContext) -> SegmentationResult:
        if ctx.previous is None:
            raise ParameterError("post-processing needs a previous step")
        kwargs = dataclasses.asdict(ctx.params)
        if uses_spacing:
            kwargs["spacing"] = ctx.volume.spacing
        report(ctx.progress, 0.0, "post-processing")
        out = fn(ctx.previous.labels.array, **kwargs)
        report(ctx.progress, 1.0, "done")
        return _relabel(ctx, out, {})

    return run


def _refine_specs() -> dict[str, StepSpec]:
    from .active_contour import ActiveContourParams
    from .lesion_step import LesionParams, run_lesion_step
    from .reaction_diffusion import ReactionDiffusionParams

    return {
        "rd_regularize": StepSpec(
            "rd_regularize", "refine",
            "reaction-diffusion regularisation of the previous step's probabilities",
            ReactionDiffusionParams, _run_rd_regularize, needs_probabilities=True),
        "ac_refine": StepSpec(
            "ac_refine", "refine", "active-contour refinement of the label boundaries",
            ActiveContourParams, _run_ac_refine),
        "lesions": StepSpec(
            "lesions", "refine",
            "the lesion network paints label 4 (lesion) into the brain of the tissue labels",
            LesionParams, run_lesion_step),
    }


POST_STEPS: dict[str, StepSpec] = {
    "largest_component": StepSpec(
        "largest_component", "post", "keep the largest connected component of the brain",
        LargestComponentParams, _post_runner(largest_brain_component, False)),
    "small_islands": StepSpec(
        "small_islands", "post", "relabel small isolated pieces with their neighbours' label",
        SmallIslandsParams, _post_runner(remove_small_islands, True)),
    "fill_holes": StepSpec(
        "fill_holes", "post", "fill holes enclosed by the brain",
        FillHolesParams, _post_runner(fill_holes, True)),
}


def _steps() -> dict[str, StepSpec]:
    """Every step type: registered methods (segment), refinements and post-processing."""
    from .registry import METHODS

    out = {
        name: StepSpec(name, "extract" if spec.kind == "brain_extraction" else "segment",
                       spec.summary, spec.params_type, _method_runner(name))
        for name, spec in METHODS.items()
    }
    out.update(_refine_specs())
    out.update(POST_STEPS)
    return out


class _LazySteps(Mapping[str, StepSpec]):
    """``STEPS``: built on first use so importing this module stays cheap."""

    def _data(self) -> dict[str, StepSpec]:
        return _steps()

    def __getitem__(self, key: str) -> StepSpec:
        return self._data()[key]

    def __iter__(self):
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


STEPS: Mapping[str, StepSpec] = _LazySteps()


# -- pipelines ------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One step of a pipeline: a step type name and parameter overrides."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def spec(self) -> StepSpec:
        try:
            return STEPS[self.name]
        except KeyError:
            raise ParameterError(unknown_name("step", self.name, sorted(STEPS))) from None

    def resolved_params(self) -> Any:
        return validate(self.spec().params_type(**dict(self.params)))


@dataclass(frozen=True)
class Pipeline:
    """A named sequence of steps; the first one segments."""

    name: str
    summary: str
    steps: tuple[Step, ...]

    def with_params(self, overrides: Mapping[int, Mapping[str, Any]]) -> Pipeline:
        """A copy with parameter overrides per step index."""
        steps = list(self.steps)
        for index, changes in overrides.items():
            if not 0 <= index < len(steps):
                raise ParameterError(f"{self.name} has no step {index}")
            merged = {**dict(steps[index].params), **dict(changes)}
            steps[index] = Step(steps[index].name, merged)
        return Pipeline(self.name, self.summary, tuple(steps))

    def describe(self) -> str:
        """``delineo+rd_regularize(iterations=50)`` -- names with non-default params."""
        parts = []
        for step in self.steps:
            if step.params:
                args = ", ".join(f"{k}={v}" for k, v in step.params.items())
                parts.append(f"{step.name}({args})")
            else:
                parts.append(step.name)
        return " → ".join(parts)


_POST = (Step("largest_component"),)


def _builtin_pipelines() -> dict[str, Pipeline]:
    from .registry import METHODS

    pipes = {
        "cnn": Pipeline("cnn", "the proposed network (delineo)", (Step("delineo"), *_POST)),
        "cnn+rd": Pipeline(
            "cnn+rd", "the network, its probabilities regularised by reaction-diffusion",
            (Step("delineo"), Step("rd_regularize"), *_POST)),
        "cnn+rd+ac": Pipeline(
            "cnn+rd+ac", "the network, reaction-diffusion, then active-contour refinement",
            (Step("delineo"), Step("rd_regularize"), Step("ac_refine"), *_POST)),
        "unet": Pipeline("unet", "the plain U-Net baseline", (Step("unet"), *_POST)),
        # 8 slices a batch: the same speed on a CPU as 16, and a whole head's peak
        # memory stays near 1.5 GiB (docs/brain-extraction.md). The tissue network has
        # a lesion output, computed in the lesions step's arithmetic (float32), so the
        # lesions step takes it instead of running that network again (docs/model.md,
        # "One network for tissue and lesions"); the step then runs the other lesion
        # network on a few slices, 4 a batch: the peak memory of a whole head stays
        # that of brain extraction (8 a batch added 0.1 GiB, docs/lesions.md).
        "head": Pipeline(
            "head", "a whole head: brain extraction, the tissue network with a lesion "
            "output inside the intracranial mask, then lesions (label 4)",
            (Step("brain_mask"),
             Step("delineo_lesion_varied", {"batch_size": 8, "precision": "float32"}),
             *_POST, Step("lesions", {"batch_size": 4}))),
        "head+delineo": Pipeline(
            "head+delineo", "a whole head: brain extraction, then the tissue network delineo "
            "inside the intracranial mask (no lesions; the default until 2026-12-07)",
            (Step("brain_mask"), Step("delineo", {"batch_size": 8}), *_POST)),
        "head+gmm": Pipeline(
            "head+gmm", "a whole head: brain extraction, then the Gaussian mixture inside "
            "the intracranial mask", (Step("brain_mask"), Step("gmm"))),
        # Lesions (docs/lesions.md) after the tissue network delineo: the default
        # pipeline until 2026-12-07 had no lesions step; this was detect's.
        "head+lesions": Pipeline(
            "head+lesions", "a whole head: brain extraction, the network delineo inside the "
            "intracranial mask, then lesions (label 4) by the lesion networks",
            (Step("brain_mask"), Step("delineo", {"batch_size": 8}), *_POST,
             Step("lesions"))),
        "cnn+lesions": Pipeline(
            "cnn+lesions", "a skull-stripped brain: the network, then lesions (label 4) by "
            "the lesion network", (Step("delineo"), *_POST, Step("lesions"))),
    }
    for name, spec in METHODS.items():
        if spec.kind != "cnn" and name not in pipes:
            pipes[name] = Pipeline(name, spec.summary, (Step(name),))
    available = _steps()
    return {k: v for k, v in pipes.items() if all(s.name in available for s in v.steps)}


class _LazyPipelines(Mapping[str, Pipeline]):
    def __getitem__(self, key: str) -> Pipeline:
        return _builtin_pipelines()[key]

    def __iter__(self):
        return iter(_builtin_pipelines())

    def __len__(self) -> int:
        return len(_builtin_pipelines())


PIPELINES: Mapping[str, Pipeline] = _LazyPipelines()

#: The pipeline used when none is named: a scan as it comes off the scanner is a whole
#: head, so brain extraction comes first (docs/pipelines.md, docs/brain-extraction.md).
DEFAULT_PIPELINE = "head"


def get_pipeline(name: str | Pipeline) -> Pipeline:
    if isinstance(name, Pipeline):
        return name
    try:
        return PIPELINES[name]
    except KeyError:
        raise ParameterError(unknown_name("pipeline", name, sorted(PIPELINES))) from None


# -- running ---------------------------------------------------------------------------
@dataclass
class StepReport:
    name: str
    kind: str
    seconds: float
    peak_rss_bytes: int
    params: dict[str, Any]


@dataclass
class PipelineResult:
    """Output of :func:`run_pipeline`."""

    pipeline: str
    description: str
    labels: LabelMap
    probabilities: np.ndarray | None
    steps: list[StepReport]
    seconds: float
    peak_rss_bytes: int
    peak_cuda_bytes: int | None
    device: str
    info: dict[str, Any] = field(default_factory=dict)
    #: Class probabilities of the segmenting step, when it gives them: the
    #: network's own, for the uncertainty of the result even after refinement.
    segment_probabilities: np.ndarray | None = None
    #: The intracranial mask of a pipeline that starts with brain extraction.
    brain_mask: np.ndarray | None = None


def run_pipeline(
    volume: Volume,
    pipeline: str | Pipeline,
    *,
    device: str = "auto",
    mask: np.ndarray | None = None,
    overrides: Mapping[int, Mapping[str, Any]] | None = None,
    progress: ProgressFn = None,
    cancel: CancelToken | None = None,
) -> PipelineResult:
    """Run a pipeline on *volume*.

    Parameters
    ----------
    volume : Volume
    pipeline : str or Pipeline
        A name from :data:`PIPELINES` or a custom :class:`Pipeline`.
    device : {"auto", "cpu", "cuda"}
    mask : ndarray of bool, optional
        Brain mask passed to the segmenting method (after a brain-extraction
        step: its intersection with the intracranial mask).
    overrides : mapping, optional
        ``{step_index: {param: value}}`` parameter changes.
    progress, cancel
        ``progress(fraction, "step 2/3 rd_regularize: ...")``; the cancel
        token is checked between and inside steps (raises
        :class:`~engine.core.jobs.Cancelled`).
    """
    pipe = get_pipeline(pipeline)
    if overrides:
        pipe = pipe.with_params(overrides)
    if not pipe.steps:
        raise ParameterError(f"pipeline {pipe.name} has no steps")
    kinds = [s.spec().kind for s in pipe.steps]
    _check_order(pipe.name, kinds)
    dev = str(resolve_device(device))
    resolved = [(s, s.spec(), s.resolved_params()) for s in pipe.steps]
    reports: list[StepReport] = []
    previous: SegmentationResult | None = None
    segment_probabilities: np.ndarray | None = None
    brain_mask: np.ndarray | None = None
    extract_info: dict[str, Any] = {}
    n = len(resolved)
    start = time.perf_counter()
    with PeakMemory(device=dev) as total_peak:
        for i, (step, spec, params) in enumerate(resolved):
            check_cancel(cancel)
            if spec.needs_probabilities and (previous is None or previous.probabilities is None):
                raise ParameterError(f"step {spec.name} needs probabilities from the step before")
            sub = scaled_progress(progress, i / n, (i + 1) / n,
                                  prefix=f"step {i + 1}/{n} {spec.name}: ")
            report(sub, 0.0, "starting")
            t0 = time.perf_counter()
            with PeakMemory(device=dev) as step_peak:
                previous = spec.run(StepContext(volume, previous, params, dev, mask, sub, cancel))
            if spec.kind == "extract":
                # Later steps see a skull-stripped image and segment only inside the mask.
                brain_mask = previous.labels.array > 0
                extract_info = dict(previous.info)
                volume = volume.with_array(
                    np.where(brain_mask, volume.array, 0).astype(volume.array.dtype, copy=False))
                mask = brain_mask if mask is None else brain_mask & np.asarray(mask, bool)
                if i + 1 < n:
                    previous = None
                    release_free_memory()  # the extraction network's activations
            elif spec.kind == "segment":
                segment_probabilities = previous.probabilities
            seconds = time.perf_counter() - t0
            reports.append(StepReport(step.name, spec.kind, seconds, step_peak.rss_bytes,
                                      _param_dict(params)))
            log.info("%s: step %s took %.2f s", pipe.name, spec.name, seconds)
    assert previous is not None
    report(progress, 1.0, "done")
    info = {**extract_info, **previous.info}
    labels = previous.labels
    labels.metadata["pipeline"] = pipe.name
    labels.metadata["pipeline_description"] = pipe.describe()
    return PipelineResult(
        pipeline=pipe.name,
        description=pipe.describe(),
        labels=labels,
        probabilities=previous.probabilities,
        steps=reports,
        seconds=time.perf_counter() - start,
        peak_rss_bytes=total_peak.rss_bytes,
        peak_cuda_bytes=total_peak.cuda_bytes,
        device=dev,
        info=info,
        segment_probabilities=segment_probabilities,
        brain_mask=brain_mask,
    )


def _check_order(name: str, kinds: Sequence[str]) -> None:
    """A pipeline is ``[extract] segment (refine|post)*``, or ``extract`` alone."""
    if kinds == ["extract"]:
        return
    rest = kinds[1:] if kinds and kinds[0] == "extract" else list(kinds)
    if not rest or rest[0] != "segment":
        raise ParameterError(f"pipeline {name} must start with a segmenting step "
                             "(after brain extraction, when it has one)")
    if any(k in ("extract", "segment") for k in rest[1:]):
        raise ParameterError(f"pipeline {name}: brain extraction and segmentation come once, "
                             "at the start")


def _param_dict(params: Any) -> dict[str, Any]:
    return {info.name: getattr(params, info.name) for info in describe(type(params))}


def set_step_params(pipeline: Pipeline, index: int, **changes: Any) -> Pipeline:
    """Convenience: validated parameter change of one step."""
    step = pipeline.steps[index]
    replace_params(step.resolved_params(), changes)
    return pipeline.with_params({index: changes})


def list_steps(kinds: Sequence[str] = ("extract", "segment", "refine", "post")
               ) -> list[StepSpec]:
    return [s for s in STEPS.values() if s.kind in kinds]
