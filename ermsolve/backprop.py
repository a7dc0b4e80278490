"""Exact backpropagation: the loss and its gradient with respect to every parameter.

The loss of a one-output network on points x_i with targets y_i and residuals
r_i = f(x_i) - y_i is one of

    l1    L = sum_i |r_i|         dL/dr_i = sign(r_i)
    l2    L = sum_i r_i^2         dL/dr_i = 2 r_i
    linf  L = max_i |r_i|         dL/dr_i = sign(r_i) for the first i that attains
                                  the maximum, 0 for every other i

Where the loss or an activation has a kink, the gradient is the subgradient
picked by these conventions: sign(0) = 0, the first maximising point for linf,
and for a piecewise-linear activation the slope of the left side at z = 0
(ReLU'(0) = 0, leaky ReLU'(0) = slope). Away from kinks the result is the true
gradient.

The code only adds, multiplies and compares numbers, so it runs unchanged on
`gmpy2.mpq` (exact, the default) and on `gmpy2.mpfr` at any precision. Pass
`convert=gmpy2.mpfr` inside a gmpy2 context to get the rounded version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from gmpy2 import mpq

from ermsolve.errors import InputError
from ermsolve.network import ZERO, Network, parse_parameter_name

logger = logging.getLogger(__name__)

LOSSES = ("l1", "l2", "linf")


@dataclass(frozen=True)
class Gradient:
    """Partial derivatives of the loss, shaped like the layers of the network.

    `W[l][k][j]` is dL/dW{l+1}[k][j] and `b[l][k]` is dL/db{l+1}[k], so the
    names match `Network.parameters`.
    """

    W: tuple[tuple[tuple, ...], ...]
    b: tuple[tuple, ...]

    def items(self) -> Iterator[tuple[str, object]]:
        """Yield (name, partial derivative) in the order of `Network.parameters`."""
        for number, (rows, biases) in enumerate(zip(self.W, self.b), start=1):
            for k, row in enumerate(rows):
                for j, value in enumerate(row):
                    yield f"W{number}[{k}][{j}]", value
            for k, value in enumerate(biases):
                yield f"b{number}[{k}]", value

    def __getitem__(self, name: str):
        kind, layer_index, row, column = parse_parameter_name(name)
        try:
            if kind == "W":
                return self.W[layer_index][row][column]
            return self.b[layer_index][row]
        except IndexError:
            raise KeyError(name) from None


@dataclass(frozen=True)
class Backpropagation:
    """Results of one pass over the training points.

    `activations[i][l]` lists the activations of hidden layer l + 1 at point i,
    kept because the bit-growth measurement reads them. `outputs[i]` is f(x_i).
    """

    loss: object
    gradient: Gradient
    residuals: tuple
    outputs: tuple
    activations: tuple[tuple[tuple, ...], ...]


def loss_derivatives(residuals: Sequence, loss: str) -> list:
    """Return dL/dr_i for every residual, with the conventions of the module docstring."""
    if loss == "l2":
        return [2 * r for r in residuals]

    if loss == "l1":
        return [_sign(r) for r in residuals]

    if loss == "linf":
        derivatives = [ZERO] * len(residuals)
        if residuals:
            magnitudes = [abs(r) for r in residuals]
            worst = magnitudes.index(max(magnitudes))
            derivatives[worst] = _sign(residuals[worst])
        return derivatives

    raise InputError(f"unknown loss {loss!r}; valid losses: {', '.join(LOSSES)}")


def _sign(value) -> mpq:
    if value > 0:
        return mpq(1)
    if value < 0:
        return mpq(-1)
    return ZERO


def _loss_value(residuals: Sequence, loss: str, zero):
    # Written out again instead of calling `exact_loss` so that it also runs on
    # mpfr residuals; a test checks that both agree exactly.
    if loss == "l1":
        return sum((abs(r) for r in residuals), zero)
    if loss == "l2":
        return sum((r * r for r in residuals), zero)
    if loss == "linf":
        return max((abs(r) for r in residuals), default=zero)
    raise InputError(f"unknown loss {loss!r}; valid losses: {', '.join(LOSSES)}")


def backpropagate(
    network: Network,
    X: Sequence[Sequence],
    y: Sequence,
    loss: str,
    convert: Callable[[mpq], object] | None = None,
) -> Backpropagation:
    """Compute the loss of `network` on points `X` with targets `y`, and its gradient.

    With `convert=None` every number stays an exact `mpq`. Otherwise each
    parameter, input and target first goes through `convert` (for example
    `gmpy2.mpfr` inside `gmpy2.context(precision=200)`), and every later step
    rounds as that number type does.

    Raises `InputError` for an unknown loss, a network with more than one
    output, or points whose length differs from the input dimension.
    """
    if loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}; valid losses: {', '.join(LOSSES)}")
    if network.layers[-1].fan_out != 1:
        raise InputError(f"loss {loss!r} needs one output, the network has {network.layers[-1].fan_out}")
    if len(X) != len(y):
        raise InputError(f"{len(X)} points but {len(y)} targets")
    for index, x in enumerate(X):
        if len(x) != network.input_dim:
            raise InputError(f"point {index} has {len(x)} features, the network takes {network.input_dim}")

    to_number = convert if convert is not None else mpq
    weights = [[[to_number(w) for w in row] for row in layer.W] for layer in network.layers]
    biases = [[to_number(v) for v in layer.b] for layer in network.layers]
    zero = to_number(ZERO)

    # Forward: keep every pre-activation and activation, because the backward
    # pass needs both.
    forward_passes = [_forward(weights, biases, network, [to_number(v) for v in x]) for x in X]
    outputs = [activations[-1][0] for _, activations in forward_passes]
    residuals = [f - to_number(target) for f, target in zip(outputs, y)]
    loss_value = _loss_value(residuals, loss, zero)

    # Backward: accumulate delta * activation over the points. Points whose
    # dL/dr is exactly zero contribute nothing and are skipped, which for linf
    # leaves a single point.
    grad_W = [[[zero] * len(row) for row in layer_weights] for layer_weights in weights]
    grad_b = [[zero] * len(layer_biases) for layer_biases in biases]
    for (pre_activations, activations), derivative in zip(forward_passes, loss_derivatives(residuals, loss)):
        if not derivative:
            continue
        _accumulate_point(weights, network, pre_activations, activations, derivative, grad_W, grad_b)

    gradient = Gradient(
        W=tuple(tuple(tuple(row) for row in layer) for layer in grad_W),
        b=tuple(tuple(layer) for layer in grad_b),
    )
    hidden = tuple(tuple(tuple(layer) for layer in activations[1:-1]) for _, activations in forward_passes)
    logger.debug("backpropagated %s loss over %d points through %d layers", loss, len(X), len(weights))
    return Backpropagation(loss_value, gradient, tuple(residuals), tuple(outputs), hidden)


def _forward(weights, biases, network: Network, x: list) -> tuple[list[list], list[list]]:
    # Returns the pre-activations of every layer (the output layer last) and the
    # activations [x, h_1, ..., h_H, f], so activations[l] feeds layer l + 1.
    act = network.activation_function
    pre_activations, activations = [], [x]
    last = len(weights) - 1
    for index, (layer_weights, layer_biases) in enumerate(zip(weights, biases)):
        inputs = activations[-1]
        z = [sum((w * v for w, v in zip(row, inputs)), bias) for row, bias in zip(layer_weights, layer_biases)]
        pre_activations.append(z)
        activations.append(z if index == last else [act(v) for v in z])
    return pre_activations, activations


def _accumulate_point(weights, network: Network, pre_activations, activations, derivative, grad_W, grad_b) -> None:
    # delta[k] = dL/dz[k] for the current layer, starting at the output with dL/df.
    act = network.activation_function
    delta = [derivative]
    for index in range(len(weights) - 1, -1, -1):
        inputs = activations[index]
        for k, delta_k in enumerate(delta):
            if not delta_k:
                continue
            grad_b[index][k] += delta_k
            row = grad_W[index][k]
            for j, h in enumerate(inputs):
                row[j] += delta_k * h
        if index == 0:
            break

        # dL/dz of the layer below: through the weights, then the activation's
        # derivative. An inactive ReLU unit (derivative 0) needs no sum.
        layer_weights = weights[index]
        below = []
        for j, z_j in enumerate(pre_activations[index - 1]):
            slope = act.derivative(z_j)
            if not slope:
                below.append(ZERO)
                continue
            below.append(slope * sum((layer_weights[k][j] * delta[k] for k in range(len(delta))), ZERO))
        delta = below


def gradient(network: Network, X, y, loss: str) -> Gradient:
    """Exact gradient of the loss with respect to every parameter."""
    return backpropagate(network, X, y, loss).gradient
