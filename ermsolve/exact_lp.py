"""Exact linear and convex quadratic programs over the rationals.

`solve_lp_exact` minimises ``c^T x`` and `solve_qp_exact` minimises
``||M x - t||^2 + c^T x``, both subject to ``A_ub x <= b_ub``, ``A_eq x = b_eq``
and ``lower <= x <= upper``. Data and results are exact rationals (`gmpy2.mpq`).
ermsolve uses them to turn a MIP solver's float solution for a fixed ReLU
activation pattern into exact optimal parameters.

Method
------
1. HiGHS solves the problem in floating point. For an LP its final simplex
   basis, and for a QP the constraints active at its solution, fix which
   constraints hold with equality.
2. That linear system is solved exactly with python-flint (`fmpq_mat`), which
   gives a rational point and rational multipliers.
3. The Karush-Kuhn-Tucker (KKT) conditions are checked exactly: every row and
   bound holds, inequality multipliers are >= 0, complementary slackness holds,
   and the stationarity residual is zero. For an LP the dual objective must
   also equal ``c^T x``.
4. When the check fails, or HiGHS is missing or fails, an exact method that
   trusts no float takes over. For an LP it is a bounded-variable primal
   simplex. It starts from the HiGHS basis when that basis is valid, and
   otherwise with all rows basic and x at HiGHS's point (or 0). It runs a
   phase 1 with artificial variables when the start is infeasible, prices by
   Dantzig's rule, and switches to Bland's rule during runs of degenerate
   pivots so that it cannot cycle. For a QP it is a primal active-set method.
   It starts from the exactly solved HiGHS active set when that point is
   feasible, and otherwise from a feasible point that phase 1 of the exact
   simplex finds near HiGHS's point (or near 0).

What is proved
--------------
`ExactResult.certified` is True only after an exact check passed on the
returned values: the KKT check of step 3, a Farkas certificate or an
unbounded ray. Both functions raise RationalizationError instead of returning
an unchecked result, so every returned result is certified. The KKT
conditions are sufficient for global optimality of an LP and of a convex QP,
so `objective` is then the exact optimum. A QP with a singular Hessian
``2 M^T M`` can have many optimal points, and `x` is one of them. For status "infeasible", `duals` contains a Farkas certificate
(multipliers ``lambda, nu >= 0`` and free ``mu`` with
``A_ub^T lambda + A_eq^T mu - nu_lower + nu_upper = 0`` and
``b_ub^T lambda + b_eq^T mu - lower^T nu_lower + upper^T nu_upper < 0``).
For status "unbounded", `x` is a feasible point and `ray` a direction along
which the objective decreases without bound.

This module must not import pyscipopt or ortools, because the solver-free
certificate verification imports it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from flint import fmpq, fmpq_mat
from gmpy2 import mpq

from ermsolve.errors import InputError, RationalizationError
from ermsolve.rational import to_rational

try:
    import highspy
    import numpy as np
except ImportError:  # The exact path needs neither package.
    highspy = None
    np = None

logger = logging.getLogger(__name__)

ZERO = mpq(0)
ONE = mpq(1)
_MPQ_TYPE = type(ZERO)

# Pivot and iteration caps guard against bugs and cycling. Bland's rule makes
# the simplex finite, but only with an exponential bound, so a cap is still
# needed. On fixed-pattern programs with up to 196 variables and 1050 rows,
# runs used less than a tenth of them.
_PIVOTS_PER_DIMENSION = 50
_ACTIVE_SET_STEPS_PER_DIMENSION = 20
_MIN_ITERATION_CAP = 1000

# HiGHS's QP solver gets at most this many iterations per variable and row.
_HIGHS_QP_ITERATIONS_PER_DIMENSION = 100

# After this many consecutive zero-length simplex pivots, pricing switches from
# Dantzig's rule to Bland's rule until the next pivot that moves the point.
_DEGENERATE_STREAK_FOR_BLAND = 10

# A constraint whose float slack is at most this (relative to 1 + |rhs|) counts
# as active when the QP working set is read from HiGHS's solution.
_ACTIVE_TOLERANCE = 1e-6

# Float values larger than this are not passed to HiGHS, whose infinity is 1e20.
_MAX_FLOAT_INPUT = 1e15

# Denominator limits tried, in order, when a singular QP leaves coordinates of
# x free. Small denominators give short rationals, and the exact float comes last.
_FREE_VALUE_DENOMINATORS = (10, 1000, 10**6)


@dataclass
class ExactResult:
    """Outcome of an exact LP or QP solve.

    `duals` maps "ub", "eq", "lower" and "upper" to lists of exact multipliers.
    At an optimum they satisfy ``grad + A_ub^T ub + A_eq^T eq - lower + upper = 0``
    with ``grad = c`` for an LP and ``2 M^T (M x - t) + c`` for a QP. For an
    infeasible problem they form a Farkas certificate (see the module docstring).
    `ray` is set only for status "unbounded".
    """

    status: str
    x: list | None
    objective: mpq | None
    method: str
    duals: dict | None
    certified: bool
    ray: list | None = None


# ---------------------------------------------------------------------------
# Input normalisation
# ---------------------------------------------------------------------------


@dataclass
class _Problem:
    """Validated exact data. Rows of A_ub come first in `rows`, then rows of A_eq."""

    n: int
    c: list
    rows: list
    rhs: list
    n_ub: int
    lower: list
    upper: list
    quad_rows: list = field(default_factory=list)
    quad_target: list = field(default_factory=list)
    cols: list = field(default_factory=list)

    @property
    def m(self) -> int:
        return len(self.rows)

    def is_eq(self, row: int) -> bool:
        return row >= self.n_ub


def _rational(value, where: str) -> mpq:
    if type(value) is _MPQ_TYPE:
        return value
    try:
        return to_rational(value)
    except TypeError as error:
        raise TypeError(f"{where}: {error}; pass an int, Fraction or gmpy2.mpq") from None
    except InputError as error:
        raise InputError(f"{where}: {error}") from None


def _read_vector(values, name: str, length: int | None = None, allow_none: bool = False) -> list:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of numbers, got {type(values).__name__}")
    if length is not None and len(values) != length:
        raise InputError(f"{name} has {len(values)} entries but {length} are required")

    result = []
    for index, value in enumerate(values):
        if allow_none and value is None:
            result.append(None)
        else:
            result.append(_rational(value, f"{name}[{index}]"))
    return result


def _read_rows(rows, name: str, n: int) -> list:
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
        raise TypeError(f"{name} must be a list of sparse rows (dicts), got {type(rows).__name__}")

    result = []
    for row_index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(
                f"{name}[{row_index}] must be a dict {{column: coefficient}}, got {type(row).__name__}"
            )
        sparse = {}
        for column, value in row.items():
            if isinstance(column, bool) or not isinstance(column, int):
                raise InputError(f"{name}[{row_index}]: column index {column!r} is not an int")
            if not 0 <= column < n:
                raise InputError(
                    f"{name}[{row_index}]: column index {column} is outside 0..{n - 1}"
                )
            coefficient = _rational(value, f"{name}[{row_index}][{column}]")
            if coefficient != 0:
                sparse[column] = coefficient
        result.append(sparse)
    return result


def _read_constraint_block(rows, rhs, rows_name: str, rhs_name: str, n: int):
    if rows is None and rhs is None:
        return [], []
    if rows is None or rhs is None:
        raise InputError(f"{rows_name} and {rhs_name} must be given together")
    matrix = _read_rows(rows, rows_name, n)
    vector = _read_vector(rhs, rhs_name, len(matrix))
    return matrix, vector


def _read_problem(c, A_ub, b_ub, lower, upper, A_eq, b_eq, M=None, t=None) -> _Problem:
    """Validate and convert the public arguments; raise TypeError or InputError naming the value."""
    c_exact = _read_vector(c, "c")
    n = len(c_exact)
    lower_exact = _read_vector(lower, "lower", n, allow_none=True)
    upper_exact = _read_vector(upper, "upper", n, allow_none=True)

    ub_rows, ub_rhs = _read_constraint_block(A_ub, b_ub, "A_ub", "b_ub", n)
    eq_rows, eq_rhs = _read_constraint_block(A_eq, b_eq, "A_eq", "b_eq", n)

    problem = _Problem(
        n=n,
        c=c_exact,
        rows=ub_rows + eq_rows,
        rhs=ub_rhs + eq_rhs,
        n_ub=len(ub_rows),
        lower=lower_exact,
        upper=upper_exact,
    )
    if M is not None or t is not None:
        problem.quad_rows, problem.quad_target = _read_constraint_block(M, t, "M", "t", n)

    problem.cols = [[] for _ in range(n)]
    for i, row in enumerate(problem.rows):
        for j, a in row.items():
            problem.cols[j].append((i, a))
    return problem


# ---------------------------------------------------------------------------
# Exact linear algebra (python-flint)
# ---------------------------------------------------------------------------


def _to_fmpq(value) -> fmpq:
    return fmpq(int(value.numerator), int(value.denominator))


def _to_mpq(value: fmpq) -> mpq:
    return mpq(int(value.p), int(value.q))


def _solve_square(matrix: fmpq_mat, rhs: list) -> list | None:
    """Solve ``matrix z = rhs`` exactly; return None when the matrix is singular."""
    size = len(rhs)
    if size == 0:
        return []
    vector = fmpq_mat(size, 1, [_to_fmpq(v) for v in rhs])
    try:
        solution = matrix.solve(vector)
    except ZeroDivisionError:
        return None
    return [_to_mpq(v) for v in solution.entries()]


class _LinearSolution:
    """Solution set of a square, possibly singular system, read from its reduced row echelon form.

    `free_columns` are the unknowns that can take any value. `null_vectors`
    spans the null space of the matrix, one vector per free column.
    """

    def __init__(self, matrix_entries: list, size: int, rhs: list):
        self.size = size
        self.consistent = True
        self.free_columns: list = []
        self._pivot_rows: list = []

        if size == 0:
            return

        # A nonsingular system, the usual case, needs no echelon form.
        matrix = fmpq_mat(size, size, matrix_entries)
        unique = _solve_square(matrix, rhs)
        if unique is not None:
            self._unique = unique
            return
        self._unique = None

        width = size + 1
        augmented_entries = []
        for r in range(size):
            augmented_entries.extend(matrix_entries[r * size:(r + 1) * size])
            augmented_entries.append(_to_fmpq(rhs[r]))
        echelon, rank = fmpq_mat(size, width, augmented_entries).rref()
        entries = echelon.entries()

        pivot_columns = []
        for r in range(rank):
            row = entries[r * width:(r + 1) * width]
            column = next(k for k, value in enumerate(row) if value != 0)
            if column == size:
                # The row reads 0 = 1.
                self.consistent = False
            else:
                pivot_columns.append(column)
                self._pivot_rows.append((column, [_to_mpq(v) for v in row]))

        pivot_set = set(pivot_columns)
        self.free_columns = [k for k in range(size) if k not in pivot_set]

    def evaluate(self, free_values: Mapping | None = None) -> list:
        """Return the solution with the given free unknowns (0 where not given)."""
        if self.size == 0:
            return []
        if self._unique is not None:
            return list(self._unique)

        free_values = free_values or {}
        z = [ZERO] * self.size
        for k in self.free_columns:
            z[k] = mpq(free_values.get(k, 0))
        for column, row in self._pivot_rows:
            value = row[self.size]
            for k in self.free_columns:
                if row[k] and z[k]:
                    value -= row[k] * z[k]
            z[column] = value
        return z

    def null_vectors(self):
        """Yield a basis of the matrix's null space, one vector per free column."""
        for free in self.free_columns:
            vector = [ZERO] * self.size
            vector[free] = ONE
            for column, row in self._pivot_rows:
                vector[column] = -row[free]
            yield vector


