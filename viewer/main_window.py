"""The main window: three linked slice views, docks and the status bar, wired together.

The window builds the models and the widgets and connects them; the parts
live elsewhere: the menus and the tool bar in :mod:`viewer.menus`, opening
and saving in :mod:`viewer.io_controller`, segmentation in
:mod:`viewer.methods_controller` (which sees the window only as a
:class:`~viewer.methods_controller.MethodsHost`), editing in
:mod:`viewer.edit_session`. What tools and panels use of it:

* :attr:`MainWindow.layers` -- the :class:`~viewer.layers.LayerStack`;
  ``layers.edited`` is the mask being edited (created empty when an image is
  opened without labels), ``layers.ground_truth`` the reference.
* :meth:`MainWindow.refresh_labels` -- say that a box of voxels of a layer
  changed; only the views whose slice crosses the box redraw, and the label
  table recounts once the edits pause.
* :meth:`MainWindow.set_tool` / :data:`viewer.tools.TOOLS` -- interaction modes.
* :meth:`MainWindow.add_result_layer` -- show a method's output as a layer.
* :attr:`MainWindow.findings_panel` -- the lesions of the edited mask
  (:mod:`viewer.panels.findings_panel`); :meth:`MainWindow.step_finding`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QDockWidget, QMainWindow, QWidget

from engine.core.volume import LabelMap, Volume
from engine.display import drag_window

from .cursor import Cursor
from .dialogs import IMAGE_FILTER, LABEL_FILTER, NAMES_FILTER, Dialogs
from .edit_session import EditSession
from .io_controller import EDIT_OPACITY, TRUTH_OPACITY, IOController
from .layers import BBox, LabelLayer, LayerStack
from .menus import CONVENTIONS, Menus
from .panels import LabelsPanel, LayersPanel, WindowLevelPanel
from .panels.edit_panel import EditPanel
from .panels.findings_panel import FindingsPanel
from .panels.metrics_panel import MetricsPanel
from .recovery import RecoveryController
from .settings import Settings
from .shortcuts import bind_actions
from .status_bar import StatusBar, format_readout
from .tools import TOOLS, Tool, ToolContext
from .view_grid import ViewGrid
from .wheel_guard import WheelGuard
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
    #: The Methods dock's modules were imported in the background (or failed to be).
    _methods_imported = Signal()

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
                                 history_bytes=self.settings.history_mb * 2**20)
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

        self.wheel_guard = WheelGuard(self)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self.wheel_guard)
        self._build_docks()
        self._build_edit_docks()
        self._build_findings_dock()
        self._methods: MethodsController | None = None  # see the ``methods`` property
        self._build_status_bar()
        handlers = self._handlers()
        self.actions_ = bind_actions(self, handlers, views=self.grid)
        self.menus = Menus(self, self.actions_, {**handlers, **self._menu_commands()},
                           tools=self.tools, docks=self.docks, settings=self.settings,
                           tool="navigate", layout=self.grid.layout_name,
                           open_recent=self.open_recent)
        self._build_editing()

        # The Methods dock imports torch (~1.2 s): once the first image is on screen, its
        # modules are imported in a thread while the window stays responsive, then the dock
        # is built here (an earlier use of ``methods`` imports them at once).
        self._methods_import: threading.Thread | None = None
        # a bound method of this window: the signal from the thread is queued to it
        self._methods_imported.connect(self._build_methods)
        self.image_shown.connect(self._import_methods)
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
        self.menus.show_image_open(False)

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
        self.wheel_guard.protect(dock)
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

        def tool(name: str) -> Callable[[], None]:
            return lambda: self.set_tool(name)

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
            "help_reference": lambda: self.menus.show_reference(),
            "cancel_drag": self.cancel_drag,
            **self._edit_handlers(),
            "run_pipeline": self.run_pipeline,
            "compare_results": lambda: self.methods.open_comparison(),
            "next_uncertain": lambda: self.methods.next_uncertain_region(),
            "next_finding": lambda: self.step_finding(1),
            "previous_finding": lambda: self.step_finding(-1),
            **{f"tool_{name}": tool(name) for name in self.tools},
        }

    def _menu_commands(self) -> dict[str, Callable[[], object]]:
        """What the menu entries without a key do (see viewer.menus)."""
        edits = self.edits

        def convention(name: str) -> Callable[[], None]:
            return lambda: self.set_convention(name)

        return {
            "open_demo": self.open_demo,
            **{f"convention_{name}": convention(name) for name in CONVENTIONS},
            "new_label": self.new_label,
            "remove_islands": lambda: edits.remove_small_islands(),
            "keep_largest": lambda: edits.keep_largest_component(),
            "surface_metrics": lambda: edits.compute_surface_metrics(),
            "export_segmentation": self.show_export_dialog,
            "open_from_pacs": self.show_pacs_browser,
            "open_label_names": self.choose_label_names,
            "send_to_pacs": self.show_send_to_pacs,
            "export_findings": self.findings_panel.export_csv_dialog,
        }

    def show_send_to_pacs(self) -> object:
        """Segmentation → Send to PACS…: SEG (+ SR) of the edited mask to a server."""
        from .export_dialog import SendToPacsDialog

        layer, image = self.layers.edited, self.layers.image
        if layer is None or image is None:
            self.dialogs.error("Nothing to send", "There is no edited mask to send.")
            return None
        dialog = SendToPacsDialog(
            layer.labelmap, image.volume, self.runner, self.settings, parent=self,
            on_error=lambda exc: self.dialogs.error("Could not send to the PACS", str(exc)))
        self._send_dialog = dialog
        dialog.open()
        return dialog

    def show_pacs_browser(self) -> object:
        """File → Open from PACS…: a non-modal browser (viewer/pacs_browser.py)."""
        from .pacs_browser import PacsBrowser

        browser = PacsBrowser(self.settings, self.runner, self.io.show_image,
                              lambda title, text: self.dialogs.error(title, text), parent=self)
        self._pacs_browser = browser
        browser.show()
        return browser

    def show_export_dialog(self) -> object:
        """Segmentation → Export…: a non-modal dialog writing the edited mask (export_dialog)."""
        from .export_dialog import ExportDialog

        layer, image = self.layers.edited, self.layers.image
        if layer is None or image is None:
            self.dialogs.error("Nothing to export", "There is no edited mask to export.")
            return None
        dialog = ExportDialog(
            layer.labelmap, image.volume, self.runner, start_dir=self.settings.last_dir,
            parent=self,
            on_error=lambda exc: self.dialogs.error("Could not export", str(exc)))
        self._export_dialog = dialog
        dialog.open()
        return dialog

    # -- public API: files ---------------------------------------------------------------
    def open_image(self, path: str | Path) -> None:
        """Open an image (replaces the current one, after asking about unsaved edits)."""
        if self.io.confirm_discard(then=lambda: self.io.open_image(path)):
            self.io.open_image(path)

    def open_demo(self) -> None:
        if self.io.confirm_discard(then=self.io.open_demo):
            self.io.open_demo()

    def open_labels(self, path: str | Path) -> None:
        """Open a label map as the edited mask (after asking about unsaved edits)."""
        if self.io.confirm_discard(then=lambda: self.io.open_labels(path, "edit")):
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
        if role == "edit" and not self.io.confirm_discard():
            return  # opening labels to edit replaces the edited mask
        path = self.dialogs.open_file(title, LABEL_FILTER, self.settings.last_dir)
        if path:
            self.io.open_labels(path, role)

    def choose_label_names(self) -> None:
        """Name the values of the label layer the Labels panel shows from a file."""
        layer = self.labels_panel.layer or self.layers.edited
        if layer is None:
            self.dialogs.error("No label layer", "Open an image and a label map first: the "
                               "names are given to the label layer the Labels panel shows.")
            return
        path = self.dialogs.open_file(f"Label names for {layer.name}", NAMES_FILTER,
                                      self.settings.last_dir)
        if path:
            self.io.open_label_names(path, layer)

    def save_labels(self) -> None:
        """Save the edited mask to its file (asks where when it has none)."""
        self.io.save_edited()

    def save_labels_as(self) -> None:
        self.io.save_edited(ask=True)

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

    def _import_methods(self) -> None:
        """Import the Methods dock's modules in a thread, then build the dock here."""
        if self._methods is not None or self._methods_import is not None:
            return

        def work() -> None:
            try:
                importlib.import_module("viewer.methods_controller")
            except Exception:  # building the dock imports it again and reports the error
                log.exception("importing the Methods dock failed")
            with contextlib.suppress(RuntimeError):  # the window was closed meanwhile
                self._methods_imported.emit()  # queued to the GUI thread

        self._methods_import = threading.Thread(target=work, name="methods-import",
                                                daemon=True)
        self._methods_import.start()

    def _build_methods(self) -> None:
        self.methods  # noqa: B018 - builds the dock

    @property
    def methods(self) -> MethodsController:
        """The Methods dock, comparison mode and click-to-refine (built on first use)."""
        if self._methods is None:
            from .methods_controller import MethodsController  # imports torch

            methods = MethodsController(self, parent=self)
            dock = self.add_dock("methods", "Methods", methods.panel,
                                 Qt.DockWidgetArea.LeftDockWidgetArea)
            self.tabifyDockWidget(self.docks["edit"], dock)  # segment, then correct
            self.docks["edit"].raise_()
            self.tool_context.extras["refine"] = methods.refiner.request
            self.tool_context.extras["refine_preview"] = methods.preview_box
            self.menus.add_segment_menu(methods.pipelines, dock)
            self._methods = methods
        return self._methods

    def run_pipeline(self) -> None:
        """Segment → Run Pipeline: shows the Methods dock and runs what it is set up for."""
        methods = self.methods
        self.docks["methods"].show()
        self.docks["methods"].raise_()
        methods.run()

    def set_tool(self, name: str) -> None:
        if name == "refine":
            self.methods  # noqa: B018 - the Refine tool sends its requests to the controller
        if self.tool is not self.tools[name]:
            self.tool.deactivate()
            self.tool = self.tools[name]
            self.tool.activate()
            self.grid.update_tool_cursor()
        self.menus.check_tool(name)

    def cancel_drag(self) -> bool:
        """Esc: abandon the mouse drag under way; a brush or eraser stroke is taken back."""
        return any(view.canvas.cancel_drag() for view in self.views.values())

    def set_layout(self, name: str) -> None:
        self.grid.set_layout(name)
        self.settings.layout = name
        self.menus.check_layout(name)

    def set_convention(self, convention: str) -> None:
        self.settings.convention = convention
        self.grid.set_convention(convention)
        self.menus.check_convention(convention)

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

    # -- editing: docks and wiring (the logic is in viewer/edit_session.py) ----------------
    def _build_edit_docks(self) -> None:
        self.edit_panel = EditPanel(self.edits, self)
        self.metrics_panel = MetricsPanel(self.edits, self)
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        docks = [self.add_dock("edit", "Editing", self.edit_panel, left),
                 self.add_dock("metrics", "Live Metrics", self.metrics_panel, left)]
        self.resizeDocks(docks, [340, 340], Qt.Orientation.Horizontal)
        self.resizeDocks(docks, [500, 420], Qt.Orientation.Vertical)

    def _build_findings_dock(self) -> None:
        """The Findings dock: a tab beside Labels (the labels stay in front)."""
        self.findings_panel = FindingsPanel(self.layers, self.edits, self.cursor, self.views,
                                            runner=self.runner, parent=self)
        self.findings_panel.message.connect(self.show_message)
        dock = self.add_dock("findings", "Findings", self.findings_panel,
                             Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.docks["labels"], dock)
        self.docks["labels"].raise_()

    def step_finding(self, delta: int) -> None:
        """Next (*delta* > 0) or previous finding: shows the Findings dock and goes there."""
        dock = self.docks["findings"]
        dock.show()
        dock.raise_()
        self.findings_panel.step(delta)

    def _build_editing(self) -> None:
        edits = self.edits
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

        return {
            "undo": edits.undo,
            "redo": edits.redo,
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
        self.menus.show_history(self.edits.history)
        self._update_title()

    def _sync_edit_toggles(self) -> None:
        self.menus.show_overlays(differences=self.edits.differences_shown,
                                 truth_outline=self.edits.truth_outline)

    # -- reactions ---------------------------------------------------------------------
    def _image_changed(self) -> None:
        image = self.layers.image
        self.cursor.reset(image.volume.shape if image else (1, 1, 1))
        self._hover = None
        self.menus.show_image_open(image is not None)
        self._update_title()

    def _image_loaded(self) -> None:
        self.grid.active_view().canvas.setFocus()
        QTimer.singleShot(0, self._announce_shown)

    def _announce_shown(self) -> None:
        self.grid.render_pending()
        self.image_shown.emit()

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

    def show_warning(self, title: str, text: str) -> None:
        """A modal warning (a run refused outside its declared use, ...)."""
        self.dialogs.warning(title, text)

    def _busy(self, busy: bool, description: str) -> None:
        self.status.set_busy(busy, description)
        if busy:
            self.setCursor(Qt.CursorShape.BusyCursor)
        else:
            self.unsetCursor()

    def open_recent(self, path: str) -> None:
        """Open a file of File → Open Recent (a file gone since is dropped from the list)."""
        if not Path(path).exists():
            self.settings.remove_recent(path)
            self.dialogs.error("Could not open the image", f"{path}: no such file or folder")
            return
        self.open_image(path)

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
        if not self.io.confirm_discard(then=self.close):
            event.ignore()
            return
        self.edits.close()  # a clean close: the crash journal goes
        self.runner.shutdown(3000)
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        super().closeEvent(event)

    def current_slices(self) -> dict[str, np.ndarray]:
        """The image slice each view shows (for tests and scripts)."""
        return {plane: view.image_item.image for plane, view in self.views.items()}
