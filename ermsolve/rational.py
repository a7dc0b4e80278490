"""Exact rationals: parsing, bit-lengths and the `p/q` text form.

Every number that enters ermsolve from a file or the command line becomes a
`gmpy2.mpq` through `parse_rational`, so `0.1` means exactly 1/10 and never the
binary float nearest to it.
"""

from __future__ import annotations

import re
from fractions import Fraction

import gmpy2
from gmpy2 import mpq

from ermsolve.errors import InputError

# An integer fraction p/q, or a decimal with an optional exponent. Words such
# as "nan" and "inf" do not match, so they are rejected before any conversion.
_NUMBER = re.compile(
    r"[+-]?(?:\d+/(?P<denominator>\d+)|(?:\d+\.?\d*|\.\d+)(?:[eE](?P<exponent>[+-]?\d+))?)"
)

# Exponents beyond this would make a single value take megabytes of memory.
_MAX_EXPONENT = 10_000


def parse_rational(text: str) -> mpq:
    """Parse `3`, `-0.25`, `1e-3`, `2E-3` or `7/3` into an exact rational.

    Raises `InputError` naming the text for anything else, including `nan`,
    `inf`, an empty string and a zero denominator. Callers add where the text
    came from.
    """
    stripped = text.strip()
    if not stripped:
        raise InputError("empty value: expected a number such as 3, -0.25, 1e-3 or 7/3")

    match = _NUMBER.fullmatch(stripped)
    if match:
        denominator, exponent = match.group("denominator"), match.group("exponent")
        if denominator is not None and not denominator.strip("0"):
            raise InputError(f"zero denominator in {stripped!r}")
        if exponent is not None and abs(int(exponent)) > _MAX_EXPONENT:
            raise InputError(f"exponent too large in {stripped!r} (at most {_MAX_EXPONENT})")
        # gmpy2 reads both forms exactly (mpq("0.1") is 1/10) and much faster than Fraction.
        return mpq(stripped.removeprefix("+"))

    raise InputError(
        f"invalid number {stripped!r}: expected an integer, a decimal such as -0.25 "
        "or 1e-3, or a fraction such as 7/3 (nan and inf are not allowed)"
    )


def to_rational(value) -> mpq:
    """Convert an int, Fraction, mpq, fmpq or exact text to `mpq`; floats are rejected.

    Floats are refused because their exact binary value is rarely what the
    caller meant; use `float_to_rational` where the binary value is wanted.
    """
    if isinstance(value, bool):
        raise TypeError("a bool is not a rational number")
    if isinstance(value, (int, Fraction)) or type(value).__name__ == "mpq":
        return mpq(value)
    if type(value).__name__ == "fmpq":
        return mpq(int(value.p), int(value.q))
    if isinstance(value, str):
        return parse_rational(value)
    raise TypeError(f"cannot convert {type(value).__name__} {value!r} to an exact rational")


def float_to_rational(value: float) -> mpq:
    """Return the exact binary value of a finite float."""
    if not gmpy2.is_finite(gmpy2.mpfr(value)):
        raise InputError(f"non-finite float {value!r} has no rational value")
    return mpq(Fraction(value))


def bit_length(value) -> int:
    """Bit-length of p/q in lowest terms: bits of |p| plus bits of q.

    Zero is 0/1 and has bit-length 1; an integer p has bits(|p|) + 1.
    """
    q = mpq(value)
    return int(gmpy2.bit_length(abs(q.numerator))) + int(gmpy2.bit_length(q.denominator))


def format_rational(value) -> str:
    """Write a rational as `p/q` in lowest terms, with `/1` for integers."""
    q = mpq(value)
    return f"{q.numerator}/{q.denominator}"


def format_decimal(value, digits: int = 12) -> str:
    """Write a rational as a rounded decimal for people to read; never parse it back."""
    q = mpq(value)
    if q.denominator == 1:
        return str(q.numerator)
    return f"{float(q):.{digits}g}"


def parse_fraction_field(text, where: str) -> mpq:
    """Parse a `p/q` field of a certificate, naming `where` in the error.

    Only the canonical form is accepted: lowest terms, q >= 1, and "/1" for
    integers, so each value has exactly one spelling.
    """
    if not isinstance(text, str):
        raise InputError(f"{where}: expected a string like \"3/4\", got {text!r}")
    try:
        value = parse_rational(text)
    except InputError as error:
        raise InputError(f"{where}: {error}") from None
    if text != format_rational(value):
        raise InputError(f"{where}: {text!r} is not in lowest terms p/q; write {format_rational(value)!r}")
    return value
