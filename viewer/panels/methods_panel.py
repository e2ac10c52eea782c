"""The methods dock: pick a pipeline, edit its parameters, run it in the background.

Everything the dock offers comes from the engine's registries: the pipelines
of :data:`engine.methods.pipeline.PIPELINES`, the post-processing steps of
:data:`engine.methods.pipeline.POST_STEPS`, and one :class:`ParamsForm` per step
generated from the step's parameter dataclass (ranges, units and tool tips
from their declarations). *Run* hands the pipeline to a
:class:`~viewer.pipeline_runner.PipelineRunner`; the progress bar shows the
current step; *Cancel* stops it at the next iteration. Results are listed
below, with *Make Edited Mask* (one undoable step; the first result on a new,
empty edited mask becomes it by itself) and *Compare…*. The
click-to-refine settings used by the Refine tool sit at the bottom.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine.core.errors import DelineoError
from engine.editing.refine import ClickRefineParams
from engine.methods.pipeline import DEFAULT_PIPELINE, PIPELINES, POST_STEPS, Pipeline, Step

from ..layers import LabelLayer, LayerStack
from ..pipeline_runner import MASK_SOURCES, PipelineRunner, result_name
from ..plain_names import (
    METHOD_NAMES,
    method_label,
    method_tooltip,
    pipeline_label,
    pipeline_tooltip,
    plain_summary,
)
from .params_form import ParamsForm

__all__ = ["MethodsPanel", "missing_weights"]

log = logging.getLogger(__name__)

DEVICES = {"auto": "Automatic", "cpu": "CPU", "cuda": "CUDA GPU"}
_MUTED = "color: #8a919c;"
_ERROR = "color: #ff8a80;"
_OK = "color: #9ccc65;"
#: What the memory of a finished run means (the status line's tooltip).
MEMORY_TIP = ("Memory of the method itself: the peak resident size during the run minus what "
              "the process (Qt, torch, the image) already held when it started; on a GPU, "
              "the CUDA memory the run allocated.")
_POST_TEXT = {"largest_component": "Keep the largest brain component",
              "small_islands": "Remove small islands", "fill_holes": "Fill holes"}


def missing_weights(pipeline: Pipeline) -> list[str]:
    """Weights files the networks of *pipeline* need and do not find (the tissue
    networks, and the lesion networks of a ``lesions`` step)."""
    from engine.methods.lesion_step import lesion_networks
    from engine.methods.registry import METHODS
    from engine.models.weights import model_path

    out = []
    for step in pipeline.steps:
        spec = METHODS.get(step.name)
        names: tuple[str, ...] = ()
        if spec is not None and spec.kind == "cnn":
            names = (step.name,)
        elif step.name == "lesions":
            names = lesion_networks(step.params.get("ensemble", True))
        for name in names:
            path = model_path(name)
            if not path.exists() and str(path) not in out:  # a network may serve two steps
                out.append(str(path))
    return out


def _compact(combo: QComboBox, length: int = 12) -> QComboBox:
    """A combo box that may be narrower than its longest item (the dock is narrow)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(length)
    return combo


def _heading(text: str, parent: QWidget) -> QLabel:
    label = QLabel(text, parent)
    label.setStyleSheet("color: #c8ccd2; font-weight: 600; padding-top: 4px;")
    return label


class _StepBox(QGroupBox):
    """One step of the pipeline: its title, summary and parameter form."""

    def __init__(self, step: Step, parent: QWidget, *, summary: bool = True) -> None:
        super().__init__(parent)
        spec = step.spec()
        self.step_name = step.name
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(2)
        tip = method_tooltip(step.name, plain_summary(spec.summary))
        self.setToolTip(tip)
        if summary:
            plain = METHOD_NAMES.get(step.name, ("", plain_summary(spec.summary)))[1]
            text = QLabel(plain, self)
            text.setWordWrap(True)
            text.setStyleSheet(_MUTED)
            text.setToolTip(tip)
            layout.addWidget(text)
        self.form = ParamsForm(spec.params_type, self)
        self.form.setObjectName(f"form_{step.name}")
        for name, value in step.params.items():
            self.form.set_value(name, value)
        layout.addWidget(self.form)


