"""Argument parsing that fails in one line: `rlhf-asr CMD: error: MSG (see --help)`.

argparse prints the whole usage (about 60 lines for `train`) before its message, which buries
the one line that matters. Every command builds its parser with `CommandParser`, whose errors
become `UserInputError`s, printed by the CLI as one line with exit status 2.
"""

from __future__ import annotations

import argparse

from rlhf_asr.errors import UserInputError


def one_line_error(prog: str, message: str) -> UserInputError:
    return UserInputError(f"{message} (see `{prog} --help`)")


class CommandParser(argparse.ArgumentParser):
    """ArgumentParser whose errors raise UserInputError instead of printing the usage and exiting."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        raise one_line_error(self.prog, message)


def make_one_line(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Gives an existing parser (e.g. HfArgumentParser) CommandParser's one-line errors."""

    def error(message: str):
        raise one_line_error(parser.prog, message)

    parser.error = error
    return parser


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (0 would mean 'nothing' or divide by zero later)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value
