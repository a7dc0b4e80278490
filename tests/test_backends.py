"""Solver backends on hand-built models: agreement, exact CP-SAT scaling, limits, starts and rejections.

Every expected optimum below is derived in its model's or test's docstring.
"""

from __future__ import annotations

import logging
import random
from fractions import Fraction

import pytest
from gmpy2 import mpq

from ermsolve.architecture import Architecture
from ermsolve.backends import BACKENDS, get_backend
from ermsolve.backends.base import CUTOFF, INFEASIBLE, OPTIMAL, TIME_LIMIT, SolveOptions
from ermsolve.encodings import TrainingProblem
from ermsolve.errors import UsageError
from ermsolve.instance import load_instance
from ermsolve.model import MipModel
from ermsolve.train import train

from conftest import INSTANCES

ALL = ("scip", "cpsat", "highs", "mathopt-scip")
ORTOOLS = ("cpsat", "highs", "mathopt-scip")
WITH_INDICATORS = ("scip", "cpsat", "mathopt-scip")
WITH_QUADRATIC = ("scip", "mathopt-scip")
FLOAT_TOLERANCE = 1e-6

KNAPSACK_OPTIMUM = Fraction(-101, 6)
KNAPSACK_SOLUTION = [3.0, 0.0, 1.0]


def knapsack() -> MipModel:
    """Minimise 1/2 - (5x + 3y + 7/3 z) s.t. 3/2 x + y + 1/2 z <= 5, x, y in {0..3}, z binary.

    Doubled, the constraint is the weight w = 3x + 2y + z <= 10. The value is
    5x + 3y + 7/3 z = 5/3 w - 1/3 y + 2/3 z <= 50/3 + 2/3 = 52/3, with equality
    exactly when w = 10, y = 0 and z = 1, that is x = 3. So (3, 0, 1) is the
    unique optimum and the objective is 1/2 - 52/3 = -101/6.
    """
    model = MipModel("knapsack")
    x = model.add_variable("x", 0, 3, "integer")
    y = model.add_variable("y", 0, 3, "integer")
    z = model.add_variable("z", 0, 1, "binary")
    model.add_linear("capacity", {x: mpq(3, 2), y: mpq(1), z: mpq(1, 2)}, hi=5)
    model.objective.linear = {x: mpq(-5), y: mpq(-3), z: mpq(-7, 3)}
    model.objective.constant = mpq(1, 2)
    return model


