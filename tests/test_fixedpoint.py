"""Fixed-point domain: exact integer models solved by CP-SAT and SCIP.

Each expected optimum is either derived in the test's docstring or computed
here by enumerating the whole parameter grid in integer arithmetic, which
shares no code with the model.
"""

import itertools
from fractions import Fraction
from math import lcm

import numpy as np
import pytest

from ermsolve.architecture import Architecture, load_architecture
from ermsolve.certificate import build_certificate, verify_certificate
from ermsolve.encodings import TrainingProblem
from ermsolve.errors import InputError, UsageError
from ermsolve.exact_eval import exact_loss_multi, off_grid_parameters, outside_box_parameters
from ermsolve.fixedpoint import build_fixed_point_model, grid_limit, train_fixed_point
from ermsolve.instance import Instance, load_instance
from ermsolve.train import train

from conftest import INSTANCES, MODELS

SOLVERS = ("cpsat", "scip")
LOSSES = ("l1", "l2", "linf")

# 1-D points for the depth-2 test; no grid network fits them exactly.
DEPTH2_ROWS = [(-2, 1), (-1, 0), (0, 1), (1, Fraction(1, 2)), (2, 3)]


def _instance(rows, outputs=1, name="tiny"):
    d = len(rows[0]) - outputs
    targets = ("y",) if outputs == 1 else tuple(f"y{j + 1}" for j in range(outputs))
    return Instance(
        name,
        tuple(f"x{j + 1}" for j in range(d)),
        tuple(tuple(Fraction(v) for v in row[:d]) for row in rows),
        None,
        tuple(tuple(Fraction(v) for v in row[d:]) for row in rows),
        targets,
    )


def _problem(instance, hidden, loss, box, frac_bits):
    architecture = Architecture(hidden=tuple(hidden), outputs=instance.outputs, loss=loss,
                                box=Fraction(box), domain="fixed", frac_bits=frac_bits)
    return TrainingProblem(instance, architecture)


def _enumerate_optimum(instance, hidden, loss, box, frac_bits) -> Fraction:
    """Return the exact optimum over the fixed-point grid by trying every parameter vector.

    All arithmetic is in integers: inputs and targets are scaled by the common
    denominator D, and a layer's outputs by 2^p more than its inputs.
    """
    scale = 1 << frac_bits
    limit = int(Fraction(box) * scale)
    widths = [instance.d, *hidden, instance.outputs]
    shapes = [(widths[l + 1], widths[l]) for l in range(len(widths) - 1)]
    count = sum(rows * columns + rows for rows, columns in shapes)
    grid = np.array(list(itertools.product(range(-limit, limit + 1), repeat=count)), dtype=np.int64)
    D = lcm(*(Fraction(v).denominator for row in (*instance.X, *instance.Y) for v in row))

    total = None
    for x, y in zip(instance.X, instance.Y):
        values = [np.full(len(grid), int(Fraction(v) * D), dtype=np.int64) for v in x]
        multiplier, column = D, 0
        for index, (rows, columns) in enumerate(shapes):
            W = grid[:, column:column + rows * columns].reshape(-1, rows, columns)
            column += rows * columns
            b = grid[:, column:column + rows]
            column += rows
            z = [sum(W[:, k, j] * values[j] for j in range(columns)) + b[:, k] * multiplier for k in range(rows)]
            multiplier *= scale
            values = [np.maximum(v, 0) for v in z] if index < len(shapes) - 1 else z
        residuals = [values[j] - int(Fraction(y[j]) * multiplier) for j in range(instance.outputs)]
        if loss == "l1":
            part = sum(np.abs(r) for r in residuals)
        elif loss == "l2":
            part = sum(r * r for r in residuals)
        else:
            part = np.max(np.abs(np.stack(residuals)), axis=0)
        if total is None:
            total = part
        else:
            total = np.maximum(total, part) if loss == "linf" else total + part
    return Fraction(int(total.min()), multiplier * multiplier if loss == "l2" else multiplier)


