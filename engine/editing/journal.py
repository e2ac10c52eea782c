"""Crash-safe journal of label edits, so no completed stroke is ever lost.

While the user edits a label map, every completed step (a stroke, a fill, an
undo, an algorithm result) is appended to a journal file in the user data
folder and flushed to disk (``fsync``). Saving the labels resets the journal
to the saved file; a clean close deletes it. After a crash or a kill, the
next start finds the journal of that image and can replay it onto the base
labels (the file that was loaded or saved last, or an empty mask).

File layout: a text line ``DELINEO-JOURNAL 1``, a JSON header line, then
records ``b"STEP" | u32 length | u32 crc32 | payload``. A record cut short by
the crash fails its length or CRC check and is ignored, with everything
before it intact.

Example
-------
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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .kernels import Diff

__all__ = ["EditJournal", "JournalInfo", "default_journal_dir", "image_key", "read_journal",
           "replay"]

log = logging.getLogger(__name__)

_MAGIC_LINE = b"DELINEO-JOURNAL 1\n"
_RECORD = struct.Struct("<4sII")
_TAG = b"STEP"


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
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class JournalInfo:
    """What a recovery prompt shows about a journal found on disk."""

    path: Path
    header: dict[str, Any]
    n_steps: int
    modified: float

    @property
    def image_path(self) -> str | None:
        return self.header.get("image_path")

    @property
    def base_labels(self) -> str | None:
        return self.header.get("base_labels")

    @property
    def base_labels_unchanged(self) -> bool:
        """True when the base label file still has the content it had when journalled."""
        return _file_digest(self.base_labels) == self.header.get("base_labels_sha256")


class EditJournal:
    """An append-only journal for the edits of one label map of one image."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.header = header
        self._fh = path.open("ab")

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
        """Start a fresh journal (replacing any old one for the same image)."""
        folder = Path(folder) if folder is not None else default_journal_dir()
        folder.mkdir(parents=True, exist_ok=True)
        key = image_key(image_path, shape, affine)
        header = {
            "image_path": str(Path(image_path).resolve()) if image_path else None,
            "shape": [int(s) for s in shape],
            "affine": np.asarray(affine, float).tolist(),
            "dtype": np.dtype(dtype).str,
            "base_labels": str(Path(base_labels).resolve()) if base_labels else None,
            "base_labels_sha256": _file_digest(str(base_labels)) if base_labels else None,
            "created": time.time(),
            "pid": os.getpid(),
        }
        path = folder / f"{key}.journal"
        tmp = path.with_suffix(".journal.tmp")
        with tmp.open("wb") as fh:
            fh.write(_MAGIC_LINE + json.dumps(header).encode() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return cls(path, header)

    @staticmethod
    def find(
        folder: str | os.PathLike[str] | None,
        *,
        image_path: str | os.PathLike[str] | None,
        shape: Sequence[int],
        affine: np.ndarray,
    ) -> JournalInfo | None:
        """The journal left for this image with at least one step, if any."""
        folder = Path(folder) if folder is not None else default_journal_dir()
        path = folder / f"{image_key(image_path, shape, affine)}.journal"
        if not path.is_file():
            return None
        try:
            header, steps = _read(path)
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable journal %s (%s)", path.name, exc)
            return None
        if not steps:
            return None
        return JournalInfo(path, header, len(steps), path.stat().st_mtime)

    # -- writing ------------------------------------------------------------------
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

    def reset(self, *, base_labels: str | os.PathLike[str] | None) -> None:
        """After a save: the saved file becomes the base, earlier steps are dropped."""
        self._fh.close()
        fresh = EditJournal.create(
            self.path.parent, image_path=self.header["image_path"], shape=self.header["shape"],
            affine=np.asarray(self.header["affine"]), dtype=np.dtype(self.header["dtype"]),
            base_labels=base_labels,
        )
        self.path, self.header, self._fh = fresh.path, fresh.header, fresh._fh

    def close(self, *, discard: bool = True) -> None:
        """Close; a clean close (``discard=True``) deletes the journal."""
        if not self._fh.closed:
            self._fh.close()
        if discard:
            self.path.unlink(missing_ok=True)

    # -- recovery -------------------------------------------------------------------
    def replay(self, labels: np.ndarray) -> int:
        """Apply every complete step of this journal to *labels*; returns the count."""
        self._fh.flush()
        return replay(self.path, labels)


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