def _independent_constraints(problem: _Problem, constraint_ids: list) -> list:
    """Return the earliest linearly independent sublist of constraints.

    Ids below m are rows. Ids m + j and m + n + j are the lower and upper bound
    of x_j. Their gradients are parallel, so at most one of them is kept.
    """
    n, m = problem.n, problem.m
    ids = list(dict.fromkeys(constraint_ids))
    if not ids or n == 0:
        return []

    # Columns of this n x len(ids) matrix are the constraint gradients, and the
    # pivot columns of its echelon form are the earliest independent ones.
    width = len(ids)
    entries = [0] * (n * width)
    for k, cid in enumerate(ids):
        if cid < m:
            for j, a in problem.rows[cid].items():
                entries[j * width + k] = _to_fmpq(a)
        else:
            entries[((cid - m) % n) * width + k] = 1
    echelon, rank = fmpq_mat(n, width, entries).rref()
    flat = echelon.entries()

    chosen = []
    for r in range(rank):
        row = flat[r * width:(r + 1) * width]
        chosen.append(next(k for k, value in enumerate(row) if value != 0))
    return [ids[k] for k in sorted(chosen)]


# ---------------------------------------------------------------------------
# Exact certificate checks
# ---------------------------------------------------------------------------


def _row_activities(problem: _Problem, x: list) -> list:
    return [sum((a * x[j] for j, a in row.items()), ZERO) for row in problem.rows]


def _quadratic_residual(problem: _Problem, x: list) -> list:
    """Return ``M x - t``."""
    return [
        sum((a * x[j] for j, a in row.items()), ZERO) - target
        for row, target in zip(problem.quad_rows, problem.quad_target)
    ]


def _gradient(problem: _Problem, x: list) -> list:
    """Return ``2 M^T (M x - t) + c``, which is c for an LP."""
    grad = list(problem.c)
    for row, residual in zip(problem.quad_rows, _quadratic_residual(problem, x)):
        if residual:
            for j, a in row.items():
                grad[j] += 2 * a * residual
    return grad


def _objective(problem: _Problem, x: list) -> mpq:
    linear = sum((cj * xj for cj, xj in zip(problem.c, x)), ZERO)
    return linear + sum((r * r for r in _quadratic_residual(problem, x)), ZERO)


def _row_multiplier(problem: _Problem, duals: dict, row: int) -> mpq:
    return duals["eq"][row - problem.n_ub] if problem.is_eq(row) else duals["ub"][row]


def _multiplier_sum(problem: _Problem, duals: dict, base: list) -> list:
    """Return ``base + A_ub^T ub + A_eq^T eq - lower + upper``."""
    total = list(base)
    for i, row in enumerate(problem.rows):
        w = _row_multiplier(problem, duals, i)
        if w:
            for j, a in row.items():
                total[j] += a * w
    for j in range(problem.n):
        total[j] += duals["upper"][j] - duals["lower"][j]
    return total


def _dual_shape_failures(problem: _Problem, duals: dict) -> list:
    """Check lengths and signs of multipliers, and that no infinite bound has one."""
    failures = []
    expected = {"ub": problem.n_ub, "eq": problem.m - problem.n_ub, "lower": problem.n, "upper": problem.n}
    for key, length in expected.items():
        if len(duals.get(key, ())) != length:
            failures.append(f"duals[{key!r}] has the wrong length")
    if failures:
        return failures

    for i, value in enumerate(duals["ub"]):
        if value < 0:
            failures.append(f"multiplier of row {i} of A_ub is negative ({value})")
    for name, bounds in (("lower", problem.lower), ("upper", problem.upper)):
        for j, value in enumerate(duals[name]):
            if value < 0:
                failures.append(f"multiplier of {name} bound of x[{j}] is negative ({value})")
            if value and bounds[j] is None:
                failures.append(f"x[{j}] has no {name} bound but a nonzero multiplier")
    return failures


def _primal_failures(problem: _Problem, x: list, activities: list | None = None) -> list:
    failures = []
    if activities is None:
        activities = _row_activities(problem, x)
    for i, activity in enumerate(activities):
        if problem.is_eq(i):
            if activity != problem.rhs[i]:
                failures.append(f"row {i - problem.n_ub} of A_eq is violated")
        elif activity > problem.rhs[i]:
            failures.append(f"row {i} of A_ub is violated")
    for j, value in enumerate(x):
        if problem.lower[j] is not None and value < problem.lower[j]:
            failures.append(f"x[{j}] is below its lower bound")
        if problem.upper[j] is not None and value > problem.upper[j]:
            failures.append(f"x[{j}] is above its upper bound")
    return failures