def _check_solution(problem, result):
    """Check what a certificate would rest on: status, grid, box and the exact loss."""
    architecture, instance = problem.architecture, problem.instance
    solution = result.solution
    assert result.status == "optimal", result.basis
    assert solution.certified
    assert solution.signs == ()
    assert off_grid_parameters(solution.network, architecture.frac_bits) == []
    assert outside_box_parameters(solution.network, architecture.box) == []
    assert solution.loss == exact_loss_multi(solution.network, instance.X, instance.Y, architecture.loss)
    assert len(solution.pattern) == instance.n
    assert all(len(row) == architecture.hidden[0] for row in solution.pattern)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("loss, expected", [("l1", Fraction(1, 2)), ("l2", Fraction(1, 4)), ("linf", Fraction(1, 2))])
def test_integer_grid_forces_loss(solver, loss, expected):
    """One unit, p = 0, R = 1, points (0, 0), (1, 1/2), (2, 1).

    With p = 0 every parameter is -1, 0 or 1, so f(x) = v relu(w x + b) + c is
    an integer at every integer x. Then |f(1) - 1/2| >= 1/2, which bounds l1
    and linf below by 1/2 and l2 by 1/4. The network relu(x - 1) outputs
    0, 0, 1 and attains all three bounds. Over the box [-1, 1] without the grid
    the loss would be 0 (v = 1, w = 1/2).
    """
    problem = _problem(_instance([(0, 0), (1, Fraction(1, 2)), (2, 1)]), [1], loss, 1, 0)
    result = train_fixed_point(problem, solver=solver, time_limit=60)
    _check_solution(problem, result)
    assert result.solution.loss == expected


@pytest.mark.parametrize("solver", SOLVERS)
def test_half_grid_fits_exactly(solver):
    """The same points with p = 1: (1/2) relu(x) is on the grid and fits, so the loss is 0."""
    problem = _problem(_instance([(0, 0), (1, Fraction(1, 2)), (2, 1)]), [1], "l1", 1, 1)
    result = train_fixed_point(problem, solver=solver, time_limit=60)
    _check_solution(problem, result)
    assert result.solution.loss == 0
    assert "exact" in result.basis


@pytest.mark.parametrize("loss", LOSSES)
def test_depth2_solvers_agree_with_enumeration(loss):
    """Hidden layers [2, 1], grid {-1/2, 0, 1/2}: CP-SAT, SCIP and enumeration of all 3^9 networks agree."""
    instance = _instance(DEPTH2_ROWS)
    expected = _enumerate_optimum(instance, [2, 1], loss, Fraction(1, 2), 1)
    assert expected > 0

    losses = {}
    for solver in SOLVERS:
        problem = _problem(instance, [2, 1], loss, Fraction(1, 2), 1)
        result = train_fixed_point(problem, solver=solver, time_limit=60)
        _check_solution(problem, result)
        assert result.solution.network.depth == 2
        losses[solver] = result.solution.loss
    assert losses == {"cpsat": expected, "scip": expected}


def test_depth2_wider_grid_l1():
    """Hidden layers [2, 1], grid {-1, -1/2, 0, 1/2, 1} (R = 1, p = 1): both solvers match the 5^9 enumeration."""
    instance = _instance(DEPTH2_ROWS)
    expected = _enumerate_optimum(instance, [2, 1], "l1", 1, 1)
    for solver in SOLVERS:
        problem = _problem(instance, [2, 1], "l1", 1, 1)
        result = train_fixed_point(problem, solver=solver, time_limit=60)
        _check_solution(problem, result)
        assert result.solution.loss == expected


