"""Per-frame geometry and rescale of one file (classic, enhanced or legacy multi-frame)."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from ...core.errors import InvalidImageError
from .records import _FrameGeom, _Header
from .tags import _first_item, _float, _floats, _value


def _orientation_tuple(values: tuple[float, ...] | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


def _frame_geometries(ds: Dataset, header: _Header) -> list[_FrameGeom]:
    """Per-frame geometry and rescale (classic, enhanced or legacy multi-frame)."""
    n = header.n_frames
    top_ipp = _floats(ds, "ImagePositionPatient", 3)
    top_iop = _orientation_tuple(_floats(ds, "ImageOrientationPatient", 6))
    top_spacing = _floats(ds, "PixelSpacing", 2) or _floats(ds, "ImagerPixelSpacing", 2)
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
            position = _floats(pos_item, "ImagePositionPatient", 3) if pos_item else None
            if position is None and n == 1:
                position = top_ipp
            orientation = (
                _floats(ori_item, "ImageOrientationPatient", 6) if ori_item else None
            ) or top_iop
            spacing = (_floats(pm_item, "PixelSpacing", 2) if pm_item else None) or top_spacing
            thickness = (_float(pm_item, "SliceThickness") if pm_item else None) or top_thick
            if thickness is None and pm_item is not None:
                thickness = _float(pm_item, "SpacingBetweenSlices")
            slope = _float(pvt_item, "RescaleSlope") if pvt_item else None
            inter = _float(pvt_item, "RescaleIntercept") if pvt_item else None
            frames.append(
                _FrameGeom(
                    position=position,
                    orientation=_orientation_tuple(orientation),
                    spacing=spacing,
                    thickness=thickness or top_sbs,
                    slope=slope0 if slope in (None, 0.0) else slope,
                    intercept=inter0 if inter is None else inter,
                )
            )
        if n == 1 or all(fr.position is not None for fr in frames):
            return frames
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
        return [_FrameGeom(top_ipp, top_iop, top_spacing, top_thick or top_sbs, slopes[0],
                           inters[0])]

    # Legacy multi-frame: one position for the whole file.
    if top_ipp is None or top_iop is None:
        return [_FrameGeom(None, None, top_spacing, top_thick or top_sbs, slopes[f], inters[f])
                for f in range(n)]
    row, col = np.array(top_iop[:3]), np.array(top_iop[3:])
    normal = np.cross(row, col)
    norm = float(np.linalg.norm(normal))
    normal = normal / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
    offsets_raw = _value(ds, "GridFrameOffsetVector")
    offsets: list[float] | None = None
    if offsets_raw is not None:
        try:
            offsets = [float(v) for v in offsets_raw]
        except (TypeError, ValueError):
            offsets = None
        if offsets is not None and len(offsets) != n:
            raise InvalidImageError(
                f"GridFrameOffsetVector has {len(offsets)} values for {n} frames",
                path=header.path,
            )
    if offsets is not None:
        # Relative offsets start at 0; absolute ones start at the first frame's z.
        rel = [o - offsets[0] for o in offsets]
    else:
        if top_sbs not in (None, 0.0):
            step, source = float(top_sbs), "SpacingBetweenSlices"
        elif top_thick not in (None, 0.0):
            step, source = float(top_thick), "SliceThickness"
        else:
            step, source = 1.0, "no spacing tag: assumed"
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