def _kkt_failures(problem: _Problem, x: list, duals: dict) -> list:
    """Check the KKT conditions exactly and return those that fail. An empty list proves optimality."""
    activities = _row_activities(problem, x)
    failures = _primal_failures(problem, x, activities) + _dual_shape_failures(problem, duals)
    if failures:
        return failures

    for i in range(problem.n_ub):
        if duals["ub"][i] and activities[i] != problem.rhs[i]:
            failures.append(f"row {i} of A_ub has a multiplier but is not tight")
    for j in range(problem.n):
        if duals["lower"][j] and x[j] != problem.lower[j]:
            failures.append(f"lower bound of x[{j}] has a multiplier but is not tight")
        if duals["upper"][j] and x[j] != problem.upper[j]:
            failures.append(f"upper bound of x[{j}] has a multiplier but is not tight")

    stationarity = _multiplier_sum(problem, duals, _gradient(problem, x))
    nonzero = [j for j, value in enumerate(stationarity) if value != 0]
    if nonzero:
        failures.append(f"stationarity fails at x{nonzero[:5]}")

    if not problem.quad_rows and not failures:
        # Redundant after the checks above, but it is the textbook LP proof.
        primal = _objective(problem, x)
        if primal != _dual_objective(problem, duals):
            failures.append("dual objective differs from c^T x")
    return failures


def _dual_objective(problem: _Problem, duals: dict) -> mpq:
    """Return ``-b_ub^T ub - b_eq^T eq + lower^T nu_lower - upper^T nu_upper``."""
    value = ZERO
    for i in range(problem.m):
        value -= problem.rhs[i] * _row_multiplier(problem, duals, i)
    for j in range(problem.n):
        if duals["lower"][j]:
            value += problem.lower[j] * duals["lower"][j]
        if duals["upper"][j]:
            value -= problem.upper[j] * duals["upper"][j]
    return value


def _farkas_failures(problem: _Problem, duals: dict) -> list:
    """Check that `duals` is a Farkas certificate and return what fails. An empty list proves infeasibility."""
    failures = _dual_shape_failures(problem, duals)
    if failures:
        return failures
    combination = _multiplier_sum(problem, duals, [ZERO] * problem.n)
    if any(value != 0 for value in combination):
        failures.append("the multipliers do not combine the constraints to 0 = ...")
    # The combined constraint reads 0 <= -dual_objective, which fails when the dual objective is positive.
    if _dual_objective(problem, duals) <= 0:
        failures.append("the combined right-hand side is not negative")
    return failures


def _ray_failures(problem: _Problem, x: list, ray: list) -> list:
    """Check that x is feasible and `ray` an improving recession direction, and return what fails.

    An empty list proves unboundedness.
    """
    failures = _primal_failures(problem, x)
    for i, activity in enumerate(_row_activities(problem, ray)):
        if problem.is_eq(i) and activity != 0:
            failures.append(f"ray leaves row {i - problem.n_ub} of A_eq")
        if not problem.is_eq(i) and activity > 0:
            failures.append(f"ray leaves row {i} of A_ub")
    for j, value in enumerate(ray):
        if problem.lower[j] is not None and value < 0:
            failures.append(f"ray decreases x[{j}] below its lower bound")
        if problem.upper[j] is not None and value > 0:
            failures.append(f"ray increases x[{j}] above its upper bound")
    for k, row in enumerate(problem.quad_rows):
        if sum((a * ray[j] for j, a in row.items()), ZERO) != 0:
            failures.append(f"ray changes row {k} of M x")
    if sum((cj * rj for cj, rj in zip(problem.c, ray)), ZERO) >= 0:
        failures.append("c^T ray is not negative")
    return failures


def _duals_from_row_multipliers(problem: _Problem, row_multipliers: list, bound_terms: list) -> dict:
    """Split row multipliers by block and bound terms ``nu_lower - nu_upper`` by sign."""
    return {
        "ub": row_multipliers[:problem.n_ub],
        "eq": row_multipliers[problem.n_ub:],
        "lower": [term if term > 0 else ZERO for term in bound_terms],
        "upper": [-term if term < 0 else ZERO for term in bound_terms],
    }


# ---------------------------------------------------------------------------
# Float first guess (HiGHS)
# ---------------------------------------------------------------------------


@dataclass
class _FloatGuess:
    """HiGHS's result. `status` is "optimal", "infeasible", "unbounded" or "unknown"."""

    status: str
    x: list | None = None
    col_status: list | None = None
    row_status: list | None = None


def _highs_model(problem: _Problem, cost: list):
    """Build a HighsLp, or return None when some value is too large for floats."""
    inf = highspy.kHighsInf
    values = problem.c + [v for v in problem.lower + problem.upper if v is not None] + problem.rhs
    for row in problem.rows:
        values.extend(row.values())
    if any(abs(v) > _MAX_FLOAT_INPUT for v in values):
        return None

    lp = highspy.HighsLp()
    lp.num_col_ = problem.n
    lp.num_row_ = problem.m
    lp.col_cost_ = np.array(cost, dtype=np.float64)
    lp.col_lower_ = np.array([-inf if v is None else float(v) for v in problem.lower], dtype=np.float64)
    lp.col_upper_ = np.array([inf if v is None else float(v) for v in problem.upper], dtype=np.float64)
    lp.row_lower_ = np.array(
        [float(problem.rhs[i]) if problem.is_eq(i) else -inf for i in range(problem.m)], dtype=np.float64
    )
    lp.row_upper_ = np.array([float(v) for v in problem.rhs], dtype=np.float64)

    starts, indices, coefficients = [0], [], []
    for row in problem.rows:
        for j, a in sorted(row.items()):
            indices.append(j)
            coefficients.append(float(a))
        starts.append(len(indices))
    matrix = lp.a_matrix_
    matrix.format_ = highspy.MatrixFormat.kRowwise
    matrix.num_col_ = problem.n
    matrix.num_row_ = problem.m
    matrix.start_ = np.array(starts, dtype=np.int32)
    matrix.index_ = np.array(indices, dtype=np.int32)
    matrix.value_ = np.array(coefficients, dtype=np.float64)
    return lp


def _highs_hessian(problem: _Problem):
    """Return HiGHS's lower-triangular Hessian 2 M^T M and the linear cost c - 2 M^T t."""
    n = problem.n
    dense = np.zeros((len(problem.quad_rows), n))
    for k, row in enumerate(problem.quad_rows):
        for j, a in row.items():
            dense[k, j] = float(a)
    target = np.array([float(v) for v in problem.quad_target], dtype=np.float64)
    hessian_dense = 2.0 * dense.T @ dense
    cost = np.array([float(v) for v in problem.c], dtype=np.float64) - 2.0 * dense.T @ target

    # HiGHS reads the lower triangle column by column.
    starts, indices, values = [0], [], []
    for j in range(n):
        column = hessian_dense[j:, j]
        nonzero = np.nonzero(column)[0]
        indices.extend((nonzero + j).tolist())
        values.extend(column[nonzero].tolist())
        starts.append(len(indices))

    hessian = highspy.HighsHessian()
    hessian.dim_ = n
    hessian.format_ = highspy.HessianFormat.kTriangular
    hessian.start_ = np.array(starts, dtype=np.int32)
    hessian.index_ = np.array(indices, dtype=np.int32)
    hessian.value_ = np.array(values, dtype=np.float64)
    return hessian, cost.tolist()


_HIGHS_STATUS_NAMES = {
    "kLower": "lower",
    "kUpper": "upper",
    "kBasic": "basic",
    "kZero": "zero",
    "kNonbasic": "nonbasic",
}


