"""Sub-command ``batch``: a cohort through one method or pipeline, on Ray.

``delineo-engine batch INPUT... --out DIR [--pipeline NAME | --method NAME]
[--param k=v ...] [--detect] [--workers N] [--threads N] [--address ADDR] [--retries N]
[--timeout S] [--force] [--compile] [--allow-outside-use] [--device D] [--json]``

INPUT is image files (NIfTI, DICOM, NRRD, MGH), DICOM folders, folders to scan, or a cohort
CSV (``case,image[,ground_truth][,series]``). Every case is what ``segment``
does (:func:`engine.batch.run_case`); a bad case is a failed row, the run goes
on; a second run skips finished cases (``--force`` redoes them). Writes
``DIR/labels/CASE.nii.gz``, ``DIR/findings/CASE.{json,csv}`` with
``--detect``, ``DIR/summary.csv`` and ``DIR/manifest.json``. Ray is optional
(``pip install 'delineo[cluster]'``). docs/batch.md has the details.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ..core.errors import ParameterError
from ..core.params import parse_assignments
from ..methods.pipeline import DEFAULT_PIPELINE
from .common import (
    EXIT_CASES_FAILED,
    add_device,
    add_json,
    add_output_folder,
    check_output_folder,
    print_json,
    say,
    warn,
)
from .progress import is_quiet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="segment a cohort (files, folders or a CSV) on Ray, resumably",
        description="Segment many cases with one method or pipeline (default: the default "
        f"pipeline '{DEFAULT_PIPELINE}') on Ray workers that keep their networks loaded: an "
        "embedded cluster on this machine (127.0.0.1), or an existing one with --address or "
        "RAY_ADDRESS. A bad case becomes a failed row and the run goes on; a worker that dies "
        "is restarted and its case retried; a second run skips the cases whose outputs exist "
        "and load back (--force redoes them). Writes DIR/labels/CASE.nii.gz, "
        "DIR/summary.csv and DIR/manifest.json. Needs Ray: pip install 'delineo[cluster]'.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image file (NIfTI, DICOM, NRRD, MGH), DICOM folder, folder to scan "
                   "(NIfTI files and DICOM series, recursively), or a CSV with the columns "
                   "case,image and optionally ground_truth and series")
    add_output_folder(p, "output folder (created; finished cases in it are skipped)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--method", help="method name (see 'delineo-engine methods')")
    what.add_argument("--pipeline",
                      help=f"pipeline name (default: {DEFAULT_PIPELINE}; "
                      "see 'delineo-engine pipelines --params')")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter (repeatable), as for 'segment'")
    p.add_argument("--detect", action="store_true",
                   help="also measure the lesions (label 4) of each result and write "
                   "DIR/findings/CASE.json and .csv; with a lesion pipeline (the default "
                   "head, head+lesions, cnn+lesions) these are the lesion networks' findings, "
                   "otherwise what the method or pipeline labels 4")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="worker processes (default: one per CPU core here, or per CPU (per "
                   "GPU with --device cuda) of the cluster; never more than the cases)")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="torch threads of each worker (default: the cores of a machine "
                   "divided by its workers, so that workers x threads <= cores)")
    p.add_argument("--address", metavar="ADDR",
                   help="join this Ray cluster (HOST:PORT, ray://HOST:PORT or auto) instead "
                   "of starting one here (default: RAY_ADDRESS when set)")
    p.add_argument("--retries", type=int, default=2, metavar="N",
                   help="times a case is given again after its worker process died "
                   "(default 2)")
    p.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                   help="seconds a case may run before its worker is restarted and the case "
                   "marked failed (default 1800; 0: no limit)")
    p.add_argument("--force", action="store_true",
                   help="redo cases whose outputs already exist")
    p.add_argument("--compile", action="store_true",
                   help="run Delineo's networks through torch.compile: each worker compiles "
                   "them when it starts (about 40 s a network on 2 cores, seconds once "
                   "inductor's on-disk cache holds them), then runs them about 1.7x "
                   "faster (a whole case about 1.3x); for cohorts of about 50 volumes "
                   "and more (needs a C++ compiler; without one the networks stay eager, "
                   "with a warning)")
    p.add_argument("--allow-outside-use", action="store_true",
                   help="run images outside what the method or pipeline was made for; the "
                   "reasons are recorded as warnings (what 'segment --force' does)")
    add_device(p)
    add_json(p, "the run (counts, manifest and one entry per case)")
    p.set_defaults(func=cmd_batch)


def _config(args: argparse.Namespace) -> Any:
    """The checked :class:`~engine.batch.CaseConfig` (names and --param values)."""
    from ..batch import CaseConfig
    from ..core.device import resolve_device
    from ..methods import get_method
    from ..methods.pipeline import get_pipeline
    from .method_commands import pipeline_overrides

    params = overrides = None
    if args.method:
        spec = get_method(args.method)
        params = parse_assignments(spec.params_type, args.param)
    else:
        overrides = pipeline_overrides(get_pipeline(args.pipeline or DEFAULT_PIPELINE),
                                       args.param) or None
    resolve_device(args.device)  # CUDA asked for but absent: refused now
    return CaseConfig(method=args.method, pipeline=None if args.method else
                      (args.pipeline or DEFAULT_PIPELINE), params=params, overrides=overrides,
                      device=args.device, allow_outside_use=args.allow_outside_use,
                      detect=args.detect, compile=args.compile)


class _Bar:
    """Cases done / total with ETA on stderr (tqdm), only on a terminal and without -q."""

    def __init__(self, total: int) -> None:
        self.bar = None
        if total and not is_quiet() and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="case", desc="batch", file=sys.stderr,
                            dynamic_ncols=True, leave=False)

    def __call__(self, result: Any, _run: Any = None) -> None:
        if result.status == "failed":
            if self.bar is not None:  # above the bar, which is drawn again below it
                self.bar.write(f"delineo-engine: warning: {result.case}: {result.error}",
                               file=sys.stderr)
            else:
                warn(f"{result.case}: {result.error}")
        if self.bar is not None:
            self.bar.set_postfix_str(f"{result.case} {result.status}", refresh=False)
            self.bar.update(1)

    def skip(self, result: Any) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_batch(args: argparse.Namespace) -> int:
    from ..batch import collect_cases, require_ray, run_batch, write_manifest, write_summary

    if args.workers < 0:
        raise ParameterError(f"--workers must be >= 0, not {args.workers}")
    if args.threads < 0:
        raise ParameterError(f"--threads must be >= 0, not {args.threads}")
    if args.retries < 0:
        raise ParameterError(f"--retries must be >= 0, not {args.retries}")
    if not args.timeout >= 0:
        raise ParameterError(f"--timeout must be >= 0 seconds, not {args.timeout}")
    require_ray()
    config = _config(args)
    out = check_output_folder(args.out)
    cases = collect_cases(args.inputs)
    say(f"{len(cases)} case(s), {config.what} on {args.device}; outputs in {out}")
    skipped: list[str] = []
    bar = _Bar(len(cases))
    start = time.perf_counter()
    try:
        run = run_batch(cases, out, config, workers=args.workers, threads=args.threads,
                        address=args.address,
                        retries=args.retries, timeout=args.timeout or None, force=args.force,
                        on_result=bar, on_skip=lambda r: (skipped.append(r.case), bar.skip(r)))
    finally:
        bar.close()
    if skipped:
        say(f"skipped {len(skipped)} case(s) whose outputs exist and load back "
            f"(--force redoes them): " + ", ".join(skipped[:10])
            + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""))
    summary = write_summary(run.results, out)
    manifest = write_manifest(run, config, out, inputs=args.inputs)
    counts = run.counts()
    minutes = (time.perf_counter() - start) / 60
    ran = counts["done"] + counts["failed"]
    rate = f", {ran / minutes:.1f} cases/min" if ran and minutes > 0 else ""
    say(f"{counts['done']} done, {counts['failed']} failed, {counts['skipped']} skipped "
        f"on {run.workers} worker(s){rate}; summary: {summary}")
    if args.json:
        print_json({"out": out, "summary": summary, "manifest": manifest, **counts,
                    "workers": run.workers, "cases": [r.to_json() for r in run.results]})
    else:
        print(summary)
    if counts["failed"]:
        warn(f"{counts['failed']} of {ran} case(s) failed; their rows in {summary} say why "
             f"(exit status {EXIT_CASES_FAILED})")
        return EXIT_CASES_FAILED
    return 0