class MethodsPanel(QWidget):
    """Dock contents: pipeline choice, parameter forms, device, run / cancel, results."""

    #: The user asked for the comparison window.
    compare_requested = Signal()
    #: The user asked for a tool by name (the Refine tool).
    tool_requested = Signal(str)

    def __init__(self, runner: PipelineRunner, layers: LayerStack,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("methodsPanel")
        self.runner = runner
        self.layers = layers
        self._boxes: dict[tuple[str, int, str], _StepBox] = {}
        self._post_choice: dict[str, set[str]] = {}
        self._shown: list[_StepBox] = []

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer.addWidget(scroll)
        body = QWidget(scroll)
        scroll.setWidget(body)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(6)

        # -- pipeline ---------------------------------------------------------------------
        self.chooser = QComboBox(body)
        self.chooser.setObjectName("pipelineChooser")
        self.chooser.setToolTip("Named pipelines: a method, then refinement and post-processing "
                                "(delineo-engine pipelines lists the same)")
        for name in sorted(PIPELINES):
            self.chooser.addItem(pipeline_label(name), name)
            self.chooser.setItemData(self.chooser.count() - 1,
                                     pipeline_tooltip(name, PIPELINES[name].describe()),
                                     Qt.ItemDataRole.ToolTipRole)
        _compact(self.chooser)
        head = QFormLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addRow("Pipeline", self.chooser)
        layout.addLayout(head)
        self.summary = QLabel("", body)
        self.summary.setObjectName("pipelineSummary")
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet(_MUTED)
        layout.addWidget(self.summary)
        self.warning = QLabel("", body)
        self.warning.setObjectName("pipelineWarning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(_ERROR)
        self.warning.hide()
        layout.addWidget(self.warning)

        self.steps_widget = QWidget(body)
        self.steps_layout = QVBoxLayout(self.steps_widget)
        self.steps_layout.setContentsMargins(0, 0, 0, 0)
        self.steps_layout.setSpacing(4)
        layout.addWidget(self.steps_widget)

        layout.addWidget(_heading("Post-processing", body))
        self.post_checks: dict[str, QCheckBox] = {}
        for name, spec in POST_STEPS.items():
            check = QCheckBox(_POST_TEXT.get(name, method_label(name)), body)
            check.setObjectName(f"post_{name}")
            check.setToolTip(method_tooltip(name, spec.summary))
            check.toggled.connect(lambda _c, n=name: self._post_toggled(n))
            layout.addWidget(check)
            self.post_checks[name] = check

        # -- where and how ----------------------------------------------------------------
        where = QFormLayout()
        where.setContentsMargins(0, 4, 0, 0)
        self.device = QComboBox(body)
        self.device.setObjectName("deviceChooser")
        for key, text in DEVICES.items():
            self.device.addItem(text, key)
        if not torch.cuda.is_available():
            item = self.device.model().item(self.device.findData("cuda"))
            item.setEnabled(False)
            item.setToolTip("No CUDA GPU on this machine")
        self.device.setToolTip("Where the methods run: automatic picks the CUDA GPU if there "
                               "is one, else the CPU")
        where.addRow("Device", _compact(self.device))
        self.mask = QComboBox(body)
        self.mask.setObjectName("maskChooser")
        for key, text in MASK_SOURCES.items():
            self.mask.addItem(text, key)
        self.mask.setToolTip("The brain mask the classical methods work in. Automatic: a "
                             "rough mask from the image (Otsu foreground, largest component)")
        where.addRow("Brain mask", _compact(self.mask))
        layout.addLayout(where)
        self.force = QCheckBox("Run outside the declared use", body)
        self.force.setObjectName("forceOutsideUse")
        self.force.setToolTip("Every method is made for brain MR (0.5-3 mm voxels, a head's "
                              "field of view, a 3-D volume); tick to run it on other images "
                              "anyway -- the result layer keeps the warning")
        layout.addWidget(self.force)

        # Run, progress, the finished-run line and the results stay in view below the
        # scrolled set-up (a footer outside the scroll area), whatever the dock's height.
        footer = QWidget(self)
        footer.setObjectName("methodsFooter")
        foot = QVBoxLayout(footer)
        foot.setContentsMargins(8, 4, 8, 6)
        foot.setSpacing(4)
        outer.addWidget(footer)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run", body)
        self.run_button.setObjectName("runPipeline")
        self.run_button.setDefault(True)
        self.run_button.setToolTip("Run the pipeline on the image in the background (Ctrl+R)")
        self.run_button.setStyleSheet(
            "QPushButton { background: #3d7bd9; color: white; font-weight: 600; padding: 4px 18px;"
            " border-radius: 3px; } QPushButton:disabled { background: #3a3e45; color: #70757d; }")
        self.cancel_button = QPushButton("Cancel", body)
        self.cancel_button.setObjectName("cancelPipeline")
        self.cancel_button.setToolTip("Stop the running pipeline")
        self.reset_button = QPushButton("Defaults", body)
        self.reset_button.setToolTip("Set this pipeline's parameters back to their defaults")
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.reset_button)
        foot.addLayout(buttons)
        self.progress = QProgressBar(body)
        self.progress.setObjectName("pipelineProgress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        foot.addWidget(self.progress)
        self.step_label = QLabel("", body)
        self.step_label.setObjectName("pipelineStep")
        self.step_label.setStyleSheet(_MUTED)
        self.step_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        foot.addWidget(self.step_label)
        self.status = QLabel("", body)
        self.status.setObjectName("pipelineStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        foot.addWidget(self.status)

        # -- results ----------------------------------------------------------------------
        foot.addWidget(_heading("Results", body))
        self.results = QComboBox(body)
        self.results.setObjectName("resultChooser")
        self.results.setToolTip("Result layers of the runs (also in the Label Layers dock)")
        _compact(self.results)
        foot.addWidget(self.results)
        #: Widgets about the selected result (the plausibility box of the controller).
        self.result_extras = QVBoxLayout()
        foot.addLayout(self.result_extras)
        row = QHBoxLayout()
        self.use_button = QPushButton("Make Edited Mask", body)
        self.use_button.setObjectName("useResult")
        self.use_button.setToolTip("Copy this result into the edited mask (one undoable step)")
        self.remove_button = QPushButton("Remove", body)
        self.remove_button.setObjectName("removeResult")
        self.remove_button.setToolTip("Remove this result layer")
        self.compare_button = QPushButton("Compare…", body)
        self.compare_button.setObjectName("compareResults")
        self.compare_button.setToolTip("Side-by-side panes and the metrics table (Ctrl+K)")
        for button in (self.use_button, self.remove_button):
            row.addWidget(button)
        foot.addLayout(row)
        foot.addWidget(self.compare_button)

        # -- click-to-refine --------------------------------------------------------------
        refine = QGroupBox("Click-to-refine", body)
        refine.setObjectName("refineGroup")
        box = QVBoxLayout(refine)
        box.setContentsMargins(6, 4, 6, 4)
        hint = QLabel("With the <b>Refine</b> tool, click a structure to grow the selected "
                      "label from there, or click inside the label to refine its boundary "
                      "nearby; drag a box to start from the box. Each run is one undo step.",
                      refine)
        hint.setWordWrap(True)
        hint.setStyleSheet(_MUTED)
        box.addWidget(hint)
        self.refine_form = ParamsForm(ClickRefineParams, refine)
        self.refine_form.setObjectName("refineForm")
        box.addWidget(self.refine_form)
        self.refine_tool_button = QPushButton("Use the Refine Tool", refine)
        self.refine_tool_button.setObjectName("useRefineTool")
        self.refine_tool_button.clicked.connect(lambda: self.tool_requested.emit("refine"))
        box.addWidget(self.refine_tool_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(refine)
        layout.addStretch(1)

        self.chooser.currentIndexChanged.connect(lambda _i: self._pipeline_changed())
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.reset_button.clicked.connect(self.reset)
        self.use_button.clicked.connect(self.use_selected_result)
        self.remove_button.clicked.connect(self.remove_selected_result)
        self.compare_button.clicked.connect(self.compare_requested)
        runner.started.connect(self._started)
        runner.progress.connect(self._progress)
        runner.finished.connect(self._finished)
        runner.failed.connect(self._failed)
        runner.cancelled.connect(self._cancelled)
        layers.layers_changed.connect(self._layers_changed)
        layers.image_changed.connect(lambda *_: self._update_state())

        start = DEFAULT_PIPELINE
        if missing_weights(PIPELINES[start]):
            start = "gmm" if "gmm" in PIPELINES else sorted(PIPELINES)[0]
        self.select_pipeline(start)
        self._layers_changed()

    # -- pipeline and its forms ---------------------------------------------------------
    def select_pipeline(self, name: str) -> None:
        """Show pipeline *name* (a key of :data:`PIPELINES`)."""
        index = self.chooser.findData(name)
        if index < 0:
            raise KeyError(f"unknown pipeline {name!r}")
        if index == self.chooser.currentIndex():
            self._pipeline_changed()
        else:
            self.chooser.setCurrentIndex(index)

    @property
    def pipeline_name(self) -> str:
        return str(self.chooser.currentData())

    def _base(self) -> Pipeline:
        return PIPELINES[self.pipeline_name]

    def _post_selection(self) -> set[str]:
        name = self.pipeline_name
        if name not in self._post_choice:
            self._post_choice[name] = {s.name for s in self._base().steps if s.name in POST_STEPS}
        return self._post_choice[name]

    def _composed_steps(self) -> list[Step]:
        """The pipeline's own steps without post-processing, then the ticked post steps."""
        base = self._base()
        steps = [s for s in base.steps if s.name not in POST_STEPS]
        chosen = self._post_selection()
        steps += [Step(name) for name in POST_STEPS if name in chosen]
        return steps

    def _box(self, index: int, step: Step) -> _StepBox:
        key = (self.pipeline_name, index if step.name not in POST_STEPS else -1, step.name)
        box = self._boxes.get(key)
        if box is None:
            # a one-method pipeline's summary is the method's: say it once
            repeat = step.spec().summary == self._base().summary
            box = _StepBox(step, self.steps_widget, summary=not repeat)
            self._boxes[key] = box
        return box

    def _pipeline_changed(self) -> None:
        base = self._base()
        self.summary.setText(METHOD_NAMES[base.name][1] if base.name in METHOD_NAMES
                             else plain_summary(base.summary))
        self.summary.setToolTip(pipeline_tooltip(base.name, base.describe()))
        self.chooser.setToolTip(pipeline_tooltip(base.name, base.describe()))
        chosen = self._post_selection()
        for name, check in self.post_checks.items():
            check.blockSignals(True)
            check.setChecked(name in chosen)
            check.blockSignals(False)
        self._rebuild_steps()

    def _post_toggled(self, name: str) -> None:
        chosen = self._post_selection()
        if self.post_checks[name].isChecked():
            chosen.add(name)
        else:
            chosen.discard(name)
        self._rebuild_steps()

    def _rebuild_steps(self) -> None:
        for box in self._shown:
            self.steps_layout.removeWidget(box)
            box.hide()
        self._shown = []
        for index, step in enumerate(self._composed_steps()):
            box = self._box(index, step)
            box.setTitle(f"{index + 1}. {method_label(step.name)}")
            self.steps_layout.addWidget(box)
            box.show()
            self._shown.append(box)
        self._update_state()

    def step_forms(self) -> list[ParamsForm]:
        """The parameter forms of the shown steps, in pipeline order."""
        return [box.form for box in self._shown]

    def form(self, step_name: str) -> ParamsForm:
        """The parameter form of the shown step called *step_name*."""
        for box in self._shown:
            if box.step_name == step_name:
                return box.form
        raise KeyError(f"no step {step_name!r} in {self.pipeline_name}")

    def current_pipeline(self) -> Pipeline:
        """The pipeline as set up in the dock: chosen steps with the edited parameters."""
        base = self._base()
        steps = tuple(Step(box.step_name, box.form.changes()) for box in self._shown)
        return Pipeline(base.name, base.summary, steps)

    def reset(self) -> None:
        """The chosen pipeline with its built-in steps and default parameters."""
        self._post_choice.pop(self.pipeline_name, None)
        for box in self._shown:
            box.form.reset()
        self._pipeline_changed()

    # -- running --------------------------------------------------------------------------
    @property
    def device_name(self) -> str:
        return str(self.device.currentData())

    def set_device(self, key: str) -> None:
        self.device.setCurrentIndex(self.device.findData(key))

    def set_mask_source(self, key: str) -> None:
        self.mask.setCurrentIndex(self.mask.findData(key))

    def run(self) -> Any:
        """Run the pipeline as set up; returns the job (None if it could not start)."""
        try:
            pipe = self.current_pipeline()
        except DelineoError as exc:
            self._failed(str(exc))
            return None
        return self.runner.run(pipe, device=self.device_name, mask=str(self.mask.currentData()),
                               force=self.force.isChecked())

    def cancel(self) -> None:
        self.runner.cancel()
        if self.runner.running:
            self.step_label.setText("Cancelling…")

    def refine_params(self) -> ClickRefineParams:
        """The click-to-refine settings (validated)."""
        from engine.core.params import validate

        return validate(self.refine_form.params())

    def _update_state(self) -> None:
        running = self.runner.running
        has_image = self.layers.image is not None
        missing = missing_weights(self._base())
        if missing:
            self.warning.setText("No weights for this network yet: " + ", ".join(missing)
                                 + " is missing. Train it (delineo-engine train, or "
                                 "train-lesions for a lesion network) or pick a classical "
                                 "pipeline.")
        self.warning.setVisible(bool(missing))
        self.run_button.setEnabled(has_image and not running and not missing)
        self.run_button.setToolTip(
            "Run the pipeline on the image in the background (Ctrl+R)" if not missing else
            "The network's weights are missing")
        self.cancel_button.setEnabled(running)
        self.chooser.setEnabled(not running)
        self.steps_widget.setEnabled(not running)
        for check in self.post_checks.values():
            check.setEnabled(not running)
        has_result = self.selected_result() is not None
        self.use_button.setEnabled(has_result and self.layers.edited is not None)
        self.remove_button.setEnabled(has_result)
        self.compare_button.setEnabled(has_image)

    def _started(self, name: str) -> None:
        self.progress.setValue(0)
        self.step_label.setText(f"Starting {name}…")
        self.status.setText("")
        self._update_state()

    def _progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(round(fraction * 1000))
        if message:
            self.step_label.setText(message)

    def _finished(self, layer: LabelLayer) -> None:
        meta = layer.labelmap.metadata
        self.progress.setValue(1000)
        self.step_label.setText("")
        seconds = meta.get("runtime_s", float("nan"))
        peak = meta.get("peak_memory_bytes", 0) / 1024**2
        kind = meta.get("peak_memory_kind", "process")
        memory = {"gpu": f"peak GPU memory {peak:.0f} MB",
                  "increase": f"peak memory {peak:.0f} MB (its own)"}.get(
                      kind, f"peak memory {peak:.0f} MB (whole process)")
        self.status.setStyleSheet(_OK)
        adopted = (" — now the edited mask (Undo empties it)"
                   if self.runner.adopted is layer else "")
        self.status.setText(f"{layer.name}: {seconds:.1f} s on {meta.get('device', '?')}, "
                            f"{memory}{adopted}")
        self.status.setToolTip(MEMORY_TIP)
        index = self.results.findText(layer.name)
        if index >= 0:
            self.results.setCurrentIndex(index)
        self._update_state()

    def _failed(self, message: str) -> None:
        self.progress.setValue(0)
        self.step_label.setText("")
        self.status.setStyleSheet(_ERROR)
        self.status.setText(message)
        self._update_state()

    def _cancelled(self) -> None:
        self.progress.setValue(0)
        self.step_label.setText("")
        self.status.setStyleSheet(_MUTED)
        self.status.setText("Cancelled")
        self._update_state()

    # -- results ----------------------------------------------------------------------------
    def _result_layers(self) -> list[LabelLayer]:
        return [lay for lay in self.layers.labels if lay.role == "result"]

    def selected_result(self) -> LabelLayer | None:
        name = self.results.currentText()
        return next((lay for lay in self._result_layers() if lay.name == name), None)

    def _layers_changed(self) -> None:
        current = self.results.currentText()
        names = [lay.name for lay in self._result_layers()]
        self.results.blockSignals(True)
        self.results.clear()
        self.results.addItems(names)
        if current in names:
            self.results.setCurrentIndex(names.index(current))
        elif names:
            self.results.setCurrentIndex(len(names) - 1)
        self.results.blockSignals(False)
        if not names:
            self.results.setPlaceholderText("No results yet")
        self._update_state()

    def use_selected_result(self) -> bool:
        layer = self.selected_result()
        if layer is None:
            return False
        if self.runner.make_edited(layer):
            self.status.setStyleSheet(_MUTED)
            self.status.setText(f"The edited mask now holds {layer.name} (Undo restores it)")
            return True
        return False

    def remove_selected_result(self) -> None:
        layer = self.selected_result()
        if layer is not None:
            self.layers.remove(layer)

    def describe(self) -> str:
        """The name the next result will get (for tool tips and tests)."""
        return result_name(self.current_pipeline())
