"""Every DICOM and NIfTI file shipped with pydicom and nibabel, read by Delineo.

The files are found at test time in the installed packages (never copied):
everything under pydicom's ``data`` folder and nibabel's package folder whose
name ends in ``.nii``, ``.nii.gz`` or ``.dcm``, plus files without a suffix
that pydicom recognises as DICOM (``pydicom.misc.is_dicom``). Files pydicom
downloads into its user cache on demand are not shipped, so not included.

Each file must either load into a :class:`~engine.core.volume.Volume` or raise
a typed :class:`~engine.core.errors.DelineoError` whose message is one line
and names the file, as :data:`EXPECTED` records. A new, vanished or changed
file is a visible failure: review it, then update the table.

Logging rule: while Delineo reads, nothing may reach stderr, and every log
record of level WARNING or above must come from one of Delineo's own
``engine.*`` loggers, be one line and name the file. Library records
(pydicom's decoder errors with tracebacks, its warnings about tolerated
values) must not escape; the reader folds their gist into its own warning
or error message instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import nibabel
import pydicom
import pytest
from pydicom.misc import is_dicom

from engine.core.errors import DelineoError
from engine.core.volume import Volume
from engine.io import load

#: package name -> (package folder, folder searched in it)
_ROOTS = {
    "pydicom": (Path(pydicom.__file__).parent, "data"),
    "nibabel": (Path(nibabel.__file__).parent, "."),
}


def corpus_files() -> Iterator[tuple[str, Path]]:
    """``(key, path)`` of every corpus file; *key* is relative to its package."""
    for package, (folder, under) in _ROOTS.items():
        for path in sorted((folder / under).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            name = path.name.lower()
            wanted = name.endswith((".nii", ".nii.gz", ".dcm")) or (
                path.suffix == "" and is_dicom(path)
            )
            if wanted:
                yield f"{package}/{path.relative_to(folder).as_posix()}", path


# ruff: noqa: E501  (the table keeps one file a line)
#: Outcome of :func:`engine.io.load` per corpus file: "loads" or the error class.
#: Reviewed by hand: non-image objects (SR, RT Plan/Struct, waveforms, palettes,
#: DICOMDIRs) are refused; RT Dose grids are volumes and load.
EXPECTED: dict[str, str] = {
    "pydicom/data/charset_files/chrArab.dcm": "loads",
    "pydicom/data/charset_files/chrFren.dcm": "loads",
    "pydicom/data/charset_files/chrFrenMulti.dcm": "loads",
    "pydicom/data/charset_files/chrGerm.dcm": "loads",
    "pydicom/data/charset_files/chrGreek.dcm": "loads",
    "pydicom/data/charset_files/chrH31.dcm": "loads",
    "pydicom/data/charset_files/chrH32.dcm": "loads",
    "pydicom/data/charset_files/chrHbrw.dcm": "loads",
    "pydicom/data/charset_files/chrI2.dcm": "loads",
    "pydicom/data/charset_files/chrJapMulti.dcm": "TruncatedFileError",
    "pydicom/data/charset_files/chrJapMultiExplicitIR6.dcm": "TruncatedFileError",
    "pydicom/data/charset_files/chrKoreanMulti.dcm": "TruncatedFileError",
    "pydicom/data/charset_files/chrRuss.dcm": "loads",
    "pydicom/data/charset_files/chrSQEncoding.dcm": "NoImageFoundError",
    "pydicom/data/charset_files/chrSQEncoding1.dcm": "NoImageFoundError",
    "pydicom/data/charset_files/chrX1.dcm": "loads",
    "pydicom/data/charset_files/chrX2.dcm": "loads",
    "pydicom/data/palettes/fall.dcm": "NoImageFoundError",
    "pydicom/data/palettes/hotiron.dcm": "NoImageFoundError",
    "pydicom/data/palettes/hotmetalblue.dcm": "NoImageFoundError",
    "pydicom/data/palettes/pet.dcm": "NoImageFoundError",
    "pydicom/data/palettes/pet20step.dcm": "NoImageFoundError",
    "pydicom/data/palettes/spring.dcm": "NoImageFoundError",
    "pydicom/data/palettes/summer.dcm": "NoImageFoundError",
    "pydicom/data/palettes/winter.dcm": "NoImageFoundError",
    "pydicom/data/test_files/693_J2KI.dcm": "loads",
    "pydicom/data/test_files/CT_small.dcm": "loads",
    "pydicom/data/test_files/ExplVR_BigEnd.dcm": "loads",
    "pydicom/data/test_files/ExplVR_BigEndNoMeta.dcm": "UnsupportedFormatError",
    "pydicom/data/test_files/ExplVR_LitEndNoMeta.dcm": "UnsupportedFormatError",
    "pydicom/data/test_files/GDCMJ2K_TextGBR.dcm": "loads",
    "pydicom/data/test_files/J2K_pixelrep_mismatch.dcm": "loads",
    "pydicom/data/test_files/JPEG-lossy.dcm": "InvalidImageError",
    "pydicom/data/test_files/JPEG2000-embedded-sequence-delimiter.dcm": "InvalidImageError",
    "pydicom/data/test_files/JPEG2000.dcm": "loads",
    "pydicom/data/test_files/JPEGLSNearLossless_08.dcm": "loads",
    "pydicom/data/test_files/JPEGLSNearLossless_16.dcm": "loads",
    "pydicom/data/test_files/JPGExtended.dcm": "loads",
    "pydicom/data/test_files/MR_small.dcm": "loads",
    "pydicom/data/test_files/MR_small_RLE.dcm": "loads",
    "pydicom/data/test_files/MR_small_bigendian.dcm": "loads",
    "pydicom/data/test_files/MR_small_expb.dcm": "loads",
    "pydicom/data/test_files/MR_small_implicit.dcm": "loads",
    "pydicom/data/test_files/MR_small_jp2klossless.dcm": "loads",
    "pydicom/data/test_files/MR_small_jpeg_ls_lossless.dcm": "loads",
    "pydicom/data/test_files/MR_small_padded.dcm": "loads",
    "pydicom/data/test_files/MR_truncated.dcm": "TruncatedFileError",
    "pydicom/data/test_files/SC_jpeg_no_color_transform.dcm": "loads",
    "pydicom/data/test_files/SC_jpeg_no_color_transform_2.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_dcmtk_+eb+cr.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_dcmtk_+eb+cy+n1.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_dcmtk_+eb+cy+n2.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_dcmtk_+eb+cy+np.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_dcmtk_+eb+cy+s2.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_dcmtk_+eb+cy+s4.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_gdcm_KY.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_jls_lossy_line.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_jls_lossy_sample.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_jpeg.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_jpeg_app14_dcmd.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_jpeg_dcmd.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_jpeg_dcmtk.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_jpeg_gdcm.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_jpeg_lossy_gdcm.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_rle.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_rle_16bit.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_rle_16bit_2frame.dcm": "DicomSeriesError",
    "pydicom/data/test_files/SC_rgb_rle_2frame.dcm": "DicomSeriesError",
    "pydicom/data/test_files/SC_rgb_rle_32bit.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_rle_32bit_2frame.dcm": "DicomSeriesError",
    "pydicom/data/test_files/SC_rgb_small_odd.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_small_odd_big_endian.dcm": "loads",
    "pydicom/data/test_files/SC_rgb_small_odd_jpeg.dcm": "loads",
    "pydicom/data/test_files/SC_ybr_full_422_uncompressed.dcm": "InvalidImageError",
    "pydicom/data/test_files/UN_sequence.dcm": "NoImageFoundError",
    "pydicom/data/test_files/badVR.dcm": "InvalidImageError",
    "pydicom/data/test_files/dicomdirtests/77654033/CR1/6154": "loads",
    "pydicom/data/test_files/dicomdirtests/77654033/CR2/6247": "loads",
    "pydicom/data/test_files/dicomdirtests/77654033/CR3/6278": "loads",
    "pydicom/data/test_files/dicomdirtests/77654033/CT2/17106": "loads",
    "pydicom/data/test_files/dicomdirtests/77654033/CT2/17136": "loads",
    "pydicom/data/test_files/dicomdirtests/77654033/CT2/17166": "loads",
    "pydicom/data/test_files/dicomdirtests/77654033/CT2/17196": "loads",
    "pydicom/data/test_files/dicomdirtests/98892001/CT2N/6293": "loads",
    "pydicom/data/test_files/dicomdirtests/98892001/CT2N/6924": "loads",
    "pydicom/data/test_files/dicomdirtests/98892001/CT5N/2062": "loads",
    "pydicom/data/test_files/dicomdirtests/98892001/CT5N/2392": "loads",
    "pydicom/data/test_files/dicomdirtests/98892001/CT5N/2693": "loads",
    "pydicom/data/test_files/dicomdirtests/98892001/CT5N/3023": "loads",
    "pydicom/data/test_files/dicomdirtests/98892001/CT5N/3353": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR1/15820": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR1/4919": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR1/5641": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR2/15970": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR2/4950": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR2/4981": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR2/5011": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR2/6273": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR2/6605": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR2/6935": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR700/4467": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR700/4528": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR700/4558": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR700/4588": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR700/4618": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR700/4648": "loads",
    "pydicom/data/test_files/dicomdirtests/98892003/MR700/4678": "loads",
    "pydicom/data/test_files/dicomdirtests/DICOMDIR": "NoImageFoundError",
    "pydicom/data/test_files/dicomdirtests/DICOMDIR-bigEnd": "NoImageFoundError",
    "pydicom/data/test_files/dicomdirtests/DICOMDIR-empty.dcm": "NoImageFoundError",
    "pydicom/data/test_files/dicomdirtests/DICOMDIR-implicit": "NoImageFoundError",
    "pydicom/data/test_files/dicomdirtests/DICOMDIR-nooffset": "NoImageFoundError",
    "pydicom/data/test_files/dicomdirtests/DICOMDIR-nopatient": "NoImageFoundError",
    "pydicom/data/test_files/dicomdirtests/DICOMDIR-reordered": "NoImageFoundError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/DICOMDIR": "NoImageFoundError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000000": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000001": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000002": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000003": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000004": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000005": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000006": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000007": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000008": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000009": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000A": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000B": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000C": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000D": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000E": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000F": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000G": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000H": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000I": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000J": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000K": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000L": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000M": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000N": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000O": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000P": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000Q": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000R": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000S": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000T": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000U": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000V": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000W": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000X": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000Y": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000Z": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000010": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000011": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000012": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000013": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000014": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000015": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000016": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000017": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000018": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000019": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00001A": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00001B": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00001C": "TruncatedFileError",
    "pydicom/data/test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00001D": "TruncatedFileError",
    "pydicom/data/test_files/empty_charset_LEI.dcm": "NoImageFoundError",
    "pydicom/data/test_files/examples_jpeg2k.dcm": "loads",
    "pydicom/data/test_files/examples_overlay.dcm": "loads",
    "pydicom/data/test_files/examples_palette.dcm": "loads",
    "pydicom/data/test_files/examples_rgb_color.dcm": "loads",
    "pydicom/data/test_files/examples_ybr_color.dcm": "DicomSeriesError",
    "pydicom/data/test_files/image_dfl.dcm": "loads",
    "pydicom/data/test_files/liver_1frame.dcm": "InvalidImageError",
    "pydicom/data/test_files/liver_expb_1frame.dcm": "InvalidImageError",
    "pydicom/data/test_files/meta_missing_tsyntax.dcm": "NoImageFoundError",
    "pydicom/data/test_files/nested_priv_SQ.dcm": "NoImageFoundError",
    "pydicom/data/test_files/no_meta.dcm": "UnsupportedFormatError",
    "pydicom/data/test_files/no_meta_group_length.dcm": "NoImageFoundError",
    "pydicom/data/test_files/priv_SQ.dcm": "NoImageFoundError",
    "pydicom/data/test_files/reportsi.dcm": "NoImageFoundError",
    "pydicom/data/test_files/reportsi_with_empty_number_tags.dcm": "NoImageFoundError",
    "pydicom/data/test_files/rtdose.dcm": "loads",
    "pydicom/data/test_files/rtdose_1frame.dcm": "loads",
    "pydicom/data/test_files/rtdose_expb.dcm": "loads",
    "pydicom/data/test_files/rtdose_expb_1frame.dcm": "loads",
    "pydicom/data/test_files/rtdose_rle.dcm": "loads",
    "pydicom/data/test_files/rtdose_rle_1frame.dcm": "loads",
    "pydicom/data/test_files/rtplan.dcm": "NoImageFoundError",
    "pydicom/data/test_files/rtplan_truncated.dcm": "TruncatedFileError",
    "pydicom/data/test_files/rtstruct.dcm": "UnsupportedFormatError",
    "pydicom/data/test_files/test-SR.dcm": "NoImageFoundError",
    "pydicom/data/test_files/waveform_ecg.dcm": "NoImageFoundError",
    "nibabel/nicom/tests/data/0.dcm": "loads",
    "nibabel/nicom/tests/data/1.dcm": "loads",
    "nibabel/nicom/tests/data/csa_slice_norm.dcm": "TruncatedFileError",
    "nibabel/nicom/tests/data/decimal_rescale.dcm": "loads",
    "nibabel/nicom/tests/data/slicethickness_empty_string.dcm": "loads",
    "nibabel/tests/data/0.dcm": "loads",
    "nibabel/tests/data/1.dcm": "loads",
    "nibabel/tests/data/anatomical.nii": "loads",
    "nibabel/tests/data/example4d.nii.gz": "loads",
    "nibabel/tests/data/example_nifti2.nii.gz": "loads",
    "nibabel/tests/data/functional.nii": "loads",
    "nibabel/tests/data/reoriented_anat_moved.nii": "loads",
    "nibabel/tests/data/resampled_anat_moved.nii": "loads",
    "nibabel/tests/data/row_major.dconn.nii": "UnsupportedFormatError",
    "nibabel/tests/data/standard.nii.gz": "loads",
}


def _corpus() -> list[tuple[str, Path]]:
    return list(corpus_files())


def test_the_table_lists_exactly_the_shipped_files() -> None:
    found = {key for key, _ in _corpus()}
    assert sorted(found - EXPECTED.keys()) == [], "new corpus files: add them to EXPECTED"
    assert sorted(EXPECTED.keys() - found) == [], "corpus files gone: drop them from EXPECTED"


@pytest.mark.parametrize(("key", "path"), _corpus(), ids=[key for key, _ in _corpus()])
def test_corpus_file_loads_or_fails_cleanly(
    key: str, path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    outcome = "loads"
    try:
        volume = load(path)
    except DelineoError as exc:
        outcome = type(exc).__name__
        message = str(exc)
        assert "\n" not in message and str(path) in message, message
    else:
        assert isinstance(volume, Volume)
        assert volume.array.ndim == 3 and volume.array.size > 0
    assert outcome == EXPECTED.get(key), f"{key}: {outcome}"
    assert capfd.readouterr().err == ""
    for record in caplog.records:
        if record.levelno < logging.WARNING:
            continue
        text = record.getMessage()
        assert record.name.startswith("engine."), f"library record escaped: {record.name}: {text}"
        assert "\n" not in text and path.name in text, text
        assert record.exc_info is None


def test_the_guard_fires_on_every_corpus_volume() -> None:
    """No file of either corpus is a head-sized 3-D structural brain MR: the brain network
    must refuse every one that loads (CT, other modalities, single slices, small crops,
    4-D series)."""
    from engine.methods import get_method
    from engine.methods.applicability import check_applicability

    spec = get_method("delineo")
    loaded = passed = 0
    for key, path in _corpus():
        if EXPECTED.get(key) != "loads":
            continue
        loaded += 1
        if not check_applicability(load(path), spec):
            passed += 1
            print("not refused:", key)
    assert loaded > 100
    assert passed == 0
