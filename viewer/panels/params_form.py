"""A form generated from a parameter dataclass of :mod:`engine.core.params`.

One row per field: a check box for ``bool``, a combo box for choices, a spin
box for numbers (its range from the field's ``lo``/``hi``, its suffix the
unit), a line edit for text. Each row's tool tip is the field's doc with its
range and default, so the form documents the method.

Examples
--------
>>> form = ParamsForm(OtsuParams)                     # doctest: +SKIP
>>> form.set_value("bins", 128); form.changes()       # doctest: +SKIP
{'bins': 128}
"""

from __future__ import annotations

import html
import math
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from engine.core.params import ParamInfo, describe

from ..plain_names import param_help, param_label, plain_unit

__all__ = ["ParamsForm", "tooltip"]

_BIG = 1e12
_INT_MAX = 2**31 - 1


def tooltip(info: ParamInfo) -> str:
    """Rich-text tool tip of one parameter: doc, valid range (with unit) and default."""
    unit = f" {plain_unit(info.unit)}" if info.unit else ""
    parts = [f"<b>{html.escape(param_label(info.name))}</b>"]
    if param_help(info.name):
        parts.append(html.escape(param_help(info.name)))
    technical = f"Technical name: {info.name}" + (f" — {info.doc}" if info.doc else "")
    parts.append(f"<i>{html.escape(technical)}</i>")
    if "t.u." in info.unit:
        parts.append("A time unit is one unit of the simulation's own clock, not seconds.")
    rng = info.range_text()
    if rng:
        parts.append(f"Valid: {html.escape(rng)}{html.escape(unit)}")
    parts.append(f"Default: {html.escape(str(info.default))}{html.escape(unit)}")
    return "<br>".join(parts)


def _decimals(info: ParamInfo) -> int:
    """Enough decimals to show the default and the bounds."""
    values = [abs(v) for v in (info.default, info.lo, info.hi)
              if isinstance(v, (int, float)) and v]
    if values and min(values) >= 1000:
        return 0
    small = [v for v in values if v < 1]
    if not small:
        return 2
    return min(6, max(2, 1 - math.floor(math.log10(min(small))) + 1))


def _label_text(info: ParamInfo) -> str:
    return param_label(info.name)


class ParamsForm(QWidget):
    """Editable values of one parameter dataclass, defaults first.

    Attributes
    ----------
    params_type : type
        The dataclass the form edits.
    editors : dict
        Field name -> its editor widget (for tests and scripts).
    """

    #: A value was changed by the user or by :meth:`set_value`.
    changed = Signal()

    def __init__(self, params_type: type, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.params_type = params_type
        self.infos = {info.name: info for info in describe(params_type)}
        self.editors: dict[str, QWidget] = {}
        layout = QFormLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setHorizontalSpacing(10)
        layout.setVerticalSpacing(3)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for name, info in self.infos.items():
            editor = self._editor(info)
            editor.setObjectName(f"param_{name}")
            tip = tooltip(info)
            editor.setToolTip(tip)
            label = QLabel(_label_text(info), self)
            label.setToolTip(tip)
            label.setBuddy(editor)
            layout.addRow(label, editor)
            self.editors[name] = editor
        if not self.infos:
            none = QLabel("No parameters", self)
            none.setStyleSheet("color: #8a919c;")
            layout.addRow(none)

    # -- editors -----------------------------------------------------------------
    def _editor(self, info: ParamInfo) -> QWidget:
        if info.choices:
            box = QComboBox(self)
            for choice in info.choices:
                box.addItem(str(choice), choice)
            box.setCurrentIndex(list(info.choices).index(info.default))
            box.currentIndexChanged.connect(lambda _i: self.changed.emit())
            return box
        if info.type is bool:
            check = QCheckBox(self)
            check.setChecked(bool(info.default))
            check.toggled.connect(lambda _c: self.changed.emit())
            return check
        if info.type is int:
            spin = QSpinBox(self)
            lo = -_INT_MAX if info.lo is None else math.ceil(info.lo)
            hi = _INT_MAX if info.hi is None else math.floor(info.hi)
            if info.lo is not None and not info.lo_inclusive and lo == info.lo:
                lo += 1
            if info.hi is not None and not info.hi_inclusive and hi == info.hi:
                hi -= 1
            spin.setRange(int(max(lo, -_INT_MAX)), int(min(hi, _INT_MAX)))
            spin.setValue(int(info.default))
            self._number_style(spin, info)
            spin.valueChanged.connect(lambda _v: self.changed.emit())
            return spin
        if info.type is float:
            spin = QDoubleSpinBox(self)
            decimals = _decimals(info)
            spin.setDecimals(decimals)
            step = 10.0 ** -decimals
            lo = -_BIG if info.lo is None else float(info.lo)
            hi = _BIG if info.hi is None else float(info.hi)
            if info.lo is not None and not info.lo_inclusive:
                lo += step
            if info.hi is not None and not info.hi_inclusive:
                hi -= step
            spin.setRange(lo, hi)
            spin.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
            spin.setValue(float(info.default))
            self._number_style(spin, info)
            spin.valueChanged.connect(lambda _v: self.changed.emit())
            return spin
        line = QLineEdit(str(info.default), self)
        line.textChanged.connect(lambda _t: self.changed.emit())
        return line

    @staticmethod
    def _number_style(spin: QSpinBox | QDoubleSpinBox, info: ParamInfo) -> None:
        if info.unit:
            spin.setSuffix(f" {info.unit}")
        spin.setKeyboardTracking(False)
        spin.setAccelerated(True)
        spin.setMinimumWidth(96)

    # -- values ------------------------------------------------------------------
    def value(self, name: str) -> Any:
        """The current value of one field, in the field's type."""
        editor = self.editors[name]
        info = self.infos[name]
        if isinstance(editor, QComboBox):
            return editor.currentData()
        if isinstance(editor, QCheckBox):
            return editor.isChecked()
        if isinstance(editor, QSpinBox):
            return int(editor.value())
        if isinstance(editor, QDoubleSpinBox):
            return float(editor.value())
        assert isinstance(editor, QLineEdit)
        return info.type(editor.text()) if callable(info.type) else editor.text()

    def set_value(self, name: str, value: Any) -> None:
        """Show *value* for field *name* (emits :attr:`changed`)."""
        editor = self.editors[name]
        if isinstance(editor, QComboBox):
            editor.setCurrentIndex(editor.findData(value))
        elif isinstance(editor, QCheckBox):
            editor.setChecked(bool(value))
        elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            editor.setValue(value)
        else:
            assert isinstance(editor, QLineEdit)
            editor.setText(str(value))

    def values(self) -> dict[str, Any]:
        """Every field's current value."""
        return {name: self.value(name) for name in self.infos}

    def changes(self) -> dict[str, Any]:
        """Only the fields that differ from their defaults."""
        out = {}
        for name, info in self.infos.items():
            value = self.value(name)
            editor = self.editors[name]
            if isinstance(editor, QDoubleSpinBox):
                # the box rounds to its decimals: a default it cannot show exactly is unchanged
                if abs(value - float(info.default)) <= 0.5 * 10.0 ** -editor.decimals():
                    continue
            elif value == info.default:
                continue
            out[name] = value
        return out

    def params(self) -> Any:
        """A parameter object with the current values (not validated here)."""
        return self.params_type(**self.values())

    def reset(self) -> None:
        """Back to the defaults."""
        for name, info in self.infos.items():
            self.set_value(name, info.default)
