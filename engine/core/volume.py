"""Volumes and label maps in one canonical orientation.

Delineo keeps every volume in **RAS+** voxel order: array axis 0 increases
towards the patient's Right, axis 1 towards Anterior, axis 2 towards Superior.
The affine maps voxel indices ``(i, j, k)`` to world millimetres in the
RAS+ world of NIfTI (DICOM's LPS world is converted on reading).

Readers only ever *flip and permute* axes to reach that order -- they never
resample -- so every voxel keeps its value and its world position. Oblique
acquisitions keep their rotation in the affine; the array axes are then the
voxel axes closest to R, A and S. The geometry of the file that was read is
kept in :class:`SourceGeometry` so that results can be written back in it:
a mask saved for an image lands on that image voxel for voxel.

Examples
--------
>>> import numpy as np
>>> vol = Volume(np.zeros((4, 5, 6), np.float32), np.diag([2.0, 2.0, 3.0, 1.0]))
>>> vol.spacing
(2.0, 2.0, 3.0)
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from nibabel import orientations as _ornt

__all__ = [
    "BRAIN_LESION_LABELS",
    "BRAIN_TISSUE_LABELS",
    "CANONICAL_AXCODES",
    "INTRACRANIAL_LABELS",
    "LESION_VALUE",
    "Label",
    "LabelMap",
    "LabelTable",
    "SourceGeometry",
    "Volume",
    "axcodes",
    "canonicalize",
    "same_grid",
    "value_counts",
]

CANONICAL_AXCODES: tuple[str, str, str] = ("R", "A", "S")

#: Largest absolute difference between affine entries (mm) for two grids to count as equal.
GRID_TOLERANCE_MM = 1e-3


#: Voxels one histogram pass of :func:`value_counts` covers (numpy's bincount makes an
#: 8-byte copy of what it counts: 8 MiB at a time, not 150 MiB for a whole head).
_COUNT_CHUNK = 1 << 20


def value_counts(array: np.ndarray) -> dict[int, int]:
    """``{value: voxel count}`` of every value present in an integer or boolean
    *array*, in increasing order of value.

    Label values (non-negative, below 65536) are counted by a histogram in
    chunks -- no sort and no full-size temporary; other values by ``np.unique``.

    Examples
    --------
    >>> value_counts(np.array([[0, 2], [2, 7]], np.uint8))
    {0: 1, 2: 2, 7: 1}
    """
    flat = np.ravel(np.asarray(array), order="K")  # memory order: a view when it can be
    if not flat.size:
        return {}
    if flat.dtype.kind in "uib":
        top = int(flat.max())
        if top < 1 << 16 and (flat.dtype.kind != "i" or int(flat.min()) >= 0):
            if top == 0:
                return {0: int(flat.size)}
            counts = np.zeros(top + 1, np.int64)
            for start in range(0, flat.size, _COUNT_CHUNK):
                part = np.bincount(flat[start:start + _COUNT_CHUNK])
                counts[:part.size] += part
            return {int(v): int(counts[v]) for v in np.flatnonzero(counts)}
    values, counts = np.unique(flat, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def axcodes(affine: np.ndarray) -> tuple[str, str, str]:
    """Orientation codes (e.g. ``('L', 'P', 'S')``) of the voxel axes of *affine*."""
    codes = _ornt.aff2axcodes(np.asarray(affine, dtype=float))
    return tuple("?" if c is None else c for c in codes)  # type: ignore[return-value]


def _orientation_transform(affine: np.ndarray) -> np.ndarray:
    """The (axis, flip) transform that takes voxel axes of *affine* to RAS+."""
    start = _ornt.io_orientation(np.asarray(affine, dtype=float))
    if np.isnan(start).any():
        raise ValueError("affine has a degenerate (zero-length) voxel axis")
    return _ornt.ornt_transform(start, _ornt.axcodes2ornt(CANONICAL_AXCODES))


def canonicalize(
    array: np.ndarray, affine: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flip/permute a 3-D *array* and its *affine* to RAS+ voxel order.

    Returns ``(array, affine, transform)`` where ``transform`` is the
    nibabel-style ``(3, 2)`` orientation transform that was applied. The
    returned array is a view where possible (no copy for flips/permutations).
    """
    affine = np.asarray(affine, dtype=float)
    if array.ndim != 3:
        raise ValueError(f"expected a 3-D array, got {array.ndim}-D")
    transform = _orientation_transform(affine)
    out = _ornt.apply_orientation(array, transform)
    new_affine = affine @ _ornt.inv_ornt_aff(transform, array.shape)
    return out, new_affine, transform


