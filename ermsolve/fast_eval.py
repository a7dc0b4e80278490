"""Exact evaluation of one-hidden-layer networks on many points with integer arrays.

Scaling the data and each layer by the least common multiple of their
denominators turns every pre-activation into an integer, so the forward pass
is integer matrix arithmetic. It runs in numpy int64 where a bound on every
intermediate value proves it cannot overflow, and in Python integers (numpy
object arrays) elsewhere. The results are exact, equal to the `mpq` forward pass, and much
faster on large data.
"""

from __future__ import annotations

from dataclasses import dataclass

import gmpy2
import numpy as np
from gmpy2 import mpq

from ermsolve.network import Network

# Largest magnitude allowed for an int64 intermediate, with room for one addition.
_INT64_SAFE = 2**62


@dataclass
class ShallowEvaluation:
    """Signs of the hidden pre-activations (n x K, -1/0/+1) and the exact loss."""

    signs: np.ndarray
    loss: mpq


def evaluate_shallow(network: Network, X, Y, loss: str) -> ShallowEvaluation | None:
    """Evaluate a one-hidden-layer ReLU network exactly; None when the network is not of that form."""
    if len(network.layers) != 2 or network.activation != "relu":
        return None
    hidden, output = network.layers

    # Pre-activations: Z * (Dx Dw) = X_int W_int^T + b_int, all integers.
    x_scale = _common_denominator(v for row in X for v in row)
    X_int = _integer_array([[v * x_scale for v in row] for row in X])
    w_scale = _common_denominator([*(v for row in hidden.W for v in row), *hidden.b])
    W_int = _integer_array([[v * w_scale for v in row] for row in hidden.W])
    b_int = _integer_array([[b * w_scale * x_scale for b in hidden.b]])
    Z = _matmul(X_int, W_int.T) + b_int
    H = np.where(Z > 0, Z, 0)

    # Outputs: F * (Dx Dw Dv) = H V_int^T + c_int.
    v_scale = _common_denominator([*(v for row in output.W for v in row), *output.b])
    V_int = _integer_array([[v * v_scale for v in row] for row in output.W])
    c_int = _integer_array([[c * v_scale * w_scale * x_scale for c in output.b]])
    F = _matmul(H, V_int.T) + c_int

    # Residuals as Python integers: R * S = F * Dy - Y_int * (Dx Dw Dv).
    y_scale = _common_denominator(v for row in Y for v in row)
    output_scale = x_scale * w_scale * v_scale
    Y_int = np.array([[int(v * y_scale) for v in row] for row in Y], dtype=object)
    R = F.astype(object) * y_scale - Y_int * output_scale
    total_scale = output_scale * y_scale

    if loss in ("hinge", "zero_one"):
        value = _classification_loss(F.astype(object), Y_int, y_scale, output_scale, loss)
        if value is None:
            return None
        return ShallowEvaluation(np.sign(Z).astype(np.int8), value)

    magnitudes = np.abs(R).ravel()
    if loss == "l1":
        value = mpq(int(sum(magnitudes)), total_scale)
    elif loss == "l2":
        value = mpq(int(sum(r * r for r in magnitudes)), total_scale * total_scale)
    elif loss == "linf":
        value = mpq(int(max(magnitudes, default=0)), total_scale)
    else:
        return None
    return ShallowEvaluation(np.sign(Z).astype(np.int8), value)


def _classification_loss(F, Y_int, y_scale: int, output_scale: int, loss: str) -> mpq | None:
    """Exact hinge or 0-1 loss from the integer outputs F = f * output_scale and labels Y_int = y * y_scale.

    Returns None when a label is not -1 or +1, so the caller falls back to
    the `mpq` path, which raises `InputError` naming the label.
    """
    if any(abs(int(v)) != y_scale for v in Y_int.ravel()):
        return None
    # y f has the sign of Y_int * F, because both scales are positive.
    products = (Y_int * F).ravel()
    if loss == "zero_one":
        return mpq(sum(1 for p in products if p <= 0))
    # 1 - y f = (S - Y_int F) / S with S = output_scale * y_scale.
    total_scale = output_scale * y_scale
    return mpq(int(sum(max(0, total_scale - int(p)) for p in products)), total_scale)


def _common_denominator(values) -> int:
    scale = gmpy2.mpz(1)
    for value in values:
        scale = gmpy2.lcm(scale, mpq(value).denominator)
    return int(scale)


def _integer_array(rows) -> np.ndarray:
    """Build an int64 array when every entry fits comfortably, else an object array of Python ints."""
    values = [[int(v) for v in row] for row in rows]
    largest = max((abs(v) for row in values for v in row), default=0)
    dtype = np.int64 if largest < 2**31 else object
    return np.array(values, dtype=dtype)


def _matmul(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Exact integer product: int64 when no partial sum can overflow, Python integers otherwise."""
    if left.dtype == np.int64 and right.dtype == np.int64:
        inner = left.shape[1]
        bound = int(np.abs(left).max(initial=0)) * int(np.abs(right).max(initial=0)) * max(inner, 1)
        if bound < _INT64_SAFE:
            return left @ right
    return left.astype(object) @ right.astype(object)
