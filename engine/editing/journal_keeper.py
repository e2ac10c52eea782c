"""Keeping an editing session's crash journal going, whatever the disk does.

:class:`JournalKeeper` is the part of the editing session
(:class:`engine.editing.session.EditingSession`) that writes the crash journal
(:mod:`engine.editing.journal`):

* it opens this process's journal at the first completed step -- on top of the
  label file the mask came from when that is the first step on it, otherwise
  starting with a snapshot of the whole mask;
* it appends every completed step, resets the journal to the saved file after
  a save (keeping the steps made while the file was being written) and
  deletes it on a clean close;
* **a failure never reaches the edit.** When the journal cannot be written
  (disk full, folder gone, a failed reset), the keeper at once starts a fresh
  journal holding the whole mask; if that fails too, it tells the user once
  (``problem(text)``; ``note(text)`` for the status bar), goes on without a
  journal, and tries again at every next step -- the journal that succeeds
  starts with the whole mask, so no step made meanwhile is missing from it.
  When it works again it says so (``problem("")``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .journal import EditJournal
from .kernels import Diff

__all__ = ["JournalKeeper", "JournalTarget"]

log = logging.getLogger(__name__)


@dataclass
class JournalTarget:
    """What a new journal is about: the mask, its image and the file it came from."""

    labels: np.ndarray
    affine: np.ndarray
    image_path: Path | None = None
    base_path: Path | None = None


class JournalKeeper:
    """The crash journal of one editing session.

    Parameters
    ----------
    folder : path or None
        Journal folder (None: :func:`engine.editing.journal.default_journal_dir`).
    target : callable
        Returns the :class:`JournalTarget` of the mask being edited, or None.
    note : callable
        ``note(text)``: a short message for the user.
    problem : callable
        ``problem(text)``: the journal stopped working (a sentence for the user),
        or works again (``""``).
    enabled : bool
        False: keep no journal at all.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str] | None,
        *,
        target: Callable[[], JournalTarget | None],
        note: Callable[[str], None],
        problem: Callable[[str], None],
        enabled: bool = True,
    ) -> None:
        self.folder = folder
        self.enabled = enabled
        self.journal: EditJournal | None = None
        self._target = target
        self._note = note
        self._problem = problem
        self._since_save_request: list[Diff] | None = None
        self._fresh_base = True  # no step yet on the mask as its file holds it
        self.failing = False  # the journal failed and the user was told
        self._superseded: list[Path] = []  # journals of this session left by a failure

    # -- the session's life ------------------------------------------------------------------
    def new_mask(self) -> None:
        """Another mask is edited: the journal of the previous one goes."""
        self._close(discard=True)
        self._since_save_request = None
        self._fresh_base = True

    def record(self, diff: Diff | None) -> None:
        """Journal one completed step; a failure is reported, never raised."""
        if diff is None:
            return
        if self._since_save_request is not None:
            self._since_save_request.append(diff)
        fresh, self._fresh_base = self._fresh_base, False
        if not self.enabled:
            return
        if self.journal is None:
            # The first step on a mask straight from its file goes on top of that file;
            # otherwise the journal starts from the whole mask, this step included.
            target = self._target()
            whole = not fresh or target is None or target.base_path is None
            self._open(whole=whole, first=diff)
            return
        try:
            self.journal.append(diff)
        except Exception as exc:  # never let the journal break an edit
            self._failed(exc)

    def begin_save(self) -> None:
        """A save took its snapshot of the mask (edits after it must survive the reset)."""
        self._since_save_request = []

    def saved(self, path: str | os.PathLike[str]) -> int | None:
        """The snapshot is in *path*: it becomes the journal's base.

        Returns the number of steps made while the file was being written (the
        file lacks them; the journal keeps them), or None without a save under way.
        """
        pending, self._since_save_request = self._since_save_request, None
        if pending is None:
            return None
        if self.journal is None:
            self._fresh_base = not pending  # the next journal may start on the saved file
            return len(pending)
        try:
            self.journal.reset(base_labels=path)
            for diff in pending:  # edits made while the file was being written
                self.journal.append(diff)
        except Exception as exc:
            self._failed(exc)
        return len(pending)

    def save_failed(self) -> None:
        self._since_save_request = None

    @property
    def saving_with_edits(self) -> bool:
        """A save is under way and steps were made since its snapshot."""
        return bool(self._since_save_request)

    def close(self, *, keep: bool = False) -> None:
        """End of the session: a clean close deletes the journal (*keep*: leave it)."""
        self._close(discard=not keep)

    # -- opening, failing, reporting ---------------------------------------------------------
    def _create(self, *, whole: bool, first: Diff | None) -> EditJournal | None:
        target = self._target()
        if target is None:
            return None
        labels = target.labels
        journal = EditJournal.create(
            self.folder, image_path=target.image_path, shape=labels.shape,
            affine=target.affine, dtype=labels.dtype,
            base_labels=None if whole else target.base_path)
        try:
            if whole and not _from_empty(first, labels):
                journal.append_snapshot(labels)
            else:  # on the file's mask; or a first step from an empty mask: the whole mask
                journal.append(first)
        except BaseException:
            _close_quietly(journal, discard=True)
            raise
        log.info("edit journal %s", journal.path)
        return journal

    def _open(self, *, whole: bool, first: Diff | None = None) -> None:
        try:
            self.journal = self._create(whole=whole, first=first)
        except Exception as exc:
            self._report(exc)
            return
        if self.journal is None:
            return
        self._drop_superseded()
        if self.failing:
            self.failing = False
            self._note("The crash journal works again")
            self._problem("")

    def _failed(self, exc: BaseException) -> None:
        """The open journal failed: replace it by one holding the whole mask, or report."""
        log.warning("the crash journal could not be written: %s", exc)
        if self.journal is not None:
            self._superseded.append(self.journal.path)  # deleted once a new one works
            _close_quietly(self.journal, discard=False)
            self.journal = None
        self._open(whole=True)

    def _report(self, exc: BaseException) -> None:
        """No journal for now: tell the user once (until the journal works again)."""
        if self.failing:
            log.debug("still no crash journal: %s", exc)
            return
        log.warning("no crash journal: %s", exc)
        self.failing = True
        self._note(f"Warning: the crash journal could not be written ({exc})")
        self._problem(
            f"The crash journal could not be written ({exc}). Editing goes on, but the "
            "edits since the last save may be lost if Delineo crashes. Delineo tries again "
            "at the next edit.")

    def _drop_superseded(self) -> None:
        for path in self._superseded:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not delete the old journal %s: %s", path.name, exc)
        self._superseded = []

    def _close(self, *, discard: bool) -> None:
        if self.journal is not None:
            _close_quietly(self.journal, discard=discard)
            self.journal = None
        if discard:
            self._drop_superseded()


def _close_quietly(journal: EditJournal, *, discard: bool) -> None:
    try:
        journal.close(discard=discard)
    except OSError as exc:
        log.warning("could not close the journal %s: %s", journal.path.name, exc)


def _from_empty(diff: Diff | None, labels: np.ndarray) -> bool:
    """*diff* made *labels* from an empty mask: it is the snapshot of the whole mask
    (every labelled voxel changed, from 0)."""
    return (diff is not None and not diff.old.any()
            and np.count_nonzero(labels) == diff.count)
