"""The ``calcinosis`` command line: one entry point with subcommands; thin.

Each subcommand lives with its domain in a module that defines
``register(subparsers)``; the parser it adds sets ``func=callable(args) -> int``.
Errors are mapped here: :class:`~calcinosis.errors.CalcinosisError` (bad input)
exits with 2 and one line on stderr, anything else is a bug and exits with 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from calcinosis import __version__
from calcinosis.errors import CalcinosisError

# Modules that contribute subcommands, in help order.
SUBCOMMAND_MODULES = (
    "calcinosis.ct_cli",  # analyze, demo, phantom
    "calcinosis.follow.cli",  # compare
    "calcinosis.cohort.cli",  # batch, cohort
    "calcinosis.radiograph.cli",  # radiograph, radiograph-compare
    "calcinosis.ultrasound.cli",  # ultrasound
    "calcinosis.clinical.cli",  # workup
    "calcinosis.web.cli",  # serve
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="calcinosis",
        description="Find, measure, map and follow soft-tissue calcification on medical images.",
    )
    parser.add_argument("--version", action="version", version=f"calcinosis {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # that part of the package is not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except CalcinosisError as exc:
        if args.debug:
            raise
        print(f"calcinosis {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"calcinosis {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line, traceback only with --debug
        if args.debug:
            raise
        print(
            f"calcinosis {args.command}: internal error ({type(exc).__name__}: {_one_line(exc)}); "
            "rerun with --debug for the traceback and please report it",
            file=sys.stderr,
        )
        return 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