@pytest.mark.parametrize("loss", LOSSES)
def test_two_outputs_agree_with_enumeration(loss):
    """Two outputs from the shipped file and model: the grid slope is at most 1/2, so y = relu(x) cannot fit."""
    instance = load_instance(INSTANCES / "multi_output_hinge_pair_5.csv")
    architecture = load_architecture(MODELS / "fixed_p1_multi2_l1.toml").with_overrides(loss=loss)
    expected = _enumerate_optimum(instance, [2], loss, Fraction(1, 2), 1)
    assert expected > 0

    losses = {}
    for solver in SOLVERS:
        problem = TrainingProblem(instance, architecture)
        result = train(problem, solver=solver, time_limit=60)
        _check_solution(problem, result)
        assert result.solution.network.layers[-1].fan_out == 2
        losses[solver] = result.solution.loss
    assert losses == {"cpsat": expected, "scip": expected}


def test_shipped_deep_model_file():
    """`models/fixed_p1_deep21_l1.toml` through `train`: the result matches enumeration."""
    instance = _instance(DEPTH2_ROWS)
    architecture = load_architecture(MODELS / "fixed_p1_deep21_l1.toml")
    problem = TrainingProblem(instance, architecture)
    result = train(problem, solver="cpsat", time_limit=60)
    _check_solution(problem, result)
    assert result.solution.loss == _enumerate_optimum(instance, [2, 1], "l1", Fraction(1, 2), 1)
    assert result.encoding == "fixed-point integer"


def test_cpsat_basis_is_integer_proof():
    problem = _problem(_instance([(0, 0), (1, Fraction(1, 2)), (2, 1)]), [1], "l1", 1, 0)
    result = train_fixed_point(problem, solver="cpsat", time_limit=60)
    assert "integer arithmetic" in result.basis
    assert result.dual_bound == result.solver_objective == 0.5
    assert result.gap == 0.0


def test_scip_basis_names_tolerances():
    problem = _problem(_instance([(0, 0), (1, Fraction(1, 2)), (2, 1)]), [1], "l1", 1, 0)
    result = train_fixed_point(problem, solver="scip", time_limit=60)
    assert "within its tolerances" in result.basis
    assert "not an exact proof" in result.basis


def test_single_output_certificate_verifies():
    instance = _instance(DEPTH2_ROWS)
    problem = _problem(instance, [1], "l1", 1, 1)
    result = train_fixed_point(problem, solver="cpsat", time_limit=60)
    certificate = build_certificate(instance, problem.architecture, result)
    check = verify_certificate(certificate, instance)
    assert check.valid, check.problems
    assert check.loss == result.solution.loss


def test_repeated_points_share_forward_pass():
    """A repeated input adds residuals but no activation binaries."""
    rows = [(0, 0), (1, Fraction(1, 2)), (2, 1)]
    single = build_fixed_point_model(_problem(_instance(rows), [2, 1], "l1", 1, 1))
    repeated = build_fixed_point_model(_problem(_instance(rows + [(1, 1)]), [2, 1], "l1", 1, 1))
    assert repeated.model.count()["binary"] == single.model.count()["binary"]
    assert repeated.model.count()["linear"] == single.model.count()["linear"] + 2


def test_grid_limit_floors_box():
    problem = _problem(_instance([(0, 0)]), [1], "l1", Fraction(7, 10), 3)
    assert grid_limit(problem) == 5  # floor(7/10 * 8) = floor(5.6)


def test_architecture_without_frac_bits():
    with pytest.raises(InputError, match="frac_bits"):
        Architecture(hidden=(1,), domain="fixed")


def test_model_file_without_frac_bits(tmp_path):
    path = tmp_path / "fixed.toml"
    path.write_text('hidden = [1]\ndomain = "fixed"\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"fixed\.toml.*frac_bits"):
        load_architecture(path)


def test_box_domain_rejected():
    problem = TrainingProblem(_instance([(0, 0)]), Architecture(hidden=(1,)))
    with pytest.raises(UsageError, match="domain"):
        build_fixed_point_model(problem)


def test_unknown_solver_rejected():
    problem = _problem(_instance([(0, 0)]), [1], "l1", 1, 0)
    with pytest.raises(UsageError, match="unknown solver"):
        train_fixed_point(problem, solver="gurobi")