def market_split(rows: int = 5, columns: int = 30, seed: int = 7) -> MipModel:
    """A market-split instance: split 30 items so that each of 5 random weight rows halves.

    The objective is the total deviation from the halves. Its LP relaxation has
    value 0, and branch and bound must enumerate most of the 2^30 splits to
    raise the bound. With 1 thread, none of the four solvers proved optimality
    within 20 s on a 2-core machine, 40 times the limit the test uses.
    """
    rng = random.Random(seed)
    model = MipModel("market-split")
    items = [model.add_variable(f"x[{j}]", 0, 1, "binary") for j in range(columns)]
    for i in range(rows):
        weights = [rng.randint(0, 99) for _ in range(columns)]
        total = sum(weights)
        above = model.add_variable(f"above[{i}]", 0, total, "integer")
        below = model.add_variable(f"below[{i}]", 0, total, "integer")
        terms = {item: mpq(w) for item, w in zip(items, weights)}
        terms[above] = mpq(-1)
        terms[below] = mpq(1)
        model.add_linear(f"split[{i}]", terms, lo=total // 2, hi=total // 2)
        model.objective.linear[above] = mpq(1)
        model.objective.linear[below] = mpq(1)
    return model


def indicator_model(objective: str) -> MipModel:
    """x, y in {0..5}, b binary; b = 1 implies 2 <= x + y <= 3, b = 0 implies y <= 1.

    "max": maximise x + 2y + 4b. With b = 0, y <= 1 gives at most 5 + 2 = 7;
    with b = 1, x + y <= 3 gives at most 2 * 3 + 4 = 10 at (0, 3). Optimum -10.
    "min": minimise x + y - 3b. With b = 0 the least is 0; with b = 1,
    x + y >= 2 gives 2 - 3 = -1. Optimum -1.
    """
    model = MipModel(f"indicator-{objective}")
    x = model.add_variable("x", 0, 5, "integer")
    y = model.add_variable("y", 0, 5, "integer")
    b = model.add_variable("b", 0, 1, "binary")
    model.add_indicator("sum_if_on", b, 1, {x: mpq(1), y: mpq(1)}, lo=2, hi=3)
    model.add_indicator("y_if_off", b, 0, {y: mpq(1)}, hi=1)
    if objective == "max":
        model.objective.linear = {x: mpq(-1), y: mpq(-2), b: mpq(-4)}
    else:
        model.objective.linear = {x: mpq(1), y: mpq(1), b: mpq(-3)}
    return model


def sos1_model() -> MipModel:
    """Maximise 3x + 2y + z + 9w with x in {0..2}, y, z in {0..4}, w binary, at most one non-zero.

    The single non-zero candidates give x = 2: 6, y = 4: 8, z = 4: 4, w = 1: 9,
    so the optimum is w = 1 with objective -9 (without the SOS1 it would be -27).
    """
    model = MipModel("sos1")
    x = model.add_variable("x", 0, 2, "integer")
    y = model.add_variable("y", 0, 4, "integer")
    z = model.add_variable("z", 0, 4, "integer")
    w = model.add_variable("w", 0, 1, "binary")
    model.add_sos1("one_nonzero", [x, y, z, w])
    model.objective.linear = {x: mpq(-3), y: mpq(-2), z: mpq(-1), w: mpq(-9)}
    return model


def quadratic_model() -> MipModel:
    """Minimise (x - 7/3)^2 + (x + y - 1)^2, x in {0..5}, y in [-10, 10] continuous.

    y = 1 - x zeroes the second square for every x, and the integer nearest to
    7/3 is 2, so the optimum is x = 2, y = -1 with objective 1/9.
    """
    model = MipModel("quadratic")
    x = model.add_variable("x", 0, 5, "integer")
    y = model.add_variable("y", -10, 10)
    model.objective.squares.append(({x: mpq(1)}, mpq(-7, 3)))
    model.objective.squares.append(({x: mpq(1), y: mpq(1)}, mpq(-1)))
    return model


def solve(name: str, model: MipModel, **options):
    return get_backend(name).solve(model, SolveOptions(**options))


def test_registry_lists_all_backends():
    assert set(ALL) <= set(BACKENDS)
    for name in ALL:
        assert get_backend(name).name == name


@pytest.mark.parametrize("name, expected", [
    ("cpsat", "OR-Tools 9."),
    ("highs", "HiGHS via OR-Tools MathOpt 9."),
    ("mathopt-scip", "SCIP (gSCIP) via OR-Tools MathOpt 9."),
])
def test_version_names_solver(name, expected):
    version = get_backend(name).version()
    assert version.startswith(expected)
    if name == "cpsat":
        assert version.endswith(" CP-SAT")


@pytest.mark.parametrize("name", ALL)
def test_knapsack_optimum(name):
    result = solve(name, knapsack())
    assert result.status == OPTIMAL
    assert result.solver == name
    assert result.values == pytest.approx(KNAPSACK_SOLUTION, abs=FLOAT_TOLERANCE)
    assert result.objective == pytest.approx(float(KNAPSACK_OPTIMUM), abs=FLOAT_TOLERANCE)
    assert result.dual_bound == pytest.approx(float(KNAPSACK_OPTIMUM), abs=FLOAT_TOLERANCE)
    assert result.nodes is not None
    assert result.time_s >= 0


def test_backends_agree_on_knapsack():
    objectives = {name: solve(name, knapsack()).objective for name in ALL}
    reference = objectives["scip"]
    for name, objective in objectives.items():
        assert objective == pytest.approx(reference, abs=FLOAT_TOLERANCE), name


def test_cpsat_objective_exact():
    result = solve("cpsat", knapsack())
    assert result.exact_objective == KNAPSACK_OPTIMUM
    assert result.exact_dual_bound == KNAPSACK_OPTIMUM
    assert result.objective == float(KNAPSACK_OPTIMUM)


def test_cpsat_rounds_rational_bounds_inward():
    """x integer in [1/3, 10] with 2/3 x >= 5/4, i.e. x >= 15/8, so the least x is 2.

    CP-SAT gets the domain [1, 10] and, scaled by 3, the constraint 2x >= 15/4,
    rounded up to 2x >= 4. Minimising x + 1/7 gives 15/7.
    """
    model = MipModel("rational-bounds")
    x = model.add_variable("x", mpq(1, 3), 10, "integer")
    model.add_linear("floor", {x: mpq(2, 3)}, lo=mpq(5, 4))
    model.objective.linear = {x: mpq(1)}
    model.objective.constant = mpq(1, 7)
    result = solve("cpsat", model)
    assert result.status == OPTIMAL
    assert result.values == [2.0]
    assert result.exact_objective == Fraction(15, 7)


@pytest.mark.parametrize("name", ALL)
def test_empty_integer_domain_infeasible(name):
    model = MipModel("empty-domain")
    x = model.add_variable("x", mpq(1, 3), mpq(2, 3), "integer")
    model.objective.linear = {x: mpq(1)}
    result = solve(name, model)
    assert result.status == INFEASIBLE
    assert result.values is None


@pytest.mark.parametrize("name", ALL)
def test_objective_limit_below_optimum_cutoff(name):
    result = solve(name, knapsack(), objective_limit=-17.0)
    assert result.status == CUTOFF
    assert result.values is None


@pytest.mark.parametrize("name", ORTOOLS)
def test_cutoff_reports_limit_as_dual_bound(name):
    result = solve(name, knapsack(), objective_limit=-17.0)
    assert result.dual_bound == -17.0


@pytest.mark.parametrize("name", ALL)
def test_objective_limit_above_optimum_keeps_optimum(name):
    result = solve(name, knapsack(), objective_limit=-16.0)
    assert result.status == OPTIMAL
    assert result.objective == pytest.approx(float(KNAPSACK_OPTIMUM), abs=FLOAT_TOLERANCE)


def test_cpsat_objective_limit_is_strict():
    """Minimise x over the integers 2..5: the optimum 2 is not below the limit 2, but is below 2.5."""
    model = MipModel("least-integer")
    x = model.add_variable("x", 2, 5, "integer")
    model.objective.linear = {x: mpq(1)}

    at_optimum = solve("cpsat", model, objective_limit=2.0)
    assert at_optimum.status == CUTOFF
    assert at_optimum.exact_dual_bound == 2

    above_optimum = solve("cpsat", model, objective_limit=2.5)
    assert above_optimum.status == OPTIMAL
    assert above_optimum.exact_objective == 2


@pytest.mark.parametrize("name", ALL)
def test_time_limit_reports_dual_bound(name):
    result = solve(name, market_split(), time_limit=0.5)
    assert result.status == TIME_LIMIT
    assert result.dual_bound is not None
    assert result.dual_bound >= -FLOAT_TOLERANCE
    if result.objective is not None:
        assert result.dual_bound <= result.objective + FLOAT_TOLERANCE


@pytest.mark.parametrize("name", ALL)
def test_mip_start_returned_when_optimal(name):
    result = solve(name, knapsack(), start=list(KNAPSACK_SOLUTION))
    assert result.status == OPTIMAL
    assert result.values == pytest.approx(KNAPSACK_SOLUTION, abs=FLOAT_TOLERANCE)


@pytest.mark.parametrize("name", ALL)
def test_partial_mip_start_accepted(name):
    result = solve(name, knapsack(), start=[3.0, None, None])
    assert result.status == OPTIMAL
    assert result.objective == pytest.approx(float(KNAPSACK_OPTIMUM), abs=FLOAT_TOLERANCE)


@pytest.mark.parametrize("name", ORTOOLS)
def test_mip_start_wrong_length_rejected(name):
    with pytest.raises(UsageError, match="MIP start has 2 values, but model 'knapsack' has 3 variables"):
        solve(name, knapsack(), start=[3.0, 0.0])


@pytest.mark.parametrize("name", WITH_INDICATORS)
@pytest.mark.parametrize("objective, expected", [("max", -10), ("min", -1)])
def test_indicator_optimum(name, objective, expected):
    result = solve(name, indicator_model(objective))
    assert result.status == OPTIMAL
    assert result.objective == pytest.approx(expected, abs=FLOAT_TOLERANCE)


@pytest.mark.parametrize("name", WITH_INDICATORS)
def test_sos1_optimum(name):
    result = solve(name, sos1_model())
    assert result.status == OPTIMAL
    assert result.objective == pytest.approx(-9, abs=FLOAT_TOLERANCE)
    assert result.values == pytest.approx([0, 0, 0, 1], abs=FLOAT_TOLERANCE)


@pytest.mark.parametrize("name", WITH_QUADRATIC)
def test_quadratic_optimum(name):
    result = solve(name, quadratic_model())
    assert result.status == OPTIMAL
    assert result.objective == pytest.approx(1 / 9, abs=FLOAT_TOLERANCE)
    assert result.values[0] == pytest.approx(2, abs=FLOAT_TOLERANCE)
    # The square (x + y - 1)^2 is met within SCIP's feasibility tolerance 1e-6, so y only within about 1e-3.
    assert result.values[1] == pytest.approx(-1, abs=2e-3)


def test_mathopt_scip_quadratic_cutoff():
    result = solve("mathopt-scip", quadratic_model(), objective_limit=0.1)
    assert result.status == CUTOFF


def test_cpsat_rejects_continuous_variables():
    model = knapsack()
    model.add_variable("slack", 0, 1)
    with pytest.raises(UsageError) as error:
        solve("cpsat", model)
    message = str(error.value)
    assert "1 continuous variable (first: 'slack')" in message
    assert "use solver 'scip'" in message


def test_cpsat_rejects_quadratic_objective():
    with pytest.raises(UsageError, match="quadratic objective .2 squared terms.*use solver 'scip'"):
        solve("cpsat", quadratic_model())


def test_cpsat_rejects_unbounded_integer():
    model = knapsack()
    model.add_variable("count", 0, None, "integer")
    with pytest.raises(UsageError, match="without finite bounds .first: 'count'"):
        solve("cpsat", model)


def test_cpsat_rejects_indicator_on_integer():
    model = indicator_model("max")
    model.indicators[0].binary = 0  # x, an integer in {0..5}
    with pytest.raises(UsageError, match="'sum_if_on' on variable 'x', which is not a 0/1 variable"):
        solve("cpsat", model)


@pytest.mark.parametrize("name", ORTOOLS)
def test_indicator_active_value_invalid(name):
    model = indicator_model("max")
    model.indicators[1].active_value = 2
    with pytest.raises(UsageError, match="'y_if_off' of model 'indicator-max' has active value 2; expected 0 or 1"):
        solve(name, model)


def test_highs_rejects_quadratic_objective():
    with pytest.raises(UsageError) as error:
        solve("highs", quadratic_model())
    message = str(error.value)
    assert "quadratic objective (2 squared terms)" in message
    assert "use solver 'scip' or 'mathopt-scip'" in message


@pytest.mark.parametrize("model, part", [
    (indicator_model("max"), "2 indicator constraints"),
    (sos1_model(), "1 SOS1 constraint;"),
])
def test_highs_rejects_indicators_and_sos1(model, part):
    with pytest.raises(UsageError, match=part):
        solve("highs", model)


@pytest.mark.parametrize("name, parameters, match", [
    ("cpsat", {"no_such_parameter": 1}, "invalid CP-SAT parameter no_such_parameter=1"),
    ("cpsat", {"num_workers": "many"}, "invalid CP-SAT parameter num_workers='many'"),
    ("highs", {"no_such_option": 1}, "HiGHS via MathOpt rejected"),
    ("mathopt-scip", {"no/such/parameter": 1}, "SCIP .gSCIP. via MathOpt rejected"),
])
def test_invalid_solver_parameter_rejected(name, parameters, match):
    with pytest.raises(UsageError, match=match):
        solve(name, knapsack(), solver_parameters=parameters)


@pytest.mark.parametrize("name", ORTOOLS)
def test_solver_parameters_applied(name):
    parameters = {
        "cpsat": {"cp_model_presolve": False},
        "highs": {"presolve": "off"},
        "mathopt-scip": {"misc/usesymmetry": 0},
    }[name]
    result = solve(name, knapsack(), solver_parameters=parameters)
    assert result.status == OPTIMAL


@pytest.mark.parametrize("name", ORTOOLS)
def test_threads_keep_optimum(name):
    result = solve(name, knapsack(), threads=2)
    assert result.status == OPTIMAL
    assert result.objective == pytest.approx(float(KNAPSACK_OPTIMUM), abs=FLOAT_TOLERANCE)


@pytest.mark.parametrize("name", ("highs", "mathopt-scip"))
def test_mathopt_repeated_names_solved(name):
    model = knapsack()
    model.variables[1].name = "x"
    result = solve(name, model)
    assert result.status == OPTIMAL
    assert result.values == pytest.approx(KNAPSACK_SOLUTION, abs=FLOAT_TOLERANCE)


def test_cpsat_logs_incumbents(caplog):
    with caplog.at_level(logging.INFO, logger="ermsolve.backends.cpsat"):
        solve("cpsat", knapsack())
    incumbents = [record.getMessage() for record in caplog.records if "incumbent" in record.getMessage()]
    assert incumbents
    assert "objective -16.8333333333" in incumbents[-1]


@pytest.mark.parametrize("solver", ("highs", "mathopt-scip"))
def test_train_xor_exact_zero(solver):
    """XOR: f = relu(x1 - x2) + relu(x2 - x1) fits all four points, so the L1 optimum is 0."""
    instance = load_instance(INSTANCES / "xor.csv")
    problem = TrainingProblem(instance, Architecture(hidden=(2,), loss="l1"))
    result = train(problem, solver=solver, time_limit=30)
    assert result.status == "optimal"
    assert result.solution.loss == 0
    assert "MathOpt" in result.solver_version


def test_train_cpsat_rejects_bigm():
    instance = load_instance(INSTANCES / "xor.csv")
    problem = TrainingProblem(instance, Architecture(hidden=(2,), loss="l1"))
    with pytest.raises(UsageError, match="continuous variables .first: 'w.0..0.'"):
        train(problem, solver="cpsat")
