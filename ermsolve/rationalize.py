"""Exact parameters from an activation pattern: the fixed-pattern LP or QP over Q.

With the output signs s and the activation pattern a fixed, the network output
f_i = sum_k a_ik s_k (w'_k . x_i + b'_k) + c is linear in the normalised
parameters, and the pattern itself is a set of linear inequalities
(a_ik = 1: w'_k . x_i + b'_k >= 0, a_ik = 0: <= 0). So the best network with
that pattern solves a linear program (l1, linf) or a convex quadratic program
(l2). `ermsolve.exact_lp` solves it exactly over the rationals and proves
optimality with exact multipliers; this module builds the program and maps the
answer back to a network in the original box. It never imports a MIP solver.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gmpy2 import mpq

from ermsolve.encodings.base import TrainingProblem
from ermsolve.errors import RationalizationError
from ermsolve.exact_lp import solve_lp_exact, solve_qp_exact
from ermsolve.network import Layer, Network, exact_loss

log = logging.getLogger(__name__)


@dataclass
class ExactSolution:
    """The exact optimum over one activation pattern, in the original parameter box."""

    network: Network
    signs: tuple[int, ...]
    pattern: list[list[int]]
    loss: mpq
    method: str
    certified: bool


def rationalize(problem: TrainingProblem, signs, pattern: list[list[int]]) -> ExactSolution:
    """Solve the fixed-pattern program exactly and return the best network with that pattern.

    Raises `RationalizationError` when the pattern is infeasible (no network in
    the box realises it) or the exact solve fails.
    """
    instance, width, d = problem.instance, problem.width, problem.instance.d
    hidden_box, output_box = problem.hidden_box, problem.output_box
    loss = problem.architecture.loss

    # Variables: w'[k][j] at k * d + j, then b'[k], then c, then the loss's auxiliaries.
    def w_index(k, j):
        return k * d + j

    def b_index(k):
        return width * d + k

    c_index = width * d + width
    parameter_count = c_index + 1

    lower = [-hidden_box] * (width * d + width) + [-output_box]
    upper = [hidden_box] * (width * d + width) + [output_box]

    # The activation pattern as inequalities, and each output as a linear form.
    A_ub, b_ub, outputs = [], [], []
    for i, x in enumerate(instance.X):
        output = {c_index: mpq(1)}
        for k in range(width):
            pre_activation = {w_index(k, j): x[j] for j in range(d) if x[j] != 0}
            pre_activation[b_index(k)] = mpq(1)
            active = pattern[i][k]
            A_ub.append({index: (-v if active else v) for index, v in pre_activation.items()})
            b_ub.append(mpq(0))
            if active:
                for index, value in pre_activation.items():
                    output[index] = output.get(index, mpq(0)) + signs[k] * value
        outputs.append({index: v for index, v in output.items() if v != 0})

    if loss == "l2":
        zeros = [mpq(0)] * parameter_count
        result = solve_qp_exact(outputs, list(instance.y), zeros, A_ub, b_ub, lower, upper)
    else:
        A_ub, b_ub, c, lower, upper = _add_error_variables(
            loss, outputs, instance.y, A_ub, b_ub, lower, upper, parameter_count
        )
        result = solve_lp_exact(c, A_ub, b_ub, lower, upper)

    if result.status != "optimal":
        raise RationalizationError(
            f"the fixed-pattern {'QP' if loss == 'l2' else 'LP'} is {result.status}: "
            "no network in the box has this activation pattern"
        )

    values = result.x
    network = _network_from_normalised(
        [[values[w_index(k, j)] for j in range(d)] for k in range(width)],
        [values[b_index(k)] for k in range(width)],
        values[c_index],
        signs,
        problem.architecture.box,
    )
    loss_value = exact_loss(network, instance.X, instance.y, loss)
    if loss_value != result.objective:
        # The program's optimum and the network's loss are the same quantity; a
        # mismatch means the map back is wrong, not a rounding effect.
        raise RationalizationError(
            f"exact loss {loss_value} of the recovered network differs from the fixed-pattern "
            f"optimum {result.objective}"
        )
    log.debug("fixed pattern solved by %s, exact loss %s", result.method, loss_value)
    return ExactSolution(network, tuple(signs), pattern, loss_value, result.method, result.certified)


def _add_error_variables(loss, outputs, targets, A_ub, b_ub, lower, upper, parameter_count):
    """Append e_i >= |f_i - y_i| (l1) or t >= |f_i - y_i| (linf) and the objective over them."""
    n = len(outputs)
    error_count = n if loss == "l1" else 1
    lower = lower + [mpq(0)] * error_count
    upper = upper + [None] * error_count
    c = [mpq(0)] * parameter_count + [mpq(1)] * error_count

    A_ub, b_ub = list(A_ub), list(b_ub)
    for i, (output, target) in enumerate(zip(outputs, targets)):
        error = parameter_count + (i if loss == "l1" else 0)
        # f_i - e <= y_i and -f_i - e <= -y_i
        A_ub.append({**output, error: mpq(-1)})
        b_ub.append(target)
        A_ub.append({**{index: -v for index, v in output.items()}, error: mpq(-1)})
        b_ub.append(-target)
    return A_ub, b_ub, c, lower, upper


def _network_from_normalised(weights, biases, output_bias, signs, box) -> Network:
    """Map (s, w', b', c) back to the original box: v = s R, w = w' / R, b = b' / R."""
    box = mpq(box)
    hidden = Layer(
        tuple(tuple(w / box for w in row) for row in weights),
        tuple(b / box for b in biases),
    )
    output = Layer((tuple(s * box for s in signs),), (mpq(output_bias),))
    return Network((hidden, output), "relu")
