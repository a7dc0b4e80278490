"""Deeper and multi-output networks over the box, trained by SCIP's nonlinear branch and bound.

SCIP proves optimality only within its tolerances, so results are compared with the
known optima up to `TOLERANCE`; the rationalised loss is always checked
exactly. Every known optimum is derived in its test's docstring.
"""

from fractions import Fraction

import pytest
from gmpy2 import mpq

from ermsolve.architecture import Architecture, load_architecture
from ermsolve.certificate import build_certificate, verify_certificate
from ermsolve.deep import build_deep_model, interval_bounds, rationalize_floats, train_deep
from ermsolve.encodings import TrainingProblem
from ermsolve.errors import UsageError
from ermsolve.exact_eval import exact_loss_multi, outside_box_parameters
from ermsolve.instance import Instance, load_instance
from ermsolve.network import Layer, Network
from ermsolve.train import train

from conftest import INSTANCES, MODELS

TOLERANCE = 1e-5


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


def _teacher(x: Fraction) -> Fraction:
    """A depth-2 network with dyadic parameters in [-1, 1].

    h = (relu(x), relu(-x)), g = relu(h1 / 2 + h2 - 1/4), f = g + 1/4.
    """
    h1, h2 = max(x, 0), max(-x, 0)
    return max(Fraction(1, 2) * h1 + h2 - Fraction(1, 4), 0) + Fraction(1, 4)


PLANTED_ROWS = [(x, _teacher(x)) for x in (Fraction(-1), Fraction(-1, 2), Fraction(0), Fraction(1, 2), Fraction(1))]


def _check_exact(problem, result):
    """The stated loss is the exact loss of the stated network, and the network lies in the box."""
    instance, architecture = problem.instance, problem.architecture
    solution = result.solution
    assert solution.loss == exact_loss_multi(solution.network, instance.X, instance.Y, architecture.loss)
    assert outside_box_parameters(solution.network, architecture.box) == []
    assert solution.signs == ()
    assert len(solution.pattern) == instance.n


@pytest.mark.parametrize("loss", ["l1", "linf"])
def test_planted_depth2_teacher_fits(loss):
    """Data made by the depth-2 teacher in `_teacher`, which lies in the box, so the optimum is 0."""
    problem = TrainingProblem(_instance(PLANTED_ROWS), Architecture(hidden=(2, 1), loss=loss))
    result = train_deep(problem, time_limit=60)
    _check_exact(problem, result)
    assert result.status == "optimal", result.basis
    assert float(result.solution.loss) <= TOLERANCE
    assert result.solution.network.depth == 2


# Witnesses for `test_depth2_repeated_point`, hidden layers [2, 1], every parameter in [-1, 1].
# relu(-x) through a second layer that passes it on: (-1, 0, 0, 1/2, 1) -> (1, 0, 0, 0, 0).
STEP_DOWN = Network((
    Layer(((mpq(-1),), (mpq(0),)), (mpq(0), mpq(0))),
    Layer(((mpq(1), mpq(0)),), (mpq(0),)),
    Layer(((mpq(1),),), (mpq(0),)),
))
# relu(relu(1/2 - x) - relu(-x) / 2): (-1, 0, 0, 1/2, 1) -> (1, 1/2, 1/2, 0, 0).
HALF_AT_ZERO = Network((
    Layer(((mpq(-1),), (mpq(-1),)), (mpq(1, 2), mpq(0))),
    Layer(((mpq(1), mpq(-1, 2)),), (mpq(0),)),
    Layer(((mpq(1),),), (mpq(0),)),
))


@pytest.mark.parametrize("loss, expected, witness", [
    ("l1", 1, STEP_DOWN),
    ("l2", Fraction(1, 2), HALF_AT_ZERO),
    ("linf", Fraction(1, 2), HALF_AT_ZERO),
])
def test_depth2_repeated_point(loss, expected, witness):
    """Points (-1, 1), (0, 0), (0, 1), (1/2, 0), (1, 0), hidden layers [2, 1], box 1.

    The network outputs one value v at x = 0, so the two points there cost
    |v| + |v - 1| >= 1 (l1), v^2 + (v - 1)^2 >= 1/2 (l2) and
    max(|v|, |v - 1|) >= 1/2 (linf). `STEP_DOWN` fits every other point with
    v = 0 and attains the l1 bound; `HALF_AT_ZERO` fits them with v = 1/2 and
    attains the l2 and linf bounds.
    """
    rows = [(-1, 1), (0, 0), (0, 1), (Fraction(1, 2), 0), (1, 0)]
    problem = TrainingProblem(_instance(rows), Architecture(hidden=(2, 1), loss=loss))
    assert exact_loss_multi(witness, problem.instance.X, problem.instance.Y, loss) == expected

    result = train_deep(problem, time_limit=60)
    _check_exact(problem, result)
    assert result.status == "optimal", result.basis
    assert abs(float(result.solution.loss) - expected) <= TOLERANCE
    assert not result.solution.certified
    assert "within its tolerances" in result.basis
    assert "exact loss" in result.basis


