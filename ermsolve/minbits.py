"""The smallest fixed-point precision at which loss <= gamma is reachable.

The fixed-point grids are nested (2^-p Z is inside 2^-(p+1) Z), so the optimal
loss can only fall as p grows, and the first p whose optimum is <= gamma is
the answer. Every grid lies inside the box, so when the exact box-domain
optimum is above gamma no precision can reach gamma and the search stops.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

from gmpy2 import mpq

from ermsolve.encodings import TrainingProblem
from ermsolve.rational import bit_length, format_rational

log = logging.getLogger(__name__)


@dataclass
class PrecisionStep:
    frac_bits: int
    answer: str
    basis: str | None
    loss: mpq | None
    max_bits: int | None
    time_s: float


@dataclass
class MinBitsResult:
    threshold: mpq
    frac_bits: int | None
    steps: list[PrecisionStep] = field(default_factory=list)
    box_loss: mpq | None = None
    box_status: str | None = None
    box_max_bits: int | None = None
    reason: str = ""


def min_bits(
    problem: TrainingProblem,
    threshold,
    *,
    max_frac_bits: int = 16,
    solver: str = "cpsat",
    time_limit: float | None = None,
    threads: int = 1,
) -> MinBitsResult:
    """Solve fixed-point models for p = 0, 1, 2, ... until one reaches loss <= `threshold`."""
    from ermsolve.decide import decide
    from ermsolve.train import train

    threshold = mpq(threshold)
    result = MinBitsResult(threshold, None)

    # The box-domain optimum bounds every fixed-point optimum from below.
    box_problem = TrainingProblem(problem.instance, replace(problem.architecture, domain="box", frac_bits=None))
    if box_problem.is_shallow:
        box = train(box_problem, time_limit=time_limit, threads=threads)
        if box.solution is not None:
            result.box_loss, result.box_status = box.solution.loss, box.status
            result.box_max_bits = max(bit_length(v) for _, v in box.solution.network.parameters())
            if box.status == "optimal" and box.solution.loss > threshold:
                result.reason = (
                    f"the box-domain optimum {format_rational(box.solution.loss)} is above the threshold, "
                    "and every fixed-point grid lies inside the box"
                )
                return result

    for frac_bits in range(max_frac_bits + 1):
        started = time.monotonic()
        fixed = TrainingProblem(
            problem.instance, replace(problem.architecture, domain="fixed", frac_bits=frac_bits)
        )
        decision = decide(fixed, threshold, solver=solver, time_limit=time_limit, threads=threads)
        network = None if decision.result is None or decision.result.solution is None else decision.result.solution.network
        step = PrecisionStep(
            frac_bits, decision.answer, decision.basis, decision.best_loss,
            None if network is None else max(bit_length(v) for _, v in network.parameters()),
            time.monotonic() - started,
        )
        result.steps.append(step)
        log.info("p = %d: %s (%s), loss %s", frac_bits, step.answer, step.basis, step.loss)
        if decision.answer == "YES":
            result.frac_bits = frac_bits
            result.reason = f"p = {frac_bits} is the first precision whose optimum is <= the threshold"
            return result
        if decision.answer == "UNKNOWN":
            result.reason = f"p = {frac_bits} could not be decided: {decision.reason}"
            return result

    result.reason = f"no precision up to p = {max_frac_bits} reaches the threshold"
    return result


def _basis_text(basis, solver: str) -> str:
    if basis == "exact":
        return "exact: " + ("CP-SAT integer proof" if solver == "cpsat" else "exact arithmetic")
    if basis == "floating-point":
        return f"floating-point: {solver}'s dual bound"
    return "undecided"


def register_cli(subparsers) -> None:
    from ermsolve.commands import add_problem_arguments
    from ermsolve.arguments import exact_rational, positive_int

    parser = subparsers.add_parser(
        "min-bits",
        help="find the smallest fixed-point precision that reaches loss <= GAMMA",
        description="Solve fixed-point models for p = 0, 1, 2, ... fractional bits and report each "
        "step, then compare with the bits of the exact box-domain optimum.",
    )
    add_problem_arguments(parser)
    # CP-SAT's integer search gives exact answers on the fixed-point grids, so it is the default here.
    parser.set_defaults(solver="cpsat")
    for action in parser._actions:
        if action.dest == "solver":
            action.help = "solver of the fixed-point models (default: cpsat, exact integer search)"
    parser.add_argument("--threshold", required=True, type=exact_rational, metavar="GAMMA",
                        help="loss threshold, exact (e.g. 2/3, 0.25, 1e-3)")
    parser.add_argument("--max-frac-bits", type=positive_int, default=16, metavar="P",
                        help="largest precision to try (default: 16)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--verbose", action="store_true", help="show progress on stderr")
    parser.set_defaults(handler=run_cli)


def run_cli(args) -> int:
    from ermsolve.cli import EXIT_FAILED, EXIT_OK, print_json
    from ermsolve.commands import load_problem

    problem, _ = load_problem(args)
    result = min_bits(problem, args.threshold, max_frac_bits=args.max_frac_bits, solver=args.solver,
                      time_limit=args.time_limit, threads=args.threads)
    if args.json:
        print_json({
            "threshold": format_rational(result.threshold),
            "frac_bits": result.frac_bits,
            "reason": result.reason,
            "steps": [
                {"frac_bits": s.frac_bits, "answer": s.answer, "basis": s.basis,
                 "loss": None if s.loss is None else format_rational(s.loss),
                 "max_bits": s.max_bits, "time_s": round(s.time_s, 6)}
                for s in result.steps
            ],
            "box_loss": None if result.box_loss is None else format_rational(result.box_loss),
            "box_status": result.box_status,
            "box_max_bits": result.box_max_bits,
        })
    else:
        for s in result.steps:
            loss = "none" if s.loss is None else format_rational(s.loss)
            print(f"p = {s.frac_bits:2d}  {s.answer:7s} best loss {loss:>14s}  max bits {s.max_bits}  "
                  f"{s.time_s:.2f} s  ({_basis_text(s.basis, args.solver)})")
        if result.box_loss is not None:
            print(f"box domain: loss {format_rational(result.box_loss)} ({result.box_status}, SCIP "
                  f"floating-point branch and bound, loss exact), max bits {result.box_max_bits}")
        print(f"min precision: {'none' if result.frac_bits is None else result.frac_bits}; {result.reason}")
    return EXIT_OK if result.frac_bits is not None else EXIT_FAILED
