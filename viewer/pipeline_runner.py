"""Pipelines and click-to-refine as background jobs of the main window.

:class:`PipelineRunner` runs an :mod:`engine.methods.pipeline` pipeline on the shown
image in the window's :class:`~viewer.workers.JobRunner` and turns the result
into a new label layer named after the pipeline and its parameters, carrying
its runtime and peak memory (``labelmap.metadata``) for the comparison table.
The first result on an image's new, empty edited mask, while nothing was done to
it, also becomes that mask (one undoable step; :attr:`PipelineRunner.adopted`).
:class:`RefineRunner` runs :func:`engine.editing.refine.refine_at` for the
click-to-refine tool and applies the outcome to the edited mask as one
undoable step. Neither knows about threads: the job runner does.

Every pipeline result is judged in the worker by
:func:`engine.evaluation.plausibility.assess` (verdict in
``labelmap.metadata["plausibility"]``); a result with class probabilities also
gets an uncertainty layer (role ``"uncertainty"``, hidden at first) and a list
of its uncertain regions, most uncertain first (:meth:`PipelineRunner.regions_of`).
An image outside the pipeline's declared use is refused with :attr:`refused`
(the window shows a dialog) unless the run is forced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.core.errors import DelineoError
from engine.core.memory import current_rss_bytes
from engine.core.volume import INTRACRANIAL_LABELS, LabelMap, LabelTable
from engine.display import label_volumes
from engine.editing.kernels import Diff
from engine.editing.refine import ClickRefineParams, LocalEdit, refine_at
from engine.evaluation.plausibility import (
    PlausibilityReport,
    UncertainRegion,
    assess,
    uncertain_regions,
    uncertainty_bands,
    uncertainty_map,
)
from engine.methods.applicability import check_applicability, refusal
from engine.methods.pipeline import Pipeline, PipelineResult, get_pipeline, run_pipeline

from .layers import LabelLayer, LayerStack
from .workers import Job, JobRunner

__all__ = ["MASK_SOURCES", "PipelineRunner", "RefineRunner", "describe_failure", "result_name"]

log = logging.getLogger(__name__)

#: Brain-mask choices of a pipeline run: key -> text shown in the methods dock.
MASK_SOURCES: dict[str, str] = {
    "auto": "Automatic (from the image)",
    "truth": "Ground truth brain (labels > 0)",
    "edit": "Edited mask brain (labels > 0)",
}


class EditsLike(Protocol):
    """What the runners use of the window's edit session (:mod:`viewer.edit_session`)."""

    selected_label: int

    @property
    def untouched(self) -> bool: ...
    def apply_diff(self, diff: Diff | None, name: str) -> None: ...
    def apply_labels(self, array: np.ndarray, name: str, *,
                     names: LabelTable | None = None) -> None: ...


