"""Sub-command ``benchmark``: the tables and figures of Dai's thesis, measured on Delineo."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.errors import ParameterError, unknown_name
from .common import (
    add_device,
    add_json,
    add_output_folder,
    check_output_folder,
    owned_folder,
    print_json,
)
from .progress import ProgressBar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="case study, parameter analysis, robustness grid and figure on phantoms",
        description="Evaluate every method and pipeline on 256x256 axial phantom slices drawn "
        "across contrasts (T1/T2/PD), noise 0-9 % and INU 0-40 % with a fixed seed, plus "
        "scikit-image Chan-Vese and scikit-learn Gaussian-mixture references. Writes "
        "report.md, case_study.csv, case_study_slices.csv, parameters.csv, robustness.csv, "
        "parameters_*.png, robustness.png, figure.png and predictions/ into DIR. Options are "
        "checked before anything runs; a failed run removes the folder it created.",
    )
    add_output_folder(p, "output folder (created if missing)")
    p.add_argument("--quick", action="store_true",
                   help="few slices and methods (under a minute; used by the tests)")
    p.add_argument("--slices", type=int, help="number of case-study slices (default 100)")
    p.add_argument("--methods", help="comma-separated methods/pipelines (default: all)")
    add_device(p)
    p.add_argument("--seed", type=int, default=2026, help="seed of the slice draw")
    p.add_argument("--no-volume", action="store_true",
                   help="skip the whole-volume runtime per method")
    add_json(p, "a summary (case-study table, written files)")
    p.set_defaults(func=cmd_benchmark)


def cmd_benchmark(args: argparse.Namespace) -> int:
    from ..core.device import resolve_device
    from ..evaluation.benchmark.run import BenchmarkConfig, available_methods, run_benchmark

    config = BenchmarkConfig.quick(args.device) if args.quick else BenchmarkConfig(
        device=args.device)
    config.seed = args.seed
    if args.slices is not None:
        if args.slices < 1:
            raise ParameterError("--slices must be at least 1")
        config.n_slices = args.slices
    if args.methods is not None:
        config.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        if not config.methods:
            raise ParameterError("--methods is empty")
        known = available_methods()
        for name in config.methods:
            if name not in known:
                raise ParameterError(unknown_name("method", name, sorted(known)))
    if args.no_volume:
        config.volume_runtime = False
    resolve_device(config.device)
    out = check_output_folder(args.out)
    with owned_folder(out), ProgressBar("benchmark") as bar:
        result = run_benchmark(out, config, progress=bar)
    if args.json:
        print_json({"out": out, "device": config.device, "slices": config.n_slices,
                    "case_study": result.case_rows, "files": result.files})
        return 0
    print((Path(out) / "report.md").read_text().split("## Parameter analysis")[0])
    for f in result.files:
        print(f)
    return 0
