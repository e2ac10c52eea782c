"""Per-frame geometry and rescale of one file (classic, enhanced or legacy multi-frame)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from ...core.errors import InvalidImageError
from .records import _FrameGeom, _Header
from .tags import _first_item, _float, _geometry_floats, _shown, _value

#: Largest deviation from 1 of a direction cosine's length, and largest |row . column|.
_UNIT_TOL = 0.01


def _orientation(
    ds: Dataset | None, path: Path, *, context: str = ""
) -> tuple[float, ...] | None:
    """ImageOrientationPatient of *ds*, checked to be two orthogonal unit vectors."""
    iop = _geometry_floats(ds, "ImageOrientationPatient", 6, path, context=context)
    if iop is None:
        return None
    row, col = np.array(iop[:3]), np.array(iop[3:])
    n_row, n_col = float(np.linalg.norm(row)), float(np.linalg.norm(col))
    dot = float(row @ col)
    if abs(n_row - 1) > _UNIT_TOL or abs(n_col - 1) > _UNIT_TOL or abs(dot) > _UNIT_TOL:
        raise InvalidImageError(
            f"{context}ImageOrientationPatient {_shown(iop)} is not two orthogonal unit "
            f"vectors (lengths {n_row:.3g} and {n_col:.3g}, dot product {dot:.3g})",
            path=path,
        )
    return iop


def _pixel_spacing(ds: Dataset, path: Path) -> tuple[float, ...] | None:
    """PixelSpacing (else ImagerPixelSpacing) of *ds*; malformed values raise."""
    return _geometry_floats(ds, "PixelSpacing", 2, path) or _geometry_floats(
        ds, "ImagerPixelSpacing", 2, path
    )


def _check_complete(
    frames: list[_FrameGeom], path: Path, *, per_frame: bool = True
) -> list[_FrameGeom]:
    """Refuse a position without an orientation or the reverse: it cannot be placed."""
    for f, fr in enumerate(frames):
        if (fr.position is None) != (fr.orientation is None):
            has, lacks = (
                ("ImagePositionPatient", "ImageOrientationPatient")
                if fr.orientation is None
                else ("ImageOrientationPatient", "ImagePositionPatient")
            )
            where = f"frame {f + 1}: " if per_frame and len(frames) > 1 else ""
            raise InvalidImageError(f"{where}{has} is given but {lacks} is missing", path=path)
    return frames


def _frame_geometries(ds: Dataset, header: _Header) -> list[_FrameGeom]:
    """Per-frame geometry and rescale (classic, enhanced or legacy multi-frame).

    Geometry tags that are present but malformed (wrong value count,
    non-numeric, NaN, an orientation that is not two orthogonal unit vectors)
    raise :class:`~engine.core.errors.InvalidImageError`; absent ones give
    ``None`` and are dealt with by :func:`.geometry._plan_geometry`.
    """
    n = header.n_frames
    path = header.path
    top_ipp = _geometry_floats(ds, "ImagePositionPatient", 3, path)
    top_iop = _orientation(ds, path)
    top_spacing = _pixel_spacing(ds, path)
    top_thick = _float(ds, "SliceThickness")
    top_sbs = _float(ds, "SpacingBetweenSlices")
    top_slope = _float(ds, "RescaleSlope")
    top_inter = _float(ds, "RescaleIntercept")
    if top_slope is None and header.modality == "RTDOSE":
        top_slope = _float(ds, "DoseGridScaling")
    slope0 = 1.0 if top_slope in (None, 0.0) else top_slope
    inter0 = 0.0 if top_inter is None else top_inter

    per = _value(ds, "PerFrameFunctionalGroupsSequence")
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    if per is not None or shared is not None:
        try:
            n_per = len(per) if per is not None else 0
        except TypeError:
            n_per = 0
        if per is not None and n_per != n:
            raise InvalidImageError(
                f"PerFrameFunctionalGroupsSequence has {n_per} items for {n} frames",
                path=header.path,
            )
        frames: list[_FrameGeom] = []
        for f in range(n):
            groups = [per[f]] if per is not None else []
            if shared is not None:
                groups.append(shared)

            def macro(seq: str, groups: list[Dataset] = groups) -> Dataset | None:
                for g in groups:
                    item = _first_item(g, seq)
                    if item is not None:
                        return item
                return None

            pos_item = macro("PlanePositionSequence")
            ori_item = macro("PlaneOrientationSequence")
            pm_item = macro("PixelMeasuresSequence")
            pvt_item = macro("PixelValueTransformationSequence")
            context = f"frame {f + 1}: " if n > 1 else ""
            position = _geometry_floats(pos_item, "ImagePositionPatient", 3, path,
                                        context=context)
            if position is None and n == 1:
                position = top_ipp
            orientation = _orientation(ori_item, path, context=context) or top_iop
            spacing = _geometry_floats(pm_item, "PixelSpacing", 2, path,
                                       context=context) or top_spacing
            thickness = (_float(pm_item, "SliceThickness") if pm_item else None) or top_thick
            if thickness is None and pm_item is not None:
                thickness = _float(pm_item, "SpacingBetweenSlices")
            slope = _float(pvt_item, "RescaleSlope") if pvt_item else None
            inter = _float(pvt_item, "RescaleIntercept") if pvt_item else None
            frames.append(
                _FrameGeom(
                    position=position,
                    orientation=orientation,
                    spacing=spacing,
                    thickness=thickness or top_sbs,
                    slope=slope0 if slope in (None, 0.0) else slope,
                    intercept=inter0 if inter is None else inter,
                )
            )
        if n == 1 or all(fr.position is not None for fr in frames):
            return _check_complete(frames, path)
        if any(fr.position is not None for fr in frames):
            raise InvalidImageError(
                "some frames have a PlanePositionSequence and others not", path=header.path
            )
        # Enhanced object without frame positions: fall through to the legacy rule,
        # keeping the per-frame rescale values.
        slopes = [fr.slope for fr in frames]
        inters = [fr.intercept for fr in frames]
        if top_iop is None:
            top_iop = frames[0].orientation
        if top_spacing is None:
            top_spacing = frames[0].spacing
    else:
        slopes = [slope0] * n
        inters = [inter0] * n

    if n == 1:
        return _check_complete([_FrameGeom(top_ipp, top_iop, top_spacing, top_thick or top_sbs,
                                           slopes[0], inters[0])], path)

    # Legacy multi-frame: one position for the whole file.
    if top_ipp is None or top_iop is None:
        frames = [_FrameGeom(top_ipp, top_iop, top_spacing, top_thick or top_sbs, slopes[f],
                             inters[f]) for f in range(n)]
        return _check_complete(frames, path, per_frame=False)
    row, col = np.array(top_iop[:3]), np.array(top_iop[3:])
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)  # non-zero: _orientation checked the cosines
    offsets = _geometry_floats(ds, "GridFrameOffsetVector", n, path)
    if offsets is not None:
        # Relative offsets start at 0; absolute ones start at the first frame's z.
        rel = [o - offsets[0] for o in offsets]
    else:
        if top_sbs not in (None, 0.0):
            step, source = float(top_sbs), "SpacingBetweenSlices"
        elif top_thick not in (None, 0.0):
            step, source = float(top_thick), "SliceThickness"
        else:
            raise InvalidImageError(
                f"{n} frames share one ImagePositionPatient and no GridFrameOffsetVector, "
                "SpacingBetweenSlices or SliceThickness gives the distance between them",
                path=path,
            )
        rel = [f * step for f in range(n)]
        header.warnings.append(
            f"multi-frame file without per-frame positions: frames placed {step:g} mm apart "
            f"along the slice normal ({source})"
        )
    ipp = np.array(top_ipp, dtype=float)
    return [
        _FrameGeom(
            tuple(float(v) for v in ipp + rel[f] * normal),  # type: ignore[arg-type]
            top_iop,
            top_spacing,
            top_thick or top_sbs or (abs(rel[1] - rel[0]) if n > 1 else None),
            slopes[f],
            inters[f],
        )
        for f in range(n)
    ]
