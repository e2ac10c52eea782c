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

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QMainWindow,
    QMessageBox,
    QTextBrowser,
    QToolBar,
    QVBoxLayout,
)

from engine import __version__
from engine.display import drag_window
from engine.volume import LabelMap, Volume

from .cursor import Cursor
from .dialogs import IMAGE_FILTER, LABEL_FILTER, Dialogs
from .io_controller import EDIT_OPACITY, TRUTH_OPACITY, IOController
from .layers import BBox, LabelLayer, LayerStack
from .panels import LabelsPanel, LayersPanel, WindowLevelPanel
from .settings import Settings
from .shortcuts import bind_actions, reference_html
from .status_bar import StatusBar, format_readout
from .tools import TOOLS, Tool, ToolContext
from .view_grid import ViewGrid
from .workers import JobRunner

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
        self.tool_context = ToolContext(self.cursor, self.layers, refresh=self.refresh_labels)
        self.tools: dict[str, Tool] = {name: cls(self.tool_context) for name, cls in TOOLS.items()}
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
        self._build_status_bar()
        self.actions_ = bind_actions(self, self._handlers(), views=self.grid)
        self._build_menus()
        self._build_toolbar()

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
        for key, title, panel in (
            ("window", "Window / Level", self.window_panel),
            ("layers", "Label Layers", self.layers_panel),
            ("labels", "Labels", self.labels_panel),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{key}")
            dock.setWidget(panel)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                             | QDockWidget.DockWidgetFeature.DockWidgetClosable
                             | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            self.docks[key] = dock
        self.resizeDocks(list(self.docks.values()), [360] * 3, Qt.Orientation.Horizontal)
        self.resizeDocks(list(self.docks.values()), [215, 170, 420], Qt.Orientation.Vertical)

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
        if self._confirm_discard():
            self.io.open_image(path)

    def open_demo(self) -> None:
        if self._confirm_discard():
            self.io.open_demo()

    def open_labels(self, path: str | Path) -> None:
        """Open a label map as the edited mask."""
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

    def set_tool(self, name: str) -> None:
        if self.tool is not self.tools[name]:
            self.tool.deactivate()
            self.tool = self.tools[name]
            self.tool.activate()
            self.grid.update_tool_cursor()

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

    def _confirm_discard(self) -> bool:
        """Ask about unsaved edits; True when it is fine to drop the current labels."""
        edited = self.layers.edited
        if edited is None or not edited.modified:
            return True
        answer = self.dialogs.ask_unsaved(edited.name)
        if answer == "save":
            self.save_labels()
            return False  # the save runs in the background; the user retries after it
        return answer == "discard"

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
        elif role in ("edit", "truth"):
            self.io.open_labels(first, role)

    # -- closing -----------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._confirm_discard():
            event.ignore()
            return
        self.runner.shutdown(3000)
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        super().closeEvent(event)

    def current_slices(self) -> dict[str, np.ndarray]:
        """The image slice each view shows (for tests and scripts)."""
        return {plane: view.image_item.image for plane, view in self.views.items()}
