"""Write the table of gradient descent against the exact optimum, and the 1-D plot.

Run as

    python -m ermsolve.baselines.gap_report

For every shipped instance in `instances/*.csv` it trains width 2, l1 loss,
box 1 (every parameter in [-1, 1]) three ways. The MIP path
(`ermsolve.train.train` with SCIP) gives the exact optimum. The enumeration
oracle runs when its program count is within `--enumeration-limit`. Projected
Adam runs from 100 seeded starts. An instance whose MIP does not finish within `--mip-time-limit`
seconds gets no exact optimum, and its row is marked "not proven". The script writes
`docs/gap-table.md` and `docs/img/gd-vs-exact-1d.png`, and prints progress.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ermsolve.architecture import Architecture
from ermsolve.baselines.enumerate import count_patterns, solve_by_enumeration
from ermsolve.baselines.gd import DEFAULT_RESTARTS, DEFAULT_STEPS, gradient_descent, result_from_run
from ermsolve.encodings import TrainingProblem
from ermsolve.instance import load_instance
from ermsolve.rational import format_rational
from ermsolve.train import train

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = Architecture(hidden=(2,), loss="l1", name="width 2, l1, box 1")


@dataclass
class Row:
    """One instance's results; None where a method was not run or did not finish."""

    name: str
    n: int
    d: int
    optimum: object = None  # exact optimum (mpq) from the MIP
    mip_status: str = ""
    mip_time: float = 0.0
    mip_network: object = None
    enumeration_count: int = 0
    enumeration_solved: int = 0
    enumeration_loss: object = None
    enumeration_time: float | None = None
    gd_loss: float = 0.0
    gd_median: float = 0.0
    gd_exact: object = None  # exact loss after solving GD's pattern
    gd_time: float = 0.0
    gd_run: object = None


def main(argv=None) -> int:
    args = _parse_arguments(argv)
    paths = sorted((ROOT / "instances").glob("*.csv"))
    rows, multi_output = [], []
    for path in paths:
        print(f"{path.name}:", flush=True)
        instance = load_instance(path)
        if instance.outputs != 1:
            # The table is about one-output networks, which the enumeration and GD baselines cover.
            print(f"  skipped: {instance.outputs} target columns", flush=True)
            multi_output.append(instance.name)
            continue
        rows.append(_measure(instance, args))

    arguments = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "-m", "ermsolve.baselines.gap_report", *arguments])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_markdown(rows, multi_output, args, command), encoding="utf-8")
    print(f"wrote {args.out}")

    plotted = next((row for row in rows if row.name == args.plot_instance and row.mip_network is not None), None)
    if plotted is None:
        print(f"no plot: {args.plot_instance} has no exact optimum in this run", file=sys.stderr)
        return 1
    _plot(plotted, args.plot)
    print(f"wrote {args.plot}")
    return 0


def _parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="python -m ermsolve.baselines.gap_report",
        description="Compare gradient descent with the exact optimum on every shipped instance "
        "(width 2, l1 loss, box 1) and write the Markdown table and the 1-D plot.",
    )
    parser.add_argument("--mip-time-limit", type=float, default=60.0, metavar="S",
                        help="seconds for each MIP solve; slower instances are skipped (default: 60)")
    parser.add_argument("--enumeration-limit", type=int, default=50_000, metavar="N",
                        help="run the enumeration only when it needs at most N fixed-pattern programs "
                        "(default: 50000)")
    parser.add_argument("--restarts", type=int, default=DEFAULT_RESTARTS,
                        help=f"gradient-descent restarts (default: {DEFAULT_RESTARTS})")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help=f"Adam steps per restart (default: {DEFAULT_STEPS})")
    parser.add_argument("--seed", type=int, default=0, help="gradient-descent seed (default: 0)")
    parser.add_argument("--machine", default=f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()}",
                        help="machine description written into the table")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gap-table.md", help="Markdown output file")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "gd-vs-exact-1d.png",
                        help="PNG output file")
    parser.add_argument("--plot-instance", default="iris_petal_1d_22",
                        help="name of the 1-D instance to plot (default: iris_petal_1d_22)")
    return parser.parse_args(argv)


