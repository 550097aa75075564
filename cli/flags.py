"""What two or more command-line scripts share: the one-line errors, the whole-number and
positive-number value types, the data flags and the checks of their output folders."""

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit status 2), like every other error here."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def fail(prog: str, message: str) -> int:
    """An error found after parsing, as the same one line on stderr; returns its exit status, 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def whole_number(text: str) -> int:
    """An int, or an argparse error that quotes the text."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def count_at_least(minimum: int) -> Callable[[str], int]:
    """A value type for whole numbers from `minimum` up: the one rule for counts, sizes and intervals."""

    def parse(text: str) -> int:
        value = whole_number(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """--data and --limit, the same for every script that trains on MNIST."""
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder with the four MNIST IDX .gz files (default: download with Chainer)",
    )
    parser.add_argument(
        "--limit", type=count_at_least(1), default=None, help="train on the first N training images only"
    )


def unwritable(flag: str, folder: Path) -> str | None:
    """Why `folder` cannot be created and written into, or None; checked before the work starts.

    Nothing is created: a folder that is missing is judged by the nearest folder above it, and the
    probe is an unnamed temporary file (O_TMPFILE), so it holds where permissions do not (a read-only
    mount, a full quota) and leaves no name behind.
    """
    existing = Path(folder).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{flag} {folder}: {existing} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return f"{flag} {folder}: cannot write in {existing} ({error.strerror})"
    return None


def written(error: OSError) -> str:
    """An OSError as 'file: problem', the way the one-line errors name a file."""
    return str(error) if error.filename is None else f"{error.filename}: {error.strerror}"
