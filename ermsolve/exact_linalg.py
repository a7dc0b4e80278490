"""Exact linear algebra over Q for small systems, through python-flint's fmpq_mat."""

from __future__ import annotations

from flint import fmpq, fmpq_mat
from gmpy2 import mpq


def row_reduce(rows, column_count: int) -> tuple[list[list[mpq]], list[int]]:
    """Reduce `rows` to reduced row echelon form; return the nonzero rows and their pivot columns."""
    if not rows:
        return [], []
    entries = [fmpq(int(mpq(v).numerator), int(mpq(v).denominator)) for row in rows for v in row]
    reduced, rank = fmpq_mat(len(rows), column_count, entries).rref()

    result, pivots = [], []
    for r in range(rank):
        row = [mpq(int(reduced[r, c].p), int(reduced[r, c].q)) for c in range(column_count)]
        pivots.append(next(c for c, value in enumerate(row) if value != 0))
        result.append(row)
    return result, pivots
