"""The main window: three linked slice views, docks, menus and the status bar.

Hooks for the tools and panels that come next (editing, live metrics):

* :attr:`MainWindow.layers` -- the :class:`~viewer.layers.LayerStack`;
  ``layers.edited`` is the mask being edited (created empty when an image is
  opened without labels), ``layers.ground_truth`` the reference.
* :meth:`MainWindow.refresh_labels` -- say that a box of voxels of a layer
  changed; only the views whose slice crosses the box redraw, and the label
  table recounts once the edits pause.
* :meth:`MainWindow.set_tool` / :data:`viewer.tools.TOOLS` -- interaction modes.
* :meth:`MainWindow.add_result_layer` -- show a method's output as a layer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QMainWindow,
    QMenu,
    QMessageBox,
    QTextBrowser,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from engine import __version__
from engine.core.volume import LabelMap, Volume
from engine.display import drag_window

from .cursor import Cursor
from .dialogs import IMAGE_FILTER, LABEL_FILTER, Dialogs
from .edit_session import EditSession
from .io_controller import EDIT_OPACITY, TRUTH_OPACITY, IOController
from .layers import BBox, LabelLayer, LayerStack
from .panels import LabelsPanel, LayersPanel, WindowLevelPanel
from .panels.edit_panel import EditPanel
from .panels.metrics_panel import MetricsPanel
from .recovery import RecoveryController
from .settings import Settings
from .shortcuts import bind_actions, reference_html
from .status_bar import StatusBar, format_readout
from .tools import TOOLS, Tool, ToolContext
from .view_grid import ViewGrid
from .workers import JobRunner

if TYPE_CHECKING:
    from .methods_controller import MethodsController

__all__ = ["MainWindow"]

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """Delineo's main window.

    Parameters
    ----------
    settings : Settings, optional
        Where preferences and recent files live (tests pass a temporary one).
    dialogs : Dialogs, optional
        The modal questions (tests pass scripted answers).
    """

    #: An image was loaded and its first slices are on screen.
    image_shown = Signal()

    def __init__(self, settings: Settings | None = None, dialogs: Dialogs | None = None) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.settings = settings or Settings()
        self.dialogs = dialogs or Dialogs(self)
        self.layers = LayerStack()
        self.cursor = Cursor()
        self.runner = JobRunner(self)
        self.io = IOController(self.layers, self.runner, self.dialogs, self.settings, self)
        # Editing: every change of the edited mask goes through self.edits (edit_session.py).
        self.edits = EditSession(self.layers, refresh=self.refresh_labels, runner=self.runner,
                                 history_bytes=self.settings.history_mb * 2**20, parent=self)
        self.recovery = RecoveryController(self.edits, self.io, self.runner, self.dialogs, self)
        self.tool_context = ToolContext(self.cursor, self.layers, refresh=self.refresh_labels)
        self.tools: dict[str, Tool] = {name: cls(self.tool_context) for name, cls in TOOLS.items()}
        self.tool_context.edits = self.edits
        self.tool: Tool = self.tools["navigate"]
        self._hover: tuple[int, int, int] | None = None

        self.grid = ViewGrid(self.cursor, self.layers, tool=lambda: self.tool,
                             convention=self.settings.convention, layout=self.settings.layout,
                             parent=self)
        self.views = self.grid.views
        self.setCentralWidget(self.grid)
        for view in self.views.values():
            view.hovered.connect(self._hovered)
            view.window_level_dragged.connect(self._window_level_drag)

        self._build_docks()
        self._build_edit_docks()
        self._methods: MethodsController | None = None  # see the ``methods`` property
        self._build_status_bar()
        self.actions_ = bind_actions(self, self._handlers(), views=self.grid)
        self._build_menus()
        self._build_toolbar()
        self._build_editing()

        # The Methods dock imports torch (~1 s): build it once the first image is on screen.
        self.image_shown.connect(lambda: QTimer.singleShot(0, lambda: self.methods))
        self.layers.image_changed.connect(lambda *_: self._image_changed())
        self.layers.layers_changed.connect(self._update_title)
        self.cursor.changed.connect(lambda *_: self._update_readout())
        self.io.image_loaded.connect(self._image_loaded)
        self.io.message.connect(self.show_message)
        self.runner.busy.connect(self._busy)
        self.runner.progress.connect(self.status.set_progress)

        self.setAcceptDrops(True)
        self.setWindowTitle("Delineo")
        self.resize(1500, 940)
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        self._update_actions()

    # -- construction ----------------------------------------------------------------
    def _build_docks(self) -> None:
        self.window_panel = WindowLevelPanel(self.layers, self)
        self.layers_panel = LayersPanel(self.layers, self)
        self.labels_panel = LabelsPanel(self.layers, self)
        self.docks: dict[str, QDockWidget] = {}
        right = Qt.DockWidgetArea.RightDockWidgetArea
        docks = [self.add_dock("window", "Window / Level", self.window_panel, right),
                 self.add_dock("layers", "Label Layers", self.layers_panel, right),
                 self.add_dock("labels", "Labels", self.labels_panel, right)]
        self.resizeDocks(docks, [360] * 3, Qt.Orientation.Horizontal)
        self.resizeDocks(docks, [215, 170, 420], Qt.Orientation.Vertical)

    def add_dock(self, key: str, title: str, panel: QWidget,
                 area: Qt.DockWidgetArea) -> QDockWidget:
        """A movable, closable, floatable dock around *panel*, kept in ``docks[key]``."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{key}")
        dock.setWidget(panel)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        self.docks[key] = dock
        return dock

    def _build_status_bar(self) -> None:
        self.status = StatusBar(self)
        self.setStatusBar(self.status)
        self.readout = self.status.readout
        self.progress = self.status.progress
        self.status.cancel_requested.connect(self.runner.cancel_all)

    def _handlers(self) -> dict[str, Callable[[], object]]:
        grid = self.grid

        def step(delta: int) -> Callable[[], None]:
            return lambda: grid.active_view().step(delta)

        def to_end(last: bool) -> Callable[[], None]:
            def go() -> None:
                view = grid.active_view()
                view.set_slice(view.slider.maximum() if last else 0)
            return go

        return {
            "open_image": self.choose_image,
            "open_dicom_folder": self.choose_dicom_folder,
            "open_labels": lambda: self.choose_labels("edit"),
            "open_ground_truth": lambda: self.choose_labels("truth"),
            "save_labels": self.save_labels,
            "save_labels_as": self.save_labels_as,
            "quit": self.close,
            "layout_1x3": lambda: self.set_layout("1x3"),
            "layout_2x2": lambda: self.set_layout("2x2"),
            "maximise": lambda: grid.toggle_maximise(),
            "reset_views": grid.reset_views,
            "toggle_labels": lambda: self.layers.set_labels_shown(not self.layers.labels_shown),
            "toggle_outline": self.toggle_outline,
            "toggle_crosshair": self.toggle_crosshair,
            "auto_window": self.window_panel.apply_automatic,
            "next_slice": step(1),
            "previous_slice": step(-1),
            "next_slice_fast": step(5),
            "previous_slice_fast": step(-5),
            "first_slice": to_end(False),
            "last_slice": to_end(True),
            "centre_cursor": lambda: self.cursor.set([n // 2 for n in self.cursor.shape]),
            "help_reference": self.show_reference,
            **self._edit_handlers(),
            "run_pipeline": lambda: self.methods.run(),
            "compare_results": lambda: self.methods.open_comparison(),
            "tool_refine": lambda: self.set_tool("refine"),
        }

    def _build_menus(self) -> None:
        a = self.actions_
        menu = self.menuBar().addMenu("&File")
        menu.addActions([a["open_image"], a["open_dicom_folder"]])
        self.recent_menu = menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        demo = menu.addAction("Open the &Demo Brain")
        demo.triggered.connect(lambda: self.open_demo())
        menu.addSeparator()
        menu.addActions([a["open_labels"], a["open_ground_truth"]])
        menu.addSeparator()
        menu.addActions([a["save_labels"], a["save_labels_as"]])
        menu.addSeparator()
        menu.addAction(a["quit"])

        menu = self.menuBar().addMenu("&View")
        layouts = QActionGroup(self)
        for key in ("layout_1x3", "layout_2x2"):
            a[key].setCheckable(True)
            layouts.addAction(a[key])
            menu.addAction(a[key])
        a[f"layout_{self.grid.layout_name}"].setChecked(True)
        menu.addActions([a["maximise"], a["reset_views"]])
        menu.addSeparator()
        conv_menu = menu.addMenu("Left–Right &Convention")
        conventions = QActionGroup(self)
        self.convention_actions: dict[str, QAction] = {}
        for name, text in (("radiological", "&Radiological (patient right on screen left)"),
                           ("neurological", "&Neurological (patient right on screen right)")):
            act = conv_menu.addAction(text)
            act.setCheckable(True)
            act.setChecked(name == self.settings.convention)
            act.triggered.connect(lambda _c=False, n=name: self.set_convention(n))
            conventions.addAction(act)
            self.convention_actions[name] = act
        a["toggle_crosshair"].setCheckable(True)
        a["toggle_crosshair"].setChecked(True)
        menu.addActions([a["toggle_crosshair"], a["toggle_labels"], a["toggle_outline"],
                         a["auto_window"]])
        menu.addSeparator()
        panels = menu.addMenu("&Panels")
        for dock in self.docks.values():
            panels.addAction(dock.toggleViewAction())

        menu = self.menuBar().addMenu("&Tools")
        group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for name, tool in self.tools.items():
            act = menu.addAction(tool.label)
            act.setObjectName(f"tool_{name}")
            act.setCheckable(True)
            act.setChecked(tool is self.tool)
            act.setStatusTip(tool.tip)
            act.setToolTip(tool.tip)
            act.triggered.connect(lambda _c=False, n=name: self.set_tool(n))
            group.addAction(act)
            self.tool_actions[name] = act

        menu = self.menuBar().addMenu("&Help")
        menu.addAction(a["help_reference"])
        about = menu.addAction("&About Delineo")
        about.triggered.connect(self._about)
        # Navigation actions live on the view grid only (no menu entries).

    def _build_toolbar(self) -> None:
        a = self.actions_
        bar = QToolBar("Main", self)
        bar.setObjectName("mainToolBar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        bar.addActions([a["open_image"], a["open_labels"], a["save_labels"]])
        bar.addSeparator()
        bar.addActions(list(self.tool_actions.values()))
        bar.addSeparator()
        bar.addActions([a["layout_1x3"], a["layout_2x2"], a["reset_views"]])
        a["layout_1x3"].setIconText("1 × 3")
        a["layout_2x2"].setIconText("2 × 2")
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.toolbar = bar

    # -- public API: files ---------------------------------------------------------------
    def open_image(self, path: str | Path) -> None:
        """Open an image (replaces the current one, after asking about unsaved edits)."""
        if self._confirm_discard(then=lambda: self.io.open_image(path)):
            self.io.open_image(path)

    def open_demo(self) -> None:
        if self._confirm_discard(then=self.io.open_demo):
            self.io.open_demo()

    def open_labels(self, path: str | Path) -> None:
        """Open a label map as the edited mask (after asking about unsaved edits)."""
        if self._confirm_discard(then=lambda: self.io.open_labels(path, "edit")):
            self.io.open_labels(path, "edit")

    def open_ground_truth(self, path: str | Path) -> None:
        self.io.open_labels(path, "truth")

    def open_paths(self, image: str | None = None, labels: str | None = None,
                   truth: str | None = None, demo: bool = False) -> None:
        """What the command line asks for: an image (or the demo), then label maps."""

        def after_image() -> None:
            if labels:
                self.io.open_labels(labels, "edit", then=after_labels)
            else:
                after_labels()

        def after_labels() -> None:
            if truth:
                self.io.open_labels(truth, "truth")

        if image:
            self.io.open_image(image, then=after_image)
        elif demo or not (labels or truth):
            self.io.open_demo(then=after_image)

    def show_volume(self, volume: Volume, *, name: str = "image", labels: LabelMap | None = None,
                    truth: LabelMap | None = None) -> None:
        """Show volumes already in memory (scripts, tests, benchmarks); no file is read."""
        self.io.show_image(volume, name=name)
        if labels is not None:
            self.layers.add_labels(labels, name="Edited mask", role="edit", opacity=EDIT_OPACITY)
        if truth is not None:
            self.layers.add_labels(truth, name="Ground truth", role="truth", opacity=TRUTH_OPACITY)

    def choose_image(self) -> None:
        path = self.dialogs.open_file("Open image", IMAGE_FILTER, self.settings.last_dir)
        if path:
            self.open_image(path)

    def choose_dicom_folder(self) -> None:
        path = self.dialogs.open_folder("Open DICOM folder", self.settings.last_dir)
        if path:
            self.open_image(path)

    def choose_labels(self, role: str) -> None:
        title = "Open labels to edit" if role == "edit" else "Open ground truth"
        if role == "edit" and not self._confirm_discard():
            return  # opening labels to edit replaces the edited mask
        path = self.dialogs.open_file(title, LABEL_FILTER, self.settings.last_dir)
        if path:
            self.io.open_labels(path, role)

    def save_labels(self) -> None:
        layer = self.layers.edited
        if layer is None:
            return
        if layer.path is None:
            self.save_labels_as()
        else:
            self.io.save_labels(layer.path, layer)

    def save_labels_as(self) -> None:
        layer = self.layers.edited
        if layer is None:
            return
        image = self.layers.image
        stem = Path(image.name).name.split(".")[0] if image else "labels"
        start = str(Path(self.settings.last_dir) / f"{stem}_labels.nii.gz")
        path = self.dialogs.save_file("Save labels as", start)
        if path:
            self.io.save_labels(path, layer)

    # -- public API: display ---------------------------------------------------------------
    def refresh_labels(self, layer: LabelLayer, bbox: BBox | None = None) -> None:
        """Voxels of *layer* inside *bbox* changed: redraw what shows them, recount later."""
        if layer.role == "edit":
            layer.modified = True
        layer.notify_changed(bbox)
        self._update_title()

    def add_result_layer(self, labelmap: LabelMap, name: str, **display: object) -> LabelLayer:
        """Show a method's output as a new label layer on top."""
        return self.layers.add_labels(labelmap, name=name, role="result", **display)

    @property
    def methods(self) -> MethodsController:
        """The Methods dock, comparison mode and click-to-refine (built on first use)."""
        if self._methods is None:
            from .methods_controller import MethodsController

            self._methods = MethodsController(self)
            self._methods.build_menu(self.menuBar(), self.actions_)
        return self._methods

    def set_tool(self, name: str) -> None:
        if name == "refine":
            self.methods  # noqa: B018 - the Refine tool sends its requests to the controller
        if self.tool is not self.tools[name]:
            self.tool.deactivate()
            self.tool = self.tools[name]
            self.tool.activate()
            self.grid.update_tool_cursor()
        action = getattr(self, "tool_actions", {}).get(name)
        if action is not None:
            action.setChecked(True)

    def set_layout(self, name: str) -> None:
        self.grid.set_layout(name)
        self.settings.layout = name
        self.actions_[f"layout_{name}"].setChecked(True)

    def set_convention(self, convention: str) -> None:
        self.settings.convention = convention
        self.grid.set_convention(convention)
        self.convention_actions[convention].setChecked(True)

    def toggle_outline(self) -> None:
        outline = not all(layer.outline for layer in self.layers.labels)
        for layer in self.layers.labels:
            layer.set_outline(outline)

    def toggle_crosshair(self) -> None:
        """Handler of the checkable action (its check state has already flipped)."""
        self.grid.set_crosshair_visible(self.actions_["toggle_crosshair"].isChecked())

    def set_crosshair_visible(self, visible: bool) -> None:
        self.actions_["toggle_crosshair"].setChecked(visible)
        self.grid.set_crosshair_visible(visible)

    def show_reference(self) -> QDialog:
        """Help → Keyboard and mouse reference (generated from viewer.shortcuts)."""
        dialog = getattr(self, "_reference", None)
        if dialog is None:
            dialog = QDialog(self)
            dialog.setObjectName("referenceDialog")
            dialog.setWindowTitle("Keyboard and mouse reference")
            browser = QTextBrowser(dialog)
            browser.setHtml(reference_html())
            box = QVBoxLayout(dialog)
            box.addWidget(browser)
            dialog.resize(720, 640)
            self._reference = dialog
        dialog.show()
        dialog.raise_()
        return dialog

    # -- editing: docks, Edit menu, keys (the logic is in viewer/edit_session.py) ----------
    def _build_edit_docks(self) -> None:
        self.edit_panel = EditPanel(self.edits, self)
        self.metrics_panel = MetricsPanel(self.edits, self)
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        docks = [self.add_dock("edit", "Editing", self.edit_panel, left),
                 self.add_dock("metrics", "Live Metrics", self.metrics_panel, left)]
        self.resizeDocks(docks, [340, 340], Qt.Orientation.Horizontal)
        self.resizeDocks(docks, [560, 360], Qt.Orientation.Vertical)

    def _build_editing(self) -> None:
        a = self.actions_
        edits = self.edits
        menu = QMenu("&Edit", self)
        view = next((act for act in self.menuBar().actions() if act.text() == "&View"), None)
        if view is not None:
            self.menuBar().insertMenu(view, menu)
        else:
            self.menuBar().addMenu(menu)
        menu.addActions([a["undo"], a["redo"]])
        menu.addSeparator()
        new_label = menu.addAction("&New Label…")
        new_label.triggered.connect(self.new_label)
        islands = menu.addAction("Remove Small &Islands of the Selected Label")
        islands.triggered.connect(lambda: edits.remove_small_islands())
        largest = menu.addAction("&Keep the Largest Component of the Selected Label")
        largest.triggered.connect(lambda: edits.keep_largest_component())
        menu.addSeparator()
        surface = menu.addAction("Compute &HD95 / ASSD")
        surface.triggered.connect(lambda: edits.compute_surface_metrics())
        for key in ("toggle_differences", "toggle_truth_outline"):
            a[key].setCheckable(True)
        menu.addActions([a["toggle_differences"], a["toggle_truth_outline"]])
        self.edit_menu = menu
        keys = {"navigate": "N", "brush": "B", "eraser": "E", "fill": "F"}
        for name, act in self.tool_actions.items():
            if name in keys:  # show the key; the binding itself is in viewer.shortcuts
                act.setText(f"{self.tools[name].label}\t{keys[name]}")
                act.setIconText(self.tools[name].label)
        first_tool = next(iter(self.tool_actions.values()), None)
        a["undo"].setIconText("Undo")
        a["redo"].setIconText("Redo")
        self.toolbar.insertActions(first_tool, [a["undo"], a["redo"]])
        self.toolbar.insertSeparator(first_tool)

        edits.changed.connect(self._edits_changed)
        edits.message.connect(self.show_message)
        edits.overlay_changed.connect(self._sync_edit_toggles)
        edits.options_changed.connect(self.grid.update_tool_cursor)
        edits.selected_label_changed.connect(self._label_selected)
        self.edit_panel.new_label_requested.connect(self.new_label)
        self.labels_panel.label_clicked.connect(self.select_label)
        self.edit_panel.budget.valueChanged.connect(
            lambda mb: setattr(self.settings, "history_mb", int(mb)))
        self.io.save_started.connect(edits.save_started)
        self.io.saved.connect(edits.saved)
        self.io.failed.connect(lambda _m: edits.save_failed())
        self._edits_changed()

    def _edit_handlers(self) -> dict[str, Callable[[], object]]:
        edits = self.edits

        def select(n: int) -> Callable[[], None]:
            return lambda: self.select_label(n)

        def tool(name: str) -> Callable[[], None]:
            return lambda: self.set_tool(name)

        return {
            "undo": edits.undo,
            "redo": edits.redo,
            **{f"tool_{name}": tool(name) for name in ("navigate", "brush", "eraser", "fill")},
            "brush_smaller": lambda: edits.grow_brush(-1),
            "brush_larger": lambda: edits.grow_brush(1),
            **{f"select_label_{n}": select(n) for n in range(1, 10)},
            "toggle_differences": lambda: edits.show_differences(not edits.differences_shown),
            "toggle_truth_outline": lambda: edits.show_truth_outline(not edits.truth_outline),
        }

    def select_label(self, value: int) -> None:
        """Make *value* the label the brush and the fill paint."""
        if 1 <= value <= self.edits.max_label:
            self.edits.selected_label = value

    def new_label(self) -> int | None:
        """Ask for a name and a colour, add the label to the edited mask's table, select it."""
        if self.edits.layer is None:
            return None
        value = self.edits.next_label_value()
        answer = self.dialogs.ask_new_label(value)
        if answer is None:
            return None
        name, colour = answer
        return self.edits.add_label(name, colour, value)

    def _label_selected(self, value: int) -> None:
        self.labels_panel.select_value(value)
        self.grid.update_tool_cursor()  # the brush outline takes the label's colour
        self.show_message(f"Painting label {value}: {self.edits.label_name(value)}", 3000)

    def _edits_changed(self) -> None:
        history = self.edits.history
        undo, redo = self.actions_["undo"], self.actions_["redo"]
        undo.setEnabled(history.can_undo)
        redo.setEnabled(history.can_redo)
        undo.setText(f"&Undo {history.undo_name}" if history.undo_name else "&Undo")
        redo.setText(f"&Redo {history.redo_name}" if history.redo_name else "&Redo")
        undo.setToolTip(f"Undo {history.undo_name} (Ctrl+Z)" if history.undo_name else "Undo")
        redo.setToolTip(f"Redo {history.redo_name} (Ctrl+Shift+Z)" if history.redo_name
                        else "Redo")
        self._update_title()

    def _sync_edit_toggles(self) -> None:
        for key, value in (("toggle_differences", self.edits.differences_shown),
                           ("toggle_truth_outline", self.edits.truth_outline)):
            self.actions_[key].blockSignals(True)
            self.actions_[key].setChecked(value)
            self.actions_[key].blockSignals(False)

    # -- reactions ---------------------------------------------------------------------
    def _image_changed(self) -> None:
        image = self.layers.image
        self.cursor.reset(image.volume.shape if image else (1, 1, 1))
        self._hover = None
        self._update_actions()
        self._update_title()

    def _image_loaded(self) -> None:
        self.grid.active_view().canvas.setFocus()
        QTimer.singleShot(0, self._announce_shown)

    def _announce_shown(self) -> None:
        self.grid.render_pending()
        self.image_shown.emit()

    def _update_actions(self) -> None:
        has_image = self.layers.image is not None
        for key in ("open_labels", "open_ground_truth", "save_labels", "save_labels_as"):
            self.actions_[key].setEnabled(has_image)

    def _update_title(self) -> None:
        image = self.layers.image
        edited = self.layers.edited
        star = "*" if edited is not None and edited.modified else ""
        self.setWindowTitle(f"{image.name}{star} — Delineo" if image else "Delineo")

    def _hovered(self, index: tuple[int, int, int] | None) -> None:
        self._hover = index
        self._update_readout()

    def _update_readout(self) -> None:
        self.status.set_readout(format_readout(self.layers, self._hover or self.cursor.position))

    def _window_level_drag(self, dx: float, dy: float) -> None:
        image = self.layers.image
        if image is not None:
            image.set_levels(*drag_window(image.levels, dx, dy, data_range=image.data_range))

    def show_message(self, text: str, timeout_ms: int = 8000) -> None:
        """A short note in the status bar (the read-out stays visible)."""
        self.status.show_note(text, timeout_ms)

    def _busy(self, busy: bool, description: str) -> None:
        self.status.set_busy(busy, description)
        if busy:
            self.setCursor(Qt.CursorShape.BusyCursor)
        else:
            self.unsetCursor()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_files()
        for path in recent:
            act = self.recent_menu.addAction(Path(path).name)
            act.setToolTip(path)
            act.setStatusTip(path)
            act.triggered.connect(lambda _c=False, p=path: self._open_recent(p))
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list").triggered.connect(self.settings.clear_recent)

    def _open_recent(self, path: str) -> None:
        if not Path(path).exists():
            self.settings.remove_recent(path)
            self.dialogs.error("Could not open the image", f"{path}: no such file or folder")
            return
        self.open_image(path)

    def _about(self) -> None:
        QMessageBox.about(
            self, "About Delineo",
            f"<h3>Delineo {__version__}</h3><p>Medical image segmentation: view, segment "
            "and correct label maps.</p><p>Demo data: MNI ICBM152 2009a template © McConnell "
            "Brain Imaging Centre, Montreal Neurological Institute.</p>")

    def _confirm_discard(self, then: Callable[[], object] | None = None) -> bool:
        """Ask about unsaved edits; True when it is fine to drop the current labels.

        "Save" saves in the background and returns False; *then* runs once the
        save has succeeded (e.g. closing the window, opening the next image).
        """
        edited = self.layers.edited
        if edited is None or not edited.modified:
            return True
        answer = self.dialogs.ask_unsaved(edited.name)
        if answer == "save":
            self._save_then(then)
            return False
        return answer == "discard"

    def _save_then(self, then: Callable[[], object] | None) -> None:
        before = self.io.current
        self.save_labels()
        job = self.io.current
        if then is None or job is None or job is before:
            return  # no save started (e.g. the file dialog was cancelled)

        def finished(*_args: object) -> None:
            if not job.done:
                return  # another job's message
            self.io.saved.disconnect(finished)
            self.io.failed.disconnect(finished)
            edited = self.layers.edited
            if job.succeeded and (edited is None or not edited.modified):
                then()

        self.io.saved.connect(finished)
        self.io.failed.connect(finished)

    # -- drag and drop -----------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and all(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        self.open_dropped(paths)

    def open_dropped(self, paths: list[str]) -> None:
        """Files or DICOM folders dropped on the window."""
        if not paths:
            return
        first, rest = paths[0], paths[1:]
        if self.layers.image is None or Path(first).is_dir():
            self.open_image(first)
            for extra in rest:
                log.info("ignored dropped item %s: one image at a time", extra)
            return
        role = self.dialogs.ask_drop_role(Path(first).name)
        if role == "image":
            self.open_image(first)
        elif role == "edit":
            self.open_labels(first)
        elif role == "truth":
            self.io.open_labels(first, role)

    # -- closing -----------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._confirm_discard(then=self.close):
            event.ignore()
            return
        self.edits.close()  # a clean close: the crash journal goes
        self.runner.shutdown(3000)
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        super().closeEvent(event)

    def current_slices(self) -> dict[str, np.ndarray]:
        """The image slice each view shows (for tests and scripts)."""
        return {plane: view.image_item.image for plane, view in self.views.items()}
