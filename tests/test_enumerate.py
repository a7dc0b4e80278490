"""The enumeration solver: pattern counts, exact optima derived by hand, limits and bad input.

Every expected optimum is derived in its test's docstring.
"""

import itertools
import logging
import math
import random

import pytest
from gmpy2 import mpq

from ermsolve.architecture import Architecture
from ermsolve.baselines.enumerate import DEFAULT_LIMIT, count_patterns, solve_by_enumeration, unit_patterns
from ermsolve.certificate import build_certificate, verify_certificate
from ermsolve.encodings import TrainingProblem
from ermsolve.errors import InputError, UsageError
from ermsolve.exact_lp import solve_lp_exact
from ermsolve.instance import Instance, load_instance
from ermsolve.network import exact_loss

from conftest import INSTANCES


def _instance(rows, name="tiny"):
    d = len(rows[0]) - 1
    return Instance(
        name,
        tuple(f"x{j}" for j in range(d)),
        tuple(tuple(mpq(v) for v in row[:-1]) for row in rows),
        tuple(mpq(row[-1]) for row in rows),
    )


def _problem(rows, width, loss="l1", box=1):
    return TrainingProblem(_instance(rows), Architecture(hidden=(width,), loss=loss, box=mpq(box)))


def _strictly_realisable(X, pattern):
    """Decide by an exact LP whether some (w, b) has w.x_i + b > 0 exactly on the pattern's points.

    Strict inequalities are homogeneous in (w, b), so > 0 and < 0 can be
    scaled to >= 1 and <= -1.
    """
    d = len(X[0])
    rows, rhs = [], []
    for x, active in zip(X, pattern):
        row = {j: (-x[j] if active else x[j]) for j in range(d) if x[j] != 0}
        row[d] = mpq(-1) if active else mpq(1)
        rows.append(row)
        rhs.append(mpq(-1))
    result = solve_lp_exact([mpq(0)] * (d + 1), rows, rhs, [None] * (d + 1), [None] * (d + 1))
    return result.status == "optimal"


def test_one_dimension_pattern_count():
    """n distinct points on a line have exactly 2n unit patterns.

    Sort them, x_1 < ... < x_n. A generic affine function w x + b with w > 0 is
    positive on a suffix {i : x_i > t}, where t = -b/w lies between data
    points: n + 1 suffixes, from all points to none. With w < 0 it is positive
    on one of n + 1 prefixes, and with w = 0 on all points or none. The empty
    and the full set appear among both the suffixes and the prefixes, so the
    count is 2(n + 1) - 2 = 2n.
    """
    for n in range(1, 9):
        X = [(mpq(3 * i - 7, 4),) for i in range(n)]
        patterns = unit_patterns(X)
        assert len(patterns) == 2 * n
        assert len(set(patterns)) == len(patterns)


def test_one_dimension_duplicates_count_once():
    """Identical points always share their sign, so m distinct values among n points give 2m patterns."""
    X = [(mpq(v),) for v in (0, 1, 1, 2, 0, 2, 2)]
    patterns = unit_patterns(X)
    assert len(patterns) == 2 * 3
    for pattern in patterns:
        assert pattern[0] == pattern[4]
        assert pattern[1] == pattern[2]
        assert pattern[3] == pattern[5] == pattern[6]


def test_general_position_matches_cover_count():
    """n points in general position in the plane have 2 (C(n-1, 0) + C(n-1, 1) + C(n-1, 2)) patterns.

    This is Cover's count of the affine dichotomies. The points lie on the
    parabola y = x^2, so no three are collinear.
    """
    for n in range(1, 9):
        X = [(mpq(i), mpq(i * i)) for i in range(n)]
        expected = 2 * sum(math.comb(n - 1, j) for j in range(3))
        assert len(unit_patterns(X)) == expected


def test_xor_has_all_patterns_but_two():
    """The four corners of a square admit every split except the two diagonals: 16 - 2 = 14."""
    X = [(mpq(0), mpq(0)), (mpq(0), mpq(1)), (mpq(1), mpq(0)), (mpq(1), mpq(1))]
    patterns = unit_patterns(X)
    assert len(patterns) == 14
    assert (0, 1, 1, 0) not in patterns
    assert (1, 0, 0, 1) not in patterns


