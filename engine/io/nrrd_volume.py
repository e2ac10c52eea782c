"""NRRD volumes (``.nrrd``, or a ``.nhdr`` header with its data file): 3D Slicer's and ITK's format.

:func:`read_nrrd` reads a scalar NRRD image -- 3D Slicer's default for saved
volumes -- into a canonical RAS+ :class:`~engine.core.volume.Volume`, with
pynrrd. The header is validated before the voxels are read: its dimension
and sizes, the byte count against :data:`~engine.io.nifti.MAX_BYTES`, and the
geometry (:func:`nrrd_affine`): ``space`` (RAS, LAS or LPS, long or short
names), ``space directions`` (one column per spatial axis, in that space's
millimetres) and ``space origin``, converted to Delineo's RAS world. A file
without an anatomical space (none given, or ``scanner-xyz``,
``3D-right-handed`` and the like) has no world orientation: it loads with
its ``spacings`` (1 mm where none), a warning, and ``metadata["geometry"] ==
"assumed"``, as a NIfTI file without qform or sform does.

One non-spatial axis (a ``list``, ``vector`` or ``time`` axis: echoes, time
points, the layers of a segmentation) is allowed: its first item is read
(``volume_index`` chooses another) with a warning, like a 4-D NIfTI file. A
file with the ``Segment<N>_`` fields of a 3D Slicer segmentation gives its
label table (names, colours, values) in ``metadata["labels"]``, so
:func:`engine.io.load_labels` keeps the segment names; a segmentation of
several layers (overlapping segments) is refused: one layer cannot hold it.

Examples
--------
>>> import numpy as np, tempfile, os, nrrd
>>> path = os.path.join(tempfile.mkdtemp(), "image.nrrd")
>>> nrrd.write(path, np.ones((4, 5, 6), np.int16), {"space": "left-posterior-superior",
...            "space directions": np.diag([1.0, 1.0, 2.0]), "space origin": [10.0, 20.0, 0.0]},
...            index_order="F")
>>> vol = read_nrrd(path)
>>> vol.shape, vol.spacing, vol.axcodes
((4, 5, 6), (1.0, 1.0, 2.0), ('R', 'A', 'S'))
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path
from typing import Any

import nrrd
import numpy as np

from ..core.errors import InvalidImageError, TruncatedFileError, UnsupportedFormatError
from ..core.volume import Label, LabelTable, Volume
from .nifti import MAX_BYTES
from .voxels import check_file, finite_voxels, guess_modality

__all__ = ["is_nrrd", "nrrd_affine", "nrrd_label_table", "read_nrrd"]

log = logging.getLogger(__name__)

#: NRRD's anatomical spaces and the matrix that takes their coordinates to RAS.
SPACES = {
    "right-anterior-superior": np.eye(3), "ras": np.eye(3),
    "left-anterior-superior": np.diag([-1.0, 1.0, 1.0]), "las": np.diag([-1.0, 1.0, 1.0]),
    "left-posterior-superior": np.diag([-1.0, -1.0, 1.0]), "lps": np.diag([-1.0, -1.0, 1.0]),
}
_SPATIAL_KINDS = {"domain", "space"}


def is_nrrd(path: str | Path) -> bool:
    """Whether the file starts with NRRD's magic (``NRRD000``)."""
    with Path(path).open("rb") as fh:
        return fh.read(7) == b"NRRD000"


def _spatial_axes(header: dict[str, Any], path: Path) -> list[int]:
    """The axes of the file that are space (not a list, vector or time axis)."""
    dimension = int(header["dimension"])
    directions = header.get("space directions")
    if directions is not None:
        rows = np.asarray(directions, dtype=float).reshape(dimension, -1)
        return [i for i in range(dimension) if np.all(np.isfinite(rows[i]))]
    kinds = header.get("kinds")
    if kinds is not None:
        return [i for i, k in enumerate(kinds) if str(k).lower() in _SPATIAL_KINDS]
    if dimension <= 3:
        return list(range(dimension))
    raise InvalidImageError(f"a {dimension}-D NRRD without space directions or kinds: which "
                            "axes are space is not known", path=path)


