"""Sub-commands ``pipelines`` and ``compare``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ParameterError
from ..core.params import describe
from ..evaluation.compare import MethodRun, comparison_rows, montage, to_markdown, write_csv
from ..io import load, load_labels, save
from ..methods.pipeline import DEFAULT_PIPELINE, PIPELINES, get_pipeline, run_pipeline
from .common import (
    add_device,
    add_json,
    add_output_folder,
    add_series,
    check_output_folder,
    owned_folder,
    print_json,
    series_value,
)
from .progress import ProgressBar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pipelines",
        help="list the segmentation pipelines and their steps",
        description="List the named pipelines (method → refinement → post-processing); "
        f"'(default)' marks the one 'segment' runs without --method or --pipeline "
        f"({DEFAULT_PIPELINE}).",
    )
    p.add_argument("--params", action="store_true", help="also list every step's parameters")
    add_json(p, "the pipelines, their steps and every step's parameters")
    p.set_defaults(func=cmd_pipelines)

    p = sub.add_parser(
        "compare",
        help="run several pipelines and compare them with a ground truth",
        description="Run pipelines on an image, evaluate each against a ground truth, and "
        "write the label maps (PIPELINE.nii.gz), comparison.csv, comparison.md and "
        "montage.png (one slice per plane for every pipeline next to the ground truth) "
        "into DIR. Nothing is written until every pipeline has run; a failed run removes "
        "the folder it created.",
    )
    p.add_argument("image", help="image (NIfTI, DICOM file or folder, NRRD, MGH)")
    p.add_argument("--ground-truth", required=True, help="ground-truth label map")
    p.add_argument("--pipelines", default=DEFAULT_PIPELINE,
                   help="comma-separated pipeline names (see 'delineo-engine pipelines'; "
                   f"default {DEFAULT_PIPELINE})")
    add_output_folder(p, "output folder (created if missing)")
    add_device(p)
    add_series(p, "IMAGE")
    mask = p.add_mutually_exclusive_group()
    mask.add_argument("--mask", help="brain mask for the classical methods")
    mask.add_argument("--mask-from-truth", action="store_true",
                      help="use the ground truth's brain (labels > 0) as the brain mask")
    p.add_argument("--no-surface", action="store_true",
                   help="skip HD95/ASSD (faster on large volumes)")
    from .method_commands import add_force

    add_force(p)
    add_json(p, "the comparison rows, the best pipeline, the written files and warnings")
    p.set_defaults(func=cmd_compare)


def _pipeline_facts() -> list[dict[str, Any]]:
    facts = []
    for name in sorted(PIPELINES):
        pipe = PIPELINES[name]
        facts.append({
            "name": name,
            "default": name == DEFAULT_PIPELINE,
            "summary": pipe.summary,
            "description": pipe.describe(),
            "steps": [
                {"name": step.name,
                 "parameters": [{"name": info.name, "default": info.default, "unit": info.unit,
                                 "range": info.range_text(), "doc": info.doc}
                                for info in describe(step.spec().params_type)]}
                for step in pipe.steps
            ],
        })
    return facts


def cmd_pipelines(args: argparse.Namespace) -> int:
    facts = _pipeline_facts()
    if args.json:
        print_json(facts)
        return 0
    for pipe in facts:
        marker = " (default)" if pipe["default"] else ""
        print(f"{pipe['name']}{marker}: {pipe['summary']}")
        print(f"    steps: {pipe['description']}")
        if args.params:
            for step in pipe["steps"]:
                for prm in step["parameters"]:
                    unit = f" {prm['unit']}" if prm["unit"] else ""
                    rng = f" {prm['range']}" if prm["range"] else ""
                    print(f"      {step['name']}.{prm['name']} = {prm['default']!r}{unit}{rng}"
                          f"  {prm['doc']}")
    return 0


def safe_name(name: str) -> str:
    """A file-name-safe version of a pipeline name (``cnn+rd`` stays ``cnn+rd``)."""
    return re.sub(r"[^A-Za-z0-9+_.-]", "_", name)


def cmd_compare(args: argparse.Namespace) -> int:
    from ..core.device import resolve_device

    names = [n.strip() for n in args.pipelines.split(",") if n.strip()]
    if not names:
        raise ParameterError("--pipelines is empty")
    pipes = [get_pipeline(n) for n in dict.fromkeys(names)]
    device = str(resolve_device(args.device))
    out = check_output_folder(args.out)
    image = load(args.image, series=series_value(args.series))
    truth = load_labels(args.ground_truth, reference=image)
    from .method_commands import guard_applicability

    warnings: dict[str, list[str]] = {}
    for pipe in pipes:
        reasons = guard_applicability(image, pipe, force=bool(getattr(args, "force", False)))
        if reasons:
            warnings[pipe.name] = reasons
    mask = None
    if args.mask_from_truth:
        mask = truth.array > 0
    elif args.mask:
        mask = load_labels(args.mask, reference=image).array > 0
    runs: dict[str, MethodRun] = {}
    for pipe in pipes:
        with ProgressBar(pipe.name) as bar:
            result = run_pipeline(image, pipe, device=device, mask=mask, progress=bar)
        runs[pipe.name] = MethodRun(result.labels, result.seconds, result.peak_rss_bytes)
    rows = comparison_rows(runs, truth, surface=not args.no_surface)
    table = to_markdown(rows)
    means = {r["method"]: r["dice"] for r in rows if r["label"] == "mean"}
    files = []
    with owned_folder(out):
        out.mkdir(parents=True, exist_ok=True)
        for name, run in runs.items():
            files.append(save(run.labels, out / f"{safe_name(name)}.nii.gz"))
        files.append(write_csv(rows, out / "comparison.csv"))
        md = out / "comparison.md"
        md.write_text(
            f"# Comparison on {Path(args.image).name}\n\n"
            f"Ground truth: {Path(args.ground_truth).name}; device: {device}; "
            f"brain mask: {'ground truth' if args.mask_from_truth else args.mask or 'none'}\n\n"
            + table
        )
        files.append(md)
        files.append(montage(image, {n: r.labels for n, r in runs.items()}, truth,
                             out / "montage.png", dice=means))
    best = max(means, key=lambda k: means[k] if np.isfinite(means[k]) else -1)
    if args.json:
        print_json({"out": out, "device": device, "best": {"pipeline": best,
                                                           "mean_dice": means[best]},
                    "rows": rows, "files": files, "warnings": warnings})
        return 0
    print(table, end="")
    print(f"\nbest mean Dice: {best} ({means[best]:.4f}); outputs in {out}")
    return 0
