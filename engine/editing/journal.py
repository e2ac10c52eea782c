"""Crash-safe journal of label edits, so no completed stroke is ever lost.

While the user edits a label map, every completed step (a stroke, a fill, an
undo, an algorithm result) is appended to a journal file in the user data
folder and flushed to disk (``fsync``). Saving the labels resets the journal
to the saved file; a clean close deletes it. After a crash or a kill, the
next start finds the journal of that image and can replay it onto the base
labels (the file that was loaded or saved last, or an empty mask).

**One journal per process.** The file is named
``<image key>-<pid>-<random token>.journal``: two Delineos editing the same
image each keep their own journal, and neither ever replaces the other's.
The owner holds an exclusive lock on its journal (``flock``) for as long as
it is open; the lock goes with the process, whatever way it ends. A journal
is *live* while it is locked (or, where locks are not available, while its
process -- recorded in the header -- runs); recovery offers only journals
that are not live (:meth:`EditJournal.find`, :func:`find_journals`).

File layout: a text line ``DELINEO-JOURNAL 1``, a JSON header line, then
records ``b"STEP" | u32 length | u32 crc32 | payload``. A record cut short by
the crash fails its length or CRC check and is ignored, with everything
before it intact.

Examples
--------
>>> import numpy as np, tempfile
>>> from engine.editing.kernels import paint
>>> labels = np.zeros((8, 8, 8), np.uint8)
>>> j = EditJournal.create(tempfile.mkdtemp(), image_path="t1.nii", shape=labels.shape,
...                        affine=np.eye(4), dtype=labels.dtype)
>>> j.append(paint(labels, (4, 4, 4), radius_mm=2, value=1))
>>> restored = np.zeros_like(labels); j.replay(restored)
1
>>> bool((restored == labels).all())
True
>>> j.close()
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..io.atomic import file_sha256
from .kernels import Diff, replace_all

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: liveness from the recorded process id
    fcntl = None  # type: ignore[assignment]

__all__ = ["EditJournal", "JournalInfo", "default_journal_dir", "find_journals", "image_key",
           "journal_is_live", "process_alive", "read_journal", "replay"]

log = logging.getLogger(__name__)

_MAGIC_LINE = b"DELINEO-JOURNAL 1\n"
_RECORD = struct.Struct("<4sII")
_TAG = b"STEP"
_SUFFIX = ".journal"
#: Journals this process has open (consulted where file locks are not available).
_OPEN_HERE: set[Path] = set()


def default_journal_dir() -> Path:
    """``<user data dir>/journal`` (``DELINEO_DATA_DIR`` overrides the data dir)."""
    override = os.environ.get("DELINEO_DATA_DIR")
    if override:
        return Path(override) / "journal"
    from platformdirs import user_data_dir

    return Path(user_data_dir("delineo")) / "journal"


def image_key(image_path: str | os.PathLike[str] | None, shape: Sequence[int],
              affine: np.ndarray) -> str:
    """Stable identifier of an image: resolved path, grid shape and affine."""
    path = str(Path(image_path).resolve()) if image_path else "<memory>"
    text = json.dumps([path, [int(s) for s in shape], np.round(affine, 4).tolist()])
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def _file_digest(path: str | None) -> str | None:
    if not path or not Path(path).is_file():
        return None
    return file_sha256(path)


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


def journal_is_live(path: str | os.PathLike[str], header: dict[str, Any] | None = None) -> bool:
    """True when the journal at *path* belongs to a running Delineo (this one included).

    A journal is live while its owner holds the lock on it. Where locks are
    unavailable (or for journals written before locking), the process id and
    host name in the *header* decide.
    """
    path = Path(path)
    if fcntl is None and path.resolve() in _OPEN_HERE:
        return True
    header = header or {}
    if header.get("host") not in (None, socket.gethostname()):
        return True  # another machine's process: never ours to judge (or to delete)
    if fcntl is not None and header.get("token"):
        try:
            with path.open("rb") as fh:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                return False
        except FileNotFoundError:
            return False
        except OSError as exc:  # e.g. a file system without locks: fall back to the pid
            log.debug("cannot test the lock of %s (%s)", path.name, exc)
    pid = int(header.get("pid") or 0)
    return pid != os.getpid() and process_alive(pid)


def _lock(fh: IO[bytes]) -> None:
    if fcntl is not None:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:  # no locks on this file system: the pid still tells
            log.debug("cannot lock %s (%s)", fh.name, exc)


def _start_file(path: Path, header: dict[str, Any]) -> IO[bytes]:
    """Write a journal with no step to a temporary file, lock it, then move it to *path*.

    Returns the locked file, open for appending. On failure nothing is left
    behind and *path* is untouched.
    """
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    fh = os.fdopen(fd, "wb")
    try:
        _lock(fh)
        fh.write(_MAGIC_LINE + json.dumps(header).encode() + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        fh.close()
        tmp.unlink(missing_ok=True)
        raise
    return fh


@dataclass
class JournalInfo:
    """What a recovery prompt shows about a journal found on disk."""

    path: Path
    header: dict[str, Any]
    n_steps: int
    modified: float
    #: The journal belongs to a running Delineo (see :func:`journal_is_live`).
    live: bool = False

    @property
    def image_path(self) -> str | None:
        return self.header.get("image_path")

    @property
    def base_labels(self) -> str | None:
        return self.header.get("base_labels")

    @property
    def pid(self) -> int:
        """The process that wrote the journal."""
        return int(self.header.get("pid") or 0)

    @property
    def base_labels_unchanged(self) -> bool:
        """True when the base label file still has the content it had when journalled."""
        return _file_digest(self.base_labels) == self.header.get("base_labels_sha256")


def find_journals(
    folder: str | os.PathLike[str] | None,
    *,
    image_path: str | os.PathLike[str] | None,
    shape: Sequence[int],
    affine: np.ndarray,
) -> list[JournalInfo]:
    """Every readable journal of this image, live or not, with or without steps; newest first."""
    folder = Path(folder) if folder is not None else default_journal_dir()
    key = image_key(image_path, shape, affine)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(f"{key}*{_SUFFIX}"):
        try:
            header, steps = _read(path)
            modified = path.stat().st_mtime
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable journal %s (%s)", path.name, exc)
            continue
        found.append(JournalInfo(path, header, len(steps), modified,
                                 live=journal_is_live(path, header)))
    found.sort(key=lambda info: info.modified, reverse=True)
    return found


class EditJournal:
    """The append-only journal of one process's edits of one label map of one image.

    Made by :meth:`create`; the file stays locked by this process until
    :meth:`close`.
    """

    def __init__(self, path: Path, header: dict[str, Any], fh: IO[bytes]) -> None:
        self.path = path
        self.header = header
        self._fh = fh
        _OPEN_HERE.add(path.resolve())

    # -- creation / discovery ----------------------------------------------------
    @classmethod
    def create(
        cls,
        folder: str | os.PathLike[str] | None,
        *,
        image_path: str | os.PathLike[str] | None,
        shape: Sequence[int],
        affine: np.ndarray,
        dtype: Any,
        base_labels: str | os.PathLike[str] | None = None,
    ) -> EditJournal:
        """Start a fresh journal of this process (never replacing another journal)."""
        folder = Path(folder) if folder is not None else default_journal_dir()
        folder.mkdir(parents=True, exist_ok=True)
        key = image_key(image_path, shape, affine)
        header = {
            "image_path": str(Path(image_path).resolve()) if image_path else None,
            "shape": [int(s) for s in shape],
            "affine": np.asarray(affine, float).tolist(),
            "dtype": np.dtype(dtype).str,
            "created": time.time(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        while True:  # a name no journal has: this process's id and a random token
            token = secrets.token_hex(6)
            path = folder / f"{key}-{os.getpid()}-{token}{_SUFFIX}"
            if not path.exists() and not path.with_name(path.name + ".tmp").exists():
                break
        header["token"] = token
        header.update(_base_entries(base_labels))
        return cls(path, header, _start_file(path, header))

    @staticmethod
    def find(
        folder: str | os.PathLike[str] | None,
        *,
        image_path: str | os.PathLike[str] | None,
        shape: Sequence[int],
        affine: np.ndarray,
    ) -> JournalInfo | None:
        """The newest journal of this image left by a Delineo no longer running, with steps."""
        for info in find_journals(folder, image_path=image_path, shape=shape, affine=affine):
            if info.n_steps and not info.live:
                return info
        return None

    # -- writing ------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._fh.closed

    def append(self, diff: Diff | None) -> None:
        """Append one completed step and flush it to disk."""
        if diff is None:
            return
        meta = json.dumps({
            "box": [list(b) for b in diff.box],
            "mask_shape": list(diff.mask.shape),
            "dtype": diff.old.dtype.str,
            "n": int(diff.old.size),
        }).encode()
        packed = np.packbits(diff.mask, axis=None).tobytes()
        payload = b"".join([
            struct.pack("<I", len(meta)), meta,
            struct.pack("<I", len(packed)), packed,
            np.ascontiguousarray(diff.old).tobytes(),
            np.ascontiguousarray(diff.new.astype(diff.old.dtype)).tobytes(),
        ])
        self._fh.write(_RECORD.pack(_TAG, len(payload), zlib.crc32(payload)) + payload)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append_snapshot(self, labels: np.ndarray) -> None:
        """Append the whole of *labels* as one step from an empty mask.

        For a journal whose base is an empty mask (``base_labels=None``) but
        whose mask is not empty: replaying the journal restores *labels*, then
        the steps appended after it.
        """
        self.append(replace_all(np.zeros_like(labels), labels))

    def reset(self, *, base_labels: str | os.PathLike[str] | None) -> None:
        """After a save: the saved file becomes the base, earlier steps are dropped.

        The fresh journal is written beside the old one and replaces it only
        when complete; if that fails (``OSError``), the journal is left as it
        was -- with the old base and all its steps -- and still open.
        """
        header = {**self.header, "created": time.time(), **_base_entries(base_labels)}
        fresh = _start_file(self.path, header)
        old, self._fh, self.header = self._fh, fresh, header
        old.close()

    def close(self, *, discard: bool = True) -> None:
        """Close (releasing the lock); a clean close (``discard=True``) deletes the journal."""
        _OPEN_HERE.discard(self.path.resolve())
        if not self._fh.closed:
            self._fh.close()
        if discard:
            self.path.unlink(missing_ok=True)

    # -- recovery -------------------------------------------------------------------
    def replay(self, labels: np.ndarray) -> int:
        """Apply every complete step of this journal to *labels*; returns the count."""
        if not self._fh.closed:
            self._fh.flush()
        return replay(self.path, labels)


def _base_entries(base_labels: str | os.PathLike[str] | None) -> dict[str, str | None]:
    return {
        "base_labels": str(Path(base_labels).resolve()) if base_labels else None,
        "base_labels_sha256": _file_digest(str(base_labels)) if base_labels else None,
    }


def _read(path: Path) -> tuple[dict[str, Any], list[Diff]]:
    data = path.read_bytes()
    if not data.startswith(_MAGIC_LINE):
        raise ValueError("not a Delineo journal")
    end = data.find(b"\n", len(_MAGIC_LINE))
    if end < 0:
        raise ValueError("journal header is incomplete")
    header = json.loads(data[len(_MAGIC_LINE):end])
    pos = end + 1
    diffs: list[Diff] = []
    while pos + _RECORD.size <= len(data):
        tag, length, crc = _RECORD.unpack_from(data, pos)
        start = pos + _RECORD.size
        payload = data[start:start + length]
        if tag != _TAG or len(payload) != length or zlib.crc32(payload) != crc:
            log.warning("journal %s: ignoring an incomplete last record", path.name)
            break
        diffs.append(_decode(payload))
        pos = start + length
    return header, diffs


def _decode(payload: bytes) -> Diff:
    (n_meta,) = struct.unpack_from("<I", payload, 0)
    meta = json.loads(payload[4:4 + n_meta])
    pos = 4 + n_meta
    (n_packed,) = struct.unpack_from("<I", payload, pos)
    pos += 4
    shape = tuple(meta["mask_shape"])
    bits = np.frombuffer(payload, np.uint8, n_packed, pos)
    mask = np.unpackbits(bits, count=int(np.prod(shape))).astype(bool).reshape(shape)
    pos += n_packed
    dtype = np.dtype(meta["dtype"])
    n = int(meta["n"])
    old = np.frombuffer(payload, dtype, n, pos).copy()
    new = np.frombuffer(payload, dtype, n, pos + n * dtype.itemsize).copy()
    box = tuple(tuple(int(v) for v in b) for b in meta["box"])
    return Diff(box, mask, old, new)  # type: ignore[arg-type]


def read_journal(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[Diff]]:
    """The header and the complete steps of the journal at *path*, in order.

    A record cut short by a crash is left out (with everything after it).
    Recovery reads a journal into memory first, so that the live session may
    start its own journal for the same image before the steps are applied.
    """
    return _read(Path(path))


def replay(path: str | os.PathLike[str], labels: np.ndarray) -> int:
    """Apply the complete steps of the journal at *path* to *labels*."""
    header, diffs = _read(Path(path))
    if list(labels.shape) != list(header["shape"]):
        raise ValueError(f"journal is for shape {header['shape']}, not {list(labels.shape)}")
    for diff in diffs:
        diff.apply(labels)
    return len(diffs)
