"""Crash recovery: offer the unsaved edits journalled before a crash or a kill.

While the user edits, :class:`~viewer.edit_session.EditSession` appends every
completed step to the image's edit journal (:mod:`engine.editing.journal`, in the
user data folder) and deletes it on a clean close. When an image is opened,
:class:`RecoveryController` looks for a journal of that image left with
completed steps by a Delineo that is no longer running, and asks the user
(``Dialogs.ask_recover``):

* **Recover** -- the steps are read into memory; once the files being opened
  with the image (``--labels``, ``--ground-truth``) are in, the mask is
  rebuilt -- the journal's base label file, or an empty mask, with every
  completed step applied -- and becomes the edited mask as one undoable step
  ("Recover N edits"), journalled anew (a second crash loses nothing either);
* **Discard** -- the journal is deleted.

A journal whose base label file changed or vanished since cannot be replayed
faithfully: the user is told, and the journal is set aside (``.stale``).
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
from engine.editing.journal import EditJournal, read_journal
from engine.editing.kernels import Diff

from .edit_session import EditSession
from .io_controller import EDITED_NAME, IOController, describe_error
from .layers import ImageLayer
from .workers import JobRunner

__all__ = ["RecoveryController", "process_alive"]

log = logging.getLogger(__name__)


def process_alive(pid: int) -> bool:
    """True when process *pid* exists (POSIX; elsewhere always False)."""
    if os.name != "posix" or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


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

    # -- finding and asking -----------------------------------------------------------
    def check(self) -> bool:
        """Offer the journal of the current image, if any; True when recovery started."""
        layers = self.session.layers
        image = layers.image
        if image is None or self.session.labels is None:
            return False
        info = EditJournal.find(self.session.journal_dir, image_path=image.path,
                                shape=image.volume.shape, affine=image.volume.affine)
        if info is None:
            return False
        own = self.session.journal
        if own is not None and Path(own.path) == info.path:
            return False
        pid = int(info.header.get("pid") or 0)
        if pid != os.getpid() and process_alive(pid):
            log.info("journal %s belongs to running process %d; not offered", info.path, pid)
            return False
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
        try:
            session.apply_labels(restored, f"Recover {len(diffs)} edits")
        except ValueError as exc:
            self.dialogs.error("Cannot recover the unsaved edits", str(exc))
            return
        own = session.journal
        if own is None or Path(own.path) != path:
            path.unlink(missing_ok=True)  # nothing to redo: the mask already held those edits
        if base_path and layer.path is None:
            layer.path = Path(base_path)  # Save writes where the lost session would have
            layer.name = f"{EDITED_NAME}: {Path(base_path).name}"
            session.layers.layers_changed.emit()
        layer.modified = True
        session.changed.emit()
        session.message.emit(f"Recovered {len(diffs)} unsaved edit steps of {image.name}")
        self.recovered.emit(len(diffs))
