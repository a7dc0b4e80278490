"""Bit-length growth: hand-computed cases, the derived bounds and the `bitgrowth` command."""

import argparse
import json
import subprocess
import sys
import random

import pytest
from gmpy2 import mpq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ermsolve.backprop import backpropagate
from ermsolve.bitgrowth import (
    Experiment,
    SweepSettings,
    bit_length_bounds,
    measure_exact_pass,
    random_rational,
    register_cli,
    run_sweep,
    split_activation_list,
)
from ermsolve.errors import InputError
from ermsolve.network import Layer, Network, parse_activation
from ermsolve.rational import bit_length


def chain_network(depth, activation):
    # Width 1, every weight 1 and every bias 0: h_l = act(h_{l-1}).
    weight_row, bias = (mpq(1),), (mpq(0),)
    return Network(tuple(Layer((weight_row,), bias) for _ in range(depth + 1)), activation)


# ---------------------------------------------------------------------------
# Hand-computed bit-lengths


def test_square_of_rational_bit_length():
    """One x^2 layer maps p/q (lowest terms) to p^2/q^2, still in lowest terms.

    An integer n with b bits lies in [2^(b-1), 2^b), so n^2 lies in
    [2^(2b-2), 2^(2b)) and has 2b - 1 or 2b bits. The bit-length beta of p/q
    therefore becomes 2 beta - 2, 2 beta - 1 or 2 beta. For 3/5: bits(3) = 2,
    bits(5) = 3, beta = 5, and 9/25 has 4 + 5 = 9 = 2 beta - 1.
    """
    network = chain_network(1, "square")
    result = backpropagate(network, [(mpq(3, 5),)], (mpq(0),), "l2")
    assert result.activations[0][0][0] == mpq(9, 25)
    assert bit_length(mpq(3, 5)) == 5
    assert bit_length(result.activations[0][0][0]) == 9

    for p in range(-40, 41):
        for q in range(1, 41):
            value = mpq(p, q)
            beta = bit_length(value)
            squared = bit_length(value * value)
            if p == 0:
                assert squared == 1
            else:
                assert 2 * beta - 2 <= squared <= 2 * beta


def test_square_chain_doubles_each_layer():
    # (3/5)^(2^L): 9/25 has 4 + 5 = 9 bits, 81/625 has 7 + 10 = 17 and
    # 6561/390625 has 13 + 19 = 32. ReLU leaves 3/5 (5 bits) unchanged.
    X, y = [(mpq(3, 5),)], (mpq(0),)
    square = backpropagate(chain_network(3, "square"), X, y, "l2")
    assert [bit_length(layer[0]) for layer in square.activations[0]] == [9, 17, 32]
    relu = backpropagate(chain_network(3, "relu"), X, y, "l2")
    assert [bit_length(layer[0]) for layer in relu.activations[0]] == [5, 5, 5]


def test_random_rational_is_b_bit():
    rng = random.Random(1)
    for bits in (1, 2, 5):
        for _ in range(200):
            value = random_rational(rng, bits)
            assert abs(value.numerator) < 2**bits
            assert 1 <= value.denominator < 2**bits
    assert {random_rational(rng, 1) for _ in range(100)} <= {mpq(-1), mpq(0), mpq(1)}


def test_experiment_networks_share_their_prefix():
    deep_first = Experiment(width=2, bits=4, seed=3, points=2)
    deep_first.network(5, "relu")
    shallow_first = Experiment(width=2, bits=4, seed=3, points=2)
    assert deep_first.network(3, "relu") == shallow_first.network(3, "relu")
    assert deep_first.network(3, "square").layers == deep_first.network(3, "relu").layers


# ---------------------------------------------------------------------------
# The derived bounds


