"""The ``calcinosis`` command line: one entry point with subcommands; thin.

Each subcommand lives with its domain in a module that defines
``register(subparsers)``; the parser it adds sets ``func=callable(args) -> int``.
Errors are mapped here: :class:`~calcinosis.errors.CalcinosisError` (bad input, wrong
usage of the command line included) exits with 2 and one line on stderr, Ctrl-C with 130
and one line, anything else is a bug and exits with 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from calcinosis import __version__
from calcinosis.errors import CalcinosisError
from calcinosis.threads import check_threads_env

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


class UsageError(CalcinosisError):
    """Wrong usage of the command line (an unknown option, a missing argument, a value of the
    wrong type); ``prog`` is the (sub)command it concerns."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class CommandLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are :class:`UsageError`: :func:`main` says them in one
    line, as every other bad input, rather than argparse's usage block and ``sys.exit(2)``.
    Subparsers are made of this class too (argparse makes them of the parent's type)."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(self.prog, message)

    def add_argument(self, *args, **kwargs):
        """As argparse's, but an argument that takes a value refuses an empty one (unless its
        default is empty): ``""`` became the current folder (``Path("")``), so ``batch "" --out
        x`` analysed it, ``workup --out ""`` wrote into it and ``serve --token ""`` served
        without the token asked for."""
        if kwargs.get("action") in (None, "store", "append") and kwargs.get("nargs") != 0 \
                and kwargs.get("default") != "":
            kwargs["type"] = _not_empty(kwargs.get("type"))
        return super().add_argument(*args, **kwargs)


def _not_empty(convert):
    """``convert`` (None: keep the text) of a command-line value that is not an empty string."""

    def parse(text: str):
        if text == "":
            raise argparse.ArgumentTypeError("an empty string; give a value")
        return text if convert is None else convert(text)

    parse.__name__ = getattr(convert, "__name__", "str")  # argparse names it: "invalid float value"
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = CommandLineParser(
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
    try:
        parser = build_parser()  # imports every subcommand's module: a second or more
        args, extra = parser.parse_known_args(argv)
        if extra:
            raise UsageError(_command_prog(args), f"unrecognized arguments: {' '.join(extra)}")
    except UsageError as exc:
        print(f"{exc.prog}: error: {_one_line(exc)} (see {exc.prog} --help)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while starting: no traceback from deep in an import
        print("calcinosis: interrupted", file=sys.stderr)
        return 130
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s: %(message)s",
        handlers=[_StderrHandler()],
    )
    if not getattr(args, "func", None):
        commands = ", ".join(_subcommands(parser))
        print(f"calcinosis: error: give a command: {commands} (see calcinosis --help)", file=sys.stderr)
        return 2
    try:
        check_threads_env()  # before any output folder is touched
        return int(args.func(args) or 0)
    except CalcinosisError as exc:
        if args.debug:
            raise
        print(f"{_command_prog(args)}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{_command_prog(args)}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line, traceback only with --debug
        if args.debug:
            raise
        print(
            f"{_command_prog(args)}: internal error ({type(exc).__name__}: {_one_line(exc)}); "
            "rerun with --debug for the traceback and please report it",
            file=sys.stderr,
        )
        return 1


class _StderrHandler(logging.StreamHandler):
    """Logs to whatever ``sys.stderr`` is at the time: while a rich status line or progress bar
    is shown, that is rich's proxy, which prints the message above it (a handler holding the
    terminal's stream wrote it onto the status line: "calcinosis: readingWARNING: ...")."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _command_prog(args: argparse.Namespace) -> str:
    """The program name of the (sub)command ``args`` were parsed for: "calcinosis cohort export"."""
    words = [getattr(args, name, None) for name in ("command", "cohort_command")]
    return " ".join(["calcinosis", *(w for w in words if w)])


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    return [name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
