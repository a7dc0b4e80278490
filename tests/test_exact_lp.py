"""Tests of the exact LP and QP solver in `ermsolve.exact_lp`.

Every optimum is compared with a hand-computed exact value, and every
certificate is rechecked here with `fractions.Fraction`, independently of the
module's own checks. `_use_highs=False` and monkeypatched HiGHS results force
the exact fallback paths.
"""

import random
from fractions import Fraction

import pytest
from gmpy2 import mpq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ermsolve.exact_lp as exact_lp
from ermsolve.errors import InputError, RationalizationError
from ermsolve.exact_lp import ExactResult, solve_lp_exact, solve_qp_exact


def F(value) -> Fraction:
    """Convert an mpq (or int) to Fraction so that the checks below share no code with the module."""
    value = mpq(value)
    return Fraction(int(value.numerator), int(value.denominator))


def dot(row: dict, x: list) -> Fraction:
    return sum((F(a) * x[j] for j, a in row.items()), Fraction(0))


def kkt_problems(c, A_ub, b_ub, lower, upper, A_eq, b_eq, result: ExactResult, M=(), t=()) -> list:
    """Recompute the KKT conditions of an optimal result and return the ones that fail."""
    A_eq, b_eq = A_eq or [], b_eq or []
    x = [F(v) for v in result.x]
    duals = {key: [F(v) for v in values] for key, values in result.duals.items()}
    problems = []

    for i, row in enumerate(A_ub):
        slack = F(b_ub[i]) - dot(row, x)
        if slack < 0:
            problems.append(f"A_ub row {i} violated")
        if duals["ub"][i] < 0:
            problems.append(f"A_ub multiplier {i} negative")
        if duals["ub"][i] * slack != 0:
            problems.append(f"A_ub row {i} not complementary")
    for i, row in enumerate(A_eq):
        if dot(row, x) != F(b_eq[i]):
            problems.append(f"A_eq row {i} violated")
    for j in range(len(c)):
        for name, bound, gap_sign in (("lower", lower[j], 1), ("upper", upper[j], -1)):
            multiplier = duals[name][j]
            if multiplier < 0:
                problems.append(f"{name} multiplier {j} negative")
            if bound is None:
                if multiplier != 0:
                    problems.append(f"{name} multiplier {j} on a missing bound")
                continue
            gap = gap_sign * (x[j] - F(bound))
            if gap < 0:
                problems.append(f"{name} bound {j} violated")
            if multiplier * gap != 0:
                problems.append(f"{name} bound {j} not complementary")

    # Stationarity: 2 M^T (M x - t) + c + A_ub^T ub + A_eq^T eq - lower + upper = 0.
    residual = [F(cj) for cj in c]
    for row, target in zip(M, t):
        error = dot(row, x) - F(target)
        for j, a in row.items():
            residual[j] += 2 * F(a) * error
    for rows, key in ((A_ub, "ub"), (A_eq, "eq")):
        for i, row in enumerate(rows):
            for j, a in row.items():
                residual[j] += F(a) * duals[key][i]
    for j in range(len(c)):
        residual[j] += duals["upper"][j] - duals["lower"][j]
    if any(value != 0 for value in residual):
        problems.append(f"stationarity residual {residual}")
    return problems


def objective_of(c, x, M=(), t=()) -> Fraction:
    x = [F(v) for v in x]
    value = sum((F(cj) * xj for cj, xj in zip(c, x)), Fraction(0))
    return value + sum(((dot(row, x) - F(target)) ** 2 for row, target in zip(M, t)), Fraction(0))


def farkas_problems(A_ub, b_ub, lower, upper, A_eq, b_eq, duals) -> list:
    """Recheck a Farkas certificate of infeasibility and return what fails."""
    A_eq, b_eq = A_eq or [], b_eq or []
    duals = {key: [F(v) for v in values] for key, values in duals.items()}
    n = len(lower)
    problems = []

    # The multipliers combine all constraints into 0 <= rhs, which must be false.
    combination = [Fraction(0)] * n
    for rows, key in ((A_ub, "ub"), (A_eq, "eq")):
        for i, row in enumerate(rows):
            for j, a in row.items():
                combination[j] += F(a) * duals[key][i]
    rhs = sum((F(b) * y for b, y in zip(b_ub, duals["ub"])), Fraction(0))
    rhs += sum((F(b) * y for b, y in zip(b_eq, duals["eq"])), Fraction(0))

    for j in range(n):
        combination[j] += duals["upper"][j] - duals["lower"][j]
        if duals["lower"][j]:
            if lower[j] is None:
                problems.append(f"lower multiplier {j} on a missing bound")
            else:
                rhs -= F(lower[j]) * duals["lower"][j]
        if duals["upper"][j]:
            if upper[j] is None:
                problems.append(f"upper multiplier {j} on a missing bound")
            else:
                rhs += F(upper[j]) * duals["upper"][j]

    if any(v < 0 for v in duals["ub"] + duals["lower"] + duals["upper"]):
        problems.append("negative multiplier")
    if any(v != 0 for v in combination):
        problems.append("combination is not zero")
    if rhs >= 0:
        problems.append("combined right-hand side is not negative")
    return problems