def test_patterns_match_brute_force():
    """On random small point sets, with repeated and collinear points, the patterns are exactly
    the subsets that an exact LP finds strictly separable."""
    rng = random.Random(7)
    for _ in range(30):
        d = rng.choice([1, 2, 3])
        n = rng.randint(1, 6)
        X = [tuple(mpq(rng.randint(-2, 2), 2) for _ in range(d)) for _ in range(n)]
        if n >= 3 and rng.random() < 0.5:
            X[2] = tuple(2 * a - b for a, b in zip(X[0], X[1]))  # on the line through X[0] and X[1]
        if n >= 4 and rng.random() < 0.5:
            X[3] = X[0]

        expected = {p for p in itertools.product((0, 1), repeat=n) if _strictly_realisable(X, p)}
        assert set(unit_patterns(X)) == expected, X


def test_count_patterns_xor_width_two():
    """XOR has P = 14 unit patterns. Width 2 solves C(15, 2) multisets for signs ++, 14 * 13 for +-
    (the negative unit never all-off) and C(14, 2) for -- (both from the 13 others, with repetition):
    105 + 182 + 91 = 378."""
    problem = TrainingProblem(load_instance(INSTANCES / "xor.csv"), Architecture(hidden=(2,)))
    assert count_patterns(problem) == 378


def test_xor_width_two_l1_zero():
    """f = relu(x1 - x2) + relu(x2 - x1) fits all four XOR points, so the L1 optimum is 0."""
    problem = TrainingProblem(load_instance(INSTANCES / "xor.csv"), Architecture(hidden=(2,), loss="l1"))
    result = solve_by_enumeration(problem)
    assert result.status == "optimal"
    assert result.solution.loss == 0
    assert result.solver == "enumerate"
    assert result.encoding == "none"


@pytest.mark.parametrize("loss, expected", [("l1", mpq(1)), ("l2", mpq(1, 2)), ("linf", mpq(1, 2))])
def test_repeated_point_width_one(loss, expected):
    """Points (x, y) = (0, 0) and (0, 1): every network outputs one value v at x = 0.

    L1 is |v| + |v - 1| >= 1, L2 is v^2 + (v - 1)^2 >= 1/2 and Linf is
    max(|v|, |v - 1|) >= 1/2, all attained at v = 1/2 through the output bias.
    """
    result = solve_by_enumeration(_problem([(0, 0), (0, 1)], 1, loss))
    assert result.status == "optimal"
    assert result.solution.loss == expected


@pytest.mark.parametrize("loss, expected", [("l1", mpq(3)), ("l2", mpq(45, 8)), ("linf", mpq(9, 4))])
def test_small_box_width_one(loss, expected):
    """Points (0, 0) and (4, 4), width 1, box 1/2: the box caps the rise.

    Normalised, |w'|, |b'| <= 1/4 and |c| <= 1/2. The rise f(4) - f(0) =
    s (relu(4w' + b') - relu(b')) is at most 4 |w'| <= 1, and f(4) <= 5/4 + 1/2 =
    7/4. With r0 = f(0) and r4 = 4 - f(4) >= 3 - f(0): L1 = |r0| + r4 >= 3.
    L2 = f(0)^2 + (4 - f(4))^2 is least with f(4) = min(f(0) + 1, 7/4), which
    puts f(0) at 3/4: 9/16 + 81/16 = 45/8. Linf >= 4 - 7/4 = 9/4. The network
    relu(x/4 + 1/4) + 1/2 (normalised) attains all three.
    """
    result = solve_by_enumeration(_problem([(0, 0), (4, 4)], 1, loss, box=mpq(1, 2)))
    assert result.status == "optimal"
    assert result.solution.loss == expected


@pytest.mark.parametrize("name, width, loss, expected", [
    ("v_shape_5", 1, "l1", mpq(1)),
    ("v_shape_5", 1, "l2", mpq(1, 2)),
    ("v_shape_5", 1, "linf", mpq(1, 2)),
    ("clipped_ramp_5", 1, "l1", mpq(1, 4)),
    ("clipped_ramp_5", 1, "l2", mpq(1, 24)),
    ("clipped_ramp_5", 1, "linf", mpq(1, 8)),
    ("xor", 1, "l1", mpq(1)),
    ("clipped_ramp_5", 2, "l2", mpq(0)),
])
def test_shipped_known_optima(name, width, loss, expected):
    """The optima derived in instances/README.md."""
    problem = TrainingProblem(load_instance(INSTANCES / f"{name}.csv"), Architecture(hidden=(width,), loss=loss))
    result = solve_by_enumeration(problem)
    assert result.status == "optimal"
    assert result.solution.loss == expected


