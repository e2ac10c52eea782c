"""Sub-commands ``segment`` and ``methods``.

``delineo-engine segment IMAGE -o OUT.nii.gz --method NAME [--param k=v ...]
[--device auto|cpu|cuda] [--mask BRAINMASK]`` runs a registered method and
writes its label map (0 background, 1 CSF, 2 GM, 3 WM) on the input's grid:
the labels land voxel for voxel on the input file, in its own orientation.
``--pipeline NAME`` (instead of ``--method``) runs a named pipeline of
:mod:`engine.methods.pipeline`; its ``--param`` assignments are ``STEP.NAME=VALUE``
(or ``NAME=VALUE`` when only one step has that parameter).
``delineo-engine methods`` lists the methods and their parameters.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.errors import ParameterError
from ..core.params import describe, parse_assignments
from ..core.volume import LabelMap, Volume
from ..io import load, load_labels, save
from .progress import ProgressBar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment",
        help="segment an image with a registered method (CSF/GM/WM labels)",
        description="Run a segmentation method on an image and write its label map "
        "(0 background, 1 CSF, 2 GM, 3 WM) on the input's grid, in the input file's "
        "orientation. Without --mask, a rough brain mask (half-Otsu foreground, largest "
        "component, holes filled) is used; give a real brain mask for images with skull. "
        "--pipeline runs a named pipeline (method, refinement, post-processing) instead "
        "of a single method.",
    )
    p.add_argument("image", help="input image: NIfTI file, DICOM file or DICOM folder")
    p.add_argument("-o", "--output", required=True, help="output label map (.nii or .nii.gz)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--method", help="method name (see 'delineo-engine methods')")
    what.add_argument("--pipeline",
                      help="pipeline name (see 'delineo-engine pipelines --params')")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter (repeatable); with --pipeline write STEP.NAME=VALUE, "
                   "or NAME=VALUE when a single step has that parameter")
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


def pipeline_overrides(pipeline: Any, assignments: Sequence[str]) -> dict[int, dict[str, Any]]:
    """``{step index: {name: value}}`` from ``STEP.NAME=VALUE`` / ``NAME=VALUE`` strings.

    ``STEP`` is a step name of the pipeline or its 1-based position; a bare
    ``NAME`` must belong to exactly one step. Values are parsed and checked
    against the step's parameter ranges.
    """
    steps = list(pipeline.steps)
    names = {i: {info.name for info in describe(s.spec().params_type)}
             for i, s in enumerate(steps)}
    per_step: dict[int, list[str]] = {}
    for item in assignments:
        if "=" not in item:
            raise ParameterError(f"parameter {item!r} must be written as STEP.NAME=VALUE")
        key, _, value = item.partition("=")
        key = key.strip()
        if "." in key:
            step_key, _, name = key.rpartition(".")
            if step_key.isdigit() and 1 <= int(step_key) <= len(steps):
                index = int(step_key) - 1
            else:
                hits = [i for i, s in enumerate(steps) if s.name == step_key]
                if not hits:
                    raise ParameterError(
                        f"pipeline {pipeline.name} has no step {step_key!r}; its steps: "
                        + ", ".join(s.name for s in steps))
                index = hits[0]
        else:
            name = key
            hits = [i for i, known in names.items() if name in known]
            if len(hits) != 1:
                where = ("no step has" if not hits else
                         "several steps have (" + ", ".join(steps[i].name for i in hits) + ")")
                raise ParameterError(
                    f"{where} a parameter {name!r}; write STEP.{name}=VALUE "
                    f"(see 'delineo-engine pipelines --params')")
            index = hits[0]
        per_step.setdefault(index, []).append(f"{name}={value}")
    overrides: dict[int, dict[str, Any]] = {}
    for index, items in per_step.items():
        params_type = steps[index].spec().params_type
        keys = [item.partition("=")[0] for item in items]
        parsed = parse_assignments(params_type, items)
        overrides[index] = {k: getattr(parsed, k) for k in keys}
    return overrides


def _brain_mask(args: argparse.Namespace, volume: Volume) -> np.ndarray | None:
    if not args.mask:
        return None
    return load_labels(args.mask, reference=volume).array > 0


def _report(what: str, device: object, elapsed: float, labels: LabelMap) -> None:
    counts = labels.counts()
    summary = ", ".join(
        f"{labels.labels.name(v)} {n}" for v, n in sorted(counts.items()) if v != 0
    )
    print(f"delineo-engine: {what} on {device} in {elapsed:.1f} s: {summary}", file=sys.stderr)


def cmd_segment(args: argparse.Namespace) -> int:
    if args.pipeline:
        return _segment_pipeline(args)
    from ..core.device import resolve_device
    from ..methods import get_method

    spec = get_method(args.method)
    params = parse_assignments(spec.params_type, args.param)
    device = resolve_device(args.device)
    volume = load(args.image)
    mask = _brain_mask(args, volume)
    bar = ProgressBar(spec.name)
    start = time.perf_counter()
    try:
        result = spec.run(volume, params, device=str(device), mask=mask, progress=bar)
    finally:
        bar.close()
    labels = LabelMap.on_grid_of(volume, result.labels.array, labels=result.labels.labels)
    out = save(labels, args.output)
    _report(spec.name, device, time.perf_counter() - start, labels)
    print(out)
    return 0


def _segment_pipeline(args: argparse.Namespace) -> int:
    from ..core.device import resolve_device
    from ..methods.pipeline import get_pipeline, run_pipeline

    pipe = get_pipeline(args.pipeline)
    overrides = pipeline_overrides(pipe, args.param)
    device = resolve_device(args.device)
    volume = load(args.image)
    mask = _brain_mask(args, volume)
    bar = ProgressBar(pipe.name)
    try:
        result = run_pipeline(volume, pipe, device=str(device), mask=mask,
                              overrides=overrides, progress=bar)
    finally:
        bar.close()
    labels = LabelMap.on_grid_of(volume, result.labels.array, labels=result.labels.labels)
    labels.metadata["pipeline"] = result.pipeline
    labels.metadata["pipeline_description"] = result.description
    out = save(labels, args.output)
    steps = "; ".join(f"{s.name} {s.seconds:.1f} s" for s in result.steps)
    print(f"delineo-engine: {result.description}: {steps}", file=sys.stderr)
    _report(pipe.name, device, result.seconds, labels)
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