def ray_problems(c, A_ub, lower, upper, A_eq, ray, M=()) -> list:
    ray = [F(v) for v in ray]
    problems = []
    if any(dot(row, ray) > 0 for row in A_ub):
        problems.append("ray leaves an A_ub row")
    if any(dot(row, ray) != 0 for row in (A_eq or [])):
        problems.append("ray leaves an A_eq row")
    if any(dot(row, ray) != 0 for row in M):
        problems.append("ray changes M x")
    for j, value in enumerate(ray):
        if (lower[j] is not None and value < 0) or (upper[j] is not None and value > 0):
            problems.append(f"ray leaves a bound of x[{j}]")
    if sum((F(cj) * rj for cj, rj in zip(c, ray)), Fraction(0)) >= 0:
        problems.append("c^T ray is not negative")
    return problems


# 2x + y >= 3, x + 2y >= 4 and x, y >= 0, where min x + y is 7/3 at (2/3, 5/3).
NON_DYADIC_LP = dict(
    c=[1, 1],
    A_ub=[{0: -2, 1: -1}, {0: -1, 1: -2}],
    b_ub=[-3, -4],
    lower=[0, 0],
    upper=[None, None],
)

# Beale's example, on which Dantzig's rule with a naive tie-break cycles.
BEALE_LP = dict(
    c=[Fraction(-3, 4), 20, Fraction(-1, 2), 6],
    A_ub=[
        {0: Fraction(1, 4), 1: -8, 2: -1, 3: 9},
        {0: Fraction(1, 2), 1: -12, 2: Fraction(-1, 2), 3: 3},
        {2: 1},
    ],
    b_ub=[0, 0, 1],
    lower=[0, 0, 0, 0],
    upper=[None, None, None, None],
)


# ---------------------------------------------------------------------------
# LP
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("use_highs", [True, False])
def test_lp_non_dyadic_vertex(use_highs):
    result = solve_lp_exact(**NON_DYADIC_LP, _use_highs=use_highs)

    assert result.status == "optimal"
    assert result.certified
    assert result.objective == Fraction(7, 3)
    assert result.objective != Fraction(float(result.objective))
    assert result.x == [Fraction(2, 3), Fraction(5, 3)]
    assert all(isinstance(v, type(mpq(1))) for v in result.x)
    assert kkt_problems(**NON_DYADIC_LP, A_eq=None, b_eq=None, result=result) == []


def test_lp_certified_path_method():
    result = solve_lp_exact(**NON_DYADIC_LP)

    assert result.method == "HiGHS basis, exact check"


def test_lp_fallback_method():
    result = solve_lp_exact(**NON_DYADIC_LP, _use_highs=False)

    assert result.method.startswith("exact simplex from slack basis")


@pytest.mark.parametrize("use_highs", [True, False])
def test_lp_beale_cycling_example(use_highs):
    result = solve_lp_exact(**BEALE_LP, _use_highs=use_highs)

    assert result.status == "optimal"
    assert result.objective == Fraction(-5, 4)
    assert kkt_problems(**BEALE_LP, A_eq=None, b_eq=None, result=result) == []


@pytest.mark.parametrize("use_highs", [True, False])
def test_lp_degenerate_vertex(use_highs):
    # At the optimum (1, 0) four constraints are tight in two dimensions, one of them twice.
    problem = dict(
        c=[-2, -1],
        A_ub=[{0: 1, 1: 1}, {0: 1}, {0: 1, 1: 1}, {0: 2, 1: 1}],
        b_ub=[1, 1, 1, 2],
        lower=[0, 0],
        upper=[None, None],
    )
    result = solve_lp_exact(**problem, _use_highs=use_highs)

    assert result.status == "optimal"
    assert result.objective == -2
    assert result.x == [1, 0]
    assert kkt_problems(**problem, A_eq=None, b_eq=None, result=result) == []


