"""Exact parameters from an activation pattern: the fixed-pattern LP or QP solved over Q.

`ermsolve.fixed_pattern` builds the program, and `ermsolve.exact_lp` solves it
exactly over the rationals and proves optimality with exact multipliers. This
module maps the solution back to a network in the original box. It never
imports a MIP solver.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import combinations

from gmpy2 import mpq

from ermsolve.encodings.base import TrainingProblem
from ermsolve.errors import RationalizationError
from ermsolve.exact_lp import solve_lp_exact, solve_qp_exact
from ermsolve.fixed_pattern import build_fixed_pattern_program
from ermsolve.network import Layer, Network, exact_loss

log = logging.getLogger(__name__)


class PatternInfeasibleError(RationalizationError):
    """The exact program proved that no network with the pattern (and, for 0-1, the set S) exists."""


@dataclass
class ExactSolution:
    """The exact optimum over one activation pattern, in the original parameter box."""

    network: Network
    signs: tuple[int, ...]
    pattern: list[list[int]]
    loss: mpq
    method: str
    certified: bool
    # Exact KKT multipliers of the fixed-pattern program that prove this network optimal for
    # its pattern and output signs; None where no such proof exists (0-1 loss, other paths).
    duals: dict | None = None


def rationalize(problem: TrainingProblem, signs, pattern: list[list[int]], misclassified=()) -> ExactSolution:
    """Solve the fixed-pattern program exactly and return the best network with that pattern.

    For the 0-1 loss, `misclassified` is the set S of points the network may
    get wrong. The program maximises the margin on the other points, and the
    returned loss is the exact error count of the recovered network, at most |S|.

    Raises `PatternInfeasibleError` when no network in the box realises the
    pattern or, for the 0-1 loss, when no network with the pattern separates
    the points outside S strictly. Raises `RationalizationError` when the
    exact solve fails.
    """
    instance, width, d = problem.instance, problem.width, problem.instance.d
    loss = problem.architecture.loss
    program = build_fixed_pattern_program(problem, signs, pattern, misclassified)
    if loss == "l2":
        result = solve_qp_exact(program.M, program.t, program.c, program.A_ub, program.b_ub,
                                program.lower, program.upper)
    else:
        result = solve_lp_exact(program.c, program.A_ub, program.b_ub, program.lower, program.upper)

    if result.status == "infeasible":
        raise PatternInfeasibleError(
            f"the fixed-pattern {'QP' if loss == 'l2' else 'LP'} is infeasible: "
            "no network in the box has this activation pattern"
        )
    if result.status != "optimal":
        raise RationalizationError(
            f"the exact solve of the fixed-pattern {'QP' if loss == 'l2' else 'LP'} "
            f"ended with status {result.status}"
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
    if loss == "zero_one":
        # The objective is -t: a margin of 0 means some point outside S has f = 0 at best.
        if result.objective >= 0:
            raise PatternInfeasibleError(
                f"no network with this pattern separates the {instance.n - len(set(misclassified))} "
                "points outside the misclassified set strictly (exact maximum margin 0)"
            )
        if loss_value > len(set(misclassified)):
            raise RationalizationError(
                f"the recovered network misclassifies {loss_value} points, more than the "
                f"{len(set(misclassified))} allowed; the map back is wrong"
            )
    elif loss_value != result.objective:
        # The program's optimum and the network's loss are the same quantity; a
        # mismatch means the map back is wrong, not a rounding effect.
        raise RationalizationError(
            f"exact loss {loss_value} of the recovered network differs from the fixed-pattern "
            f"optimum {result.objective}"
        )
    log.debug("fixed pattern solved by %s, exact loss %s", result.method, loss_value)
    duals = None if loss == "zero_one" else result.duals
    return ExactSolution(network, tuple(signs), pattern, loss_value, result.method, result.certified, duals)


def rationalize_zero_one_search(problem: TrainingProblem, signs, pattern, below: int | None = None) -> ExactSolution:
    """Return the network with this pattern and the fewest 0-1 errors, by trying sets S by size.

    Sets S of size 0, 1, ... are tried in turn, so the first S whose margin
    program has a positive optimum gives the exact minimum for the pattern.
    With `below`, only sizes smaller than it are tried. The number of programs
    grows like 2^n, so this is for the enumeration oracle on tiny instances.
    Raises `PatternInfeasibleError` when no size below the limit works.
    """
    n = problem.instance.n
    limit = n + 1 if below is None else min(below, n + 1)
    for size in range(limit):
        for misclassified in combinations(range(n), size):
            try:
                return rationalize(problem, signs, pattern, misclassified)
            except PatternInfeasibleError:
                continue
    raise PatternInfeasibleError(f"no network with this pattern has fewer than {limit} errors")


def _network_from_normalised(weights, biases, output_bias, signs, box) -> Network:
    """Map (s, w', b', c) back to the original box: v = s R, w = w' / R, b = b' / R."""
    box = mpq(box)
    hidden = Layer(
        tuple(tuple(w / box for w in row) for row in weights),
        tuple(b / box for b in biases),
    )
    output = Layer((tuple(s * box for s in signs),), (mpq(output_bias),))
    return Network((hidden, output), "relu")
