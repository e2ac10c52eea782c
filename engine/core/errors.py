"""Typed errors of the Delineo engine.

Every problem with user input raises a subclass of :class:`DelineoError` whose
message is one line naming the file and the problem. The CLI prints that line
on stderr and exits with status 3 (2 for a value typed on the command line;
see docs/cli.md); the viewer shows it in a dialog.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "DelineoError",
    "DicomSeriesError",
    "GeometryMismatchError",
    "InvalidImageError",
    "InvalidLabelTableError",
    "MissingDecoderError",
    "NoImageFoundError",
    "ParameterError",
    "ReadError",
    "TruncatedFileError",
    "UnsupportedFormatError",
    "WriteError",
    "unknown_name",
]


class DelineoError(Exception):
    """Base class: a problem the user can act on, described in one line."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.problem = " ".join(str(message).split())
        text = self.problem if path is None else f"{Path(path)}: {self.problem}"
        super().__init__(text)


class ReadError(DelineoError):
    """A file or folder could not be read as an image or label map."""


class UnsupportedFormatError(ReadError):
    """The file is not in a format Delineo reads (e.g. a text file named .nii)."""


class TruncatedFileError(ReadError):
    """The file is empty or shorter than its header says."""


class InvalidImageError(ReadError):
    """The header or the voxel data is not a usable image (absurd sizes, all NaN...)."""


class NoImageFoundError(ReadError):
    """A folder holds no readable image."""


class MissingDecoderError(ReadError):
    """Compressed pixel data needs a decoder package that is not installed."""


class DicomSeriesError(ReadError):
    """DICOM slices do not form one consistent volume (mixed orientation, ...)."""


class InvalidLabelTableError(ReadError):
    """A file of label names and colours (ITK-SNAP, FreeSurfer, 3D Slicer) does not read
    as one."""


class GeometryMismatchError(DelineoError):
    """A label map does not lie on the grid of the image it is meant for."""

    def __init__(self, message: str, *, differences: list[str], path: str | Path | None = None):
        self.differences = differences
        super().__init__(message, path=path)


class WriteError(DelineoError):
    """A result could not be written."""


class ParameterError(DelineoError):
    """An invalid or unstable parameter value."""


def unknown_name(kind: str, name: object, known: Iterable[object]) -> str:
    """The one wording of "no such X" messages: ``unknown KIND 'NAME'; known: a, b, c``.

    Used for methods, pipelines, steps, models, parameters, devices, DICOM
    series, file formats and command-line choices alike.

    Examples
    --------
    >>> unknown_name("device", "tpu", ["auto", "cpu", "cuda"])
    "unknown device 'tpu'; known: auto, cpu, cuda"
    """
    return f"unknown {kind} {name!r}; known: {', '.join(str(k) for k in known)}"