@pytest.mark.parametrize("use_highs", [True, False])
def test_lp_free_variables(use_highs):
    # min x subject to x >= y - 1 and x >= 1/3 - y: the minimum of max(y - 1, 1/3 - y) is -1/3 at y = 2/3.
    problem = dict(
        c=[1, 0],
        A_ub=[{0: -1, 1: 1}, {0: -1, 1: -1}],
        b_ub=[1, Fraction(-1, 3)],
        lower=[None, None],
        upper=[None, None],
    )
    result = solve_lp_exact(**problem, _use_highs=use_highs)

    assert result.status == "optimal"
    assert result.objective == Fraction(-1, 3)
    assert result.x == [Fraction(-1, 3), Fraction(2, 3)]
    assert kkt_problems(**problem, A_eq=None, b_eq=None, result=result) == []


@pytest.mark.parametrize("use_highs", [True, False])
def test_lp_free_variables_no_vertex(use_highs):
    # The feasible set is a line, so no vertex exists, and any point on it is optimal.
    problem = dict(c=[0, 0], A_ub=[], b_ub=[], lower=[None, None], upper=[None, None])
    equality = dict(A_eq=[{0: 1, 1: -1}], b_eq=[Fraction(1, 3)])
    result = solve_lp_exact(**problem, **equality, _use_highs=use_highs)

    assert result.status == "optimal"
    assert result.x[0] - result.x[1] == Fraction(1, 3)
    assert result.objective == 0
    assert kkt_problems(**problem, **equality, result=result) == []


@pytest.mark.parametrize("use_highs", [True, False])
def test_lp_equalities_and_upper_bounds(use_highs):
    # max 3x + 2y + 5z with x + y + z = 1, x <= 2/5 and z <= 1/7 puts x and z at their
    # upper bounds and y = 1 - 2/5 - 1/7, so the value is 6/5 + 2y + 5/7.
    problem = dict(
        c=[-3, -2, -5],
        A_ub=[],
        b_ub=[],
        lower=[0, 0, 0],
        upper=[Fraction(2, 5), None, Fraction(1, 7)],
    )
    equality = dict(A_eq=[{0: 1, 1: 1, 2: 1}], b_eq=[1])
    result = solve_lp_exact(**problem, **equality, _use_highs=use_highs)

    expected = -(Fraction(6, 5) + 2 * (1 - Fraction(2, 5) - Fraction(1, 7)) + Fraction(5, 7))
    assert result.status == "optimal"
    assert result.objective == expected
    assert result.x == [Fraction(2, 5), 1 - Fraction(2, 5) - Fraction(1, 7), Fraction(1, 7)]
    assert kkt_problems(**problem, **equality, result=result) == []


@pytest.mark.parametrize("use_highs", [True, False])
def test_lp_infeasible_rows(use_highs):
    problem = dict(
        c=[1, 1],
        A_ub=[{0: 1, 1: 1}, {0: -1, 1: -1}],
        b_ub=[1, -3],
        lower=[None, None],
        upper=[None, None],
    )
    result = solve_lp_exact(**problem, _use_highs=use_highs)

    assert result.status == "infeasible"
    assert result.x is None
    assert result.objective is None
    assert result.certified
    assert farkas_problems(problem["A_ub"], problem["b_ub"], problem["lower"], problem["upper"],
                           None, None, result.duals) == []


@pytest.mark.parametrize("use_highs", [True, False])
def test_lp_infeasible_equalities_and_bounds(use_highs):
    # x + y = 3 with 0 <= x, y <= 1.
    problem = dict(c=[0, 0], A_ub=[], b_ub=[], lower=[0, 0], upper=[1, 1])
    equality = dict(A_eq=[{0: 1, 1: 1}], b_eq=[3])
    result = solve_lp_exact(**problem, **equality, _use_highs=use_highs)

    assert result.status == "infeasible"
    assert result.certified
    assert farkas_problems([], [], problem["lower"], problem["upper"],
                           equality["A_eq"], equality["b_eq"], result.duals) == []


def test_lp_crossed_bounds_infeasible():
    result = solve_lp_exact([1], [], [], [2], [1])

    assert result.status == "infeasible"
    assert farkas_problems([], [], [2], [1], None, None, result.duals) == []


@pytest.mark.parametrize("use_highs", [True, False])
def test_lp_unbounded(use_highs):
    problem = dict(c=[-1, 0], A_ub=[{0: 1, 1: -1}], b_ub=[1], lower=[0, 0], upper=[None, None])
    result = solve_lp_exact(**problem, _use_highs=use_highs)

    assert result.status == "unbounded"
    assert result.objective is None
    assert result.certified
    assert F(result.x[0]) - F(result.x[1]) <= 1
    assert ray_problems(problem["c"], problem["A_ub"], problem["lower"], problem["upper"], None, result.ray) == []