def _measure(instance, args) -> Row:
    problem = TrainingProblem(instance, ARCHITECTURE)
    row = Row(instance.name, instance.n, instance.d)

    started = time.monotonic()
    mip = train(problem, time_limit=args.mip_time_limit)
    row.mip_time = time.monotonic() - started
    row.mip_status = mip.status
    if mip.status == "optimal" and mip.solution is not None:
        row.optimum = mip.solution.loss
        row.mip_network = mip.solution.network
    print(f"  MIP: {mip.status}, loss {_exact_text(row.optimum)}, {row.mip_time:.1f} s", flush=True)

    row.enumeration_count = count_patterns(problem, limit=None)
    if row.enumeration_count <= args.enumeration_limit:
        started = time.monotonic()
        enumeration = solve_by_enumeration(problem, max_patterns=args.enumeration_limit)
        row.enumeration_time = time.monotonic() - started
        row.enumeration_solved = enumeration.nodes
        if enumeration.status == "optimal":
            row.enumeration_loss = enumeration.solution.loss
        print(f"  enumeration: {enumeration.status}, loss {_exact_text(row.enumeration_loss)}, "
              f"{enumeration.nodes} programs, {row.enumeration_time:.1f} s", flush=True)
    else:
        print(f"  enumeration: skipped, {row.enumeration_count} programs", flush=True)

    run = gradient_descent(problem, restarts=args.restarts, steps=args.steps, seed=args.seed)
    result = result_from_run(problem, run)
    row.gd_run, row.gd_loss, row.gd_median = run, run.loss, float(np.median(run.restart_losses))
    row.gd_exact, row.gd_time = result.solution.loss, result.time_s
    print(f"  gradient descent: best {run.loss:.6g}, median {row.gd_median:.6g}, "
          f"exact pattern {float(row.gd_exact):.6g}, {row.gd_time:.1f} s", flush=True)
    return row


