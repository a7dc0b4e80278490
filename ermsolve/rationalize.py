"""Exact parameters from an activation pattern: the fixed-pattern LP or QP solved over Q.

`ermsolve.fixed_pattern` builds the program; `ermsolve.exact_lp` solves it
exactly over the rationals and proves optimality with exact multipliers; this
module maps the answer back to a network in the original box. It never
imports a MIP solver.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gmpy2 import mpq

from ermsolve.encodings.base import TrainingProblem
from ermsolve.errors import RationalizationError
from ermsolve.exact_lp import solve_lp_exact, solve_qp_exact
from ermsolve.fixed_pattern import build_fixed_pattern_program
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
    loss = problem.architecture.loss
    program = build_fixed_pattern_program(problem, signs, pattern)
    if loss == "l2":
        result = solve_qp_exact(program.M, program.t, program.c, program.A_ub, program.b_ub,
                                program.lower, program.upper)
    else:
        result = solve_lp_exact(program.c, program.A_ub, program.b_ub, program.lower, program.upper)

    if result.status != "optimal":
        raise RationalizationError(
            f"the fixed-pattern {'QP' if loss == 'l2' else 'LP'} is {result.status}: "
            "no network in the box has this activation pattern"
        )

    values = result.x
    network = _network_from_normalised(
        [[values[program.w_index(k, j)] for j in range(d)] for k in range(width)],
        [values[program.b_index(k)] for k in range(width)],
        values[program.c_index],
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


def _network_from_normalised(weights, biases, output_bias, signs, box) -> Network:
    """Map (s, w', b', c) back to the original box: v = s R, w = w' / R, b = b' / R."""
    box = mpq(box)
    hidden = Layer(
        tuple(tuple(w / box for w in row) for row in weights),
        tuple(b / box for b in biases),
    )
    output = Layer((tuple(s * box for s in signs),), (mpq(output_bias),))
    return Network((hidden, output), "relu")
