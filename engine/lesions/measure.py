"""Lesion instances and their measurements (volume, RANO/RECIST diameters, contrast).

A lesion is a connected component of the value ``4`` ("Lesion", the BrainWeb
MS-lesion convention) of a label map, or one value ``1..N`` of an instance map.
:func:`lesion_instances` turns a label map into an instance map;
:func:`measure_lesions` measures every instance on the image it was drawn on;
:func:`write_findings` writes the measurements as JSON and CSV.

Definitions (see docs/findings.md):

* **Diameters** are distances between voxel *centres*, in mm, through the full
  voxel-to-world affine (anisotropic and sheared grids included).
* **Axial slice.** "Axial" is the plane normal to the world S axis. Delineo
  never resamples: it measures in the voxel slices (constant index along one
  array axis) whose normal is closest to S, and reports the angle between that
  normal and S as ``slice_tilt_deg`` (0 for a scan acquired axially). On an
  oblique scan the diameters are therefore those of the acquired, slightly
  tilted slices, measured with their true in-plane geometry.
* **Longest axial diameter**: the longest distance between two voxel centres of
  the lesion within one such slice; the slice reported is the one where it is
  longest (ties: the longer perpendicular diameter, then the slice nearest the
  centroid).
* **Perpendicular diameter**: in the same slice, the longest segment at right
  angles to the longest diameter whose end points lie on the convex hull of the
  slice's voxel centres (a caliper measure: for a non-convex lesion the segment
  may cross a notch, as a radiologist's caliper would).
* **3-D diameter**: the longest distance between two voxel centres of the
  lesion (computed on the convex hull of its boundary voxels).
* **Contrast**: the mean intensity inside against the mean in a shell of
  voxels outside the lesion whose centres lie within ``shell_mm`` (3 mm) of it,
  leaving out every lesion and, when a tissue map is given, the background.

Examples
--------
>>> import numpy as np
>>> from engine.core.volume import LabelMap, Volume
>>> arr = np.zeros((12, 12, 5), np.uint8); arr[3:8, 4:7, 2] = 4
>>> labels = LabelMap(arr, np.diag([0.5, 0.5, 2.0, 1.0]))
>>> image = Volume(arr.astype(np.float32) * 10, labels.affine)
>>> found = measure_lesions(lesion_instances(labels), image)
>>> round(found[0].axial_diameter_mm, 3), round(found[0].perpendicular_diameter_mm, 3)
(2.236, 1.118)
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

from ..core import morphology
from ..core.errors import GeometryMismatchError, ParameterError
from ..core.volume import LESION_VALUE, LabelMap, Volume
from ..io.atomic import atomic_write_text

__all__ = [
    "FINDINGS_COLUMNS",
    "LESION_VALUE",
    "SHELL_MM",
    "Finding",
    "findings_csv",
    "findings_table",
    "lesion_instances",
    "measure_lesions",
    "slice_axis_closest_to_s",
    "write_findings",
]

#: Thickness (mm) of the shell of surrounding tissue used for the contrast.
SHELL_MM = 3.0

#: Distances closer than this (mm) count as equal when choosing a slice or a chord.
_TIE_MM = 1e-6

Point = tuple[float, float, float]


@dataclass(frozen=True)
class Finding:
    """Measurements of one lesion (lengths in mm, volumes in mL, voxel indices 0-based).

    Attributes
    ----------
    id : int
        Instance number (1 = the largest lesion when made by :func:`lesion_instances`).
    voxel_count : int
        Number of voxels.
    volume_ml : float
        ``voxel_count`` x voxel volume.
    voxel_centroid : (i, j, k)
        Mean voxel index (canonical RAS+ array).
    world_centroid_mm : (R, A, S)
        The centroid in world millimetres (RAS+), through the affine.
    slice_axis, slice_index : int
        The array axis normal to the measuring slice, and the slice.
    slice_tilt_deg : float
        Angle between that slice's normal and the world S axis.
    axial_diameter_mm, perpendicular_diameter_mm : float
        Longest in-slice diameter and the longest diameter at right angles to it.
    axial_diameter_ends, perpendicular_diameter_ends : ((i, j, k), (i, j, k))
        End points of both diameters in (fractional) voxel indices, for drawing.
    diameter_3d_mm : float
        Longest distance between two voxel centres of the lesion.
    equivalent_diameter_mm : float
        Diameter of the sphere of the same volume.
    mean_intensity : float
        Mean image value inside the lesion.
    shell_mean_intensity : float or None
        Mean image value in the surrounding shell (None when the shell is empty).
    contrast_ratio, contrast_difference : float or None
        ``mean / shell mean`` (None when the shell mean is 0) and ``mean - shell mean``.
    tissue : str or None
        Name of the most frequent tissue label in the shell (None without a tissue map).
    confidence : float or None
        Mean probability inside the lesion (None without a probability map).
    """

    id: int
    voxel_count: int
    volume_ml: float
    voxel_centroid: Point
    world_centroid_mm: Point
    slice_axis: int
    slice_index: int
    slice_tilt_deg: float
    axial_diameter_mm: float
    perpendicular_diameter_mm: float
    axial_diameter_ends: tuple[Point, Point]
    perpendicular_diameter_ends: tuple[Point, Point]
    diameter_3d_mm: float
    equivalent_diameter_mm: float
    mean_intensity: float
    shell_mean_intensity: float | None
    contrast_ratio: float | None
    contrast_difference: float | None
    tissue: str | None
    confidence: float | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists, non-finite numbers as ``None``)."""
        return {key: _jsonable(value) for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        """The inverse of :meth:`to_json` (for reports made from a findings file)."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            value = data.get(f.name)
            if f.name in ("voxel_centroid", "world_centroid_mm"):
                value = tuple(float(v) for v in value)
            elif f.name.endswith("_ends"):
                value = tuple(tuple(float(v) for v in p) for p in value)
            kwargs[f.name] = value
        return cls(**kwargs)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value


# ---------------------------------------------------------------------------
# Instances
# ---------------------------------------------------------------------------
def lesion_instances(
    labels: LabelMap, *, lesion_value: int = LESION_VALUE, connectivity: int = 26
) -> np.ndarray:
    """Connected lesions of a label map, numbered ``1..N`` by decreasing volume.

    Parameters
    ----------
    labels : LabelMap
        The label map; voxels equal to *lesion_value* are lesion.
    lesion_value : int
        Label value of lesions (default 4, "Lesion").
    connectivity : {6, 18, 26}
        Voxel neighbourhood that joins two lesion voxels into one lesion
        (26: faces, edges and corners).

    Returns
    -------
    ndarray of int32
        0 outside lesions, ``1..N`` inside; equal volumes keep the order of
        their first voxel in the array.
    """
    mask = np.asarray(labels.array) == int(lesion_value)
    out = np.zeros(mask.shape, np.int32)
    # labelled in the lesions' box: the same components in the same order, far fewer voxels
    box = morphology.bounding_box(mask)
    components, n = morphology.label(mask[box], connectivity)
    if n == 0:
        return out
    counts = np.bincount(components.reshape(-1), minlength=n + 1)[1:]
    order = np.lexsort((np.arange(n), -counts))  # by decreasing size, then first seen
    relabel = np.zeros(n + 1, np.int32)
    relabel[order + 1] = np.arange(1, n + 1, dtype=np.int32)
    out[box] = relabel[components]
    return out


# ---------------------------------------------------------------------------
# Geometry helpers
# ---------------------------------------------------------------------------
def slice_axis_closest_to_s(affine: np.ndarray) -> tuple[int, float]:
    """The array axis whose voxel slices are closest to axial, and their tilt (degrees).

    The normal of the slices of constant index along axis ``n`` is the cross
    product of the other two voxel axes (exact for sheared grids too).

    Examples
    --------
    >>> slice_axis_closest_to_s(np.diag([1.0, 1.0, 3.0, 1.0]))
    (2, 0.0)
    """
    cols = np.asarray(affine, float)[:3, :3]
    best_axis, best_cos = 2, -1.0
    for axis in (2, 1, 0):  # on an exact tie prefer the last array axis (RAS+ k)
        a, b = (x for x in range(3) if x != axis)
        normal = np.cross(cols[:, a], cols[:, b])
        cos = abs(normal[2]) / float(np.linalg.norm(normal))
        if cos > best_cos + 1e-12:
            best_axis, best_cos = axis, cos
    tilt = math.degrees(math.acos(min(1.0, best_cos)))
    return best_axis, round(tilt, 9)


def _hull_indices(points: np.ndarray) -> np.ndarray:
    """Indices of the points that span the convex hull (any dimension, degenerate sets too)."""
    n = len(points)
    if n <= 3:
        return np.arange(n)
    centred = points - points.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    rank = int((s > max(float(s[0]), 1.0) * 1e-9).sum())
    if rank == 0:
        return np.array([0])
    coords = centred @ vt[:rank].T
    if rank == 1:
        return np.array([int(np.argmin(coords[:, 0])), int(np.argmax(coords[:, 0]))])
    return ConvexHull(coords).vertices


def _farthest_pair(points: np.ndarray) -> tuple[int, int, float]:
    """Indices and distance of the two points farthest apart (brute force, chunked)."""
    if len(points) < 2:
        return 0, 0, 0.0
    best = (-1.0, 0, 0)
    for start in range(0, len(points), 256):
        block = points[start:start + 256]
        d2 = ((block[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1)
        flat = int(np.argmax(d2))
        i, j = divmod(flat, d2.shape[1])
        if d2[i, j] > best[0]:
            best = (float(d2[i, j]), start + i, j)
    return best[1], best[2], math.sqrt(best[0])


def _polygon_chord(poly: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray,
                                                                             np.ndarray]:
    """Longest chord of the convex polygon *poly* at right angles to the segment ``a-b``.

    *poly* lists the hull vertices in order (2-D mm). The chord length is a
    concave piecewise-linear function of the position along ``a-b`` whose
    break points are the vertices, so only the vertices' positions are tried;
    when several give the longest chord (a plateau, as on a rectangle) the
    chord through the middle of the plateau is returned.
    """
    length = float(np.linalg.norm(b - a))
    mid = (a + b) / 2
    if length == 0.0 or len(poly) < 3:
        return 0.0, mid, mid
    u = (b - a) / length
    w = np.array([-u[1], u[0]])
    t = (poly - a) @ u
    s = (poly - a) @ w
    t_next, s_next = np.roll(t, -1), np.roll(s, -1)

    def span(tk: float) -> tuple[float, float]:
        values: list[float] = []
        for i in np.nonzero((t - tk) * (t_next - tk) <= 0)[0]:
            if t[i] == t_next[i]:
                values += [s[i], s_next[i]]
            else:
                f = (tk - t[i]) / (t_next[i] - t[i])
                values.append(s[i] + f * (s_next[i] - s[i]))
        return min(values), max(values)

    positions = np.unique(t)
    chords = np.array([hi - lo for lo, hi in map(span, positions)])
    top = positions[chords >= chords.max() - _TIE_MM]
    tk = float(top.min() + top.max()) / 2
    lo, hi = span(tk)
    base = a + tk * u
    return float(hi - lo), base + lo * w, base + hi * w


@dataclass
class _Slice:
    index: int
    diameter: float
    perpendicular: float
    ends: tuple[np.ndarray, np.ndarray]  # in-plane voxel coordinates (2,)
    perp_ends: tuple[np.ndarray, np.ndarray]


def _measure_slice(uv: np.ndarray, to_mm: np.ndarray, index: int) -> _Slice:
    """Diameters of one slice's voxel centres *uv* (in-plane indices) with in-plane metric."""
    xy = uv @ to_mm.T
    hull = _hull_indices(xy)
    i, j, diameter = _farthest_pair(xy[hull])
    a, b = xy[hull[i]], xy[hull[j]]
    perp, p, q = _polygon_chord(xy[hull], a, b)
    perp = min(perp, diameter)  # never longer than the diameter; rounding could make it so
    back = np.linalg.inv(to_mm)
    return _Slice(index, diameter, perp, (uv[hull[i]].astype(float), uv[hull[j]].astype(float)),
                  (back @ p, back @ q))


def _in_plane_metric(affine: np.ndarray, axis: int) -> tuple[tuple[int, int], np.ndarray]:
    """The two in-plane axes and a 2x2 map from their indices to orthonormal mm coordinates."""
    a, b = (x for x in range(3) if x != axis)
    cols = np.asarray(affine, float)[:3, [a, b]]
    _, r = np.linalg.qr(cols)  # |r @ x| == |cols @ x|: an isometric 2-D frame of the slice
    return (a, b), r


# ---------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------
def _as_array(x: Volume | np.ndarray, image: Volume, what: str) -> np.ndarray:
    if isinstance(x, Volume):
        if not x.same_grid(image):
            raise GeometryMismatchError(f"the {what} does not lie on the image grid",
                                        differences=image.grid_differences(x))
        return np.asarray(x.array)
    arr = np.asarray(x)
    if arr.shape != image.shape:
        raise ParameterError(f"the {what} has shape {arr.shape}, the image {image.shape}")
    return arr


def measure_lesions(
    instances: np.ndarray | LabelMap,
    image: Volume,
    *,
    tissue: LabelMap | None = None,
    probability: Volume | np.ndarray | None = None,
    shell_mm: float = SHELL_MM,
) -> list[Finding]:
    """Measure every lesion of an instance map on *image* (see the module docstring).

    Parameters
    ----------
    instances : ndarray or LabelMap
        0 outside lesions, ``1..N`` inside (e.g. from :func:`lesion_instances`),
        on the grid of *image*. Missing numbers are skipped.
    image : Volume
        The image; its affine gives every length and position.
    tissue : LabelMap, optional
        Tissue labels (e.g. CSF/GM/WM) on the same grid: name the tissue each
        lesion lies in, and leave the background out of the shell.
    probability : Volume or ndarray, optional
        Lesion probability per voxel; its mean inside a lesion is the confidence.
    shell_mm : float
        Thickness of the shell of surrounding tissue (mm).

    Returns
    -------
    list of Finding
        One per lesion, in instance order; empty when there is none.

    The axial diameters are measured in the voxel slices whose normal is
    closest to the world S axis, with the slices' true in-plane spacings (and
    shear); ``slice_tilt_deg`` tells how far those slices are from axial.
    Distances to the shell use the voxel spacings along the array axes (the
    shear of a gantry-tilted grid is ignored there).
    """
    if isinstance(instances, LabelMap) and any(
            lab.name.lower() == "lesion" for lab in instances.labels.entries.values()):
        raise ParameterError("this is a label map, not an instance map: number its lesions "
                             "with lesion_instances first")
    inst = _as_array(instances, image, "instance map")
    if not np.issubdtype(inst.dtype, np.integer) and inst.dtype != np.bool_:
        raise ParameterError(f"an instance map holds integers, not {inst.dtype}")
    if inst.size and inst.min() < 0:
        raise ParameterError("an instance map holds no negative values")
    if not (math.isfinite(shell_mm) and shell_mm > 0):
        raise ParameterError(f"the shell thickness must be positive, not {shell_mm}")
    inst = inst.astype(np.int64, copy=False)
    values = np.asarray(image.array)
    tissue_arr = None if tissue is None else _as_array(tissue, image, "tissue map")
    prob = None if probability is None else _as_array(probability, image, "probability map")

    affine = image.affine
    cols = affine[:3, :3]
    spacing = np.array(image.spacing)
    voxel_ml = image.voxel_volume_ml
    axis, tilt = slice_axis_closest_to_s(affine)
    (ua, ub), to_mm = _in_plane_metric(affine, axis)
    pad = np.ceil(shell_mm / spacing).astype(int) + 1
    erode = ndimage.generate_binary_structure(3, 1)

    findings: list[Finding] = []
    for lesion_id, box in enumerate(ndimage.find_objects(inst), start=1):
        if box is None:
            continue
        big = tuple(slice(max(0, s.start - p), min(n, s.stop + p))
                    for s, p, n in zip(box, pad, inst.shape, strict=True))
        origin = np.array([s.start for s in big])
        sub = inst[big]
        mask = sub == lesion_id
        idx = np.argwhere(mask) + origin
        count = len(idx)
        centroid = idx.mean(axis=0)
        world = image.voxel_to_world(centroid)

        # 3-D diameter on the boundary voxels (the hull of all voxels has the same vertices).
        boundary = mask & ~ndimage.binary_erosion(mask, erode, border_value=0)
        pts = (np.argwhere(boundary) + origin) @ cols.T
        hull = _hull_indices(pts)
        _, _, diameter_3d = _farthest_pair(pts[hull])

        # Axial diameters, slice by slice.
        best: _Slice | None = None
        for k in np.unique(idx[:, axis]):
            in_slice = idx[idx[:, axis] == k]
            cand = _measure_slice(in_slice[:, [ua, ub]].astype(float), to_mm, int(k))
            if best is None:
                best = cand
                continue
            if cand.diameter > best.diameter + _TIE_MM or (
                abs(cand.diameter - best.diameter) <= _TIE_MM and (
                    cand.perpendicular > best.perpendicular + _TIE_MM or (
                        abs(cand.perpendicular - best.perpendicular) <= _TIE_MM
                        and abs(k - centroid[axis]) < abs(best.index - centroid[axis]) - 1e-9))):
                best = cand
        assert best is not None

        def to_voxel(uv: np.ndarray, k: int = best.index) -> Point:
            p = [0.0, 0.0, 0.0]
            p[axis], p[ua], p[ub] = float(k), float(uv[0]), float(uv[1])
            return (p[0], p[1], p[2])

        # Intensity, shell and tissue.
        box_values = np.asarray(values[big], dtype=np.float64)
        mean = float(box_values[mask].mean())
        dist = ndimage.distance_transform_edt(~mask, sampling=spacing)
        shell = (dist > 0) & (dist <= shell_mm + _TIE_MM) & (sub == 0)
        if tissue_arr is not None:
            shell &= tissue_arr[big] != 0
        shell_mean = ratio = difference = None
        tissue_name = None
        if shell.any():
            shell_mean = float(box_values[shell].mean())
            difference = mean - shell_mean
            ratio = mean / shell_mean if shell_mean != 0 else None
            if tissue_arr is not None and tissue is not None:
                found, counts = np.unique(tissue_arr[big][shell], return_counts=True)
                tissue_name = tissue.labels.name(int(found[int(np.argmax(counts))]))
        confidence = None if prob is None else float(np.asarray(prob[big], float)[mask].mean())

        volume_mm3 = count * voxel_ml * 1000.0
        findings.append(Finding(
            id=lesion_id,
            voxel_count=int(count),
            volume_ml=float(count * voxel_ml),
            voxel_centroid=tuple(float(v) for v in centroid),  # type: ignore[arg-type]
            world_centroid_mm=tuple(float(v) for v in world),  # type: ignore[arg-type]
            slice_axis=int(axis),
            slice_index=int(best.index),
            slice_tilt_deg=float(tilt),
            axial_diameter_mm=float(best.diameter),
            perpendicular_diameter_mm=float(best.perpendicular),
            axial_diameter_ends=(to_voxel(best.ends[0]), to_voxel(best.ends[1])),
            perpendicular_diameter_ends=(to_voxel(best.perp_ends[0]),
                                         to_voxel(best.perp_ends[1])),
            diameter_3d_mm=float(diameter_3d),
            equivalent_diameter_mm=float((6.0 * volume_mm3 / math.pi) ** (1.0 / 3.0)),
            mean_intensity=mean,
            shell_mean_intensity=shell_mean,
            contrast_ratio=ratio,
            contrast_difference=difference,
            tissue=tissue_name,
            confidence=confidence,
        ))
    return findings


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------
#: CSV columns (units in the names) and how each is read from a finding.
FINDINGS_COLUMNS: tuple[str, ...] = (
    "id", "voxel_count", "volume_ml",
    "centroid_i_voxel", "centroid_j_voxel", "centroid_k_voxel",
    "centroid_R_mm", "centroid_A_mm", "centroid_S_mm",
    "slice_axis", "slice_index", "slice_tilt_deg",
    "axial_diameter_mm", "perpendicular_diameter_mm", "diameter_3d_mm",
    "equivalent_diameter_mm", "mean_intensity", "shell_mean_intensity",
    "contrast_ratio", "contrast_difference", "tissue", "confidence",
)


def findings_table(findings: Iterable[Finding]) -> list[dict[str, Any]]:
    """One flat row per finding, keyed by :data:`FINDINGS_COLUMNS`."""
    rows = []
    for f in findings:
        row: dict[str, Any] = {
            "id": f.id, "voxel_count": f.voxel_count, "volume_ml": f.volume_ml,
            "slice_axis": f.slice_axis, "slice_index": f.slice_index,
            "slice_tilt_deg": f.slice_tilt_deg,
            "axial_diameter_mm": f.axial_diameter_mm,
            "perpendicular_diameter_mm": f.perpendicular_diameter_mm,
            "diameter_3d_mm": f.diameter_3d_mm,
            "equivalent_diameter_mm": f.equivalent_diameter_mm,
            "mean_intensity": f.mean_intensity, "shell_mean_intensity": f.shell_mean_intensity,
            "contrast_ratio": f.contrast_ratio, "contrast_difference": f.contrast_difference,
            "tissue": f.tissue, "confidence": f.confidence,
        }
        for name, v in zip("ijk", f.voxel_centroid, strict=True):
            row[f"centroid_{name}_voxel"] = v
        for name, v in zip("RAS", f.world_centroid_mm, strict=True):
            row[f"centroid_{name}_mm"] = v
        rows.append({c: row[c] for c in FINDINGS_COLUMNS})
    return rows


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


def findings_csv(
    findings: Sequence[Finding], *, extra_columns: Mapping[str, Sequence[Any]] | None = None
) -> str:
    """The CSV text of :func:`write_findings`: a header, then one row per finding.

    The columns are :data:`FINDINGS_COLUMNS`, then each of *extra_columns*
    (name -> one value per finding, e.g. a review status); missing values are
    empty cells, numbers have 6 significant digits.
    """
    extra = dict(extra_columns or {})
    for name, values in extra.items():
        if name in FINDINGS_COLUMNS:
            raise ParameterError(f"the extra column {name!r} is already a findings column")
        if len(values) != len(findings):
            raise ParameterError(f"the extra column {name!r} has {len(values)} values for "
                                 f"{len(findings)} findings")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*FINDINGS_COLUMNS, *extra])
    for n, row in enumerate(findings_table(findings)):
        writer.writerow([_csv_value(row[c]) for c in FINDINGS_COLUMNS]
                        + [_csv_value(values[n]) for values in extra.values()])
    return buffer.getvalue()


def write_findings(
    findings: Sequence[Finding], folder: str | Path, *, stem: str = "findings",
    source: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write ``<stem>.json`` and ``<stem>.csv`` into the existing *folder*, atomically.

    The JSON holds every field of every finding plus the units, and *source*
    (what produced the findings: input, pipeline, the lesion networks with the
    sha256 of their weights, the threshold) when given; the CSV one row per
    lesion with the units in the column names (empty cells for missing
    values). Returns the two paths.
    """
    folder = Path(folder)
    if not stem or "/" in stem or "\\" in stem:
        raise ParameterError(f"the file stem {stem!r} is not a plain file name")
    document = {
        "format": "delineo-findings",
        "version": 1,
        "units": {"length": "mm", "volume": "mL", "voxel": "0-based index (RAS+ array)",
                  "world": "RAS+ mm", "angle": "degrees"},
        "n_lesions": len(findings),
        "findings": [f.to_json() for f in findings],
    }
    if source is not None:
        document["source"] = dict(source)
    json_path, csv_path = folder / f"{stem}.json", folder / f"{stem}.csv"
    atomic_write_text(json_path, json.dumps(document, indent=2) + "\n")
    atomic_write_text(csv_path, findings_csv(findings))
    return [json_path, csv_path]