def test_lp_no_variables():
    assert solve_lp_exact([], [], [], [], []).objective == 0
    assert solve_lp_exact([], [{}], [-1], [], []).status == "infeasible"


def test_lp_accepts_mpq_fraction_and_int():
    problem = dict(NON_DYADIC_LP)
    problem["c"] = [mpq(1), Fraction(1)]
    problem["b_ub"] = [mpq(-3), Fraction(-4)]
    result = solve_lp_exact(**problem)

    assert result.objective == Fraction(7, 3)


# ---------------------------------------------------------------------------
# Fallback paths
# ---------------------------------------------------------------------------


def test_lp_corrupted_basis_falls_back(monkeypatch):
    """A HiGHS basis with statuses that contradict the bounds is rejected and the exact simplex takes over."""
    original = exact_lp._run_highs

    def corrupted(problem, deadline):
        guess = original(problem, deadline)
        guess.col_status = ["upper"] * problem.n
        return guess

    monkeypatch.setattr(exact_lp, "_run_highs", corrupted)
    result = solve_lp_exact(**NON_DYADIC_LP)

    assert result.method.startswith("exact simplex from HiGHS point")
    assert result.objective == Fraction(7, 3)
    assert result.x == [Fraction(2, 3), Fraction(5, 3)]


def test_lp_wrong_basis_is_repaired(monkeypatch):
    """A valid but infeasible and non-optimal basis is repaired by phase 1 and phase 2 from that basis."""
    # In this basis x is basic, y is at its lower bound 0 and the first row is tight,
    # so x = 3/2, which violates x + 2y >= 4.
    def wrong_basis(problem, deadline):
        return exact_lp._FloatGuess("optimal", [1.5, 0.0], ["basic", "lower"], ["upper", "basic"])

    monkeypatch.setattr(exact_lp, "_run_highs", wrong_basis)
    result = solve_lp_exact(**NON_DYADIC_LP)

    assert result.method.startswith("exact simplex from HiGHS basis after")
    assert result.objective == Fraction(7, 3)
    assert kkt_problems(**NON_DYADIC_LP, A_eq=None, b_eq=None, result=result) == []


def test_lp_highs_missing(monkeypatch):
    monkeypatch.setattr(exact_lp, "highspy", None)
    result = solve_lp_exact(**NON_DYADIC_LP)

    assert result.method.startswith("exact simplex from slack basis")
    assert result.objective == Fraction(7, 3)


def test_lp_basis_of_perturbed_problem():
    """The basis of a problem with other costs is valid but not optimal, so phase 2 pivots from it."""
    problem = fixed_pattern_lp(points=30, seed=4)
    reference = solve_lp_exact(**problem)
    original = exact_lp._run_highs
    rng = random.Random(5)

    def perturbed(exact_problem, deadline):
        other = exact_lp.dataclasses.replace(
            exact_problem, c=[cj + Fraction(rng.randint(-3, 3), 10) for cj in exact_problem.c]
        )
        return original(other, deadline)

    exact_lp._run_highs = perturbed
    try:
        result = solve_lp_exact(**problem)
    finally:
        exact_lp._run_highs = original

    assert reference.method == "HiGHS basis, exact check"
    assert result.method.startswith("exact simplex from HiGHS basis after")
    assert result.objective == reference.objective
    assert kkt_problems(**problem, A_eq=None, b_eq=None, result=result) == []


def test_lp_time_limit_raises():
    problem = fixed_pattern_lp(points=30, seed=1)

    with pytest.raises(RationalizationError, match="time limit"):
        solve_lp_exact(**problem, time_limit=1e-9, _use_highs=False)


def test_lp_pivot_cap_raises(monkeypatch):
    monkeypatch.setattr(exact_lp, "_PIVOTS_PER_DIMENSION", 0)
    monkeypatch.setattr(exact_lp, "_MIN_ITERATION_CAP", 1)

    with pytest.raises(RationalizationError, match="after 1 pivots"):
        solve_lp_exact(**BEALE_LP, _use_highs=False)


