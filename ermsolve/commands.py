"""The `solve` and `verify` subcommands."""

from __future__ import annotations

import math
import sys

from ermsolve.arguments import exact_positive, non_negative_int, positive_int, positive_seconds
from ermsolve.architecture import DOMAINS, LOSSES, Architecture, load_architecture
from ermsolve.backends import BACKENDS
from ermsolve.cli import EXIT_FAILED, EXIT_OK, print_json
from ermsolve.encodings import ENCODINGS, EncodingOptions, TrainingProblem
from ermsolve.encodings.base import SYMMETRY_MODES
from ermsolve.errors import UsageError
from ermsolve.instance import load_instance
from ermsolve.rational import format_decimal, format_rational

DEFAULT_WIDTH = 2


def register_cli(subparsers) -> None:
    solve = subparsers.add_parser(
        "solve",
        help="train a network to proven optimality and write its certificate",
        description="Train a ReLU network to global optimality with a MIP solver and report the exact "
        "loss. One hidden layer over the box gets exact rational parameters from the fixed-pattern "
        "LP or QP; the fixed-point domain is solved in integers; deeper or multi-output networks "
        "over the box get parameters rounded from the solver's floats.",
    )
    add_problem_arguments(solve, solvers_extra=("enumerate", "gd"))
    solve.add_argument("--max-patterns", type=positive_int, metavar="N",
                       help="with --solver enumerate: largest number of fixed-pattern programs to solve "
                       "(default: 20000)")
    solve.add_argument("--restarts", type=positive_int, metavar="N",
                       help="with --solver gd: random starts of gradient descent (default: 100)")
    solve.add_argument("--start", choices=("none", "gd"), default=None,
                       help="MIP start: a short gradient-descent run whose network seeds the MIP of its "
                       "output-sign pattern (gd), or none; by default gd where it applies (regression "
                       "losses, one hidden layer, box domain)")
    solve.add_argument("--seed", type=non_negative_int, default=0, metavar="S",
                       help="with --solver gd: random seed (default: 0)")
    solve.add_argument("--out", metavar="CERT", help="write the certificate to this JSON file")
    solve.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    solve.add_argument("--verbose", action="store_true", help="show progress and the solver's log on stderr")
    solve.set_defaults(handler=run_solve)

    verify = subparsers.add_parser(
        "verify",
        help="check a certificate against an instance with exact arithmetic",
        description="Recompute the loss, the activation pattern and the bit-lengths of a certificate "
        "exactly. No solver is used.",
    )
    verify.add_argument("certificate", metavar="CERT", help="certificate JSON file written by solve")
    verify.add_argument("instance", metavar="INSTANCE", help="the instance CSV the certificate claims to be about")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.set_defaults(handler=run_verify)


def add_problem_arguments(parser, solvers_extra=()) -> None:
    """Add the instance, model and solver options that every training command shares."""
    parser.add_argument("instance", metavar="INSTANCE", help="CSV file: feature columns, then the target column y")
    parser.add_argument("--model", metavar="FILE", help="architecture TOML file (default: width 2, l1 loss, box 1)")
    parser.add_argument("--width", type=positive_int, metavar="K",
                        help="hidden units of a one-hidden-layer model; overrides the model file")
    parser.add_argument("--loss", choices=LOSSES, help="loss; overrides the model file")
    parser.add_argument("--box", type=exact_positive, metavar="R",
                        help="every parameter in [-R, R], exact (e.g. 2, 0.5, 7/3); overrides the model file")
    parser.add_argument("--domain", choices=DOMAINS,
                        help="box: rational parameters; fixed: multiples of 2^-p (needs --frac-bits)")
    parser.add_argument("--frac-bits", type=non_negative_int, metavar="P",
                        help="fractional bits p of the fixed-point domain")
    parser.add_argument("--encoding", default="bigm", choices=sorted(ENCODINGS), help="MIP encoding (default: bigm)")
    parser.add_argument("--solver", default="scip", choices=sorted([*BACKENDS, *solvers_extra]),
                        help="solver (default: scip)")
    parser.add_argument("--symmetry", default="solver", choices=SYMMETRY_MODES,
                        help="permutation symmetry of units: leave it to the solver (default), "
                        "order the biases of units with equal output sign, or switch symmetry handling off")
    parser.add_argument("--time-limit", type=positive_seconds, metavar="S", help="wall-clock limit in seconds")
    parser.add_argument("--threads", type=positive_int, default=1, metavar="N", help="solver threads (default: 1)")


