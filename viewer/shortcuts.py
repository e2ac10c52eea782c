"""The one table of keyboard shortcuts and mouse gestures.

Both the bindings and the Help → Keyboard and mouse reference come from the
tables below: :func:`bind_actions` creates the ``QAction`` of every key
binding, slice views look their mouse gestures up with :func:`find_gesture`,
and :func:`reference_html` / :func:`reference_markdown` list the same rows.
Adding a row here is the only way to add a shortcut.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

__all__ = [
    "KEYS",
    "MOUSE",
    "KeyBinding",
    "MouseGesture",
    "TextFieldGuard",
    "bind_actions",
    "find_gesture",
    "mouse_reference",
    "reference_html",
    "reference_markdown",
]


@dataclass(frozen=True)
class KeyBinding:
    """A command with its menu text and keys (``QKeySequence`` portable strings)."""

    action: str
    text: str
    keys: tuple[str, ...]
    group: str
    tip: str = ""
    #: True: a key of the slice views (letters, arrows). It works wherever the
    #: focus is in the main window, except in a text field, which keeps its
    #: typing keys (see :class:`TextFieldGuard`).
    views_only: bool = False


@dataclass(frozen=True)
class MouseGesture:
    """A mouse gesture in a slice view: *button* with exact *modifiers* → *gesture*.

    *button* is ``"left"``, ``"middle"``, ``"right"``, ``"wheel"`` or
    ``"double-left"``; *modifiers* is ``""``, ``"Shift"``, ``"Ctrl"`` or
    ``"Ctrl+Shift"``.
    """

    gesture: str
    button: str
    modifiers: str
    text: str
    group: str = "Mouse in a slice view"


KEYS: tuple[KeyBinding, ...] = (
    # File
    KeyBinding("open_image", "Open &Image…", ("Ctrl+O",), "File",
               "Open a NIfTI file or a DICOM file"),
    KeyBinding("open_dicom_folder", "Open &DICOM Folder…", ("Ctrl+Shift+O",), "File",
               "Open the largest DICOM series in a folder"),
    KeyBinding("open_labels", "Open &Labels…", ("Ctrl+L",), "File",
               "Open a label map as the edited mask"),
    KeyBinding("open_ground_truth", "Open &Ground Truth…", ("Ctrl+G",), "File",
               "Open a reference label map (shown as its own layer)"),
    KeyBinding("save_labels", "&Save Labels", ("Ctrl+S",), "File",
               "Save the edited mask in the image's geometry"),
    KeyBinding("save_labels_as", "Save Labels &As…", ("Ctrl+Shift+S",), "File"),
    KeyBinding("quit", "&Quit", ("Ctrl+Q",), "File"),
    # View
    KeyBinding("layout_1x3", "Layout &1 × 3", ("Ctrl+1",), "View",
               "Three views side by side"),
    KeyBinding("layout_2x2", "Layout &2 × 2", ("Ctrl+2",), "View",
               "Three views and the 3-D view (and the volume information) in a grid"),
    KeyBinding("maximise", "&Maximise / Restore View", ("M",), "View",
               "Show only the view under the mouse (double-click does the same)",
               views_only=True),
    KeyBinding("reset_views", "&Reset Views", ("R",), "View",
               "Fit the image in every view (undo zoom and pan)", views_only=True),
    KeyBinding("toggle_labels", "Show / Hide &Label Layers", ("L",), "View",
               "Hide or show every label layer at once", views_only=True),
    KeyBinding("toggle_outline", "&Outline / Filled Labels", ("O",), "View",
               "Draw the label layers as outlines or filled", views_only=True),
    KeyBinding("toggle_crosshair", "Show / Hide &Crosshair", ("C",), "View",
               views_only=True),
    KeyBinding("auto_window", "&Automatic Window", ("W",), "View",
               "Percentile window (MR) or soft-tissue window (CT)", views_only=True),
    # Navigation
    KeyBinding("next_slice", "Next slice", ("Up", "Right"), "Navigation",
               "In the view under the mouse", views_only=True),
    KeyBinding("previous_slice", "Previous slice", ("Down", "Left"), "Navigation",
               views_only=True),
    KeyBinding("next_slice_fast", "Forward 5 slices", ("PgUp",), "Navigation",
               views_only=True),
    KeyBinding("previous_slice_fast", "Back 5 slices", ("PgDown",), "Navigation",
               views_only=True),
    KeyBinding("first_slice", "First slice", ("Home",), "Navigation", views_only=True),
    KeyBinding("last_slice", "Last slice", ("End",), "Navigation", views_only=True),
    KeyBinding("centre_cursor", "Centre the cursor in the volume", ("Ctrl+Home",), "Navigation",
               views_only=True),
    # Editing (viewer/edit_session.py, viewer/tools/brush.py, fill.py)
    KeyBinding("undo", "&Undo", ("Ctrl+Z",), "Editing",
               "Undo the last change of the edited mask (a whole drag is one step)"),
    KeyBinding("redo", "&Redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Editing"),
    KeyBinding("tool_navigate", "&Navigate tool", ("N",), "Editing",
               "Click or drag moves the cursor", views_only=True),
    KeyBinding("tool_brush", "&Brush tool", ("B",), "Editing",
               "Paint the selected label; the right button erases", views_only=True),
    KeyBinding("tool_eraser", "&Eraser tool", ("E",), "Editing", views_only=True),
    KeyBinding("tool_fill", "&Fill tool", ("F",), "Editing",
               "Fill the connected region under the click", views_only=True),
    KeyBinding("brush_smaller", "Smaller brush", ("[",), "Editing", views_only=True),
    KeyBinding("brush_larger", "Larger brush", ("]",), "Editing", views_only=True),
    *(KeyBinding(f"select_label_{n}", f"Select label {n}", (str(n),), "Editing",
                 "The label the brush and the fill paint" if n == 1 else "", views_only=True)
      for n in range(1, 10)),
    KeyBinding("toggle_differences", "Show / Hide &Differences", ("D",), "Editing",
               "False positives and false negatives against the ground truth",
               views_only=True),
    KeyBinding("cancel_drag", "Cancel the drag", ("Esc",), "Editing",
               "During a brush or eraser drag: take the stroke back (nothing enters the "
               "undo history)"),
    KeyBinding("toggle_truth_outline", "Ground-Truth &Outline", ("G",), "Editing",
               "Draw the ground truth as outlines over the edited mask", views_only=True),
    # Segment (viewer/methods_controller.py, viewer/tools/refine.py)
    KeyBinding("run_pipeline", "&Run Pipeline", ("Ctrl+R",), "Segment",
               "Run the pipeline set up in the Methods dock, in the background"),
    KeyBinding("compare_results", "&Compare Results…", ("Ctrl+K",), "Segment",
               "Side-by-side panes of the results and the ground truth, and the metrics table"),
    KeyBinding("next_uncertain", "Next &Uncertain Region", ("U",), "Segment",
               "Move the views to the most uncertain region of the selected result not yet "
               "visited (where the network hesitated)"),
    KeyBinding("tool_refine", "Re&fine tool", ("A",), "Segment",
               "Active contour: a click grows or refines the selected label, a drag starts "
               "from a box", views_only=True),
    # Findings (viewer/panels/findings_panel.py)
    KeyBinding("next_finding", "&Next Finding", (".",), "Findings",
               "Select the next lesion of the Findings panel: the views go to it and zoom "
               "onto it, the axial view draws its two diameters", views_only=True),
    KeyBinding("previous_finding", "&Previous Finding", (",",), "Findings", views_only=True),
    # Help
    KeyBinding("help_reference", "&Keyboard and Mouse Reference", ("F1",), "Help"),
)

MOUSE: tuple[MouseGesture, ...] = (
    MouseGesture("tool", "left", "",
                 "Click or drag: the active tool — Navigate moves the cursor (linked "
                 "crosshair), Brush paints, Eraser erases, Fill fills, Refine grows the "
                 "selected label (a drag: from a box)"),
    MouseGesture("window_level", "left", "Shift",
                 "Drag: window/level — right/left widens/narrows the window, "
                 "up/down brightens/darkens"),
    MouseGesture("pan", "middle", "", "Drag: pan"),
    MouseGesture("pan", "left", "Ctrl+Shift", "Drag: pan (without a middle button)"),
    MouseGesture("zoom", "right", "", "Drag up/down: zoom in/out; with the Brush: erase"),
    MouseGesture("slice", "wheel", "", "Wheel: next/previous slice"),
    MouseGesture("slice_fast", "wheel", "Shift",
                 "Wheel: 5 slices at a time; with the Brush or Eraser: brush size"),
    MouseGesture("zoom", "wheel", "Ctrl", "Wheel: zoom about the mouse"),
    MouseGesture("maximise", "double-left", "",
                 "Double-click: maximise / restore this view (not with the editing tools)"),
)


def find_gesture(button: str, modifiers: str) -> str | None:
    """The gesture bound to *button* with exactly *modifiers*, or None."""
    for row in MOUSE:
        if row.button == button and row.modifiers == modifiers:
            return row.gesture
    return None


#: Widgets that type text: plain keys (letters, digits, arrows) stay theirs.
TEXT_FIELDS = (QLineEdit, QAbstractSpinBox, QPlainTextEdit, QTextEdit)
_COMMAND_MODIFIERS = (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
                      | Qt.KeyboardModifier.MetaModifier)


def is_text_field(widget: QObject | None) -> bool:
    """True for a widget that edits text (a read-only text box is not one)."""
    if isinstance(widget, (QPlainTextEdit, QTextEdit)):
        return not widget.isReadOnly()
    return isinstance(widget, TEXT_FIELDS)


class TextFieldGuard(QObject):
    """Keeps the plain keys of a text field from triggering window-wide shortcuts.

    The letter and arrow keys of the views are window shortcuts, so they work
    after a click on a button, a check box or a tab of a side panel. Only
    while a text field (a line edit, a number field, a text box) has the focus
    do plain keys go to the field: the guard accepts the ``ShortcutOverride``
    event of those keys, which tells Qt to deliver the key instead of the
    shortcut. Keys with Ctrl, Alt or Meta still reach their shortcuts.
    """

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if (event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent)
                and is_text_field(obj)
                and not (event.modifiers() & _COMMAND_MODIFIERS)):
            event.accept()
            return True
        return False


def bind_actions(
    parent: QWidget,
    handlers: Mapping[str, Callable[[], object]],
    *,
    views: QWidget | None = None,
) -> dict[str, QAction]:
    """Create a ``QAction`` per key binding, connected to ``handlers[action]``.

    Every action is window-wide, so the letters and arrows of the views work
    wherever the focus is in the window (a side panel's button, a tab, after
    Ctrl+1). Actions whose binding is *views_only* are also listed on *views*.
    A :class:`TextFieldGuard` on the application (one per *parent*) leaves the
    plain keys to a text field that has the focus.
    """
    app = QApplication.instance()
    if app is not None and parent.findChild(TextFieldGuard) is None:
        guard = TextFieldGuard(parent)
        guard.setObjectName("textFieldGuard")
        app.installEventFilter(guard)
    actions: dict[str, QAction] = {}
    for row in KEYS:
        action = QAction(row.text, parent)
        action.setObjectName(f"action_{row.action}")
        action.setShortcuts([QKeySequence(k) for k in row.keys])
        if row.tip:
            action.setStatusTip(row.tip)
            action.setToolTip(row.tip)
        handler = handlers.get(row.action)
        if handler is not None:
            action.triggered.connect(lambda _checked=False, h=handler: h())
        else:
            action.setEnabled(False)
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        parent.addAction(action)
        if row.views_only and views is not None:
            views.addAction(action)
        actions[row.action] = action
    return actions


def _key_text(keys: tuple[str, ...], native: bool = True) -> str:
    fmt = (QKeySequence.SequenceFormat.NativeText if native
           else QKeySequence.SequenceFormat.PortableText)
    return ", ".join(QKeySequence(k).toString(fmt) for k in keys)


def _mouse_text(row: MouseGesture) -> str:
    button = {
        "left": "Left button",
        "middle": "Middle button",
        "right": "Right button",
        "wheel": "Wheel",
        "double-left": "Left double-click",
    }[row.button]
    return f"{row.modifiers}+{button}" if row.modifiers else button


def _rows(native: bool = True) -> list[tuple[str, str, str]]:
    """(group, keys or gesture, description) for every row of both tables."""
    rows = [(r.group, _key_text(r.keys, native), r.text.replace("&", "").rstrip("…") +
             (f" — {r.tip}" if r.tip else "")) for r in KEYS]
    rows += [(r.group, _mouse_text(r), r.text) for r in MOUSE]
    return rows


def mouse_reference() -> list[tuple[str, str]]:
    """``(gesture, what it does)`` of every mouse row: ``("Wheel", "Wheel: next/...")``."""
    return [(_mouse_text(row), row.text) for row in MOUSE]


def reference_html() -> str:
    """The keyboard and mouse reference as an HTML document (for the Help dialog)."""
    parts = ["<h2>Keyboard and mouse reference</h2>"]
    group = None
    for grp, keys, text in _rows():
        if grp != group:
            if group is not None:
                parts.append("</table>")
            parts.append(f"<h3>{html.escape(grp)}</h3><table cellspacing='0' cellpadding='3'>")
            group = grp
        parts.append(
            f"<tr><td width='190'><b>{html.escape(keys)}</b></td>"
            f"<td>{html.escape(text)}</td></tr>"
        )
    parts.append("</table>")
    parts.append(
        "<p>Keys of the views act on the view under the mouse pointer (or the last one "
        "clicked) wherever the keyboard focus is in the window, except in a text or "
        "number field, which keeps the keys it types.</p>"
    )
    return "\n".join(parts)


def reference_markdown() -> str:
    """The same reference as Markdown tables (the user guide embeds it)."""
    lines: list[str] = []
    group = None
    for grp, keys, text in _rows(native=False):
        if grp != group:
            lines += ["", f"**{grp}**", "", "| Keys / gesture | Does |", "|---|---|"]
            group = grp
        lines.append(f"| {keys.replace('|', '/')} | {text.replace('|', '/')} |")
    return "\n".join(lines).strip() + "\n"
