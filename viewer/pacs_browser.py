"""File → Open from PACS…: find a series on a DICOMweb server and open it.

The server list (name, URL, auth kind, user) lives in the settings; a password
or token never does: it is typed per session in a password field, or read
from ``DELINEO_PACS_PASSWORD`` / ``DELINEO_PACS_TOKEN`` as the command line
does. Searching (:meth:`PacsClient.find_series`) and retrieving
(:meth:`PacsClient.retrieve_series` then Delineo's DICOM reader) run in
workers; a cancelled retrieval removes what it wrote and leaves the open image
as it was. The retrieved series is shown through the io controller like an
opened DICOM folder, keeping its DICOM provenance (its files stay in a
session folder, so a SEG can be exported on it later).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.pacs.client import PacsAuth, PacsClient, PacsServer, SeriesRow, parse_date_range

from .workers import Job, JobRunner

PASSWORD_ENV = "DELINEO_PACS_PASSWORD"
TOKEN_ENV = "DELINEO_PACS_TOKEN"
COLUMNS = ("Patient", "Patient ID", "Date", "Modality", "Description", "Images")
AUTH_KINDS = ("none", "basic", "token")


def client_for(server: PacsServer, secret: str = "", **kwargs: Any) -> PacsClient:
    """A client of *server*; the secret typed, else the environment's."""
    auth = None
    if server.auth_kind == "basic":
        auth = PacsAuth(user=server.user, password=secret or os.environ.get(PASSWORD_ENV))
    elif server.auth_kind == "token":
        auth = PacsAuth(token=secret or os.environ.get(TOKEN_ENV))
    return PacsClient(server.url, auth=auth, **kwargs)


