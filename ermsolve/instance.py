"""Training instances: exact data points and targets read from CSV.

File format: a header row with the feature names followed by the target column
`y` (or, for several outputs, the target columns `y1`, `y2`, ...), then one row
per data point. Every cell is parsed exactly by
`parse_rational`; any problem raises `InputError` naming the file, the row
(1-based, the header is row 1), the column and the value.
"""

from __future__ import annotations

import csv
import re
import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from gmpy2 import mpq

from ermsolve.errors import InputError
from ermsolve.rational import format_rational, parse_rational

FINGERPRINT_SCHEME = "ermsolve-data-v1"


@dataclass(frozen=True)
class Instance:
    """Data points `X` (n rows of d exact rationals) and targets.

    `y` contains one target per point for single-output instances; `Y`
    contains a row of m targets per point for any number of outputs.
    """

    name: str
    feature_names: tuple[str, ...]
    X: tuple[tuple[mpq, ...], ...]
    y: tuple[mpq, ...] | None
    Y: tuple[tuple[mpq, ...], ...] | None = None
    target_names: tuple[str, ...] = ("y",)

    def __post_init__(self):
        if self.Y is None:
            object.__setattr__(self, "Y", tuple((target,) for target in self.y))
        elif self.y is None and len(self.target_names) == 1:
            object.__setattr__(self, "y", tuple(row[0] for row in self.Y))
        if not self.X:
            raise InputError(f"instance {self.name!r} has no data points")
        width = len(self.feature_names)
        for index, row in enumerate(self.X):
            if len(row) != width:
                raise InputError(
                    f"instance {self.name!r}: point {index} has {len(row)} features, expected {width}"
                )
        if len(self.Y) != len(self.X):
            raise InputError(
                f"instance {self.name!r}: {len(self.X)} points but {len(self.Y)} targets"
            )
        if any(len(row) != len(self.target_names) for row in self.Y):
            raise InputError(f"instance {self.name!r}: every point needs {len(self.target_names)} targets")

    @property
    def n(self) -> int:
        return len(self.X)

    @property
    def d(self) -> int:
        return len(self.feature_names)

    @property
    def outputs(self) -> int:
        return len(self.target_names)

    @cached_property
    def X_float(self) -> np.ndarray:
        return np.array([[float(v) for v in row] for row in self.X], dtype=float).reshape(self.n, self.d)

    @cached_property
    def y_float(self) -> np.ndarray:
        return np.array([float(row[0]) for row in self.Y], dtype=float)

    @cached_property
    def Y_float(self) -> np.ndarray:
        return np.array([[float(v) for v in row] for row in self.Y], dtype=float).reshape(self.n, self.outputs)

    def canonical_text(self) -> str:
        """Canonical form of the data: dimensions, then each point's values as p/q.

        Column names and the file's spelling of numbers (0.5 versus 1/2) do not
        enter it, so two files with the same exact data share a fingerprint.
        """
        # Single-output instances keep the original header line, so their fingerprints never change.
        dimensions = f"n={self.n} d={self.d}" + (f" m={self.outputs}" if self.outputs > 1 else "")
        lines = [FINGERPRINT_SCHEME, dimensions]
        for row, targets in zip(self.X, self.Y):
            lines.append(",".join(_canonical(v) for v in (*row, *targets)))
        return "\n".join(lines) + "\n"

    @cached_property
    def fingerprint(self) -> str:
        """`sha256:` followed by the hex digest of `canonical_text()`."""
        digest = hashlib.sha256(self.canonical_text().encode("ascii")).hexdigest()
        return f"sha256:{digest}"


def load_instance(path: str | Path) -> Instance:
    """Read a CSV instance exactly; raise `InputError` with file, row, column and value."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: instance file not found") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error})") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read instance file ({error.strerror})") from None

    rows = list(csv.reader(text.splitlines()))
    # Blank lines at the end of the file carry no data; any other blank line is an error.
    while rows and not rows[-1]:
        rows.pop()
    if not rows:
        raise InputError(f"{path}: empty file; expected a header row such as 'x1,x2,y' and data rows")

    header = [name.strip() for name in rows[0]]
    target_count = _check_header(path, header)
    if len(rows) == 1:
        raise InputError(f"{path}: header only, no data rows")

    points, targets = [], []
    # Data sets repeat values often (grids, rounded measurements); parse each text once.
    parsed: dict[str, mpq] = {}
    for line_number, row in enumerate(rows[1:], start=2):
        if not row:
            raise InputError(f"{path}: row {line_number} is empty; remove the blank line")
        if len(row) != len(header):
            raise InputError(
                f"{path}: row {line_number} has {len(row)} values but the header has "
                f"{len(header)} columns ({','.join(header)})"
            )
        values = []
        for column, cell in zip(header, row):
            value = parsed.get(cell)
            if value is None:
                try:
                    value = parsed[cell] = parse_rational(cell)
                except InputError as error:
                    raise InputError(f"{path}: row {line_number}, column {column!r}: {error}") from None
            values.append(value)
        points.append(tuple(values[:-target_count]))
        targets.append(tuple(values[-target_count:]))

    target_names = tuple(header[-target_count:])
    return Instance(
        path.stem, tuple(header[:-target_count]), tuple(points),
        tuple(row[0] for row in targets) if target_count == 1 else None,
        tuple(targets), target_names,
    )


def _check_header(path: Path, header: list[str]) -> int:
    """Check the header and return the number of target columns at its end."""
    target_count = 0
    if header[-1] == "y":
        target_count = 1
    else:
        # Several outputs: the header ends with y1, y2, ..., ym in this order.
        while target_count < len(header) and re.fullmatch(r"y\d+", header[-1 - target_count]):
            target_count += 1
        expected = [f"y{j}" for j in range(1, target_count + 1)]
        if target_count == 0 or header[len(header) - target_count:] != expected:
            raise InputError(
                f"{path}: the last header column is {header[-1]!r}, expected the target column 'y' "
                "(or y1, y2, ... for several outputs) after the feature columns"
            )
    if len(header) <= target_count:
        raise InputError(f"{path}: header {','.join(header)!r} has no feature column before the targets")
    for position, name in enumerate(header, start=1):
        if not name:
            raise InputError(f"{path}: header column {position} has an empty name")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise InputError(f"{path}: duplicate header columns {', '.join(duplicates)}")
    return target_count


def write_instance(path: str | Path, instance_or_rows, feature_names=None) -> None:
    """Write an instance (or rows of exact values with `feature_names`) as CSV in p/q form."""
    target_names = ("y",)
    if isinstance(instance_or_rows, Instance):
        feature_names = instance_or_rows.feature_names
        target_names = instance_or_rows.target_names
        rows = [(*x, *targets) for x, targets in zip(instance_or_rows.X, instance_or_rows.Y)]
    else:
        rows = instance_or_rows
    lines = [",".join([*feature_names, *target_names])]
    for row in rows:
        lines.append(",".join(_format_cell(v) for v in row))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _canonical(value: mpq) -> str:
    """Return the p/q text of format_rational; str(mpq) omits "/1" for integers, so it is added here."""
    text = str(value)
    return text if "/" in text else text + "/1"


def _format_cell(value) -> str:
    q = mpq(value)
    return str(q.numerator) if q.denominator == 1 else format_rational(q)
