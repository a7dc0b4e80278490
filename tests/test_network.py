"""Exact forward pass, loss, activations and backpropagation of `ermsolve.network`."""

from fractions import Fraction
from math import prod

import gmpy2
import numpy as np
import pytest
from gmpy2 import mpq
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ermsolve.backprop import backpropagate, gradient, loss_derivatives
from ermsolve.errors import InputError
from ermsolve.network import Layer, Network, exact_loss, parse_activation, parse_parameter_name

MPQ = type(mpq(0))


def q(*values):
    return tuple(mpq(Fraction(v)) for v in values)


def tiny_network(activation="relu"):
    # 2 inputs -> 2 hidden units -> 1 output:
    #   z1 = x0 - 2 x1,        z2 = x0/2 + 3 x1 + 1
    #   f  = h1 - h2 + 1/3
    hidden = Layer((q(1, -2), q("1/2", 3)), q(0, 1))
    output = Layer((q(1, -1),), q("1/3"))
    return Network((hidden, output), activation)


X_TINY = [q(1, 2), q(-1, "1/2")]
Y_TINY = q(1, 0)


# ---------------------------------------------------------------------------
# The existing interface


def test_exact_loss_returns_exact_rationals():
    # Point (1, 2): z = (-3, 15/2), h = (0, 15/2), f = -15/2 + 1/3 = -43/6, r = -49/6.
    # Point (-1, 1/2): z = (-2, 2), h = (0, 2), f = -2 + 1/3 = -5/3, r = -5/3.
    network = tiny_network()
    expected = {
        "l1": Fraction(49, 6) + Fraction(5, 3),
        "l2": Fraction(2401, 36) + Fraction(25, 9),
        "linf": Fraction(49, 6),
    }
    for loss, value in expected.items():
        result = exact_loss(network, X_TINY, Y_TINY, loss)
        assert isinstance(result, MPQ)
        assert Fraction(int(result.numerator), int(result.denominator)) == value
    # The exact l2 loss 2501/36 is no binary float.
    assert mpq(float(exact_loss(network, X_TINY, Y_TINY, "l2"))) != mpq(2501, 36)


def test_exact_loss_rejects_unknown_loss():
    with pytest.raises(InputError, match="'l3'"):
        exact_loss(tiny_network(), X_TINY, Y_TINY, "l3")


def test_network_rejects_unknown_activation():
    with pytest.raises(InputError, match="'tanh'"):
        tiny_network("tanh")


def test_pre_activations_and_forward_unchanged():
    network = tiny_network()
    assert network.pre_activations(X_TINY[0]) == [list(q(-3, "15/2"))]
    assert network.forward(X_TINY[0]) == [mpq(-43, 6)]
    assert [name for name, _ in network.parameters()][:3] == ["W1[0][0]", "W1[0][1]", "W1[1][0]"]


# ---------------------------------------------------------------------------
# Activations


@pytest.mark.parametrize(
    "spelling, z, value, derivative",
    [
        ("relu", "3/2", "3/2", 1),
        ("relu", "-3/2", 0, 0),
        ("relu", 0, 0, 0),
        ("identity", "-3/2", "-3/2", 1),
        ("identity", 0, 0, 1),
        ("leaky_relu:1/10", "-3/2", "-3/20", "1/10"),
        ("leaky_relu:0.1", 0, 0, "1/10"),
        ("leaky_relu:1/10", 2, 2, 1),
        ("square", "-3/2", "9/4", -3),
        ("cube", "-3/2", "-27/8", "27/4"),
        ("poly:1,0,1/2", "-3/2", "17/8", "-3/2"),
        ("poly:1,2", 5, 11, 2),
        ("poly:7", 5, 7, 0),
    ],
)
def test_activation_value_and_derivative(spelling, z, value, derivative):
    activation = parse_activation(spelling)
    point = mpq(Fraction(z))
    assert activation(point) == mpq(Fraction(value))
    assert activation.derivative(point) == mpq(Fraction(derivative))


