"""Property tests: the MIP path and the enumeration agree exactly on random tiny instances.

The enumeration shares no branch and bound with the MIP path, only the exact
fixed-pattern solve and the certificate, so agreement is an independent
check of both. Data are multiples of 1/4 in [-2, 2], with n <= 8 points,
d <= 2 and width <= 2. Sizes are capped so that the enumeration needs at most
about 500 fixed-pattern programs per example. Examples are derandomised so
that CI runs the same cases every time.
"""

import pytest
from gmpy2 import mpq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ermsolve.architecture import Architecture
from ermsolve.baselines.enumerate import solve_by_enumeration
from ermsolve.baselines.gd import train_gd
from ermsolve.certificate import build_certificate, verify_certificate
from ermsolve.encodings import TrainingProblem
from ermsolve.instance import Instance
from ermsolve.network import exact_loss
from ermsolve.train import train

# A hung solve fails with a traceback instead of blocking the run.
pytestmark = pytest.mark.timeout(300)

QUARTERS = st.integers(min_value=-8, max_value=8).map(lambda k: mpq(k, 4))

# Largest n per (d, width): d = 1 gives at most 2n unit patterns, d = 2 at most
# 2 (1 + (n - 1) + C(n - 1, 2)), and width 2 squares that count.
MAX_POINTS = {(1, 1): 8, (1, 2): 8, (2, 1): 8, (2, 2): 4}

PROPERTY_SETTINGS = settings(
    max_examples=14,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def tiny_problems(draw, loss):
    d = draw(st.integers(min_value=1, max_value=2))
    width = draw(st.integers(min_value=1, max_value=2))
    n = draw(st.integers(min_value=1, max_value=MAX_POINTS[d, width]))
    X = tuple(tuple(draw(QUARTERS) for _ in range(d)) for _ in range(n))
    y = tuple(draw(QUARTERS) for _ in range(n))
    instance = Instance("random", tuple(f"x{j}" for j in range(d)), X, y)
    return TrainingProblem(instance, Architecture(hidden=(width,), loss=loss))


def _check_solution(problem, result):
    """The certificate verifies and the stated loss equals an exact forward pass."""
    instance, architecture = problem.instance, problem.architecture
    solution = result.solution
    assert solution is not None, result.basis
    assert solution.loss == exact_loss(solution.network, instance.X, instance.y, architecture.loss)

    check = verify_certificate(build_certificate(instance, architecture, result), instance)
    assert check.valid, check.problems
    assert check.loss == solution.loss


def _check_agreement(problem):
    enumeration = solve_by_enumeration(problem)
    assert enumeration.status == "optimal", enumeration.basis
    _check_solution(problem, enumeration)

    mip = train(problem, time_limit=30)
    if mip.status == "optimal":
        assert mip.solution.loss == enumeration.solution.loss, (problem.instance.X, problem.instance.y)
    if mip.solution is not None:
        _check_solution(problem, mip)

    heuristic = train_gd(problem, restarts=4, steps=150)
    assert heuristic.status == "heuristic"
    assert heuristic.solution.loss >= enumeration.solution.loss
    _check_solution(problem, heuristic)


@PROPERTY_SETTINGS
@given(tiny_problems("l1"))
def test_mip_equals_enumeration_l1(problem):
    _check_agreement(problem)


@PROPERTY_SETTINGS
@given(tiny_problems("l2"))
def test_mip_equals_enumeration_l2(problem):
    _check_agreement(problem)


@PROPERTY_SETTINGS
@given(tiny_problems("linf"))
def test_mip_equals_enumeration_linf(problem):
    _check_agreement(problem)


@pytest.mark.parametrize("loss", ["l1", "l2", "linf"])
def test_collinear_ties_agree(loss):
    """Repeated and collinear points, where pre-activations can be 0 at several points at once."""
    X = tuple((mpq(a, 4), mpq(b, 4)) for a, b in [(0, 0), (2, 2), (4, 4), (4, 4), (-2, 4), (2, -2)])
    y = tuple(mpq(v, 4) for v in [1, -3, 2, 5, 0, -1])
    problem = TrainingProblem(Instance("ties", ("x0", "x1"), X, y), Architecture(hidden=(1,), loss=loss))
    _check_agreement(problem)