@dataclass(frozen=True)
class SourceGeometry:
    """Geometry of the file a volume was read from.

    Attributes
    ----------
    shape : tuple of int
        Array shape in the file's own voxel order.
    affine : ndarray (4, 4)
        The file's voxel-to-world (RAS+, mm) affine.
    transform : ndarray (3, 2)
        Orientation transform from the file's voxel order to RAS+ order.
    format : str
        ``"nifti"``, ``"dicom"``, ... -- where the volume came from.
    header : object, optional
        Format header kept opaque (e.g. a nibabel NIfTI header) so writers can
        preserve codes such as ``qform_code``/``sform_code``.
    """

    shape: tuple[int, ...]
    affine: np.ndarray
    transform: np.ndarray
    format: str = "unknown"
    header: Any = None

    @property
    def axcodes(self) -> tuple[str, str, str]:
        return axcodes(self.affine)

    def to_source(self, array: np.ndarray) -> np.ndarray:
        """Bring a canonical (RAS+) array back to the file's voxel order."""
        inverse = _ornt.ornt_transform(
            _ornt.axcodes2ornt(CANONICAL_AXCODES), _ornt.io_orientation(self.affine)
        )
        out = _ornt.apply_orientation(array, inverse)
        if tuple(out.shape[:3]) != tuple(self.shape[:3]):
            raise ValueError(
                f"array of shape {array.shape} does not fit source geometry {self.shape}"
            )
        return out


