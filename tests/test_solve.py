"""End to end: solve to proven optimality, recover exact parameters, verify the certificate.

Every expected optimum below is derived in its test's docstring.
"""

import json
import subprocess
import sys
from fractions import Fraction

import pytest

from ermsolve.architecture import Architecture
from ermsolve.certificate import build_certificate, verify_certificate
from ermsolve.cli import main
from ermsolve.encodings import TrainingProblem
from ermsolve.instance import Instance, load_instance
from ermsolve.network import exact_loss
from ermsolve.rational import parse_rational
from ermsolve.train import train

from conftest import INSTANCES, MODELS, ROOT


def _instance(rows, name="tiny"):
    d = len(rows[0]) - 1
    return Instance(
        name,
        tuple(f"x{j}" for j in range(d)),
        tuple(tuple(Fraction(v) for v in row[:-1]) for row in rows),
        tuple(Fraction(row[-1]) for row in rows),
    )


def _solve(rows, width, loss, box=1):
    instance = _instance(rows)
    problem = TrainingProblem(instance, Architecture(hidden=(width,), loss=loss, box=Fraction(box)))
    result = train(problem, time_limit=60)
    return problem, result


def test_xor_two_units_l1_zero():
    """XOR: f = relu(x1 - x2) + relu(x2 - x1) fits all four points, so the L1 optimum is 0."""
    problem, result = _solve([(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0)], 2, "l1")
    assert result.status == "optimal"
    assert result.solution.loss == 0
    assert "exact" in result.basis


@pytest.mark.parametrize("loss, expected", [("l1", Fraction(1)), ("l2", Fraction(1, 2)), ("linf", Fraction(1, 2))])
def test_repeated_point_optimum(loss, expected):
    """Two points at x = 0 with targets 0 and 1: every network outputs one value v there.

    L1 is |v| + |v - 1| >= 1 (equality for v in [0, 1]); L2 is v^2 + (v - 1)^2,
    least at v = 1/2 with value 1/2; Linf is max(|v|, |v - 1|), least at v = 1/2
    with value 1/2. The box (R = 1) admits v = 1/2 through the output bias.
    """
    _, result = _solve([(0, 0), (0, 1)], 1, loss)
    assert result.status == "optimal"
    assert result.solution.loss == expected


@pytest.mark.parametrize(
    "loss, expected",
    [("l1", Fraction(3)), ("l2", Fraction(45, 8)), ("linf", Fraction(9, 4))],
)
def test_box_limits_slope(loss, expected):
    """Points (0, 0) and (4, 4), one unit, box R = 1/2.

    After normalisation |w'|, |b'| <= R^2 = 1/4 and |c| <= 1/2. The rise
    f(4) - f(0) = s (relu(4 w' + b') - relu(b')) is at most 4 w' <= 1, reached
    with s = +1, w' = 1/4, b' >= 0. The value a = f(0) = c + relu(b') is at
    most 1/2 + 1/4 = 3/4, and a = 3/4 still allows the rise 1 (b' = 1/4). With
    rise 1 the error at x = 4 is 3 - a, so:
    L1: |a| + |3 - a| = 3 for any a in [0, 3/4];
    L2: a^2 + (3 - a)^2 decreases up to a = 3/2, so a = 3/4 gives 9/16 + 81/16 = 45/8;
    Linf: max(|a|, 3 - a) is 3 - a there, so a = 3/4 gives 9/4.
    A smaller rise only increases every error at x = 4.
    """
    _, result = _solve([(0, 0), (4, 4)], 1, loss, box=Fraction(1, 2))
    assert result.status == "optimal"
    assert result.solution.loss == expected
    assert float(result.solution.loss) == pytest.approx(result.solver_objective, abs=1e-6)


def test_exact_loss_not_its_float():
    """The exact optimum 45/8 of the slope case is dyadic; the L1 iris optimum is not, and must stay exact."""
    instance = load_instance(INSTANCES / "iris_petal_12.csv")
    problem = TrainingProblem(instance, Architecture(hidden=(2,), loss="l1"))
    result = train(problem, time_limit=60)
    loss = result.solution.loss
    assert result.status == "optimal"
    assert exact_loss(result.solution.network, instance.X, instance.y, "l1") == loss
    assert loss.denominator > 1


def _certificate(instance_path, model="relu2_l1.toml"):
    from ermsolve.architecture import load_architecture

    instance = load_instance(instance_path)
    architecture = load_architecture(MODELS / model)
    result = train(TrainingProblem(instance, architecture), time_limit=60)
    return instance, build_certificate(instance, architecture, result)


@pytest.fixture(scope="module")
def iris_certificate():
    return _certificate(INSTANCES / "iris_petal_12.csv")