@pytest.mark.parametrize(
    "spelling, name, degree, piecewise_linear",
    [
        ("relu", "relu", 1, True),
        ("leaky_relu:0.25", "leaky_relu:1/4", 1, True),
        ("leaky_relu:-1", "leaky_relu:-1", 1, True),
        ("square", "square", 2, False),
        ("cube", "cube", 3, False),
        ("poly:1,0,0.5,0", "poly:1,0,1/2", 2, False),
        ("poly:0,1", "poly:0,1", 1, True),
    ],
)
def test_activation_names_and_degrees(spelling, name, degree, piecewise_linear):
    activation = parse_activation(spelling)
    assert activation.name == name
    assert activation.degree == degree
    assert activation.piecewise_linear is piecewise_linear


@pytest.mark.parametrize(
    "spelling, fragment",
    [
        ("tanh", "unknown activation 'tanh'"),
        ("poly:", "no coefficients"),
        ("poly:1,,2", "coefficient 1"),
        ("poly:1,x", "invalid number 'x'"),
        ("poly:1,nan", "invalid number 'nan'"),
        ("leaky_relu:", "invalid slope"),
        ("leaky_relu:1/0", "zero denominator"),
        ("leaky_relu", "unknown activation"),
    ],
)
def test_parse_activation_rejects_malformed(spelling, fragment):
    with pytest.raises(InputError, match=fragment):
        parse_activation(spelling)


def test_forward_float_matches_exact():
    X = [q(1, 2), q(-1, "1/2"), q("3/7", "-5/3")]
    for spelling in ("relu", "identity", "leaky_relu:1/10", "square", "cube", "poly:1,0,1/2"):
        network = tiny_network(spelling)
        exact = [float(network.forward(x)[0]) for x in X]
        approximate = network.forward_float(np.array([[float(v) for v in x] for x in X]))[:, 0]
        assert np.allclose(approximate, exact, rtol=1e-12), spelling


# ---------------------------------------------------------------------------
# Parameter names


def test_parameter_lookup_and_replacement():
    network = tiny_network()
    assert network.parameter("W1[1][0]") == mpq(1, 2)
    assert network.parameter("b2[0]") == mpq(1, 3)
    changed = network.with_parameter("W1[1][0]", mpq(5))
    assert changed.parameter("W1[1][0]") == 5
    assert network.parameter("W1[1][0]") == mpq(1, 2)
    assert [value for _, value in changed.parameters()].count(mpq(5)) == 1


@pytest.mark.parametrize("name", ["W3[0][0]", "W1[2][0]", "W1[0][2]", "b2[1]"])
def test_parameter_lookup_rejects_missing(name):
    with pytest.raises(InputError, match="no parameter"):
        tiny_network().parameter(name)


@pytest.mark.parametrize("name", ["W0[0][0]", "W1[0]", "b1[0][0]", "w1[0][0]", "W1[-1][0]", ""])
def test_parse_parameter_name_rejects_malformed(name):
    with pytest.raises(InputError, match="invalid parameter name"):
        parse_parameter_name(name)


# ---------------------------------------------------------------------------
# Backpropagation: hand-computed values and conventions


def test_gradient_hand_computed_l2():
    # Both points have h1 = 0 (unit 1 inactive), so only unit 2 and the output
    # bias carry gradient. With r = (-49/6, -5/3), dL/dr = 2r = (-49/3, -10/3)
    # and df/dh2 = -1:
    #   dL/dW2[0][1] = sum 2r h2         = (-49/3)(15/2) + (-10/3)(2) = -775/6
    #   dL/db2[0]    = sum 2r            = -59/3
    #   dL/db1[1]    = sum 2r (-1)       = 59/3
    #   dL/dW1[1][0] = sum 2r (-1) x0    = 49/3 - 10/3 = 13
    #   dL/dW1[1][1] = sum 2r (-1) x1    = 98/3 + 5/3 = 103/3
    grad = gradient(tiny_network(), X_TINY, Y_TINY, "l2")
    assert grad["W2[0][1]"] == mpq(-775, 6)
    assert grad["b2[0]"] == mpq(-59, 3)
    assert grad["b1[1]"] == mpq(59, 3)
    assert grad["W1[1][0]"] == 13
    assert grad["W1[1][1]"] == mpq(103, 3)
    assert grad["W1[0][0]"] == 0
    assert grad["W2[0][0]"] == 0


