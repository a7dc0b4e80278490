"""Classification losses on labels -1/+1: hinge and zero_one, solved, recovered exactly and verified.

The network is f(x) = sum_k v_k relu(w_k . x + b_k) + c with every parameter
in [-R, R]. Every expected optimum below is derived in its test's docstring.
"""

import json
from fractions import Fraction

import pytest
from gmpy2 import mpq

from ermsolve.architecture import Architecture
from ermsolve.baselines.enumerate import solve_by_enumeration
from ermsolve.certificate import read_certificate, verify_certificate, write_certificate
from ermsolve.cli import main
from ermsolve.encodings import TrainingProblem
from ermsolve.errors import InputError, UsageError
from ermsolve.exact_eval import exact_loss_multi
from ermsolve.fast_eval import evaluate_shallow
from ermsolve.instance import Instance, load_instance
from ermsolve.network import Layer, Network, exact_loss
from ermsolve.train import train

from conftest import INSTANCES, MODELS

XOR = [(0, 0, -1), (1, 1, -1), (1, 0, 1), (0, 1, 1)]
LINE = [(-1, -1), (1, 1)]
# Two points at x = 0 with opposite labels, and one more at x = 1.
TIE = [(0, -1), (0, 1), (1, 1)]
FIVE = [(-1, 0, 1), (-1, 2, -1), (0, 0, 1), (1, 1, -1), (2, 0, 1)]


def _problem(rows, width, loss, box=1):
    d = len(rows[0]) - 1
    instance = Instance(
        "tiny",
        tuple(f"x{j}" for j in range(d)),
        tuple(tuple(Fraction(v) for v in row[:-1]) for row in rows),
        tuple(Fraction(row[-1]) for row in rows),
    )
    return TrainingProblem(instance, Architecture(hidden=(width,), loss=loss, box=Fraction(box)))


def _one_unit(w, b, v, c):
    """The network f(x) = v relu(w x + b) + c on one feature."""
    return Network((Layer(((mpq(w),),), (mpq(b),)), Layer(((mpq(v),),), (mpq(c),))), "relu")


def test_xor_zero_one_width_two_separates():
    """Width 2 separates XOR, so the 0-1 optimum is 0.

    f(x) = relu(x1 - x2) + relu(x2 - x1) - 1/2 is -1/2 on (0, 0) and (1, 1)
    and +1/2 on (1, 0) and (0, 1); every parameter lies in [-1, 1].
    """
    problem = _problem(XOR, 2, "zero_one")
    result = train(problem, time_limit=60)
    assert result.solution.loss == 0
    assert result.status == "optimal"


def test_xor_zero_one_width_one():
    """Width 1 classifies 3 of the 4 XOR points at best: 0-1 optimum 1.

    With v > 0, f = v relu(z) + c is positive exactly where z > -c / v (or
    everywhere, or nowhere), an open half-plane; with v < 0 it is positive
    where z < c / |v|, again a half-plane. No half-plane contains (1, 0) and
    (0, 1) but neither (0, 0) nor (1, 1), because the midpoints of both pairs
    are (1/2, 1/2). The half-plane x1 > x2 + 1/2 gets 3 right: f = relu(x1 - x2) - 1/2.
    A nonzero 0-1 result from the MIP is reported as unproven (see ermsolve.classification).
    """
    problem = _problem(XOR, 1, "zero_one")
    result = train(problem, time_limit=60)
    assert result.solution.loss == 1
    assert result.status == "unproven"
    assert "margin" in result.basis

    enumerated = solve_by_enumeration(problem)
    assert enumerated.solution.loss == 1
    assert enumerated.status == "optimal"


