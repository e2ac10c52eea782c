"""The menu bar and the tool bar of the main window.

:class:`Menus` lays out the actions that :func:`viewer.shortcuts.bind_actions`
made (one per key binding) in the File, Edit, View, Tools, Segment and Help
menus and in the tool bar, and adds the entries that have no key: the recent
files, the demo brain, the left-right convention, the panels, the findings
(next, previous, export), one checkable action per tool, the editing commands
and About. It keeps the state the actions show (checked tool, layout and
convention, the undo and redo texts) in step when the window tells it; what
every entry does is the window's.

Entries without a key call a command of the window by name (``commands``):

========================  ==================================================
``open_demo``             File → Open the Demo Brain
``open_label_names``      File → Label Names from File…
``tool_<name>``           Tools → one entry per tool (also the key bindings)
``convention_<name>``     View → Left–Right Convention → radiological, ...
``new_label``             Edit → New Label…
``remove_islands``        Edit → Remove Small Islands of the Selected Label
``keep_largest``          Edit → Keep the Largest Component of the Selected Label
``surface_metrics``       Edit → Compute HD95 / ASSD
``export_findings``       View → Findings → Export Findings as CSV…
========================  ==================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QMainWindow,
    QMenu,
    QMessageBox,
    QTextBrowser,
    QToolBar,
    QVBoxLayout,
)

from engine import __version__

from .shortcuts import KEYS, reference_html

if TYPE_CHECKING:
    from engine.editing.history import History

    from .pipeline_runner import PipelineRunner
    from .settings import Settings
    from .tools import Tool

__all__ = ["CONVENTIONS", "Menus"]

#: The left-right conventions offered in the View menu, with their menu text.
CONVENTIONS = {
    "radiological": "&Radiological (patient right on screen left)",
    "neurological": "&Neurological (patient right on screen right)",
}

#: Actions enabled only while an image is open.
_NEED_AN_IMAGE = ("open_labels", "open_ground_truth", "save_labels", "save_labels_as")

#: The first key of every binding, shown beside the tool entries (``"tool_brush": "B"``).
_FIRST_KEY = {row.action: row.keys[0] for row in KEYS if row.keys}


class Menus:
    """The menus and the tool bar of *window* (see the module doc).

    Parameters
    ----------
    window : QMainWindow
        The window whose menu bar and tool bar these are.
    actions : Mapping[str, QAction]
        The key-bound actions, by binding name (:func:`viewer.shortcuts.bind_actions`).
    commands : Mapping[str, Callable[[], object]]
        What the entries without a key do, by name (the table of the module doc).
    tools : Mapping[str, Tool]
        The interaction modes, in menu order.
    docks : Mapping[str, QDockWidget]
        The docks listed under View → Panels.
    settings : Settings
        The recent files and the left-right convention.
    tool, layout : str
        The tool and the layout shown checked at first.
    open_recent : Callable[[str], object]
        Opens a file of the Open Recent menu.
    """

    def __init__(self, window: QMainWindow, actions: Mapping[str, QAction],
                 commands: Mapping[str, Callable[[], object]], *, tools: Mapping[str, Tool],
                 docks: Mapping[str, QDockWidget], settings: Settings, tool: str, layout: str,
                 open_recent: Callable[[str], object]) -> None:
        self.window = window
        self.actions = actions
        self.commands = commands
        self.settings = settings
        self._open_recent = open_recent
        #: The Help → Keyboard and mouse reference dialog, once it has been shown.
        self.reference: QDialog | None = None
        self.tool_actions = self._tool_actions(tools, tool)
        self.convention_actions: dict[str, QAction] = {}
        bar = window.menuBar()
        self.file_menu = self._file_menu(bar.addMenu("&File"))
        self.edit_menu = self._edit_menu(bar.addMenu("&Edit"))
        self.view_menu = self._view_menu(bar.addMenu("&View"), docks, layout)
        self.tools_menu = bar.addMenu("&Tools")
        self.tools_menu.addActions(list(self.tool_actions.values()))
        self.segment_menu: QMenu | None = None
        self.help_menu = self._help_menu(bar.addMenu("&Help"))
        self.toolbar = self._toolbar()

    # -- building -----------------------------------------------------------------------
    def _command(self, menu: QMenu, text: str, name: str) -> QAction:
        """An entry of *menu* that calls ``commands[name]``."""
        action = menu.addAction(text)
        action.setObjectName(f"menu_{name}")
        command = self.commands[name]
        action.triggered.connect(lambda _checked=False: command())
        return action

    def _tool_actions(self, tools: Mapping[str, Tool], current: str) -> dict[str, QAction]:
        group = QActionGroup(self.window)
        out: dict[str, QAction] = {}
        for name, tool in tools.items():
            key = _FIRST_KEY.get(f"tool_{name}")  # the binding itself is in viewer.shortcuts
            action = QAction(f"{tool.label}\t{key}" if key else tool.label, self.window)
            action.setIconText(tool.label)
            action.setObjectName(f"tool_{name}")
            action.setCheckable(True)
            action.setChecked(name == current)
            action.setStatusTip(tool.tip)
            action.setToolTip(tool.tip)
            command = self.commands[f"tool_{name}"]
            action.triggered.connect(lambda _checked=False, c=command: c())
            group.addAction(action)
            out[name] = action
        return out

    def _file_menu(self, menu: QMenu) -> QMenu:
        a = self.actions
        menu.addActions([a["open_image"], a["open_dicom_folder"]])
        self.recent = menu.addMenu("Open &Recent")
        self.recent.aboutToShow.connect(self.fill_recent)
        self._command(menu, "Open the &Demo Brain", "open_demo")
        self._command(menu, "Open from &PACS…", "open_from_pacs")
        menu.addSeparator()
        menu.addActions([a["open_labels"], a["open_ground_truth"]])
        self._command(menu, "Label &Names from File…", "open_label_names").setToolTip(
            "Name and colour the values of the label layer shown in the Labels panel from "
            "ITK-SNAP label descriptions, a FreeSurfer lookup table or a 3D Slicer colour "
            "table")
        menu.addSeparator()
        menu.addActions([a["save_labels"], a["save_labels_as"]])
        menu.addSeparator()
        menu.addAction(a["quit"])
        return menu

    def _edit_menu(self, menu: QMenu) -> QMenu:
        a = self.actions
        menu.addActions([a["undo"], a["redo"]])
        menu.addSeparator()
        self._command(menu, "&New Label…", "new_label")
        self._command(menu, "Remove Small &Islands of the Selected Label", "remove_islands")
        self._command(menu, "&Keep the Largest Component of the Selected Label", "keep_largest")
        menu.addSeparator()
        self._command(menu, "Compute &HD95 / ASSD", "surface_metrics")
        for key in ("toggle_differences", "toggle_truth_outline"):
            a[key].setCheckable(True)
            menu.addAction(a[key])
        return menu

    def _view_menu(self, menu: QMenu, docks: Mapping[str, QDockWidget], layout: str) -> QMenu:
        a = self.actions
        layouts = QActionGroup(self.window)
        for key in ("layout_1x3", "layout_2x2"):
            a[key].setCheckable(True)
            layouts.addAction(a[key])
            menu.addAction(a[key])
        a[f"layout_{layout}"].setChecked(True)
        menu.addActions([a["maximise"], a["reset_views"]])
        menu.addSeparator()
        conventions = menu.addMenu("Left–Right &Convention")
        group = QActionGroup(self.window)
        for name, text in CONVENTIONS.items():
            action = self._command(conventions, text, f"convention_{name}")
            action.setCheckable(True)
            action.setChecked(name == self.settings.convention)
            group.addAction(action)
            self.convention_actions[name] = action
        a["toggle_crosshair"].setCheckable(True)
        a["toggle_crosshair"].setChecked(True)
        menu.addActions([a["toggle_crosshair"], a["toggle_labels"], a["toggle_outline"],
                         a["auto_window"]])
        menu.addSeparator()
        panels = menu.addMenu("&Panels")
        for dock in docks.values():
            panels.addAction(dock.toggleViewAction())
        findings = menu.addMenu("&Findings")
        findings.setObjectName("menu_findings")
        findings.addActions([a["next_finding"], a["previous_finding"]])
        self._command(findings, "&Export Findings as CSV…", "export_findings")
        return menu

    def _help_menu(self, menu: QMenu) -> QMenu:
        menu.addAction(self.actions["help_reference"])
        networks = menu.addAction("About the &Networks…")
        networks.setObjectName("action_about_networks")
        networks.setToolTip("What each shipped network was trained on (its model card)")
        networks.triggered.connect(self.show_networks)
        about = menu.addAction("&About Delineo")
        about.triggered.connect(self.show_about)
        return menu

    def _toolbar(self) -> QToolBar:
        a = self.actions
        bar = QToolBar("Main", self.window)
        bar.setObjectName("mainToolBar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        bar.addActions([a["open_image"], a["open_labels"], a["save_labels"]])
        bar.addSeparator()
        a["undo"].setIconText("Undo")
        a["redo"].setIconText("Redo")
        bar.addActions([a["undo"], a["redo"]])
        bar.addSeparator()
        bar.addActions(list(self.tool_actions.values()))
        bar.addSeparator()
        a["layout_1x3"].setIconText("1 × 3")
        a["layout_2x2"].setIconText("2 × 2")
        bar.addActions([a["layout_1x3"], a["layout_2x2"], a["reset_views"]])
        self.window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        return bar

    def add_segment_menu(self, pipelines: PipelineRunner, dock: QDockWidget) -> QMenu:
        """The Segment menu, before Help: run, compare, cancel, the next uncertain region,
        the Refine tool, the dock."""
        a = self.actions
        menu = QMenu("&Segment", self.window.menuBar())
        menu.addActions([a["run_pipeline"], a["compare_results"], a["next_uncertain"]])
        cancel = menu.addAction("&Cancel Pipeline")
        cancel.setObjectName("action_cancel_pipeline")
        cancel.triggered.connect(pipelines.cancel)
        pipelines.started.connect(lambda _name: cancel.setEnabled(True))
        for signal in (pipelines.finished, pipelines.failed, pipelines.cancelled):
            signal.connect(lambda *_args: cancel.setEnabled(pipelines.running))
        cancel.setEnabled(False)
        menu.addSeparator()
        if "refine" in self.tool_actions:
            menu.addAction(self.tool_actions["refine"])
        menu.addAction(dock.toggleViewAction())
        menu.addSeparator()
        self._command(menu, "&Export…", "export_segmentation")
        self._command(menu, "Send to &PACS…", "send_to_pacs")
        self.window.menuBar().insertMenu(self.help_menu.menuAction(), menu)
        self.segment_menu = menu
        return menu

    # -- keeping the actions in step -------------------------------------------------------
    def check_tool(self, name: str) -> None:
        self.tool_actions[name].setChecked(True)

    def check_layout(self, name: str) -> None:
        self.actions[f"layout_{name}"].setChecked(True)

    def check_convention(self, name: str) -> None:
        self.convention_actions[name].setChecked(True)

    def show_image_open(self, has_image: bool) -> None:
        """Enable what needs an image (labels, saving) only while one is open."""
        for key in _NEED_AN_IMAGE:
            self.actions[key].setEnabled(has_image)

    def show_history(self, history: History) -> None:
        """Undo and Redo: enabled when possible, named after the step they undo or redo."""
        undo, redo = self.actions["undo"], self.actions["redo"]
        undo.setEnabled(history.can_undo)
        redo.setEnabled(history.can_redo)
        undo.setText(f"&Undo {history.undo_name}" if history.undo_name else "&Undo")
        redo.setText(f"&Redo {history.redo_name}" if history.redo_name else "&Redo")
        undo.setToolTip(f"Undo {history.undo_name} (Ctrl+Z)" if history.undo_name else "Undo")
        redo.setToolTip(f"Redo {history.redo_name} (Ctrl+Shift+Z)" if history.redo_name
                        else "Redo")

    def show_overlays(self, *, differences: bool, truth_outline: bool) -> None:
        """Check the two overlay toggles as the edit session says, without triggering them."""
        for key, value in (("toggle_differences", differences),
                           ("toggle_truth_outline", truth_outline)):
            action = self.actions[key]
            action.blockSignals(True)
            action.setChecked(value)
            action.blockSignals(False)

    def fill_recent(self) -> None:
        """Refill File → Open Recent from the settings (just before it shows)."""
        self.recent.clear()
        recent = self.settings.recent_files()
        for path in recent:
            action = self.recent.addAction(Path(path).name)
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _checked=False, p=path: self._open_recent(p))
        if not recent:
            self.recent.addAction("(none)").setEnabled(False)
        else:
            self.recent.addSeparator()
            self.recent.addAction("Clear list").triggered.connect(self.settings.clear_recent)

    # -- Help -------------------------------------------------------------------------------
    def show_reference(self) -> QDialog:
        """Help → Keyboard and mouse reference (generated from viewer.shortcuts)."""
        dialog = self.reference
        if dialog is None:
            dialog = QDialog(self.window)
            dialog.setObjectName("referenceDialog")
            dialog.setWindowTitle("Keyboard and mouse reference")
            browser = QTextBrowser(dialog)
            browser.setHtml(reference_html())
            QVBoxLayout(dialog).addWidget(browser)
            dialog.resize(720, 640)
            self.reference = dialog
        dialog.show()
        dialog.raise_()
        return dialog

    def show_networks(self) -> QDialog:
        """Help → About the Networks: the model cards, in plain words."""
        from .model_info import ModelInfoDialog

        dialog = ModelInfoDialog(self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dialog.show()
        return dialog

    def show_about(self) -> None:
        QMessageBox.about(
            self.window, "About Delineo",
            f"<h3>Delineo {__version__}</h3><p>Medical image segmentation: view, segment "
            "and correct label maps.</p><p>Demo data: MNI ICBM152 2009a template © McConnell "
            "Brain Imaging Centre, Montreal Neurological Institute.</p>")