def draw_network(data, activation, depth, width, bits, points):
    numerators = st.integers(-(2**bits) + 1, 2**bits - 1)
    denominators = st.integers(1, 2**bits - 1)

    def rational():
        return mpq(data.draw(numerators), data.draw(denominators))

    layers = []
    for fan_out in [width] * depth + [1]:
        W = tuple(tuple(rational() for _ in range(width)) for _ in range(fan_out))
        layers.append(Layer(W, tuple(rational() for _ in range(fan_out))))
    X = [tuple(rational() for _ in range(width)) for _ in range(points)]
    y = tuple(rational() for _ in range(points))
    return Network(tuple(layers), activation), X, y


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    activation=st.sampled_from(["relu", "leaky_relu:1/10", "leaky_relu:-3/2", "identity", "poly:1/3,2"]),
    loss=st.sampled_from(["l1", "l2", "linf"]),
    depth=st.integers(1, 6),
    width=st.integers(1, 3),
    bits=st.integers(1, 8),
    points=st.integers(1, 3),
)
def test_piecewise_linear_growth_within_linear_bound(data, activation, loss, depth, width, bits, points):
    network, X, y = draw_network(data, activation, depth, width, bits, points)
    _, measured = measure_exact_pass(network, X, y, loss)
    bounds = bit_length_bounds(parse_activation(activation), width, depth, bits, points, loss)
    assert measured["activation_bits"] <= bounds.activations
    assert measured["loss_bits"] <= bounds.loss
    assert measured["gradient_bits"] <= bounds.gradient


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    activation=st.sampled_from(["square", "cube", "poly:1,-1/2,3/4"]),
    loss=st.sampled_from(["l1", "l2", "linf"]),
    depth=st.integers(1, 3),
    width=st.integers(1, 2),
    bits=st.integers(1, 6),
)
def test_polynomial_growth_within_bound(data, activation, loss, depth, width, bits):
    network, X, y = draw_network(data, activation, depth, width, bits, points=2)
    _, measured = measure_exact_pass(network, X, y, loss)
    bounds = bit_length_bounds(parse_activation(activation), width, depth, bits, 2, loss)
    assert measured["activation_bits"] <= bounds.activations
    assert measured["loss_bits"] <= bounds.loss
    assert measured["gradient_bits"] <= bounds.gradient


@pytest.mark.parametrize("activation", ["relu", "leaky_relu:1/10", "identity"])
def test_piecewise_linear_bound_is_linear_in_depth(activation):
    bounds = [bit_length_bounds(parse_activation(activation), 3, depth, 8, 4, "l2") for depth in range(1, 12)]
    for field in ("activations", "loss", "gradient"):
        steps = {getattr(b, field) - getattr(a, field) for a, b in zip(bounds[1:], bounds[2:])}
        assert len(steps) == 1, field


def test_relu_activation_bound_closed_form():
    # ReLU, width K = input dimension, B bits (see docs/bit-growth.md):
    # 2 + (2K + 1) B + L ((2K^2 + 2K + 1) B + ceil(log2(K + 1))).
    relu = parse_activation("relu")
    for K, B in ((1, 1), (3, 8), (4, 16)):
        ceil_log = (K).bit_length()
        for L in range(1, 8):
            expected = 2 + (2 * K + 1) * B + L * ((2 * K * K + 2 * K + 1) * B + ceil_log)
            assert bit_length_bounds(relu, K, L, B, 1, "l2").activations == expected


def test_square_bound_at_least_doubles():
    square = parse_activation("square")
    bounds = [bit_length_bounds(square, 3, depth, 8, 4, "l2").activations for depth in range(1, 12)]
    for smaller, larger in zip(bounds, bounds[1:]):
        assert larger >= 2 * smaller - 2


def test_square_measured_bits_double_relu_grow_slowly():
    experiment = Experiment(width=3, bits=8, seed=0, points=2)
    square, relu = [], []
    for depth in range(1, 7):
        square.append(measure_exact_pass(experiment.network(depth, "square"), experiment.X, experiment.y, "l2")[1])
        relu.append(measure_exact_pass(experiment.network(depth, "relu"), experiment.X, experiment.y, "l2")[1])
    for before, after in zip(square, square[1:]):
        assert after["activation_bits"] >= 1.8 * before["activation_bits"]
    relu_bound = bit_length_bounds(parse_activation("relu"), 3, 6, 8, 2, "l2")
    assert max(r["activation_bits"] for r in relu) <= relu_bound.activations
    assert relu[-1]["activation_bits"] < square[2]["activation_bits"]


# ---------------------------------------------------------------------------
# Sweep and guards


def test_sweep_stops_at_bit_limit():
    runs = run_sweep(SweepSettings(depth=12, width=2, activations=("relu", "square"), bits=4, points=2,
                                   max_bits=5000))
    relu, square = runs
    assert relu.stop_reason is None
    assert [r.depth for r in relu.records] == list(range(1, 13))
    assert square.stopped_before_depth is not None
    assert "--max-bits 5000" in square.stop_reason
    # The sweep stops before a depth is estimated to pass the limit, or right after one did.
    assert all(r.max_bits <= 5000 for r in square.records[:-1])


def test_sweep_stops_at_time_limit():
    runs = run_sweep(SweepSettings(depth=40, width=2, activations=("square",), bits=4, points=2,
                                   time_limit=0.05))
    (square,) = runs
    assert square.stopped_before_depth is not None
    assert "--time-limit" in square.stop_reason


def test_sign_of_matches_exact_gradient():
    settings = SweepSettings(depth=3, width=2, activations=("relu", "square"), bits=6, points=3,
                             sign_of="W2[1][0]")
    runs = run_sweep(settings)
    experiment = Experiment(2, 6, 0, 3)
    for run in runs:
        # W2 has one row at depth 1 (the output layer), so W2[1][0] exists from depth 2.
        assert run.records[0].sign is None
        for record in run.records[1:]:
            network = experiment.network(record.depth, run.activation)
            exact = backpropagate(network, experiment.X, experiment.y, "l2").gradient["W2[1][0]"]
            assert record.sign.sign == (exact > 0) - (exact < 0)
            assert record.sign.exact_bits == bit_length(exact)
            # A unit that ReLU switches off gives an exact 0, which rounding reproduces.
            assert record.sign.sufficient_precision is not None


