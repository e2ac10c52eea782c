"""What every ``delineo-engine`` sub-command shares.

* Option helpers, so that an option is spelled, checked and explained the
  same way everywhere: :func:`add_output_file` (``-o/--output``, a file),
  :func:`add_output_folder` (``--out``, a folder), :func:`add_device`,
  :func:`add_series`, :func:`add_json` and :func:`choice`.
* The exit statuses (:data:`EXIT_USAGE`, :data:`EXIT_DATA`, ...).
* Output checks made before any work (:func:`check_output_file`,
  :func:`check_output_folder`) and :func:`owned_folder`, which removes a
  folder the command created when the command fails.
* :func:`print_json` (strict JSON on stdout) and :func:`say` (an
  informational line on stderr, silent with ``--quiet``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ParameterError, WriteError, unknown_name
from ..io.atomic import full_suffix, missing_folders, owned_folder
from ..io.nifti import NIFTI_SUFFIXES
from . import progress

__all__ = [
    "DEVICES",
    "EXIT_BROKEN_PIPE",
    "EXIT_CANCELLED",
    "EXIT_CASES_FAILED",
    "EXIT_DATA",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_USAGE",
    "NIFTI_SUFFIXES",
    "add_device",
    "add_json",
    "add_output_file",
    "add_output_folder",
    "add_series",
    "check_output_file",
    "check_output_folder",
    "choice",
    "owned_folder",
    "print_json",
    "say",
    "series_value",
    "warn",
]

EXIT_OK = 0
#: An unexpected error inside Delineo (a bug; ``--debug`` shows the traceback).
EXIT_INTERNAL = 1
#: The command line is wrong: argparse's errors and every
#: :class:`~engine.core.errors.ParameterError` (a value refused, wherever it is found).
EXIT_USAGE = 2
#: The data is wrong: any other :class:`~engine.core.errors.DelineoError` or
#: ``OSError`` (a missing, unreadable or unusable input, grids that do not
#: match, an output that cannot be written).
EXIT_DATA = 3
#: ``batch`` ran every case, but some failed (their rows in ``summary.csv`` say why).
EXIT_CASES_FAILED = 4
#: Ctrl-C or a cancelled job (128 + SIGINT).
EXIT_CANCELLED = 130
#: stdout was closed before everything was printed (128 + SIGPIPE), e.g. ``| head -1``.
EXIT_BROKEN_PIPE = 141

#: Values of ``--device`` (``cuda:N`` picks one GPU).
DEVICES = ("auto", "cpu", "cuda")


# -- options --------------------------------------------------------------------------
def choice(kind: str, known: Iterable[str]) -> Callable[[str], str]:
    """An argparse ``type`` accepting one of *known*; others get the shared wording.

    Unlike argparse's ``choices``, the refusal reads like every other
    "unknown" message of Delineo: ``unknown KIND 'X'; known: a, b``.
    """
    names = tuple(known)

    def parse(text: str) -> str:
        if text not in names:
            raise argparse.ArgumentTypeError(unknown_name(kind, text, names))
        return text

    parse.__name__ = kind
    return parse


def device_value(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (argparse ``type`` of ``--device``)."""
    name = text.strip().lower()
    if name in DEVICES or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise argparse.ArgumentTypeError(unknown_name("device", text, (*DEVICES, "cuda:N")))


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device``: the same values, default and help text on every command."""
    parser.add_argument(
        "--device", type=device_value, default="auto", metavar="{auto,cpu,cuda}",
        help="where to compute: auto (a CUDA GPU when there is one, else the CPU; default), "
        "cpu, cuda or cuda:N",
    )


def series_value(text: str | None) -> str | int | None:
    """A ``--series`` value: an index when it is a number, else a series UID."""
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else text


def add_series(parser: argparse.ArgumentParser, what: str = "the input") -> None:
    """``--series``: which DICOM series to read when *what* is a DICOM folder."""
    parser.add_argument(
        "--series", metavar="UID|INDEX",
        help=f"DICOM series of {what} to read: its UID or its index in 'delineo-engine "
        "series' (default: the largest that reads); ignored for NIfTI files",
    )


def add_label_names(parser: argparse.ArgumentParser, what: str = "the label map") -> None:
    """``--label-names FILE``: the names and colours of *what*'s values."""
    parser.add_argument(
        "--label-names", metavar="FILE",
        help=f"names and colours of {what}'s values: ITK-SNAP label descriptions, a "
        "FreeSurfer lookup table or a 3D Slicer colour table (.txt/.lut/.ctbl; default: "
        "those stored in the file, else Delineo's tissue labels)")


