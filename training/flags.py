"""What the command-line scripts share: argparse value types and the data flags."""

import argparse
from pathlib import Path

import numpy as np


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit status 2), like every other error here."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def unit_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
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
        "--limit", type=positive_int, default=None, help="train on the first N training images only"
    )
