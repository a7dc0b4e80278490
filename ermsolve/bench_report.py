"""Statistics and the report of a benchmark run: solved counts, shifted geometric means, profiles.

Conventions, stated once here and repeated in every report:

- A run counts as solved when its status is "optimal" and the certificate built
  from it passed `verify_certificate`.
- Its time is `TrainResult.time_s`: model building, every MIP and the exact
  recovery, but not the process start-up or the verification.
- The shifted geometric mean uses a shift of 1 s. An unsolved run counts at the
  time limit, and a solved run counts at most at the time limit, so a run that
  only finished its exact recovery after the limit is never worse than a failure.
- Performance profiles follow Dolan and Moré, "Benchmarking optimization
  software with performance profiles", Math. Programming 91 (2002): for each
  instance the ratio of a configuration's time to the best time of any
  configuration, infinite when unsolved. Times below `MIN_PROFILE_TIME_S`
  count as that value so that the ratios are defined.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SHIFT_S = 1.0
MIN_PROFILE_TIME_S = 1e-3

# Solve times below this are dominated by fixed costs, so their recovery share
# does not show how recovery scales; the per-run maximum skips them.
MIN_SHARE_SOLVE_S = 1.0

# Statuses that the harness itself writes when a cell produced no result.
HARNESS_STATUSES = ("killed", "crashed")


def shifted_geometric_mean(values, shift: float = SHIFT_S) -> float:
    """Return exp(mean(log(v + shift))) - shift; raises ValueError on no values or v + shift <= 0."""
    values = list(values)
    if not values:
        raise ValueError("the shifted geometric mean of no values is undefined")
    if any(value + shift <= 0 for value in values):
        raise ValueError(f"every value plus the shift {shift} must be positive, got {values}")
    return math.exp(sum(math.log(value + shift) for value in values) / len(values)) - shift


def performance_ratios(times: dict[str, list[float | None]]) -> dict[str, list[float]]:
    """Compute the Dolan-Moré ratio of every configuration on every instance.

    `times[configuration][p]` is the time on instance p, or None when unsolved.
    The ratio is the time over the smallest time of any configuration on p, and
    `math.inf` for an unsolved run, including instances that no configuration solved.
    """
    configurations = list(times)
    counts = {len(column) for column in times.values()}
    if len(counts) > 1:
        raise ValueError(f"every configuration needs one time per instance, got lengths {sorted(counts)}")
    count = counts.pop() if counts else 0

    ratios: dict[str, list[float]] = {configuration: [] for configuration in configurations}
    for p in range(count):
        solved = [max(times[c][p], MIN_PROFILE_TIME_S) for c in configurations if times[c][p] is not None]
        best = min(solved) if solved else None
        for configuration in configurations:
            time = times[configuration][p]
            if time is None:
                ratios[configuration].append(math.inf)
            else:
                ratios[configuration].append(max(time, MIN_PROFILE_TIME_S) / best)
    return ratios


def profile_value(ratios: list[float], tau: float) -> float:
    """Return the fraction of instances whose ratio is at most `tau` (rho(tau) of Dolan and Moré)."""
    if not ratios:
        return 0.0
    return sum(1 for ratio in ratios if ratio <= tau) / len(ratios)


def is_solved(record: dict) -> bool:
    """Return whether the run is optimal, verified and, where the suite gives the optimum, equal to it."""
    return (record.get("status") == "optimal" and record.get("verified") is True
            and record.get("optimum_check") != "mismatch")


def counted_time(record: dict) -> float:
    """Return the run's time for the shifted geometric mean: capped at the limit, the limit when unsolved."""
    limit = float(record["time_limit"])
    if not is_solved(record) or record.get("time_s") is None:
        return limit
    return min(float(record["time_s"]), limit)


