"""DICOM reading: a folder, a series or one file as a canonical RAS+ volume.

What the reader guarantees
--------------------------
* **Headers first.** Every candidate file is read with
  ``stop_before_pixels=True`` and validated (image size against the bytes in
  the file, geometry, decoders) before any voxel array is allocated.
* **Geometry from the patient coordinates only.** Slices are ordered by their
  position along the slice normal (the cross product of the two
  ``ImageOrientationPatient`` direction cosines), never by file name or
  ``InstanceNumber``. The affine is built from ``ImagePositionPatient``,
  ``ImageOrientationPatient``, ``PixelSpacing`` and the step between the first
  and the last slice, so a gantry tilt (slices sheared along the normal) keeps
  its true geometry. DICOM's LPS patient space is converted to the RAS world
  of NIfTI/Delineo by negating x and y.
* **No invented geometry.** A malformed geometry tag (wrong value count,
  non-numeric or NaN values, direction cosines that are not two orthogonal
  unit vectors) raises :class:`~engine.core.errors.InvalidImageError` naming
  the file and the tag, and so do a position without an orientation and the
  reverse. Several slices or frames without any patient geometry raise
  :class:`~engine.core.errors.DicomSeriesError`. Only a single image without
  geometry (a secondary capture, an ultrasound still) is read on a default
  grid, with a logged warning and ``metadata["geometry"] == "assumed"``.
* **Intensities as the scanner meant them.** ``RescaleSlope`` and
  ``RescaleIntercept`` are applied slice by slice (they may differ per slice
  or per frame), so CT is in Hounsfield units. The result stays ``int16`` when
  the rescale is an integral shift and the values fit, else ``float32``.
* **Irregular stacks are reported.** Non-uniform spacing, missing slices,
  mixed orientations or image sizes, duplicate positions and gantry tilt are
  detected. Unevenly spaced stacks are either refused
  (``irregular="error"``) or resampled linearly along the normal onto a
  uniform grid (``irregular="resample"``, the default) with a warning in
  ``metadata["warnings"]``.
* **Typed, one-line errors.** Empty, truncated or non-DICOM files, folders
  without images, absurd image sizes, undecodable or compressed pixel data
  without a decoder all raise a :class:`~engine.core.errors.ReadError` subclass
  whose message names the file and the problem.

Array layout
------------
The file-order array is indexed ``[column, row, slice]``: voxel axis 0 runs
along the row direction cosine (``IOP[0:3]``) with the column spacing
(``PixelSpacing[1]``), axis 1 along the column direction cosine (``IOP[3:6]``)
with the row spacing (``PixelSpacing[0]``), axis 2 along the sorted slices.
:meth:`engine.core.volume.Volume.from_file_array` then flips/permutes it to RAS+.

Examples
--------
>>> from pydicom.data import get_testdata_file
>>> vol = read_dicom(get_testdata_file("CT_small.dcm"))
>>> vol.shape, vol.modality, str(vol.array.dtype)
((128, 128, 1), 'CT', 'int16')
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import NoImageFoundError, ParameterError, ReadError
from ...core.jobs import CancelToken, check_cancel, report, scaled_progress
from ...core.volume import Volume
from .geometry import _TILT_TOL
from .headers import is_dicom_file
from .pixels import _assemble, _decode
from .provenance import DicomProvenance, SliceSource
from .series import (
    DicomSeriesInfo,
    Progress,
    _check_series,
    _describe,
    _group,
    _scan,
    _select_series,
    _series_infos,
    list_series,
)

__all__ = ["DicomSeriesInfo", "is_dicom_file", "list_series", "read_dicom"]

log = logging.getLogger(__name__)


def read_dicom(
    path: str | Path,
    *,
    series: str | int | None = None,
    irregular: str = "resample",
    progress: Progress = None,
    cancel: CancelToken | None = None,
) -> Volume:
    """Read a DICOM series (from a folder) or a DICOM file as a RAS+ volume.

    Parameters
    ----------
    path : str or Path
        A folder (searched recursively; non-DICOM, hidden and image-less files
        are skipped) or one DICOM file (a 2-D image becomes a one-slice volume,
        a multi-frame file a 3-D volume).
    series : str or int, optional
        SeriesInstanceUID, or index in :func:`list_series` order. Default:
        the largest series (most slices) that reads; larger ones that fail
        are skipped and named in ``metadata["skipped_series"]``.
    irregular : {"resample", "error"}
        What to do when slices are unevenly spaced or missing: resample
        linearly along the normal onto a uniform grid at (about) the median
        step, with a warning in ``metadata["warnings"]``, or raise
        :class:`~engine.core.errors.DicomSeriesError`.
    progress : callable, optional
        ``progress(fraction, message)``.
    cancel : CancelToken, optional
        Checked between files.

    Returns
    -------
    Volume
        Canonical RAS+ volume; ``int16`` when the rescaled values are integers
        that fit, else ``float32``. ``metadata`` holds ``series_description``,
        ``series_uid``, ``study_uid``, ``patient_position``, ``modality``,
        ``manufacturer``, ``n_slices``, ``slice_spacing``, ``warnings``,
        ``n_series`` (series in the folder), ``skipped_series`` (``uid`` and
        ``reason`` of each larger series that could not be read),
        ``geometry`` (``"file"``, or ``"assumed"`` for a single image without
        patient geometry or images without PixelSpacing) and, when present,
        ``window_center``/``window_width``.

    Raises
    ------
    NoImageFoundError
        No DICOM image at *path*.
    DicomSeriesError
        Unknown series, or slices that do not form one volume (including
        several images without patient geometry).
    MissingDecoderError
        Compressed pixel data without an installed decoder.
    TruncatedFileError, InvalidImageError, UnsupportedFormatError
        Broken or non-DICOM input, including malformed geometry tags.
    """
    if irregular not in ("resample", "error"):
        raise ParameterError(f"irregular must be 'resample' or 'error', not {irregular!r}")
    path = Path(path)
    scan = _scan(path, scaled_progress(progress, 0.0, 0.2, ""), cancel)
    groups = _group(scan.headers)
    if not groups:
        if not path.is_dir():
            if scan.headers and scan.headers[0].problem is not None:
                raise scan.headers[0].problem
            sop = scan.headers[0].sop_class if scan.headers else ""
            what = f" ({sop})" if sop else ""
            raise NoImageFoundError(f"DICOM file holds no image{what}", path=path)
        details = []
        if scan.n_no_image:
            details.append(f"{scan.n_no_image} DICOM file(s) without pixel data")
        if scan.n_unreadable:
            details.append(f"{scan.n_unreadable} unreadable DICOM file(s)")
        if scan.n_not_dicom:
            details.append(f"{scan.n_not_dicom} non-DICOM file(s)")
        found = "; ".join(details) if details else "the folder is empty"
        raise NoImageFoundError(f"no DICOM images found ({found})", path=path)
    infos = _series_infos(groups)
    if series is not None or len(infos) == 1:
        info = _select_series(infos, series, path)
        volume = _read_series(path, info, groups[info.uid], irregular, progress, cancel)
        volume.metadata["n_series"] = len(infos)
        volume.metadata["skipped_series"] = []
        return volume
    return _read_first_readable(path, infos, groups, irregular, progress, cancel)


def _read_first_readable(
    path: Path,
    infos: list[DicomSeriesInfo],
    groups: dict[str, list[Any]],
    irregular: str,
    progress: Progress,
    cancel: CancelToken | None,
) -> Volume:
    """The largest series that reads; the others are named in the metadata.

    Series are tried largest first; one that raises a
    :class:`~engine.core.errors.ReadError` (broken files, no decoder, slices
    that do not form a volume...) is skipped with its reason. When none reads,
    the largest series' error is raised, saying that the others failed too.
    """
    skipped: list[dict[str, str]] = []
    failures: list[ReadError] = []
    for info in infos:
        try:
            volume = _read_series(path, info, groups[info.uid], irregular, progress, cancel)
        except ReadError as exc:
            failures.append(exc)
            skipped.append({"uid": info.uid, "reason": exc.problem})
            continue
        others = len(infos) - 1
        note = f"folder holds {len(infos)} series; took {_describe(info)}" + (
            f", the largest that reads ({len(skipped)} larger series cannot be read; "
            f"the largest fails with: {skipped[0]['reason']})"
            if skipped
            else ", the largest"
        ) + f"; {others} other series not read"
        volume.metadata["n_series"] = len(infos)
        volume.metadata["skipped_series"] = skipped
        volume.metadata["warnings"].insert(0, note)
        log.warning("%s: %s", path.name or str(path), note)
        return volume
    first = failures[0]
    raise type(first)(
        f"{first.problem} (in the largest of {len(infos)} series; none of them reads)",
        path=first.path,
    )


def _read_series(
    path: Path,
    info: DicomSeriesInfo,
    headers: list[Any],
    irregular: str,
    progress: Progress,
    cancel: CancelToken | None,
) -> Volume:
    """Read one series (its headers already scanned) as a volume."""
    plan = _check_series(headers, path, irregular)
    # Decode file by file, keeping only the frames the plan uses.
    wanted: dict[Path, list[tuple[int, int]]] = {}
    for k, ref in enumerate(plan.frames):
        wanted.setdefault(ref.header.path, []).append((k, ref.index))
    raw: list[np.ndarray | None] = [None] * len(plan.frames)
    by_path = {h.path: h for h in headers}
    decode_progress = scaled_progress(progress, 0.2, 0.95, "")
    for n_done, (file_path, items) in enumerate(wanted.items()):
        check_cancel(cancel)
        report(decode_progress, n_done / len(wanted),
               f"Reading DICOM images {n_done}/{len(wanted)}")
        pixels = _decode(by_path[file_path])
        for k, frame_index in items:
            raw[k] = pixels[frame_index]
    check_cancel(cancel)
    report(progress, 0.95, "Assembling the volume")
    array = _assemble(plan, [r for r in raw if r is not None])

    warns: list[str] = []
    for h in headers:
        for w in h.warnings:
            if w not in warns:
                warns.append(w)
    warns.extend(plan.warnings)
    if any(h.samples == 3 for h in headers) or any(
        h.photometric == "PALETTE COLOR" for h in headers
    ):
        warns.append("colour image converted to grey values (luminance)")
    if any(h.photometric == "MONOCHROME1" for h in headers):
        warns.append("MONOCHROME1 image: low values are displayed bright on the scanner")
    for w in warns:
        log.warning("%s: %s", path.name or str(path), w)

    first = plan.frames[0].header
    # No PixelSpacing anywhere: 1 mm pixels were assumed (see the warnings).
    pixels_assumed = all(ref.geom.spacing is None for ref in plan.frames)
    meta: dict[str, Any] = {
        "series_description": info.description,
        "series_uid": info.uid,
        "study_uid": info.study_uid,
        "series_number": info.series_number,
        "patient_position": first.info.get("patient_position", ""),
        "modality": info.modality,
        "manufacturer": first.info.get("manufacturer", ""),
        "body_part": first.info.get("body_part", ""),
        "acquisition": first.info.get("acquisition", {}),
        "n_slices": int(array.shape[2]),
        "n_files": len(headers),
        "slice_spacing": float(plan.slice_spacing),
        "transfer_syntax": first.transfer_syntax,
        "geometry": "assumed" if plan.assumed or pixels_assumed else "file",
        "warnings": warns,
    }
    if plan.tilt_deg > math.degrees(math.atan(_TILT_TOL)):
        meta["gantry_tilt_deg"] = round(plan.tilt_deg, 3)
    if info.modality == "CT":
        meta["units"] = "HU"
    elif info.modality == "RTDOSE" and first.info.get("dose_units"):
        meta["units"] = first.info["dose_units"]
    elif first.info.get("rescale_type"):
        meta["units"] = first.info["rescale_type"]
    if "window_center" in first.info:
        meta["window_center"] = first.info["window_center"]
        meta["window_width"] = first.info["window_width"]
    report(progress, 1.0, "DICOM series read")
    return Volume.from_file_array(
        array,
        plan.affine_ras,
        format="dicom",
        header=_provenance(info, plan),
        modality=info.modality,
        metadata=meta,
    )


def _provenance(info: DicomSeriesInfo, plan: Any) -> DicomProvenance:
    """The source of every slice, in memory only (see :mod:`.provenance`)."""
    first = plan.frames[0].header
    resampled = plan.interp is not None or len(plan.frames) != int(plan.n_out)
    instances = () if resampled else tuple(
        SliceSource(ref.header.path, str(ref.header.identity.get("sop_class_uid", "")),
                    ref.header.sop_uid, ref.index + 1 if ref.header.n_frames > 1 else None)
        for ref in plan.frames)
    identity = {k: v for k, v in first.identity.items()
                if k not in ("sop_class_uid", "frame_of_reference_uid")}
    return DicomProvenance(
        study_uid=first.study_uid, series_uid=info.uid,
        frame_of_reference_uid=str(first.identity.get("frame_of_reference_uid", "")),
        modality=info.modality, instances=instances, resampled=resampled, identity=identity)
