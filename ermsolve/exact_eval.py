"""Exact evaluation of networks with any depth and any number of outputs.

For a network f with m outputs, points x_1..x_n and target rows y_1..y_n, the
residuals are r_ij = f_j(x_i) - y_ij and the losses are

    l1    sum_i sum_j |r_ij|
    l2    sum_i sum_j r_ij^2
    linf  max_i max_j |r_ij|

and, for labels y_ij in {-1, +1},

    hinge     sum_i sum_j max(0, 1 - y_ij f_j(x_i))
    zero_one  #{(i, j) : y_ij f_j(x_i) <= 0}, so a tie f = 0 is an error

computed in `gmpy2.mpq` with no rounding. The functions here never import a
solver, so certificate verification can call them.
"""

from __future__ import annotations

from typing import Sequence

from gmpy2 import mpq

from ermsolve.classification import CLASSIFICATION_LOSSES, check_labels, classification_loss
from ermsolve.errors import InputError
from ermsolve.network import Network

ZERO = mpq(0)
LOSSES = ("l1", "l2", "linf", *CLASSIFICATION_LOSSES)


def residuals(network: Network, X, Y) -> list[list[mpq]]:
    """Return r_ij = f_j(x_i) - y_ij for every point i and output j.

    Raises `InputError` when the numbers of points, targets or outputs disagree.
    """
    if len(X) != len(Y):
        raise InputError(f"{len(X)} points but {len(Y)} target rows")
    outputs = network.layers[-1].fan_out
    rows = []
    for i, (x, targets) in enumerate(zip(X, Y)):
        if len(targets) != outputs:
            raise InputError(f"point {i} has {len(targets)} targets, but the network has {outputs} outputs")
        values = network.forward(x)
        rows.append([value - mpq(target) for value, target in zip(values, targets)])
    return rows


def exact_loss_multi(network: Network, X, Y, loss: str) -> mpq:
    """Return the exact loss over all points and outputs (l1 sum, l2 sum of squares, linf max, hinge, 0-1)."""
    if loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}; valid losses: {', '.join(LOSSES)}")
    if loss in CLASSIFICATION_LOSSES:
        check_labels(Y, loss, "targets")
        # f_j(x_i) = r_ij + y_ij; going through `residuals` keeps its shape checks.
        pairs = [(r + mpq(label), mpq(label)) for row, labels in zip(residuals(network, X, Y), Y)
                 for r, label in zip(row, labels)]
        return classification_loss([f for f, _ in pairs], [label for _, label in pairs], loss)
    values = [r for row in residuals(network, X, Y) for r in row]
    if loss == "l1":
        return sum((abs(r) for r in values), ZERO)
    if loss == "l2":
        return sum((r * r for r in values), ZERO)
    return max((abs(r) for r in values), default=ZERO)


def activation_patterns(network: Network, X) -> list[list[list[int]]]:
    """Return, per hidden layer, n rows of 0/1 entries: 1 where the exact pre-activation is > 0.

    A unit with pre-activation exactly 0 gets 0. ReLU outputs 0 there either
    way, so a verifier should accept both 0 and 1 at such entries.
    """
    patterns: list[list[list[int]]] = [[] for _ in network.layers[:-1]]
    for x in X:
        for layer_index, z in enumerate(network.pre_activations(x)):
            patterns[layer_index].append([1 if value > 0 else 0 for value in z])
    return patterns


def off_grid_parameters(network: Network, frac_bits: int) -> list[str]:
    """Return the names of parameters that are not integer multiples of 2^-frac_bits.

    A rational p/q in lowest terms lies in 2^-frac_bits Z exactly when q
    divides 2^frac_bits, that is, when q is a power of two no larger than it.
    """
    if not isinstance(frac_bits, int) or frac_bits < 0:
        raise InputError(f"frac_bits must be a non-negative integer, got {frac_bits!r}")
    scale = 1 << frac_bits
    return [name for name, value in network.parameters() if scale % int(mpq(value).denominator) != 0]


def outside_box_parameters(network: Network, box) -> list[str]:
    """Return the names of parameters with absolute value above `box`."""
    bound = mpq(box)
    return [name for name, value in network.parameters() if abs(value) > bound]


def first_layer_pattern(network: Network, X: Sequence) -> list[list[int]]:
    """Return the activation pattern of the first hidden layer (n rows of 0/1)."""
    return activation_patterns(network, X)[0]