def describe_failure(exc: BaseException) -> str:
    """One line for the user about a failed run."""
    if isinstance(exc, DelineoError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "not enough memory for this pipeline on this image"
    return f"unexpected error ({type(exc).__name__}: {exc})"


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def result_name(pipeline: Pipeline, base: Pipeline | None = None) -> str:
    """``"gmm"``, ``"gmm (iterations=5)"``, ``"otsu + fill_holes"``: the pipeline and what
    differs from its built-in definition *base* (default: the pipeline of that name)."""
    if base is None:
        try:
            base = get_pipeline(pipeline.name)
        except DelineoError:
            base = Pipeline(pipeline.name, "", ())
    base_names = [s.name for s in base.steps]
    names = [s.name for s in pipeline.steps]
    text = pipeline.name
    added = [n for n in names if n not in base_names]
    removed = [n for n in base_names if n not in names]
    text += "".join(f" + {n}" for n in added) + "".join(f" − {n}" for n in removed)
    # the built-in steps' own settings (the head pipeline's batch size, ...) are no change
    built_in: dict[str, Mapping[str, Any]] = {}
    for step in base.steps:
        built_in.setdefault(step.name, step.params)
    changed = []
    for step in pipeline.steps:
        own = built_in.get(step.name, {})
        params = {k: v for k, v in step.params.items() if k not in own or own[k] != v}
        if any(k not in step.params for k in own):  # set back to the parameter's default
            defaults = step.spec().params_type()
            params.update({k: getattr(defaults, k) for k in own if k not in step.params})
        changed.append((step.name, params))
    counts: dict[str, int] = {}
    for _name, params in changed:
        for key in params:
            counts[key] = counts.get(key, 0) + 1
    args = []
    for name, params in changed:
        for key, value in params.items():
            label = key if counts[key] == 1 else f"{name}.{key}"
            args.append(f"{label}={_format_value(value)}")
    if args:
        text += f" ({', '.join(args)})"
    return text


def _unique(name: str, taken: Sequence[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name} #{n}" in taken:
        n += 1
    return f"{name} #{n}"


class PipelineRunner(QObject):
    """Runs one pipeline at a time on the image of *layers*; results become layers.

    Parameters
    ----------
    layers : LayerStack
    runner : JobRunner
        The window's job runner (its status bar shows the progress too).
    add_layer : callable
        ``add_layer(labelmap, name, **display) -> LabelLayer``: the window's
        :meth:`~viewer.main_window.MainWindow.add_result_layer`.
    edits : callable
        Returns the window's edit session (or None before it exists).
    """

    started = Signal(str)
    progress = Signal(float, str)
    #: The new result layer.
    finished = Signal(object)
    failed = Signal(str)
    #: The image is outside the pipeline's declared use: (title, reasons as one text).
    refused = Signal(str, str)
    cancelled = Signal()

    def __init__(
        self,
        layers: LayerStack,
        runner: JobRunner,
        add_layer: Callable[..., LabelLayer],
        edits: Callable[[], EditsLike | None] = lambda: None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.layers = layers
        self.runner = runner
        self.add_layer = add_layer
        self.edits = edits
        self.job: Job | None = None
        self.last_result: PipelineResult | None = None
        #: The last result became the edited mask when it arrived (the mask was untouched).
        self.adopted: LabelLayer | None = None
        self._regions: dict[int, list[UncertainRegion]] = {}

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done

    def run(self, pipeline: Pipeline | str, *, device: str = "auto", mask: str = "auto",
            overrides: Mapping[int, Mapping[str, Any]] | None = None,
            force: bool = False) -> Job | None:
        """Start *pipeline* on the shown image; None (and :attr:`failed`) if it cannot start.

        An image outside what the pipeline was made for
        (:func:`~engine.methods.applicability.check_applicability`) does not
        start unless *force*; then the reasons are kept in the result's
        ``labelmap.metadata["warnings"]``.
        """
        image = self.layers.image
        if image is None:
            self.failed.emit("open an image first")
            return None
        if self.running:
            self.failed.emit("a pipeline is already running; cancel it first")
            return None
        try:
            pipe = get_pipeline(pipeline)
            if overrides:
                pipe = pipe.with_params(overrides)
            for step in pipe.steps:
                step.resolved_params()  # unknown steps and out-of-range values fail here
            brain = self._mask_source(mask)
        except DelineoError as exc:
            self.failed.emit(str(exc))
            return None
        volume = image.volume
        reasons = check_applicability(volume, pipe)
        if reasons and not force:
            self.failed.emit(f"{pipe.name}: " + str(refusal(
                reasons, 'tick "Run outside the declared use"')))
            self.refused.emit(f"{pipe.name} is not made for this image",
                              "\n".join(reasons))
            return None
        name = _unique(result_name(pipe), [lay.name for lay in self.layers.labels])

        def work(progress: Callable[[float, str], None], cancel: Any) -> _Judged:
            mask_array = None if brain is None else np.asarray(brain) > 0
            start_rss = current_rss_bytes()  # Qt, torch and the image are already resident
            result = run_pipeline(volume, pipe, device=device, mask=mask_array,
                                  progress=progress, cancel=cancel)
            judged = _judge(result, volume)
            judged.start_rss_bytes = start_rss
            return judged

        def done(judged: _Judged) -> None:
            if self.layers.image is not image:
                self.failed.emit(f"{pipe.name}: the image was replaced while it ran; "
                                 "the result was dropped")
                return
            # the result, its brain mask and uncertainty, and the edited mask taking the
            # result in: one announcement of the new layers, not one per step
            with self.layers.layers_changed.held():
                layer = self._take(judged, name, volume, reasons)
                self._adopt(layer)
            self.finished.emit(layer)

        def error(exc: BaseException) -> None:
            log.info("pipeline %s failed: %s", pipe.name, exc)
            self.failed.emit(f"{pipe.name}: {describe_failure(exc)}")

        self.job = self.runner.submit(work, f"Running {pipe.name}", on_result=done,
                                      on_error=error, on_cancelled=self.cancelled.emit,
                                      on_progress=self.progress.emit)
        self.started.emit(name)
        return self.job

    def cancel(self) -> None:
        """Ask the running pipeline to stop (it checks between iterations and slices)."""
        if self.job is not None and not self.job.done:
            self.job.cancel()

    def _mask_source(self, key: str) -> np.ndarray | None:
        if key == "auto":
            return None
        if key not in MASK_SOURCES:
            raise DelineoError(f"unknown brain mask {key!r}")
        layer = self.layers.ground_truth if key == "truth" else self.layers.edited
        if layer is None:
            raise DelineoError("there is no ground truth to take the brain mask from"
                               if key == "truth" else "there is no edited mask")
        # The edited mask may change while the job runs: hand the worker a snapshot.
        return layer.labelmap.array.copy() if key == "edit" else layer.labelmap.array

    def regions_of(self, layer: LabelLayer) -> list[UncertainRegion]:
        """The uncertain regions of a result layer, most uncertain first ([] if none)."""
        return self._regions.get(id(layer.labelmap), [])

    def _show(self, result: PipelineResult, name: str, *,
              warnings: Sequence[str] = (),
              plausibility: PlausibilityReport | None = None,
              start_rss_bytes: int = 0,
              counts: dict[int, tuple[int, float]] | None = None) -> LabelLayer:
        labels = result.labels
        if warnings:
            labels.metadata["warnings"] = list(warnings)
        if plausibility is not None:
            labels.metadata["plausibility"] = plausibility.to_json()
        labels.metadata.update({
            "pipeline": result.pipeline,
            "pipeline_description": result.description,
            "runtime_s": result.seconds,
            # The method's own memory: on a GPU its CUDA allocations; else the peak
            # resident size minus what the process held when it started.
            "peak_memory_bytes": (result.peak_cuda_bytes if result.peak_cuda_bytes
                                  else max(0, result.peak_rss_bytes - start_rss_bytes)),
            "peak_memory_kind": ("gpu" if result.peak_cuda_bytes
                                 else "increase" if start_rss_bytes else "process"),
            "device": result.device,
            "steps": [(s.name, s.seconds) for s in result.steps],
        })
        return self.add_layer(labels, name, counts=counts)

    def _take(self, judged: _Judged, name: str, volume: Any,
              reasons: Sequence[str]) -> LabelLayer:
        """Add a run's result layer with its brain mask and uncertainty layers."""
        self.last_result = judged.result
        layer = self._show(judged.result, name, warnings=reasons,
                           plausibility=judged.report, start_rss_bytes=judged.start_rss_bytes,
                           counts=judged.counts)
        if judged.brain_mask is not None:
            # What brain extraction kept: an outline around the tissue labels.
            mask_map = LabelMap.on_grid_of(volume, judged.brain_mask,
                                           labels=INTRACRANIAL_LABELS)
            mask_map.metadata["description"] = "intracranial mask (brain extraction)"
            self.layers.add_labels(mask_map, name=f"{name} — brain mask", role="result",
                                   outline=True, opacity=0.8,
                                   counts=judged.brain_mask_counts)
            layer.labelmap.metadata["brain_mask_layer"] = f"{name} — brain mask"
        lesion_probability = judged.result.info.get("lesion_probability")
        if isinstance(lesion_probability, np.ndarray):
            # The Findings panel takes each lesion's confidence from this map.
            layer.labelmap.metadata["lesion_probability"] = lesion_probability
        if judged.bands is not None:
            bands = self.layers.add_labels(judged.bands, name=f"{name} — uncertainty",
                                           role="uncertainty", visible=False,
                                           opacity=0.6)
            self._regions[id(layer.labelmap)] = judged.regions
            layer.labelmap.metadata["uncertainty_layer"] = bands.name
        return layer

    def _adopt(self, layer: LabelLayer) -> None:
        """A first result on a mask nobody has touched yet is what the user goes on to
        correct, score and review: it becomes the edited mask (one undoable step)."""
        self.adopted = None
        edits = self.edits()
        if edits is not None and edits.untouched:
            try:
                if self.make_edited(layer):
                    self.adopted = layer
            except ValueError as exc:  # values the mask's type cannot hold: stays a layer
                log.warning("%s was not made the edited mask: %s", layer.name, exc)

    def make_edited(self, layer: LabelLayer) -> bool:
        """Copy *layer*'s labels into the edited mask as one undoable step."""
        edits = self.edits()
        if edits is None or self.layers.edited is None:
            self.failed.emit("there is no edited mask to replace")
            return False
        edits.apply_labels(layer.labelmap.array.copy(), f"Use {layer.name} as the edited mask",
                           names=layer.labelmap.labels)
        self.layers.edited.set_counts(layer.counts())  # a copy of the layer's labels now
        # The lesion network's probabilities travel with its labels (the Findings panel's
        # confidence); a mask from a result without them drops the old map.
        meta = self.layers.edited.labelmap.metadata
        probability = layer.labelmap.metadata.get("lesion_probability")
        if isinstance(probability, np.ndarray):
            meta["lesion_probability"] = probability
        else:
            meta.pop("lesion_probability", None)
        self.layers.layers_changed.emit()
        return True


class _Judged:
    """A pipeline result with its plausibility report and uncertainty (made in the worker)."""

    def __init__(self, result: PipelineResult, report: PlausibilityReport,
                 bands: LabelMap | None, regions: list[UncertainRegion]) -> None:
        self.result = result
        self.report = report
        self.bands = bands
        self.regions = regions
        # Counted here, not in the GUI thread when the new layers are first drawn.
        voxel_ml = result.labels.voxel_volume_ml
        self.counts = label_volumes(result.labels.array, voxel_ml)
        self.brain_mask: np.ndarray | None = None
        self.brain_mask_counts: dict[int, tuple[int, float]] | None = None
        if result.brain_mask is not None:
            self.brain_mask = result.brain_mask.astype(np.uint8)
            self.brain_mask_counts = label_volumes(self.brain_mask, voxel_ml)
        #: Resident size of the process when the run started (0: not measured).
        self.start_rss_bytes = 0


def _judge(result: PipelineResult, volume: Any) -> _Judged:
    """Plausibility, uncertainty bands and uncertain regions of *result* (worker thread)."""
    probs = result.segment_probabilities
    if probs is not None and probs.shape[1:] != result.labels.shape:
        probs = None
    report = assess(result.labels, probs, volume)
    if probs is None:
        return _Judged(result, report, None, [])
    umap = uncertainty_map(probs)
    return _Judged(result, report, uncertainty_bands(umap, volume), uncertain_regions(umap))


class RefineRunner(QObject):
    """Click-to-refine jobs: one at a time, applied to the edited mask as one undo step.

    *params* and *device* are callables so that the methods dock's current
    settings are used at the moment of the click.
    """

    started = Signal(str)
    #: Voxels changed (0 when the contour changed nothing).
    finished = Signal(int)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(
        self,
        layers: LayerStack,
        runner: JobRunner,
        edits: Callable[[], EditsLike | None],
        *,
        params: Callable[[], ClickRefineParams] = ClickRefineParams,
        device: Callable[[], str] = lambda: "auto",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.layers = layers
        self.runner = runner
        self.edits = edits
        self.params = params
        self.device = device
        self.job: Job | None = None

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done

    def request(self, *, seed: Sequence[int] | None = None,
                box: tuple[Sequence[int], Sequence[int]] | None = None) -> Job | None:
        """Grow or refine the selected label from *seed* or *box* (voxel indices)."""
        image, layer, edits = self.layers.image, self.layers.edited, self.edits()
        if image is None or layer is None or edits is None:
            self.failed.emit("open an image (with an edited mask) first")
            return None
        if self.running:
            self.failed.emit("a refinement is still running")
            return None
        label = int(edits.selected_label)
        try:
            params = self.params()
            device = self.device()
        except DelineoError as exc:
            self.failed.emit(str(exc))
            return None
        volume = image.volume
        snapshot = layer.labelmap.array.copy()  # the worker reads this, never the live mask
        started = time.perf_counter()

        def work(progress: Callable[[float, str], None], cancel: Any) -> LocalEdit:
            return refine_at(volume, snapshot, label, seed=seed, box=box, params=params,
                             device=device, progress=progress, cancel=cancel)

        def done(edit: LocalEdit) -> None:
            if self.layers.edited is not layer:
                self.failed.emit("the edited mask was replaced during the refinement")
                return
            diff = edit.apply_to(layer.labelmap.array)
            what = {"grow": "Grow", "refine": "Refine", "box": "Grow (box)"}[edit.mode]
            name = f"{what} label {label}"
            if diff is not None:
                edits.apply_diff(diff, name)
            log.info("%s: %d voxels in %.2f s", name, 0 if diff is None else diff.count,
                     time.perf_counter() - started)
            self.finished.emit(0 if diff is None else diff.count)

        def error(exc: BaseException) -> None:
            self.failed.emit(f"refinement: {describe_failure(exc)}")

        where = "box" if box is not None else "click"
        self.job = self.runner.submit(work, f"Refining label {label}", on_result=done,
                                      on_error=error, on_cancelled=self.cancelled.emit)
        self.started.emit(f"label {label} from the {where}")
        return self.job

    def cancel(self) -> None:
        if self.job is not None and not self.job.done:
            self.job.cancel()