@dataclass
class ConfigurationSummary:
    """Aggregates of one configuration (encoding/solver/symmetry) over the instances of a run."""

    configuration: str
    runs: int = 0
    solved: int = 0
    time_limit: int = 0
    failed: int = 0
    verify_failed: int = 0
    wrong_optimum: int = 0
    sgm_time_s: float | None = None
    speedup: float | None = None
    recovery_share: float | None = None
    max_recovery_share: float | None = None
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass
class Summary:
    """Everything the report shows, computed from the records of results.jsonl."""

    suite: str
    configurations: list[str]
    baseline: str | None
    instances: list[str]
    complete_instances: list[str]
    rows: list[ConfigurationSummary]
    ratios: dict[str, list[float]]
    records: dict[tuple[str, str], dict]
    time_limits: list[float]


def summarize(records: list[dict], configurations: list[str] | None = None, baseline: str | None = None,
              instance_order: list[str] | None = None) -> Summary:
    """Aggregate records per configuration.

    The shifted geometric means, the speedups and the profiles use only the
    instances that have a record for every configuration shown, so a partial
    run compares like with like. `configurations` selects and orders them
    (default: their position on the command line that ran them, then the
    order of first appearance). The speedup of a configuration is (baseline
    SGM + shift) / (its SGM + shift). The default baseline is the first
    configuration.
    """
    if configurations is None:
        # The order of the command line that ran them; parallel jobs finish in another order.
        first_seen = list(dict.fromkeys(record["configuration"] for record in records))
        planned = {}
        for record in records:
            position = record.get("configuration_position", math.inf)
            planned[record["configuration"]] = min(planned.get(record["configuration"], math.inf), position)
        configurations = sorted(first_seen, key=lambda c: (planned[c], first_seen.index(c)))
    by_cell = {}
    for record in records:
        if record["configuration"] in configurations:
            by_cell[(record["instance"], record["configuration"])] = record

    instances = list(dict.fromkeys(instance for instance, _ in by_cell))
    if instance_order:
        # Suite order where known, then instances no longer in the suite in the order they finished.
        position = {instance: index for index, instance in enumerate(instance_order)}
        instances.sort(key=lambda instance: position.get(instance, len(position)))
    complete = [p for p in instances if all((p, c) in by_cell for c in configurations)]
    if baseline is None and configurations:
        baseline = configurations[0]
    if baseline is not None and baseline not in configurations:
        raise ValueError(f"baseline {baseline!r} is not one of the configurations {configurations}")

    rows = []
    for configuration in configurations:
        own = [record for (p, c), record in by_cell.items() if c == configuration]
        rows.append(_summarize_configuration(configuration, own, [by_cell[(p, configuration)] for p in complete]))

    baseline_row = next((row for row in rows if row.configuration == baseline), None)
    for row in rows:
        if baseline_row and baseline_row.sgm_time_s is not None and row.sgm_time_s is not None:
            row.speedup = (baseline_row.sgm_time_s + SHIFT_S) / (row.sgm_time_s + SHIFT_S)

    times = {
        c: [counted_time(by_cell[(p, c)]) if is_solved(by_cell[(p, c)]) else None for p in complete]
        for c in configurations
    }
    time_limits = sorted({float(record["time_limit"]) for record in by_cell.values()})
    suite = next((record.get("suite", "") for record in records), "")
    return Summary(suite, list(configurations), baseline, instances, complete, rows,
                   performance_ratios(times), by_cell, time_limits)