def label_names(args: argparse.Namespace) -> Any:
    """The :class:`~engine.core.volume.LabelTable` of ``--label-names``, or None."""
    if getattr(args, "label_names", None) is None:
        return None
    from ..io.label_tables import read_label_table

    return read_label_table(args.label_names)


def add_json(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    """``--json``: print *what* as one JSON document on stdout instead of text."""
    parser.add_argument("--json", action="store_true",
                        help=f"print {what} as JSON on stdout (machine-readable)")


def add_output_file(parser: argparse.ArgumentParser, help: str, *,
                    required: bool = True) -> None:
    """``-o/--output FILE``: every command writing one file names it this way."""
    parser.add_argument("-o", "--output", required=required, metavar="FILE", help=help)


def add_output_folder(parser: argparse.ArgumentParser, help: str) -> None:
    """``--out DIR``: every command writing several files puts them in this folder."""
    parser.add_argument("--out", required=True, metavar="DIR", help=help)


# -- outputs -------------------------------------------------------------------------
def check_output_file(path: str | Path, suffixes: tuple[str, ...] | None = NIFTI_SUFFIXES
                      ) -> Path:
    """Check before any work that a file can be written at *path*.

    A name not ending in one of *suffixes* (default ``.nii``/``.nii.gz``;
    ``None``: any name) is a :class:`~engine.core.errors.ParameterError` (exit
    2); a folder that does not exist, is not writable, or a path that is itself
    a folder is a :class:`~engine.core.errors.WriteError` (exit 3).
    """
    out = Path(path)
    suffix = full_suffix(out)
    if suffixes is not None and suffix not in suffixes:
        raise ParameterError(unknown_name("output format", suffix or out.name,
                                          suffixes), path=out)
    if out.is_dir():
        ending = " ending in " + " or ".join(suffixes) if suffixes else ""
        raise WriteError(f"is a folder; give a file name{ending}", path=out)
    folder = out.parent
    if not folder.is_dir():
        raise WriteError("no such folder for the output (create it first)", path=folder)
    if not os.access(folder, os.W_OK):
        raise WriteError("the output folder is not writable", path=folder)
    return out


def check_output_folder(path: str | Path) -> Path:
    """Check before any work that *path* is a folder or can become one (exit 3 if not)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise WriteError("exists and is not a folder", path=out)
    missing = missing_folders(out)
    existing = missing[-1].parent if missing else out.absolute()
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise WriteError("cannot create the output folder here", path=existing)
    return out


# -- printing ------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """*value* with paths as strings, numpy scalars as Python and NaN/inf as None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def print_json(value: Any) -> None:
    """Print *value* as strict JSON (no NaN) on stdout."""
    print(json.dumps(_plain(value), indent=2, ensure_ascii=False, allow_nan=False))


def say(message: str) -> None:
    """An informational line on stderr (``delineo-engine: ...``), silent with ``--quiet``."""
    if not progress.is_quiet():
        print(f"delineo-engine: {message}", file=sys.stderr)


def warn(message: str) -> None:
    """A warning line on stderr (``delineo-engine: warning: ...``), shown even with ``--quiet``."""
    print(f"delineo-engine: warning: {message}", file=sys.stderr)
