"""Sub-commands ``info``, ``convert``, ``series`` and ``demo-data``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import NoImageFoundError
from ..io import detect_format, load, save
from .common import (
    add_json,
    add_output_file,
    add_output_folder,
    add_series,
    check_output_file,
    check_output_folder,
    owned_folder,
    print_json,
    series_value,
    warn,
)
from .progress import ProgressBar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="print shape, spacing, orientation, affine, value range, modality",
        description="Describe an image: NIfTI, DICOM file or folder, NRRD or MGH file.",
    )
    p.add_argument("path", help="NIfTI, DICOM file or folder, NRRD or MGH file")
    add_series(p)
    add_json(p, "the facts")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "convert",
        help="convert any readable image (DICOM series included) to NIfTI",
        description="Convert an image to NIfTI (.nii or .nii.gz). The output keeps the "
        "input's voxel order and affine; --canonical writes Delineo's RAS+ grid instead.",
    )
    p.add_argument("input", help="NIfTI, DICOM file or folder, NRRD or MGH file")
    add_output_file(p, "output image (.nii or .nii.gz; its folder must exist)")
    add_series(p)
    p.add_argument("--canonical", action="store_true", help="write the RAS+ canonical grid")
    add_json(p, "the output path and the reader's warnings")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser(
        "series",
        help="list the DICOM series in a folder",
        description="List DICOM series (index, modality, slices, size, description, UID), "
        "largest first; the index or the UID selects one with --series. A folder without "
        "DICOM images is an error (exit status 3).",
    )
    p.add_argument("path", help="DICOM folder or file")
    add_json(p, "the series")
    p.set_defaults(func=cmd_series)

    p = sub.add_parser(
        "demo-data",
        help="write the MNI152 demo T1 and its tissue ground truth",
        description="Write the MNI ICBM152 2009a T1 (from the nilearn wheel on PyPI, cached in "
        "the user cache folder) and a ground-truth label map 0/1/2/3 built from its GM/WM maps, "
        "with the template's copyright notice.",
    )
    add_output_folder(p, "output folder (created if missing)")
    add_json(p, "the written paths")
    p.set_defaults(func=cmd_demo_data)


def describe_volume(path: str, series: str | int | None = None) -> dict[str, Any]:
    """The facts ``info`` prints, as a JSON-friendly dict."""
    vol = load(path, series=series)
    data = vol.array
    finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
    return {
        "path": str(path),
        "format": detect_format(path),
        "shape": list(vol.shape),
        "dtype": str(data.dtype),
        "spacing_mm": [round(s, 6) for s in vol.spacing],
        "orientation": "".join(vol.axcodes),
        "source_orientation": "".join(vol.source.axcodes),
        "source_shape": list(vol.source.shape),
        "affine": np.round(vol.affine, 6).tolist(),
        "source_affine": np.round(vol.source.affine, 6).tolist(),
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "modality": vol.modality,
        "description": (
            vol.metadata.get("series_description") or vol.metadata.get("description", "")
        ),
        "warnings": list(vol.metadata.get("warnings", [])),
        "n_series": int(vol.metadata.get("n_series", 1)),
        "series_uid": vol.metadata.get("series_uid"),
        "skipped_series": list(vol.metadata.get("skipped_series", [])),
    }


def _series_hint(path: str | Path, n_series: int, series: object) -> None:
    """Say that the folder held other series when the default choice was taken."""
    if n_series > 1 and series is None:
        warn(f"{n_series} series in this folder; choose another with --series "
             f"(list them with: delineo-engine series {path})")


def cmd_info(args: argparse.Namespace) -> int:
    facts = describe_volume(args.path, series_value(args.series))
    if args.json:
        print_json(facts)
        return 0
    print(f"{facts['path']}  [{facts['format']}]")
    print(f"  shape        {' x '.join(map(str, facts['shape']))}  ({facts['dtype']})")
    print(f"  spacing      {' x '.join(f'{s:g}' for s in facts['spacing_mm'])} mm")
    print(f"  orientation  {facts['source_orientation']} in file, "
          f"{facts['orientation']} in Delineo")
    print(f"  value range  {facts['min']:g} .. {facts['max']:g}")
    print(f"  modality     {facts['modality']}")
    if facts["description"]:
        print(f"  description  {facts['description']}")
    print("  affine (file voxel -> RAS+ mm)")
    for row in facts["source_affine"]:
        print("    " + "  ".join(f"{v:10.4f}" for v in row))
    for w in facts["warnings"]:
        print(f"  warning: {w}")
    _series_hint(args.path, facts["n_series"], args.series)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    output = check_output_file(args.output)
    with ProgressBar("reading") as bar:
        vol = load(args.input, series=series_value(args.series), progress=bar)
    out = save(vol, output, geometry="canonical" if args.canonical else "source")
    warnings = list(vol.metadata.get("warnings", []))
    if args.json:
        print_json({"input": args.input, "output": out, "warnings": warnings})
        return 0
    for w in warnings:
        warn(w)
    _series_hint(args.input, int(vol.metadata.get("n_series", 1)), args.series)
    print(out)
    return 0


def cmd_series(args: argparse.Namespace) -> int:
    from ..io.dicom import list_series

    path = Path(args.path)
    if not path.exists():
        raise FileNotFoundError(2, "no such file or folder", str(path))
    found = list_series(path)
    if not found:
        raise NoImageFoundError("no DICOM series found", path=path)
    if args.json:
        print_json([
            {"index": i, "uid": s.uid, "modality": s.modality, "description": s.description,
             "slices": s.n_slices, "rows": s.rows, "columns": s.columns, "files": s.n_files,
             "readable": not s.problem, "problem": s.problem or None}
            for i, s in enumerate(found)
        ])
        return 0
    for i, s in enumerate(found):
        status = f"  UNREADABLE: {s.problem}" if s.problem else ""
        print(f"[{i}] {s.modality:3s} {s.n_slices:5d} slices {s.columns}x{s.rows}  "
              f"{s.description or '(no description)'}  {s.uid}{status}")
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    from ..data.mni import write_demo_data

    out = check_output_folder(args.out)
    with owned_folder(out):
        paths = write_demo_data(out)
    if args.json:
        print_json(paths)
        return 0
    for p in paths.values():
        print(p)
    return 0
