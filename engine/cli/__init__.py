"""``delineo-engine``: the batch command line of Delineo.

Each group of sub-commands lives in its own module exposing
``register(subparsers)``; :data:`COMMAND_MODULES` lists them explicitly.
Errors the user can act on (:class:`~engine.core.errors.DelineoError`, missing
files) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..core.errors import DelineoError
from ..core.jobs import Cancelled

#: Modules that add sub-commands, in the order they appear in ``--help``.
COMMAND_MODULES: list[str] = [
    "engine.cli.io_commands",
    "engine.cli.method_commands",
    "engine.cli.model_commands",
    "engine.cli.pipeline_commands",
    "engine.cli.benchmark_commands",
]

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="delineo-engine",
        description="Delineo batch tools: inspect and convert volumes, fetch the demo "
        "data, segment, evaluate, train and benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"delineo {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug)")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``delineo-engine``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        status = args.func(args)
    except DelineoError as exc:
        if args.debug:
            raise
        print(f"delineo-engine: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        if args.debug:
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"delineo-engine: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except Cancelled:
        print("delineo-engine: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("delineo-engine: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
