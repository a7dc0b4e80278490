"""min-bits and the proof basis of decide on the fixed-point domain."""

import json
from fractions import Fraction

import pytest

from ermsolve.architecture import Architecture
from ermsolve.cli import main
from ermsolve.decide import decide
from ermsolve.encodings import TrainingProblem
from ermsolve.instance import Instance
from ermsolve.minbits import min_bits


def _single_point(domain="box", frac_bits=None):
    """One point x = 0 with target 3/8, one unit, box 1.

    The output there is f(0) = v relu(b) + c. With p fractional bits, v, b and
    c are multiples of 2^-p, so f(0) is a multiple of 2^-2p:
    p = 0: f(0) is an integer, the nearest to 3/8 is 0, loss 3/8;
    p = 1: f(0) is a multiple of 1/4, the nearest are 1/4 and 1/2, loss 1/8;
    p = 2: c = 1/4, v = 1/2, b = 1/4 give 1/4 + 1/8 = 3/8, loss 0.
    (L1, L2 and Linf coincide in their minimiser on one point; L1 is used.)
    """
    instance = Instance("one", ("x",), ((Fraction(0),),), (Fraction(3, 8),))
    return TrainingProblem(instance, Architecture(hidden=(1,), domain=domain, frac_bits=frac_bits))


@pytest.mark.parametrize(
    "threshold, expected",
    [(Fraction(0), 2), (Fraction(1, 16), 2), (Fraction(1, 8), 1), (Fraction(3, 8), 0), (Fraction(1), 0)],
)
def test_min_bits_single_point(threshold, expected):
    result = min_bits(_single_point(), threshold, max_frac_bits=4)
    assert result.frac_bits == expected
    assert [step.answer for step in result.steps] == ["NO"] * expected + ["YES"]
    assert result.box_loss == 0


def test_min_bits_step_losses():
    result = min_bits(_single_point(), Fraction(0), max_frac_bits=4)
    assert [step.loss for step in result.steps] == [Fraction(3, 8), Fraction(1, 8), Fraction(0)]
    assert all(step.basis == "exact" for step in result.steps[:-1])


def test_min_bits_stops_when_box_optimum_too_high():
    """Two targets 0 and 1 at the same x: every network loses 1 (L1), so no grid reaches 1/2."""
    instance = Instance("pair", ("x",), ((Fraction(0),), (Fraction(0),)), (Fraction(0), Fraction(1)))
    problem = TrainingProblem(instance, Architecture(hidden=(1,)))
    result = min_bits(problem, Fraction(1, 2))
    assert result.frac_bits is None
    assert result.steps == []
    assert "box-domain optimum 1/1" in result.reason


@pytest.mark.parametrize("solver, basis", [("cpsat", "exact"), ("scip", "floating-point")])
def test_decide_fixed_point_basis(solver, basis):
    """p = 1 reaches 1/8 at best, so threshold 1/10 is NO: exact from CP-SAT, floating-point from SCIP."""
    problem = _single_point("fixed", 1)
    assert decide(problem, Fraction(1, 8), solver=solver).answer == "YES"
    decision = decide(problem, Fraction(1, 10), solver=solver)
    assert decision.answer == "NO"
    assert decision.basis == basis


def test_cli_min_bits_json(write_csv, capsys):
    path = write_csv("x,y\n0,3/8\n")
    code = main(["min-bits", str(path), "--width", "1", "--threshold", "0", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["frac_bits"] == 2
    assert [step["loss"] for step in report["steps"]] == ["3/8", "1/8", "0/1"]
