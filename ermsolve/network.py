"""Fully connected networks with exact rational parameters, and their exact loss.

A network maps x in Q^d through hidden layers z = W h + b, h' = act(z) and a
final affine output layer without activation. All arithmetic is in `gmpy2.mpq`,
so the loss of a certificate is recomputed with no rounding at all.

Activation spellings, accepted by `parse_activation` and `Network.activation`:

    relu                max(z, 0)
    identity            z
    leaky_relu:SLOPE    z for z > 0, SLOPE * z otherwise; SLOPE is an exact
                        rational such as 1/10, 0.01 or -1
    square              z^2
    cube                z^3
    poly:C0,C1,...,CN   C0 + C1 z + ... + CN z^N, coefficients in increasing
                        degree, each an exact rational such as 1/2 or -0.25

At the kink z = 0 a piecewise-linear activation takes the slope of its left
side as derivative: ReLU'(0) = 0, leaky ReLU'(0) = SLOPE, identity'(0) = 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Callable, Sequence

import numpy as np
from gmpy2 import mpq

from ermsolve.errors import InputError
from ermsolve.rational import format_rational, parse_rational

ZERO = mpq(0)
ONE = mpq(1)


def relu(z: mpq) -> mpq:
    return z if z > 0 else ZERO


def identity(z: mpq) -> mpq:
    return z


# Activations by name; each maps one exact pre-activation to its exact activation.
# Only the fixed-name piecewise-linear activations are listed here. Every spelling,
# including the parametrised ones, goes through `parse_activation`.
ACTIVATIONS: dict[str, Callable[[mpq], mpq]] = {"relu": relu, "identity": identity}

ACTIVATION_SPELLINGS = "relu, identity, leaky_relu:SLOPE, square, cube, poly:C0,C1,...,CN"


@dataclass(frozen=True)
class PiecewiseLinear:
    """The activation z for z > 0 and `slope` * z otherwise: ReLU, leaky ReLU or identity.

    Calls work on mpq and on mpfr, so the same code runs exactly and in
    floating point.
    """

    name: str
    slope: mpq

    piecewise_linear = True
    degree = 1

    def __call__(self, z):
        if z > 0:
            return z
        if not self.slope:
            return ZERO
        return self.slope * z

    def derivative(self, z):
        """Derivative at `z`; at z = 0 this is `slope`, the slope of the left side."""
        return ONE if z > 0 else self.slope

    def apply_float(self, values: np.ndarray) -> np.ndarray:
        return np.where(values > 0, values, float(self.slope) * values)


@dataclass(frozen=True)
class Polynomial:
    """The activation C0 + C1 z + ... + CN z^N with exact rational `coefficients` (C0 first).

    Trailing zero coefficients are dropped, so `degree` is the true degree. A
    degree of at most 1 makes the activation affine, hence piecewise linear.
    """

    name: str
    coefficients: tuple[mpq, ...]

    def __post_init__(self):
        trimmed = list(self.coefficients)
        while len(trimmed) > 1 and not trimmed[-1]:
            trimmed.pop()
        object.__setattr__(self, "coefficients", tuple(mpq(c) for c in trimmed))

    @property
    def degree(self) -> int:
        return len(self.coefficients) - 1 if any(self.coefficients) else 0

    @property
    def piecewise_linear(self) -> bool:
        return self.degree <= 1

    @cached_property
    def derivative_coefficients(self) -> tuple[mpq, ...]:
        return tuple(i * c for i, c in enumerate(self.coefficients))[1:] or (ZERO,)

    def __call__(self, z):
        return _evaluate_polynomial(self.coefficients, z)

    def derivative(self, z):
        return _evaluate_polynomial(self.derivative_coefficients, z)

    def apply_float(self, values: np.ndarray) -> np.ndarray:
        return np.polynomial.polynomial.polyval(values, [float(c) for c in self.coefficients])


def _evaluate_polynomial(coefficients: tuple[mpq, ...], z):
    # A monomial c z^n is one power: `mpq ** n` raises numerator and denominator
    # separately and needs no gcd, which is much faster than Horner's rule on
    # numbers of millions of bits.
    nonzero = [i for i, c in enumerate(coefficients) if c]
    if not nonzero:
        return ZERO
    if len(nonzero) == 1:
        power = nonzero[0]
        value = z**power if power else ONE
        return value if coefficients[power] == 1 else coefficients[power] * value

    value = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        value = value * z + c
    return value


Activation = PiecewiseLinear | Polynomial

_NAMED_ACTIVATIONS: dict[str, Activation] = {
    "relu": PiecewiseLinear("relu", ZERO),
    "identity": PiecewiseLinear("identity", ONE),
    "square": Polynomial("square", (ZERO, ZERO, ONE)),
    "cube": Polynomial("cube", (ZERO, ZERO, ZERO, ONE)),
}


def parse_activation(spelling: str) -> Activation:
    """Parse an activation spelling (see the module docstring) into an activation object.

    Raises `InputError` naming the spelling when it is unknown or its slope or
    coefficients are not exact rationals.
    """
    if not isinstance(spelling, str):
        raise InputError(f"activation must be a string, got {spelling!r}")
    text = spelling.strip()
    if text in _NAMED_ACTIVATIONS:
        return _NAMED_ACTIVATIONS[text]

    kind, separator, argument = text.partition(":")
    if kind == "leaky_relu" and separator:
        try:
            slope = parse_rational(argument)
        except InputError as error:
            raise InputError(f"invalid slope in activation {spelling!r}: {error}") from None
        return PiecewiseLinear(f"leaky_relu:{_format_short(slope)}", slope)

    if kind == "poly" and separator:
        polynomial = Polynomial("poly", _parse_coefficients(spelling, argument))
        name = "poly:" + ",".join(_format_short(c) for c in polynomial.coefficients)
        return replace(polynomial, name=name)

    raise InputError(f"unknown activation {spelling!r}; valid spellings: {ACTIVATION_SPELLINGS}")


def _parse_coefficients(spelling: str, argument: str) -> tuple[mpq, ...]:
    pieces = argument.split(",")
    if not argument.strip():
        raise InputError(
            f"invalid polynomial {spelling!r}: no coefficients; write poly:C0,C1,...,CN, "
            "for example poly:1,0,1/2 for 1 + z^2/2"
        )
    coefficients = []
    for position, piece in enumerate(pieces):
        try:
            coefficients.append(parse_rational(piece))
        except InputError as error:
            raise InputError(
                f"invalid polynomial {spelling!r}: coefficient {position} (of z^{position}): {error}"
            ) from None
    return tuple(coefficients)


def _format_short(value: mpq) -> str:
    # Integers print without "/1" so that names read as typed: leaky_relu:-1.
    return str(value.numerator) if value.denominator == 1 else format_rational(value)


_PARAMETER_NAME = re.compile(r"([Wb])(\d+)\[(\d+)\](?:\[(\d+)\])?")


def parse_parameter_name(name: str) -> tuple[str, int, int, int | None]:
    """Split `W2[0][1]` into ("W", 1, 0, 1) and `b1[3]` into ("b", 0, 3, None).

    The layer number in the name counts from 1 (as in `Network.parameters`), the
    returned layer index from 0. Raises `InputError` on any other form.
    """
    match = _PARAMETER_NAME.fullmatch(name.strip()) if isinstance(name, str) else None
    if not match or (match.group(1) == "W") != (match.group(4) is not None) or int(match.group(2)) < 1:
        raise InputError(
            f"invalid parameter name {name!r}: expected W<layer>[<row>][<column>] or "
            "b<layer>[<row>] with layers counted from 1, for example W2[0][1] or b1[0]"
        )
    kind, layer, row, column = match.groups()
    return kind, int(layer) - 1, int(row), None if column is None else int(column)


@dataclass(frozen=True)
class Layer:
    """An affine map z = W x + b; `W` has one row per output unit."""

    W: tuple[tuple[mpq, ...], ...]
    b: tuple[mpq, ...]

    @property
    def fan_in(self) -> int:
        return len(self.W[0]) if self.W else 0

    @property
    def fan_out(self) -> int:
        return len(self.b)

    def apply(self, x: Sequence[mpq]) -> list[mpq]:
        return [sum((w * v for w, v in zip(row, x)), bias) for row, bias in zip(self.W, self.b)]


@dataclass(frozen=True)
class Network:
    """Hidden layers with `activation`, then an affine output layer."""

    layers: tuple[Layer, ...]
    activation: str = "relu"

    def __post_init__(self):
        # Parsing here rejects an unknown spelling when the network is built, not
        # at its first evaluation.
        self.activation_function
        for index, layer in enumerate(self.layers):
            if any(len(row) != layer.fan_in for row in layer.W) or len(layer.W) != len(layer.b):
                raise InputError(f"layer {index}: weight matrix rows and bias lengths do not match")
            if index and layer.fan_in != self.layers[index - 1].fan_out:
                raise InputError(
                    f"layer {index} takes {layer.fan_in} inputs but layer {index - 1} "
                    f"has {self.layers[index - 1].fan_out} outputs"
                )

    @cached_property
    def activation_function(self) -> Activation:
        """The parsed `activation` spelling, with value and derivative."""
        return parse_activation(self.activation)

    @property
    def input_dim(self) -> int:
        return self.layers[0].fan_in

    @property
    def depth(self) -> int:
        """Number of hidden layers."""
        return len(self.layers) - 1

    def parameters(self):
        """Yield (name, value) for every parameter, as `W1[k][j]`, `b1[k]`, ..."""
        for number, layer in enumerate(self.layers, start=1):
            for k, row in enumerate(layer.W):
                for j, value in enumerate(row):
                    yield f"W{number}[{k}][{j}]", value
            for k, value in enumerate(layer.b):
                yield f"b{number}[{k}]", value

    def parameter(self, name: str) -> mpq:
        """Value of the parameter called `name` (as in `parameters`); `InputError` if absent."""
        kind, layer_index, row, column = self._locate(name)
        layer = self.layers[layer_index]
        return layer.W[row][column] if kind == "W" else layer.b[row]

    def with_parameter(self, name: str, value) -> "Network":
        """Return a copy in which the parameter called `name` is `value`."""
        kind, layer_index, row, column = self._locate(name)
        layer = self.layers[layer_index]
        if kind == "W":
            new_row = layer.W[row][:column] + (mpq(value),) + layer.W[row][column + 1 :]
            new_layer = Layer(layer.W[:row] + (new_row,) + layer.W[row + 1 :], layer.b)
        else:
            new_layer = Layer(layer.W, layer.b[:row] + (mpq(value),) + layer.b[row + 1 :])
        layers = self.layers[:layer_index] + (new_layer,) + self.layers[layer_index + 1 :]
        return replace(self, layers=layers)

    def _locate(self, name: str) -> tuple[str, int, int, int | None]:
        kind, layer_index, row, column = parse_parameter_name(name)
        if layer_index >= len(self.layers):
            raise InputError(f"no parameter {name!r}: the network has layers 1 to {len(self.layers)}")
        layer = self.layers[layer_index]
        if row >= layer.fan_out or (kind == "W" and column >= layer.fan_in):
            shape = f"{layer.fan_out} x {layer.fan_in}" if kind == "W" else f"{layer.fan_out}"
            raise InputError(
                f"no parameter {name!r}: {kind}{layer_index + 1} has shape {shape} (indices count from 0)"
            )
        return kind, layer_index, row, column

    def pre_activations(self, x: Sequence[mpq]) -> list[list[mpq]]:
        """Exact pre-activations of every hidden layer at input `x`."""
        act = self.activation_function
        values, result = list(x), []
        for layer in self.layers[:-1]:
            z = layer.apply(values)
            result.append(z)
            values = [act(v) for v in z]
        return result

    def forward(self, x: Sequence[mpq]) -> list[mpq]:
        """Exact outputs at input `x`."""
        act = self.activation_function
        values = list(x)
        for layer in self.layers[:-1]:
            values = [act(v) for v in layer.apply(values)]
        return self.layers[-1].apply(values)

    def forward_float(self, X: np.ndarray) -> np.ndarray:
        """Float outputs for the rows of `X`, for plots and quick checks only."""
        act = self.activation_function
        values = np.asarray(X, dtype=float)
        for index, layer in enumerate(self.layers):
            W = np.array([[float(v) for v in row] for row in layer.W], dtype=float).reshape(
                layer.fan_out, layer.fan_in
            )
            b = np.array([float(v) for v in layer.b], dtype=float)
            values = values @ W.T + b
            if index < len(self.layers) - 1:
                values = act.apply_float(values)
        return values


def exact_loss(network: Network, X, y, loss: str) -> mpq:
    """Exact training loss of a one-output network on points `X` with targets `y`.

    `l1` is the sum of absolute errors, `l2` the sum of squared errors and
    `linf` the largest absolute error. For labels -1/+1, `hinge` is
    sum_i max(0, 1 - y_i f(x_i)) and `zero_one` counts the points with
    y_i f(x_i) <= 0, ties included. Other labels raise `InputError`.
    """
    if network.layers[-1].fan_out != 1:
        raise InputError(f"loss {loss!r} needs one output, the network has {network.layers[-1].fan_out}")
    if loss in ("hinge", "zero_one"):
        from ermsolve.classification import check_labels, classification_loss

        check_labels([(target,) for target in y], loss, "targets")
        return classification_loss([network.forward(x)[0] for x in X], y, loss)
    residuals = [network.forward(x)[0] - target for x, target in zip(X, y)]
    if loss == "l1":
        return sum((abs(r) for r in residuals), ZERO)
    if loss == "l2":
        return sum((r * r for r in residuals), ZERO)
    if loss == "linf":
        return max((abs(r) for r in residuals), default=ZERO)
    raise InputError(f"unknown loss {loss!r}; valid losses: l1, l2, linf, hinge, zero_one")
