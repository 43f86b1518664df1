"""The `capgap` command. Thin: each verb parses flags, makes one library call, formats.

Bad input (capgap.InputError) prints one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import warnings

from capgap.core.errors import InputError

# Each module under capgap/commands/ adds one verb with register(subparsers).
COMMAND_MODULES = ["data", "runs", "ladder", "measure", "assistant", "fit", "plan", "recommend", "evidence", "pareto", "plot"]  # in data-flow order
# Missing optional dependencies: the extra that brings them.
EXTRAS = {"torch": "measure", "transformers": "measure", "tokenizers": "measure", "safetensors": "measure", "tqdm": "measure"}


# A value that reads as a negative size ('-7B', '-1.3e9'): taken as the flag's value, so that the size's own
# check can say "size must be positive" (argparse would take it for an unknown option).
_NEGATIVE_SIZE = re.compile(r"^-\d*\.?\d+(?:[eE][+-]?\d+)?\s*[kKmMbBgGtTxX]?$")


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 (argparse's own)
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_SIZE  # no capgap flag looks like a negative number

    def error(self, message: str) -> None:  # one line, exit 2, as for all bad input
        self.exit(2, f"capgap: error: {message} (see '{self.prog} --help')\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command; with ``only``, just that verb's module is imported (fast start)."""
    parser = _Parser(prog="capgap", description="How large should the teacher be? "
                     "Fit and apply the law of capacity gap for distilling language models.")
    from capgap import __version__

    parser.add_argument("--version", action="version", version=f"capgap {__version__}")
    subparsers = parser.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=_Parser)
    for name in [only] if only else COMMAND_MODULES:
        importlib.import_module(f"capgap.commands.{name}").register(subparsers)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"capgap: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # A verb's module is imported only when that verb runs, so one verb's heavy imports never slow another.
    args = build_parser(argv[0] if argv and argv[0] in COMMAND_MODULES else None).parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"capgap: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"capgap: error: {args.verb} needs {exc.name}, which is not installed; "
              f"install it with: pip install 'capgap[{extra}]'", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output into a closed pipe (`| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not complain either
        return 141  # 128 + SIGPIPE, as the shell reports a command ended by a closed pipe
    except KeyboardInterrupt:
        print("capgap: interrupted", file=sys.stderr)
        return 130
