"""Fully connected networks with exact rational parameters, and their exact loss.

A network maps x in Q^d through hidden layers z = W h + b, h' = act(z) and a
final affine output layer without activation. All arithmetic is in `gmpy2.mpq`,
so the loss of a certificate is recomputed with no rounding at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from gmpy2 import mpq

from ermsolve.errors import InputError

ZERO = mpq(0)


def relu(z: mpq) -> mpq:
    return z if z > 0 else ZERO


def identity(z: mpq) -> mpq:
    return z


# Activations by name; each maps one exact pre-activation to its exact activation.
ACTIVATIONS: dict[str, Callable[[mpq], mpq]] = {"relu": relu, "identity": identity}


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
        if self.activation not in ACTIVATIONS:
            raise InputError(
                f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}"
            )
        for index, layer in enumerate(self.layers):
            if any(len(row) != layer.fan_in for row in layer.W) or len(layer.W) != len(layer.b):
                raise InputError(f"layer {index}: weight matrix rows and bias lengths do not match")
            if index and layer.fan_in != self.layers[index - 1].fan_out:
                raise InputError(
                    f"layer {index} takes {layer.fan_in} inputs but layer {index - 1} "
                    f"has {self.layers[index - 1].fan_out} outputs"
                )

    @property
    def input_dim(self) -> int:
        return self.layers[0].fan_in

    def parameters(self):
        """Yield (name, value) for every parameter, as `W1[k][j]`, `b1[k]`, ..."""
        for number, layer in enumerate(self.layers, start=1):
            for k, row in enumerate(layer.W):
                for j, value in enumerate(row):
                    yield f"W{number}[{k}][{j}]", value
            for k, value in enumerate(layer.b):
                yield f"b{number}[{k}]", value

    def pre_activations(self, x: Sequence[mpq]) -> list[list[mpq]]:
        """Exact pre-activations of every hidden layer at input `x`."""
        act = ACTIVATIONS[self.activation]
        values, result = list(x), []
        for layer in self.layers[:-1]:
            z = layer.apply(values)
            result.append(z)
            values = [act(v) for v in z]
        return result

    def forward(self, x: Sequence[mpq]) -> list[mpq]:
        """Exact outputs at input `x`."""
        act = ACTIVATIONS[self.activation]
        values = list(x)
        for layer in self.layers[:-1]:
            values = [act(v) for v in layer.apply(values)]
        return self.layers[-1].apply(values)

    def forward_float(self, X: np.ndarray) -> np.ndarray:
        """Float outputs for the rows of `X`, for plots and quick checks only."""
        values = np.asarray(X, dtype=float)
        for index, layer in enumerate(self.layers):
            W = np.array([[float(v) for v in row] for row in layer.W], dtype=float).reshape(
                layer.fan_out, layer.fan_in
            )
            b = np.array([float(v) for v in layer.b], dtype=float)
            values = values @ W.T + b
            if index < len(self.layers) - 1 and self.activation == "relu":
                values = np.maximum(values, 0.0)
        return values


def exact_loss(network: Network, X, y, loss: str) -> mpq:
    """Exact training loss of a one-output network on points `X` with targets `y`.

    `l1` is the sum of absolute errors, `l2` the sum of squared errors and
    `linf` the largest absolute error.
    """
    if network.layers[-1].fan_out != 1:
        raise InputError(f"loss {loss!r} needs one output, the network has {network.layers[-1].fan_out}")
    residuals = [network.forward(x)[0] - target for x, target in zip(X, y)]
    if loss == "l1":
        return sum((abs(r) for r in residuals), ZERO)
    if loss == "l2":
        return sum((r * r for r in residuals), ZERO)
    if loss == "linf":
        return max((abs(r) for r in residuals), default=ZERO)
    raise InputError(f"unknown loss {loss!r}; valid losses: l1, l2, linf")
