"""Finding DICOM series: walking folders, scanning headers, grouping and choosing."""

from __future__ import annotations

import logging
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.errors import (
    DicomSeriesError,
    InvalidImageError,
    ParameterError,
    ReadError,
    UnsupportedFormatError,
    unknown_name,
)
from ...core.jobs import CancelToken, check_cancel, report
from ..nifti import MAX_BYTES
from .geometry import _FrameRef, _Plan, _plan_geometry
from .headers import _looks_like_bare_dicom, _scan_file
from .pixels import _check_decoder
from .records import _Header

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None] | None


@dataclass(frozen=True)
class DicomSeriesInfo:
    """Summary of one DICOM series found by :func:`list_series`.

    Attributes
    ----------
    uid : str
        SeriesInstanceUID (``"(no SeriesInstanceUID)"`` when absent).
    description : str
        SeriesDescription, or ``""``.
    modality : str
        Modality tag (``"CT"``, ``"MR"``, ...), or ``"unknown"``.
    n_files : int
        Number of files in the series.
    n_slices : int
        Number of 2-D images, counting every frame of multi-frame files.
    rows, columns : int
        Image size of the first file (a series mixing sizes fails on reading).
    study_uid : str
        StudyInstanceUID, or ``""``.
    series_number : int or None
        SeriesNumber when present.
    files : tuple of Path
        The series' files, sorted by path.
    problem : str
        Why the series cannot be read, found from its headers alone (broken
        files, mixed image sizes, missing decoder, slices that do not form a
        volume); ``""`` when the headers raise no objection. Pixel data that
        fails to decode is only found on reading.
    """

    uid: str
    description: str
    modality: str
    n_files: int
    n_slices: int
    rows: int
    columns: int
    study_uid: str
    series_number: int | None
    files: tuple[Path, ...]
    problem: str = ""



# ---------------------------------------------------------------------------
# Scanning a folder
# ---------------------------------------------------------------------------
def _walk(folder: Path) -> Iterator[Path]:
    """Regular, non-hidden files under *folder* (recursive, sorted, no link loops)."""
    for root, dirs, files in os.walk(folder, followlinks=False, onerror=None):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            p = Path(root) / name
            try:
                if stat.S_ISREG(p.stat().st_mode):
                    yield p
            except OSError:
                continue


@dataclass
class _Scan:
    headers: list[_Header]
    n_files: int = 0
    n_not_dicom: int = 0
    n_unreadable: int = 0
    n_no_image: int = 0


