"""Sub-command ``export``: a label map in the formats other tools and people read.

``delineo-engine export LABELS --reference IMAGE -o OUT [--format F] [--json]``

* ``nifti`` (``.nii``/``.nii.gz``): the label map in the image file's geometry;
* ``dicom-seg`` (``.dcm``): a DICOM Segmentation on the reference DICOM
  series (:mod:`engine.io.dicom.seg`): segment names, colours, SNOMED CT
  codes, algorithm, a new series referencing the source instances;
* ``seg.nrrd`` (``.seg.nrrd``): 3D Slicer's segmentation file with segment
  names and colours (:mod:`engine.io.seg_nrrd`);
* ``findings`` (``.json`` or ``.csv``): the lesions (label 4) measured
  (:mod:`engine.lesions`) -- writes both ``STEM.json`` and ``STEM.csv``;
* ``report`` (``.html`` or ``.pdf``): the human-readable findings report with
  tissue volumes, the findings table, key images, the model card summary and
  the result's warnings (:mod:`engine.reports`).

The format follows from OUT's name unless ``--format`` says it. LABELS must
lie on IMAGE's grid (else exit 3 with what differs). Warnings a result
carries (run outside its declared use, a "review this" verdict) go into the
report.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..core.errors import ParameterError, unknown_name
from ..io.atomic import full_suffix
from .common import (
    add_json,
    add_output_file,
    add_series,
    check_output_file,
    print_json,
    say,
    series_value,
    warn,
)

FORMATS: dict[str, tuple[str, ...]] = {
    "nifti": (".nii", ".nii.gz"),
    "dicom-seg": (".dcm",),
    "seg.nrrd": (".seg.nrrd",),
    "findings": (".json", ".csv"),
    "report": (".html", ".pdf"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a label map as NIfTI, DICOM SEG, 3D Slicer seg.nrrd, findings (JSON/CSV) "
        "or a report",
        description="Write LABELS (a label map on the grid of --reference) as NIfTI, as a DICOM "
        "SEG on the --reference DICOM series (.dcm), as a 3D "
        "Slicer segmentation (.seg.nrrd, with segment names and colours), as the measured "
        "lesions (findings .json + .csv) or as the findings report (.html or .pdf). The "
        "format follows from the output name unless --format gives it.",
    )
    p.add_argument("labels", help="label map (NIfTI, e.g. written by 'segment')")
    p.add_argument("--reference", required=True, metavar="IMAGE",
                   help="the image LABELS belongs to (NIfTI file, DICOM file or folder)")
    add_output_file(p, "output file: .nii/.nii.gz, .dcm (DICOM SEG), .seg.nrrd, "
                    ".json/.csv (findings) or "
                    ".html/.pdf (report); its folder must exist")
    p.add_argument("--algorithm", default="Delineo",
                   help="dicom-seg: the algorithm name when LABELS does not say which method "
                   "or pipeline made it (default Delineo)")
    p.add_argument("--format", choices=sorted(FORMATS),
                   help="output format (default: from the output name)")
    add_series(p, "--reference")
    add_json(p, "what was written (files, format, segments or lesions, warnings)")
    p.set_defaults(func=cmd_export)


def _format_of(path: Path, asked: str | None) -> str:
    name = path.name.lower()
    suffix = full_suffix(path).lower()
    if asked is not None:
        if not any(name.endswith(s) for s in FORMATS[asked]):
            raise ParameterError(f"format {asked} writes {' or '.join(FORMATS[asked])} files, "
                                 f"not {suffix or path.name!r}", path=path)
        return asked
    for fmt, suffixes in FORMATS.items():
        if any(name.endswith(s) for s in suffixes):
            return fmt
    known = [s for suffixes in FORMATS.values() for s in suffixes]
    raise ParameterError(unknown_name("output format", suffix or path.name, known), path=path)


def cmd_export(args: argparse.Namespace) -> int:
    from ..io import load, load_labels, save

    out = Path(args.output)
    fmt = _format_of(out, args.format)
    check_output_file(out, suffixes=None)  # the name was checked against the format above
    image = load(args.reference, series=series_value(args.series))
    labels = load_labels(args.labels, reference=image)
    outside = [str(w) for w in (labels.metadata.get("result") or {}).get("warnings", [])]
    warnings = list(outside)
    verdict = labels.metadata.get("plausibility") or {}
    if verdict.get("verdict") == "review this":
        warnings.append("plausibility: review this: " + "; ".join(verdict.get("reasons", [])))
    summary: dict[str, Any] = {"input": args.labels, "format": fmt, "warnings": warnings}
    if fmt == "nifti":
        summary["files"] = [save(labels, out)]
        summary["segments"] = sorted(labels.present_values())
    elif fmt == "dicom-seg":
        from .. import __version__
        from ..io.dicom.seg import write_dicom_seg

        what = str(labels.metadata.get("pipeline") or labels.metadata.get("method")
                   or args.algorithm)
        path, notes = write_dicom_seg(labels, image, out, algorithm=what, version=__version__,
                                      warnings=outside, network="cnn" in what
                                      or "delineo" in what or "unet" in what)
        summary["files"] = [path]
        summary["notes"] = notes
        summary["segments"] = [{"value": v, "name": labels.labels.name(v)}
                               for v in labels.present_values() if v != 0]
        for note in notes:
            warn(note)
    elif fmt == "seg.nrrd":
        from ..io.seg_nrrd import write_seg_nrrd

        summary["files"] = [write_seg_nrrd(labels, out)]
        summary["segments"] = [{"value": v, "name": labels.labels.name(v)}
                               for v in labels.present_values() if v != 0]
    else:
        from ..lesions import lesion_instances, measure_lesions, write_findings

        instances = lesion_instances(labels)
        findings = measure_lesions(instances, image, tissue=labels)
        summary["lesions"] = len(findings)
        if fmt == "findings":
            stem = out.name[: -len(full_suffix(out))]
            summary["files"] = write_findings(findings, out.parent, stem=stem)
        else:
            from ..models.cards import model_cards
            from ..reports import write_report

            what = labels.metadata.get("pipeline") or labels.metadata.get("method")
            cards = model_cards()
            card = next((c for name, c in cards.items() if what and name in str(what)), None)
            summary["files"] = [write_report(out, image=image, labels=labels, findings=findings,
                                             model_card=card, warnings=warnings,
                                             instances=instances)]
    if args.json:
        print_json(summary)
    else:
        for path in summary["files"]:
            print(path)
    say(f"export: {fmt}" + (f", {summary['lesions']} lesion(s)" if "lesions" in summary else ""))
    return 0