def test_certificate_verifies(iris_certificate):
    instance, certificate = iris_certificate
    check = verify_certificate(certificate, instance)
    assert check.problems == []
    assert check.loss == parse_rational(certificate["loss"]["value"])
    assert certificate["optimality"]["status"] == "optimal"


def _tampered(certificate, change):
    copy = json.loads(json.dumps(certificate))
    change(copy)
    return copy


def _bump_weight(cert):
    value = parse_rational(cert["network"]["layers"][0]["W"][0][0]) + Fraction(1, 1000)
    cert["network"]["layers"][0]["W"][0][0] = f"{value.numerator}/{value.denominator}"


def _bump_loss(cert):
    value = parse_rational(cert["loss"]["value"]) - Fraction(1, 10**9)
    cert["loss"]["value"] = f"{value.numerator}/{value.denominator}"


def _flip_pattern(cert):
    row = cert["activation_pattern"][0]
    cert["activation_pattern"][0] = "".join("0" if c == "1" else "1" for c in row)


def _leave_box(cert):
    cert["network"]["layers"][1]["b"][0] = "3/1"


def _wrong_bits(cert):
    cert["bit_lengths"]["max"] += 1


@pytest.mark.parametrize(
    "change, fragment",
    [
        (_bump_weight, "loss differs"),
        (_bump_loss, "loss differs"),
        (_flip_pattern, "activation pattern disagrees"),
        (_leave_box, "outside the box"),
        (_wrong_bits, "max bit-length differs"),
    ],
)
def test_tampering_detected(iris_certificate, change, fragment):
    instance, certificate = iris_certificate
    check = verify_certificate(_tampered(certificate, change), instance)
    assert not check.valid
    assert any(fragment in problem for problem in check.problems)


def test_other_data_rejected(iris_certificate, write_csv):
    _, certificate = iris_certificate
    text = (INSTANCES / "iris_petal_12.csv").read_text().splitlines()
    cells = text[1].split(",")
    cells[-1] = str(parse_rational(cells[-1]) + 1)
    other = load_instance(write_csv("\n".join([text[0], ",".join(cells), *text[2:]]) + "\n"))
    check = verify_certificate(certificate, other)
    assert not check.valid
    assert "fingerprint" in check.problems[0]


