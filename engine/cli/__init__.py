"""``delineo-engine``: the batch command line of Delineo.

Each group of sub-commands lives in its own module exposing
``register(subparsers)``; :data:`COMMAND_MODULES` lists them explicitly. The
options they share (``-o/--output``, ``--out``, ``--device``, ``--series``,
``--json``) come from :mod:`engine.cli.common`.

Every error prints one line on stderr, ``delineo-engine: error: ...``, and
sets the exit status (:data:`EXIT_STATUSES`, also in ``--help`` and
docs/cli.md): 2 for a wrong command line or a refused parameter value
(:class:`~engine.core.errors.ParameterError`), 3 for wrong data (any other
:class:`~engine.core.errors.DelineoError`, missing files), 1 for an internal
error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import textwrap
from collections.abc import Sequence

from .. import __version__
from ..core.errors import DelineoError, ParameterError
from ..core.jobs import Cancelled
from .common import (
    EXIT_BROKEN_PIPE,
    EXIT_CANCELLED,
    EXIT_CASES_FAILED,
    EXIT_DATA,
    EXIT_INTERNAL,
    EXIT_USAGE,
)
from .progress import set_quiet

__all__ = ["COMMAND_MODULES", "EXIT_STATUSES", "build_parser", "main"]

#: Modules that add sub-commands, in the order they appear in ``--help``.
COMMAND_MODULES: list[str] = [
    "engine.cli.io_commands",
    "engine.cli.method_commands",
    "engine.cli.model_commands",
    "engine.cli.lesion_commands",
    "engine.cli.pipeline_commands",
    "engine.cli.export_commands",
    "engine.cli.pacs_commands",
    "engine.cli.benchmark_commands",
    "engine.cli.batch_commands",
]

#: Exit status -> meaning, as ``--help`` shows them.
EXIT_STATUSES: dict[int, str] = {
    0: "success",
    1: "internal error (a bug in Delineo; --debug shows the traceback)",
    EXIT_USAGE: "usage error: unknown command or option, missing or malformed argument, or a "
    "refused value: unknown method, pipeline, model or device, a --param outside its "
    "range (also one found only with the image, e.g. a time step beyond the stability limit "
    "of its voxel spacing), an output name without .nii/.nii.gz, CUDA asked for but absent",
    EXIT_DATA: "data error: an input file is missing, unreadable or not a usable image, grids "
    "do not match, an output folder does not exist or cannot be written",
    EXIT_CASES_FAILED: "batch: the run completed, but some cases failed (the status and error "
    "columns of summary.csv say which and why)",
    EXIT_CANCELLED: "interrupted (Ctrl-C)",
    EXIT_BROKEN_PIPE: "stdout was closed early (e.g. piped into 'head'); nothing is printed",
}


def _epilog(width: int = 79) -> str:
    lines = ["exit status:"]
    for status, meaning in EXIT_STATUSES.items():
        lines.append(textwrap.fill(meaning, width, initial_indent=f"  {status:<4d} ",
                                   subsequent_indent=" " * 7))
    lines.append("")
    lines.append(textwrap.fill("'delineo-engine COMMAND --help' shows a command's options; "
                               "docs/cli.md describes them all.", width))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="delineo-engine",
        description=textwrap.fill(
            "Delineo batch tools: inspect and convert volumes, fetch the demo data, segment, "
            "evaluate, compare, export, talk to a PACS, train and benchmark.", 79),
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"delineo {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bar and no informational lines on stderr "
                        "(warnings and errors are still shown)")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _error(message: str) -> None:
    print(f"delineo-engine: error: {message}", file=sys.stderr)


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at devnull so the exit flush cannot fail again.

    See "Note on SIGPIPE" in the documentation of Python's ``signal`` module.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``delineo-engine``; returns the process exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``). Command-line syntax errors
        exit through argparse (``SystemExit(2)``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # --help, --version or a usage error: flush while we can still catch
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
        raise
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    set_quiet(args.quiet)
    try:
        status = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except ParameterError as exc:
        if args.debug:
            raise
        _error(str(exc))
        return EXIT_USAGE
    except (Cancelled, KeyboardInterrupt):
        print("delineo-engine: interrupted", file=sys.stderr)
        return EXIT_CANCELLED
    except DelineoError as exc:
        if args.debug:
            raise
        _error(str(exc))
        return EXIT_DATA
    except OSError as exc:
        if args.debug:
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        _error(f"{where}{exc.strerror or exc}")
        return EXIT_DATA
    except Exception as exc:
        if args.debug:
            raise
        text = " ".join(str(exc).split()) or "(no message)"
        _error(f"internal error: {type(exc).__name__}: {text} "
               "(please report it; --debug shows the traceback)")
        return EXIT_INTERNAL
    finally:
        set_quiet(False)
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
