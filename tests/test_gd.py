"""The gradient-descent baseline: determinism, no optimality claim, the box and bad input.

The exact optima compared against are derived in tests/test_enumerate.py.
"""

import numpy as np
import pytest
from gmpy2 import mpq

from ermsolve.architecture import Architecture
from ermsolve.baselines.gd import gradient_descent, result_from_run, train_gd
from ermsolve.certificate import build_certificate, verify_certificate
from ermsolve.encodings import TrainingProblem
from ermsolve.errors import UsageError
from ermsolve.instance import Instance, load_instance
from ermsolve.network import Layer, Network, exact_loss

from conftest import INSTANCES

# Small runs keep the file fast; the defaults (100 restarts of 2000 steps) are for reports.
FAST = {"restarts": 10, "steps": 300}


def _problem(rows, width, loss="l1", box=1):
    d = len(rows[0]) - 1
    instance = Instance(
        "tiny",
        tuple(f"x{j}" for j in range(d)),
        tuple(tuple(mpq(v) for v in row[:-1]) for row in rows),
        tuple(mpq(row[-1]) for row in rows),
    )
    return TrainingProblem(instance, Architecture(hidden=(width,), loss=loss, box=mpq(box)))


def _shipped(name, width, loss, box=1):
    return TrainingProblem(load_instance(INSTANCES / f"{name}.csv"),
                           Architecture(hidden=(width,), loss=loss, box=mpq(box)))


# (problem, exact optimum) pairs with optima derived in tests/test_enumerate.py and instances/README.md.
TINY_CASES = [
    pytest.param(lambda: _problem([(0, 0), (0, 1)], 1, "l1"), mpq(1), id="repeated-point-l1"),
    pytest.param(lambda: _problem([(0, 0), (0, 1)], 1, "l2"), mpq(1, 2), id="repeated-point-l2"),
    pytest.param(lambda: _problem([(0, 0), (4, 4)], 1, "l1", mpq(1, 2)), mpq(3), id="small-box-l1"),
    pytest.param(lambda: _problem([(0, 0), (4, 4)], 1, "l2", mpq(1, 2)), mpq(45, 8), id="small-box-l2"),
    pytest.param(lambda: _problem([(0, 0), (4, 4)], 1, "linf", mpq(1, 2)), mpq(9, 4), id="small-box-linf"),
    pytest.param(lambda: _shipped("xor", 1, "l1"), mpq(1), id="xor-width-1"),
    pytest.param(lambda: _shipped("v_shape_5", 1, "linf"), mpq(1, 2), id="v-shape-linf"),
    pytest.param(lambda: _shipped("clipped_ramp_5", 1, "l2"), mpq(1, 24), id="clipped-ramp-l2"),
]


def test_same_seed_same_result():
    problem = _shipped("iris_petal_12", 2, "l1")
    first = train_gd(problem, seed=3, **FAST)
    second = train_gd(problem, seed=3, **FAST)

    assert first.solver_objective == second.solver_objective
    assert first.solution.loss == second.solution.loss
    assert list(first.solution.network.parameters()) == list(second.solution.network.parameters())


def test_different_seed_runs():
    """Another seed gives another start; both are valid heuristic results."""
    problem = _shipped("iris_petal_12", 2, "l1")
    runs = [gradient_descent(problem, seed=seed, **FAST) for seed in (0, 1)]
    assert not np.array_equal(runs[0].weights, runs[1].weights)


@pytest.mark.parametrize("make_problem, optimum", TINY_CASES)
def test_never_below_exact_optimum(make_problem, optimum):
    """Gradient descent is heuristic: its exact loss is at least the exact optimum, and it never claims optimality."""
    problem = make_problem()
    result = train_gd(problem, **FAST)

    assert result.status == "heuristic"
    assert "no optimality claim" in result.basis
    assert result.solution.loss >= optimum
    # The float loss is rounded, so compare it with a float tolerance only.
    assert result.solver_objective >= float(optimum) - 1e-9
    assert result.dual_bound is None


def test_exact_pattern_at_least_as_good():
    """The fixed-pattern optimum contains the gradient-descent network, so its exact loss is not larger."""
    problem = _shipped("iris_petal_1d_22", 2, "l1")
    run = gradient_descent(problem, **FAST)
    result = result_from_run(problem, run)

    float_network = _float_network_exactly(run)
    float_loss = exact_loss(float_network, problem.instance.X, problem.instance.y, "l1")
    assert result.solution.loss <= float_loss
    assert abs(float(float_loss) - run.loss) <= 1e-9 * max(1.0, run.loss)
    assert result.warnings == []


def _float_network_exactly(run):
    hidden = Layer(tuple(tuple(mpq(float(w)) for w in row) for row in run.weights),
                   tuple(mpq(float(b)) for b in run.biases))
    output = Layer((tuple(mpq(float(v)) for v in run.output_weights),), (mpq(run.output_bias),))
    return Network((hidden, output), "relu")


@pytest.mark.parametrize("box", [mpq(1), mpq(1, 3), mpq(1, 10)])
def test_parameters_inside_box(box):
    """Float parameters stay in the exact box even when the box is not a binary fraction."""
    problem = _shipped("iris_petal_12", 2, "l2", box=box)
    run = gradient_descent(problem, **FAST)
    for array in (run.weights, run.biases, run.output_weights, np.array([run.output_bias])):
        assert all(abs(mpq(float(value))) <= box for value in array.ravel())

    result = result_from_run(problem, run)
    assert all(abs(value) <= box for _, value in result.solution.network.parameters())


def test_certificate_verifies():
    instance = load_instance(INSTANCES / "iris_petal_12.csv")
    architecture = Architecture(hidden=(2,), loss="linf")
    result = train_gd(TrainingProblem(instance, architecture), **FAST)

    check = verify_certificate(build_certificate(instance, architecture, result), instance)
    assert check.valid, check.problems
    assert check.loss == result.solution.loss


def test_result_fields():
    result = train_gd(_shipped("xor", 2, "l1"), **FAST)
    assert result.solver == "gd"
    assert result.encoding == "none"
    assert "gradient descent (Adam), 10 restarts of 300 steps" in result.basis
    assert result.solution.signs in {(1, 1), (1, -1), (-1, 1), (-1, -1)}


def test_time_limit_stops_early():
    result = train_gd(_shipped("iris_sepal_30", 2, "l1"), restarts=10, steps=10**6, time_limit=0.2)
    assert result.status == "heuristic"
    assert "stopped by the time limit" in result.basis
    assert result.solve_time_s < 5


@pytest.mark.parametrize("options", [
    {"restarts": 0},
    {"restarts": -1},
    {"restarts": 2.0},
    {"steps": 0},
    {"learning_rate": 0},
    {"learning_rate": -0.1},
    {"learning_rate": float("inf")},
    {"seed": -1},
    {"seed": 1.5},
    {"time_limit": 0},
])
def test_invalid_options_rejected(options):
    with pytest.raises(UsageError):
        train_gd(_problem([(0, 0), (1, 1)], 1), **options)