def test_two_outputs_fit_shipped_file():
    """`multi_output_hinge_pair_5.csv` is y = (relu(x), relu(-x)): two units fit it, so the optimum is 0."""
    instance = load_instance(INSTANCES / "multi_output_hinge_pair_5.csv")
    problem = TrainingProblem(instance, load_architecture(MODELS / "deep_multi2_l1.toml"))
    result = train(problem, time_limit=60)
    _check_exact(problem, result)
    assert result.status == "optimal", result.basis
    assert float(result.solution.loss) <= TOLERANCE
    assert result.encoding == "bilinear big-M MINLP"


@pytest.mark.parametrize("loss, expected", [("l1", 2), ("l2", 1), ("linf", Fraction(1, 2))])
def test_two_outputs_repeated_point(loss, expected):
    """`multi_output_repeated_4.csv`: x = -1 -> (1, 0), x = 0 -> (0, 0) and (1, 1), x = 1 -> (0, 1).

    At x = 0 each output takes one value v_j, costing |v| + |v - 1| >= 1 (l1),
    v^2 + (v - 1)^2 >= 1/2 (l2) or max(|v|, |v - 1|) >= 1/2 (linf) per output:
    lower bounds 2, 1 and 1/2. The network f1 = relu((1 - x) / 2),
    f2 = relu((1 + x) / 2) (weights 1/2, biases 1/2, output weights the
    identity, all in the box [-1, 1]) fits x = -1 and x = 1 and outputs 1/2
    at 0, attaining all three bounds.
    """
    instance = load_instance(INSTANCES / "multi_output_repeated_4.csv")
    architecture = load_architecture(MODELS / "deep_multi2_l1.toml").with_overrides(loss=loss)
    problem = TrainingProblem(instance, architecture)
    witness = Network((
        Layer(((mpq(-1, 2),), (mpq(1, 2),)), (mpq(1, 2), mpq(1, 2))),
        Layer(((mpq(1), mpq(0)), (mpq(0), mpq(1))), (mpq(0), mpq(0))),
    ))
    assert exact_loss_multi(witness, instance.X, instance.Y, loss) == expected

    result = train(problem, time_limit=60)
    _check_exact(problem, result)
    assert result.status == "optimal", result.basis
    assert abs(float(result.solution.loss) - expected) <= TOLERANCE
    assert result.dual_bound <= expected + TOLERANCE


def test_single_output_certificate_verifies():
    problem = TrainingProblem(_instance(PLANTED_ROWS), load_architecture(MODELS / "deep_relu21_l1.toml"))
    result = train(problem, time_limit=60)
    certificate = build_certificate(problem.instance, problem.architecture, result)
    check = verify_certificate(certificate, problem.instance)
    assert check.valid, check.problems
    assert check.loss == result.solution.loss


def test_rationalization_prefers_lower_exact_loss():
    """Floats near the teacher's dyadic parameters round back to them, with exact loss 0."""
    problem = TrainingProblem(_instance(PLANTED_ROWS), Architecture(hidden=(2, 1)))
    noise = 3e-9
    weights = [[[1 + noise], [-1 - noise]], [[0.5 - noise, 1 + noise]], [[1 - noise]]]
    biases = [[noise, -noise], [-0.25 + noise], [0.25 - noise]]
    solution = rationalize_floats(problem, weights, biases)
    assert solution.loss == 0
    assert solution.network.layers[1].W == ((mpq(1, 2), mpq(1)),)
    assert "2^-2" in solution.method


def test_rationalization_clips_to_box():
    problem = TrainingProblem(_instance(PLANTED_ROWS), Architecture(hidden=(1,), outputs=1, loss="l1"))
    solution = rationalize_floats(problem, [[[1.0000001]], [[-1.0000001]]], [[0.0], [0.0]])
    assert outside_box_parameters(solution.network, 1) == []


def test_interval_bounds_by_layer():
    """x = (1, -1/2), box 1/2, hidden [2, 3]: U0 = 1/2 (3/2 + 1) = 5/4, U1 = 1/2 (2 U0 + 1) = 7/4, U2 = 1/2 (3 U1 + 1) = 25/8."""
    instance = _instance([(1, Fraction(-1, 2), 0)])
    problem = TrainingProblem(instance, Architecture(hidden=(2, 3), box=Fraction(1, 2)))
    assert interval_bounds(problem) == [[mpq(5, 4), mpq(7, 4), mpq(25, 8)]]


def test_repeated_inputs_share_forward_pass():
    rows = [(0, 0), (1, 1)]
    single = build_deep_model(TrainingProblem(_instance(rows), Architecture(hidden=(2, 1))))
    repeated = build_deep_model(TrainingProblem(_instance(rows + [(1, 0)]), Architecture(hidden=(2, 1))))
    assert repeated.binaries == single.binaries == 6
    assert repeated.bilinear_constraints == single.bilinear_constraints == 4


def test_other_solver_rejected():
    problem = TrainingProblem(_instance(PLANTED_ROWS), Architecture(hidden=(2, 1)))
    with pytest.raises(UsageError, match="only 'scip'"):
        train_deep(problem, solver="cpsat")
