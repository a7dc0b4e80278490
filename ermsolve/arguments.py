"""argparse value types shared by the subcommands; each rejects bad text with the value named."""

from __future__ import annotations

import argparse
import math

from ermsolve.errors import InputError
from ermsolve.rational import parse_rational


def _integer(text: str, smallest: int, description: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}") from None
    if value < smallest:
        raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _integer(text, 0, "a non-negative integer")


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive finite number of seconds, got {text!r}")
    return value


def exact_rational(text: str):
    """Parse an exact rational such as 2/3, 0.25 or 1e-3."""
    try:
        return parse_rational(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def exact_positive(text: str):
    value = exact_rational(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value
