"""The result type and options shared by every solver backend."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Our statuses. A backend maps each of its solver's statuses to one of these.
OPTIMAL = "optimal"          # the solver proved its incumbent optimal (within its tolerances)
TIME_LIMIT = "time_limit"    # a limit stopped the search; incumbent and dual bound are reported
INFEASIBLE = "infeasible"    # proved infeasible, or no solution better than the objective limit
CUTOFF = "cutoff"            # no solution better than the objective limit exists (pruned)
INTERRUPTED = "interrupted"  # stopped by the user or a signal
ERROR = "error"


@dataclass
class SolveOptions:
    time_limit: float | None = None
    threads: int = 1
    verbose: bool = False
    # Only solutions with objective below this are wanted; the backend may prune with it.
    objective_limit: float | None = None
    # A MIP start: one value per model variable (None where unknown).
    start: list[float | None] | None = None
    solver_parameters: dict = field(default_factory=dict)


@dataclass
class SolveResult:
    """The result of a solve, in the same form for every backend."""

    status: str
    solver: str
    solver_version: str
    raw_status: str
    values: list[float] | None = None
    objective: float | None = None
    dual_bound: float | None = None
    nodes: int | None = None
    time_s: float = 0.0
    log: list[str] = field(default_factory=list)

    @property
    def has_solution(self) -> bool:
        return self.values is not None


# SCIP's default feasibility tolerance is 1e-6, and the objective can drift by a few
# multiples of it over the loss terms, so the slack is 1e-6 relative plus 1e-6 per term.
FEASIBILITY_TOLERANCE = 1e-6


def objective_tolerance(value: float, terms: int) -> float:
    """Slack allowed between an exact loss and a float solver value near `value`, for `terms` loss terms."""
    return FEASIBILITY_TOLERANCE * (max(1.0, abs(value)) + terms)


def relative_gap(primal: float | None, dual: float | None) -> float | None:
    """SCIP's gap |primal - dual| / min(|primal|, |dual|); 0 when equal, None when unbounded."""
    if primal is None or dual is None or not math.isfinite(primal) or not math.isfinite(dual):
        return None
    if primal == dual:
        return 0.0
    if primal * dual <= 0:
        # The primal and dual bound have different signs or one is zero: SCIP reports an infinite gap.
        return None
    return abs(primal - dual) / min(abs(primal), abs(dual))
