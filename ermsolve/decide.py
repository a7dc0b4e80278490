"""The decision version of ERM: is there a network in the domain with loss <= gamma?

Answers are YES (with a certificate whose exact loss is <= gamma), NO (with the
basis of the proof) or UNKNOWN. NO is `exact` only when exact arithmetic
proves it: the enumeration of activation patterns, or CP-SAT on the
fixed-point domain, whose integer reasoning has no tolerances. A NO from a
floating-point MIP solver means its dual bound exceeded gamma by more than its
tolerance, and says so.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from gmpy2 import mpq

from ermsolve.backends import SolveOptions, get_backend
from ermsolve.backends.base import CUTOFF, TIME_LIMIT, objective_tolerance
from ermsolve.encodings import EncodingOptions, TrainingProblem, get_encoding, sign_patterns
from ermsolve.rational import bit_length, format_rational
from ermsolve.train import TrainResult, _finish, _signs_text, train

log = logging.getLogger(__name__)

YES, NO, UNKNOWN = "YES", "NO", "UNKNOWN"
EXACT, FLOATING_POINT = "exact", "floating-point"


@dataclass
class Decision:
    answer: str
    basis: str | None
    reason: str
    threshold: mpq
    result: TrainResult | None = None
    best_loss: mpq | None = None
    dual_bound: float | None = None
    time_s: float = 0.0
    steps: list[str] = field(default_factory=list)


def decide(
    problem: TrainingProblem,
    threshold,
    *,
    solver: str = "scip",
    encoding: str = "bigm",
    time_limit: float | None = None,
    threads: int = 1,
    verbose: bool = False,
    max_bits: int | None = None,
    max_patterns: int | None = None,
    exact_no: bool = True,
) -> Decision:
    """Decide whether some network has exact loss <= `threshold`, stopping as soon as it is known."""
    threshold = mpq(threshold)
    started = time.monotonic()
    if threshold < 0:
        return Decision(NO, EXACT, "every loss is non-negative, and the threshold is negative", threshold)

    if solver == "enumerate":
        decision = _decide_by_enumeration(problem, threshold, time_limit, max_patterns)
    elif problem.is_shallow:
        decision = _decide_by_mip(problem, threshold, solver, encoding, time_limit, threads, verbose)
        if decision.answer != YES and exact_no:
            decision = _upgrade_with_enumeration(problem, decision, time_limit, started, max_patterns)
    else:
        decision = _decide_by_optimising(problem, threshold, solver, time_limit, threads, verbose)

    _apply_bit_limit(decision, max_bits)
    decision.time_s = time.monotonic() - started
    return decision


def _decide_by_mip(problem, threshold, solver, encoding, time_limit, threads, verbose) -> Decision:
    """Decide with one MIP per output-sign pattern, cut off just above gamma and stopped at the first good incumbent."""
    encoder, backend = get_encoding(encoding), get_backend(solver)
    if getattr(encoder, "sign_binaries", False):
        patterns = [None]
    else:
        patterns = sign_patterns(problem.width)
    tolerance = objective_tolerance(float(threshold), problem.instance.n)
    cutoff = float(threshold) + tolerance
    started = time.monotonic()
    decision = Decision(UNKNOWN, None, "", threshold)
    inconclusive = []
    best = None

    for signs in patterns:
        remaining = None if time_limit is None else time_limit - (time.monotonic() - started)
        if remaining is not None and remaining <= 0:
            inconclusive.append(f"output signs {_signs_text(signs)} not searched before the time limit")
            continue
        encoded = encoder.build(problem, signs, EncodingOptions())
        parameters = {"limits/primal": float(threshold)} if solver == "scip" else {}
        options = SolveOptions(time_limit=remaining, threads=threads, verbose=verbose,
                               objective_limit=cutoff, solver_parameters=parameters)
        result = backend.solve(encoded.model, options)
        decision.steps.append(
            f"output signs {_signs_text(signs)}: {result.status}, objective {result.objective}, "
            f"dual bound {result.dual_bound}"
        )
        log.info(decision.steps[-1])

        if result.status == CUTOFF:
            continue
        if result.has_solution:
            finished = _finish(problem, encoder.name, backend, [], (result.objective, encoded, result.values),
                               started, time.monotonic() - started, time_limit, threads)
            # Solved under a cutoff for one sign pattern: the network is feasible, not proven optimal.
            finished.status = "feasible"
            finished.dual_bound, finished.gap = result.dual_bound, None
            finished.basis = "found while deciding a threshold; no optimality claim"
            solution = finished.solution
            if solution is not None and (best is None or solution.loss < best.solution.loss):
                best = finished
            if solution is not None and solution.loss <= threshold:
                finished.basis = (f"exact loss {format_rational(solution.loss)} <= threshold "
                                  f"{format_rational(threshold)}, checked in rational arithmetic")
                return Decision(YES, EXACT, finished.basis, threshold, finished, solution.loss,
                                result.dual_bound, steps=decision.steps)
            inconclusive.append(
                f"output signs {_signs_text(signs)}: the solver's best network has exact loss "
                f"{'unknown' if solution is None else format_rational(solution.loss)} above the threshold, "
                f"but the solver ({result.raw_status}, dual bound {result.dual_bound}) did not prove "
                f"every network worse than threshold + tolerance {tolerance:.3g}"
            )
        elif result.status == TIME_LIMIT:
            inconclusive.append(f"output signs {_signs_text(signs)}: time limit, dual bound {result.dual_bound}")
        else:
            inconclusive.append(f"output signs {_signs_text(signs)}: solver status {result.status}")

    decision.result = best
    decision.best_loss = None if best is None else best.solution.loss
    if not inconclusive:
        decision.answer, decision.basis = NO, FLOATING_POINT
        decision.reason = (
            f"{backend.version()} proved every output-sign pattern has dual bound above "
            f"threshold + tolerance = {cutoff:.12g} (floating-point branch and bound)"
        )
        decision.dual_bound = cutoff
    else:
        decision.reason = "; ".join(inconclusive)
    return decision


def _decide_by_enumeration(problem, threshold, time_limit, max_patterns) -> Decision:
    from ermsolve.baselines.enumerate import solve_by_enumeration

    kwargs = {} if max_patterns is None else {"max_patterns": max_patterns}
    result = solve_by_enumeration(problem, time_limit=time_limit, **kwargs)
    return _decision_from_optimum(result, threshold, EXACT)


def _upgrade_with_enumeration(problem, decision, time_limit, started, max_patterns) -> Decision:
    """Replace a floating-point NO or an UNKNOWN by the exact answer of enumeration, when it fits the limit."""
    try:
        from ermsolve.baselines.enumerate import DEFAULT_LIMIT, count_patterns, solve_by_enumeration
    except ImportError:
        return decision
    limit = DEFAULT_LIMIT if max_patterns is None else max_patterns
    if not problem.is_shallow or count_patterns(problem, limit=limit) > limit:
        return decision
    remaining = None if time_limit is None else time_limit - (time.monotonic() - started)
    if remaining is not None and remaining <= 0:
        return decision
    result = solve_by_enumeration(problem, max_patterns=limit, time_limit=remaining)
    upgraded = _decision_from_optimum(result, decision.threshold, EXACT)
    if upgraded.answer == UNKNOWN:
        return decision
    best = "none" if result.solution is None else format_rational(result.solution.loss)
    upgraded.steps = decision.steps + [f"enumeration: {result.status}, best exact loss {best}"]
    if decision.answer == NO and upgraded.answer == YES:
        upgraded.reason += "; WARNING: the MIP solver had answered NO in floating point"
    return upgraded


def _decide_by_optimising(problem, threshold, solver, time_limit, threads, verbose) -> Decision:
    """Fixed-point domain and deeper networks: optimise fully and compare the exact loss with gamma."""
    # NOTE: these paths optimise to the end instead of stopping at the first incumbent below gamma.
    result = train(problem, solver=solver, time_limit=time_limit, threads=threads, verbose=verbose)
    exact_proof = problem.architecture.domain == "fixed" and solver == "cpsat"
    return _decision_from_optimum(result, threshold, EXACT if exact_proof else FLOATING_POINT)


def _decision_from_optimum(result: TrainResult, threshold, no_basis: str) -> Decision:
    solution = result.solution
    decision = Decision(UNKNOWN, None, "", threshold, result,
                        None if solution is None else solution.loss, result.dual_bound)
    if solution is not None and solution.loss <= threshold:
        decision.answer, decision.basis = YES, EXACT
        decision.reason = (f"exact loss {format_rational(solution.loss)} <= threshold "
                           f"{format_rational(threshold)}, checked in rational arithmetic")
        return decision
    if result.status != "optimal" or solution is None:
        decision.reason = f"{result.status}: {result.basis}"
        return decision

    if no_basis == EXACT:
        decision.answer, decision.basis = NO, EXACT
        decision.reason = (f"the optimum is exactly {format_rational(solution.loss)} > threshold "
                           f"({result.basis})")
        return decision
    tolerance = objective_tolerance(float(threshold), len(solution.pattern))
    if result.dual_bound is not None and result.dual_bound > float(threshold) + tolerance:
        decision.answer, decision.basis = NO, FLOATING_POINT
        decision.reason = (f"the solver's dual bound {result.dual_bound:.12g} exceeds the threshold by more "
                           f"than its tolerance {tolerance:.3g} ({result.basis})")
    else:
        decision.reason = (f"the optimum {format_rational(solution.loss)} is above the threshold, but the dual "
                           f"bound {result.dual_bound} is within the solver's tolerance of it")
    return decision


def _apply_bit_limit(decision: Decision, max_bits: int | None) -> None:
    if max_bits is None or decision.answer != YES:
        return
    network = decision.result.solution.network
    largest = max(bit_length(value) for _, value in network.parameters())
    if largest > max_bits:
        decision.answer, decision.basis = UNKNOWN, None
        decision.reason = (
            f"a network with loss <= threshold exists, but its parameters need {largest} bits, more than "
            f"--max-bits {max_bits}; whether one within {max_bits} bits exists is not decided "
            "(try the fixed-point domain or min-bits)"
        )
