"""The Methods dock: generated forms, a pipeline run in the worker, cancel, errors,
the new result layer, and making it the edited mask as one undoable step."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QSpinBox

from engine.core.metrics import dice
from engine.core.params import describe
from engine.methods.pipeline import PIPELINES, POST_STEPS, STEPS
from viewer.panels.methods_panel import missing_weights

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture
def dock(phantom_window):
    panel = phantom_window.methods.panel
    panel.force.setChecked(True)  # the small test phantom is no head-sized volume
    return panel


def _run(qtbot, window, dock, pipeline="otsu", timeout=60_000):
    """Run *pipeline* from the dock (brain mask from the ground truth); its result layer."""
    dock.select_pipeline(pipeline)
    dock.set_mask_source("truth")
    with qtbot.waitSignal(window.methods.pipelines.finished, timeout=timeout) as done:
        dock.run()
    return done.args[0]


def test_outside_the_declared_use_asks_for_the_checkbox(qtbot, phantom_window):
    panel = phantom_window.methods.panel
    methods = phantom_window.methods
    assert not panel.force.isChecked()
    panel.select_pipeline("otsu")
    panel.set_mask_source("truth")
    before = list(phantom_window.layers.labels)
    with qtbot.waitSignal(methods.pipelines.failed, timeout=10_000) as blocker:
        assert panel.run() is None
    text = blocker.args[0]
    assert text.startswith("otsu: field of view") and "Run outside the declared use" in text
    assert phantom_window.layers.labels == before
    panel.force.setChecked(True)
    with qtbot.waitSignal(methods.pipelines.finished, timeout=120_000) as done:
        assert panel.run() is not None
    warnings = done.args[0].labelmap.metadata["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("field of view")


def test_the_window_offers_what_the_controller_needs(window):
    from viewer.methods_controller import MethodsHost

    assert isinstance(window, MethodsHost)
    assert not isinstance(object(), MethodsHost)


def test_the_dock_offers_every_pipeline(phantom_window, dock):
    assert "methods" in phantom_window.docks
    names = [dock.chooser.itemData(i) for i in range(dock.chooser.count())]
    assert names == sorted(PIPELINES)
    for name in ("otsu", "gmm", "reaction_diffusion", "cnn", "cnn+rd+ac"):
        assert name in names


def test_forms_come_from_the_parameter_dataclasses(dock):
    dock.select_pipeline("reaction_diffusion")
    form = dock.form("reaction_diffusion")
    infos = describe(STEPS["reaction_diffusion"].params_type)
    assert set(form.editors) == {info.name for info in infos}
    for info in infos:
        editor = form.editors[info.name]
        assert info.doc.split(",")[0][:20] in editor.toolTip()
        if info.choices:
            assert isinstance(editor, QComboBox)
            assert [editor.itemData(i) for i in range(editor.count())] == list(info.choices)
        elif info.type is int:
            assert isinstance(editor, QSpinBox)
            assert editor.value() == info.default
            if info.hi is not None:
                assert editor.maximum() == int(info.hi)
        elif info.type is float:
            assert isinstance(editor, QDoubleSpinBox)
            assert editor.value() == pytest.approx(info.default)
            if info.unit:
                assert editor.suffix().strip() == info.unit
            if info.lo is not None and info.lo_inclusive:
                assert editor.minimum() == pytest.approx(info.lo)
        elif info.type is bool:
            assert isinstance(editor, QCheckBox)
    assert form.changes() == {}
    form.set_value("iterations", 7)
    assert form.changes() == {"iterations": 7}
    assert dock.describe() == "reaction_diffusion (iterations=7)"
    dock.reset()
    assert dock.form("reaction_diffusion").changes() == {}


def test_post_processing_steps_compose(dock):
    dock.select_pipeline("otsu")
    assert [s.name for s in dock.current_pipeline().steps] == ["otsu"]
    dock.post_checks["fill_holes"].setChecked(True)
    dock.post_checks["small_islands"].setChecked(True)
    names = [s.name for s in dock.current_pipeline().steps]
    assert names[0] == "otsu" and set(names[1:]) == {"fill_holes", "small_islands"}
    assert names[1:] == [n for n in POST_STEPS if n in names]
    dock.form("small_islands").set_value("min_size_mm3", 20.0)
    assert dock.describe() == "otsu + small_islands + fill_holes (min_size_mm3=20)"
    dock.select_pipeline("cnn")  # the network pipelines keep the largest component by default
    assert dock.post_checks["largest_component"].isChecked()
    dock.select_pipeline("otsu")  # each pipeline remembers its own choice
    assert dock.post_checks["fill_holes"].isChecked()


def test_a_pipeline_runs_in_the_worker_and_adds_a_named_layer(qtbot, phantom_window, dock):
    methods = phantom_window.methods
    dock.select_pipeline("gmm")
    dock.form("gmm").set_value("iterations", 4)
    dock.set_device("cpu")
    dock.set_mask_source("truth")
    progress = []
    methods.pipelines.progress.connect(lambda f, m: progress.append((f, m)))
    before = list(phantom_window.layers.labels)
    with qtbot.waitSignal(methods.pipelines.finished, timeout=120_000) as blocker:
        job = dock.run()
        assert job is not None
        assert not dock.run_button.isEnabled() and dock.cancel_button.isEnabled()
    layer = blocker.args[0]
    assert layer.role == "result" and layer.name == "gmm (iterations=4)"
    results = [lay for lay in phantom_window.layers.labels if lay.role != "uncertainty"]
    assert results == [*before, layer]
    assert any("gmm" in m for _, m in progress)  # the step shows in the progress text
    meta = layer.labelmap.metadata
    assert meta["runtime_s"] > 0 and meta["peak_memory_bytes"] > 0 and meta["device"] == "cpu"
    truth = phantom_window.layers.ground_truth.labelmap.array
    assert np.mean([dice(layer.labelmap.array, truth, k) for k in (1, 2, 3)]) > 0.85
    assert dock.run_button.isEnabled() and not dock.cancel_button.isEnabled()
    assert dock.progress.value() == 1000
    assert "gmm (iterations=4)" in dock.status.text() and "peak memory" in dock.status.text()
    assert dock.selected_result() is layer
    # the same run again gets its own name
    with qtbot.waitSignal(methods.pipelines.finished, timeout=120_000) as again:
        dock.run()
    assert again.args[0].name == "gmm (iterations=4) #2"


def test_new_layers_come_with_their_label_counts_from_the_worker(qtbot, phantom_window, dock,
                                                                 monkeypatch):
    """The result, its brain-mask outline and the edited mask that takes the result in are
    drawn without counting their labels in the GUI thread, and with the right counts."""
    import dataclasses
    import threading

    import viewer.layers
    import viewer.pipeline_runner as runner_module
    from engine.display import label_volumes

    truth = phantom_window.layers.ground_truth.labelmap.array
    real_run = runner_module.run_pipeline

    def with_brain_mask(*args, **kwargs):  # as a pipeline starting with brain extraction
        return dataclasses.replace(real_run(*args, **kwargs), brain_mask=truth > 0)

    monkeypatch.setattr(runner_module, "run_pipeline", with_brain_mask)
    counted_in_gui = []

    def counting(array, voxel_ml):
        if threading.current_thread() is threading.main_thread():
            counted_in_gui.append(array)
        return label_volumes(array, voxel_ml)

    monkeypatch.setattr(viewer.layers, "label_volumes", counting)
    result = _run(qtbot, phantom_window, dock)
    phantom_window.grid.render_pending()
    mask_layer = next(lay for lay in phantom_window.layers.labels
                      if lay.name == f"{result.name} — brain mask")
    edited = phantom_window.layers.edited
    assert mask_layer.outline and phantom_window.methods.pipelines.adopted is result
    new = [result.labelmap.array, mask_layer.labelmap.array, edited.labelmap.array]
    assert not [a for a in counted_in_gui if any(a is b for b in new)]
    for layer in (result, mask_layer, edited):
        assert layer.counts() == label_volumes(layer.labelmap.array,
                                               layer.labelmap.voxel_volume_ml)
    assert mask_layer.counts()[1][0] == int(np.count_nonzero(truth))


def test_cancel_stops_a_run_without_a_layer(qtbot, phantom_window, dock):
    methods = phantom_window.methods
    dock.select_pipeline("reaction_diffusion")
    dock.form("reaction_diffusion").set_value("iterations", 100_000)  # far too long to finish
    before = list(phantom_window.layers.labels)
    seen = []
    methods.pipelines.progress.connect(lambda f, m: seen.append(m))
    dock.run()
    qtbot.waitUntil(lambda: any("iteration" in m for m in seen), timeout=60_000)
    with qtbot.waitSignal(methods.pipelines.cancelled, timeout=10_000):
        dock.cancel_button.click()
    assert phantom_window.layers.labels == before
    assert dock.status.text() == "Cancelled"
    assert dock.run_button.isEnabled()
    qtbot.waitUntil(lambda: not phantom_window.runner.running, timeout=10_000)


def test_a_failing_run_says_why(qtbot, phantom_window, dock):
    methods = phantom_window.methods
    dock.select_pipeline("active_contour")
    dock.form("active_contour").set_value("dt", 50.0)  # in range, but unstable
    with qtbot.waitSignal(methods.pipelines.failed, timeout=60_000) as blocker:
        dock.run()
    assert "stability" in blocker.args[0]
    assert "stability" in dock.status.text()
    assert all(lay.role != "result" for lay in phantom_window.layers.labels)
    assert dock.run_button.isEnabled()


def test_network_pipelines_without_weights_cannot_run(dock, monkeypatch, tmp_path):
    monkeypatch.setenv("DELINEO_MODELS_DIR", str(tmp_path / "no-models"))
    dock.select_pipeline("cnn+rd")
    assert missing_weights(PIPELINES["cnn+rd"])
    assert not dock.warning.isHidden() and "delineo.safetensors" in dock.warning.text()
    assert not dock.run_button.isEnabled()
    dock.select_pipeline("otsu")
    assert dock.warning.isHidden() and dock.run_button.isEnabled()


def test_a_lesion_pipeline_needs_both_lesion_networks(dock, monkeypatch, tmp_path):
    """The lesions step averages two networks: a folder with the tissue network and the
    first lesion network only still names the second, and the pipeline cannot run."""
    from engine.methods.lesion_step import LESION_MODELS
    from engine.models.weights import models_dir

    shipped = models_dir()
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("delineo", LESION_MODELS[0]):
        for suffix in (".safetensors", ".json"):
            (folder / f"{name}{suffix}").symlink_to(shipped / f"{name}{suffix}")
    monkeypatch.setenv("DELINEO_MODELS_DIR", str(folder))
    assert missing_weights(PIPELINES["cnn"]) == []
    assert missing_weights(PIPELINES["cnn+lesions"]) == [
        str(folder / f"{LESION_MODELS[1]}.safetensors")]
    dock.select_pipeline("cnn+lesions")
    assert f"{LESION_MODELS[1]}.safetensors" in dock.warning.text()
    assert not dock.run_button.isEnabled()


def test_a_first_result_becomes_the_untouched_edited_mask(qtbot, phantom_window, dock):
    methods = phantom_window.methods
    edits = phantom_window.edits
    edited = phantom_window.layers.edited
    assert edited.name == "Edited mask (new)" and edits.untouched
    # the panels hear of the new layers once, with everything in place
    announced = []
    handle = phantom_window.layers.layers_changed.connect(
        lambda: announced.append(phantom_window.layers.edited.name))
    result = _run(qtbot, phantom_window, dock)
    handle.disconnect()
    assert announced == ["Edited mask"]
    assert methods.pipelines.adopted is result
    assert phantom_window.layers.edited is edited and edited.name == "Edited mask"
    assert np.array_equal(edited.labelmap.array, result.labelmap.array)
    assert edited.labelmap.array is not result.labelmap.array
    assert "now the edited mask" in dock.status.text()
    assert edits.history.undo_name == f"Use {result.name} as the edited mask"
    assert edits.undo() and not edited.labelmap.array.any()
    # emptied by the user's own undo: no longer untouched, the next result stays a layer
    assert not edits.untouched
    second = _run(qtbot, phantom_window, dock, "gmm", timeout=120_000)
    assert methods.pipelines.adopted is None and not edited.labelmap.array.any()
    assert "now the edited mask" not in dock.status.text()
    assert second.labelmap.array.any()


def test_a_result_the_mask_cannot_take_stays_a_layer(qtbot, phantom_window, dock,
                                                     monkeypatch):
    def refuse(array, name, **kwargs):
        raise ValueError("label values outside 0..255 of the edited mask")

    monkeypatch.setattr(phantom_window.edits, "apply_labels", refuse)
    result = _run(qtbot, phantom_window, dock)
    assert phantom_window.methods.pipelines.adopted is None
    assert result.labelmap.array.any()
    assert not phantom_window.layers.edited.labelmap.array.any()
    assert dock.run_button.isEnabled()


def test_making_a_result_the_edited_mask_is_one_undo_step(qtbot, phantom_window, dock):
    methods = phantom_window.methods
    edits = phantom_window.edits
    edited = phantom_window.layers.edited
    drawn = np.zeros_like(edited.labelmap.array)
    drawn[10:14, 10:14, 10:14] = 2  # a mask with labels: no result replaces it by itself
    edits.apply_labels(drawn, "a drawing")
    original = edited.labelmap.array.copy()
    result = _run(qtbot, phantom_window, dock)
    assert methods.pipelines.adopted is None
    assert np.array_equal(edited.labelmap.array, original)
    assert dock.use_button.isEnabled()
    assert dock.use_selected_result()
    assert phantom_window.layers.edited is edited  # the same layer, new contents
    assert np.array_equal(edited.labelmap.array, result.labelmap.array)
    assert edited.labelmap.array is not result.labelmap.array
    assert edited.modified
    assert edits.undo()
    assert np.array_equal(edited.labelmap.array, original)
    assert edits.redo()
    assert np.array_equal(edited.labelmap.array, result.labelmap.array)
    assert not edits.redo()
    assert edits.undo() and edits.undo() and not edited.labelmap.array.any()


def test_results_can_be_removed(qtbot, phantom_window, dock):
    methods = phantom_window.methods
    dock.select_pipeline("otsu")
    with qtbot.waitSignal(methods.pipelines.finished, timeout=60_000) as blocker:
        dock.run()
    assert dock.results.currentText() == blocker.args[0].name
    dock.remove_button.click()
    assert blocker.args[0] not in phantom_window.layers.labels
    assert dock.results.count() == 0 and not dock.use_button.isEnabled()


def test_a_result_for_a_replaced_image_is_dropped(qtbot, phantom_window, dock, tissue_phantom):
    methods = phantom_window.methods
    dock.select_pipeline("otsu")
    with qtbot.waitSignal(methods.pipelines.failed, timeout=60_000) as blocker:
        dock.run()
        volume, truth = tissue_phantom(seed=1)
        phantom_window.show_volume(volume, name="another", truth=truth)  # before delivery
    assert "replaced" in blocker.args[0]
    assert all(lay.role != "result" for lay in phantom_window.layers.labels)


def test_a_result_is_named_after_what_differs_from_the_built_in_pipeline():
    """The head pipeline's own step settings (batch size, arithmetic) are no change; a
    changed or reset one is named."""
    from engine.methods.pipeline import get_pipeline
    from viewer.pipeline_runner import result_name

    head = get_pipeline("head")
    assert result_name(head) == "head"
    changed = head.with_params({1: {"batch_size": 4}})
    assert result_name(changed) == "head (batch_size=4)"
    steps = list(head.steps)
    steps[1] = type(steps[1])(steps[1].name, {"precision": "float32"})  # batch size reset
    assert result_name(type(head)(head.name, head.summary, tuple(steps))) == (
        "head (batch_size=16)")


def test_a_network_serving_two_steps_is_named_once_when_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("DELINEO_MODELS_DIR", str(tmp_path / "no-models"))
    missing = missing_weights(PIPELINES["head"])
    assert len(missing) == len(set(missing)) == 2  # delineo_lesion_varied, delineo_lesion