# ---------------------------------------------------------------------------
# QP
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("use_highs", [True, False])
def test_qp_singular_hessian_many_optima(use_highs):
    # min (x0 + x1 - 5/3)^2 on the unit box: every point with x0 + x1 = 5/3 is optimal.
    problem = dict(M=[{0: 1, 1: 1}], t=[Fraction(5, 3)], c=[0, 0], A_ub=[], b_ub=[], lower=[0, 0], upper=[1, 1])
    result = solve_qp_exact(**problem, _use_highs=use_highs)

    assert result.status == "optimal"
    assert result.certified
    assert result.objective == 0
    assert result.x[0] + result.x[1] == Fraction(5, 3)
    assert kkt_problems(problem["c"], [], [], problem["lower"], problem["upper"], None, None, result,
                        problem["M"], problem["t"]) == []


@pytest.mark.parametrize("use_highs", [True, False])
def test_qp_singular_hessian_positive_optimum(use_highs):
    # min 2 (x0 + x1 - 3)^2 + (x2 - 1/3)^2 + x2 (the first row of M appears twice) with
    # x0, x1 <= 1 and x2 >= 0 has x0 = x1 = 1, x2 = 0 and the value 2 + 1/9.
    problem = dict(
        M=[{0: 1, 1: 1}, {2: 1}, {0: 1, 1: 1}],
        t=[3, Fraction(1, 3), 3],
        c=[0, 0, 1],
        A_ub=[],
        b_ub=[],
        lower=[None, None, 0],
        upper=[1, 1, None],
    )
    result = solve_qp_exact(**problem, _use_highs=use_highs)

    assert result.status == "optimal"
    assert result.objective == 2 + Fraction(1, 9)
    assert result.x == [1, 1, 0]
    assert kkt_problems(problem["c"], [], [], problem["lower"], problem["upper"], None, None, result,
                        problem["M"], problem["t"]) == []


@pytest.mark.parametrize("use_highs", [True, False])
def test_qp_optimum_on_bounds(use_highs):
    # min (x - 7/3)^2 + (y + 1/5)^2 with x <= 2 and y >= 0: x = 2, y = 0, value 1/9 + 1/25.
    problem = dict(M=[{0: 1}, {1: 1}], t=[Fraction(7, 3), Fraction(-1, 5)], c=[0, 0],
                   A_ub=[], b_ub=[], lower=[None, 0], upper=[2, None])
    result = solve_qp_exact(**problem, _use_highs=use_highs)

    assert result.status == "optimal"
    assert result.x == [2, 0]
    assert result.objective == Fraction(1, 9) + Fraction(1, 25)
    assert result.duals["upper"][0] == Fraction(2, 3)
    assert result.duals["lower"][1] == Fraction(2, 5)
    assert kkt_problems(problem["c"], [], [], problem["lower"], problem["upper"], None, None, result,
                        problem["M"], problem["t"]) == []


@pytest.mark.parametrize("use_highs", [True, False])
def test_qp_active_row_and_linear_term(use_highs):
    # min (x - 7/3)^2 + (y + 1)^2 + y with x + y <= 2 and x, y >= 0: x = 2, y = 0, value 1/9 + 1.
    problem = dict(M=[{0: 1}, {1: 1}], t=[Fraction(7, 3), -1], c=[0, 1],
                   A_ub=[{0: 1, 1: 1}], b_ub=[2], lower=[0, 0], upper=[None, None])
    result = solve_qp_exact(**problem, _use_highs=use_highs)

    assert result.status == "optimal"
    assert result.x == [2, 0]
    assert result.objective == Fraction(10, 9)
    assert result.duals["ub"] == [Fraction(2, 3)]
    assert kkt_problems(problem["c"], problem["A_ub"], problem["b_ub"], problem["lower"], problem["upper"],
                        None, None, result, problem["M"], problem["t"]) == []


@pytest.mark.parametrize("use_highs", [True, False])
def test_qp_dependent_equalities(use_highs):
    # min (x0 - x1)^2 + (x0 - 1/5)^2 subject to x0 + x1 = 1, given twice (the second row doubled).
    problem = dict(M=[{0: 1, 1: -1}, {0: 1}], t=[0, Fraction(1, 5)], c=[0, 0],
                   A_ub=[], b_ub=[], lower=[None, None], upper=[None, None])
    equality = dict(A_eq=[{0: 1, 1: 1}, {0: 2, 1: 2}], b_eq=[1, 2])
    result = solve_qp_exact(**problem, **equality, _use_highs=use_highs)

    # With x1 = 1 - x0 the objective is (2 x0 - 1)^2 + (x0 - 1/5)^2, minimal at x0 = 11/25.
    assert result.status == "optimal"
    assert result.x == [Fraction(11, 25), Fraction(14, 25)]
    assert result.objective == Fraction(-3, 25) ** 2 + Fraction(6, 25) ** 2
    assert kkt_problems(problem["c"], [], [], problem["lower"], problem["upper"], equality["A_eq"],
                        equality["b_eq"], result, problem["M"], problem["t"]) == []


