"""Widgets listen to the plain events of the models only while they exist, and a
failing listener never stops the others."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtWidgets import QLabel

from viewer.edit_session import EditSession
from viewer.layers import LayerStack
from viewer.panels.edit_panel import EditPanel
from viewer.panels.labels_panel import LabelsPanel
from viewer.panels.layers_panel import LayersPanel
from viewer.panels.metrics_panel import MetricsPanel
from viewer.subscriptions import subscribe

pytestmark = pytest.mark.gui


@pytest.fixture
def model(tmp_path, synthetic_volume, synthetic_labels):
    layers = LayerStack()
    vol = synthetic_volume()
    layers.set_image(vol)
    truth = synthetic_labels(vol)
    layers.add_labels(truth.with_array(np.zeros_like(truth.array)), name="edit", role="edit")
    layers.add_labels(truth, name="truth", role="truth")
    session = EditSession(layers, journal_dir=str(tmp_path / "journal"))
    yield layers, session
    session.close()


def _listener_counts(layers, session):
    events = [layers.layers_changed, layers.overlay_changed, layers.image_changed,
              session.changed, session.metrics_changed, session.surface_changed,
              session.selected_label_changed, session.options_changed,
              session.label_table_changed, session.overlay_changed]
    for layer in layers.labels:
        events += [layer.data_changed, layer.display_changed]
    return [len(event) for event in events]


def _delete_later(widget):
    widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def test_deleted_panels_stop_listening_and_nothing_fails(qtbot, model, caplog):
    layers, session = model
    before = _listener_counts(layers, session)
    panels = [LayersPanel(layers), LabelsPanel(layers), EditPanel(session),
              MetricsPanel(session)]
    assert _listener_counts(layers, session) != before
    for panel in panels:
        _delete_later(panel)
    for panel in panels:
        assert not shiboken6.isValid(panel)
    assert _listener_counts(layers, session) == before
    with caplog.at_level(logging.ERROR):
        layers.add_labels(layers.edited.labelmap.with_array(layers.edited.labelmap.array.copy()),
                          name="result", role="result")
        layers.set_global_opacity(0.4)
        layers.edited.set_opacity(0.2)
        session.selected_label = 3
        session.set_options(brush_size_mm=9.0)
        session.show_differences(True)
        session.apply_labels(layers.ground_truth.labelmap.array.copy(), "Use the truth")
        session.add_label("Lesion", (200, 0, 0))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_lambda_subscription_goes_with_its_widget(qtbot, model):
    _layers, session = model
    label = QLabel()
    subscribe(label, session.message, lambda text: label.setText(text))  # holds the label
    session.message.emit("first")
    assert label.text() == "first" and len(session.message) == 1
    _delete_later(label)
    assert len(session.message) == 0
    session.message.emit("second")  # would call into a deleted widget


@pytest.mark.listener_errors
def test_a_failing_listener_does_not_stop_the_panels(qtbot, model, caplog):
    layers, session = model
    panel = LayersPanel(layers)
    metrics = MetricsPanel(session)
    qtbot.addWidget(panel)
    qtbot.addWidget(metrics)

    def broken(*_args):
        raise RuntimeError("a broken listener")

    layers.layers_changed.connect(broken)
    session.metrics_changed.connect(broken)
    with caplog.at_level(logging.ERROR):
        layers.add_labels(layers.edited.labelmap.with_array(layers.edited.labelmap.array.copy()),
                          name="result", role="result")
        session.apply_labels(layers.ground_truth.labelmap.array.copy(), "Use the truth")
    assert len(panel.rows) == 3  # the panel heard of the new layer all the same
    assert metrics.text(2, "dice") == "1.000"
    assert sum("a broken listener" in str(r.exc_info[1]) for r in caplog.records) == 2