def _summarize_configuration(configuration: str, own: list[dict], complete: list[dict]) -> ConfigurationSummary:
    row = ConfigurationSummary(configuration)
    row.runs = len(own)
    for record in own:
        status = record.get("status", "missing")
        row.statuses[status] = row.statuses.get(status, 0) + 1
        if is_solved(record):
            row.solved += 1
        elif status == "time_limit":
            row.time_limit += 1
        else:
            row.failed += 1
        if record.get("verified") is False:
            row.verify_failed += 1
        if record.get("optimum_check") == "mismatch":
            row.wrong_optimum += 1

    if complete:
        row.sgm_time_s = shifted_geometric_mean(counted_time(record) for record in complete)

    # Exact recovery plus verification against the MIP time, over solved runs.
    solved = [record for record in own if is_solved(record) and record.get("solve_time_s")]
    if solved:
        recovery = sum(_recovery_time(record) for record in solved)
        row.recovery_share = recovery / sum(record["solve_time_s"] for record in solved)
        long_runs = [record for record in solved if record["solve_time_s"] >= MIN_SHARE_SOLVE_S]
        if long_runs:
            row.max_recovery_share = max(_recovery_time(record) / record["solve_time_s"] for record in long_runs)
    return row


def _recovery_time(record: dict) -> float:
    return (record.get("rationalize_time_s") or 0.0) + (record.get("verify_time_s") or 0.0)