def load_problem(args) -> tuple[TrainingProblem, Architecture]:
    """Load the instance and the architecture with command-line overrides applied."""
    instance = load_instance(args.instance)
    if args.model:
        architecture = load_architecture(args.model)
    else:
        architecture = Architecture(hidden=(DEFAULT_WIDTH,), name="default")
    if args.frac_bits is not None and (args.domain or architecture.domain) != "fixed":
        raise UsageError("--frac-bits applies only to the fixed-point domain; add --domain fixed")
    architecture = architecture.with_overrides(
        width=args.width, loss=args.loss, box=args.box, domain=args.domain, frac_bits=args.frac_bits
    )
    return TrainingProblem(instance, architecture), architecture


def run_solve(args) -> int:
    from ermsolve.certificate import build_certificate, check_writable, write_certificate
    from ermsolve.train import train

    problem, architecture = load_problem(args)
    _check_solver_options(args)
    if args.out:
        check_writable(args.out)
    if args.solver == "enumerate":
        from ermsolve.baselines.enumerate import DEFAULT_LIMIT, solve_by_enumeration

        problem.require_shallow("--solver enumerate")
        result = solve_by_enumeration(problem, max_patterns=args.max_patterns or DEFAULT_LIMIT,
                                      time_limit=args.time_limit)
    elif args.solver == "gd":
        from ermsolve.baselines.gd import DEFAULT_RESTARTS, train_gd

        problem.require_shallow("--solver gd")
        result = train_gd(problem, restarts=args.restarts or DEFAULT_RESTARTS, seed=args.seed,
                          time_limit=args.time_limit)
    else:
        result = train(
            problem,
            encoding=args.encoding,
            solver=args.solver,
            time_limit=args.time_limit,
            threads=args.threads,
            verbose=args.verbose,
            encoding_options=EncodingOptions(symmetry=args.symmetry),
            start=args.start or "auto",
        )

    certificate = None
    if result.solution is not None:
        certificate = build_certificate(problem.instance, architecture, result)
        if args.out:
            write_certificate(certificate, args.out)

    for warning in result.warnings:
        print(f"ermsolve: WARNING: {warning}", file=sys.stderr)

    if args.json:
        print_json(_solve_json(result, certificate, args.out))
    else:
        _print_summary(problem, architecture, result, args.out if certificate else None)
    return EXIT_OK if result.solution is not None else EXIT_FAILED


def _check_solver_options(args) -> None:
    """Reject options that the chosen solver would silently ignore."""
    if args.max_patterns is not None and args.solver != "enumerate":
        raise UsageError("--max-patterns applies only to --solver enumerate")
    if (args.restarts is not None or args.seed != 0) and args.solver != "gd":
        raise UsageError("--restarts and --seed apply only to --solver gd")
    if args.solver in ("enumerate", "gd") and args.start is not None:
        raise UsageError(f"--start applies to MIP solvers, not to --solver {args.solver}")
    if args.solver in ("enumerate", "gd") and args.encoding != "bigm":
        raise UsageError(f"--encoding applies to MIP solvers, not to --solver {args.solver}")


