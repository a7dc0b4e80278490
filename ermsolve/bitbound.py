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

import math
from dataclasses import dataclass

import gmpy2
import numpy as np
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
    if problem.architecture.loss in ("l2", "hinge", "zero_one"):
        # For zero_one the program is built with S empty. Its rows are a superset of
        # the rows of any S, so the largest-norm product bounds every S's vertices.
        vertex = vertex_bound(build_fixed_pattern_program(problem, signs, pattern))
    else:
        vertex = _linear_vertex_bound(problem, pattern)
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
    norms = [_squared_norm(row) for row, _ in rows]
    norms_with_rhs = [_squared_norm(row) + rhs * rhs for row, rhs in rows]
    return _bound_from_norms(norms, norms_with_rhs, size)


def _bound_from_norms(norms: list[int], norms_with_rhs: list[int], size: int) -> VertexBound:
    norms = sorted(norms, reverse=True)
    norms_with_rhs = sorted(norms_with_rhs, reverse=True)
    denominator = _isqrt_product(norms[:size])
    numerator = _isqrt_product(norms_with_rhs[:size])
    return VertexBound(int(gmpy2.bit_length(numerator)), int(gmpy2.bit_length(denominator)))


def _linear_vertex_bound(problem: TrainingProblem, pattern) -> VertexBound:
    """Compute the same bound as `vertex_bound` for the l1 and linf LPs, from row norms computed directly.

    Builds no program: each row's integer scale and norm follow from one data
    point, which keeps verification fast on large instances.
    """
    instance, width, d = problem.instance, problem.width, problem.instance.d
    loss = problem.architecture.loss
    norms, norms_with_rhs = _data_row_norms_numpy(instance, pattern, width)
    if norms is None:
        norms, norms_with_rhs = _data_row_norms(instance, pattern, width)

    def add(norm, rhs_squared, copies=1):
        norms.extend([norm] * copies)
        norms_with_rhs.extend([norm + rhs_squared] * copies)

    # Bound rows of the parameters and the errors.
    for bound, count in ((problem.hidden_box, width * (d + 1)), (problem.output_box, 1)):
        add(int(bound.denominator**2), int(bound.numerator**2), 2 * count)
    error_count = instance.n if loss == "l1" else 1
    add(1, 0, error_count)

    size = width * (d + 1) + 1 + error_count
    return _bound_from_norms(norms, norms_with_rhs, size)


def _data_row_norms(instance, pattern, width) -> tuple[list[int], list[int]]:
    """Squared norms of the pattern and error rows, point by point in Python integers."""
    norms, norms_with_rhs = [], []

    def add(norm, rhs_squared, copies=1):
        norms.extend([norm] * copies)
        norms_with_rhs.extend([norm + rhs_squared] * copies)

    for i, (x, target) in enumerate(zip(instance.X, instance.y)):
        # Integer arithmetic on numerators and denominators: much faster than mpq on large data.
        nonzero = [(int(v.numerator), int(v.denominator)) for v in x if v != 0]
        point_scale = 1
        for _, denominator in nonzero:
            point_scale = math.lcm(point_scale, denominator)
        feature_norm = sum((numerator * (point_scale // denominator)) ** 2 for numerator, denominator in nonzero)

        # Pattern rows: +-(x_i, 1) scaled by the point's denominators, once per unit.
        add(feature_norm + point_scale**2, 0, width)

        # Error rows f_i - e <= y_i and -f_i - e <= -y_i: active units' (x_i, 1), c and e.
        active = sum(pattern[i])
        target_numerator, target_denominator = int(target.numerator), int(target.denominator)
        scale = math.lcm(point_scale, target_denominator) if active else target_denominator
        ratio = scale // point_scale
        norm = active * (feature_norm + point_scale**2) * ratio**2 + 2 * scale**2
        add(norm, (target_numerator * (scale // target_denominator)) ** 2, 2)
    return norms, norms_with_rhs


def _data_row_norms_numpy(instance, pattern, width):
    """Compute the same norms as `_data_row_norms` with int64 arrays, or (None, None) when they could overflow."""
    limit = 2**20
    numerators = np.array([[int(v.numerator) for v in x] for x in instance.X], dtype=object)
    denominators = np.array([[int(v.denominator) for v in x] for x in instance.X], dtype=object)
    targets = instance.y
    target_numerators = np.array([int(v.numerator) for v in targets], dtype=object)
    target_denominators = np.array([int(v.denominator) for v in targets], dtype=object)
    for array in (numerators, denominators, target_numerators, target_denominators):
        if array.size and max(abs(int(v)) for v in array.ravel()) >= limit:
            return None, None
    numerators, denominators = numerators.astype(np.int64), denominators.astype(np.int64)
    target_numerators = target_numerators.astype(np.int64)
    target_denominators = target_denominators.astype(np.int64)

    # Zero entries have denominator 1 and add nothing, as in the point-by-point version.
    point_scale = np.lcm.reduce(denominators, axis=1)
    if point_scale.max(initial=1) >= limit:
        return None, None
    scaled = numerators * (point_scale[:, None] // denominators)
    feature_norm = (scaled * scaled).sum(axis=1)
    active = np.asarray(pattern, dtype=np.int64).reshape(len(targets), width).sum(axis=1)
    scale = np.where(active > 0, np.lcm(point_scale, target_denominators), target_denominators)
    if scale.max(initial=1) >= limit:
        return None, None
    ratio = scale // point_scale
    pattern_norm = feature_norm + point_scale * point_scale
    # Every term is below d * 2^40 * 2^40 * (width + 2); Python integers take over beyond 2^62.
    if int(pattern_norm.max(initial=0)) * (width + 2) * int(ratio.max(initial=1)) ** 2 >= 2**62:
        return None, None
    error_norm = active * pattern_norm * ratio * ratio + 2 * scale * scale
    target_scaled = target_numerators * (scale // target_denominators)

    norms = np.concatenate([np.repeat(pattern_norm, width), np.repeat(error_norm, 2)])
    rhs = np.concatenate([np.zeros(len(targets) * width, dtype=np.int64),
                          np.repeat(target_scaled * target_scaled, 2)])
    return norms.tolist(), (norms + rhs).tolist()


def _system_size(program: FixedPatternProgram) -> int:
    """Order of the square subsystem a vertex solves."""
    if program.loss != "l2":
        return program.variable_count
    # KKT system: one stationarity row per variable and one row per active constraint,
    # at most one active constraint per variable at a basic solution.
    return 2 * program.variable_count


def _system_rows(program: FixedPatternProgram) -> list[tuple[list[int], int]]:
    """List the integer-scaled rows (coefficients, right-hand side) a vertex can be built from."""
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
    """Return an integer upper bound on the product of the norms: ceil(sqrt(prod of squares))."""
    # A product tree keeps the operands balanced, so large instances cost O(M(N) log N).
    factors = [gmpy2.mpz(max(value, 1)) for value in squared_norms] or [gmpy2.mpz(1)]
    while len(factors) > 1:
        paired = [factors[k] * factors[k + 1] for k in range(0, len(factors) - 1, 2)]
        if len(factors) % 2:
            paired.append(factors[-1])
        factors = paired
    product = factors[0]
    root = gmpy2.isqrt(product)
    return root if root * root == product else root + 1