def nrrd_affine(header: dict[str, Any], path: str | Path,
                warnings: list[str]) -> tuple[np.ndarray, list[int], bool]:
    """``(affine, spatial_axes, assumed)`` of an NRRD *header* (pynrrd's dict).

    *affine* maps the spatial axes' voxel indices (in the file's order) to RAS
    millimetres; *assumed* is True when the header has no anatomical space, and
    a warning then says so in *warnings*. Raises :class:`InvalidImageError` for
    a geometry that is not three spatial axes in a 3-D space, or is singular.
    """
    path = Path(path)
    axes = _spatial_axes(header, path)
    if len(axes) != 3:
        raise InvalidImageError(f"{len(axes)} spatial axes: Delineo reads 3-D volumes",
                                path=path)
    space = str(header.get("space", "")).strip().lower()
    directions = header.get("space directions")
    affine = np.eye(4)
    if space in SPACES and directions is not None:
        rows = np.asarray(directions, dtype=float).reshape(int(header["dimension"]), -1)
        if rows.shape[1] != 3:
            raise InvalidImageError(f"space directions of {rows.shape[1]} values: a volume "
                                    "needs 3", path=path)
        origin = np.asarray(header.get("space origin", (np.nan,) * 3), dtype=float)
        assumed = not np.all(np.isfinite(origin))
        if assumed:
            warnings.append("no space origin in the header: the first voxel is taken to "
                            "lie at 0, 0, 0 mm")
            origin = np.zeros(3)
        flip = SPACES[space]
        affine[:3, :3] = flip @ rows[axes].T
        affine[:3, 3] = flip @ origin
    else:
        spacings = np.asarray(header.get("spacings", [np.nan] * int(header["dimension"])),
                              dtype=float)
        steps = np.array([spacings[i] if np.isfinite(spacings[i]) and spacings[i] > 0
                          else 1.0 for i in axes])
        what = f"space {space!r}" if space else "no space"
        warnings.append(f"{what} in the header (no patient orientation): the voxel axes "
                        "are taken as R, A, S with spacing "
                        + " x ".join(f"{s:g}" for s in steps) + " mm")
        affine[:3, :3] = np.diag(np.abs(steps))
        assumed = True
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InvalidImageError("the space directions are singular or not finite", path=path)
    return affine, axes, assumed


def nrrd_label_table(header: dict[str, Any]) -> LabelTable | None:
    """The label table of a 3D Slicer segmentation's ``Segment<N>_`` fields, or None."""
    if "Segment0_LabelValue" not in header:
        return None
    entries = [Label(0, "Background", (0, 0, 0))]
    n = 0
    while f"Segment{n}_LabelValue" in header:
        value = int(header[f"Segment{n}_LabelValue"])
        name = str(header.get(f"Segment{n}_Name", f"Segment {value}"))
        rgb = [float(c) for c in str(header.get(f"Segment{n}_Color", "0.5 0.5 0.5")).split()]
        colour = tuple(round(max(0.0, min(1.0, c)) * 255) for c in rgb[:3])
        entries.append(Label(value, name, colour))  # type: ignore[arg-type]
        n += 1
    return LabelTable.from_labels(entries)


def _itemsize(kind: str) -> int | None:
    """Bytes per voxel of an NRRD ``type`` (any of its spellings); None for ``block``."""
    kind = kind.strip().lower()
    if kind == "block":
        return None
    if "char" in kind or kind.endswith("int8") or kind.endswith("int8_t"):
        return 1
    if "short" in kind or "16" in kind:
        return 2
    if "long" in kind or "64" in kind or kind == "double":
        return 8
    return 4  # int, unsigned int, (u)int32, float


def _header(fh: Any, path: Path) -> dict[str, Any]:
    """The header read from *fh* (left at the start of the voxel data), checked."""
    try:
        header = nrrd.read_header(fh)
    except (nrrd.NRRDError, ValueError, UnicodeDecodeError, KeyError) as exc:
        raise InvalidImageError(f"unreadable NRRD header ({exc})", path=path) from None
    for key in ("dimension", "sizes", "type"):
        if key not in header:
            raise InvalidImageError(f"NRRD header without {key!r}", path=path)
    sizes = np.asarray(header["sizes"]).reshape(-1)
    if sizes.size != int(header["dimension"]) or np.any(sizes < 1):
        raise InvalidImageError(f"NRRD sizes {sizes.tolist()} do not fit its dimension "
                                f"{header['dimension']}", path=path)
    itemsize = _itemsize(str(header["type"]))
    if itemsize is None:
        raise InvalidImageError(f"NRRD voxel type {header['type']!r} is not a number type",
                                path=path)
    if float(np.prod(sizes.astype(float))) * itemsize > MAX_BYTES:
        raise InvalidImageError(f"NRRD of {'x'.join(str(int(s)) for s in sizes)} voxels is "
                                f"over {MAX_BYTES // 1024**3} GiB", path=path)
    return header