def test_loss_derivative_conventions():
    residuals = q(0, -2, 2, 1)
    assert loss_derivatives(residuals, "l1") == list(q(0, -1, 1, 1))
    assert loss_derivatives(residuals, "l2") == list(q(0, -4, 4, 2))
    # linf: the first point with the largest |r| takes the whole subgradient.
    assert loss_derivatives(residuals, "linf") == list(q(0, -1, 0, 0))
    assert loss_derivatives(q(0, 0), "linf") == list(q(0, 0))


def test_relu_kink_has_zero_derivative():
    # One hidden unit with z = x - 1 at x = 1 sits on the kink: ReLU'(0) = 0, so
    # nothing flows into the first layer, while leaky ReLU passes its slope.
    hidden = Layer((q(1),), q(-1))
    output = Layer((q(2),), q(0))
    X, y = [q(1)], q(3)
    relu_gradient = gradient(Network((hidden, output), "relu"), X, y, "l2")
    assert relu_gradient["W1[0][0]"] == 0
    assert relu_gradient["b1[0]"] == 0
    leaky_gradient = gradient(Network((hidden, output), "leaky_relu:1/10"), X, y, "l2")
    # r = -3, dL/dz = 2r * 2 * (1/10) = -6/5
    assert leaky_gradient["b1[0]"] == mpq(-6, 5)


def test_backprop_loss_equals_exact_loss():
    for spelling in ("relu", "leaky_relu:1/10", "identity", "square", "cube", "poly:1,0,1/2"):
        network = tiny_network(spelling)
        for loss in ("l1", "l2", "linf"):
            result = backpropagate(network, X_TINY, Y_TINY, loss)
            assert result.loss == exact_loss(network, X_TINY, Y_TINY, loss), (spelling, loss)


def test_backprop_rejects_bad_input():
    network = tiny_network()
    with pytest.raises(InputError, match="'huber'"):
        backpropagate(network, X_TINY, Y_TINY, "huber")
    with pytest.raises(InputError, match="2 points but 1 targets"):
        backpropagate(network, X_TINY, Y_TINY[:1], "l2")
    with pytest.raises(InputError, match="point 0 has 3 features"):
        backpropagate(network, [q(1, 2, 3)], q(1), "l2")


def test_backprop_in_mpfr_approximates_exact():
    network = tiny_network("square")
    exact = gradient(network, X_TINY, Y_TINY, "l2")
    with gmpy2.context(precision=200):
        rounded = backpropagate(network, X_TINY, Y_TINY, "l2", convert=gmpy2.mpfr).gradient
    for name, value in exact.items():
        assert abs(mpq(rounded[name]) - value) <= abs(value) * mpq(1, 2**190) + mpq(1, 2**190), name


# ---------------------------------------------------------------------------
# Backpropagation against exact finite differences


def build_network(data, activation, depth, width, bits):
    # Parameters are drawn by hypothesis as p/q with |p| < 2^bits, 1 <= q < 2^bits.
    numerators = st.integers(-(2**bits) + 1, 2**bits - 1)
    denominators = st.integers(1, 2**bits - 1)

    def rational():
        return mpq(data.draw(numerators), data.draw(denominators))

    layers = []
    fan_in = width
    for fan_out in [width] * depth + [1]:
        W = tuple(tuple(rational() for _ in range(fan_in)) for _ in range(fan_out))
        layers.append(Layer(W, tuple(rational() for _ in range(fan_out))))
        fan_in = fan_out
    points = data.draw(st.integers(1, 3))
    X = [tuple(rational() for _ in range(width)) for _ in range(points)]
    y = tuple(rational() for _ in range(points))
    return Network(tuple(layers), activation), X, y


