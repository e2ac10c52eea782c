"""One export implementation for the command line and the viewer.

:func:`export_labels` writes a label map in one of :data:`FORMATS`:

* ``nifti``: the label map in the image file's geometry;
* ``dicom-seg``: a DICOM Segmentation on the image's DICOM series
  (:mod:`engine.io.dicom.seg`); with ``with_sr`` also the TID 1500 measurement
  report of the lesions, referencing the SEG just written;
* ``dicom-sr``: the TID 1500 measurement report (:mod:`engine.reports.sr`) of
  the lesions (label 4), referencing an existing SEG (``seg_path``) of the
  same series;
* ``seg.nrrd``: 3D Slicer's segmentation file (:mod:`engine.io.seg_nrrd`);
* ``label-names``: the names and colours of the values the map holds, as
  ITK-SNAP label descriptions (``.txt``) or a 3D Slicer colour table
  (``.ctbl``) (:mod:`engine.io.label_tables`), to go with its NIfTI file;
* ``findings``: the measured lesions as ``STEM.json`` and ``STEM.csv``;
* ``report``: the HTML or PDF findings report.

:func:`format_of` picks the format from the output name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import ParameterError, ReadError, WriteError, unknown_name
from ..core.volume import LabelMap, Volume
from ..io.atomic import atomic_path, full_suffix
from ..io.nifti import NIFTI_SUFFIXES

__all__ = ["DICOM_FORMATS", "FORMATS", "ExportResult", "export_labels", "format_of",
           "made_by_cards"]

#: format -> the output names it writes.
FORMATS: dict[str, tuple[str, ...]] = {
    "nifti": NIFTI_SUFFIXES,
    "dicom-seg": (".dcm",),
    "dicom-sr": (".dcm",),
    "seg.nrrd": (".seg.nrrd",),
    "label-names": (".txt", ".ctbl"),
    "findings": (".json", ".csv"),
    "report": (".html", ".pdf"),
}

#: Formats that need the image read from a DICOM series.
DICOM_FORMATS = ("dicom-seg", "dicom-sr")


@dataclass
class ExportResult:
    """What :func:`export_labels` wrote.

    Attributes
    ----------
    format : str
        The format written.
    files : list of Path
        Every file written.
    segments : list
        The segments written (``{"value", "name"}``; plain values for NIfTI).
    notes : list of str
        What the DICOM source lacked and was filled empty.
    warnings : list of str
        The result's warnings (outside declared use, "review this").
    lesions : int or None
        Number of lesions measured, for the formats that measure them.
    """

    format: str
    files: list[Path] = field(default_factory=list)
    segments: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lesions: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        out: dict[str, Any] = {"format": self.format, "files": [str(p) for p in self.files],
                               "segments": self.segments, "notes": self.notes,
                               "warnings": self.warnings}
        if self.lesions is not None:
            out["lesions"] = self.lesions
        return out


def format_of(path: str | Path, asked: str | None = None) -> str:
    """The export format of output *path* (*asked* checked against the name).

    ``.dcm`` means ``dicom-seg`` unless ``dicom-sr`` is asked.
    """
    path = Path(path)
    name = path.name.lower()
    suffix = full_suffix(path).lower()
    if asked is not None:
        if asked not in FORMATS:
            raise ParameterError(unknown_name("output format", asked, list(FORMATS)))
        if not any(name.endswith(s) for s in FORMATS[asked]):
            raise ParameterError(f"format {asked} writes {' or '.join(FORMATS[asked])} files, "
                                 f"not {suffix or path.name!r}", path=path)
        return asked
    for fmt, suffixes in FORMATS.items():
        if any(name.endswith(s) for s in suffixes):
            return fmt
    known = sorted({s for suffixes in FORMATS.values() for s in suffixes})
    raise ParameterError(unknown_name("output format", suffix or path.name, known), path=path)


def _warnings_of(labels: LabelMap) -> tuple[list[str], list[str]]:
    outside = [str(w) for w in (labels.metadata.get("result") or {}).get("warnings", [])]
    warnings = list(outside)
    verdict = labels.metadata.get("plausibility") or {}
    if verdict.get("verdict") == "review this":
        warnings.append("plausibility: review this: " + "; ".join(verdict.get("reasons", [])))
    return outside, warnings


def _segments(labels: LabelMap) -> list[dict[str, Any]]:
    return [{"value": v, "name": labels.labels.name(v)} for v in labels.present_values() if v]


def _read_seg(path: Path, image: Volume) -> Any:
    import pydicom

    from ..io.dicom.seg import _provenance
    from .sr import _SEG_CLASSES

    if not path.is_file():
        raise ReadError("no such file: the SR needs the DICOM SEG it references", path=path)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # pydicom raises several types for a non-DICOM file
        raise ReadError("not a DICOM file: the SR needs the DICOM SEG it references",
                        path=path) from None
    if str(getattr(ds, "SOPClassUID", "")) not in _SEG_CLASSES:
        raise ReadError("not a DICOM SEG: the SR must reference a SEG", path=path)
    prov = _provenance(image)
    referenced = {str(item.SeriesInstanceUID)
                  for item in getattr(ds, "ReferencedSeriesSequence", [])}
    if prov.series_uid not in referenced:
        raise ReadError("this SEG was not made on the reference series", path=path)
    return ds


def _write_sr(findings: list[Any], image: Volume, seg: Any, out: Path, algorithm: str,
              notes: list[str]) -> Path:
    from .. import __version__
    from ..io.dicom.seg import _provenance, _sources
    from .sr import build_findings_sr

    if not findings:
        raise ParameterError("no lesion (label 4) to report: a DICOM TID 1500 measurement "
                             "report needs at least one measured lesion")
    sources = _sources(_provenance(image), notes)
    sr = build_findings_sr(findings, seg_dataset=seg, source_images=sources,
                           algorithm=algorithm[:64], version=__version__)
    try:
        with atomic_path(out) as tmp:
            sr.save_as(tmp)
    except OSError as exc:
        raise WriteError(f"could not write ({exc.strerror or exc})", path=out) from None
    return out


def export_labels(
    labels: LabelMap,
    image: Volume,
    out: str | Path,
    fmt: str | None = None,
    *,
    algorithm: str = "Delineo",
    seg_path: str | Path | None = None,
    with_sr: str | Path | None = None,
) -> ExportResult:
    """Write *labels* (on *image*'s grid) to *out* in format *fmt*.

    Parameters
    ----------
    labels : LabelMap
        The label map, on *image*'s grid.
    image : Volume
        The image; read from a DICOM series for ``dicom-seg`` and ``dicom-sr``.
    out : str or Path
        Output file; its name must suit the format.
    fmt : str, optional
        One of :data:`FORMATS`; default from *out*'s name.
    algorithm : str
        Algorithm name for DICOM when *labels* does not say which method or
        pipeline made it.
    seg_path : str or Path, optional
        ``dicom-sr``: the DICOM SEG (of *image*'s series) the SR references.
    with_sr : str or Path, optional
        ``dicom-seg``: also write the SR of the lesions here, referencing the SEG.

    Returns
    -------
    ExportResult

    Raises
    ------
    ParameterError
        A name that suits no format, a missing ``seg_path``, no lesion for an SR.
    DelineoError
        Labels off the image's grid, an image not from DICOM for the DICOM formats.
    """
    from ..io import save

    out = Path(out)
    fmt = format_of(out, fmt)
    if not image.same_grid(labels):
        from ..core.errors import GeometryMismatchError

        diffs = image.grid_differences(labels)
        raise GeometryMismatchError("label map does not match the image: " + "; ".join(diffs),
                                    differences=diffs)
    outside, warnings = _warnings_of(labels)
    result = ExportResult(format=fmt, warnings=warnings)
    what = str(labels.metadata.get("pipeline") or labels.metadata.get("method") or algorithm)
    if with_sr is not None and fmt != "dicom-seg":
        raise ParameterError("--with-sr goes with --format dicom-seg only")
    if seg_path is not None and fmt != "dicom-sr":
        raise ParameterError("--seg goes with --format dicom-sr only")
    if fmt == "nifti":
        result.files = [Path(save(labels, out))]
        result.segments = sorted(labels.present_values())
    elif fmt in ("dicom-seg", "dicom-sr"):
        from ..lesions import lesion_instances, measure_lesions

        findings = None
        if fmt == "dicom-sr" or with_sr is not None:
            findings = measure_lesions(lesion_instances(labels), image, tissue=labels)
            result.lesions = len(findings)
            if not findings:
                raise ParameterError("no lesion (label 4) to report: a DICOM TID 1500 "
                                     "measurement report needs at least one measured lesion")
        if fmt == "dicom-sr":
            if seg_path is None:
                raise ParameterError("format dicom-sr needs --seg SEG.dcm: the DICOM SEG the "
                                     "report references")
            seg = _read_seg(Path(seg_path), image)
            result.files = [_write_sr(findings, image, seg, out, what, result.notes)]
        else:
            from .. import __version__
            from ..io.dicom.seg import build_dicom_seg

            seg, notes = build_dicom_seg(labels, image, algorithm=what, version=__version__,
                                         warnings=outside, network="cnn" in what
                                         or "delineo" in what or "unet" in what)
            result.notes = list(notes)
            try:
                with atomic_path(out) as tmp:
                    seg.save_as(tmp)
            except OSError as exc:
                raise WriteError(f"could not write ({exc.strerror or exc})", path=out) from None
            result.files = [out]
            if with_sr is not None:
                sr_notes: list[str] = []
                result.files.append(_write_sr(findings, image, seg, Path(with_sr), what,
                                              sr_notes))
        result.segments = _segments(labels)
    elif fmt == "seg.nrrd":
        from ..io.seg_nrrd import write_seg_nrrd

        result.files = [Path(write_seg_nrrd(labels, out))]
        result.segments = _segments(labels)
    elif fmt == "label-names":
        from ..core.volume import Label, LabelTable
        from ..io.label_tables import write_label_table

        table = labels.labels
        present = sorted({0, *labels.present_values()})
        names = LabelTable.from_labels(
            table[v] if v in table else Label(v, table.name(v), table.color(v))
            for v in present)
        result.files = [write_label_table(names, out)]
        result.segments = _segments(labels)
    else:
        from ..lesions import lesion_instances, measure_lesions, write_findings

        instances = lesion_instances(labels)
        findings = measure_lesions(instances, image, tissue=labels)
        result.lesions = len(findings)
        if fmt == "findings":
            stem = out.name[: -len(full_suffix(out))]
            result.files = [Path(p) for p in write_findings(findings, out.parent, stem=stem)]
        else:
            from .html import write_report

            cards = made_by_cards(labels.metadata)
            result.files = [Path(write_report(out, image=image, labels=labels,
                                              findings=findings, model_card=cards or None,
                                              warnings=warnings, instances=instances))]
    return result


def made_by_cards(metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The model cards of the networks that made a label map, from the method or the
    pipeline description it records (``metadata["method"]``,
    ``metadata["pipeline_description"]``, e.g. ``brain_mask → delineo → lesions``): the
    tissue networks, the lesion networks of a ``lesions`` step (the first alone where
    it records ``ensemble=False``) and, for brain extraction, a card made from
    :data:`~engine.methods.brain_extraction.BRAIN_EXTRACTOR`. Empty when nothing is
    recorded or no network made it."""
    from ..methods.brain_extraction import BRAIN_EXTRACTOR
    from ..methods.lesion_step import lesion_networks
    from ..methods.registry import METHODS
    from ..models.cards import model_cards

    method = metadata.get("method")
    steps = [str(method)] if method else [
        part.strip() for part in str(metadata.get("pipeline_description") or "").split("→")]
    cards = model_cards()
    out: list[dict[str, Any]] = []
    for part in steps:
        name, _, args = part.partition("(")
        spec = METHODS.get(name)
        if spec is not None and spec.kind == "cnn" and name in cards:
            out.append(cards[name])
        elif spec is not None and spec.kind == "brain_extraction":
            b = BRAIN_EXTRACTOR
            out.append({"name": f"{b['name']} (brain extraction)",
                        "version": f"{b['name']} {b['version']} ({b['licence']})",
                        "training_data": b["trained_on"]})
        elif name == "lesions":
            names = lesion_networks("ensemble=False" not in args)
            # a lesion network that was the tissue network too is listed once
            out += [cards[n] for n in names if n in cards and cards[n] not in out]
    return out