def _non_spatial(header: dict[str, Any], axes: list[int], table: LabelTable | None,
                 volume_index: int, path: Path, warnings: list[str]) -> list[int]:
    """The file's non-spatial axis (at most one), *volume_index* checked against it."""
    dimension = int(header["dimension"])
    extra = [i for i in range(dimension) if i not in axes]
    if len(extra) > 1:
        raise InvalidImageError(f"{len(extra)} non-spatial axes: Delineo reads a volume with "
                                "at most one (echoes, time points)", path=path)
    if extra:
        count = int(np.asarray(header["sizes"]).reshape(-1)[extra[0]])
        if table is not None and count > 1:
            raise InvalidImageError(f"a segmentation of {count} layers (overlapping "
                                    "segments): one label map cannot hold it; export it as a "
                                    "labelmap (one layer) first", path=path)
        if not 0 <= volume_index < count:
            raise InvalidImageError(f"item {volume_index} asked of a non-spatial axis of "
                                    f"{count}", path=path)
        if count > 1:
            kinds = header.get("kinds") or [""] * dimension
            warnings.append(f"{kinds[extra[0]] or 'non-spatial'} axis of {count} items: "
                            f"using item {volume_index} only")
    return extra


def _voxels(header: dict[str, Any], fh: Any, path: Path) -> np.ndarray:
    """The voxel data after the header in *fh* (or in the detached data file)."""
    try:
        return np.asarray(nrrd.read_data(header, fh, str(path), index_order="F"))
    except nrrd.NRRDError as exc:
        text = str(exc)
        if "Size of the data" in text or "data file" in text.lower():
            raise TruncatedFileError(f"voxel data is truncated or missing ({text})",
                                     path=path) from None
        raise InvalidImageError(f"unreadable NRRD ({text})", path=path) from None
    except (EOFError, zlib.error, OSError, ValueError) as exc:
        raise TruncatedFileError(f"voxel data is truncated or corrupt ({exc})",
                                 path=path) from None


def read_nrrd(path: str | Path, *, volume_index: int = 0) -> Volume:
    """Read an NRRD image into a canonical RAS+ :class:`~engine.core.volume.Volume`.

    Parameters
    ----------
    path : str or Path
        ``.nrrd`` file, or ``.nhdr`` header (its data file beside it).
    volume_index : int
        For a file with a non-spatial axis, which item to read (a warning
        records the choice).

    Raises
    ------
    TruncatedFileError, UnsupportedFormatError, InvalidImageError
        With a one-line message naming the file and the problem.
    """
    path = Path(path)
    check_file(path, "an NRRD file")
    if not is_nrrd(path):
        raise UnsupportedFormatError("not an NRRD file (no NRRD000 magic)", path=path)
    with path.open("rb") as fh:  # the header once; the voxels follow it in the file
        header = _header(fh, path)
        warnings: list[str] = []
        affine, axes, assumed = nrrd_affine(header, path, warnings)
        table = nrrd_label_table(header)
        extra = _non_spatial(header, axes, table, volume_index, path, warnings)
        data = _voxels(header, fh, path)
    if extra:
        data = np.take(data, volume_index, axis=extra[0])
    data = finite_voxels(data, path, warnings)
    for w in warnings:
        log.warning("%s: %s", path.name, w)
    metadata: dict[str, Any] = {
        "path": str(path), "format": "nrrd", "description": str(header.get("content", "")),
        "warnings": warnings,
        "original_shape": tuple(int(s) for s in np.asarray(header["sizes"]).reshape(-1)),
        "geometry": "assumed" if assumed else "file",
    }
    if table is not None:
        metadata["labels"] = table
    return Volume.from_file_array(
        data, affine, format="nrrd",
        modality="SEG" if table is not None else guess_modality(data), metadata=metadata)