def _quiet_highs():
    """Create a Highs object with its output off.

    highspy 1.16 prints a banner on standard output when the first Highs object
    of a process is created, before any option can be set. That would corrupt
    the JSON that the CLI prints, so file descriptor 1 points to /dev/null
    while the object is made.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            highs = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    highs.setOptionValue("output_flag", False)
    return highs


def _run_highs(problem: _Problem, deadline: float | None) -> _FloatGuess | None:
    """Solve the LP or QP with HiGHS, or return None when HiGHS is missing or fails."""
    if highspy is None or problem.n == 0:
        return None
    quadratic = bool(problem.quad_rows)

    try:
        if quadratic:
            hessian, cost = _highs_hessian(problem)
        else:
            hessian, cost = None, [float(v) for v in problem.c]
        lp = _highs_model(problem, cost)
        if lp is None or any(abs(v) > _MAX_FLOAT_INPUT for v in cost):
            logger.debug("HiGHS skipped: a value exceeds %g in magnitude", _MAX_FLOAT_INPUT)
            return None

        highs = _quiet_highs()
        if deadline is not None:
            # HiGHS gets half of the remaining time, so that the exact fallback keeps the other half.
            highs.setOptionValue("time_limit", max((deadline - time.monotonic()) / 2, 0.01))
        # HiGHS 1.16's QP solver did not return on some unbounded QPs without this limit.
        highs.setOptionValue(
            "qp_iteration_limit", _HIGHS_QP_ITERATIONS_PER_DIMENSION * (problem.n + problem.m) + _MIN_ITERATION_CAP
        )
        if not quadratic:
            # The simplex method returns the basis that the exact check rebuilds.
            highs.setOptionValue("solver", "simplex")
        if highs.passModel(lp) == highspy.HighsStatus.kError:
            logger.debug("HiGHS rejected the model")
            return None
        if quadratic and highs.passHessian(hessian) == highspy.HighsStatus.kError:
            logger.debug("HiGHS rejected the Hessian")
            return None
        highs.run()
        model_status = highs.getModelStatus()
    except (RuntimeError, ValueError, OverflowError, highspy.HighsError) as error:
        logger.debug("HiGHS failed: %s", error)
        return None

    status_names = {
        highspy.HighsModelStatus.kOptimal: "optimal",
        highspy.HighsModelStatus.kInfeasible: "infeasible",
        highspy.HighsModelStatus.kUnbounded: "unbounded",
    }
    guess = _FloatGuess(status=status_names.get(model_status, "unknown"))
    logger.debug("HiGHS model status: %s", highs.modelStatusToString(model_status))

    solution = highs.getSolution()
    if solution.value_valid:
        guess.x = list(solution.col_value)
    basis = highs.getBasis()
    if basis.valid:
        guess.col_status = [_HIGHS_STATUS_NAMES.get(s.name, "nonbasic") for s in basis.col_status]
        guess.row_status = [_HIGHS_STATUS_NAMES.get(s.name, "nonbasic") for s in basis.row_status]
    return guess


# ---------------------------------------------------------------------------
# Exact bounded-variable primal simplex
# ---------------------------------------------------------------------------


def _check_deadline(deadline: float | None, what: str) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise RationalizationError(
            f"timed out: the time limit was reached during the {what}. Raise time_limit or pass None."
        )


@dataclass
class _Outcome:
    """Exact result of the simplex or the active-set method, before its final check."""

    status: str
    x: list | None = None
    duals: dict | None = None
    ray: list | None = None


class _BoundedSimplex:
    """Primal simplex over the rationals on ``A x - r = 0`` with bounds on x and on r.

    Variables 0..n-1 are x. Variable n + i is the row activity r_i, with bounds
    (-inf, b_i] for a row of A_ub and [b_i, b_i] for a row of A_eq. Phase 1 adds
    artificial variables, each a copy of the column of an original variable
    times +1 or -1, so every basis stays square and every variable's
    coefficient (`coef`) is +1 or -1. A nonbasic variable may sit strictly
    between its bounds, as after `start_from_values`.

    A basis is stored implicitly: a basic column variable belongs to the set S,
    and a row whose activity-like variables are all nonbasic belongs to T. Only
    the |T| x |S| block A[T, S] (square when the basis is valid) is factorised.
    """

    def __init__(self, problem: _Problem, deadline: float | None):
        n, m = problem.n, problem.m
        self.problem = problem
        self.deadline = deadline
        self.max_pivots = _PIVOTS_PER_DIMENSION * (n + m) + _MIN_ITERATION_CAP
        self.pivots = 0

        # Per variable: column variable (a column of A) or row variable (a unit
        # column), the index of that column or row, and its coefficient.
        self.is_column = [True] * n + [False] * m
        self.ref = list(range(n)) + list(range(m))
        self.coef = [ONE] * n + [-ONE] * m
        self.lower = list(problem.lower) + [problem.rhs[i] if problem.is_eq(i) else None for i in range(m)]
        self.upper = list(problem.upper) + list(problem.rhs)
        self.cost = [ZERO] * (n + m)
        self.value = [ZERO] * (n + m)
        self.is_basic = [False] * (n + m)
        self.rows_fmpq = [{j: _to_fmpq(a) for j, a in row.items()} for row in problem.rows]
        # Row i times row_scale[i] has integer coefficients, stored by column.
        self.row_scale = [math.lcm(1, *(int(a.denominator) for a in row.values())) for row in problem.rows]
        self.int_cols = [
            [(i, int(a * self.row_scale[i])) for i, a in problem.cols[j]] for j in range(n)
        ]
        # Artificial variable -> (original variable, sign): original = copy + sign * artificial.
        self.artificial_of: dict = {}

    # -- starting bases -----------------------------------------------------

    def start_from_values(self, values: list | None = None) -> None:
        """Make every r_i basic and every x_j nonbasic at values[j] (default 0), clamped into its bounds.

        A nonbasic variable strictly between its bounds is allowed. It can
        enter in either direction, and at an optimum its reduced cost is 0.
        """
        n = self.problem.n
        for j in range(n):
            value = ZERO if values is None else mpq(values[j])
            if self.lower[j] is not None and value < self.lower[j]:
                value = self.lower[j]
            if self.upper[j] is not None and value > self.upper[j]:
                value = self.upper[j]
            self.is_basic[j] = False
            self.value[j] = value
        for v in range(n, len(self.is_basic)):
            self.is_basic[v] = True
        self._compute_basic_values()

    def start_from_statuses(self, col_status: list, row_status: list) -> bool:
        """Load a HiGHS basis and compute its basic values. Return False when it is not a valid basis."""
        n, m = self.problem.n, self.problem.m
        if len(col_status) != n or len(row_status) != m:
            return False

        for j, status in enumerate(col_status):
            self.is_basic[j] = status == "basic"
            if status == "lower" and self.lower[j] is not None:
                self.value[j] = self.lower[j]
            elif status == "upper" and self.upper[j] is not None:
                self.value[j] = self.upper[j]
            elif status == "zero" and self.lower[j] is None and self.upper[j] is None:
                self.value[j] = ZERO
            elif status != "basic":
                return False
        for i, status in enumerate(row_status):
            v = n + i
            self.is_basic[v] = status == "basic"
            if status in ("lower", "upper"):
                if self.problem.is_eq(i) or status == "upper":
                    self.value[v] = self.problem.rhs[i]
                else:
                    return False
            elif status != "basic":
                return False
        return self._compute_basic_values()

    # -- basis bookkeeping ----------------------------------------------------

    def _structure(self):
        """Return S (basic column variables), T (tight rows), T's positions and each row's basic row variable.

        Return None when the basic variables cannot form a basis, because two
        are in one row or |S| != |T|.
        """
        m = self.problem.m
        basic_columns = [v for v, basic in enumerate(self.is_basic) if basic and self.is_column[v]]
        row_basic = [-1] * m
        for v, basic in enumerate(self.is_basic):
            if basic and not self.is_column[v]:
                if row_basic[self.ref[v]] >= 0:
                    return None
                row_basic[self.ref[v]] = v
        tight_rows = [i for i in range(m) if row_basic[i] < 0]
        if len(tight_rows) != len(basic_columns):
            return None
        positions = {i: k for k, i in enumerate(tight_rows)}
        return basic_columns, tight_rows, positions, row_basic

    def _basis_matrix(self, basic_columns, tight_rows) -> fmpq_mat:
        """Return A[T, S] with each column scaled by its variable's coefficient."""
        size = len(basic_columns)
        # No two basic variables share a column of A, because the basis would be singular.
        column_position = {self.ref[v]: (k, self.coef[v] < 0) for k, v in enumerate(basic_columns)}
        entries = [0] * (size * size)
        for p, i in enumerate(tight_rows):
            base = p * size
            for j, a in self.rows_fmpq[i].items():
                hit = column_position.get(j)
                if hit is not None:
                    entries[base + hit[0]] = -a if hit[1] else a
        return fmpq_mat(size, size, entries)

    def _column(self, v):
        if self.is_column[v]:
            return [(i, self.coef[v] * a) for i, a in self.problem.cols[self.ref[v]]]
        return [(self.ref[v], self.coef[v])]

    def _compute_basic_values(self) -> bool:
        """Set basic values from nonbasic ones. Return False when the basis matrix is singular."""
        m = self.problem.m
        structure = self._structure()
        if structure is None:
            return False
        basic_columns, tight_rows, positions, row_basic = structure

        # Row sums of all nonbasic terms, from column and row variables.
        row_sum = [ZERO] * m
        for v, basic in enumerate(self.is_basic):
            if not basic and self.value[v]:
                for i, a in self._column(v):
                    row_sum[i] += a * self.value[v]

        matrix = self._basis_matrix(basic_columns, tight_rows)
        solution = _solve_square(matrix, [-row_sum[i] for i in tight_rows])
        if solution is None:
            return False
        for v, value in zip(basic_columns, solution):
            self.value[v] = value
            if value:
                for i, a in self._column(v):
                    row_sum[i] += a * value

        for i in range(m):
            u = row_basic[i]
            if u >= 0:
                self.value[u] = -row_sum[i] / self.coef[u]
        return True

    # -- phase 1 --------------------------------------------------------------

    def _add_artificials(self) -> int:
        """Replace each basic variable outside its bounds by a nonnegative artificial copy."""
        created = 0
        for v in range(len(self.is_basic)):
            if not self.is_basic[v] or v in self.artificial_of:
                continue
            value, lower, upper = self.value[v], self.lower[v], self.upper[v]
            if upper is not None and value > upper:
                sign, bound, amount = ONE, upper, value - upper
            elif lower is not None and value < lower:
                sign, bound, amount = -ONE, lower, lower - value
            else:
                continue

            # original = bound + sign * amount, so the copy's column is sign times the original's.
            a = len(self.is_basic)
            self.is_column.append(self.is_column[v])
            self.ref.append(self.ref[v])
            self.coef.append(sign * self.coef[v])
            self.lower.append(ZERO)
            self.upper.append(None)
            self.cost.append(ZERO)
            self.value.append(amount)
            self.is_basic.append(True)
            self.artificial_of[a] = (v, sign)

            self.is_basic[v] = False
            self.value[v] = bound
            created += 1
        return created

    # -- iterations -----------------------------------------------------------

    def _price(self, basic_columns, tight_rows, row_basic, matrix):
        """Return row duals y and reduced costs d (zero for basic variables)."""
        problem = self.problem
        y = [ZERO] * problem.m
        # column_dot[j] accumulates (A^T y)_j, first over rows outside T.
        column_dot = [ZERO] * problem.n
        for i, u in enumerate(row_basic):
            if u >= 0 and self.cost[u]:
                y[i] = self.cost[u] / self.coef[u]
                for j, a in problem.rows[i].items():
                    column_dot[j] += a * y[i]

        # Basic columns have zero reduced cost, which fixes y on T.
        rhs = [self.cost[v] - self.coef[v] * column_dot[self.ref[v]] for v in basic_columns]
        y_tight = _solve_square(matrix.transpose(), rhs)
        if y_tight is None:
            raise RationalizationError("internal error: singular basis matrix in the exact simplex")
        for i, yi in zip(tight_rows, y_tight):
            y[i] = yi
            if yi:
                for j, a in problem.rows[i].items():
                    column_dot[j] += a * yi

        reduced = [ZERO] * len(self.is_basic)
        for v, basic in enumerate(self.is_basic):
            if basic:
                continue
            if self.is_column[v]:
                reduced[v] = self.cost[v] - self.coef[v] * column_dot[self.ref[v]]
            else:
                reduced[v] = self.cost[v] - self.coef[v] * y[self.ref[v]]
        return y, reduced

    def _choose_entering(self, reduced, use_bland: bool):
        """Return (variable, +1 or -1) for an improving nonbasic variable, or None at optimality."""
        best = None
        best_size = ZERO
        for v, basic in enumerate(self.is_basic):
            d = reduced[v]
            if basic or d == 0:
                continue
            lower, upper, value = self.lower[v], self.upper[v], self.value[v]
            if d < 0 and (upper is None or value < upper):
                direction = 1
            elif d > 0 and (lower is None or value > lower):
                direction = -1
            else:
                continue
            if use_bland:
                return v, direction
            if abs(d) > best_size:
                best, best_size = (v, direction), abs(d)
        return best

    def _direction(self, entering, direction, basic_columns, positions, row_basic, matrix) -> dict:
        """Return the change of each basic variable per unit step of the entering variable."""
        problem = self.problem
        size = len(basic_columns)
        rhs = [0] * size
        for i, a in self._column(entering):
            position = positions.get(i)
            if position is not None:
                rhs[position] = _to_fmpq(-direction * a)

        # Integers with one common denominator make the scatter over rows below
        # much cheaper than rational arithmetic.
        if size:
            try:
                numerators, denominator = matrix.solve(fmpq_mat(size, 1, rhs)).numer_denom()
            except ZeroDivisionError:
                raise RationalizationError("internal error: singular basis matrix in the exact simplex") from None
            numerators = [int(v) for v in numerators.entries()]
            denominator = int(denominator)
        else:
            numerators, denominator = [], 1

        # Change of x times the denominator, then of every row activity A x
        # times (denominator * row_scale[i]).
        change = {}
        x_change = {}
        if self.is_column[entering]:
            x_change[self.ref[entering]] = direction * int(self.coef[entering]) * denominator
        for v, numerator in zip(basic_columns, numerators):
            if numerator:
                change[v] = mpq(numerator, denominator)
                j = self.ref[v]
                x_change[j] = x_change.get(j, 0) + int(self.coef[v]) * numerator
        row_change = [0] * problem.m
        for j, amount in x_change.items():
            if amount:
                for i, a in self.int_cols[j]:
                    row_change[i] += a * amount
        if not self.is_column[entering]:
            i = self.ref[entering]
            row_change[i] += direction * int(self.coef[entering]) * denominator * self.row_scale[i]

        for i, u in enumerate(row_basic):
            if u >= 0 and row_change[i]:
                change[u] = mpq(-row_change[i] * int(self.coef[u]), denominator * self.row_scale[i])
        return change

    def _ratio_test(self, entering, direction, change):
        """Return (step, leaving variable) with the smallest step, or (None, None) when unbounded."""
        best_step, leaving = None, None

        lower, upper, value = self.lower[entering], self.upper[entering], self.value[entering]
        if direction > 0 and upper is not None:
            best_step, leaving = upper - value, entering
        elif direction < 0 and lower is not None:
            best_step, leaving = value - lower, entering

        # Ties go to the smallest index, as Bland's rule requires.
        for v in sorted(change):
            delta = change[v]
            if delta > 0 and self.upper[v] is not None:
                step = (self.upper[v] - self.value[v]) / delta
            elif delta < 0 and self.lower[v] is not None:
                step = (self.lower[v] - self.value[v]) / delta
            else:
                continue
            if best_step is None or step < best_step or (step == best_step and v < leaving):
                best_step, leaving = step, v
        return best_step, leaving

    def _iterate(self, what: str):
        """Pivot until optimal or unbounded for the current costs.

        Returns ("optimal", y, reduced) or ("unbounded", entering, direction, change).
        """
        degenerate_streak = 0
        while True:
            _check_deadline(self.deadline, what)
            structure = self._structure()
            if structure is None:
                raise RationalizationError("internal error: the exact simplex lost its basis")
            basic_columns, tight_rows, positions, row_basic = structure
            matrix = self._basis_matrix(basic_columns, tight_rows)
            y, reduced = self._price(basic_columns, tight_rows, row_basic, matrix)

            use_bland = degenerate_streak >= _DEGENERATE_STREAK_FOR_BLAND
            choice = self._choose_entering(reduced, use_bland)
            if choice is None:
                return ("optimal", y, reduced)
            entering, direction = choice

            if self.pivots >= self.max_pivots:
                raise RationalizationError(
                    f"the exact simplex stopped after {self.pivots} pivots without reaching an optimum, "
                    "which points to cycling or a bug. Please report the problem data."
                )
            change = self._direction(entering, direction, basic_columns, positions, row_basic, matrix)
            step, leaving = self._ratio_test(entering, direction, change)
            if step is None:
                return ("unbounded", entering, direction, change)

            self.pivots += 1
            degenerate_streak = degenerate_streak + 1 if step == 0 else 0
            if step:
                for v, delta in change.items():
                    self.value[v] += step * delta
                self.value[entering] += direction * step

            if leaving != entering:
                self.is_basic[entering] = True
                self.is_basic[leaving] = False
                # Snap to the bound it reached, which the exact update already equals.
                self.value[leaving] = (
                    self.upper[leaving] if change[leaving] > 0 else self.lower[leaving]
                )

    # -- driver ----------------------------------------------------------------

    def solve(self, cost: list) -> _Outcome:
        """Run phase 1 if needed, then phase 2 for `cost` on x. Call a start_from_* method first."""
        n, m = self.problem.n, self.problem.m

        if self._add_artificials():
            logger.debug("exact simplex phase 1 with %d artificial variables", len(self.artificial_of))
            for a in self.artificial_of:
                self.cost[a] = ONE
            outcome = self._iterate("exact simplex phase 1")
            infeasibility = sum((self.value[a] for a in self.artificial_of), ZERO)
            logger.debug("phase 1 ended after %d pivots, infeasibility %s", self.pivots, infeasibility)
            if infeasibility > 0:
                _, y, reduced = outcome
                return _Outcome("infeasible", duals=self._farkas_duals(y, reduced))

            # Keep artificials as copies fixed at 0 and priced like their
            # originals, so that the originals' reduced costs stay valid duals.
            for a in self.artificial_of:
                self.lower[a] = ZERO
                self.upper[a] = ZERO

        for j in range(n):
            self.cost[j] = cost[j]
        for v in range(n, n + m):
            self.cost[v] = ZERO
        for a, (v, sign) in self.artificial_of.items():
            self.cost[a] = sign * (cost[v] if v < n else ZERO)

        outcome = self._iterate("exact simplex phase 2")
        x = self._original_x()
        if outcome[0] == "optimal":
            _, y, _reduced = outcome
            row_multipliers = [-yi for yi in y]
            bound_terms = _multiplier_sum(
                self.problem,
                {"ub": row_multipliers[: self.problem.n_ub], "eq": row_multipliers[self.problem.n_ub:],
                 "lower": [ZERO] * n, "upper": [ZERO] * n},
                cost,
            )
            return _Outcome("optimal", x=x, duals=_duals_from_row_multipliers(self.problem, row_multipliers, bound_terms))

        _, entering, direction, change = outcome
        ray = [ZERO] * n
        for v, delta in list(change.items()) + [(entering, direction)]:
            if v < n:
                ray[v] += delta
            elif v in self.artificial_of and self.artificial_of[v][0] < n:
                original, sign = self.artificial_of[v]
                ray[original] += sign * delta
        return _Outcome("unbounded", x=x, ray=ray)

    def _original_x(self) -> list:
        x = [self.value[j] for j in range(self.problem.n)]
        for a, (v, sign) in self.artificial_of.items():
            if v < self.problem.n:
                x[v] += sign * self.value[a]
        return x

    def _farkas_duals(self, y, reduced) -> dict:
        """Turn phase-1 duals into a Farkas certificate (checked by the caller)."""
        row_multipliers = [-yi for yi in y]
        return _duals_from_row_multipliers(self.problem, row_multipliers, reduced[: self.problem.n])

    def tight_constraints(self) -> list:
        """Return the ids of constraints that hold with equality at the current point.

        Ids are as in `_ActiveSetQP`: rows, then m + j and m + n + j for the
        lower and upper bound of x_j.
        """
        n, m = self.problem.n, self.problem.m
        x = self._original_x()
        ids = []
        for i in range(m):
            activity = sum((a * x[j] for j, a in self.problem.rows[i].items()), ZERO)
            if activity == self.problem.rhs[i]:
                ids.append(i)
        for j in range(n):
            if x[j] == self.problem.lower[j]:
                ids.append(m + j)
            elif x[j] == self.problem.upper[j]:
                ids.append(m + n + j)
        return ids