def piece_signature(network, X, y, loss):
    """Signs of every pre-activation and residual, and the linf maximiser; None if any is zero."""
    signs = []
    residuals = []
    for x, target in zip(X, y):
        for layer in network.pre_activations(x):
            signs += [gmpy2.sign(z) for z in layer]
        residuals.append(network.forward(x)[0] - target)
    signs += [gmpy2.sign(r) for r in residuals]
    if 0 in signs:
        return None
    if loss == "linf":
        magnitudes = [abs(r) for r in residuals]
        largest = max(magnitudes)
        if magnitudes.count(largest) > 1:
            return None
        signs.append(magnitudes.index(largest))
    return tuple(signs)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    activation=st.sampled_from(["relu", "leaky_relu:1/10", "leaky_relu:-2", "identity"]),
    loss=st.sampled_from(["l1", "l2", "linf"]),
    depth=st.integers(1, 3),
    width=st.integers(1, 3),
)
def test_gradient_equals_central_difference_piecewise_linear(data, activation, loss, depth, width):
    """Check every partial derivative against an exact central difference.

    Fix all parameters but one, theta. Suppose that at theta - h and theta + h
    every pre-activation and residual is nonzero with the same sign, and for
    linf the same point is the unique maximiser. Then on [theta - h, theta + h]
    each layer's pre-activations are affine in theta and keep their sign, layer
    by layer. So the loss is a polynomial of degree at most 2 in theta there. For
    such a polynomial (L(theta + h) - L(theta - h)) / (2h) = L'(theta) exactly.
    Steps h = 2^-4, 2^-8, ... are tried until the signs agree; a theta that sits
    on a kink never qualifies and is skipped.
    """
    network, X, y = build_network(data, activation, depth, width, bits=4)
    assume(piece_signature(network, X, y, loss) is not None)
    grad = gradient(network, X, y, loss)

    checked = 0
    for name, theta in network.parameters():
        for exponent in range(4, 200, 4):
            h = mpq(1, 2**exponent)
            below, above = network.with_parameter(name, theta - h), network.with_parameter(name, theta + h)
            signature = piece_signature(below, X, y, loss)
            if signature is not None and signature == piece_signature(above, X, y, loss):
                break
        else:
            continue
        difference = (exact_loss(above, X, y, loss) - exact_loss(below, X, y, loss)) / (2 * h)
        assert grad[name] == difference, name
        checked += 1
    assert checked == sum(1 for _ in network.parameters())


def lagrange_derivative_weights(m):
    """Weights w_k with p'(0) = sum_k w_k p(k) for every polynomial p of degree <= 2m, k = -m..m."""
    nodes = range(-m, m + 1)
    weights = {}
    for k in nodes:
        others = [j for j in nodes if j != k]
        denominator = prod(k - j for j in others)
        # d/dt of prod_j (t - j) at t = 0, by the product rule.
        numerator = sum(prod(-j for j in others if j != i) for i in others)
        weights[k] = Fraction(numerator, denominator)
    return weights


@pytest.mark.parametrize("activation, degree", [("square", 2), ("cube", 3), ("poly:1,0,1/2", 2), ("poly:1,-1,0,1/3", 3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_equals_interpolated_derivative_polynomial(activation, degree, seed):
    """Check every partial derivative of the l2 loss through a polynomial activation.

    With 2 hidden layers, theta in layer l enters an affine map and then passes
    3 - l activations of degree d. So the output is a polynomial of degree at
    most d^(3 - l) in theta (degree 1 for the output layer), and the l2 loss
    has degree at most 2 d^2. Its derivative is then exactly the derivative of its
    interpolant on 2m + 1 >= 2 d^2 + 1 equally spaced points.
    """
    from ermsolve.bitgrowth import Experiment

    experiment = Experiment(width=2, bits=3, seed=seed, points=2)
    network = experiment.network(2, activation)
    X, y = experiment.X, experiment.y
    grad = gradient(network, X, y, "l2")

    m = degree**2
    weights = lagrange_derivative_weights(m)
    for name, theta in network.parameters():
        derivative = sum(
            (mpq(weight) * exact_loss(network.with_parameter(name, theta + k), X, y, "l2") for k, weight in weights.items()),
            mpq(0),
        )
        assert grad[name] == derivative, name
