"""Sub-commands ``pipelines`` and ``compare``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from ..core.errors import ParameterError
from ..core.params import describe
from ..evaluation.compare import MethodRun, comparison_rows, montage, to_markdown, write_csv
from ..io import load, load_labels, save
from ..methods.pipeline import DEFAULT_PIPELINE, PIPELINES, get_pipeline, run_pipeline
from .progress import ProgressBar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pipelines",
        help="list the segmentation pipelines and their steps",
        description="List the named pipelines (method → refinement → post-processing).",
    )
    p.add_argument("--params", action="store_true", help="also list every step's parameters")
    p.set_defaults(func=cmd_pipelines)

    p = sub.add_parser(
        "compare",
        help="run several pipelines and compare them with a ground truth",
        description="Run pipelines on an image, evaluate each against a ground truth, and "
        "write the label maps (PIPELINE.nii.gz), comparison.csv, comparison.md and "
        "montage.png (one slice per plane for every pipeline next to the ground truth).",
    )
    p.add_argument("image", help="image (NIfTI, DICOM file or folder)")
    p.add_argument("--ground-truth", required=True, help="ground-truth label map")
    p.add_argument("--pipelines", default=DEFAULT_PIPELINE,
                   help="comma-separated pipeline names (see 'delineo-engine pipelines')")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    mask = p.add_mutually_exclusive_group()
    mask.add_argument("--mask", help="brain mask for the classical methods")
    mask.add_argument("--mask-from-truth", action="store_true",
                      help="use the ground truth's brain (labels > 0) as the brain mask")
    p.add_argument("--no-surface", action="store_true",
                   help="skip HD95/ASSD (faster on large volumes)")
    p.set_defaults(func=cmd_compare)


def cmd_pipelines(args: argparse.Namespace) -> int:
    for name in sorted(PIPELINES):
        pipe = PIPELINES[name]
        marker = " (default)" if name == DEFAULT_PIPELINE else ""
        print(f"{name}{marker}: {pipe.summary}")
        print(f"    steps: {pipe.describe()}")
        if args.params:
            for step in pipe.steps:
                for info in describe(step.spec().params_type):
                    unit = f" {info.unit}" if info.unit else ""
                    rng = f" {info.range_text()}" if info.range_text() else ""
                    print(f"      {step.name}.{info.name} = {info.default!r}{unit}{rng}"
                          f"  {info.doc}")
    return 0


def safe_name(name: str) -> str:
    """A file-name-safe version of a pipeline name (``cnn+rd`` stays ``cnn+rd``)."""
    return re.sub(r"[^A-Za-z0-9+_.-]", "_", name)


def cmd_compare(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.pipelines.split(",") if n.strip()]
    if not names:
        raise ParameterError("--pipelines is empty")
    pipes = [get_pipeline(n) for n in names]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    image = load(args.image)
    truth = load_labels(args.ground_truth, reference=image)
    mask = None
    if args.mask_from_truth:
        mask = truth.array > 0
    elif args.mask:
        mask = load_labels(args.mask, reference=image).array > 0
    runs: dict[str, MethodRun] = {}
    for pipe in pipes:
        bar = ProgressBar(pipe.name)
        result = run_pipeline(image, pipe, device=args.device, mask=mask, progress=bar)
        bar.close()
        save(result.labels, out / f"{safe_name(pipe.name)}.nii.gz")
        runs[pipe.name] = MethodRun(result.labels, result.seconds, result.peak_rss_bytes)
    rows = comparison_rows(runs, truth, surface=not args.no_surface)
    write_csv(rows, out / "comparison.csv")
    table = to_markdown(rows)
    (out / "comparison.md").write_text(
        f"# Comparison on {Path(args.image).name}\n\n"
        f"Ground truth: {Path(args.ground_truth).name}; device: {args.device}; "
        f"brain mask: {'ground truth' if args.mask_from_truth else args.mask or 'none'}\n\n"
        + table
    )
    means = {r["method"]: r["dice"] for r in rows if r["label"] == "mean"}
    montage(image, {n: r.labels for n, r in runs.items()}, truth, out / "montage.png",
            dice=means)
    print(table, end="")
    best = max(means, key=lambda k: means[k] if np.isfinite(means[k]) else -1)
    print(f"\nbest mean Dice: {best} ({means[best]:.4f}); outputs in {out}")
    return 0
