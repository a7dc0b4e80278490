"""The `ermsolve` command line.

Exit codes: 0 success, 1 verification failed or no solution, 2 bad input or usage.
Subcommands from other modules register themselves through `register_cli`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

from ermsolve.errors import ErmsolveError, InputError, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Modules that add a subcommand through `register_cli(subparsers)`.
COMMAND_MODULES = (
    "ermsolve.commands",
    "ermsolve.decide_cli",
    "ermsolve.minbits",
    "ermsolve.generate",
    "ermsolve.bitgrowth",
    "ermsolve.export",
    "ermsolve.bench",
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors exit with code 2 and name the fix."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ermsolve",
        description="Train small ReLU networks to proven global optimality with exact rational certificates.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register_cli(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.handler(args)
    except (InputError, UsageError) as error:
        _report_error(args, error)
        return EXIT_USAGE
    except ErmsolveError as error:
        _report_error(args, error)
        return EXIT_FAILED
    except BrokenPipeError:
        return EXIT_FAILED


def _report_error(args, error) -> None:
    """Print the error on stderr and, with --json, as a JSON object on stdout for scripts."""
    print(f"ermsolve: error: {error}", file=sys.stderr)
    if getattr(args, "json", False):
        print_json({"status": "error", "error": str(error)})


def print_json(data) -> None:
    print(json.dumps(data, indent=2))


def _version() -> str:
    from ermsolve import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
