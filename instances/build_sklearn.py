"""Rebuild the instances taken from data sets bundled with scikit-learn.

Run from the repository root:

    .venv/bin/python instances/build_sklearn.py           # rewrite the CSV files
    .venv/bin/python instances/build_sklearn.py --check   # compare, write nothing

Only `load_iris` and `load_diabetes` are used. Both read files inside the
scikit-learn package, so nothing is downloaded. Row numbers below are 0-based
positions in the arrays those functions return.

The output is byte-for-byte the same on every run. Each iris value is
written as a decimal string that converts back to the float it came from.
Each rounded diabetes feature is checked to lie far from a rounding tie, so a
last-bit difference in the float cannot change the written digits.
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

from sklearn.datasets import load_diabetes, load_iris

HERE = Path(__file__).resolve().parent

# Iris columns in `load_iris().data`.
SEPAL_LENGTH, SEPAL_WIDTH, PETAL_LENGTH, PETAL_WIDTH = range(4)

# Diabetes columns in `load_diabetes().data`.
DIABETES_BMI, DIABETES_S5 = 2, 8

DIABETES_DECIMALS = 4

# A float whose distance from a rounding tie at DIABETES_DECIMALS is below this
# could round either way under a one-ulp change, so the build stops instead.
TIE_MARGIN = Fraction(1, 10**12)


# Each iris instance: the rows it takes, its feature columns with their CSV
# names, and the column that becomes the target `y`.
FIRST_FOUR_OF_EACH_SPECIES = [start + i for start in (0, 50, 100) for i in range(4)]
IRIS_INSTANCES = {
    "iris_petal_12.csv": (
        FIRST_FOUR_OF_EACH_SPECIES,
        (("sepal_length", SEPAL_LENGTH), ("petal_length", PETAL_LENGTH)),
        PETAL_WIDTH,
    ),
    "iris_petal_1d_22.csv": (
        list(range(0, 150, 7)),
        (("petal_length", PETAL_LENGTH),),
        PETAL_WIDTH,
    ),
    "iris_sepal_30.csv": (
        list(range(0, 150, 5)),
        (("sepal_length", SEPAL_LENGTH), ("sepal_width", SEPAL_WIDTH)),
        PETAL_LENGTH,
    ),
}


def build_iris() -> dict[str, str]:
    """Return the text of each iris instance, by file name."""
    data = load_iris().data

    texts = {}
    for file_name, (rows, features, target) in IRIS_INSTANCES.items():
        lines = [",".join([name for name, _ in features] + ["y"])]
        columns = [column for _, column in features] + [target]
        for row in rows:
            lines.append(",".join(_one_decimal(data[row, column]) for column in columns))
        texts[file_name] = "\n".join(lines) + "\n"
    return texts


def _one_decimal(value: float) -> str:
    """Write an iris measurement as the one-decimal string it was read from."""
    text = f"{value:.1f}"

    # The iris file stores one decimal, so the float must be the nearest float
    # to that decimal. Anything else means the bundled data changed.
    if float(text) != value:
        raise ValueError(f"iris value {value!r} is not a one-decimal number")
    return text


# Every 22nd patient, 20 rows in all.
DIABETES_ROWS = list(range(0, 440, 22))


def build_diabetes() -> dict[str, str]:
    """Return the text of the diabetes instance, by file name.

    Features are the scaled `bmi` and `s5` columns as `load_diabetes()` returns
    them, rounded to the nearest multiple of 0.0001. The target is the disease
    progression score divided by 100, so 151 becomes 1.51.
    """
    bunch = load_diabetes()
    lines = ["bmi,s5,y"]
    for row in DIABETES_ROWS:
        bmi = _rounded(bunch.data[row, DIABETES_BMI])
        s5 = _rounded(bunch.data[row, DIABETES_S5])
        lines.append(f"{bmi},{s5},{_hundredths(bunch.target[row])}")
    return {"diabetes_bmi_s5_20.csv": "\n".join(lines) + "\n"}


def _rounded(value: float) -> str:
    exact = Fraction(value)
    scale = 10**DIABETES_DECIMALS
    scaled = exact * scale
    distance_to_tie = abs(scaled - (scaled.__floor__() + Fraction(1, 2)))
    if distance_to_tie < TIE_MARGIN * scale:
        raise ValueError(f"diabetes value {value!r} is too close to a rounding tie for a stable build")

    text = f"{value:.{DIABETES_DECIMALS}f}"
    # "-0.0000" and "0.0000" are the same number, so write only the second.
    return "0.0000" if Fraction(text) == 0 else text


def _hundredths(target: float) -> str:
    """Write an integer progression score divided by 100 as an exact decimal."""
    if not float(target).is_integer() or target < 0:
        raise ValueError(f"diabetes target {target!r} is not a non-negative integer")
    score = int(target)
    return f"{score // 100}.{score % 100:02d}"


def build_all() -> dict[str, str]:
    """Return the text of every scikit-learn derived instance, by file name."""
    return {**build_iris(), **build_diabetes()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files on disk and write nothing")
    args = parser.parse_args(argv)

    stale = []
    for file_name, text in build_all().items():
        path = HERE / file_name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if args.check:
            if current != text:
                stale.append(file_name)
            continue
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")

    if stale:
        print(f"out of date: {', '.join(stale)}; run instances/build_sklearn.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
