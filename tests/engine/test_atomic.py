"""Atomic writes: content, leftovers and the permissions of what is written."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from engine.core.errors import WriteError
from engine.core.volume import LabelMap, Volume
from engine.io import load, save
from engine.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text

posix_only = pytest.mark.skipif(os.name != "posix", reason="umask and mode bits are POSIX")


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_all(folder: Path) -> dict[str, Path]:
    """One file by each writer: NIfTI image and label map, bytes, text, atomic_path."""
    image = Volume(np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.diag([2.0, 2, 3, 1]))
    labels = LabelMap((image.array > 10).astype(np.uint8), image.affine)
    paths = {
        "image": save(image, folder / "image.nii.gz"),
        "labels": save(labels, folder / "labels.nii"),
    }
    atomic_write_bytes(folder / "table.csv", b"a,b\n1,2\n")
    atomic_write_text(folder / "notes.md", "# Delineo\n\u00b5m\n")
    with atomic_path(folder / "figure.png") as tmp:
        tmp.write_bytes(b"\x89PNG\r\n\x1a\n")
    paths.update(table=folder / "table.csv", notes=folder / "notes.md",
                 figure=folder / "figure.png")
    return paths


@posix_only
@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
                         ids=["umask022", "umask077", "umask002"])
def test_new_files_follow_the_umask(tmp_path, mask, expected):
    # Before: every output was 0600 (tempfile.mkstemp), whatever the umask.
    with umask(mask):
        paths = _write_all(tmp_path)
    for name, path in paths.items():
        assert mode_of(path) == expected, (name, oct(mode_of(path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


@posix_only
def test_written_files_are_complete(tmp_path):
    with umask(0o022):
        paths = _write_all(tmp_path)
    assert load(paths["image"]).array.sum() == pytest.approx(sum(range(24)))
    assert int(np.asanyarray(nib.load(paths["labels"]).dataobj).sum()) == 13
    assert paths["table"].read_bytes() == b"a,b\n1,2\n"
    assert paths["notes"].read_text(encoding="utf-8") == "# Delineo\n\u00b5m\n"


@posix_only
@pytest.mark.parametrize("existing", [0o640, 0o604, 0o444], ids=["640", "604", "444"])
def test_a_replaced_file_keeps_its_permissions(tmp_path, existing):
    target = tmp_path / "result.nii.gz"
    image = Volume(np.ones((2, 2, 2), np.float32), np.eye(4))
    save(image, target)
    text = tmp_path / "report.txt"
    text.write_text("old\n")
    for path in (target, text):
        path.chmod(existing)
    with umask(0o077):
        save(Volume(np.zeros((2, 2, 2), np.float32), np.eye(4)), target)
        atomic_write_text(text, "new\n")
    assert mode_of(target) == existing and mode_of(text) == existing
    assert load(target).array.max() == 0 and text.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt", "result.nii.gz"]


def _failing_writer(target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("writer failed")


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="writer failed"):
        _failing_writer(tmp_path / "out.txt")
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_a_write_error(tmp_path):
    with pytest.raises(WriteError, match="does not exist"):
        atomic_write_text(tmp_path / "nope" / "a.txt", "x")


# -- folders a failed command made --------------------------------------------------------
def _run_in(folder, *, keep_files=False, files=(), error=None):
    """Make *folder* inside owned_folder, write *files*, then raise *error* (if any)."""
    from engine.io.atomic import owned_folder

    with owned_folder(folder, keep_files=keep_files) as out:
        out.mkdir(parents=True)
        for name in files:
            (out / name).write_text("written by the block")
        if error is not None:
            raise error


def test_owned_folder_removes_only_what_the_failed_block_created(tmp_path):
    from engine.io.atomic import missing_folders

    kept = tmp_path / "mine"
    kept.mkdir()
    (kept / "old.txt").write_text("the user's")
    target = kept / "a" / "b"
    assert missing_folders(target) == [target.absolute(), (kept / "a").absolute()]
    with pytest.raises(RuntimeError):
        _run_in(target, files=["half.txt"], error=RuntimeError("failed midway"))
    assert not (kept / "a").exists()
    assert (kept / "old.txt").read_text() == "the user's"
    _run_in(target, files=["done.txt"])  # success: everything stays
    assert (target / "done.txt").exists()


def test_owned_folder_keeps_a_created_folder_with_files_when_asked(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _run_in(tmp_path / "run", keep_files=True, files=["checkpoint.pt"],
                error=KeyboardInterrupt())
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    with pytest.raises(KeyboardInterrupt):
        _run_in(tmp_path / "empty", keep_files=True, error=KeyboardInterrupt())
    assert not (tmp_path / "empty").exists()
