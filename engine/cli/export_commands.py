"""Sub-command ``export``: a label map in the formats other tools and people read.

``delineo-engine export LABELS --reference IMAGE -o OUT [--format F] [--json]``

* ``nifti`` (``.nii``/``.nii.gz``): the label map in the image file's geometry;
* ``dicom-seg`` (``.dcm``): a DICOM Segmentation on the reference DICOM
  series (:mod:`engine.io.dicom.seg`): segment names, colours, SNOMED CT
  codes, algorithm, a new series referencing the source instances;
* ``dicom-sr`` (``.dcm``, with ``--seg SEG.dcm``): the TID 1500 measurement
  report of the lesions (label 4) referencing that SEG (:mod:`engine.reports.sr`);
  ``--format dicom-seg --with-sr SR.dcm`` writes a SEG and its SR in one go;
* ``seg.nrrd`` (``.seg.nrrd``): 3D Slicer's segmentation file with segment
  names and colours (:mod:`engine.io.seg_nrrd`);
* ``label-names`` (``.txt`` or ``.ctbl``): the names and colours of the values
  LABELS holds, as ITK-SNAP label descriptions or a 3D Slicer colour table
  (:mod:`engine.io.label_tables`), to open beside its NIfTI file;
* ``findings`` (``.json`` or ``.csv``): the lesions (label 4) measured
  (:mod:`engine.lesions`) -- writes both ``STEM.json`` and ``STEM.csv``;
* ``report`` (``.html`` or ``.pdf``): the human-readable findings report with
  tissue volumes, the findings table, key images, the model card summary and
  the result's warnings (:mod:`engine.reports`).

The logic lives in :func:`engine.reports.export.export_labels` (the viewer
calls it too). The format follows from OUT's name unless ``--format`` says it. LABELS must
lie on IMAGE's grid (else exit 3 with what differs). Warnings a result
carries (run outside its declared use, a "review this" verdict) go into the
report.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..reports.export import FORMATS
from .common import (
    add_json,
    add_label_names,
    add_output_file,
    add_series,
    check_output_file,
    label_names,
    print_json,
    say,
    series_value,
    warn,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a label map as NIfTI, DICOM SEG, 3D Slicer seg.nrrd, label names, "
        "findings (JSON/CSV) or a report",
        description="Write LABELS (a label map on the grid of --reference) as NIfTI, as a DICOM "
        "SEG on the --reference DICOM series (.dcm), as a 3D "
        "Slicer segmentation (.seg.nrrd, with segment names and colours), as its label names "
        "(ITK-SNAP label descriptions .txt, or a 3D Slicer colour table .ctbl), as the "
        "measured lesions (findings .json + .csv) or as the findings report (.html or .pdf). "
        "The format follows from the output name unless --format gives it.",
    )
    p.add_argument("labels", help="label map (NIfTI, e.g. written by 'segment')")
    p.add_argument("--reference", required=True, metavar="IMAGE",
                   help="the image LABELS belongs to (NIfTI file, DICOM file or folder)")
    add_output_file(p, "output file: .nii/.nii.gz, .dcm (DICOM SEG), .seg.nrrd, "
                    ".txt/.ctbl (label names), .json/.csv (findings) or "
                    ".html/.pdf (report); its folder must exist")
    add_label_names(p)
    p.add_argument("--algorithm", default="Delineo",
                   help="dicom-seg: the algorithm name when LABELS does not say which method "
                   "or pipeline made it (default Delineo)")
    p.add_argument("--format", choices=sorted(FORMATS),
                   help="output format (default: from the output name; .dcm means dicom-seg)")
    p.add_argument("--seg", metavar="SEG.dcm",
                   help="dicom-sr: the DICOM SEG (of the --reference series) the measurement "
                   "report references")
    p.add_argument("--with-sr", metavar="SR.dcm",
                   help="dicom-seg: also write the TID 1500 measurement report of the lesions "
                   "(DICOM SR) here, referencing the SEG just written")
    add_series(p, "--reference")
    add_json(p, "what was written (files, format, segments or lesions, warnings)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from ..io import load, load_labels
    from ..reports.export import export_labels, format_of

    out = Path(args.output)
    fmt = format_of(out, args.format)
    check_output_file(out, suffixes=None)  # the name was checked against the format above
    if args.with_sr is not None:
        check_output_file(Path(args.with_sr), suffixes=(".dcm",))
    image = load(args.reference, series=series_value(args.series))
    labels = load_labels(args.labels, reference=image, labels=label_names(args))
    result = export_labels(labels, image, out, fmt, algorithm=args.algorithm,
                           seg_path=args.seg, with_sr=args.with_sr)
    summary: dict[str, Any] = {"input": args.labels, **result.as_dict()}
    if fmt in ("findings", "report"):
        del summary["segments"]
    if not result.notes:
        del summary["notes"]
    for note in result.notes:
        warn(note)
    if args.json:
        print_json(summary)
    else:
        for path in result.files:
            print(path)
    say(f"export: {fmt}" + (f", {result.lesions} lesion(s)" if result.lesions is not None
                            else ""))
    return 0