def _solve_json(result, certificate, out) -> dict:
    solution = result.solution
    return {
        "status": result.status,
        "basis": result.basis,
        "loss": None if solution is None else format_rational(solution.loss),
        "loss_decimal": None if solution is None else format_decimal(solution.loss),
        "solver_objective": result.solver_objective,
        "dual_bound": result.dual_bound,
        "gap": result.gap,
        "time_s": round(result.time_s, 6),
        "solve_time_s": round(result.solve_time_s, 6),
        "rationalize_time_s": round(result.rationalize_time_s, 6),
        "nodes": result.nodes,
        "max_bits": None if certificate is None else certificate["bit_lengths"]["max"],
        "solver": result.solver,
        "solver_version": result.solver_version,
        "encoding": result.encoding,
        "warnings": result.warnings,
        "certificate": out if (out and certificate) else certificate,
    }


def _print_summary(problem, architecture, result, out) -> None:
    instance, solution = problem.instance, result.solution
    box = format_rational(architecture.box).removesuffix("/1")
    print(f"instance     {instance.name} (n={instance.n}, d={instance.d})")
    print(f"model        {architecture.name or 'default'}: width {architecture.width}, "
          f"loss {architecture.loss}, box {box}")
    print(f"status       {result.status}: {result.basis}")
    if solution is not None:
        print(f"loss         {format_rational(solution.loss)} (exact) ~ {format_decimal(solution.loss)}")
    source = "exact" if result.solver == "enumerate" else "from the solver, floating-point"
    if result.solver == "gd":
        source = "none: gradient descent proves no bound"
    elif result.solver == "cpsat":
        source = "from CP-SAT's integer search"
    print(f"dual bound   {_float_text(result.dual_bound)} ({source})")
    print(f"gap          {'infinite' if result.gap is None else f'{100 * result.gap:.4g}%'} "
          "(relative gap of the dual bound)")
    if solution is not None and result.dual_bound is not None and float(solution.loss) > result.dual_bound:
        excess = float(solution.loss) - result.dual_bound
        print(f"             the exact loss exceeds the dual bound by {excess:.3g}, "
              "inside the solver's tolerances")
    print(f"time         {result.time_s:.2f} s (solve {result.solve_time_s:.2f} s, "
          f"exact recovery {result.rationalize_time_s:.2f} s)")
    print(f"nodes        {result.nodes}")
    if solution is not None:
        bits = max(bit for bit in _parameter_bits(solution.network))
        print(f"max bits     {bits}")
    print(f"solver       {result.solver_version}, encoding {result.encoding}")
    if out:
        print(f"certificate  {out}")


def _parameter_bits(network):
    from ermsolve.rational import bit_length

    return [bit_length(value) for _, value in network.parameters()]


def _float_text(value) -> str:
    return "none" if value is None or not math.isfinite(value) else f"{value:.12g}"


def run_verify(args) -> int:
    from ermsolve.certificate import read_certificate, verify_certificate

    certificate = read_certificate(args.certificate)
    instance = load_instance(args.instance)
    check = verify_certificate(certificate, instance)

    if args.json:
        print_json({
            "valid": check.valid,
            "optimality_claim_checked": False,
            "pattern_optimal": check.pattern_optimal,
            "problems": check.problems,
            "loss": None if check.loss is None else format_rational(check.loss),
            "max_bits": check.max_bits,
            "max_bound_ratio": check.max_bound_ratio,
            "bound_method": check.bound_method,
        })
    elif check.valid:
        print("valid")
        print(f"loss {format_rational(check.loss)} ~ {format_decimal(check.loss)} recomputed exactly; "
              f"max bit-length {check.max_bits}")
        if check.max_bound_ratio is not None:
            print(f"every parameter within its theoretical bit-length bound "
                  f"(largest ratio {check.max_bound_ratio:.3f}; {check.bound_method})")
        if check.pattern_optimal:
            print("optimal for its activation pattern and output signs: proved exactly "
                  "(KKT multipliers of the fixed-pattern program checked in rational arithmetic)")
        claim = certificate.get("optimality", {})
        print(f"not re-checked: the optimality claim {claim.get('status')!r} over all activation "
              f"patterns, which rests on: {claim.get('basis')}")
    else:
        print("invalid")
        for problem in check.problems:
            print(f"  {problem}")
    return EXIT_OK if check.valid else EXIT_FAILED
