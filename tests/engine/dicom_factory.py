"""Write small, realistic DICOM series from a known volume (for the tests).

A known volume is an array indexed ``[i, j, k]`` with an affine mapping
``(i, j, k)`` to RAS+ millimetres. It is written as one DICOM slice per ``k``
with ``i`` along the row direction (columns of the image) and ``j`` along the
column direction (rows of the image); ImagePositionPatient,
ImageOrientationPatient and PixelSpacing are derived from the affine after
converting RAS to DICOM's LPS. File names are random and InstanceNumber is
shuffled, so a reader that sorts by either gets the order wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def ds_str(values):
    """DICOM DS strings (at most 16 characters) for a float or a sequence."""
    if np.ndim(values) == 0:
        return format_number_as_ds(float(values))
    return [format_number_as_ds(float(v)) for v in values]


def rotation(ax_deg=0.0, ay_deg=0.0, az_deg=0.0):
    """Rotation matrix (x, then y, then z) from angles in degrees."""
    ax, ay, az = np.radians([ax_deg, ay_deg, az_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def ras_affine(directions, spacing, origin):
    """RAS affine whose voxel axes are the columns of *directions* scaled by *spacing*."""
    aff = np.eye(4)
    aff[:3, :3] = np.asarray(directions, float) @ np.diag(spacing)
    aff[:3, 3] = origin
    return aff


def geometry(affine_ras, k):
    """(IPP, IOP, PixelSpacing) in DICOM LPS terms for slice coordinate *k*."""
    lps = LPS @ np.asarray(affine_ras, float)
    row_vec, col_vec = lps[:3, 0], lps[:3, 1]
    col_spacing, row_spacing = np.linalg.norm(row_vec), np.linalg.norm(col_vec)
    iop = np.concatenate([row_vec / col_spacing, col_vec / row_spacing])
    ipp = lps[:3, :3] @ np.array([0.0, 0.0, float(k)]) + lps[:3, 3]
    return ipp, iop, (row_spacing, col_spacing)


def base_dataset(*, rows, columns, modality="CT", sop_class=CT_IMAGE_STORAGE,
                 series_uid=None, study_uid=None, description="test series",
                 series_number=1, signed=True, transfer_syntax=ExplicitVRLittleEndian):
    """A minimal image data set with file meta, without geometry or pixels."""
    ds = Dataset()
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = transfer_syntax
    meta.MediaStorageSOPClassUID = sop_class
    sop_uid = generate_uid()
    meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.Modality = modality
    ds.Manufacturer = "Delineo test factory"
    ds.PatientPosition = "HFS"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    return ds


def write_series(folder, data, affine_ras, *, slice_coords=None, slope=1.0, intercept=0.0,
                 stored_dtype=np.int16, modality="CT", series_uid=None, study_uid=None,
                 description="test series", series_number=1, seed=0, subfolders=True,
                 window=None):
    """Write *data* (``[i, j, k]``) as one file per slice; return the paths in k order.

    ``slice_coords`` gives the (possibly fractional) slice coordinate of each
    written slice along the affine's third axis (default ``0, 1, 2...``);
    ``slope``/``intercept`` may be scalars or one value per slice. Stored
    values are ``round((data - intercept) / slope)`` in *stored_dtype*.
    """
    folder = Path(folder)
    data = np.asarray(data)
    n = data.shape[2]
    coords = np.arange(n, dtype=float) if slice_coords is None else np.asarray(slice_coords)
    slopes = np.broadcast_to(np.asarray(slope, float), (n,))
    inters = np.broadcast_to(np.asarray(intercept, float), (n,))
    rng = np.random.default_rng(seed)
    instance = rng.permutation(n) + 1
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    paths = []
    for k in range(n):
        ipp, iop, spacing = geometry(affine_ras, coords[k])
        signed = np.issubdtype(stored_dtype, np.signedinteger)
        ds = base_dataset(rows=data.shape[1], columns=data.shape[0], modality=modality,
                          sop_class=CT_IMAGE_STORAGE if modality == "CT" else MR_IMAGE_STORAGE,
                          series_uid=series_uid, study_uid=study_uid,
                          description=description, series_number=series_number,
                          signed=signed)
        ds.InstanceNumber = int(instance[k])
        ds.ImagePositionPatient = ds_str(ipp)
        ds.ImageOrientationPatient = ds_str(iop)
        ds.PixelSpacing = ds_str(spacing)
        step = np.linalg.norm(np.asarray(affine_ras)[:3, 2])
        ds.SliceThickness = ds_str(step)
        ds.RescaleSlope = ds_str(slopes[k])
        ds.RescaleIntercept = ds_str(inters[k])
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = ds_str(window[0]), ds_str(window[1])
        stored = np.round((data[:, :, k] - inters[k]) / slopes[k])
        info = np.iinfo(stored_dtype)
        assert stored.min() >= info.min and stored.max() <= info.max, "value out of range"
        pixels = np.ascontiguousarray(stored.astype(stored_dtype).T)  # (rows, columns)
        ds.PixelData = pixels.tobytes()
        name = f"{rng.integers(0, 2**40):010x}"  # random: sorting by name is meaningless
        sub = folder / (f"sub{rng.integers(0, 3)}" if subfolders else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _item(**elements):
    item = Dataset()
    for key, value in elements.items():
        setattr(item, key, value)
    return item


def write_enhanced(path, data, affine_ras, *, slopes, intercepts, frame_order=None,
                   series_uid=None):
    """Write an enhanced (functional groups) multi-frame CT file.

    Frame ``f`` of the file holds slice ``frame_order[f]`` of *data*, with its
    own PlanePositionSequence and PixelValueTransformationSequence.
    """
    data = np.asarray(data)
    n = data.shape[2]
    order = np.arange(n) if frame_order is None else np.asarray(frame_order)
    ds = base_dataset(rows=data.shape[1], columns=data.shape[0], sop_class=ENHANCED_CT_STORAGE,
                      series_uid=series_uid)
    ds.NumberOfFrames = n
    _, iop, spacing = geometry(affine_ras, 0)
    step = np.linalg.norm(np.asarray(affine_ras)[:3, 2])
    shared = Dataset()
    shared.PixelMeasuresSequence = DicomSequence(
        [_item(PixelSpacing=ds_str(spacing), SliceThickness=ds_str(step))]
    )
    shared.PlaneOrientationSequence = DicomSequence([_item(ImageOrientationPatient=ds_str(iop))])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    frames = []
    for k in order:
        ipp, _, _ = geometry(affine_ras, k)
        group = Dataset()
        group.PlanePositionSequence = DicomSequence([_item(ImagePositionPatient=ds_str(ipp))])
        group.PixelValueTransformationSequence = DicomSequence(
            [_item(RescaleSlope=ds_str(slopes[k]), RescaleIntercept=ds_str(intercepts[k]),
                   RescaleType="HU")]
        )
        per_frame.append(group)
        stored = np.round((data[:, :, k] - intercepts[k]) / slopes[k]).astype(np.int16)
        frames.append(stored.T)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.PixelData = np.ascontiguousarray(np.stack(frames)).tobytes()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def write_legacy_multiframe(path, data, affine_ras, *, spacing_tag="SpacingBetweenSlices"):
    """Write a multi-frame file with one ImagePositionPatient and a spacing tag.

    The affine's third axis must point along the slice normal (row x column).
    """
    data = np.asarray(data)
    ds = base_dataset(rows=data.shape[1], columns=data.shape[0], modality="MR",
                      sop_class=MR_IMAGE_STORAGE)
    ds.NumberOfFrames = data.shape[2]
    ipp, iop, spacing = geometry(affine_ras, 0)
    ds.ImagePositionPatient = ds_str(ipp)
    ds.ImageOrientationPatient = ds_str(iop)
    ds.PixelSpacing = ds_str(spacing)
    setattr(ds, spacing_tag, ds_str(np.linalg.norm(np.asarray(affine_ras)[:3, 2])))
    frames = np.stack([data[:, :, k].astype(np.int16).T for k in range(data.shape[2])])
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def known_volume(shape=(6, 5, 4), *, seed=0, low=-1000, high=2000):
    """Random integer voxel values (CT-like) of the given shape."""
    return np.random.default_rng(seed).integers(low, high, size=shape).astype(np.float64)


def orientations() -> dict[str, np.ndarray]:
    """Named RAS affines: axial, coronal, sagittal, reversed and oblique stacks."""
    spacing = (0.7, 0.9, 2.5)
    origin = (12.5, -30.25, 44.0)
    # DICOM axial: rows run R->L (LPS +x), columns A->P (LPS +y), slices along +z.
    axial = np.array([[-1, 0, 0], [0, -1, 0], [0, 0, 1]], float)
    # DICOM coronal IOP [1,0,0, 0,0,-1]: slices along LPS +y (posterior).
    coronal = np.array([[-1, 0, 0], [0, 0, -1], [0, -1, 0]], float)
    # DICOM sagittal IOP [0,1,0, 0,0,-1]: slices along LPS -x (RAS +x).
    sagittal = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
    cases = {
        "axial": ras_affine(axial, spacing, origin),
        "axial_reversed": ras_affine(axial @ np.diag([1, 1, -1]), spacing, origin),
        "coronal": ras_affine(coronal, spacing, origin),
        "sagittal": ras_affine(sagittal, spacing, origin),
        "oblique": ras_affine(rotation(17, -11, 25) @ axial, spacing, origin),
        "oblique_coronal": ras_affine(rotation(-8, 21, 4) @ coronal @ np.diag([1, 1, -1]),
                                      spacing, origin),
    }
    return cases


def sheared_affine(tilt_mm_per_slice=0.4):
    """Axial CT affine with a gantry tilt: each slice shifted along A by *tilt_mm_per_slice*."""
    aff = ras_affine(np.array([[-1, 0, 0], [0, -1, 0], [0, 0, 1]], float), (0.7, 0.9, 2.5),
                     (1.0, 2.0, 3.0))
    aff[1, 2] = tilt_mm_per_slice
    return aff


def axial_affine(step=2.0, origin=(0.0, 0.0, -10.0), spacing=(0.8, 0.8)):
    return ras_affine(np.array([[-1, 0, 0], [0, -1, 0], [0, 0, 1]], float),
                      (spacing[0], spacing[1], step), origin)


def set_raw(ds, keyword, raw: bytes):
    """Store *raw* as the undecoded value of *keyword* in *ds*, as a broken writer would.

    pydicom refuses to build malformed values (``"abc"`` as a decimal string),
    so the bytes go in as a raw element and reach the file unchanged.
    """
    tag = Tag(tag_for_keyword(keyword))
    if len(raw) % 2:
        raw += b" "  # DICOM values have an even length
    ds[tag] = RawDataElement(tag, dictionary_VR(tag), len(raw), raw, 0, False, True)
    return ds


def rewrite(path, edit):
    """Read the DICOM file at *path*, apply ``edit(ds)`` and save it in place."""
    ds = pydicom.dcmread(path)
    edit(ds)
    ds.save_as(path)
    return Path(path)