def test_cli_solve_verify_round_trip(tmp_path, capsys):
    cert = tmp_path / "cert.json"
    instance = str(INSTANCES / "iris_petal_12.csv")
    code = main(["solve", instance, "--model", str(MODELS / "relu2_l1.toml"), "--out", str(cert), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["status"] == "optimal"
    assert report["certificate"] == str(cert)
    assert report["gap"] == 0.0
    for key in ("loss", "dual_bound", "time_s", "max_bits"):
        assert report[key] is not None

    assert main(["verify", str(cert), instance]) == 0
    assert capsys.readouterr().out.startswith("valid")

    data = json.loads(cert.read_text())
    _bump_weight(data)
    cert.write_text(json.dumps(data))
    assert main(["verify", str(cert), instance, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["valid"] is False


def test_verify_imports_no_solver(tmp_path, iris_certificate):
    """Run verify in a fresh interpreter where importing any solver package fails."""
    _, certificate = iris_certificate
    cert = tmp_path / "cert.json"
    cert.write_text(json.dumps(certificate))
    script = (
        "import sys\n"
        "for name in ('pyscipopt', 'ortools', 'highspy'):\n"
        "    sys.modules[name] = None\n"
        "from ermsolve.cli import main\n"
        f"sys.exit(main(['verify', {str(cert)!r}, {str(INSTANCES / 'iris_petal_12.csv')!r}]))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("valid")


def test_verify_bad_certificate_file(tmp_path, capsys):
    cert = tmp_path / "cert.json"
    cert.write_text("{not json")
    assert main(["verify", str(cert), str(INSTANCES / "iris_petal_12.csv")]) == 2
    assert "not a JSON certificate" in capsys.readouterr().err


def test_certificate_lists_bit_bounds(iris_certificate):
    _, certificate = iris_certificate
    bits = certificate["bit_lengths"]
    assert set(bits["bounds"]) == set(bits["parameters"])
    for name, value in bits["parameters"].items():
        assert value <= bits["bounds"][name]
    assert 0 < bits["max_ratio"] <= 1


def test_parameter_beyond_bound_rejected(iris_certificate):
    """Replace the output bias by a nearby rational with a huge denominator, and restate loss and bits.

    Only the bit-length bound can catch this: the loss and bit-lengths are
    consistent again, the box and pattern still hold.
    """
    from ermsolve.network import Layer, Network
    from ermsolve.certificate import network_from_json, network_to_json
    from ermsolve.rational import bit_length, format_rational

    instance, certificate = iris_certificate
    tampered = json.loads(json.dumps(certificate))
    network = network_from_json(tampered["network"])
    bias = network.layers[1].b[0] + Fraction(1, 2**400 + 1)
    network = Network((network.layers[0], Layer(network.layers[1].W, (bias,))), "relu")
    tampered["network"] = network_to_json(network)
    tampered["loss"]["value"] = format_rational(exact_loss(network, instance.X, instance.y, "l1"))
    bits = {name: bit_length(value) for name, value in network.parameters()}
    tampered["bit_lengths"]["parameters"] = bits
    tampered["bit_lengths"]["max"] = max(bits.values())

    check = verify_certificate(tampered, instance)
    assert len(check.problems) == 1
    assert "above the theoretical bound for b2[0]" in check.problems[0]


def test_gd_start_same_optimum():
    """A gradient-descent MIP start changes the search, not the exact optimum."""
    instance = load_instance(INSTANCES / "iris_petal_12.csv")
    problem = TrainingProblem(instance, Architecture(hidden=(2,), loss="l1"))
    plain = train(problem, time_limit=60)
    started = train(problem, time_limit=60, start="gd")
    assert started.status == "optimal"
    assert started.solution.loss == plain.solution.loss == Fraction(23173, 56035)


def test_unknown_start_rejected():
    from ermsolve.errors import UsageError

    problem = TrainingProblem(_instance([(0, 0), (1, 1)]), Architecture(hidden=(1,)))
    with pytest.raises(UsageError, match="valid starts: auto, none, gd"):
        train(problem, start="lbfgs")


def test_non_lowest_terms_rejected(iris_certificate):
    instance, certificate = iris_certificate
    tampered = json.loads(json.dumps(certificate))
    value = parse_rational(tampered["network"]["layers"][0]["W"][0][0])
    tampered["network"]["layers"][0]["W"][0][0] = f"{2 * value.numerator}/{2 * value.denominator}"
    check = verify_certificate(tampered, instance)
    assert not check.valid
    assert "not in lowest terms" in check.problems[0]


def test_wrong_loss_decimal_rejected(iris_certificate):
    instance, certificate = iris_certificate
    tampered = json.loads(json.dumps(certificate))
    tampered["loss"]["decimal"] = "0.1"
    check = verify_certificate(tampered, instance)
    assert any("loss decimal" in problem for problem in check.problems)


@pytest.mark.parametrize("out", ["missing-folder/cert.json", "."])
def test_unwritable_out_exits_2_before_solving(tmp_path, capsys, out):
    target = str(tmp_path / out)
    code = main(["solve", str(INSTANCES / "xor.csv"), "--out", target, "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert json.loads(captured.out) == {"status": "error", "error": captured.err.strip().removeprefix("ermsolve: error: ")}
    assert "--out" in captured.err


def test_verify_states_unchecked_claim(tmp_path, capsys):
    cert = tmp_path / "cert.json"
    instance = str(INSTANCES / "xor.csv")
    assert main(["solve", instance, "--out", str(cert)]) == 0
    capsys.readouterr()
    assert main(["verify", str(cert), instance]) == 0
    assert "not re-checked: the optimality claim 'optimal'" in capsys.readouterr().out


@pytest.mark.parametrize("loss", ["l1", "l2", "linf"])
def test_fixed_pattern_proof_checks(loss):
    from ermsolve.architecture import load_architecture

    instance = load_instance(INSTANCES / "iris_petal_12.csv")
    architecture = load_architecture(MODELS / "relu2_l1.toml").with_overrides(loss=loss)
    result = train(TrainingProblem(instance, architecture), time_limit=60)
    certificate = build_certificate(instance, architecture, result)
    assert certificate["fixed_pattern_proof"]["multipliers"]["ub"]
    assert verify_certificate(certificate, instance).pattern_optimal is True


def test_fixed_pattern_proof_tampering(iris_certificate):
    instance, certificate = iris_certificate
    tampered = json.loads(json.dumps(certificate))
    multipliers = tampered["fixed_pattern_proof"]["multipliers"]["ub"]
    index = next(iter(multipliers))
    value = parse_rational(multipliers[index]) * 2
    multipliers[index] = f"{value.numerator}/{value.denominator}"
    check = verify_certificate(tampered, instance)
    assert check.pattern_optimal is False
    assert "fixed-pattern optimality proof fails" in check.problems[0]


def test_certificate_without_proof_still_verifies(iris_certificate):
    instance, certificate = iris_certificate
    tampered = json.loads(json.dumps(certificate))
    tampered["fixed_pattern_proof"] = None
    check = verify_certificate(tampered, instance)
    assert check.valid
    assert check.pattern_optimal is None