def _scan(path: Path, progress: Progress, cancel: CancelToken | None) -> _Scan:
    """Headers of the DICOM image files at *path* (a folder or one file)."""
    if not path.exists():
        raise FileNotFoundError(2, "no such file or folder", str(path))
    if not path.is_dir():
        check_cancel(cancel)
        try:
            regular = stat.S_ISREG(path.stat().st_mode)
        except OSError as exc:
            raise ReadError(f"cannot read file ({exc.strerror or exc})", path=path) from None
        if not regular:
            raise UnsupportedFormatError("not a regular file", path=path)
        header = _scan_file(path)
        report(progress, 1.0, "Read DICOM header")
        return _Scan([header], n_files=1, n_no_image=0 if header.is_image else 1)
    report(progress, 0.0, "Looking for DICOM files")
    files = list(_walk(path))
    scan = _Scan([], n_files=len(files))
    every = max(1, len(files) // 100)
    for i, f in enumerate(files):
        check_cancel(cancel)
        if i % every == 0:
            report(progress, i / max(1, len(files)), f"Reading DICOM headers {i}/{len(files)}")
        try:
            with f.open("rb") as fh:
                head = fh.read(132)
        except OSError:
            scan.n_unreadable += 1
            continue
        if not (len(head) == 132 and head[128:132] == b"DICM") and not _looks_like_bare_dicom(
            head
        ):
            scan.n_not_dicom += 1
            continue
        try:
            header = _scan_file(f)
        except ReadError as exc:
            log.info("skipping %s", exc)
            scan.n_unreadable += 1
            continue
        if not header.is_image:
            scan.n_no_image += 1
            continue
        scan.headers.append(header)
    report(progress, 1.0, f"Read {len(files)} DICOM headers")
    return scan


def _group(headers: Sequence[_Header]) -> dict[str, list[_Header]]:
    groups: dict[str, list[_Header]] = {}
    for h in headers:
        if h.is_image:
            groups.setdefault(h.series_uid, []).append(h)
    return groups


def _check_series(headers: list[_Header], where: Path, irregular: str = "resample") -> _Plan:
    """Everything that can be checked before decoding; the geometry plan.

    Raises the :class:`~engine.core.errors.ReadError` reading would raise for
    broken files, mixed image sizes, a missing decoder, slices that do not
    form one volume or a volume too large to load.
    """
    broken = [h for h in headers if h.problem is not None]
    if broken:
        first = broken[0].problem
        assert first is not None
        if len(broken) == 1 or not where.is_dir():
            raise first
        raise type(first)(
            f"{len(broken)} broken files in the series, e.g. {broken[0].path.name}: "
            f"{first.problem}",
            path=where,
        )
    sizes = Counter((h.rows, h.columns, h.samples) for h in headers)
    if len(sizes) > 1:
        (a, na), (b, nb) = sizes.most_common(2)
        raise DicomSeriesError(
            f"images of different sizes in one series: {na} file(s) of {a[1]}x{a[0]} and "
            f"{nb} of {b[1]}x{b[0]}" + (" (colour and grey)" if a[2] != b[2] else ""),
            path=where,
        )
    for ts in sorted({h.transfer_syntax for h in headers}):
        _check_decoder(ts, next(h.path for h in headers if h.transfer_syntax == ts))
    frames = [_FrameRef(h, i, g) for h in headers for i, g in enumerate(h.frames)]
    plan = _plan_geometry(frames, irregular, where)
    rows, columns = headers[0].rows, headers[0].columns
    if rows * columns * plan.n_out * 4 > MAX_BYTES:
        raise InvalidImageError(
            f"series too large to load: {columns}x{rows}x{plan.n_out} voxels", path=where
        )
    return plan


def _series_infos(
    groups: dict[str, list[_Header]], where: Path | None = None
) -> list[DicomSeriesInfo]:
    """Summaries, largest first; with *where*, each with its header-level problem."""
    infos = []
    for uid, hdrs in groups.items():
        first = next((h for h in hdrs if h.problem is None), hdrs[0])
        problem = ""
        if where is not None:
            try:
                _check_series(hdrs, where)
            except ReadError as exc:
                problem = exc.problem
        infos.append(
            DicomSeriesInfo(
                uid=uid,
                description=first.description,
                modality=first.modality,
                n_files=len(hdrs),
                n_slices=sum(max(1, h.n_frames) for h in hdrs),
                rows=first.rows,
                columns=first.columns,
                study_uid=first.study_uid,
                series_number=first.series_number,
                files=tuple(sorted(h.path for h in hdrs)),
                problem=problem,
            )
        )
    infos.sort(
        key=lambda s: (
            -s.n_slices,
            s.series_number if s.series_number is not None else 2**31,
            s.uid,
        )
    )
    return infos


def list_series(
    path: str | Path,
    *,
    progress: Progress = None,
    cancel: CancelToken | None = None,
) -> list[DicomSeriesInfo]:
    """The DICOM image series in a folder (searched recursively) or one file.

    Parameters
    ----------
    path : str or Path
        A folder or a single DICOM file. Hidden files and folders are skipped,
        as are files that are not DICOM or hold no image (DICOMDIR, SR...).
    progress : callable, optional
        ``progress(fraction, message)``.
    cancel : CancelToken, optional
        Checked between files.

    Returns
    -------
    list of DicomSeriesInfo
        Largest series (most slices) first; empty when none was found. A
        series whose headers already show it cannot be read has its reason in
        :attr:`DicomSeriesInfo.problem`.
    """
    path = Path(path)
    scan = _scan(path, progress, cancel)
    return _series_infos(_group(scan.headers), path)


def _describe(info: DicomSeriesInfo) -> str:
    desc = f" {info.description!r}" if info.description else ""
    return f"{info.uid} ({info.modality}{desc}, {info.n_slices} slices)"


def _select_series(
    infos: list[DicomSeriesInfo], series: str | int | None, where: Path
) -> DicomSeriesInfo:
    if series is None:
        return infos[0]
    if isinstance(series, bool) or not isinstance(series, int | str | np.integer):
        raise ParameterError(f"series must be a UID string or an index, not {series!r}")
    if isinstance(series, int | np.integer):
        series = int(series)
        if 0 <= series < len(infos):
            return infos[series]
    else:
        for info in infos:
            if info.uid == series.strip():
                return info
    known = [f"{i} = {_describe(info)}" for i, info in enumerate(infos[:5])]
    if len(infos) > 5:
        known.append(f"and {len(infos) - 5} more")
    raise DicomSeriesError(unknown_name("series", series, known), path=where)