class Volume:
    """A 3-D image in canonical RAS+ voxel order with its world geometry.

    Parameters
    ----------
    array : ndarray
        Voxel values, shape ``(nx, ny, nz)``; a 2-D array is taken as one slice.
    affine : ndarray (4, 4)
        Voxel index to world (RAS+, mm). Must already be RAS+ oriented unless
        ``canonical=False`` is passed to :meth:`from_file_array`.
    modality : str
        DICOM-style modality: ``"MR"``, ``"CT"``, ... or ``"unknown"``.
    metadata : dict
        Small, JSON-friendly facts (series description, warnings, ...).
    source : SourceGeometry, optional
        Geometry of the original file, for writing results back in it.
    """

    def __init__(
        self,
        array: np.ndarray,
        affine: np.ndarray,
        *,
        modality: str = "unknown",
        metadata: Mapping[str, Any] | None = None,
        source: SourceGeometry | None = None,
    ) -> None:
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[:, :, np.newaxis]
        if array.ndim != 3:
            raise ValueError(f"a volume is 3-D; got an array of shape {array.shape}")
        affine = np.asarray(affine, dtype=float)
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise ValueError("affine must be a finite 4x4 matrix")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise ValueError("affine is singular")
        self.array = array
        self.affine = affine
        self.modality = modality
        self.metadata: dict[str, Any] = dict(metadata or {})
        if source is None:
            source = SourceGeometry(
                shape=tuple(array.shape),
                affine=affine.copy(),
                transform=np.array([[0, 1], [1, 1], [2, 1]], dtype=float),
                format="memory",
            )
        self.source = source

    # -- construction ---------------------------------------------------------
    @classmethod
    def from_file_array(
        cls,
        array: np.ndarray,
        affine: np.ndarray,
        *,
        format: str = "unknown",
        header: Any = None,
        **kwargs: Any,
    ) -> Volume:
        """Build a canonical volume from an array in a file's own voxel order."""
        if array.ndim == 2:
            array = array[:, :, np.newaxis]
        source = SourceGeometry(
            shape=tuple(array.shape),
            affine=np.asarray(affine, dtype=float).copy(),
            transform=_orientation_transform(affine),
            format=format,
            header=header,
        )
        canon, canon_affine, _ = canonicalize(array, affine)
        if not canon.dtype.isnative:
            canon = canon.astype(canon.dtype.newbyteorder("="))
        # Contiguous, positively strided: torch.from_numpy and C extensions need it.
        return cls(np.ascontiguousarray(canon), canon_affine, source=source, **kwargs)

    def with_array(self, array: np.ndarray, **changes: Any) -> Volume:
        """A volume of the same geometry holding *array*."""
        if array.shape[:3] != self.shape:
            raise ValueError(f"array shape {array.shape} differs from volume shape {self.shape}")
        kwargs: dict[str, Any] = {
            "modality": self.modality,
            "metadata": copy.deepcopy(self.metadata),
            "source": self.source,
        }
        kwargs.update(changes)
        return Volume(array, self.affine, **kwargs)

    # -- geometry ---------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape[:3])  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the three array axes."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def axcodes(self) -> tuple[str, str, str]:
        return axcodes(self.affine)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(abs(np.linalg.det(self.affine[:3, :3])) / 1000.0)

    def voxel_to_world(self, ijk: Iterable[float] | np.ndarray) -> np.ndarray:
        """World (RAS+, mm) coordinates of voxel indices; accepts ``(..., 3)``."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_voxel(self, xyz: Iterable[float] | np.ndarray) -> np.ndarray:
        """Continuous voxel indices of world points; accepts ``(..., 3)``."""
        xyz = np.asarray(xyz, dtype=float)
        inv = np.linalg.inv(self.affine)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def same_grid(self, other: Volume, *, tol: float = GRID_TOLERANCE_MM) -> bool:
        """True when *other* has the same shape and affine (within *tol* mm)."""
        return same_grid(self, other, tol=tol)

    def grid_differences(self, other: Volume, *, tol: float = GRID_TOLERANCE_MM) -> list[str]:
        """Human-readable list of what differs between two grids (empty if equal)."""
        diffs: list[str] = []
        if self.shape != other.shape:
            diffs.append(f"shape {other.shape} vs {self.shape}")
        sp_a, sp_b = np.array(self.spacing), np.array(other.spacing)
        if not np.allclose(sp_a, sp_b, atol=tol):
            diffs.append(
                "spacing " + "x".join(f"{s:g}" for s in sp_b)
                + " mm vs " + "x".join(f"{s:g}" for s in sp_a) + " mm"
            )
        if self.axcodes != other.axcodes:
            diffs.append(f"orientation {''.join(other.axcodes)} vs {''.join(self.axcodes)}")
        if not np.allclose(self.affine[:3, 3], other.affine[:3, 3], atol=tol):
            diffs.append(
                "origin (" + ", ".join(f"{v:.2f}" for v in other.affine[:3, 3])
                + ") mm vs (" + ", ".join(f"{v:.2f}" for v in self.affine[:3, 3]) + ") mm"
            )
        if not diffs and not np.allclose(self.affine, other.affine, atol=tol):
            diffs.append("direction cosines differ")
        return diffs

    def __repr__(self) -> str:
        sp = "x".join(f"{s:g}" for s in self.spacing)
        return (
            f"{type(self).__name__}(shape={self.shape}, spacing={sp} mm, "
            f"dtype={self.array.dtype}, modality={self.modality!r})"
        )


def same_grid(a: Volume, b: Volume, *, tol: float = GRID_TOLERANCE_MM) -> bool:
    """True when two volumes share shape and affine within *tol* mm."""
    return a.shape == b.shape and bool(np.allclose(a.affine, b.affine, atol=tol))


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Label:
    """One entry of a label table: integer value, display name and RGB colour."""

    value: int
    name: str
    color: tuple[int, int, int]

    def __post_init__(self) -> None:
        if not 0 <= int(self.value) <= 2**31 - 1:
            raise ValueError(f"label value {self.value} out of range")
        if len(self.color) != 3 or any(not 0 <= int(c) <= 255 for c in self.color):
            raise ValueError(f"label colour {self.color} is not an RGB triple in 0..255")


@dataclass
class LabelTable(Mapping[int, Label]):
    """An ordered value -> :class:`Label` mapping. Value 0 is the background."""

    entries: dict[int, Label] = field(default_factory=dict)

    @classmethod
    def from_labels(cls, labels: Iterable[Label]) -> LabelTable:
        return cls({int(lab.value): lab for lab in labels})

    def __getitem__(self, value: int) -> Label:
        return self.entries[int(value)]

    def __iter__(self) -> Iterator[int]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def name(self, value: int) -> str:
        """Name of *value*, or ``"Label N"`` for values not in the table."""
        lab = self.entries.get(int(value))
        return lab.name if lab else f"Label {int(value)}"

    def color(self, value: int) -> tuple[int, int, int]:
        """Colour of *value*; values not in the table get a stable generated colour."""
        lab = self.entries.get(int(value))
        if lab:
            return lab.color
        rng = np.random.default_rng(int(value) * 7919 + 17)
        return tuple(int(c) for c in rng.integers(60, 256, size=3))  # type: ignore[return-value]

    def with_label(self, label: Label) -> LabelTable:
        new = dict(self.entries)
        new[int(label.value)] = label
        return LabelTable(new)

    def foreground(self) -> list[int]:
        """Label values other than the background (0)."""
        return [v for v in self.entries if v != 0]

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"value": lab.value, "name": lab.name, "color": list(lab.color)}
            for lab in self.entries.values()
        ]

    @classmethod
    def from_json(cls, items: Iterable[Mapping[str, Any]]) -> LabelTable:
        return cls.from_labels(
            Label(int(it["value"]), str(it["name"]), tuple(int(c) for c in it["color"]))  # type: ignore[arg-type]
            for it in items
        )


#: BrainWeb convention used throughout Delineo for brain tissue.
BRAIN_TISSUE_LABELS = LabelTable.from_labels(
    [
        Label(0, "Background", (0, 0, 0)),
        Label(1, "CSF", (60, 130, 255)),
        Label(2, "Gray matter", (255, 180, 40)),
        Label(3, "White matter", (40, 200, 160)),
    ]
)

#: Label value of lesions in Delineo label maps (BrainWeb's MS-lesion value).
LESION_VALUE = 4

#: The brain tissue labels plus 4 "Lesion" (BrainWeb's MS-lesion value): all abnormal
#: tissue of a lesion -- core, enhancing rim and surrounding oedema (BraTS "whole tumour").
BRAIN_LESION_LABELS = BRAIN_TISSUE_LABELS.with_label(
    Label(LESION_VALUE, "Lesion", (230, 40, 200)))

#: The output of brain extraction: 1 "Intracranial" is the brain plus all CSF out to
#: the inner table of the skull (what a tissue segmentation of a whole head is confined to).
INTRACRANIAL_LABELS = LabelTable.from_labels(
    [Label(0, "Background", (0, 0, 0)), Label(1, "Intracranial", (250, 220, 60))]
)


class LabelMap(Volume):
    """An integer mask on a volume's grid, with a :class:`LabelTable`.

    Values are kept in an unsigned or signed integer array; negative values are
    rejected. ``LabelMap.empty_like(volume)`` gives a zero mask on the grid of
    *volume*, carrying its source geometry so the mask saves onto that image.
    """

    def __init__(
        self,
        array: np.ndarray,
        affine: np.ndarray,
        *,
        labels: LabelTable | None = None,
        **kwargs: Any,
    ) -> None:
        array = np.asarray(array)
        if not np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_:
            raise ValueError(f"label maps hold integers; got dtype {array.dtype}")
        if array.dtype == np.bool_:
            array = array.astype(np.uint8)
        if np.issubdtype(array.dtype, np.signedinteger) and array.size and array.min() < 0:
            raise ValueError("label values must not be negative")
        super().__init__(array, affine, **kwargs)
        self.labels = labels if labels is not None else BRAIN_TISSUE_LABELS

    @classmethod
    def empty_like(
        cls, volume: Volume, *, labels: LabelTable | None = None, dtype: Any = np.uint8
    ) -> LabelMap:
        return cls(
            np.zeros(volume.shape, dtype=dtype),
            volume.affine.copy(),
            labels=labels,
            source=volume.source,
            modality="SEG",
        )

    @classmethod
    def on_grid_of(
        cls, volume: Volume, array: np.ndarray, *, labels: LabelTable | None = None
    ) -> LabelMap:
        """Wrap an integer *array* that lies on *volume*'s (canonical) grid."""
        if array.shape[:3] != volume.shape:
            raise ValueError(f"array shape {array.shape} differs from volume shape {volume.shape}")
        return cls(array, volume.affine.copy(), labels=labels, source=volume.source, modality="SEG")

    def present_values(self) -> list[int]:
        """Sorted label values that occur in the mask (background included)."""
        return list(self.counts())

    def counts(self) -> dict[int, int]:
        """Voxel count for every value present, in increasing order of value."""
        return value_counts(self.array)

    def with_array(self, array: np.ndarray, **changes: Any) -> LabelMap:
        if array.shape[:3] != self.shape:
            raise ValueError(f"array shape {array.shape} differs from volume shape {self.shape}")
        kwargs: dict[str, Any] = {
            "labels": self.labels,
            "modality": self.modality,
            "metadata": copy.deepcopy(self.metadata),
            "source": self.source,
        }
        kwargs.update(changes)
        return LabelMap(array, self.affine, **kwargs)