@pytest.mark.parametrize("use_highs", [True, False])
def test_qp_unbounded(use_highs):
    # min (y - 1)^2 - x with x >= 0: decreasing without bound along x.
    problem = dict(M=[{1: 1}], t=[1], c=[-1, 0], A_ub=[], b_ub=[], lower=[0, None], upper=[None, None])
    result = solve_qp_exact(**problem, _use_highs=use_highs)

    assert result.status == "unbounded"
    assert result.certified
    assert ray_problems(problem["c"], [], problem["lower"], problem["upper"], None, result.ray, problem["M"]) == []


@pytest.mark.parametrize("use_highs", [True, False])
def test_qp_infeasible(use_highs):
    problem = dict(M=[{0: 1}], t=[1], c=[0], A_ub=[{0: 1}], b_ub=[-1], lower=[0], upper=[None])
    result = solve_qp_exact(**problem, _use_highs=use_highs)

    assert result.status == "infeasible"
    assert result.certified
    assert farkas_problems(problem["A_ub"], problem["b_ub"], problem["lower"], problem["upper"],
                           None, None, result.duals) == []


def test_qp_without_quadratic_rows_is_an_lp():
    # M has one empty row, so the objective is c^T x + t^2.
    result = solve_qp_exact([{}], [2], **NON_DYADIC_LP)

    assert result.objective == Fraction(7, 3) + 4


def test_qp_wrong_highs_point_falls_back(monkeypatch):
    """A HiGHS point far from the optimum still yields the exact optimum."""
    problem = dict(M=[{0: 1}, {1: 1}], t=[Fraction(7, 3), -1], c=[0, 1],
                   A_ub=[{0: 1, 1: 1}], b_ub=[2], lower=[0, 0], upper=[None, None])

    def wrong_point(exact_problem, deadline):
        return exact_lp._FloatGuess("optimal", [0.25, 1.5], ["basic", "basic"], ["basic"])

    monkeypatch.setattr(exact_lp, "_run_highs", wrong_point)
    result = solve_qp_exact(**problem)

    assert result.method.startswith("exact active set")
    assert result.x == [2, 0]
    assert result.objective == Fraction(10, 9)


def test_qp_active_set_warm_start(monkeypatch):
    """A feasible but non-optimal HiGHS active set (both lower bounds) is the start of the exact active set."""
    problem = dict(M=[{0: 1}, {1: 1}], t=[Fraction(7, 3), -1], c=[0, 1],
                   A_ub=[{0: 1, 1: 1}], b_ub=[2], lower=[0, 0], upper=[None, None])

    def lower_corner(exact_problem, deadline):
        return exact_lp._FloatGuess("optimal", [0.0, 0.0], ["lower", "lower"], ["basic"])

    monkeypatch.setattr(exact_lp, "_run_highs", lower_corner)
    result = solve_qp_exact(**problem)

    assert result.method.startswith("exact active set from HiGHS active set after")
    assert result.x == [2, 0]
    assert result.objective == Fraction(10, 9)


def test_qp_iteration_cap_raises(monkeypatch):
    monkeypatch.setattr(exact_lp, "_ACTIVE_SET_STEPS_PER_DIMENSION", 0)
    monkeypatch.setattr(exact_lp, "_MIN_ITERATION_CAP", 1)
    problem = dict(M=[{0: 1}, {1: 1}], t=[Fraction(7, 3), -1], c=[0, 1],
                   A_ub=[{0: 1, 1: 1}], b_ub=[2], lower=[0, 0], upper=[None, None])

    with pytest.raises(RationalizationError, match="active-set method stopped after 1 iterations"):
        solve_qp_exact(**problem, _use_highs=False)


def test_qp_certified_path_method():
    problem = dict(M=[{0: 1, 1: 1}, {0: 1, 1: -1}], t=[Fraction(7, 3), 1], c=[0, 0],
                   A_ub=[{0: 1}], b_ub=[1], lower=[None, None], upper=[None, None])
    result = solve_qp_exact(**problem)

    # The row fixes x0 at 1, and then x1 minimises (1 + x1 - 7/3)^2 + (1 - x1 - 1)^2, so x1 = 2/3.
    assert result.method == "HiGHS active set, exact KKT check"
    assert result.x == [1, Fraction(2, 3)]
    assert result.objective == Fraction(8, 9)


