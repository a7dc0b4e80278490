"""The integer-array forward pass and the direct bit-length bound agree with the exact reference."""

import random
import subprocess
import sys
from fractions import Fraction

from ermsolve.architecture import Architecture
from ermsolve.bitbound import _data_row_norms, _data_row_norms_numpy, _linear_vertex_bound, vertex_bound
from ermsolve.encodings import TrainingProblem
from ermsolve.exact_eval import exact_loss_multi
from ermsolve.fast_eval import evaluate_shallow
from ermsolve.fixed_pattern import build_fixed_pattern_program
from ermsolve.instance import Instance
from ermsolve.network import Layer, Network

from conftest import INSTANCES, ROOT


def _random_rational(rng, big=False):
    numerator = rng.randint(-(2**70), 2**70) if big else rng.randint(-9, 9)
    return Fraction(numerator, rng.choice([1, 2, 3, 7, 10, 2**40 if big else 5]))


def _random_case(rng, big=False):
    n, d, width, outputs = rng.randint(1, 7), rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 2)
    X = tuple(tuple(_random_rational(rng, big) for _ in range(d)) for _ in range(n))
    Y = tuple(tuple(_random_rational(rng, big) for _ in range(outputs)) for _ in range(n))
    hidden = Layer(tuple(tuple(_random_rational(rng, big) for _ in range(d)) for _ in range(width)),
                   tuple(_random_rational(rng, big) for _ in range(width)))
    output = Layer(tuple(tuple(_random_rational(rng, big) for _ in range(width)) for _ in range(outputs)),
                   tuple(_random_rational(rng, big) for _ in range(outputs)))
    return Network((hidden, output)), X, Y


def test_fast_loss_equals_exact_loss():
    rng = random.Random(7)
    for trial in range(300):
        network, X, Y = _random_case(rng, big=trial % 3 == 0)
        for loss in ("l1", "l2", "linf"):
            fast = evaluate_shallow(network, X, Y, loss)
            assert fast.loss == exact_loss_multi(network, X, Y, loss)


def test_fast_signs_equal_pre_activations():
    rng = random.Random(8)
    for _ in range(100):
        network, X, Y = _random_case(rng)
        signs = evaluate_shallow(network, X, Y, "l1").signs
        for i, x in enumerate(X):
            for k, z in enumerate(network.pre_activations(x)[0]):
                assert signs[i][k] == (z > 0) - (z < 0)


def test_direct_bound_equals_program_bound():
    rng = random.Random(9)
    for _ in range(150):
        n, d, width = rng.randint(1, 6), rng.randint(1, 3), rng.randint(1, 3)
        X = tuple(tuple(_random_rational(rng) for _ in range(d)) for _ in range(n))
        y = tuple(_random_rational(rng) for _ in range(n))
        instance = Instance("random", tuple(f"x{j}" for j in range(d)), X, y)
        pattern = [[rng.randint(0, 1) for _ in range(width)] for _ in range(n)]
        signs = [rng.choice([1, -1]) for _ in range(width)]
        assert sorted(_data_row_norms(instance, pattern, width)[0]) == sorted(
            _data_row_norms_numpy(instance, pattern, width)[0])
        for loss in ("l1", "linf"):
            box = Fraction(rng.randint(1, 5), rng.choice([1, 2, 3]))
            problem = TrainingProblem(instance, Architecture(hidden=(width,), loss=loss, box=box))
            program = build_fixed_pattern_program(problem, signs, pattern)
            assert _linear_vertex_bound(problem, pattern) == vertex_bound(program)


def test_verify_loads_no_solver(tmp_path):
    """The CLI's verify path must not even import a solver package."""
    cert = tmp_path / "cert.json"
    instance = str(INSTANCES / "xor.csv")
    script = (
        "import sys\n"
        "from ermsolve.cli import main\n"
        f"main(['solve', {instance!r}, '--out', {str(cert)!r}, '--json'])\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, cwd=ROOT)
    check = (
        "import sys\n"
        "from ermsolve.cli import main\n"
        f"code = main(['verify', {str(cert)!r}, {instance!r}])\n"
        "loaded = [m for m in ('pyscipopt', 'ortools', 'highspy') if m in sys.modules]\n"
        "print(loaded)\n"
        "sys.exit(code)\n"
    )
    completed = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().endswith("[]")
