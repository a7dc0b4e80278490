"""Bit-length bounds for optimal parameters: Cramer's rule and Hadamard's inequality.

The recovered parameters are a vertex of the fixed-pattern program (a basic
solution of the LP, or of the KKT system of the QP). A vertex solves a square
nonsingular subsystem B x = beta of the program's rows, so by Cramer's rule
each coordinate is det(B_j) / det(B), where B_j has column j replaced by beta.
After scaling every row to integers (which leaves the solution unchanged),
Hadamard's inequality gives

    |det(B)|   <= prod_{rows r of B} ||r||,
    |det(B_j)| <= prod_{rows r of B} ||(r, beta_r)||.

The basis is not needed: the product over the m largest row norms bounds
every m x m choice. In lowest terms p/q a coordinate then has |p| <= H_num and
q <= H_den, so its bit-length is at most bits(H_num) + bits(H_den). The bound
is polynomial in the size of the data, which is what puts ERM for one hidden
ReLU layer in NP in the bit model. The map back to the original box
(w = w' / R, v = +-R) adds the bits of R's numerator and denominator.

Only the data and the activation pattern enter, so `verify` recomputes these
bounds itself without any solver.
"""

from __future__ import annotations

from dataclasses import dataclass

import gmpy2
from gmpy2 import mpq

from ermsolve.encodings.base import TrainingProblem
from ermsolve.fixed_pattern import FixedPatternProgram, build_fixed_pattern_program
from ermsolve.rational import bit_length

METHOD = (
    "Cramer's rule and Hadamard's inequality on the integer-scaled rows of the fixed-pattern "
    "program (products of the largest row norms), mapped to the original box"
)


@dataclass
class VertexBound:
    """Bits of |numerator| and of the denominator that any vertex coordinate can need."""

    numerator_bits: int
    denominator_bits: int

    @property
    def total(self) -> int:
        return self.numerator_bits + self.denominator_bits


def parameter_bit_bounds(problem: TrainingProblem, signs, pattern) -> dict[str, int]:
    """Bound on the bit-length of every parameter of the network recovered for this pattern.

    Names match `Network.parameters()`: W1[k][j], b1[k], W2[0][k], b2[0].
    """
    program = build_fixed_pattern_program(problem, signs, pattern)
    vertex = vertex_bound(program)
    box = mpq(problem.architecture.box)
    box_bits = int(gmpy2.bit_length(box.numerator)) + int(gmpy2.bit_length(box.denominator))

    bounds = {}
    for k in range(problem.width):
        for j in range(problem.instance.d):
            bounds[f"W1[{k}][{j}]"] = vertex.total + box_bits
        bounds[f"b1[{k}]"] = vertex.total + box_bits
    for k in range(problem.width):
        bounds[f"W2[0][{k}]"] = bit_length(box)
    bounds["b2[0]"] = vertex.total
    return bounds


def vertex_bound(program: FixedPatternProgram) -> VertexBound:
    """Hadamard bounds on det(B) and det(B_j) over every square subsystem of the program."""
    rows = _system_rows(program)
    size = _system_size(program)

    # Squared norms of the integer-scaled rows, without and with the right-hand side.
    norms = sorted((_squared_norm(row) for row, _ in rows), reverse=True)
    norms_with_rhs = sorted((_squared_norm(row) + rhs * rhs for row, rhs in rows), reverse=True)
    denominator = _isqrt_product(norms[:size])
    numerator = _isqrt_product(norms_with_rhs[:size])
    return VertexBound(int(gmpy2.bit_length(numerator)), int(gmpy2.bit_length(denominator)))


def _system_size(program: FixedPatternProgram) -> int:
    """Order of the square subsystem a vertex solves."""
    if program.loss != "l2":
        return program.variable_count
    # KKT system: one stationarity row per variable and one row per active constraint,
    # at most one active constraint per variable at a basic solution.
    return 2 * program.variable_count


def _system_rows(program: FixedPatternProgram) -> list[tuple[list[int], int]]:
    """The integer-scaled rows (coefficients, right-hand side) a vertex can be built from."""
    n_vars = program.variable_count
    constraint_rows = [(dict(row), rhs) for row, rhs in zip(program.A_ub, program.b_ub)]
    for j in range(n_vars):
        if program.lower[j] is not None:
            constraint_rows.append(({j: mpq(-1)}, -program.lower[j]))
        if program.upper[j] is not None:
            constraint_rows.append(({j: mpq(1)}, program.upper[j]))

    if program.loss != "l2":
        return [_integer_row(row, rhs, n_vars) for row, rhs in constraint_rows]

    # Stationarity rows of the KKT system: 2 M^T M x + sum_r lambda_r a_r = 2 M^T t - c,
    # with one multiplier column per constraint row; the constraint rows pad with zeros.
    gram = [dict() for _ in range(n_vars)]
    rhs = [-program.c[j] for j in range(n_vars)]
    for row, target in zip(program.M, program.t):
        for p, value_p in row.items():
            rhs[p] += 2 * value_p * target
            for q, value_q in row.items():
                gram[p][q] = gram[p].get(q, mpq(0)) + 2 * value_p * value_q
    stationarity = []
    for j in range(n_vars):
        row = dict(gram[j])
        for r, (constraint, _) in enumerate(constraint_rows):
            if j in constraint:
                row[n_vars + r] = constraint[j]
        stationarity.append(_integer_row(row, rhs[j], n_vars + len(constraint_rows)))
    return stationarity + [_integer_row(row, value, n_vars) for row, value in constraint_rows]


def _integer_row(row: dict, rhs, width: int) -> tuple[list[int], int]:
    values = [mpq(v) for v in row.values() if v != 0] + [mpq(rhs)]
    scale = 1
    for value in values:
        scale = gmpy2.lcm(scale, value.denominator)
    return [int(mpq(v) * scale) for v in row.values() if v != 0], int(mpq(rhs) * scale)


def _squared_norm(row: list[int]) -> int:
    return sum(v * v for v in row)


def _isqrt_product(squared_norms: list[int]):
    """floor(sqrt(prod)) rounded up to an integer bound on prod of the norms."""
    product = gmpy2.mpz(1)
    for value in squared_norms:
        product *= max(value, 1)
    root = gmpy2.isqrt(product)
    return root if root * root == product else root + 1