def _markdown(rows, multi_output, args, command) -> str:
    versions = _versions()
    lines = [
        "# Gradient descent against the exact optimum",
        "",
        "Architecture: one hidden layer of 2 ReLU units, f(x) = v_1 relu(w_1 . x + b_1) + "
        "v_2 relu(w_2 . x + b_2) + c, with every parameter in [-1, 1] (box 1), trained on the l1 loss "
        "(sum of absolute errors) over all points of each shipped instance.",
        "",
        f"- Command: `{command}`",
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Machine: {args.machine}",
        f"- Software: {versions}",
        "",
        "Columns:",
        "",
        f"- **Optimum**: `ermsolve.train.train` (SCIP, one thread, time limit {args.mip_time_limit:g} s "
        "per instance), exact loss of the recovered rational network; optimality rests on SCIP's "
        "floating-point branch and bound (gap 0 within its tolerances), and where the enumeration "
        "column has a value, on exact enumeration too. Only status `optimal` counts.",
        "- **Enumeration**: `ermsolve.baselines.enumerate.solve_by_enumeration`, which solves the exact "
        "fixed-pattern program of every realisable activation-pattern combination without a MIP. "
        f"It runs when it needs at most {args.enumeration_limit} programs. The column gives its loss "
        "(\"= MIP\" when it equals the MIP optimum exactly), the programs solved of the full count "
        "(a loss of 0 ends the run early, because no loss is smaller) and the time.",
        f"- **GD best**: the lowest float l1 loss of projected Adam over {args.restarts} restarts of "
        f"{args.steps} steps (learning rate 0.01, seed {args.seed}, starts uniform in the box). "
        "**GD median** is the median over restarts of each restart's best loss.",
        "- **GD pattern, exact**: the exact optimum of the fixed-pattern LP for the activation pattern and "
        "output signs of GD's best network, which is never worse than GD's own network.",
        "- **Ratio** is GD best divided by the exact optimum; with an optimum of 0 the ratio is undefined.",
        "",
        "| Instance | n | d | Optimum (MIP; loss exact, proof floating-point) | MIP time | Enumeration | GD best | GD median "
        "| GD pattern, exact | Ratio GD best / optimum |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(_table_row(row, args))

    skipped = [row.name for row in rows if row.optimum is None]
    lines.append("")
    if skipped:
        lines.append(f"The MIP did not prove optimality within {args.mip_time_limit:g} s on: "
                     f"{', '.join(skipped)}. Those rows have no exact optimum and no ratio.")
    else:
        lines.append(f"Every MIP finished within {args.mip_time_limit:g} s.")
    if multi_output:
        lines += ["", f"Not in the table, because they have more than one target column: {', '.join(multi_output)}."]
    lines += [
        "",
        "Times are wall-clock seconds, measured while other jobs shared the machine, so they are rough.",
        "",
        f"![Data, exact optimum and gradient descent on {args.plot_instance}](img/{args.plot.name})",
        "",
    ]
    return "\n".join(lines)


def _table_row(row: Row, args) -> str:
    if row.optimum is None:
        optimum = f"not proven in {args.mip_time_limit:g} s ({row.mip_status})"
        mip_time = "-"
        ratio = "-"
    else:
        optimum = _exact_text(row.optimum)
        if row.optimum.denominator != 1:
            optimum += f" = {float(row.optimum):.6g}"
        mip_time = f"{row.mip_time:.1f} s"
        ratio = "undefined (optimum 0)" if row.optimum == 0 else f"{row.gd_loss / float(row.optimum):.4f}"

    if row.enumeration_time is None:
        enumeration = f"not run ({row.enumeration_count} programs)"
    else:
        value = _exact_text(row.enumeration_loss)
        if row.enumeration_loss is not None and row.enumeration_loss == row.optimum:
            value = "= MIP"
        programs = f"{row.enumeration_solved} of {row.enumeration_count} programs"
        if row.enumeration_solved < row.enumeration_count:
            programs += " (stopped at loss 0)"
        enumeration = f"{value}, {programs}, {row.enumeration_time:.1f} s"

    return (f"| `{row.name}` | {row.n} | {row.d} | {optimum} | {mip_time} | {enumeration} "
            f"| {row.gd_loss:.6g} | {row.gd_median:.6g} | {float(row.gd_exact):.6g} | {ratio} |")


def _exact_text(value) -> str:
    return "-" if value is None else format_rational(value).removesuffix("/1")


def _versions() -> str:
    from ermsolve import __version__
    from ermsolve.backends import get_backend

    solver = get_backend("scip").version()
    return f"ermsolve {__version__}, {solver}, numpy {np.__version__}, Python {platform.python_version()}"


def _plot(row: Row, path: Path) -> None:
    """Plot the data, the exact optimum and gradient descent's best network on a 1-D instance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    instance = load_instance(ROOT / "instances" / f"{row.name}.csv")
    x, y = instance.X_float[:, 0], instance.y_float
    margin = 0.1 * (x.max() - x.min() or 1.0)
    grid = np.linspace(x.min() - margin, x.max() + margin, 600).reshape(-1, 1)

    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.scatter(x, y, color="black", zorder=3, label=f"data (n = {instance.n})")
    axes.plot(grid[:, 0], row.mip_network.forward_float(grid)[:, 0], color="tab:blue", linewidth=2,
              label=f"exact optimum, l1 = {float(row.optimum):.4f}")
    axes.plot(grid[:, 0], row.gd_run.predict(grid), color="tab:orange", linestyle="--", linewidth=2,
              label=f"gradient descent, best of {row.gd_run.restarts}, l1 = {row.gd_loss:.4f}")
    axes.set_xlabel(instance.feature_names[0])
    axes.set_ylabel("y")
    axes.set_title(f"{row.name}: width 2, l1 loss, box 1")
    axes.legend()
    figure.tight_layout()

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