class ServerForm(QWidget):
    """The server chooser and its connection fields (shared with Send to PACS)."""

    def __init__(self, settings: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.server_box = QComboBox()
        self.name_edit = QLineEdit()
        self.url_edit = QLineEdit()
        self.url_edit.setPlaceholderText("http://pacs.example.org:8042/dicom-web")
        self.auth_box = QComboBox()
        self.auth_box.addItems(AUTH_KINDS)
        self.user_edit = QLineEdit()
        self.secret_edit = QLineEdit()
        self.secret_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret_edit.setPlaceholderText(f"this session only (or ${PASSWORD_ENV} / "
                                            f"${TOKEN_ENV})")
        save = QPushButton("Save server")
        save.clicked.connect(self.save_server)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Server", self.server_box)
        form.addRow("Name", self.name_edit)
        form.addRow("DICOMweb URL", self.url_edit)
        row = QHBoxLayout()
        row.addWidget(self.auth_box)
        row.addWidget(QLabel("User"))
        row.addWidget(self.user_edit, 1)
        row.addWidget(save)
        form.addRow("Login", row)
        form.addRow("Password / token", self.secret_edit)
        self.server_box.currentIndexChanged.connect(self._server_chosen)
        self.reload()

    def reload(self) -> None:
        self.servers = self.settings.pacs_servers()
        self.server_box.blockSignals(True)
        self.server_box.clear()
        self.server_box.addItems([s.name for s in self.servers] or ["(new server)"])
        self.server_box.blockSignals(False)
        self._server_chosen()

    def _server_chosen(self) -> None:
        i = self.server_box.currentIndex()
        if 0 <= i < len(self.servers):
            s = self.servers[i]
            self.name_edit.setText(s.name)
            self.url_edit.setText(s.url)
            self.auth_box.setCurrentText(s.auth_kind)
            self.user_edit.setText(s.user)

    def server(self) -> PacsServer:
        return PacsServer(name=self.name_edit.text().strip() or "PACS",
                          url=self.url_edit.text().strip(),
                          auth_kind=self.auth_box.currentText(),
                          user=self.user_edit.text().strip())

    def save_server(self) -> None:
        """Keep the server in the settings (without its password or token)."""
        server = self.server()
        self.settings.save_pacs_server(server)
        self.reload()
        self.server_box.setCurrentText(server.name)

    def client(self, **kwargs: Any) -> PacsClient:
        return client_for(self.server(), self.secret_edit.text(), **kwargs)


class PacsBrowser(QDialog):
    """Search a PACS and open a series in the window.

    Parameters
    ----------
    settings : viewer.settings.Settings
        Holds the server list.
    runner : JobRunner
        Runs searches and retrievals.
    show_volume : callable
        ``show_volume(volume, path, name)`` shows a retrieved series (the io
        controller's ``show_image``).
    error : callable
        ``error(title, message)`` reports a failure (the window's dialogs).
    """

    def __init__(self, settings: Any, runner: JobRunner,
                 show_volume: Callable[..., None], error: Callable[[str, str], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open from PACS")
        self.setObjectName("pacs_browser")
        self.runner = runner
        self.show_volume = show_volume
        self.error = error
        self.rows: list[SeriesRow] = []
        self.job: Job | None = None
        self.folder: Path | None = None
        # Retrieved series stay while Delineo runs (the open image reads from them) and
        # are removed at a normal exit; after a crash they stay for the edit recovery.
        self.session_root = Path(tempfile.mkdtemp(prefix="delineo-pacs-"))
        atexit.register(shutil.rmtree, self.session_root, ignore_errors=True)
        self.servers = ServerForm(settings)
        self.patient_id = QLineEdit()
        self.patient_name = QLineEdit()
        self.dates = QLineEdit()
        self.dates.setPlaceholderText("YYYYMMDD-YYYYMMDD")
        self.modality = QLineEdit()
        self.modality.setPlaceholderText("MR, CT…")
        self.description = QLineEdit()
        search = QGridLayout()
        for n, (text, edit) in enumerate((("Patient ID", self.patient_id),
                                          ("Patient name", self.patient_name),
                                          ("Study dates", self.dates),
                                          ("Modality", self.modality),
                                          ("Description", self.description))):
            search.addWidget(QLabel(text), n // 3, 2 * (n % 3))
            search.addWidget(edit, n // 3, 2 * (n % 3) + 1)
        self.search_button = QPushButton("Search")
        self.search_button.clicked.connect(self.search)
        search.addWidget(self.search_button, 1, 5)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(COLUMNS.index("Description"),
                                    header.ResizeMode.Stretch)
        self.table.doubleClicked.connect(lambda _i: self.open_selected())
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.status = QLabel("")
        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(self.open_selected)
        self.cancel_button = QPushButton("Cancel retrieval")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.servers)
        layout.addLayout(search)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(860, 560)

    # -- search ------------------------------------------------------------------------------
    def search(self) -> Job | None:
        """Find the series matching the fields, in a worker; fills the table."""
        try:
            client = self.servers.client(retries=0)
            dates = parse_date_range(self.dates.text()) if self.dates.text().strip() else None
        except Exception as exc:  # a bad URL or date: the one-line message
            self._failed("Could not search the PACS", exc)
            return None
        filters = dict(patient_id=self.patient_id.text().strip() or None,
                       patient_name=self.patient_name.text().strip() or None,
                       study_date=dates, modality=self.modality.text().strip() or None,
                       description=self.description.text().strip() or None)

        def work(progress: Callable[[float, str], None], cancel: Any) -> list[SeriesRow]:
            progress(0.0, "searching the PACS")
            return client.find_series(**filters)

        self.status.setText("Searching…")
        self.search_button.setEnabled(False)
        self.job = self.runner.submit(
            work, "PACS search", on_result=self._show_rows,
            on_error=lambda exc: self._failed("Could not search the PACS", exc))
        return self.job

    def _show_rows(self, rows: list[SeriesRow]) -> None:
        self.search_button.setEnabled(True)
        self.rows = rows
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            patient = row.patient_name.replace("^", ", ").strip(", ")
            values = (patient, row.patient_id, row.study_date, row.modality, row.description,
                      "" if row.instances is None else str(row.instances))
            for c, value in enumerate(values):
                self.table.setItem(r, c, QTableWidgetItem(value))
        for column in range(len(COLUMNS)):
            if COLUMNS[column] != "Description":
                self.table.resizeColumnToContents(column)
        if rows:
            self.table.selectRow(0)
        self.status.setText(f"{len(rows)} series found")

    # -- retrieve ----------------------------------------------------------------------------
    def open_selected(self) -> Job | None:
        """Retrieve the selected series in a worker, then show it in the window."""
        selected = self.table.selectionModel().selectedRows()
        if not selected:
            self.status.setText("Choose a series first.")
            return None
        row = self.rows[selected[0].row()]
        try:
            client = self.servers.client()
        except Exception as exc:
            self._failed("Could not open from the PACS", exc)
            return None
        folder = Path(tempfile.mkdtemp(prefix="series-", dir=self.session_root))

        def work(progress: Callable[[float, str], None], cancel: Any) -> Any:
            from engine.io.dicom import read_dicom

            client.retrieve_series(row.series_uid, folder, study_uid=row.study_uid,
                                   progress=progress, cancel=cancel)
            cancel.check()
            return read_dicom(folder, series=row.series_uid)

        def done(volume: Any) -> None:
            self._idle()
            self.folder = folder
            name = row.description or row.series_uid
            self.show_volume(volume, path=folder, name=name)
            self.status.setText(f"Opened {name}")

        def cancelled() -> None:
            self._idle()
            shutil.rmtree(folder, ignore_errors=True)
            self.status.setText("Retrieval cancelled")

        def failed(exc: BaseException) -> None:
            shutil.rmtree(folder, ignore_errors=True)
            self._failed("Could not open from the PACS", exc)

        self.open_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.job = self.runner.submit(
            work, "PACS retrieval", on_result=done, on_error=failed, on_cancelled=cancelled,
            on_progress=lambda f, m: (self.progress.setValue(int(100 * f)),
                                      self.status.setText(m)))
        return self.job

    def cancel(self) -> None:
        """Stop the running retrieval (what it wrote is removed)."""
        if self.job is not None and not self.job.done:
            self.job.cancel()

    def _idle(self) -> None:
        self.open_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.search_button.setEnabled(True)

    def _failed(self, title: str, exc: BaseException) -> None:
        self._idle()
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.status.setText(message)
        self.error(title, message)