# ---------------------------------------------------------------------------
# Exact primal active-set method for the convex QP
# ---------------------------------------------------------------------------


class _ActiveSetQP:
    """Primal active-set method over the rationals for ``min ||M x - t||^2 + c^T x``.

    Constraint ids: 0..m-1 are rows, m + j the lower and m + n + j the upper
    bound of x_j. A variable with equal bounds uses id m + j as an equality.
    The working set is kept linearly independent, and variables fixed by a
    bound in it are eliminated from each equality-constrained subproblem.
    """

    def __init__(self, problem: _Problem, deadline: float | None):
        self.problem = problem
        self.deadline = deadline
        n, m = problem.n, problem.m
        self.max_iterations = _ACTIVE_SET_STEPS_PER_DIMENSION * (n + m) + _MIN_ITERATION_CAP
        self.iterations = 0

        # Hessian 2 M^T M, computed once by flint.
        k = len(problem.quad_rows)
        entries = [0] * (k * n)
        for r, row in enumerate(problem.quad_rows):
            for j, a in row.items():
                entries[r * n + j] = _to_fmpq(a)
        self.quad = fmpq_mat(k, n, entries)
        self.quad_transposed_twice = self.quad.transpose() * 2
        self.target = fmpq_mat(k, 1, [_to_fmpq(v) for v in problem.quad_target])
        self.cost = fmpq_mat(n, 1, [_to_fmpq(v) for v in problem.c])
        self.hessian = (self.quad_transposed_twice * self.quad).entries() if n else []
        self.rows_fmpq = [{j: _to_fmpq(a) for j, a in row.items()} for row in problem.rows]

    def is_fixed_variable(self, j: int) -> bool:
        lower, upper = self.problem.lower[j], self.problem.upper[j]
        return lower is not None and lower == upper

    def equality_ids(self) -> list:
        """Return constraints that every working set contains: rows of A_eq and fixed variables."""
        problem = self.problem
        return list(range(problem.n_ub, problem.m)) + [
            problem.m + j for j in range(problem.n) if self.is_fixed_variable(j)
        ]

    def _split(self, working: list):
        """Return the working rows and a map from fixed variable to "lower" or "upper"."""
        n, m = self.problem.n, self.problem.m
        rows = sorted(k for k in working if k < m)
        fixed = {}
        for k in working:
            if m <= k < m + n:
                fixed[k - m] = "lower"
            elif k >= m + n:
                fixed[k - m - n] = "upper"
        return rows, fixed

    def solve_subproblem(self, free, rows, gradient, row_rhs) -> _LinearSolution:
        """Solve the KKT system of the step p on the free variables.

        ``H_FF p + A_RF^T w = -gradient_F`` and ``A_RF p = row_rhs``. The unknowns
        are p (first len(free)) and the row multipliers w.
        """
        n = self.problem.n
        n_free = len(free)
        size = n_free + len(rows)
        entries = [0] * (size * size)
        for a, j in enumerate(free):
            base = j * n
            for b, k in enumerate(free):
                entries[a * size + b] = self.hessian[base + k]
        position = {j: a for a, j in enumerate(free)}
        for r, row_id in enumerate(rows):
            for j, coefficient in self.rows_fmpq[row_id].items():
                a = position.get(j)
                if a is not None:
                    entries[(n_free + r) * size + a] = coefficient
                    entries[a * size + n_free + r] = coefficient
        rhs = [-gradient[j] for j in free] + list(row_rhs)
        return _LinearSolution(entries, size, rhs)

    def _bound_multipliers(self, gradient, rows, w, fixed) -> dict:
        """Return ``g_j + (A_R^T w)_j`` for each fixed variable, which is nu_lower - nu_upper."""
        terms = {j: gradient[j] for j in fixed}
        for row_id, wr in zip(rows, w):
            if wr:
                for j, a in self.problem.rows[row_id].items():
                    if j in terms:
                        terms[j] += a * wr
        return terms

    def _column_vector(self, values: list) -> fmpq_mat:
        return fmpq_mat(len(values), 1, [_to_fmpq(v) for v in values])

    def gradient(self, x: list) -> list:
        """Return ``2 M^T (M x - t) + c``, computed by flint."""
        if not self.problem.n:
            return []
        product = self.quad_transposed_twice * (self.quad * self._column_vector(x) - self.target) + self.cost
        return [_to_mpq(v) for v in product.entries()]

    def quadratic_form(self, step: list) -> mpq:
        """Return ||M step||^2, half of step^T H step."""
        if not self.problem.n or not self.problem.quad_rows:
            return ZERO
        image = self.quad * self._column_vector(step)
        return _to_mpq((image.transpose() * image).entries()[0])

    def run(self, x: list, working: list) -> _Outcome:
        """Minimise from the feasible point x with the working set `working` (independent, all tight)."""
        problem = self.problem
        n, m = problem.n, problem.m
        working = list(working)
        x = list(x)
        degenerate_streak = 0

        while True:
            _check_deadline(self.deadline, "exact QP active-set method")
            if self.iterations >= self.max_iterations:
                raise RationalizationError(
                    f"the exact QP active-set method stopped after {self.iterations} iterations without "
                    "reaching an optimum, which points to cycling or a bug. Please report the problem data."
                )
            self.iterations += 1

            rows, fixed = self._split(working)
            free = [j for j in range(n) if j not in fixed]
            gradient = self.gradient(x)
            system = self.solve_subproblem(free, rows, gradient, [ZERO] * len(rows))

            step = [ZERO] * n
            step_cap = ONE
            if system.consistent:
                solution = system.evaluate()
                for a, j in enumerate(free):
                    step[j] = solution[a]
                w = solution[len(free):]
                change = sum((gradient[j] * step[j] for j in free), ZERO) + self.quadratic_form(step)
                if change == 0:
                    # x minimises the objective on the working set, so check the multipliers.
                    outcome = self._stationary_point(gradient, rows, w, fixed, working, degenerate_streak)
                    if outcome is not None:
                        outcome.x = x
                        return outcome
                    continue
            else:
                # The objective is linear along some direction in the working set,
                # so descend along it until a constraint blocks.
                step_cap = None
                for vector in system.null_vectors():
                    slope = sum((gradient[j] * vector[a] for a, j in enumerate(free)), ZERO)
                    if slope:
                        sign = -1 if slope > 0 else 1
                        for a, j in enumerate(free):
                            step[j] = sign * vector[a]
                        break

            length, blocking = self._ratio_test(x, step, working)
            if length is None or (step_cap is not None and length > step_cap):
                if step_cap is None:
                    return _Outcome("unbounded", x=x, ray=step)
                length, blocking = step_cap, None

            degenerate_streak = degenerate_streak + 1 if length == 0 else 0
            if length:
                x = [xj + length * sj for xj, sj in zip(x, step)]
            if blocking is not None:
                working.append(blocking)
                # Snap a bound exactly, which the exact update already equals.
                if blocking >= m:
                    j = (blocking - m) % n
                    x[j] = problem.lower[j] if blocking < m + n else problem.upper[j]

    def _stationary_point(self, gradient, rows, w, fixed, working, degenerate_streak):
        """Return the optimal duals when all multipliers have the right sign, else drop one constraint and return None.

        Equalities (rows of A_eq, fixed variables) are never dropped, since
        their multipliers may have either sign.
        """
        problem = self.problem
        n, m = problem.n, problem.m
        bound_terms = self._bound_multipliers(gradient, rows, w, fixed)

        # Candidates to drop: inequalities whose multiplier is negative.
        negative = []
        for row_id, wr in zip(rows, w):
            if row_id < problem.n_ub and wr < 0:
                negative.append((wr, row_id))
        for j, term in bound_terms.items():
            if self.is_fixed_variable(j):
                continue
            multiplier = term if fixed[j] == "lower" else -term
            if multiplier < 0:
                negative.append((multiplier, m + j if fixed[j] == "lower" else m + n + j))

        if not negative:
            row_multipliers = [ZERO] * m
            for row_id, wr in zip(rows, w):
                row_multipliers[row_id] = wr
            terms = [bound_terms.get(j, ZERO) for j in range(n)]
            return _Outcome("optimal", duals=_duals_from_row_multipliers(problem, row_multipliers, terms))

        # Drop the most negative multiplier, or the smallest id after repeated zero steps.
        # NOTE: unlike Bland's rule in the simplex, this is not proved to prevent cycling;
        # the iteration cap is the backstop.
        if degenerate_streak >= _DEGENERATE_STREAK_FOR_BLAND:
            drop = min(cid for _, cid in negative)
        else:
            drop = min(negative)[1]
        working.remove(drop)
        return None

    def _ratio_test(self, x, step, working):
        """Return the largest feasible step length and the blocking constraint id.

        A length of None means that no constraint blocks.
        """
        problem = self.problem
        n, m = problem.n, problem.m
        in_working = set(working)
        best, blocking = None, None

        for i in range(problem.n_ub):
            if i in in_working:
                continue
            rate = sum((a * step[j] for j, a in problem.rows[i].items() if step[j]), ZERO)
            if rate > 0:
                activity = sum((a * x[j] for j, a in problem.rows[i].items()), ZERO)
                length = (problem.rhs[i] - activity) / rate
                if best is None or length < best:
                    best, blocking = length, i
        for j in range(n):
            if step[j] < 0 and problem.lower[j] is not None and (m + j) not in in_working:
                length = (problem.lower[j] - x[j]) / step[j]
                if best is None or length < best:
                    best, blocking = length, m + j
            elif step[j] > 0 and problem.upper[j] is not None and (m + n + j) not in in_working:
                length = (problem.upper[j] - x[j]) / step[j]
                if best is None or length < best:
                    best, blocking = length, m + n + j
        return best, blocking


