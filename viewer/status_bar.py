"""The status bar: cursor read-out, short messages, and job progress with Cancel."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QProgressBar, QSizePolicy, QStatusBar, QToolButton, QWidget

from .layers import LayerStack

__all__ = ["ElidedLabel", "StatusBar", "format_readout"]


class ElidedLabel(QLabel):
    """A one-line label that ends in "…" when too narrow; the tooltip holds the whole text."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__("", parent)
        self.full_text = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.set_full_text(text)

    def set_full_text(self, text: str) -> None:
        self.full_text = text
        self.setToolTip(text.replace("   ", "\n"))
        self._elide()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(0, self.contentsRect().width() - 8)
        self.setText(self.fontMetrics().elidedText(self.full_text, Qt.TextElideMode.ElideRight,
                                                   width))


def _layer_title(name: str) -> str:
    """``"Ground truth (MNI152 tissue)"`` → ``"Ground truth"``; ``"Edited mask: a.nii"`` → ..."""
    return name.split(":")[0].split(" (")[0]


def format_readout(layers: LayerStack, ijk: tuple[int, int, int]) -> str:
    """Voxel index, world position (mm), intensity and the label of every layer at *ijk*."""
    image = layers.image
    if image is None:
        return ""
    world = image.volume.voxel_to_world(ijk)
    value = image.value_at(ijk)
    shown = f"{value:.0f}" if image.volume.array.dtype.kind in "iub" else f"{value:.6g}"
    parts = [
        "Voxel (" + ", ".join(f"{v:d}" for v in ijk) + ")",
        "World (" + ", ".join(f"{v:.1f}" for v in world) + ") mm",
        f"Value {shown}",
    ]
    for layer in layers.labels:
        label = layer.label_at(ijk)
        name = layer.labelmap.labels.name(label) if label else "—"
        parts.append(f"{_layer_title(layer.name)}: {name}")
    return "   ".join(parts)


class StatusBar(QStatusBar):
    """Read-out on the left (always visible), messages and progress on the right."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.readout = ElidedLabel("", self)
        self.readout.setObjectName("readout")
        self.readout.setStyleSheet("font-family: monospace; padding-left: 4px;")
        self.readout.setMinimumWidth(200)
        self.message = QLabel("", self)
        self.message.setObjectName("message")
        self.message.setStyleSheet("color: #9aa1ab; padding-right: 6px;")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.message.clear)
        self.progress_text = QLabel("", self)
        self.progress = QProgressBar(self)
        self.progress.setObjectName("progress")
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(False)
        self.cancel_button = QToolButton(self)
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop the running task")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.addPermanentWidget(self.readout, 1)
        self.addPermanentWidget(self.message)
        for widget in (self.progress_text, self.progress, self.cancel_button):
            self.addPermanentWidget(widget)
            widget.hide()

    def set_readout(self, text: str) -> None:
        """The read-out; cut with "…" when too long, whole in its tooltip."""
        self.readout.set_full_text(text)

    def show_note(self, text: str, timeout_ms: int = 8000) -> None:
        self.message.setText(text)
        self._timer.start(timeout_ms)

    def set_busy(self, busy: bool, description: str = "") -> None:
        for widget in (self.progress_text, self.progress, self.cancel_button):
            widget.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)  # indeterminate until progress arrives
            self.progress_text.setText(description + "…")

    def set_progress(self, fraction: float, message: str = "") -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(fraction * 1000))
        if message:
            self.progress_text.setText(message)
