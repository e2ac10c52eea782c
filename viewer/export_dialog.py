"""Segmentation → Export…: the edited mask in the formats other tools and people read.

The dialog only chooses a format and a file; the writing is
:func:`engine.reports.export.export_labels` (the same as ``delineo-engine
export``), run in a worker of the window's :class:`~viewer.workers.JobRunner`.
Formats that reference a DICOM series are disabled, with a tooltip saying why,
when the open image was not read from DICOM.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from engine.core.volume import LabelMap, Volume
from engine.reports.export import ExportResult, export_labels

from .workers import Job, JobRunner

#: (label shown, engine format, with SR, default suffix)
CHOICES: list[tuple[str, str, bool, str]] = [
    ("DICOM SEG", "dicom-seg", False, ".dcm"),
    ("DICOM SEG + SR (lesion measurements)", "dicom-seg", True, ".dcm"),
    ("3D Slicer segmentation (.seg.nrrd)", "seg.nrrd", False, ".seg.nrrd"),
    ("NIfTI label map", "nifti", False, ".nii.gz"),
    ("Findings (JSON + CSV)", "findings", False, ".json"),
    ("Report (HTML)", "report", False, ".html"),
    ("Report (PDF)", "report", False, ".pdf"),
    ("Label names for ITK-SNAP (.txt)", "label-names", False, ".txt"),
    ("Label names for 3D Slicer (.ctbl)", "label-names", False, ".ctbl"),
]

NOT_DICOM = ("The open image was not read from a DICOM series: a DICOM SEG or SR must "
             "reference the series' instances. Open the DICOM folder (or from PACS) to use it.")


def from_dicom(image: Volume) -> bool:
    """Whether *image* keeps the DICOM provenance a SEG needs."""
    from engine.io.dicom.provenance import DicomProvenance

    header = getattr(image.source, "header", None)
    return isinstance(header, DicomProvenance) and bool(header.instances) \
        and not header.resampled


def sr_path_for(path: Path) -> Path:
    """Where the SR goes next to SEG *path*: ``NAME_sr.dcm``."""
    return path.with_name(path.name[: -len(".dcm")] + "_sr.dcm")


class ExportDialog(QDialog):
    """Choose a format and a file, then :meth:`export` writes it in a worker.

    Parameters
    ----------
    labels, image : LabelMap, Volume
        The edited mask (a snapshot is taken) and the open image.
    runner : JobRunner
        Runs the export.
    on_done, on_error : callable, optional
        Called in the GUI thread with the :class:`ExportResult` or the error.
    """

    def __init__(self, labels: LabelMap, image: Volume, runner: JobRunner, *,
                 start_dir: str = "", parent: QWidget | None = None,
                 on_done: Callable[[ExportResult], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export segmentation")
        self.setObjectName("export_dialog")
        self.labels = labels.with_array(labels.array.copy())
        self.image = image
        self.runner = runner
        self.on_done = on_done
        self.on_error = on_error
        self.job: Job | None = None
        self.result: ExportResult | None = None
        dicom = from_dicom(image)
        self.format_box = QComboBox()
        for i, (text, fmt, _sr, _suffix) in enumerate(CHOICES):
            self.format_box.addItem(text)
            if fmt.startswith("dicom") and not dicom:
                item = self.format_box.model().item(i)
                item.setEnabled(False)
                item.setToolTip(NOT_DICOM)
        self.format_box.setCurrentIndex(0 if dicom else 2)
        self.path_edit = QLineEdit(str(Path(start_dir or ".") / "segmentation"))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.addButton("Export",
                                                    QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.export)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Format", self.format_box)
        form.addRow("File", row)
        if not dicom:
            note = QLabel("DICOM SEG/SR: " + NOT_DICOM)
            note.setWordWrap(True)
            form.addRow(note)
        form.addRow(self.status)
        form.addRow(self.buttons)
        self.format_box.currentIndexChanged.connect(self._fix_suffix)
        self._fix_suffix()

    def choose(self, text: str) -> None:
        """Select the format shown as *text* (for tests and scripts)."""
        self.format_box.setCurrentIndex([c[0] for c in CHOICES].index(text))

    def output_path(self) -> Path:
        return Path(self.path_edit.text())

    def _fix_suffix(self) -> None:
        suffix = CHOICES[self.format_box.currentIndex()][3]
        path = self.output_path()
        stem = path.name
        for _t, _f, _s, known in CHOICES:
            if stem.lower().endswith(known):
                stem = stem[: -len(known)]
                break
        self.path_edit.setText(str(path.with_name(stem + suffix)))

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export to", str(self.output_path()))
        if path:
            self.path_edit.setText(path)

    def export(self) -> Job:
        """Write the chosen format in a worker; the dialog closes when it is written."""
        _text, fmt, with_sr, _suffix = CHOICES[self.format_box.currentIndex()]
        out = self.output_path()
        labels, image = self.labels, self.image
        sr = sr_path_for(out) if with_sr else None

        def work(progress: Callable[[float, str], None], cancel: Any) -> ExportResult:
            progress(0.0, f"writing {out.name}")
            return export_labels(labels, image, out, fmt, with_sr=sr)

        def done(result: ExportResult) -> None:
            self.result = result
            self.status.setText("Written: " + ", ".join(p.name for p in result.files))
            if self.on_done is not None:
                self.on_done(result)
            self.accept()

        def failed(exc: BaseException) -> None:
            self.status.setText(str(exc))
            self.export_button.setEnabled(True)
            if self.on_error is not None:
                self.on_error(exc)

        self.export_button.setEnabled(False)
        self.status.setText(f"Writing {out.name}…")
        self.job = self.runner.submit(work, f"export {out.name}", on_result=done,
                                      on_error=failed)
        return self.job


class SendToPacsDialog(QDialog):
    """Segmentation → Send to PACS…: the SEG (+ the SR when lesions are present), built in a
    temporary folder by :func:`export_labels` and stored with ``PacsClient.store``.

    The server fields are those of File → Open from PACS (no secret is kept).
    """

    def __init__(self, labels: LabelMap, image: Volume, runner: JobRunner, settings: Any, *,
                 parent: QWidget | None = None,
                 on_done: Callable[[list[str]], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        from .pacs_browser import ServerForm

        super().__init__(parent)
        self.setWindowTitle("Send to PACS")
        self.setObjectName("send_to_pacs")
        self.labels = labels.with_array(labels.array.copy())
        self.image = image
        self.runner = runner
        self.on_done = on_done
        self.on_error = on_error
        self.job: Job | None = None
        self.sent: list[str] = []
        self.servers = ServerForm(settings)
        self.status = QLabel("" if from_dicom(image) else NOT_DICOM)
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.send_button = self.buttons.addButton("Send", QDialogButtonBox.ButtonRole.AcceptRole)
        self.send_button.setEnabled(from_dicom(image))
        if not from_dicom(image):
            self.send_button.setToolTip(NOT_DICOM)
        self.buttons.accepted.connect(self.send)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow(self.servers)
        form.addRow(self.status)
        form.addRow(self.buttons)

    def send(self) -> Job:
        """Build and store the SEG (+ SR) in a worker; reports what was stored."""
        import shutil
        import tempfile

        from engine.lesions import LESION_VALUE

        client = self.servers.client()
        labels, image = self.labels, self.image
        with_sr = bool((labels.array == LESION_VALUE).any())

        def work(progress: Callable[[float, str], None], cancel: Any) -> list[str]:
            folder = Path(tempfile.mkdtemp(prefix="delineo-send-"))
            try:
                progress(0.1, "building the DICOM SEG" + (" and SR" if with_sr else ""))
                result = export_labels(labels, image, folder / "seg.dcm", "dicom-seg",
                                       with_sr=folder / "sr.dcm" if with_sr else None)
                cancel.check()
                progress(0.5, "storing on the PACS")
                stored = client.store(result.files)
                if stored.failed:
                    from engine.pacs.client import PacsResponseError

                    _uid, reason = stored.failed[0]
                    raise PacsResponseError(f"the PACS refused {len(stored.failed)} object(s): "
                                       f"{reason}")
                progress(1.0, "stored")
                return ["DICOM SEG"] + (["DICOM SR"] if with_sr else [])
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        def done(sent: list[str]) -> None:
            self.sent = sent
            self.status.setText("Stored: " + " and ".join(sent))
            self.send_button.setEnabled(True)
            if self.on_done is not None:
                self.on_done(sent)

        def failed(exc: BaseException) -> None:
            self.status.setText(str(exc).splitlines()[0] if str(exc) else repr(exc))
            self.send_button.setEnabled(True)
            if self.on_error is not None:
                self.on_error(exc)

        self.send_button.setEnabled(False)
        self.status.setText("Sending…")
        self.job = self.runner.submit(
            work, "Send to PACS", on_result=done, on_error=failed,
            on_progress=lambda f, m: self.status.setText(m))
        return self.job
