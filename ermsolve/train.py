"""Solve a training problem to optimality: one MIP per output-sign pattern, then exact recovery.

The flow is encoding -> backend -> rationalisation. Each output-sign pattern
(counted by its number of positive units) gets its own MIP. The incumbent of
earlier patterns is passed on as an objective limit, so a later MIP only looks
for strictly better networks and stops once it has proved there are none.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace

from gmpy2 import mpq

from ermsolve.backends import SolveOptions, get_backend
from ermsolve.backends.base import CUTOFF, OPTIMAL, TIME_LIMIT, objective_tolerance, relative_gap
from ermsolve.classification import zero_one_margin
from ermsolve.encodings import EncodingOptions, TrainingProblem, get_encoding, sign_patterns
from ermsolve.errors import RationalizationError, UsageError
from ermsolve.network import Layer, Network
from ermsolve.rational import format_rational
from ermsolve.rationalize import ExactSolution, rationalize

log = logging.getLogger(__name__)


@dataclass
class SignRun:
    """The MIP of one output-sign pattern and how it ended."""

    signs: tuple[int, ...]
    status: str
    objective: float | None
    dual_bound: float | None
    nodes: int | None
    time_s: float
    variables: int = 0
    binaries: int = 0
    constraints: int = 0


@dataclass
class TrainResult:
    status: str  # "optimal", "time_limit", "unproven", "infeasible" or "error"
    basis: str
    solution: ExactSolution | None
    solver: str
    solver_version: str
    encoding: str
    solver_objective: float | None
    dual_bound: float | None
    gap: float | None
    nodes: int
    time_s: float
    solve_time_s: float
    rationalize_time_s: float
    runs: list[SignRun] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    time_limit: float | None = None
    threads: int = 1


def train(
    problem: TrainingProblem,
    *,
    encoding: str = "bigm",
    solver: str = "scip",
    time_limit: float | None = None,
    threads: int = 1,
    verbose: bool = False,
    encoding_options: EncodingOptions | None = None,
    solver_parameters: dict | None = None,
    start: str = "auto",
) -> TrainResult:
    """Train `problem` to global optimality, or as far as `time_limit` (seconds) allows.

    One hidden layer with one output over the box goes through the MIP per
    output-sign pattern and the exact fixed-pattern recovery. The fixed-point
    domain and deeper or multi-output networks have paths of their own.
    With `start="gd"`, a short gradient-descent run gives the MIP of its
    output-sign pattern a starting solution, and that pattern is solved first.
    `start="auto"` (the default) does so wherever gradient descent applies
    (regression losses) and the encoding does not forbid it.
    """
    if start not in START_MODES:
        raise UsageError(f"unknown start {start!r}; valid starts: {', '.join(START_MODES)}")
    if problem.architecture.domain == "fixed":
        from ermsolve.fixedpoint import train_fixed_point

        return train_fixed_point(problem, solver=solver, time_limit=time_limit, threads=threads,
                                 verbose=verbose, solver_parameters=solver_parameters)
    if not problem.is_shallow:
        from ermsolve.deep import train_deep

        return train_deep(problem, solver=solver, time_limit=time_limit, threads=threads,
                          verbose=verbose, solver_parameters=solver_parameters)

    encoder, backend = get_encoding(encoding), get_backend(solver)
    if start == "auto":
        applies = problem.architecture.loss in ("l1", "l2", "linf") and getattr(encoder, "uses_start", True)
        start = "gd" if applies else "none"
    encoding_options = encoding_options or EncodingOptions()
    solver_parameters = dict(solver_parameters or {})
    if encoding_options.symmetry == "none" and solver in ("scip", "mathopt-scip"):
        solver_parameters.setdefault("misc/usesymmetry", 0)
    if solver in ("scip", "mathopt-scip"):
        # An encoding may fix SCIP parameters that belong to its definition (the naive baseline).
        for key, value in getattr(encoder, "solver_parameters", {}).items():
            solver_parameters.setdefault(key, value)

    started = time.monotonic()
    runs: list[SignRun] = []
    incumbent = None  # (objective, encoded model, values)
    # An encoding that chooses the output signs itself is solved once.
    patterns = [None] if getattr(encoder, "sign_binaries", False) else sign_patterns(problem.width)
    heuristic = _heuristic_start(problem, time_limit) if start == "gd" else None
    if heuristic is not None and patterns != [None]:
        # Solve the start's sign pattern first, so its incumbent cuts off the other patterns.
        patterns.sort(key=lambda signs: signs != heuristic.signs)

    for signs in patterns:
        remaining = None if time_limit is None else time_limit - (time.monotonic() - started)
        if remaining is not None and remaining <= 0:
            runs.append(SignRun(signs, TIME_LIMIT, None, None, 0, 0.0))
            continue
        if incumbent is not None and incumbent[0] <= 0:
            # A loss is never negative, so a zero incumbent cannot be improved.
            runs.append(SignRun(signs, CUTOFF, None, 0.0, 0, 0.0))
            continue

        deadline = None if time_limit is None else started + time_limit
        encoded = encoder.build(problem, signs, replace(encoding_options, deadline=deadline))
        counts = encoded.model.count()
        options = SolveOptions(
            time_limit=remaining,
            threads=threads,
            verbose=verbose,
            objective_limit=None if incumbent is None else incumbent[0],
            solver_parameters=solver_parameters,
        )
        if heuristic is not None and (signs is None or signs == heuristic.signs):
            options.start = start_values(problem, encoded, heuristic)
        log.info("solving output signs %s: %d binaries, %d constraints",
                 _signs_text(signs), counts["binary"], counts["linear"])
        result = backend.solve(encoded.model, options)
        runs.append(
            SignRun(signs, result.status, result.objective, result.dual_bound, result.nodes,
                    result.time_s, counts["variables"], counts["binary"], counts["linear"])
        )
        log.info("output signs %s: %s, objective %s, dual bound %s, %s nodes, %.2f s",
                 _signs_text(signs), result.status, result.objective, result.dual_bound,
                 result.nodes, result.time_s)
        if result.status == CUTOFF:
            runs[-1].dual_bound = options.objective_limit
        if result.has_solution and (incumbent is None or result.objective < incumbent[0]):
            incumbent = (result.objective, encoded, result.values)

    solve_time = time.monotonic() - started
    return _finish(problem, encoder.name, backend, runs, incumbent, started, solve_time, time_limit, threads)


START_MODES = ("auto", "none", "gd")
# A short gradient-descent run: enough to land in a good basin on small instances.
START_RESTARTS, START_STEPS = 20, 500


def _heuristic_start(problem, time_limit):
    """Run gradient descent briefly and return its exact solution with units sorted positives first."""
    from ermsolve.baselines.gd import train_gd

    budget = None if time_limit is None else max(time_limit / 10, 0.1)
    result = train_gd(problem, restarts=START_RESTARTS, steps=START_STEPS, seed=0, time_limit=budget)
    solution = result.solution
    if solution is None:
        return None
    order = sorted(range(problem.width), key=lambda k: -solution.signs[k])
    hidden, output = solution.network.layers
    network = Network(
        (
            Layer(tuple(hidden.W[k] for k in order), tuple(hidden.b[k] for k in order)),
            Layer((tuple(output.W[0][k] for k in order),), output.b),
        ),
        solution.network.activation,
    )
    pattern = [[row[k] for k in order] for row in solution.pattern]
    log.info("gradient-descent start: exact loss %s", solution.loss)
    return ExactSolution(network, tuple(solution.signs[k] for k in order), pattern, solution.loss,
                         solution.method, solution.certified)


def start_values(problem, encoded, solution) -> list:
    """Build a partial MIP start from an exact network: normalised parameters and activation binaries.

    The solver completes the activations and errors itself.
    """
    values = [None] * len(encoded.model.variables)
    hidden, output = solution.network.layers
    for k in range(problem.width):
        # w' = |v| w with v = +-R in the recovered network.
        scale = abs(output.W[0][k])
        for j, var in enumerate(encoded.weights[k]):
            values[var] = float(hidden.W[k][j] * scale)
        values[encoded.biases[k]] = float(hidden.b[k] * scale)
    values[encoded.output_bias] = float(output.b[0])
    for i, row in enumerate(encoded.activation):
        for k, var in enumerate(row):
            if isinstance(var, int):
                values[var] = float(solution.pattern[i][k])
    if encoded.sign_variables is not None:
        for k, var in enumerate(encoded.sign_variables):
            values[var] = 1.0 if solution.signs[k] > 0 else 0.0
    return values


def _finish(problem, encoding_name, backend, runs, incumbent, started, solve_time, time_limit, threads):
    proven = all(run.status in (OPTIMAL, CUTOFF) for run in runs)
    objective = None if incumbent is None else incumbent[0]
    dual_bound = _combined_dual_bound(runs, objective)
    result = TrainResult(
        status="optimal" if proven and incumbent is not None else "time_limit",
        basis="",
        solution=None,
        solver=backend.name,
        solver_version=backend.version(),
        encoding=encoding_name,
        solver_objective=objective,
        dual_bound=dual_bound,
        gap=relative_gap(objective, dual_bound),
        nodes=sum(run.nodes or 0 for run in runs),
        time_s=0.0,
        solve_time_s=solve_time,
        rationalize_time_s=0.0,
        runs=runs,
        time_limit=time_limit,
        threads=threads,
    )
    if any(run.status not in (OPTIMAL, CUTOFF, TIME_LIMIT) for run in runs):
        failed = [run for run in runs if run.status not in (OPTIMAL, CUTOFF, TIME_LIMIT)]
        result.status = "error"
        result.warnings.append(
            "the solver ended with status "
            + ", ".join(f"{run.status} on output signs {_signs_text(run.signs)}" for run in failed)
        )

    if incumbent is not None:
        rationalize_started = time.monotonic()
        result.solution = _rationalize_incumbent(problem, incumbent, result.warnings)
        result.rationalize_time_s = time.monotonic() - rationalize_started

    result.time_s = time.monotonic() - started
    _state_basis(result, problem)
    return result


def _combined_dual_bound(runs, objective):
    """Return the smallest dual bound over all sign patterns; a pattern not yet solved contributes 0."""
    bounds = []
    for run in runs:
        if run.status == OPTIMAL:
            bounds.append(run.objective if run.dual_bound is None else run.dual_bound)
        elif run.dual_bound is not None and math.isfinite(run.dual_bound):
            bounds.append(max(run.dual_bound, 0.0))
        else:
            bounds.append(0.0)
    bound = min(bounds) if bounds else 0.0
    return bound if objective is None else min(bound, objective)


def _rationalize_incumbent(problem, incumbent, warnings) -> ExactSolution | None:
    """Recover exact parameters from the incumbent's activation pattern.

    The pattern read from the activation binaries is tried first. If the exact
    program for it is infeasible (the float incumbent used the feasibility
    tolerance to straddle a kink), the pattern of the signs of the float
    pre-activations is tried next.
    """
    objective, encoded, values = incumbent
    signs = encoded.output_signs(values)
    float_pattern = _pattern_from_values(problem, encoded, values)
    candidates = [
        ("activation binaries", encoded.activation_pattern(values), encoded.misclassified_points(values)),
        ("float pre-activations", float_pattern, _misclassified_from_values(problem, encoded, values, float_pattern)),
    ]

    errors = []
    for source, pattern, misclassified in candidates:
        try:
            solution = rationalize(problem, signs, pattern, misclassified)
        except RationalizationError as error:
            errors.append(f"{source}: {error}")
            log.warning("exact recovery from the pattern of the %s failed: %s", source, error)
            continue
        if source != "activation binaries":
            warnings.append(f"exact parameters were recovered from the pattern of the {source}")
        return solution

    warnings.append("exact recovery failed: " + "; ".join(errors))
    return None


def _misclassified_from_values(problem, encoded, values, pattern) -> tuple[int, ...]:
    """Return, for the 0-1 loss, the points whose float margin y_i f_i is below half the MIP margin mu."""
    if problem.architecture.loss != "zero_one":
        return ()
    signs = encoded.output_signs(values)
    weights = [[values[v] for v in row] for row in encoded.weights]
    biases = [values[v] for v in encoded.biases]
    threshold = float(zero_one_margin(problem.architecture.box)) / 2
    misclassified = []
    for i, (x, label) in enumerate(zip(problem.instance.X_float, problem.instance.y_float)):
        output = values[encoded.output_bias] + sum(
            sign * active * (sum(w * xj for w, xj in zip(row, x)) + bias)
            for sign, active, row, bias in zip(signs, pattern[i], weights, biases)
        )
        if label * output < threshold:
            misclassified.append(i)
    return tuple(misclassified)


def _pattern_from_values(problem, encoded, values):
    weights = [[values[v] for v in row] for row in encoded.weights]
    biases = [values[v] for v in encoded.biases]
    pattern = []
    for x in problem.instance.X_float:
        pattern.append([
            1 if sum(w * xj for w, xj in zip(row, x)) + bias > 0 else 0
            for row, bias in zip(weights, biases)
        ])
    return pattern


def _state_basis(result: TrainResult, problem) -> None:
    """Write what the optimality claim rests on, and downgrade it when the exact loss disagrees."""
    solution = result.solution
    if solution is None:
        if result.solver_objective is None:
            result.basis = "no solution found"
            if result.status == "optimal":
                result.status = "error"
        else:
            result.status = "error"
            result.basis = "the solver found a solution, but exact recovery failed"
        return

    exact = float(solution.loss)
    objective = result.solver_objective
    tolerance = objective_tolerance(objective, problem.instance.n)
    if exact > objective + tolerance:
        result.warnings.append(
            f"EXACT LOSS IS WORSE THAN THE SOLVER'S OBJECTIVE: exact {exact!r} versus solver "
            f"{objective!r}, difference {exact - objective:.3g} beyond the tolerance {tolerance:.3g}"
        )

    if solution.loss == 0:
        result.status = "optimal"
        result.basis = "exact: the recovered network has loss 0, the smallest possible loss"
        result.dual_bound = 0.0
        result.gap = 0.0
        return

    patterns = len(result.runs)
    exact_step = f"fixed-pattern {'QP' if problem.architecture.loss == 'l2' else 'LP'} solved exactly ({solution.method})"
    if problem.architecture.loss == "zero_one":
        exact_step = f"maximum-margin LP of the pattern solved exactly ({solution.method})"
        if result.status == "optimal":
            # The MIP's fixed margin mu makes its optimum an upper bound only; see ermsolve.classification.
            margin = format_rational(zero_one_margin(problem.architecture.box))
            result.status = "unproven"
            result.basis = (
                f"{result.solver} proved that no network in the box has fewer errors when every correctly "
                f"classified point needs margin y f >= {margin}; a network with smaller margins could have "
                f"fewer errors, so 0-1 optimality is not proven; {exact_step}"
            )
            return
    if result.status == "optimal":
        if result.dual_bound is not None and exact > result.dual_bound + tolerance:
            result.status = "unproven"
            result.basis = (
                f"{result.solver} reported optimality, but the exact loss {exact:.12g} exceeds its dual bound "
                f"{result.dual_bound:.12g} beyond tolerance; optimality is not proven"
            )
        else:
            result.basis = (
                f"{result.solver_version.split(' (')[0]} floating-point branch and bound, "
                f"{_pattern_count_text(patterns)}, gap 0 within its tolerances; {exact_step}"
            )
    elif result.status == "time_limit":
        gap = "infinite" if result.gap is None else f"{100 * result.gap:.2f}%"
        result.basis = f"time limit reached, gap {gap}; optimality not proven; {exact_step}"
    else:
        result.basis = f"the solver stopped with an error; {exact_step}"


def _pattern_count_text(count: int) -> str:
    if count == 1:
        return "one MIP covering every output-sign pattern"
    return f"one MIP per output-sign pattern ({count} MIPs)"


def _signs_text(signs) -> str:
    if signs is None:
        return "(chosen by the MIP)"
    return "".join("+" if s > 0 else "-" for s in signs)