# ---------------------------------------------------------------------------
# Shared helpers of the two public functions
# ---------------------------------------------------------------------------


def _deadline(time_limit) -> float | None:
    if time_limit is None:
        return None
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not time_limit > 0:
        raise InputError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")
    return time.monotonic() + float(time_limit)


def _crossed_bounds(problem: _Problem) -> ExactResult | None:
    """Return a certified infeasible result when some lower bound exceeds its upper bound."""
    for j in range(problem.n):
        lower, upper = problem.lower[j], problem.upper[j]
        if lower is not None and upper is not None and lower > upper:
            duals = {
                "ub": [ZERO] * problem.n_ub,
                "eq": [ZERO] * (problem.m - problem.n_ub),
                "lower": [ONE if k == j else ZERO for k in range(problem.n)],
                "upper": [ONE if k == j else ZERO for k in range(problem.n)],
            }
            return ExactResult("infeasible", None, None, f"lower bound of x[{j}] exceeds its upper bound", duals, True)
    return None


def _finish(problem: _Problem, outcome: _Outcome, method: str) -> ExactResult:
    """Check an exact outcome and wrap it in an ExactResult. Raise RationalizationError when its certificate fails."""
    if outcome.status == "optimal":
        failures = _kkt_failures(problem, outcome.x, outcome.duals)
        if failures:
            raise RationalizationError(
                f"{method}: the exact optimum failed its KKT check ({', '.join(failures[:3])}). "
                "Please report the problem data."
            )
        return ExactResult("optimal", outcome.x, _objective(problem, outcome.x), method, outcome.duals, True)

    if outcome.status == "infeasible":
        failures = _farkas_failures(problem, outcome.duals)
        if failures:
            raise RationalizationError(
                f"{method}: the Farkas certificate of infeasibility failed its check "
                f"({', '.join(failures[:3])}). Please report the problem data."
            )
        return ExactResult("infeasible", None, None, method, outcome.duals, True)

    failures = _ray_failures(problem, outcome.x, outcome.ray)
    if failures:
        raise RationalizationError(
            f"{method}: the unbounded ray failed its check ({', '.join(failures[:3])}). "
            "Please report the problem data."
        )
    return ExactResult("unbounded", outcome.x, None, method, None, True, ray=outcome.ray)