@pytest.mark.parametrize(
    "width, box, expected",
    [(1, "1/2", Fraction(3, 2)), (2, "1/2", Fraction(1)), (1, "1/4", Fraction(15, 8)), (1, "1", Fraction(0))],
)
def test_hinge_box_limits_margin(width, box, expected):
    """Points x = -1, +1 with labels -1, +1: the hinge optimum is 2 - 2 K R^2 when K R <= 1.

    In the normalised form each unit adds s_k relu(w'_k x + b'_k) with
    |w'_k| <= R^2. ReLU is 1-Lipschitz, so each unit changes f by at most
    2 R^2 between x = -1 and x = 1: D = f(1) - f(-1) <= 2 K R^2. The hinge
    loss is at least (1 + f(-1)) + (1 - f(1)) = 2 - D >= 2 - 2 K R^2.
    Equality: every unit relu(R^2 x + R^2) and c = -K R^2 give f(-1) = -K R^2
    and f(1) = K R^2, both inside [-1, 1], and |c| = K R^2 <= R when K R <= 1.
    So K = 1, R = 1/2: 3/2; K = 2, R = 1/2: 1; K = 1, R = 1/4: 15/8; K = 1, R = 1: 0.
    """
    problem = _problem(LINE, width, "hinge", box)
    result = train(problem, time_limit=60)
    assert result.solution.loss == expected
    assert result.status == "optimal"


def test_zero_one_ignores_box():
    """The 0-1 loss does not depend on R: with R = 1/10 the two line points are still separated.

    f = relu(x/100 + 1/100) - 1/100 in normalised form is -1/100 at x = -1
    and +1/100 at x = 1, so the 0-1 optimum is 0 for every box, while the
    hinge optimum is 2 - 2 (1/10)^2 = 99/50 by the bound of the test above.
    """
    zero_one = train(_problem(LINE, 1, "zero_one", "1/10"), time_limit=60)
    assert zero_one.solution.loss == 0
    hinge = train(_problem(LINE, 1, "hinge", "1/10"), time_limit=60)
    assert hinge.solution.loss == Fraction(99, 50)


def test_tie_counts_as_error():
    """f(x) = 0 on a point is an error for zero_one and costs 1 for hinge.

    f = relu(x) is 0 at x = 0 and 1 at x = 1: both points at 0 are errors,
    so the 0-1 loss is 2 and the hinge loss is 1 + 1 + 0 = 2. The zero
    network is 0 everywhere: 0-1 loss 3 and hinge loss 3.
    """
    X = [(mpq(x),) for x, _ in TIE]
    y = [mpq(label) for _, label in TIE]
    ramp = _one_unit(1, 0, 1, 0)
    assert exact_loss(ramp, X, y, "zero_one") == 2
    assert exact_loss(ramp, X, y, "hinge") == 2
    zero = _one_unit(0, 0, 0, 0)
    assert exact_loss(zero, X, y, "zero_one") == 3
    assert exact_loss(zero, X, y, "hinge") == 3


def test_tie_instance_optimum():
    """Two points at x = 0 with opposite labels: one of them is always an error, so the optimum is 1.

    Both share f(0). f(0) > 0 or f(0) < 0 gets one right and f(0) = 0 none.
    f = relu(x) - 1/2 has f(0) = -1/2 and f(1) = 1/2, which gets the other two right.
    """
    problem = _problem(TIE, 1, "zero_one")
    assert train(problem, time_limit=60).solution.loss == 1
    assert solve_by_enumeration(problem).solution.loss == 1


@pytest.mark.parametrize(
    "rows, width, loss, box",
    [
        (XOR, 1, "hinge", 1),
        (XOR, 2, "hinge", 1),
        (XOR, 2, "zero_one", 1),
        (TIE, 1, "hinge", 1),
        (LINE, 2, "hinge", "1/3"),
        (FIVE, 1, "hinge", "1/2"),
        (FIVE, 1, "zero_one", 1),
        (FIVE, 2, "zero_one", 1),
    ],
)
def test_mip_matches_enumeration(rows, width, loss, box):
    """The MIP's exact loss equals the enumeration oracle's exact optimum."""
    problem = _problem(rows, width, loss, box)
    mip = train(problem, time_limit=60)
    enumerated = solve_by_enumeration(problem)
    assert enumerated.status == "optimal"
    assert mip.solution.loss == enumerated.solution.loss