# ---------------------------------------------------------------------------
# Larger fixed-pattern programs
# ---------------------------------------------------------------------------


def fixed_pattern_lp(points: int, seed: int, hidden: int = 3, dim: int = 3, loss: str = "l1") -> dict:
    """Build a fixed-pattern ReLU fit with output signs +-1, pattern taken from a random teacher.

    Variables are hidden weights and biases, the output bias and, for L1,
    one error variable per point. Data are multiples of 1/10.
    """
    rng = random.Random(seed)
    X = [[Fraction(rng.randint(-50, 50), 10) for _ in range(dim)] for _ in range(points)]
    Y = [Fraction(rng.randint(-100, 100), 10) for _ in range(points)]
    teacher = [[Fraction(rng.randint(-20, 20), 10) for _ in range(dim + 1)] for _ in range(hidden)]
    signs = [1 if k % 2 == 0 else -1 for k in range(hidden)]
    n_parameters = hidden * (dim + 1) + 1
    output_bias = n_parameters - 1

    A_ub, b_ub, predictions = [], [], []
    for i in range(points):
        prediction = {output_bias: Fraction(1)}
        for k in range(hidden):
            pre_activation = {k * (dim + 1) + j: X[i][j] for j in range(dim) if X[i][j]}
            pre_activation[k * (dim + 1) + dim] = Fraction(1)
            active = sum(w * x for w, x in zip(teacher[k], X[i])) + teacher[k][dim] >= 0
            if active:
                A_ub.append({j: -a for j, a in pre_activation.items()})
                for j, a in pre_activation.items():
                    prediction[j] = prediction.get(j, 0) + signs[k] * a
            else:
                A_ub.append(dict(pre_activation))
            b_ub.append(0)
        predictions.append(prediction)

    if loss == "l2":
        return dict(M=predictions, t=Y, c=[0] * n_parameters, A_ub=A_ub, b_ub=b_ub,
                    lower=[-10] * n_parameters, upper=[10] * n_parameters)
    for i, prediction in enumerate(predictions):
        error = n_parameters + i
        A_ub.append({**prediction, error: -1})
        b_ub.append(Y[i])
        A_ub.append({**{j: -a for j, a in prediction.items()}, error: -1})
        b_ub.append(-Y[i])
    return dict(c=[0] * n_parameters + [1] * points, A_ub=A_ub, b_ub=b_ub,
                lower=[-10] * n_parameters + [0] * points, upper=[10] * n_parameters + [None] * points)


def test_fixed_pattern_lp_paths_agree():
    problem = fixed_pattern_lp(points=25, seed=2)
    certified = solve_lp_exact(**problem)
    exact = solve_lp_exact(**problem, _use_highs=False)

    assert certified.method == "HiGHS basis, exact check"
    assert certified.objective == exact.objective
    assert kkt_problems(**problem, A_eq=None, b_eq=None, result=certified) == []
    assert kkt_problems(**problem, A_eq=None, b_eq=None, result=exact) == []


def test_fixed_pattern_qp_paths_agree():
    problem = fixed_pattern_lp(points=20, seed=3, loss="l2")
    certified = solve_qp_exact(**problem)
    exact = solve_qp_exact(**problem, _use_highs=False)

    assert certified.certified
    assert certified.objective == exact.objective
    assert objective_of(problem["c"], certified.x, problem["M"], problem["t"]) == F(certified.objective)
    assert kkt_problems(problem["c"], problem["A_ub"], problem["b_ub"], problem["lower"], problem["upper"],
                        None, None, certified, problem["M"], problem["t"]) == []


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------


def test_float_coefficient_rejected():
    with pytest.raises(TypeError, match=r"c\[1\].*0\.5"):
        solve_lp_exact([1, 0.5], [], [], [0, 0], [1, 1])


def test_float_in_row_rejected():
    with pytest.raises(TypeError, match=r"A_ub\[0\]\[1\].*nan"):
        solve_lp_exact([1, 1], [{0: 1, 1: float("nan")}], [1], [0, 0], [1, 1])


def test_float_bound_rejected():
    with pytest.raises(TypeError, match=r"upper\[0\]"):
        solve_qp_exact([{0: 1}], [1], [0], [], [], [0], [float("inf")])


def test_bool_rejected():
    with pytest.raises(TypeError, match="bool"):
        solve_lp_exact([True], [], [], [0], [1])


