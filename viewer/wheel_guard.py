"""The mouse wheel scrolls panels; it changes a setting only in a field that has the focus.

Qt lets a combo box, a number field or a slider take the wheel as soon as the
pointer is over it, so scrolling a long dock changes whatever passes under
the pointer (the Device box switching from Automatic to CPU unnoticed).
:class:`WheelGuard` makes those widgets take the focus only by a click or Tab
(``Qt.StrongFocus``) and passes the wheel to the panel behind them unless they
have the focus.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSlider, QAbstractSpinBox, QComboBox, QWidget

__all__ = ["GUARDED", "WheelGuard"]

#: The widgets whose value a wheel turn changes.
GUARDED = (QComboBox, QAbstractSpinBox, QAbstractSlider)


class WheelGuard(QObject):
    """Event filter (installed on the application) for the widgets inside *root*.

    Parameters
    ----------
    root : QWidget
        Only widgets inside it (its docks, floating or not) are guarded; the
        slice views' own sliders are left alone (the wheel over a view steps
        its slices anyway).
    """

    def __init__(self, root: QWidget) -> None:
        super().__init__(root)
        self.root = root

    def guards(self, obj: QObject) -> bool:
        """True for a combo box, number field or slider of a dock of *root*."""
        if not isinstance(obj, GUARDED) or not isinstance(obj, QWidget):
            return False
        widget: QWidget | None = obj
        in_dock = False
        while widget is not None:
            if widget.objectName().startswith("dock_"):
                in_dock = True
            if widget is self.root:
                return in_dock
            widget = widget.parentWidget()
        return False

    def protect(self, widget: QWidget) -> None:
        """Guard every such widget inside *widget* now (focus by click or Tab only)."""
        for child in widget.findChildren(QWidget):
            if self.guards(child):
                child.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.Polish and self.guards(obj):
            obj.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # type: ignore[attr-defined]
        elif kind == QEvent.Type.Wheel and self.guards(obj) and not obj.hasFocus():  # type: ignore[attr-defined]
            event.ignore()  # not accepted: Qt hands the wheel on to the parent (the scroll area)
            return True
        return False
