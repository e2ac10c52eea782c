"""Slice geometry: ordering along the normal, stack checks, affine and resampling plan."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...core.errors import DicomSeriesError, InvalidImageError
from .records import _FrameGeom, _Header

#: Largest absolute difference between direction cosines of "the same" orientation.
_ORIENTATION_TOL = 1e-3
#: Relative tolerance for pixel spacings to count as equal.
_SPACING_RTOL = 1e-3
#: Relative deviation of a slice step from the median step that counts as non-uniform.
_UNIFORM_RTOL = 0.01
#: Absolute floor (mm) for the non-uniformity test (positions are rounded decimal strings).
_UNIFORM_ATOL = 1e-3
#: A step larger than this many median steps means slices are missing.
_GAP_FACTOR = 1.5
#: Tangent of the angle between slice step and normal above which the stack is sheared.
_TILT_TOL = 1e-3
#: Slices closer than this along the normal (mm) share a position.
_DUPLICATE_TOL_MM = 0.01


@dataclass(frozen=True)
class _FrameRef:
    header: _Header
    index: int  # frame index inside the file
    geom: _FrameGeom


@dataclass
class _Plan:
    """How to assemble the volume: source frames in order, grid and warnings."""

    frames: list[_FrameRef]  # sorted along the normal, duplicates removed
    affine_ras: np.ndarray
    n_out: int
    slice_spacing: float
    # For resampling: per output slice (lower source index, weight of the upper one).
    interp: list[tuple[int, float]] | None = None
    warnings: list[str] = field(default_factory=list)
    tilt_deg: float = 0.0
    # True when the image had no patient geometry and a default grid was assumed.
    assumed: bool = False


def _fmt_vec(v: Sequence[float] | np.ndarray) -> str:
    return "(" + ", ".join(f"{float(x):.3g}" for x in v) + ")"


def _lps_to_ras(affine_lps: np.ndarray) -> np.ndarray:
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps


def _affine(
    row: np.ndarray, col: np.ndarray, spacing: tuple[float, float], step: np.ndarray,
    origin: np.ndarray,
) -> np.ndarray:
    """LPS affine of the ``[column, row, slice]`` array."""
    aff = np.eye(4)
    aff[:3, 0] = row * spacing[1]
    aff[:3, 1] = col * spacing[0]
    aff[:3, 2] = step
    aff[:3, 3] = origin
    return aff


def _check_spacing(frames: list[_FrameRef], where: Path) -> tuple[tuple[float, float], list[str]]:
    warns: list[str] = []
    spacings = [f.geom.spacing for f in frames]
    known = [s for s in spacings if s is not None]
    if not known:
        warns.append("no PixelSpacing in the DICOM headers: 1 mm pixels assumed")
        return (1.0, 1.0), warns
    ref = known[0]
    if len(known) != len(spacings):
        raise DicomSeriesError("PixelSpacing is missing from some slices only", path=where)
    arr = np.array(known)
    if not np.allclose(arr, np.array(ref), rtol=_SPACING_RTOL, atol=1e-6):
        other = next(s for s in known if not np.allclose(s, ref, rtol=_SPACING_RTOL))
        raise DicomSeriesError(
            f"mixed pixel spacing in one series: {ref[0]:g}x{ref[1]:g} mm and "
            f"{other[0]:g}x{other[1]:g} mm",
            path=where,
        )
    if ref[0] <= 0 or ref[1] <= 0:
        raise InvalidImageError(f"invalid PixelSpacing {ref[0]:g}\\{ref[1]:g}", path=where)
    return (float(ref[0]), float(ref[1])), warns


def _direction_cosines(iop: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Unit row and column cosines (the header scan checked they are orthonormal)."""
    row, col = np.array(iop[:3], dtype=float), np.array(iop[3:6], dtype=float)
    return row / np.linalg.norm(row), col / np.linalg.norm(col)


def _thickness(frames: list[_FrameRef], warns: list[str]) -> float:
    t = frames[0].geom.thickness
    if t is not None and t > 0:
        return float(t)
    warns.append("one slice without SliceThickness/SpacingBetweenSlices: 1 mm thickness assumed")
    return 1.0


def _plan_without_geometry(frames: list[_FrameRef], where: Path) -> _Plan:
    """A default grid for one image without patient geometry (secondary capture...).

    Several images without geometry are refused: their order and the distance
    between them are unknown, so any 3-D volume made of them would be invented.
    """
    if len(frames) > 1:
        one_file = len({f.header.path for f in frames}) == 1
        what = "frames" if one_file else "images"
        raise DicomSeriesError(
            f"{len(frames)} {what} without ImagePositionPatient/ImageOrientationPatient: "
            "their order and spacing in the patient are unknown, so they do not form a "
            "3-D volume",
            path=where,
        )
    spacing, warns = _check_spacing(frames, where)
    step = _thickness(frames, warns)
    warns.append(
        "no ImagePositionPatient/ImageOrientationPatient: geometry assumed (image at the "
        "origin, shown as axial); positions and orientation labels are not the patient's"
    )
    aff = _affine(np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), spacing,
                  np.array([0, 0, step]), np.zeros(3))
    return _Plan(list(frames), _lps_to_ras(aff), 1, step, warnings=warns, assumed=True)