# ---------------------------------------------------------------------------
# Command line


def run_command(arguments, tmp_path):
    parser = argparse.ArgumentParser(prog="ermsolve")
    subparsers = parser.add_subparsers()
    register_cli(subparsers)
    args = parser.parse_args(["bitgrowth", "--out", str(tmp_path / "out"), *arguments])
    return args.handler(args)


def test_cli_writes_table_json_and_plot(tmp_path, capsys):
    code = run_command(["--depth", "3", "--width", "2", "--bits", "4", "--activation", "relu",
                        "--activation", "square,poly:1,0,1/2", "--sign-of", "b1[0]"], tmp_path)
    output = capsys.readouterr().out
    assert code == 0
    assert "relu: completed depths 1 to 3" in output
    assert "poly:1,0,1/2" in output
    assert "sign of dL/db1[0]" in output

    document = json.loads((tmp_path / "out" / "bitgrowth.json").read_text())
    assert [run["activation"] for run in document["runs"]] == ["relu", "square", "poly:1,0,1/2"]
    assert [d["depth"] for d in document["runs"][1]["depths"]] == [1, 2, 3]
    assert document["runs"][0]["depths"][0]["sign"]["parameter"] == "b1[0]"
    assert (tmp_path / "out" / "bitgrowth.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_json_output(tmp_path, capsys):
    code = run_command(["--depth", "2", "--width", "1", "--activation", "leaky_relu:1/10", "--json"], tmp_path)
    captured = capsys.readouterr()
    assert code == 0
    document = json.loads(captured.out)
    assert document["runs"][0]["activation"] == "leaky_relu:1/10"
    assert "wrote" in captured.err


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        (["--depth", "-1"], "invalid --depth -1"),
        (["--depth", "0"], "invalid --depth 0"),
        (["--width", "0"], "invalid --width 0"),
        (["--bits", "0"], "invalid --bits 0"),
        (["--points", "0"], "invalid --points 0"),
        (["--time-limit", "0"], "invalid --time-limit 0"),
        (["--bits", "20", "--max-bits", "30"], "--max-bits 30"),
        (["--activation", "tanh"], "unknown activation 'tanh'"),
        (["--activation", "poly:"], "invalid polynomial 'poly:'"),
        (["--activation", "poly:1,x"], "invalid polynomial 'poly:1,x'"),
        (["--activation", "relu,1/2"], "unknown activation '1/2'"),
        (["--activation", "relu,,square"], "empty activation name"),
        (["--activation", "relu,relu"], "listed twice"),
        (["--activation", "leaky_relu:abc"], "invalid slope"),
        (["--loss", "huber"], "unknown --loss 'huber'"),
        (["--sign-of", "W9[0][0]"], "no parameter 'W9[0][0]'"),
        (["--sign-of", "W1[0]"], "invalid parameter name 'W1[0]'"),
    ],
)
def test_cli_rejects_bad_input(arguments, fragment, tmp_path, capsys):
    code = run_command(["--depth", "2", *arguments], tmp_path)
    captured = capsys.readouterr()
    assert code == 2
    assert fragment in captured.err
    assert captured.out == ""
    assert not (tmp_path / "out" / "bitgrowth.json").exists()


def test_cli_rejects_non_integer_depth(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_command(["--depth", "x"], tmp_path)
    assert exit_info.value.code == 2
    assert "--depth" in capsys.readouterr().err


def test_cli_rejects_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    parser = argparse.ArgumentParser(prog="ermsolve")
    register_cli(parser.add_subparsers())
    args = parser.parse_args(["bitgrowth", "--depth", "1", "--out", str(blocker / "sub")])
    assert args.handler(args) == 2
    assert "cannot create --out directory" in capsys.readouterr().err


def test_split_activation_list():
    assert split_activation_list(None) == ("relu", "square")
    assert split_activation_list(["relu,poly:1,0,1/2", "cube"]) == ("relu", "poly:1,0,1/2", "cube")
    assert split_activation_list(["poly:1,-2,.5,square"]) == ("poly:1,-2,.5", "square")
    assert split_activation_list(["poly:1,,2"]) == ("poly:1,,2",)
    assert split_activation_list(["poly:1,x,relu"]) == ("poly:1,x", "relu")
    with pytest.raises(InputError, match="empty activation name"):
        split_activation_list(["relu,"])


def test_import_does_not_load_matplotlib():
    code = "import sys, ermsolve.bitgrowth; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
