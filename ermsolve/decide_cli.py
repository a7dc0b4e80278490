"""The `decide` subcommand: exit 0 for YES, 10 for NO, 20 for UNKNOWN, 2 for bad input."""

from __future__ import annotations

from ermsolve.cli import print_json
from ermsolve.arguments import exact_rational, positive_int
from ermsolve.rational import format_decimal, format_rational

EXIT_YES, EXIT_NO, EXIT_UNKNOWN = 0, 10, 20
EXIT_CODES = {"YES": EXIT_YES, "NO": EXIT_NO, "UNKNOWN": EXIT_UNKNOWN}


def register_cli(subparsers) -> None:
    from ermsolve.commands import add_problem_arguments

    parser = subparsers.add_parser(
        "decide",
        help="decide whether some network reaches loss <= GAMMA",
        description="Answer YES (with a certificate), NO (with the basis of the proof) or UNKNOWN. "
        "Exit codes: 0 YES, 10 NO, 20 UNKNOWN, 2 bad input.",
    )
    add_problem_arguments(parser, solvers_extra=("enumerate",))
    parser.add_argument("--threshold", required=True, type=exact_rational, metavar="GAMMA",
                        help="loss threshold, exact (e.g. 2/3, 0.25, 1e-3)")
    parser.add_argument("--max-bits", type=positive_int, metavar="B",
                        help="accept only certificates whose parameters have bit-length <= B")
    parser.add_argument("--max-patterns", type=positive_int, metavar="N",
                        help="largest number of activation-pattern combinations the enumeration may solve")
    parser.add_argument("--no-exact-upgrade", action="store_true",
                        help="do not run the exact enumeration to confirm a floating-point NO")
    parser.add_argument("--out", metavar="CERT", help="write the certificate of a YES to this JSON file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--verbose", action="store_true", help="show progress on stderr")
    parser.set_defaults(handler=run_cli)


def run_cli(args) -> int:
    from ermsolve.certificate import build_certificate, write_certificate
    from ermsolve.commands import load_problem
    from ermsolve.decide import decide

    problem, architecture = load_problem(args)
    decision = decide(
        problem,
        args.threshold,
        solver=args.solver,
        encoding=args.encoding,
        time_limit=args.time_limit,
        threads=args.threads,
        verbose=args.verbose,
        max_bits=args.max_bits,
        max_patterns=args.max_patterns,
        exact_no=not args.no_exact_upgrade,
    )

    certificate = None
    if decision.answer == "YES":
        certificate = build_certificate(problem.instance, architecture, decision.result)
        if args.out:
            write_certificate(certificate, args.out)

    best = decision.best_loss
    if args.json:
        print_json({
            "answer": decision.answer,
            "basis": decision.basis,
            "reason": decision.reason,
            "threshold": format_rational(decision.threshold),
            "loss": None if best is None else format_rational(best),
            "dual_bound": decision.dual_bound,
            "time_s": round(decision.time_s, 6),
            "max_bits": None if certificate is None else certificate["bit_lengths"]["max"],
            "steps": decision.steps,
            "certificate": args.out if (args.out and certificate) else certificate,
        })
    else:
        basis = f" ({decision.basis})" if decision.basis else ""
        print(f"{decision.answer}{basis}: {decision.reason}")
        if best is not None:
            print(f"best exact loss found  {format_rational(best)} = {format_decimal(best)}")
        print(f"threshold              {format_rational(decision.threshold)}")
        print(f"time                   {decision.time_s:.2f} s")
        if certificate is not None and args.out:
            print(f"certificate            {args.out}")
    return EXIT_CODES[decision.answer]
