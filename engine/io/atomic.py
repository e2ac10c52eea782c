"""Atomic file writes: a temporary file in the target folder, flushed, then renamed.

A reader of the target path sees either the old file or the complete new one,
never a partial write; a crash mid-write leaves at most a hidden temporary
file, which is removed when the write fails normally.

Permissions are those of any other program's output: a new file gets
``0o666`` minus the process umask (``0o644`` under the usual umask 022), and
a file that is replaced keeps its permission bits. (``tempfile.mkstemp``
would make every output private, ``0o600``, whatever the umask.)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from ..core.errors import WriteError

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_sha256",
    "full_suffix",
    "missing_folders",
    "owned_folder",
]

#: Tries at a free temporary name before giving up (names carry 64 random bits).
_NAME_TRIES = 100


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


def _create_temporary(folder: Path, target: Path) -> Path:
    """Create an empty, uniquely named hidden file beside *target*; return its path.

    ``os.open`` with mode ``0o666`` lets the kernel apply the umask, as for
    any new file (``tempfile.mkstemp`` would force ``0o600``).
    """
    suffix = full_suffix(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_NAME_TRIES):
        tmp = folder / f".{target.name}.{secrets.token_hex(8)}.tmp{suffix}"
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise WriteError("could not create a temporary file beside the output", path=target)


def _existing_mode(target: Path) -> int | None:
    """Permission bits of *target* if it is an existing regular file, else ``None``."""
    try:
        st = target.stat()
    except OSError:
        return None
    return stat.S_IMODE(st.st_mode) & 0o777 if stat.S_ISREG(st.st_mode) else None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside *path*; on success it replaces *path*.

    The temporary name keeps the full suffix (``.nii.gz``) so writers that
    choose their encoding from the extension behave as for the final name.

    Examples
    --------
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
    tmp = _create_temporary(folder, target)
    try:
        yield tmp
        _fsync_file(tmp)
        mode = _existing_mode(target)
        if mode is not None:  # replacing a file keeps who may read it, as writing in place would
            os.chmod(tmp, mode)
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


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> None:
    """Write *text* to *path* atomically (``\\n`` line ends on every platform)."""
    atomic_write_bytes(path, text.encode(encoding))


def missing_folders(path: str | Path) -> list[Path]:
    """*path* and those of its parents that do not exist yet, deepest first."""
    missing = []
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    return missing


@contextlib.contextmanager
def owned_folder(path: str | Path, *, keep_files: bool = False) -> Iterator[Path]:
    """Remove the folders the block created under *path* if the block fails.

    Only folders missing when the block started are touched: a folder the
    user already had is never deleted. With *keep_files* (``train``, whose
    checkpoint serves ``--resume``) a created folder is removed only if empty.
    """
    out = Path(path)
    created = missing_folders(out)
    try:
        yield out
    except BaseException:
        if keep_files:
            for folder in created:
                try:
                    folder.rmdir()
                except OSError:
                    break  # not empty (or already gone): keep it and its parents
        elif created and created[-1].is_dir():
            shutil.rmtree(created[-1], ignore_errors=True)
        raise


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (a large file is never held
    in memory at once)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
