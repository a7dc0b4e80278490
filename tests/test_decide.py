"""The decision version: YES, NO and UNKNOWN with the right basis and exit code."""

import json
from fractions import Fraction

import pytest

from ermsolve.architecture import Architecture
from ermsolve.certificate import build_certificate, verify_certificate
from ermsolve.cli import main
from ermsolve.decide import decide
from ermsolve.encodings import TrainingProblem
from ermsolve.instance import Instance

from conftest import INSTANCES


def _problem(rows, width=1, loss="l1", box=1):
    instance = Instance(
        "tiny",
        tuple(f"x{j}" for j in range(len(rows[0]) - 1)),
        tuple(tuple(Fraction(v) for v in row[:-1]) for row in rows),
        tuple(Fraction(row[-1]) for row in rows),
    )
    return TrainingProblem(instance, Architecture(hidden=(width,), loss=loss, box=Fraction(box)))


# Points (0, 0) and (4, 4), one unit, box 1/2: the optimum is 3 (L1), 45/8 (L2), 9/4 (Linf).
# Derivation: after normalisation |w'|, |b'| <= 1/4 and |c| <= 1/2, so the rise f(4) - f(0)
# is at most 1 and f(0) is at most 3/4; see the slope test in test_solve.py.
SLOPE = [(0, 0), (4, 4)]
SLOPE_OPTIMA = {"l1": Fraction(3), "l2": Fraction(45, 8), "linf": Fraction(9, 4)}


@pytest.mark.parametrize("loss", ["l1", "l2", "linf"])
def test_threshold_above_at_below(loss):
    optimum = SLOPE_OPTIMA[loss]
    problem = _problem(SLOPE, loss=loss, box=Fraction(1, 2))

    above = decide(problem, optimum + Fraction(1, 100))
    at = decide(problem, optimum)
    below = decide(problem, optimum - Fraction(1, 10**9))

    assert above.answer == "YES"
    assert above.best_loss <= optimum + Fraction(1, 100)
    assert at.answer == "YES"
    assert at.best_loss == optimum
    assert below.answer == "NO"
    # 1e-9 is far inside SCIP's tolerance, so only the exact enumeration can prove NO here.
    assert below.basis == "exact"


def test_clear_no_is_floating_point_without_upgrade():
    problem = _problem(SLOPE, box=Fraction(1, 2))
    decision = decide(problem, Fraction(2), exact_no=False)
    assert decision.answer == "NO"
    assert decision.basis == "floating-point"


def test_clear_no_upgraded_to_exact():
    problem = _problem(SLOPE, box=Fraction(1, 2))
    decision = decide(problem, Fraction(2))
    assert decision.answer == "NO"
    assert decision.basis == "exact"


def test_enumerate_solver_decides_exactly():
    problem = _problem([(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0)], width=2)
    assert decide(problem, Fraction(0), solver="enumerate").answer == "YES"
    problem = _problem(SLOPE, box=Fraction(1, 2))
    decision = decide(problem, Fraction(29, 10), solver="enumerate")
    assert decision.answer == "NO"
    assert decision.basis == "exact"


def test_negative_threshold_is_exact_no():
    decision = decide(_problem(SLOPE), Fraction(-1, 3))
    assert decision.answer == "NO"
    assert decision.basis == "exact"


def test_yes_certificate_verifies():
    problem = _problem(SLOPE, box=Fraction(1, 2))
    decision = decide(problem, Fraction(3))
    certificate = build_certificate(problem.instance, problem.architecture, decision.result)
    assert verify_certificate(certificate, problem.instance).valid
    assert Fraction(certificate["loss"]["value"]) <= 3


def test_max_bits_blocks_yes():
    problem = _problem(SLOPE, box=Fraction(1, 2))
    decision = decide(problem, Fraction(3), max_bits=1)
    assert decision.answer == "UNKNOWN"
    assert "--max-bits 1" in decision.reason


def test_cli_exit_codes(write_csv, capsys):
    path = write_csv("x,y\n0,0\n4,4\n")
    base = ["decide", str(path), "--width", "1", "--box", "1/2"]
    assert main([*base, "--threshold", "3"]) == 0
    assert main([*base, "--threshold", "2.999999999"]) == 10
    assert main([*base, "--threshold", "1e-3", "--json"]) == 10
    capsys.readouterr()
    assert main([*base, "--threshold", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["answer"] == "YES"
    assert report["threshold"] == "3/1"
    assert report["loss"] == "3/1"


def test_cli_time_limit_unknown(capsys):
    """A 0.01 s limit on a 30-point instance with 3 units cannot settle a threshold near 0."""
    code = main(["decide", str(INSTANCES / "iris_sepal_30.csv"), "--width", "3", "--threshold", "1e-6",
                 "--time-limit", "0.01", "--no-exact-upgrade", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 20
    assert report["answer"] == "UNKNOWN"


@pytest.mark.parametrize("threshold", ["nan", "abc", "1/0", ""])
def test_cli_bad_threshold(write_csv, capsys, threshold):
    path = write_csv("x,y\n0,0\n4,4\n")
    with pytest.raises(SystemExit) as caught:
        main(["decide", str(path), "--threshold", threshold])
    assert caught.value.code == 2
