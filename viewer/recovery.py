"""Crash recovery: offer the unsaved edits journalled before a crash or a kill.

While the user edits, the editing session (:mod:`engine.editing.session`)
appends every completed step to this process's edit journal
(:mod:`engine.editing.journal`, in the user data folder; one journal per
running Delineo, locked by it) and deletes it on a clean close. When an image
is opened, :class:`RecoveryController` looks for the journals of that image
left with completed steps by a Delineo that is no longer running -- a journal
of one still running is never offered, renamed or deleted -- and asks the
user about the newest (``Dialogs.ask_recover``):

* **Recover** -- the steps are read into memory; once the files being opened
  with the image (``--labels``, ``--ground-truth``) are in, the mask is
  rebuilt -- the journal's base label file, or an empty mask, with every
  completed step applied -- and becomes the edited mask as one undoable step
  ("Recover N edits"), journalled anew (a second crash loses nothing either);
* **Discard** -- the journal is deleted.

A journal whose base label file changed or vanished since cannot be replayed
faithfully: the user is told, and the journal is set aside (``.stale``).
Journals of dead processes with no completed step are deleted quietly.

The controller also tells the user, in a dialog, when the session's own
journal cannot be written (the session's ``journal_problem`` event; the
status bar says it too): editing goes on, and the session tries again at the
next step.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from engine import io as engine_io
from engine.editing.journal import JournalInfo, find_journals, read_journal
from engine.editing.kernels import Diff

from .edit_session import EditSession
from .io_controller import EDITED_NAME, IOController, describe_error
from .layers import ImageLayer
from .subscriptions import subscribe
from .workers import JobRunner

__all__ = ["RecoveryController"]

log = logging.getLogger(__name__)

JOURNAL_OFF_TITLE = "The crash journal is not being written"


class RecoveryController(QObject):
    """Looks for an edit journal whenever an image is opened, and replays it if asked."""

    #: The number of journalled steps restored.
    recovered = Signal(int)

    def __init__(self, session: EditSession, io: IOController, runner: JobRunner,
                 dialogs: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.io = io
        self.runner = runner
        self.dialogs = dialogs
        self._pending: tuple[ImageLayer, Path, dict[str, Any], list[Diff]] | None = None
        io.image_loaded.connect(lambda: QTimer.singleShot(0, self.check))
        runner.busy.connect(self._busy)
        subscribe(self, session.journal_problem, self._journal_problem)

    # -- finding and asking -----------------------------------------------------------
    def recoverable(self) -> list[JournalInfo]:
        """Journals of the current image left with steps by Delineos no longer running."""
        image = self.session.layers.image
        if image is None:
            return []
        found = find_journals(self.session.journal_dir, image_path=image.path,
                              shape=image.volume.shape, affine=image.volume.affine)
        own = self.session.journal
        usable = []
        for info in found:
            if info.live or (own is not None and Path(own.path) == info.path):
                log.info("journal %s belongs to running process %d; not offered",
                         info.path.name, info.pid)
            elif info.n_steps == 0:
                info.path.unlink(missing_ok=True)  # a dead journal with nothing in it
            else:
                usable.append(info)
        return usable

    def check(self) -> bool:
        """Offer the newest dead journal of the current image; True when recovery started."""
        image = self.session.layers.image
        if image is None or self.session.labels is None:
            return False
        journals = self.recoverable()
        if not journals:
            return False
        info = journals[0]
        if info.base_labels and not info.base_labels_unchanged:
            stale = info.path.with_suffix(".stale")
            os.replace(info.path, stale)
            self.dialogs.error(
                "Cannot recover the unsaved edits",
                f"The unsaved edits of {image.name} were made on {info.base_labels}, which "
                f"has changed or is gone since, so they cannot be replayed. The journal was "
                f"set aside as {stale}.")
            return False
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.modified))
        if not self.dialogs.ask_recover(image.name, info.n_steps, when):
            info.path.unlink(missing_ok=True)
            self.session.message.emit("Discarded the unsaved edits of the last session")
            return False
        try:
            header, diffs = read_journal(info.path)
        except (OSError, ValueError) as exc:
            self.dialogs.error("Cannot recover the unsaved edits", describe_error(exc, info.path))
            return False
        self._pending = (image, info.path, header, diffs)
        self._restore_when_idle()
        return True

    def _journal_problem(self, text: str) -> None:
        """The session's journal failed (*text*) or works again (empty)."""
        if text:  # after the edit that met the failure has finished
            QTimer.singleShot(0, lambda: self.dialogs.error(JOURNAL_OFF_TITLE, text))

    # -- restoring ---------------------------------------------------------------------
    def _busy(self, busy: bool, _description: str) -> None:
        if not busy and self._pending is not None:
            # Emitted before the finished job's result is delivered: look again after it.
            QTimer.singleShot(0, self._restore_when_idle)

    def _restore_when_idle(self) -> None:
        """Files opened with the image (``--labels``) must be in before the mask is rebuilt."""
        if self._pending is None or self.runner.running:
            return
        image, path, header, diffs = self._pending
        self._pending = None
        if self.session.layers.image is not image:
            return  # another image meanwhile; its journal stays on disk
        base = header.get("base_labels")
        if not base:
            self._finish(image, path, header, diffs, None, None)
            return
        reference = image.volume

        def work(progress: Callable[[float, str], None], cancel: Any) -> np.ndarray:
            progress(0.0, f"reading {Path(base).name}")
            return engine_io.load_labels(base, reference=reference, resample=True).array

        def failed(exc: BaseException) -> None:
            self.dialogs.error("Cannot recover the unsaved edits", describe_error(exc, base))

        self.runner.submit(
            work, f"Recovering the edits of {image.name}",
            on_result=lambda array: self._finish(image, path, header, diffs, array, base),
            on_error=failed)

    def _finish(self, image: ImageLayer, path: Path, header: dict[str, Any], diffs: list[Diff],
                base_array: np.ndarray | None, base_path: str | None) -> None:
        session = self.session
        labels = session.labels
        layer = session.layers.edited
        if session.layers.image is not image or labels is None or layer is None:
            return
        dtype = np.dtype(header.get("dtype") or labels.dtype)
        if base_array is None:
            restored = np.zeros(labels.shape, dtype)
        else:
            restored = np.asarray(base_array).astype(dtype, copy=True)
        for diff in diffs:
            diff.apply(restored)
        unchanged = np.array_equal(restored, labels)
        try:
            session.apply_labels(restored, f"Recover {len(diffs)} edits")
        except ValueError as exc:
            self.dialogs.error("Cannot recover the unsaved edits", str(exc))
            return
        if unchanged or session.journal is not None:
            path.unlink(missing_ok=True)  # the edits are in this session's own journal now
        else:
            log.warning("journal %s kept: this session has no journal of its own", path.name)
        if base_path and layer.path is None:
            layer.path = Path(base_path)  # Save writes where the lost session would have
            layer.name = f"{EDITED_NAME}: {Path(base_path).name}"
            session.layers.layers_changed.emit()
        layer.modified = True
        session.changed.emit()
        session.message.emit(f"Recovered {len(diffs)} unsaved edit steps of {image.name}")
        self.recovered.emit(len(diffs))
