"""Sub-commands ``segment`` and ``methods``.

``delineo-engine segment IMAGE -o OUT.nii.gz --method NAME [--param k=v ...]
[--device auto|cpu|cuda] [--mask BRAINMASK]`` runs a registered method and
writes its label map (0 background, 1 CSF, 2 GM, 3 WM) on the input's grid:
the labels land voxel for voxel on the input file, in its own orientation.
``delineo-engine methods`` lists the methods and their parameters.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..io import load, load_labels, save
from ..params import describe, parse_assignments
from ..volume import LabelMap
from .progress import ProgressBar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment",
        help="segment an image with a registered method (CSF/GM/WM labels)",
        description="Run a segmentation method on an image and write its label map "
        "(0 background, 1 CSF, 2 GM, 3 WM) on the input's grid, in the input file's "
        "orientation. Without --mask, a rough brain mask (half-Otsu foreground, largest "
        "component, holes filled) is used; give a real brain mask for images with skull.",
    )
    p.add_argument("image", help="input image: NIfTI file, DICOM file or DICOM folder")
    p.add_argument("-o", "--output", required=True, help="output label map (.nii or .nii.gz)")
    p.add_argument("--method", required=True, help="method name (see 'delineo-engine methods')")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set a method parameter (repeatable)")
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--mask", help="brain mask on the image's grid (non-zero = brain)")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser(
        "methods",
        help="list the segmentation methods and their parameters",
        description="List every registered method: kind, summary and parameters with "
        "default, unit, valid range and description.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_methods)


def cmd_segment(args: argparse.Namespace) -> int:
    from ..device import resolve_device
    from ..methods import get_method

    spec = get_method(args.method)
    params = parse_assignments(spec.params_type, args.param)
    device = resolve_device(args.device)
    volume = load(args.image)
    mask = None
    if args.mask:
        mask = load_labels(args.mask, reference=volume).array > 0
    bar = ProgressBar(spec.name)
    start = time.perf_counter()
    try:
        result = spec.run(volume, params, device=str(device), mask=mask, progress=bar)
    finally:
        bar.close()
    labels = LabelMap.on_grid_of(volume, result.labels.array, labels=result.labels.labels)
    out = save(labels, args.output)
    elapsed = time.perf_counter() - start
    counts = labels.counts()
    summary = ", ".join(
        f"{labels.labels.name(v)} {n}" for v, n in sorted(counts.items()) if v != 0
    )
    print(f"delineo-engine: {spec.name} on {device} in {elapsed:.1f} s: {summary}",
          file=sys.stderr)
    print(out)
    return 0


def _method_facts() -> list[dict[str, Any]]:
    from ..methods import METHODS

    facts = []
    for name in sorted(METHODS):
        spec = METHODS[name]
        facts.append({
            "name": name,
            "kind": spec.kind,
            "summary": spec.summary,
            "parameters": [
                {
                    "name": info.name,
                    "type": getattr(info.type, "__name__", str(info.type)),
                    "default": info.default,
                    "unit": info.unit,
                    "range": info.range_text(),
                    "doc": info.doc,
                }
                for info in describe(spec.params_type)
            ],
        })
    return facts


def cmd_methods(args: argparse.Namespace) -> int:
    facts = _method_facts()
    if args.json:
        print(json.dumps(facts, indent=2, ensure_ascii=False))
        return 0
    for m in facts:
        print(f"{m['name']}  [{m['kind']}]")
        print(f"    {m['summary']}")
        for prm in m["parameters"]:
            unit = f" {prm['unit']}" if prm["unit"] else ""
            rng = f"  {prm['range']}" if prm["range"] else ""
            print(f"    --param {prm['name']}={prm['default']}{unit}{rng}")
            if prm["doc"]:
                print(f"        {prm['doc']}")
        print()
    return 0
