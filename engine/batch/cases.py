"""The cases of a cohort: what ``delineo-engine batch`` is given, as a list of :class:`Case`.

An input is one of

* an image file (NIfTI, DICOM, NRRD, MGH): one case;
* a folder: NIfTI files and DICOM series are found recursively; a folder
  holding one DICOM series and nothing else is one case named after it;
* a CSV file with a header row and the columns ``case``, ``image`` and,
  optionally, ``ground_truth`` (and ``series`` for a DICOM folder holding
  several series). Relative paths are taken from the CSV file's folder.

Case ids name the output files, so they are unique and filesystem-safe
(letters, digits, ``.``, ``_`` and ``-``): ids made from file names are
cleaned and numbered when they clash; ids written in a CSV are checked and a
bad one stops the run before any work.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import DelineoError, ReadError
from ..io.atomic import full_suffix
from ..io.nifti import NIFTI_SUFFIXES

__all__ = ["CSV_COLUMNS", "Case", "collect_cases", "safe_case_id"]

#: Columns a cohort CSV may have (``case`` and ``image`` are required).
CSV_COLUMNS = ("case", "image", "ground_truth", "series")

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Case:
    """One case of a cohort.

    Attributes
    ----------
    case_id : str
        Unique, filesystem-safe name of the case (names its output files).
    image : str
        NIfTI file, DICOM file or DICOM folder.
    ground_truth : str or None
        Label map on the image's grid, for Dice per tissue.
    series : str or None
        DICOM series UID to read when *image* is a folder with several.
    """

    case_id: str
    image: str
    ground_truth: str | None = None
    series: str | None = None


def safe_case_id(text: str) -> str:
    """*text* made filesystem-safe: other characters become ``_``, at most 128 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:128]
    return cleaned or "case"


def _stem(path: Path) -> str:
    suffix = full_suffix(path)
    name = path.name
    if suffix in NIFTI_SUFFIXES:
        return name[: -len(suffix)]
    return path.stem if path.suffix else name


def _scan_folder(folder: Path) -> list[tuple[str, str, str | None]]:
    """``(name, image, series)`` for every NIfTI file and DICOM series under *folder*."""
    from ..io.dicom import list_series

    found: list[tuple[str, str, str | None]] = []
    for path in sorted(folder.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.is_file() and full_suffix(path) in NIFTI_SUFFIXES:
            found.append((str(path.relative_to(folder).with_name(_stem(path))), str(path), None))
    series = [s for s in list_series(folder) if not s.problem]
    names = [_series_name(folder, info) for info in series]
    if not found and len(series) == 1:
        return [(names[0], str(folder), None)]
    if len(set(names)) < len(names):  # several series in one folder: add what they are
        names = [f"{name}_{info.description or info.uid[-8:]}"
                 for name, info in zip(names, series, strict=True)]
    found.extend((name, str(folder), info.uid) for name, info in zip(names, series,
                                                                      strict=True))
    return found


def _series_name(folder: Path, info: object) -> str:
    """The folder under *folder* that holds a series (its first level), else *folder*'s name."""
    files = [Path(f) for f in getattr(info, "files", ())]
    if not files:
        return folder.name
    common = Path(os.path.commonpath([str(f.parent) for f in files]))
    try:
        parts = common.relative_to(folder).parts
    except ValueError:
        parts = ()
    return parts[0] if parts else folder.name


def _read_csv(path: Path) -> list[Case]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReadError(f"cannot read the cohort CSV ({exc})", path=path) from None
    rows = list(csv.DictReader(text.splitlines()))
    header = [h.strip() for h in (csv.DictReader(text.splitlines()).fieldnames or [])]
    missing = [c for c in ("case", "image") if c not in header]
    if missing:
        raise ReadError("cohort CSV needs the columns case and image (optional: ground_truth, "
                        f"series); missing: {', '.join(missing)}", path=path)
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise ReadError(f"cohort CSV has unknown column(s) {', '.join(unknown)}; known: "
                        + ", ".join(CSV_COLUMNS), path=path)
    cases = []
    for number, row in enumerate(rows, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        case_id, image = row.get("case", ""), row.get("image", "")
        if not case_id and not image:
            continue
        if not _SAFE.match(case_id):
            raise ReadError(f"line {number}: case id {case_id!r} is not filesystem-safe (use "
                            "letters, digits, '.', '_' and '-', at most 128)", path=path)
        if not image:
            raise ReadError(f"line {number}: case {case_id} has no image", path=path)

        def resolve(value: str) -> str:
            p = Path(value).expanduser()
            return str(p if p.is_absolute() else path.parent / p)

        truth = row.get("ground_truth") or None
        cases.append(Case(case_id, resolve(image), resolve(truth) if truth else None,
                          row.get("series") or None))
    return cases


def _unique(names: Iterable[str], taken: set[str]) -> list[str]:
    out = []
    for name in names:
        base = safe_case_id(name)
        candidate, k = base, 2
        while candidate.lower() in taken:
            candidate, k = f"{base}-{k}", k + 1
        taken.add(candidate.lower())
        out.append(candidate)
    return out


def collect_cases(inputs: Sequence[str | Path]) -> list[Case]:
    """The cases named by *inputs* (files, DICOM folders, folders to scan, cohort CSVs).

    A path that does not exist, or a file that is neither NIfTI nor DICOM, is
    still a case: it fails when it is read, as a row of the summary, and the
    run goes on.

    Raises
    ------
    DelineoError
        A cohort CSV that is unreadable, lacks a column, has a bad or a
        repeated case id; no case at all.
    """
    explicit: list[Case] = []
    found: list[tuple[str, str, str | None]] = []
    order: list[tuple[str, int]] = []
    for item in inputs:
        path = Path(item)
        if path.is_file() and path.suffix.lower() == ".csv":
            for case in _read_csv(path):
                order.append(("csv", len(explicit)))
                explicit.append(case)
        elif path.is_dir():
            for entry in _scan_folder(path):
                order.append(("found", len(found)))
                found.append(entry)
        else:
            order.append(("found", len(found)))
            found.append((_stem(path), str(path), None))
    seen: set[str] = set()
    for case in explicit:
        if case.case_id.lower() in seen:
            raise DelineoError(f"case id {case.case_id!r} appears twice in the cohort CSV "
                               "(ids are compared ignoring case)")
        seen.add(case.case_id.lower())
    ids = _unique([name for name, _, _ in found], seen)
    made = [Case(i, image, None, series) for i, (_, image, series) in zip(ids, found,
                                                                          strict=True)]
    cases = [explicit[i] if kind == "csv" else made[i] for kind, i in order]
    if not cases:
        raise DelineoError("no case found in the inputs (NIfTI files, DICOM series or a "
                           "cohort CSV)")
    return cases