@pytest.mark.parametrize(
    "arguments, message",
    [
        (([1, 1], [], [], [0], [1, 1]), "lower has 1 entries but 2"),
        (([1], [{0: 1}], [], [0], [1]), "b_ub has 0 entries but 1"),
        (([1], [{1: 1}], [1], [0], [1]), "column index 1 is outside"),
        (([1], [{"0": 1}], [1], [0], [1]), "column index '0' is not an int"),
        (([1], None, [1], [0], [1]), "A_ub and b_ub must be given together"),
    ],
)
def test_lp_malformed_input(arguments, message):
    with pytest.raises(InputError, match=message):
        solve_lp_exact(*arguments)


def test_equality_rows_without_rhs():
    with pytest.raises(InputError, match="A_eq and b_eq"):
        solve_lp_exact([1], [], [], [0], [1], A_eq=[{0: 1}])


def test_qp_target_length_mismatch():
    with pytest.raises(InputError, match="t has 2 entries but 1"):
        solve_qp_exact([{0: 1}], [1, 2], [0], [], [], [0], [1])


def test_row_must_be_dict():
    with pytest.raises(TypeError, match=r"A_ub\[0\] must be a dict"):
        solve_lp_exact([1], [[1]], [1], [0], [1])


@pytest.mark.parametrize("time_limit", [0, -1, float("nan"), "10", True])
def test_invalid_time_limit(time_limit):
    with pytest.raises(InputError, match="time_limit"):
        solve_lp_exact(**NON_DYADIC_LP, time_limit=time_limit)


# ---------------------------------------------------------------------------
# Property test: the certified path and the pure exact fallback agree
# ---------------------------------------------------------------------------

SMALL = st.integers(min_value=-3, max_value=3)


@st.composite
def random_programs(draw):
    """Draw an LP or QP with n <= 6 variables and at most 6 + 2 rows of small integers.

    Four in five programs have right-hand sides built around an integer point
    inside the bounds, so they are feasible. The rest have random ones.
    """
    n = draw(st.integers(min_value=1, max_value=6))
    sparse_row = st.dictionaries(st.integers(min_value=0, max_value=n - 1), SMALL, max_size=n)
    A_ub = draw(st.lists(sparse_row, max_size=6))
    A_eq = draw(st.lists(sparse_row, max_size=2))
    lower, upper, point = [], [], []
    for _ in range(n):
        low = draw(st.one_of(st.none(), st.integers(min_value=-3, max_value=0)))
        high = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=3)))
        lower.append(low)
        upper.append(high)
        point.append(draw(st.integers(min_value=-3 if low is None else low, max_value=3 if high is None else high)))

    if draw(st.integers(min_value=0, max_value=4)):
        b_ub = [sum(a * point[j] for j, a in row.items()) + draw(st.integers(0, 2)) for row in A_ub]
        b_eq = [sum(a * point[j] for j, a in row.items()) for row in A_eq]
    else:
        b_ub = draw(st.lists(SMALL, min_size=len(A_ub), max_size=len(A_ub)))
        b_eq = draw(st.lists(SMALL, min_size=len(A_eq), max_size=len(A_eq)))

    program = dict(
        c=draw(st.lists(SMALL, min_size=n, max_size=n)),
        A_ub=A_ub,
        b_ub=b_ub,
        lower=lower,
        upper=upper,
        A_eq=A_eq,
        b_eq=b_eq,
    )
    if draw(st.booleans()):
        M = draw(st.lists(sparse_row, min_size=1, max_size=4))
        program["M"] = M
        program["t"] = draw(st.lists(SMALL, min_size=len(M), max_size=len(M)))
    return program


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(random_programs())
def test_certified_and_exact_paths_agree(program):
    quadratic = "M" in program
    solve = solve_qp_exact if quadratic else solve_lp_exact
    certified = solve(**program)
    exact = solve(**program, _use_highs=False)

    assert certified.status == exact.status
    assert certified.certified
    assert exact.certified
    M, t = program.get("M", ()), program.get("t", ())
    if certified.status == "optimal":
        assert certified.objective == exact.objective
        for result in (certified, exact):
            assert objective_of(program["c"], result.x, M, t) == F(result.objective)
            assert kkt_problems(program["c"], program["A_ub"], program["b_ub"], program["lower"],
                                program["upper"], program["A_eq"], program["b_eq"], result, M, t) == []
    elif certified.status == "infeasible":
        for result in (certified, exact):
            assert farkas_problems(program["A_ub"], program["b_ub"], program["lower"], program["upper"],
                                   program["A_eq"], program["b_eq"], result.duals) == []
    else:
        for result in (certified, exact):
            assert ray_problems(program["c"], program["A_ub"], program["lower"], program["upper"],
                                program["A_eq"], result.ray, M) == []
