"""Atomic file writes: a temporary file in the target folder, flushed, then renamed.

A reader of the target path sees either the old file or the complete new one,
never a partial write; a crash mid-write leaves at most a hidden temporary
file, which is removed when the write fails normally.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ..core.errors import WriteError

__all__ = ["atomic_path", "atomic_write_bytes", "full_suffix"]


def full_suffix(path: str | Path) -> str:
    """The complete extension of *path*: ``.nii.gz`` for ``brain.nii.gz``."""
    name = Path(path).name.lower()
    for ext in (".nii.gz", ".tar.gz"):
        if name.endswith(ext):
            return ext
    return Path(path).suffix.lower()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    # Make the rename itself durable; not all platforms allow opening folders.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside *path*; on success it replaces *path*.

    The temporary name keeps the full suffix (``.nii.gz``) so writers that
    choose their encoding from the extension behave as for the final name.

    Example
    -------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text()
    'hello'
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise WriteError("the output folder does not exist", path=folder)
    suffix = full_suffix(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
        _fsync_dir(folder)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes | Callable[[], bytes]) -> None:
    """Write *data* (or the bytes a callable returns) to *path* atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data() if callable(data) else data)
