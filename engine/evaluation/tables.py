"""Result tables as Markdown and CSV: the one writer of every Delineo evaluation table.

A table is a sequence of rows (mappings from a column key to a value) and a
list of columns ``(key, header, pattern)``; *pattern* is a :meth:`str.format`
pattern for the Markdown cell (``"{:.3f}"``), or ``"{}"`` for a text column.

* Markdown cells: NaN shows as ``—``, ``±inf`` as ``∞``/``−∞``, a missing or
  empty value of a numeric column as ``—``; text columns are left-aligned,
  numeric columns right-aligned.
* CSV keeps the full precision (``nan``, ``inf`` as Python writes them) and is
  written atomically.

Examples
--------
>>> rows = [{"method": "otsu", "dice": 0.91234}, {"method": "gmm", "dice": float("nan")}]
>>> print(markdown_table(rows, [("method", "method", "{}"), ("dice", "Dice", "{:.3f}")]), end="")
| method | Dice |
|---|---:|
| otsu | 0.912 |
| gmm | — |
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_write_bytes

__all__ = ["Column", "format_cell", "markdown_table", "write_csv"]

#: ``(key, header, pattern)`` of one table column.
Column = tuple[str, str, str]


def format_cell(value: Any, pattern: str) -> str:
    """One Markdown cell: *value* through *pattern*, with the conventions above."""
    if isinstance(value, Real) and not isinstance(value, bool | int):
        number = float(value)
        if math.isnan(number):
            return "—"
        if math.isinf(number):
            return "∞" if number > 0 else "−∞"
    if value is None or (isinstance(value, str) and pattern != "{}"):
        return value or "—"  # a number that was not computed (e.g. no surface distances)
    return pattern.format(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A Markdown table of *rows* restricted to *columns*, in their order."""
    head = "| " + " | ".join(header for _, header, _ in columns) + " |\n"
    sep = "|" + "|".join("---" if pattern == "{}" else "---:" for _, _, pattern in columns)
    body = "".join(
        "| " + " | ".join(format_cell(row.get(key, ""), pattern) for key, _, pattern in columns)
        + " |\n"
        for row in rows
    )
    return head + sep + "|\n" + body


def write_csv(
    rows: Sequence[Mapping[str, Any]], path: str | Path, *, columns: Sequence[str] | None = None
) -> Path:
    """Write *rows* as CSV at full precision, atomically.

    Parameters
    ----------
    rows : sequence of mapping
        The table; a key a row lacks is written as an empty field.
    path : str or Path
        Target file.
    columns : sequence of str, optional
        Column keys in order; by default every key of the rows, in the order
        they first appear. With no rows and no *columns* the file is empty.
    """
    keys = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    if keys:
        writer = csv.writer(buf)
        writer.writerow(keys)
        for row in rows:
            writer.writerow([row.get(k, "") for k in keys])
    atomic_write_bytes(path, buf.getvalue().encode())
    return Path(path)
