"""Label names and colours from the text files other tools keep them in, and back.

A label map file holds values; what they mean often lives beside it in a text
table. :func:`read_label_table` reads the two layouts in use, one entry per
line, ``#`` starting a comment:

* **ITK-SNAP label descriptions** -- ``IDX R G B A VIS MSH "NAME"`` (A in
  0..1, VIS and MSH 0 or 1, the name quoted): what ITK-SNAP's *Export label
  descriptions* writes;
* **colour tables** -- ``VALUE NAME R G B [A]`` (a name without spaces, A in
  0..255): FreeSurfer's lookup tables (``FreeSurferColorLUT.txt``; the names of
  ``aseg.mgz``'s values) and 3D Slicer's colour tables (``.ctbl``).

Every line must fit one layout (the first entry decides which); a value given
twice, a colour outside 0..255 or a file with no entry is refused with a
one-line :class:`~engine.core.errors.InvalidLabelTableError` naming the line.
Only the value, name and colour are kept (Delineo draws every label with the
layer's opacity).

:func:`write_label_table` writes a table in either layout (``.txt``: ITK-SNAP
label descriptions; ``.ctbl``: a 3D Slicer colour table), so a Delineo label
map saved as NIfTI opens in those tools with its names.

:func:`freesurfer_lookup_table` finds FreeSurfer's own table when FreeSurfer is
installed (``$FREESURFER_HOME/FreeSurferColorLUT.txt``), as Freeview does.

Examples
--------
>>> import os, tempfile
>>> from engine.core.volume import BRAIN_LESION_LABELS
>>> path = os.path.join(tempfile.mkdtemp(), "labels.txt")
>>> back = read_label_table(write_label_table(BRAIN_LESION_LABELS, path))
>>> [(v, back.name(v)) for v in back]
[(0, 'Background'), (1, 'CSF'), (2, 'Gray matter'), (3, 'White matter'), (4, 'Lesion')]
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from ..core.errors import InvalidLabelTableError, WriteError
from ..core.volume import Label, LabelTable
from .atomic import atomic_path

__all__ = ["LONG_TABLE", "TABLE_SUFFIXES", "fitted", "freesurfer_lookup_table",
           "read_label_table", "write_label_table"]

#: Names of label-table files: ITK-SNAP label descriptions and FreeSurfer lookup tables
#: (``.txt``), FreeSurfer's ``.lut`` and 3D Slicer's colour tables (``.ctbl``).
TABLE_SUFFIXES = (".txt", ".lut", ".ctbl")

#: Larger files are not label tables (FreeSurfer's full table is ~0.1 MB).
_MAX_BYTES = 16 * 1024 * 1024

_NOT_IN_A_TOKEN = str.maketrans("", "", "\"'#")

#: A table with more entries than this is a lookup table of a whole atlas (FreeSurfer's
#: has ~1,300), not the labels of one map: :func:`fitted` keeps the values the map holds.
LONG_TABLE = 256


def _value(token: str, what: str, where: str, top: int) -> int:
    try:
        number = int(token)
    except ValueError:
        raise InvalidLabelTableError(f"{where}: {what} {token!r} is not a whole number") from None
    if not 0 <= number <= top:
        raise InvalidLabelTableError(f"{where}: {what} {number} is outside 0..{top}")
    return number


def _itksnap_entry(tokens: list[str], where: str) -> Label:
    if len(tokens) != 8:
        raise InvalidLabelTableError(
            f"{where}: an ITK-SNAP label line has 8 fields (IDX R G B A VIS MSH \"NAME\"), "
            f"not {len(tokens)}")
    value = _value(tokens[0], "label value", where, 2**31 - 1)
    color = tuple(_value(t, "colour component", where, 255) for t in tokens[1:4])
    try:
        alpha = float(tokens[4])
    except ValueError:
        raise InvalidLabelTableError(f"{where}: opacity {tokens[4]!r} is not a number") from None
    if not 0.0 <= alpha <= 1.0:
        raise InvalidLabelTableError(f"{where}: opacity {alpha:g} is outside 0..1")
    for token in tokens[5:7]:
        _value(token, "visibility flag", where, 1)
    return Label(value, tokens[7], color)  # type: ignore[arg-type]


def _colour_table_entry(tokens: list[str], where: str) -> Label:
    if len(tokens) not in (5, 6):
        raise InvalidLabelTableError(
            f"{where}: a colour-table line has 5 or 6 fields (VALUE NAME R G B [A]), "
            f"not {len(tokens)}")
    value = _value(tokens[0], "label value", where, 2**31 - 1)
    color = tuple(_value(t, "colour component", where, 255) for t in tokens[2:5])
    if len(tokens) == 6:
        _value(tokens[5], "alpha", where, 255)
    return Label(value, tokens[1], color)  # type: ignore[arg-type]


def read_label_table(path: str | Path) -> LabelTable:
    """The label names and colours in *path* (see the module docstring for the layouts).

    Raises
    ------
    InvalidLabelTableError
        Not a label table, or a line that does not fit (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidLabelTableError("no such file", path=path)
    if path.stat().st_size > _MAX_BYTES:
        raise InvalidLabelTableError("too large for a label table", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidLabelTableError("not a text file", path=path) from None
    layout: str | None = None
    labels: dict[int, Label] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"line {number}"
        try:
            tokens = shlex.split(line, comments=True)  # '#' outside quotes: a comment
        except ValueError as exc:  # an unclosed quote
            raise InvalidLabelTableError(f"{where}: {exc}", path=path) from None
        if not tokens:  # a blank line or a comment
            continue
        if layout is None:
            layout = "itk-snap" if len(tokens) == 8 and '"' in line else "colour table"
        try:
            entry = (_itksnap_entry(tokens, where) if layout == "itk-snap"
                     else _colour_table_entry(tokens, where))
        except InvalidLabelTableError as exc:
            raise InvalidLabelTableError(str(exc), path=path) from None
        if entry.value in labels:
            raise InvalidLabelTableError(f"{where}: label value {entry.value} is given twice",
                                         path=path)
        labels[entry.value] = entry
    if not labels:
        raise InvalidLabelTableError("no label entry (not a label table?)", path=path)
    return LabelTable.from_labels(sorted(labels.values(), key=lambda lab: lab.value))


def fitted(table: LabelTable, values: set[int] | list[int]) -> LabelTable:
    """*table* for a label map holding *values*: a long lookup table (over
    :data:`LONG_TABLE` entries) cut to those values and the background; a shorter one
    whole (its other entries are labels to paint with)."""
    if len(table) <= LONG_TABLE:
        return table
    keep = {0, *(int(v) for v in values)}
    return LabelTable.from_labels(table[v] for v in table if v in keep)


def write_label_table(table: LabelTable, path: str | Path) -> Path:
    """Write *table* as ITK-SNAP label descriptions (``.txt``) or as a 3D Slicer colour
    table (``.ctbl``), atomically; returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".ctbl"):
        raise WriteError("a label table is written as .txt (ITK-SNAP label descriptions) "
                         "or .ctbl (3D Slicer colour table)", path=path)
    entries = [table[v] for v in sorted(table)]
    if suffix == ".txt":
        lines = ["# ITK-SNAP Label Description File, written by Delineo",
                 "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL"]
        for lab in entries:
            name = lab.name.replace('"', "'")
            shown = 0 if lab.value == 0 else 1
            lines.append(f"{lab.value:5d} {lab.color[0]:5d} {lab.color[1]:4d} "
                         f"{lab.color[2]:4d} {float(shown):8.2f} {shown:2d} {shown:2d}    "
                         f'"{name}"')
    else:
        lines = ["# Color table file, written by Delineo",
                 f"# {len(entries)} values"]
        for lab in entries:
            # one token: no spaces, no quotes, no comment sign
            name = "_".join(lab.name.translate(_NOT_IN_A_TOKEN).split()) or f"Label_{lab.value}"
            alpha = 0 if lab.value == 0 else 255
            lines.append(f"{lab.value} {name} {lab.color[0]} {lab.color[1]} "
                         f"{lab.color[2]} {alpha}")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def freesurfer_lookup_table() -> Path | None:
    """FreeSurfer's lookup table when FreeSurfer is installed (``$FREESURFER_HOME``)."""
    home = os.environ.get("FREESURFER_HOME")
    if not home:
        return None
    path = Path(home) / "FreeSurferColorLUT.txt"
    return path if path.is_file() else None
