"""The main window."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QMainWindow


class MainWindow(QMainWindow):
    """Delineo's main window (the viewer issue fills it with slice views)."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Delineo")
        self.resize(1280, 800)
        self.setCentralWidget(QLabel("Delineo"))