def render_markdown(summary: Summary, profile_image: str | None) -> str:
    """Render the summary as a markdown report with the conventions spelled out."""
    lines = [f"# Benchmark report: suite `{summary.suite}`", ""]
    lines += _describe_run(summary)

    lines += ["", "## Per configuration", ""]
    lines.append("| configuration | runs | solved | time limit | failed | verify failed | wrong optimum "
                 "| SGM time (s) | speedup vs baseline | recovery share | max recovery share |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in summary.rows:
        marker = " (baseline)" if row.configuration == summary.baseline else ""
        lines.append(
            f"| `{row.configuration}`{marker} | {row.runs} | {row.solved} | {row.time_limit} | {row.failed} "
            f"| {row.verify_failed} | {row.wrong_optimum} | {_number(row.sgm_time_s)} | {_ratio(row.speedup)} "
            f"| {_percent(row.recovery_share)} | {_percent(row.max_recovery_share)} |"
        )

    lines += [
        "",
        "- *solved*: status optimal, the certificate passed `verify_certificate` and, where the suite "
        "knows the optimum, the exact loss equals it; *time limit*: stopped by the limit without a "
        "proof; *failed*: any other status (error, unproven, killed by the harness's wall limit, "
        "crashed) or a wrong optimum; *wrong optimum*: the exact loss contradicts the known optimum.",
        f"- *SGM time*: shifted geometric mean of the time with shift {SHIFT_S:g} s over the "
        f"{len(summary.complete_instances)} instances that have a run for every configuration; an "
        "unsolved run counts at the time limit, a solved run at most at the time limit.",
        "- *speedup*: (SGM of the baseline + shift) / (SGM of the configuration + shift), which is "
        "the geometric mean over instances of (baseline time + shift) / (configuration time + shift).",
        "- *recovery share*: exact recovery plus certificate verification over MIP time, summed "
        "over solved runs; *max recovery share*: the largest per-run value among solved runs whose "
        f"MIP time is at least {MIN_SHARE_SOLVE_S:g} s.",
    ]
    missing = len(summary.instances) - len(summary.complete_instances)
    if missing:
        lines.append(f"- {missing} instances lack a run of some configuration and are left out of the "
                     "SGM and the profile (a partial run).")

    if profile_image:
        lines += ["", "## Performance profile", "", f"![performance profile]({profile_image})", "",
                  "rho(tau) is the fraction of instances that a configuration solves within tau times "
                  "the best time of any configuration (Dolan and Moré 2002); an unsolved run never counts."]

    lines += ["", "## Per instance", ""]
    lines += _instance_table(summary)
    return "\n".join(lines) + "\n"


def _describe_run(summary: Summary) -> list[str]:
    records = list(summary.records.values())
    finished = sorted(record.get("finished", "") for record in records if record.get("finished"))
    # Killed and crashed runs never reported versions, so they are left out here.
    reported = [record for record in records if record.get("versions")]
    machines = sorted({_machine_text(record) for record in reported})
    solvers = sorted({record["versions"].get("solver") or "unknown" for record in reported})
    commits = sorted({(record["versions"].get("commit") or "unknown")[:12] for record in reported})
    limits = ", ".join(f"{limit:g} s" for limit in summary.time_limits)
    threads = sorted({record.get("threads", 1) for record in records})
    lines = [
        f"- configurations (encoding/solver/symmetry): {', '.join(f'`{c}`' for c in summary.configurations)}",
        f"- instances: {len(summary.instances)}; runs: {len(records)}; time limit per run: {limits}; "
        f"solver threads per run: {', '.join(map(str, threads))}",
        f"- finished between {finished[0] if finished else '?'} and {finished[-1] if finished else '?'} (UTC)",
        f"- solvers: {'; '.join(solvers)}",
        f"- source commits (uncommitted changes not shown): {', '.join(commits)}",
    ]
    lines += [f"- machine: {machine}" for machine in machines]
    return lines


def _machine_text(record: dict) -> str:
    machine = record.get("machine", {})
    versions = record.get("versions", {})
    return (f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, {machine.get('platform', '?')}, "
            f"Python {versions.get('python', '?')}, ermsolve {versions.get('ermsolve', '?')}")


def _instance_table(summary: Summary) -> list[str]:
    header = "| instance | " + " | ".join(f"`{c}`" for c in summary.configurations) + " |"
    lines = [header, "|---|" + "---:|" * len(summary.configurations)]
    for instance in summary.instances:
        cells = []
        for configuration in summary.configurations:
            record = summary.records.get((instance, configuration))
            cells.append("" if record is None else _cell_text(record))
        lines.append(f"| {instance} | " + " | ".join(cells) + " |")
    lines += ["", "Each cell: time in seconds when solved; otherwise the status, with the gap when "
              "known; `!` marks a certificate that failed verification or a loss that contradicts "
              "the known optimum."]
    return lines


def _cell_text(record: dict) -> str:
    flag = "!" if record.get("verified") is False or record.get("optimum_check") == "mismatch" else ""
    if is_solved(record):
        return f"{record['time_s']:.2f}"
    status = record.get("status", "?")
    if status == "time_limit" and record.get("gap") is not None:
        return f"limit, gap {100 * record['gap']:.3g}%{flag}"
    return f"{status}{flag}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2g}%"


def plot_profile(summary: Summary, path: str | Path, title: str | None = None) -> bool:
    """Draw the performance profile as a PNG; return False when no instance is complete."""
    if not summary.complete_instances:
        return False

    # Imported here, so that running a benchmark and the tests of the math never need a display.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = [r for ratios in summary.ratios.values() for r in ratios if math.isfinite(r)]
    largest = max([2.0, *finite]) * 1.25
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for configuration, ratios in summary.ratios.items():
        steps = sorted({1.0, *[r for r in ratios if math.isfinite(r)], largest})
        axes.step(steps, [profile_value(ratios, tau) for tau in steps], where="post",
                  label=configuration, linewidth=1.8)

    axes.set_xscale("log", base=2)
    axes.set_xlim(1, largest)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("tau: time within this factor of the best configuration")
    axes.set_ylabel("fraction of instances solved")
    axes.set_title(title or f"Performance profile, suite {summary.suite} "
                   f"({len(summary.complete_instances)} instances)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def write_report(records: list[dict], out_dir: str | Path, configurations: list[str] | None = None,
                 baseline: str | None = None, instance_order: list[str] | None = None
                 ) -> tuple[Path, Path | None, Summary]:
    """Write report.md and profile.png into `out_dir`; return their paths (None for no image)."""
    out_dir = Path(out_dir)
    summary = summarize(records, configurations, baseline, instance_order)
    image = out_dir / "profile.png"
    drawn = plot_profile(summary, image)
    if not drawn:
        log.info("no instance has a run of every configuration; skipping the performance profile")
    report = out_dir / "report.md"
    report.write_text(render_markdown(summary, image.name if drawn else None), encoding="utf-8")
    return report, image if drawn else None, summary