def _plan_geometry(frames: list[_FrameRef], irregular: str, where: Path) -> _Plan:
    """Order the frames along the normal, check the stack and build the affine."""
    has_geom = [f.geom.position is not None and f.geom.orientation is not None for f in frames]
    if not any(has_geom):
        return _plan_without_geometry(frames, where)
    if not all(has_geom):
        raise DicomSeriesError(
            f"{has_geom.count(False)} of {len(frames)} slices have no "
            "ImagePositionPatient/ImageOrientationPatient",
            path=where,
        )
    spacing, warns = _check_spacing(frames, where)

    iops = np.array([f.geom.orientation for f in frames], dtype=float)
    differs = np.abs(iops - iops[0]).max(axis=1) > _ORIENTATION_TOL
    if differs.any():
        other = iops[np.argmax(differs)]
        raise DicomSeriesError(
            f"mixed slice orientations in one series: {int(differs.sum())} of {len(frames)} "
            f"slices have orientation {_fmt_vec(other)} instead of {_fmt_vec(iops[0])} "
            "(a localizer or several stacks in one series?)",
            path=where,
        )
    row, col = _direction_cosines(iops[0])
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)

    positions = np.array([f.geom.position for f in frames], dtype=float)
    dist = positions @ normal
    order = sorted(
        range(len(frames)),
        key=lambda i: (
            dist[i],
            frames[i].header.instance_number or 0,
            str(frames[i].header.path),
            frames[i].index,
        ),
    )
    # Duplicate positions: identical copies of one SOP instance are dropped.
    dup_tol = min(_DUPLICATE_TOL_MM, 0.1 * min(spacing))
    kept: list[int] = []
    n_dropped = 0
    for i in order:
        if kept and abs(dist[i] - dist[kept[-1]]) < dup_tol:
            a, b = frames[kept[-1]], frames[i]
            same_sop = (
                a.header.sop_uid != ""
                and a.header.sop_uid == b.header.sop_uid
                and a.index == b.index
            )
            if same_sop:
                n_dropped += 1
                continue
            n_same = sum(1 for j in order if abs(dist[j] - dist[i]) < dup_tol)
            raise DicomSeriesError(
                f"{n_same} different images share slice position {dist[i]:.2f} mm "
                f"({a.header.path.name} and {b.header.path.name}): several echoes, phases or "
                "time points in one series? Delineo reads one 3-D volume per series",
                path=where,
            )
        kept.append(i)
    if n_dropped:
        warns.append(f"{n_dropped} duplicate file(s) of the same image ignored")
    sorted_frames = [frames[i] for i in kept]
    d = dist[kept]
    pos = positions[kept]
    n = len(kept)

    if n == 1:
        thick = _thickness(sorted_frames, warns)
        aff = _affine(row, col, spacing, normal * thick, pos[0])
        return _Plan(sorted_frames, _lps_to_ras(aff), 1, thick, warnings=warns)

    span = float(d[-1] - d[0])
    # Unit-normal-distance direction of the stack (v . normal == 1).
    v = (pos[-1] - pos[0]) / span
    expected = pos[0] + np.outer(d - d[0], v)
    deviation = float(np.linalg.norm(pos - expected, axis=1).max())
    if deviation > 0.25 * min(spacing) + 1e-3:
        raise DicomSeriesError(
            f"slice positions do not lie on one line (off by up to {deviation:.2f} mm)",
            path=where,
        )
    shear = float(np.linalg.norm(v - normal))
    tilt_deg = math.degrees(math.atan(shear))
    if shear > _TILT_TOL:
        warns.append(
            f"gantry tilt / sheared slice stack: slices are offset {tilt_deg:.2f} degrees from "
            "the slice normal; the affine keeps the true (sheared) geometry"
        )

    steps = np.diff(d)
    median = float(np.median(steps))
    problems: list[str] = []
    gaps = steps > _GAP_FACTOR * median
    if gaps.any():
        n_missing = int(sum(max(1, round(s / median) - 1) for s in steps[gaps]))
        k = int(np.argmax(gaps))
        problems.append(
            f"about {n_missing} missing slice(s): gap of {steps[k]:.3g} mm after slice "
            f"position {d[k]:.2f} mm (median step {median:.3g} mm)"
        )
    uneven = (np.abs(steps - median) > max(_UNIFORM_RTOL * median, _UNIFORM_ATOL)) & ~gaps
    if uneven.any():
        rel = float(np.abs(steps[~gaps] - median).max() / median)
        problems.append(
            f"non-uniform slice spacing: steps from {steps[~gaps].min():.3g} to "
            f"{steps[~gaps].max():.3g} mm (median {median:.3g} mm, {100 * rel:.1f}% deviation)"
        )
    if not problems:
        step = span / (n - 1)
        aff = _affine(row, col, spacing, v * step, pos[0])
        return _Plan(sorted_frames, _lps_to_ras(aff), n, step, warnings=warns, tilt_deg=tilt_deg)

    if irregular == "error":
        raise DicomSeriesError("; ".join(problems), path=where)
    n_out = round(span / median) + 1
    if n_out > 3 * n + 10:
        raise DicomSeriesError(
            "; ".join(problems) + f": too irregular to resample ({n} slices over {span:.1f} mm "
            f"would need {n_out} slices at the median step)",
            path=where,
        )
    step = span / (n_out - 1)
    targets = d[0] + step * np.arange(n_out)
    interp: list[tuple[int, float]] = []
    for t in targets:
        i0 = int(np.clip(np.searchsorted(d, t, side="right") - 1, 0, n - 2))
        w = float(np.clip((t - d[i0]) / (d[i0 + 1] - d[i0]), 0.0, 1.0))
        interp.append((i0, w))
    warns.append(
        "; ".join(problems)
        + f": resampled linearly to {n_out} slices {step:.4g} mm apart"
    )
    aff = _affine(row, col, spacing, v * step, pos[0])
    return _Plan(sorted_frames, _lps_to_ras(aff), n_out, step, interp=interp, warnings=warns,
                 tilt_deg=tilt_deg)