def test_fast_evaluation_matches_exact():
    """The integer evaluation used by verify agrees with the mpq forward pass, ties included."""
    hidden = Layer(((mpq(1, 3), mpq(-2)), (mpq(1), mpq(1, 2))), (mpq(0), mpq(-1, 2)))
    output = Layer(((mpq(1), mpq(-3, 2)),), (mpq(1, 7),))
    network = Network((hidden, output), "relu")
    X = [(mpq(0), mpq(0)), (mpq(1), mpq(1, 5)), (mpq(-1), mpq(2)), (mpq(3, 7), mpq(-1))]
    Y = [(mpq(-1),), (mpq(1),), (mpq(1),), (mpq(-1),)]
    for loss in ("hinge", "zero_one"):
        fast = evaluate_shallow(network, X, Y, loss)
        assert fast.loss == exact_loss_multi(network, X, Y, loss)
        assert fast.loss == exact_loss(network, X, [row[0] for row in Y], loss)

    # f = 0 at x = 0 for a network with zero output: every point is an error.
    zero = Network((hidden, Layer(((mpq(0), mpq(0)),), (mpq(0),))), "relu")
    assert evaluate_shallow(zero, X, Y, "zero_one").loss == 4


@pytest.mark.parametrize("label", ["0", "2", "1/2"])
def test_bad_label_rejected(write_csv, capsys, label):
    path = write_csv(f"x,y\n0,-1\n1,{label}\n")
    for loss in ("hinge", "zero_one"):
        assert main(["solve", str(path), "--loss", loss]) == 2
        error = capsys.readouterr().err
        assert "row 3" in error
        assert f"target {label}" in error


def test_bad_label_rejected_in_library():
    instance = load_instance(INSTANCES / "xor.csv")
    with pytest.raises(InputError, match="labels -1 or \\+1"):
        TrainingProblem(instance, Architecture(hidden=(2,), loss="hinge"))


def test_fixed_point_domain_rejected(capsys):
    code = main(["solve", str(INSTANCES / "xor_labels.csv"), "--loss", "hinge",
                 "--domain", "fixed", "--frac-bits", "2"])
    assert code == 2
    assert "box domain" in capsys.readouterr().err
    with pytest.raises(UsageError):
        TrainingProblem(load_instance(INSTANCES / "xor_labels.csv"),
                        Architecture(hidden=(2,), loss="zero_one", domain="fixed", frac_bits=2))


@pytest.mark.parametrize("loss, expected", [("hinge", "2"), ("zero_one", "0")])
def test_round_trip_solve_verify(tmp_path, capsys, loss, expected):
    """Solve XOR with labels at width 2, write the certificate and verify it; then tamper with the loss.

    The hinge optimum 2 at box 1 agrees with the enumeration oracle (see
    `test_mip_matches_enumeration`); the 0-1 optimum 0 is derived above.
    """
    instance = str(INSTANCES / "xor_labels.csv")
    cert = tmp_path / "cert.json"
    arguments = ["solve", instance, "--model", str(MODELS / "relu2_hinge.toml"), "--loss", loss,
                 "--out", str(cert), "--json"]
    assert main(arguments) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["loss"] == f"{expected}/1"
    assert main(["verify", str(cert), instance]) == 0
    capsys.readouterr()

    certificate = read_certificate(cert)
    assert certificate["loss"]["type"] == loss
    check = verify_certificate(certificate, load_instance(instance))
    assert check.valid, check.problems
    assert check.loss == int(expected)

    certificate["loss"]["value"] = "1/1"
    write_certificate(certificate, cert)
    assert main(["verify", str(cert), instance]) == 1
    assert "loss differs" in capsys.readouterr().out