def _rounded_guess(guess: _FloatGuess | None) -> list | None:
    """Return short rationals near HiGHS's x, or None when there is no x."""
    if guess is None or guess.x is None:
        return None
    return [
        Fraction(value).limit_denominator(_FREE_VALUE_DENOMINATORS[-1]) if math.isfinite(value) else 0
        for value in guess.x
    ]


def _solve_lp(problem: _Problem, deadline, use_highs: bool) -> ExactResult:
    guess = _run_highs(problem, deadline) if use_highs else None

    simplex = _BoundedSimplex(problem, deadline)
    start = None
    if guess is not None and guess.col_status is not None:
        if simplex.start_from_statuses(guess.col_status, guess.row_status):
            start = "HiGHS basis"
        else:
            logger.debug("HiGHS basis is not a valid exact basis")
            simplex = _BoundedSimplex(problem, deadline)
    if start is None:
        # All rows basic, x at HiGHS's point if there is one, else near 0.
        # NOTE: without a HiGHS basis, degenerate programs (ReLU pattern rows are
        # all tight at x = 0) can need hundreds of pivots, seconds instead of milliseconds.
        start = "HiGHS point" if guess is not None and guess.x is not None else "slack basis"
        simplex.start_from_values(_rounded_guess(guess))

    outcome = simplex.solve(problem.c)
    if start == "HiGHS basis" and simplex.pivots == 0 and not simplex.artificial_of:
        method = "HiGHS basis, exact check"
    else:
        method = f"exact simplex from {start} after {simplex.pivots} pivots"
    if guess is not None and guess.status != outcome.status:
        logger.debug("HiGHS reported %s, the exact simplex %s", guess.status, outcome.status)
    logger.debug("LP %s: %s", outcome.status, method)
    return _finish(problem, outcome, method)