def test_certificate_verifies():
    """The exact solution of the enumeration passes the solver-free certificate check."""
    instance = load_instance(INSTANCES / "v_shape_5.csv")
    architecture = Architecture(hidden=(1,), loss="l2")
    result = solve_by_enumeration(TrainingProblem(instance, architecture))

    check = verify_certificate(build_certificate(instance, architecture, result), instance)
    assert check.valid, check.problems
    assert check.loss == result.solution.loss
    assert exact_loss(result.solution.network, instance.X, instance.y, "l2") == result.solution.loss


def test_result_fields_when_complete():
    """A complete run solves every counted program and claims optimality on that basis."""
    problem = TrainingProblem(load_instance(INSTANCES / "v_shape_5.csv"), Architecture(hidden=(1,), loss="l1"))
    result = solve_by_enumeration(problem)
    total = count_patterns(problem)

    assert result.nodes == total
    assert str(total) in result.basis
    assert result.basis.startswith("exact: enumeration")
    assert result.dual_bound == float(result.solution.loss)
    assert result.gap == 0.0
    assert sum(run.nodes for run in result.runs) == total


def test_over_limit_rejected():
    """More programs than max_patterns raises UsageError naming the count, the limit and the option."""
    problem = TrainingProblem(load_instance(INSTANCES / "xor.csv"), Architecture(hidden=(2,)))
    with pytest.raises(UsageError) as error:
        solve_by_enumeration(problem, max_patterns=100)
    message = str(error.value)
    assert "378" in message
    assert "100" in message
    assert "--max-patterns" in message


def test_default_limit_rejects_large_instance():
    """iris_sepal_30 at width 2 needs about a million programs, far beyond the default limit."""
    problem = TrainingProblem(load_instance(INSTANCES / "iris_sepal_30.csv"), Architecture(hidden=(2,)))
    assert count_patterns(problem) > DEFAULT_LIMIT
    with pytest.raises(UsageError, match="--max-patterns"):
        solve_by_enumeration(problem)


@pytest.mark.parametrize("options", [
    {"max_patterns": 0},
    {"max_patterns": -5},
    {"max_patterns": 2.5},
    {"time_limit": 0},
    {"time_limit": -1.0},
    {"time_limit": float("nan")},
])
def test_invalid_options_rejected(options):
    problem = _problem([(0, 0), (1, 1)], 1)
    with pytest.raises(UsageError):
        solve_by_enumeration(problem, **options)


def test_width_zero_rejected():
    with pytest.raises(InputError, match="positive integers"):
        _problem([(0, 0), (1, 1)], 0)


def test_time_limit_makes_no_claim():
    """A run cut short reports status time_limit and a loss no better than the optimum 211/85."""
    instance = load_instance(INSTANCES / "iris_petal_1d_22.csv")
    problem = TrainingProblem(instance, Architecture(hidden=(2,), loss="l1"))
    result = solve_by_enumeration(problem, time_limit=0.3)

    assert result.status == "time_limit"
    assert "not proven" in result.basis
    assert result.nodes < count_patterns(problem)
    if result.solution is not None:
        assert result.solution.loss >= mpq(211, 85)


def test_logs_program_count(caplog):
    problem = _problem([(0, 0), (1, 1), (2, 0)], 1)
    with caplog.at_level(logging.INFO, logger="ermsolve.baselines.enumerate"):
        solve_by_enumeration(problem)
    assert f"enumerating {count_patterns(problem)} fixed-pattern programs" in caplog.text


def test_large_scan_stops_early():
    """120 random points in 3-D span C(120, 3) = 280840 hyperplanes, beyond the exact-count scan.

    With a limit, counting stops once the count is known to exceed it, and the
    rejection message states that the count is a lower bound.
    """
    rng = random.Random(0)
    X = tuple(tuple(mpq(rng.randint(-100, 100), 64) for _ in range(3)) for _ in range(120))
    y = tuple(mpq(rng.randint(-8, 8), 4) for _ in range(120))
    problem = TrainingProblem(Instance("random", ("x0", "x1", "x2"), X, y), Architecture(hidden=(1,)))

    assert count_patterns(problem, limit=1000) > 1000
    with pytest.raises(UsageError, match="at least"):
        solve_by_enumeration(problem, max_patterns=1000)