# ---------------------------------------------------------------------------
# QP starting points
# ---------------------------------------------------------------------------


def _rationals_near(value: float):
    """Yield short rationals near a float, then its exact value."""
    exact = Fraction(value)
    for limit in _FREE_VALUE_DENOMINATORS:
        yield exact.limit_denominator(limit)
    yield exact


def _qp_candidates_from_guess(problem: _Problem, qp: _ActiveSetQP, guess: _FloatGuess):
    """Yield (x, working set) pairs built exactly from HiGHS's active set.

    Each x solves the KKT system of the working set exactly. When that system
    is singular, the free coordinates take short rationals near HiGHS's values.
    """
    n, m = problem.n, problem.m
    x_float = guess.x

    status_active, nearly_active = [], []
    for i in range(problem.n_ub):
        activity = sum(float(a) * x_float[j] for j, a in problem.rows[i].items())
        rhs = float(problem.rhs[i])
        if guess.row_status is not None and guess.row_status[i] == "upper":
            status_active.append(i)
        elif rhs - activity <= _ACTIVE_TOLERANCE * (1 + abs(rhs)):
            nearly_active.append(i)
    for j in range(n):
        if qp.is_fixed_variable(j):
            continue
        status = guess.col_status[j] if guess.col_status is not None else None
        for bound, cid, name in ((problem.lower[j], m + j, "lower"), (problem.upper[j], m + n + j, "upper")):
            if bound is None:
                continue
            if status == name:
                status_active.append(cid)
            elif abs(x_float[j] - float(bound)) <= _ACTIVE_TOLERANCE * (1 + abs(float(bound))):
                nearly_active.append(cid)

    base = qp.equality_ids()
    seen = []
    for candidate in (base + status_active + nearly_active, base + status_active):
        working = _independent_constraints(problem, candidate)
        if working in seen:
            continue
        seen.append(working)
        rows, fixed = qp._split(working)

        # Solve for x directly, starting from x0 with fixed variables at their bounds and free ones at 0.
        x0 = [ZERO] * n
        for j, side in fixed.items():
            x0[j] = problem.lower[j] if side == "lower" else problem.upper[j]
        free = [j for j in range(n) if j not in fixed]
        row_rhs = [
            problem.rhs[i] - sum((a * x0[j] for j, a in problem.rows[i].items()), ZERO) for i in rows
        ]
        system = qp.solve_subproblem(free, rows, _gradient(problem, x0), row_rhs)
        if not system.consistent:
            continue

        tried = set()
        for attempt in range(len(_FREE_VALUE_DENOMINATORS) + 1):
            free_values = {}
            for column in system.free_columns:
                # Free columns are coordinates of x because the working rows are independent.
                if column < len(free):
                    free_values[column] = list(_rationals_near(x_float[free[column]]))[attempt]
            key = tuple(sorted(free_values.items()))
            if key in tried:
                continue
            tried.add(key)

            solution = system.evaluate(free_values)
            x = list(x0)
            for a, j in enumerate(free):
                x[j] = solution[a]
            yield x, working
            if not system.free_columns:
                break


def _solve_qp(problem: _Problem, deadline, use_highs: bool) -> ExactResult:
    qp = _ActiveSetQP(problem, deadline)
    guess = _run_highs(problem, deadline) if use_highs else None

    if guess is not None and guess.status == "optimal" and guess.x is not None:
        for x, working in _qp_candidates_from_guess(problem, qp, guess):
            if _primal_failures(problem, x):
                continue
            outcome = qp.run(x, working)
            if outcome.status == "optimal" and qp.iterations == 1:
                return _finish(problem, outcome, "HiGHS active set, exact KKT check")
            return _finish(problem, outcome, f"exact active set from HiGHS active set after {qp.iterations} iterations")
        logger.debug("no exact point from HiGHS's active set is feasible; starting from exact phase 1")

    # Find an exact feasible point by phase 1 of the simplex with zero cost. It
    # starts near HiGHS's point when there is one, else near 0.
    simplex = _BoundedSimplex(problem, deadline)
    simplex.start_from_values(_rounded_guess(guess))
    phase_one = simplex.solve([ZERO] * problem.n)
    if phase_one.status == "infeasible":
        return _finish(problem, phase_one, f"exact simplex phase 1 after {simplex.pivots} pivots")
    working = _independent_constraints(problem, qp.equality_ids() + simplex.tight_constraints())
    outcome = qp.run(phase_one.x, working)
    return _finish(
        problem,
        outcome,
        f"exact active set from an exact feasible point ({simplex.pivots} simplex pivots) "
        f"after {qp.iterations} iterations",
    )


# ---------------------------------------------------------------------------
# Public interface
# ---------------------------------------------------------------------------


def solve_lp_exact(
    c, A_ub, b_ub, lower, upper, A_eq=None, b_eq=None, *, time_limit=None, _use_highs: bool = True
) -> ExactResult:
    """Minimise ``c^T x`` subject to ``A_ub x <= b_ub``, ``A_eq x = b_eq`` and ``lower <= x <= upper``.

    Rows are sparse dicts ``{column: coefficient}``. Numbers are `gmpy2.mpq`,
    int or `Fraction`, and floats raise TypeError naming the value. A bound of None
    is infinite. `time_limit` in seconds covers HiGHS and the exact fallback,
    which raises RationalizationError when it runs out. `_use_highs=False`
    skips HiGHS and runs only the exact simplex (for tests).
    """
    problem = _read_problem(c, A_ub, b_ub, lower, upper, A_eq, b_eq)
    deadline = _deadline(time_limit)
    started = time.perf_counter()

    result = _crossed_bounds(problem)
    if result is None:
        result = _solve_lp(problem, deadline, _use_highs)
    logger.debug("exact LP (%d variables, %d rows) %s in %.3f s", problem.n, problem.m, result.status,
                 time.perf_counter() - started)
    return result


def solve_qp_exact(
    M, t, c, A_ub, b_ub, lower, upper, A_eq=None, b_eq=None, *, time_limit=None, _use_highs: bool = True
) -> ExactResult:
    """Minimise ``||M x - t||^2 + c^T x`` under the constraints of `solve_lp_exact`.

    `M` is a list of sparse rows and `t` a list of the same length. The problem
    is convex, but ``2 M^T M`` may be singular, and then `x` is one of many
    optimal points. Arguments and errors are as in `solve_lp_exact`.
    """
    problem = _read_problem(c, A_ub, b_ub, lower, upper, A_eq, b_eq, M, t)
    deadline = _deadline(time_limit)
    started = time.perf_counter()

    result = _crossed_bounds(problem)
    if result is None:
        if not any(problem.quad_rows):
            # Without quadratic terms the objective is c^T x + ||t||^2, so solve it as an LP.
            linear = dataclasses.replace(problem, quad_rows=[], quad_target=[])
            result = _solve_lp(linear, deadline, _use_highs)
            if result.objective is not None:
                result.objective += sum((v * v for v in problem.quad_target), ZERO)
        else:
            result = _solve_qp(problem, deadline, _use_highs)
    logger.debug("exact QP (%d variables, %d rows) %s in %.3f s", problem.n, problem.m, result.status,
                 time.perf_counter() - started)
    return result
