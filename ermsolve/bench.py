"""`ermsolve bench`: run a suite of instances over encodings, solvers and symmetry modes.

A suite is a TOML file in instances/suites/ (format in docs/benchmarks.md). Its
generated instances are drawn on the fly from their seeds with
`ermsolve.generate.planted_instance`, and every run records the data
fingerprint, so a change of the generated data is detected rather than mixed
into old results.

Each cell (instance x encoding x solver x symmetry mode) runs in a separate
process: `python -m ermsolve.bench --run-cell SPEC RESULT`. The harness kills
the process after the time limit plus a margin, so a crash or a hang of one
solver costs one cell, not the run. Every finished cell is appended at once to
OUT/results.jsonl as one JSON line, which is also what lets a stopped run
resume: cells already in the file are skipped.

Cells run on a local pool of `--jobs` processes, or on a Dask cluster
(`--scheduler ADDRESS`, or `local` for a LocalCluster of `--jobs` workers).
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import itertools
import json
import logging
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

from gmpy2 import mpq

from ermsolve.arguments import positive_int, positive_seconds
from ermsolve.errors import InputError, UsageError

log = logging.getLogger(__name__)

# NOTE: the suites live in the source tree, not in the package. Suite names
# resolve only in an editable install or a checkout; elsewhere pass a file path.
SUITES_DIR = Path(__file__).resolve().parent.parent / "instances" / "suites"
RESULTS_FILE = "results.jsonl"
DEFAULT_OUT = Path("bench-out")

# Seconds the harness waits beyond the time limit before it kills a cell. The
# margin covers the process start-up, model building past the limit, the
# exact recovery and the verification.
DEFAULT_KILL_MARGIN_S = 30.0

# Characters of a crashed cell's stderr kept in its record.
STDERR_TAIL_CHARS = 2000

# Result fields that every record has, null when the run did not produce them.
RESULT_FIELDS = ("status", "time_s", "solve_time_s", "rationalize_time_s", "nodes", "objective", "dual_bound",
                 "gap", "exact_loss", "exact_loss_decimal", "verified", "verify_time_s", "max_bits", "error")

_SUITE_KEYS = ("name", "description", "time_limit", "encodings", "solvers", "symmetry", "file", "planted", "random")
_COMMON_KEYS = ("width", "loss", "box")
_PLANTED_KEYS = ("dim", "points", "seed", "noise", "grid", "student_width", *_COMMON_KEYS)
_RANDOM_KEYS = ("dim", "points", "seed", "grid", *_COMMON_KEYS)
_FILE_KEYS = ("path", "id", "optimum", *_COMMON_KEYS)
DEFAULT_GRID = 8


# ---------------------------------------------------------------- suites


@dataclass(frozen=True)
class SuiteInstance:
    """One instance of a suite with the architecture it is trained under."""

    id: str
    instance: object  # ermsolve.instance.Instance, named `id`
    width: int
    loss: str
    box: mpq
    source: dict
    # The optimal loss when it is known in advance, for checking the solver's claim.
    optimum: mpq | None = None


@dataclass(frozen=True)
class Suite:
    """A named list of instances with default configurations and a default time limit."""

    name: str
    path: Path
    description: str
    time_limit: float
    encodings: tuple[str, ...]
    solvers: tuple[str, ...]
    symmetry: tuple[str, ...]
    instances: tuple[SuiteInstance, ...]


def available_suites() -> list[str]:
    return sorted(path.stem for path in SUITES_DIR.glob("*.toml"))


def resolve_suite_path(name: str) -> Path:
    """Find a suite by name in instances/suites/, or take `name` as the path of a TOML file."""
    candidate = Path(name)
    if candidate.suffix == ".toml" or len(candidate.parts) > 1:
        if not candidate.is_file():
            raise UsageError(f"suite file {name!r} not found")
        return candidate
    path = SUITES_DIR / f"{name}.toml"
    if not path.is_file():
        raise UsageError(
            f"unknown suite {name!r}; suites in {SUITES_DIR}: {', '.join(available_suites()) or 'none'}; "
            "or give the path of a suite TOML file"
        )
    return path


def load_suite(name: str) -> Suite:
    """Read a suite file and build its instances; raise InputError naming the file and the entry."""
    path = resolve_suite_path(name)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: invalid TOML ({error})") from None

    unknown = sorted(set(data) - set(_SUITE_KEYS))
    if unknown:
        raise InputError(f"{path}: unknown keys {', '.join(unknown)}; valid keys: {', '.join(_SUITE_KEYS)}")

    instances: list[SuiteInstance] = []
    for table, build in (("file", _file_instances), ("planted", _planted_instances), ("random", _random_instances)):
        entries = data.get(table, [])
        if not isinstance(entries, list):
            raise InputError(f"{path}: `{table}` must be an array of tables, written [[{table}]]")
        for number, entry in enumerate(entries, start=1):
            where = f"{path}: [[{table}]] entry {number}"
            try:
                instances.extend(build(entry, path, where))
            except InputError as error:
                message = str(error)
                raise InputError(message if message.startswith(str(path)) else f"{where}: {message}") from None

    if not instances:
        raise InputError(f"{path}: the suite has no instances; add [[file]], [[planted]] or [[random]] tables")
    seen: dict[str, int] = {}
    for item in instances:
        seen[item.id] = seen.get(item.id, 0) + 1
    duplicates = sorted(name for name, count in seen.items() if count > 1)
    if duplicates:
        raise InputError(f"{path}: instance ids occur more than once: {', '.join(duplicates)}")

    time_limit = data.get("time_limit", 60)
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not time_limit > 0:
        raise InputError(f"{path}: time_limit must be a positive number of seconds, got {time_limit!r}")
    return Suite(
        name=str(data.get("name", path.stem)),
        path=path,
        description=str(data.get("description", "")),
        time_limit=float(time_limit),
        encodings=_name_list(data.get("encodings", ["bigm"]), "encodings", path),
        solvers=_name_list(data.get("solvers", ["scip"]), "solvers", path),
        symmetry=_name_list(data.get("symmetry", ["solver"]), "symmetry", path),
        instances=tuple(instances),
    )


def _name_list(value, key: str, path: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise InputError(f"{path}: `{key}` must be a non-empty list of names, got {value!r}")
    return tuple(value)


def _expand(entry: dict, keys: tuple[str, ...], where: str) -> list[dict]:
    """Expand every list-valued key of a table into the Cartesian product of single values."""
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected a table, got {entry!r}")
    unknown = sorted(set(entry) - set(keys))
    if unknown:
        raise InputError(f"{where}: unknown keys {', '.join(unknown)}; valid keys: {', '.join(keys)}")
    names = list(entry)
    values = [entry[name] if isinstance(entry[name], list) else [entry[name]] for name in names]
    for name, options in zip(names, values):
        if not options:
            raise InputError(f"{where}: `{name}` is an empty list")
    return [dict(zip(names, combination)) for combination in itertools.product(*values)]


def _integer(value, key: str, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{where}: `{key}` must be an integer >= {minimum}, got {value!r}")
    return value


def _exact(value, key: str, where: str) -> mpq:
    """Read an exact number from a TOML integer or string; floats are rejected as inexact."""
    from ermsolve.rational import parse_rational

    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InputError(f"{where}: `{key}` must be an integer or a string such as \"1/10\", got {value!r}")
    try:
        return parse_rational(str(value))
    except InputError as error:
        raise InputError(f"{where}: `{key}`: {error}") from None


def _architecture_fields(values: dict, where: str, default_width: int | None) -> tuple[int, str, mpq]:
    from ermsolve.architecture import LOSSES

    if "width" not in values and default_width is None:
        raise InputError(f"{where}: missing `width`, the number of hidden units to train")
    width = _integer(values.get("width", default_width), "width", where)
    loss = values.get("loss", "l1")
    if loss not in LOSSES:
        raise InputError(f"{where}: unknown loss {loss!r}; valid losses: {', '.join(LOSSES)}")
    box = _exact(values.get("box", 1), "box", where)
    if box <= 0:
        raise InputError(f"{where}: `box` must be positive, got {values.get('box')!r}")
    return width, loss, box


def _id_suffix(loss: str, box: mpq) -> str:
    suffix = "" if loss == "l1" else f"-{loss}"
    if box != 1:
        suffix += f"-box{_rational_slug(box)}"
    return suffix


def _rational_slug(value: mpq) -> str:
    from ermsolve.rational import format_rational

    return format_rational(value).removesuffix("/1").replace("/", "_")


def _file_instances(entry: dict, suite_path: Path, where: str) -> list[SuiteInstance]:
    from ermsolve.instance import load_instance

    items = []
    for values in _expand(entry, _FILE_KEYS, where):
        if "path" not in values or not isinstance(values["path"], str):
            raise InputError(f"{where}: missing `path`, the instance CSV relative to the suite file")
        width, loss, box = _architecture_fields(values, where, None)
        csv_path = (suite_path.parent / values["path"]).resolve()
        instance = load_instance(csv_path)
        identifier = values.get("id") or f"{csv_path.stem}-k{width}{_id_suffix(loss, box)}"
        optimum = _exact(values["optimum"], "optimum", where) if "optimum" in values else None
        source = {"kind": "file", "path": values["path"]}
        items.append(SuiteInstance(identifier, replace(instance, name=identifier), width, loss, box, source,
                                   optimum))
    return items


def _planted_instances(entry: dict, suite_path: Path, where: str) -> list[SuiteInstance]:
    from ermsolve.generate import planted_instance

    items = []
    for values in _expand(entry, _PLANTED_KEYS, where):
        teacher_width = _integer(values.get("width"), "width", where)
        student = _integer(values.get("student_width", teacher_width), "student_width", where)
        _, loss, box = _architecture_fields({**values, "width": student}, where, None)
        dim = _integer(values.get("dim"), "dim", where)
        points = _integer(values.get("points"), "points", where)
        seed = _integer(values.get("seed", 0), "seed", where, minimum=0)
        grid = _integer(values.get("grid", DEFAULT_GRID), "grid", where)
        noise = _exact(values.get("noise", 0), "noise", where)

        instance, _ = planted_instance(dim, teacher_width, points, seed=seed, grid=grid, box=box, noise=noise)
        prefix = "noisy" if noise else "planted"
        identifier = f"{prefix}-d{dim}-w{teacher_width}-n{points}-s{seed}"
        if noise:
            identifier += f"-noise{_rational_slug(noise)}"
        if grid != DEFAULT_GRID:
            identifier += f"-g{grid}"
        if student != teacher_width:
            identifier += f"-k{student}"
        identifier += _id_suffix(loss, box)
        source = {"kind": "planted", "dim": dim, "teacher_width": teacher_width, "points": points,
                  "seed": seed, "grid": grid, "noise": _rational_slug(noise).replace("_", "/")}
        # The teacher lies in the student's box, so without noise a student at least as wide fits it exactly.
        optimum = mpq(0) if not noise and student >= teacher_width else None
        items.append(SuiteInstance(identifier, replace(instance, name=identifier), student, loss, box, source,
                                   optimum))
    return items


def _random_instances(entry: dict, suite_path: Path, where: str) -> list[SuiteInstance]:
    from ermsolve.generate import planted_instance

    items = []
    for values in _expand(entry, _RANDOM_KEYS, where):
        width, loss, box = _architecture_fields(values, where, None)
        dim = _integer(values.get("dim"), "dim", where)
        points = _integer(values.get("points"), "points", where)
        seed = _integer(values.get("seed", 0), "seed", where, minimum=0)
        grid = _integer(values.get("grid", DEFAULT_GRID), "grid", where)

        instance, _ = planted_instance(dim, 1, points, seed=seed, grid=grid, labels="random")
        identifier = f"random-d{dim}-n{points}-s{seed}"
        if grid != DEFAULT_GRID:
            identifier += f"-g{grid}"
        identifier += f"-k{width}{_id_suffix(loss, box)}"
        source = {"kind": "random", "dim": dim, "points": points, "seed": seed, "grid": grid}
        items.append(SuiteInstance(identifier, replace(instance, name=identifier), width, loss, box, source))
    return items


# ---------------------------------------------------------------- cells


@dataclass(frozen=True)
class Cell:
    """One run of the grid: an instance under one encoding, solver and symmetry mode."""

    instance: str
    encoding: str
    solver: str
    symmetry: str

    @property
    def configuration(self) -> str:
        return configuration_label(self.encoding, self.solver, self.symmetry)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.instance, self.encoding, self.solver, self.symmetry)


def configuration_label(encoding: str, solver: str, symmetry: str) -> str:
    return f"{encoding}/{solver}/{symmetry}"


def record_key(record: dict) -> tuple[str, str, str, str]:
    return (record["instance"], record["encoding"], record["solver"], record["symmetry"])


def grid_configurations(encodings, solvers, symmetry) -> list[tuple[str, str, str]]:
    """Return the product of the name lists as (encoding, solver, symmetry mode) triples."""
    return list(itertools.product(encodings, solvers, symmetry))


def plan_cells(instances, configurations) -> list[Cell]:
    """List the cells instance by instance, so a partial run has whole rows of configurations.

    Running every configuration of one instance close together in time also
    exposes them to the same load of a shared machine.
    """
    return [Cell(item.id, *configuration) for item in instances for configuration in configurations]


def check_names(configurations) -> None:
    """Raise UsageError for a name that is missing from its registry, listing the valid names."""
    from ermsolve.backends import BACKENDS
    from ermsolve.encodings import ENCODINGS
    from ermsolve.encodings.base import SYMMETRY_MODES

    for position, kind, valid in ((0, "encoding", ENCODINGS), (1, "solver", BACKENDS),
                                  (2, "symmetry mode", SYMMETRY_MODES)):
        unknown = list(dict.fromkeys(c[position] for c in configurations if c[position] not in valid))
        if unknown:
            raise UsageError(
                f"unknown {kind} {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}"
            )


# ---------------------------------------------------------------- one cell in its own process

# Cell processes started by this process, so an interrupt can kill them.
_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()
_STOPPING = threading.Event()


def run_cell_isolated(spec: dict, wall_limit: float) -> dict:
    """Run one cell in a child process and return its record; kill the child after `wall_limit` seconds.

    This function runs in the harness, or on a Dask worker, and needs no
    shared files: the instance travels in `spec["csv"]`, and the certificate
    comes back inside the record.
    """
    record = {key: value for key, value in spec.items() if key != "csv"}
    record["wall_limit"] = wall_limit
    record["machine"] = machine_info()

    with tempfile.TemporaryDirectory(prefix="ermsolve-bench-") as folder:
        folder = Path(folder)
        (folder / "instance.csv").write_text(spec["csv"], encoding="utf-8")
        child_spec = {key: value for key, value in spec.items() if key != "csv"}
        child_spec["csv_path"] = str(folder / "instance.csv")
        (folder / "spec.json").write_text(json.dumps(child_spec), encoding="utf-8")
        result_path, stderr_path = folder / "result.json", folder / "stderr.txt"

        # Each solver gets exactly the threads of the cell, so --jobs cells share the cores fairly.
        threads = str(spec.get("threads", 1))
        environment = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
                           MKL_NUM_THREADS=threads)
        command = [sys.executable, "-m", "ermsolve.bench", "--run-cell", str(folder / "spec.json"), str(result_path)]
        started = time.monotonic()
        killed = False
        with open(stderr_path, "wb") as stderr:
            # A new session keeps a Ctrl-C in the terminal away from the cells, so an
            # interrupted harness does not record them as crashed.
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=stderr, env=environment, start_new_session=True)
            with _RUNNING_LOCK:
                _RUNNING.add(process)
            try:
                process.wait(timeout=wall_limit)
            except subprocess.TimeoutExpired:
                killed = True
                _kill(process)
            finally:
                with _RUNNING_LOCK:
                    _RUNNING.discard(process)
        record["wall_s"] = round(time.monotonic() - started, 6)

        if killed:
            log.warning("cell %s %s exceeded the wall limit of %.0f s and was killed",
                        spec["instance"], spec["configuration"], wall_limit)
            record.update(status="killed", error=f"killed after the wall limit of {wall_limit:g} s")
        elif result_path.is_file():
            try:
                record.update(json.loads(result_path.read_text(encoding="utf-8")))
            except json.JSONDecodeError as error:
                log.warning("cell %s %s wrote an invalid result file: %s", spec["instance"],
                            spec["configuration"], error)
                record.update(status="crashed", error=f"invalid result file: {error}")
        elif _STOPPING.is_set():
            # Killed by kill_running_cells: the harness is stopping and writes no record for it.
            record.update(status="crashed", error="killed because the harness was interrupted")
        else:
            tail = stderr_path.read_text(encoding="utf-8", errors="replace")[-STDERR_TAIL_CHARS:]
            log.warning("cell %s %s crashed with exit code %s", spec["instance"], spec["configuration"],
                        process.returncode)
            record.update(status="crashed", error=f"exit code {process.returncode}: {tail.strip()}")

    for name in RESULT_FIELDS:
        record.setdefault(name, None)
    record["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return record


def _kill(process: subprocess.Popen) -> None:
    """Kill the cell's whole process group, then reap the process."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def kill_running_cells() -> None:
    """Kill every cell process of this harness; cells that end afterwards are not reported as crashes."""
    _STOPPING.set()
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for process in running:
        _kill(process)


def execute_cell(spec: dict) -> dict:
    """Train, certify and verify one cell in this process; return the result fields of its record.

    Every exception is caught and recorded as status "error", because one
    configuration that fails on one instance is a benchmark result, not a
    reason to stop the run.
    """
    from ermsolve import __version__

    import gmpy2
    import numpy

    versions = {"ermsolve": __version__, "commit": source_commit(), "python": platform.python_version(),
                "numpy": numpy.__version__, "gmpy2": gmpy2.version()}
    try:
        fields = _train_and_verify(spec)
    except Exception as error:  # noqa: BLE001 - recorded, see the docstring
        log.exception("cell %s %s failed", spec.get("instance"), spec.get("configuration"))
        fields = {"status": "error", "error": f"{type(error).__name__}: {error}",
                  "versions": {"solver": _solver_version(spec.get("solver", ""))}}
    fields["versions"] = {**versions, **fields.get("versions", {})}
    return fields


def _train_and_verify(spec: dict) -> dict:
    from ermsolve.architecture import Architecture
    from ermsolve.certificate import build_certificate, verify_certificate
    from ermsolve.encodings import EncodingOptions, TrainingProblem
    from ermsolve.instance import load_instance
    from ermsolve.rational import format_decimal, format_rational, parse_rational
    from ermsolve.train import train

    instance = replace(load_instance(spec["csv_path"]), name=spec["instance"])
    if instance.fingerprint != spec["fingerprint"]:
        raise InputError(f"the instance file has fingerprint {instance.fingerprint}, "
                         f"the harness expected {spec['fingerprint']}")
    architecture = Architecture(hidden=(spec["width"],), loss=spec["loss"], box=parse_rational(spec["box"]),
                                name=f"width {spec['width']}")
    problem = TrainingProblem(instance, architecture)
    result = train(
        problem,
        encoding=spec["encoding"],
        solver=spec["solver"],
        time_limit=spec["time_limit"],
        threads=spec["threads"],
        encoding_options=EncodingOptions(symmetry=spec["symmetry"]),
    )

    fields = {
        "status": result.status,
        "time_s": round(result.time_s, 6),
        "solve_time_s": round(result.solve_time_s, 6),
        "rationalize_time_s": round(result.rationalize_time_s, 6),
        "nodes": result.nodes,
        "objective": _finite(result.solver_objective),
        "dual_bound": _finite(result.dual_bound),
        "gap": _finite(result.gap),
        "exact_loss": None,
        "exact_loss_decimal": None,
        "verified": None,
        "verify_time_s": None,
        "max_bits": None,
        "basis": result.basis,
        "warnings": list(result.warnings),
        "versions": {"solver": result.solver_version},
    }
    if result.solution is None:
        return fields

    fields["exact_loss"] = format_rational(result.solution.loss)
    fields["exact_loss_decimal"] = format_decimal(result.solution.loss)
    certificate = build_certificate(instance, architecture, result)
    fields["max_bits"] = certificate["bit_lengths"]["max"]

    # Verify what `ermsolve verify` would read: the certificate after a JSON round trip.
    stored = json.loads(json.dumps(certificate))
    started = time.monotonic()
    check = verify_certificate(stored, instance)
    fields["verify_time_s"] = round(time.monotonic() - started, 6)
    fields["verified"] = check.valid
    if not check.valid:
        fields["verify_problems"] = check.problems[:5]
    fields["certificate"] = certificate
    return fields


def source_commit() -> str | None:
    """Return the git commit of the source tree that ermsolve runs from, or None outside a checkout.

    Reads .git directly instead of running git, which could touch the index.
    NOTE: uncommitted changes do not show in it.
    """
    git = Path(__file__).resolve().parent.parent / ".git"
    try:
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref: "):
            return head
        ref = head.removeprefix("ref: ")
        if (git / ref).is_file():
            return (git / ref).read_text(encoding="utf-8").strip()
        for line in (git / "packed-refs").read_text(encoding="utf-8").splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        return None
    return None


def _solver_version(name: str) -> str | None:
    try:
        from ermsolve.backends import get_backend

        return get_backend(name).version()
    except Exception as error:  # noqa: BLE001 - a version string is optional
        log.warning("cannot read the version of solver %r: %s", name, error)
        return None


def _finite(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def machine_info() -> dict:
    """Return the host, the platform and the processor, for the record of where a cell ran."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"host": platform.node(), "platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count()}


def _run_cell_main(argv: list[str]) -> int:
    """Entry point of the cell process: read the spec file, write the result file."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    spec_path, result_path = argv
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    fields = execute_cell(spec)
    Path(result_path).write_text(json.dumps(fields), encoding="utf-8")
    return 0


# ---------------------------------------------------------------- the grid


def read_results(path: Path) -> list[dict]:
    """Read results.jsonl; skip lines that do not parse (a run killed while writing leaves one)."""
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            record_key(record)
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            log.warning("%s line %d is not a result record (%s); ignoring it", path, number, error)
            continue
        records.append(record)
    return records


def _check_resumable(existing: list[dict], suite: Suite, time_limit: float, threads: int, path: Path) -> None:
    """Reject a results file from another suite, other data, another time limit or thread count."""
    fingerprints = {item.id: item.instance.fingerprint for item in suite.instances}
    for record in existing:
        if record.get("suite") != suite.name:
            raise UsageError(f"{path} contains results of suite {record.get('suite')!r}, not {suite.name!r}; "
                             "choose another --out directory")
        instance = record["instance"]
        if instance in fingerprints and record.get("fingerprint") != fingerprints[instance]:
            raise UsageError(
                f"{path}: instance {instance} was run on data with fingerprint {record.get('fingerprint')}, "
                f"but the suite now generates {fingerprints[instance]}; choose another --out directory"
            )
        if record.get("time_limit") != time_limit or record.get("threads") != threads:
            raise UsageError(
                f"{path} contains runs with time limit {record.get('time_limit')} s and "
                f"{record.get('threads')} threads, but this run asks for {time_limit:g} s and {threads}; "
                "give the same --time-limit and --threads to resume, or choose another --out directory"
            )


@dataclass
class RunPlan:
    """The cells of a run and those of them not yet in the results file."""

    cells: list[Cell]
    pending: list[Cell]
    results_path: Path


def plan_run(suite: Suite, cells: list[Cell], out_dir: Path, time_limit: float, threads: int) -> RunPlan:
    results_path = out_dir / RESULTS_FILE
    existing = read_results(results_path)
    _check_resumable(existing, suite, time_limit, threads, results_path)
    done = {record_key(record) for record in existing}
    return RunPlan(cells, [cell for cell in cells if cell.key not in done], results_path)


def run_benchmark(suite: Suite, plan: RunPlan, out_dir: Path, *, time_limit: float, threads: int = 1,
                  jobs: int = 1, scheduler: str | None = None, kill_margin: float = DEFAULT_KILL_MARGIN_S,
                  progress=None) -> list[dict]:
    """Run the pending cells of `plan`, append a record per cell and return the new records.

    `progress(record, done, total)` is called after each record is written.
    Certificates go to OUT/certificates/, the instances as CSV to
    OUT/instances/, so `ermsolve verify` can check any run again.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "certificates").mkdir(exist_ok=True)
    (out_dir / "instances").mkdir(exist_ok=True)
    by_id = {item.id: item for item in suite.instances}

    # The report lists configurations in this order, the order they were requested in.
    positions = {configuration: index for index, configuration
                 in enumerate(dict.fromkeys(cell.configuration for cell in plan.cells))}
    specs = []
    for cell in plan.pending:
        item = by_id[cell.instance]
        specs.append(_cell_spec(suite, item, cell, positions[cell.configuration], time_limit, threads, out_dir))

    wall_limit = time_limit + kill_margin
    new_records: list[dict] = []
    _STOPPING.clear()

    def write(record: dict) -> None:
        record["optimum_check"] = check_optimum(record)
        if record["optimum_check"] == "mismatch":
            log.warning("cell %s %s: exact loss %s disagrees with the known optimum %s", record["instance"],
                        record["configuration"], record.get("exact_loss"), record["known_optimum"])
        certificate = record.pop("certificate", None)
        if certificate is not None:
            name = "__".join(_slug(part) for part in (record["instance"], record["encoding"],
                                                      record["solver"], record["symmetry"]))
            path = out_dir / "certificates" / f"{name}.json"
            path.write_text(json.dumps(certificate, indent=2) + "\n", encoding="utf-8")
            record["certificate"] = str(path.relative_to(out_dir))
        _append_line(plan.results_path, record)
        new_records.append(record)
        if progress:
            progress(record, len(new_records), len(specs))

    if not specs:
        return new_records
    if scheduler is None:
        _execute_local(specs, wall_limit, jobs, write)
    else:
        _execute_dask(specs, wall_limit, jobs, scheduler, write)
    return new_records


def check_optimum(record: dict) -> str | None:
    """Compare the exact loss with the suite's known optimum.

    Returns "match" for a proven optimum equal to it or a time-limited loss not
    below it, "mismatch" otherwise, and None when either value is missing.
    """
    from ermsolve.rational import parse_rational

    if record.get("known_optimum") is None or record.get("exact_loss") is None:
        return None
    loss, optimum = parse_rational(record["exact_loss"]), parse_rational(record["known_optimum"])
    if record.get("status") == "optimal":
        return "match" if loss == optimum else "mismatch"
    return "match" if loss >= optimum else "mismatch"


def _cell_spec(suite: Suite, item: SuiteInstance, cell: Cell, position: int, time_limit: float, threads: int,
               out_dir: Path) -> dict:
    from ermsolve.instance import write_instance
    from ermsolve.rational import format_rational

    csv_path = out_dir / "instances" / f"{_slug(item.id)}.csv"
    if not csv_path.is_file():
        write_instance(csv_path, item.instance)
    return {
        "suite": suite.name,
        "instance": item.id,
        "fingerprint": item.instance.fingerprint,
        "n": item.instance.n,
        "d": item.instance.d,
        "width": item.width,
        "loss": item.loss,
        "box": format_rational(item.box),
        "source": item.source,
        "known_optimum": None if item.optimum is None else format_rational(item.optimum),
        "encoding": cell.encoding,
        "solver": cell.solver,
        "symmetry": cell.symmetry,
        "configuration": cell.configuration,
        "configuration_position": position,
        "time_limit": time_limit,
        "threads": threads,
        "csv": csv_path.read_text(encoding="utf-8"),
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _append_line(path: Path, record: dict) -> None:
    """Append one record and flush it to disk, so a killed harness loses no finished cell."""
    with open(path, "a", encoding="utf-8") as results:
        results.write(json.dumps(record) + "\n")
        results.flush()
        os.fsync(results.fileno())


def _execute_local(specs: list[dict], wall_limit: float, jobs: int, write) -> None:
    """Run the cells on `jobs` threads, each waiting on one cell process."""
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="bench-cell")
    try:
        futures = [pool.submit(run_cell_isolated, spec, wall_limit) for spec in specs]
        for future in as_completed(futures):
            write(future.result())
    except BaseException:
        # Interrupted: start no new cell and kill the running ones; finished cells are already on disk.
        pool.shutdown(wait=False, cancel_futures=True)
        kill_running_cells()
        raise
    pool.shutdown(wait=True)


def _execute_dask(specs: list[dict], wall_limit: float, jobs: int, scheduler: str, write) -> None:
    """Run the cells on a Dask cluster: a new LocalCluster for "local", else the scheduler at that address.

    Each Dask task still starts its own cell process on the worker, so the wall
    limit is enforced there as well.
    """
    try:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_as_completed
    except ImportError:
        raise UsageError("--scheduler needs Dask; install it with: pip install 'dask[distributed]'") from None

    cluster = None
    if scheduler == "local":
        log.info("starting a Dask LocalCluster with %d workers", jobs)
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=logging.WARNING)
        address = cluster
    else:
        address = scheduler
    try:
        client = Client(address, timeout=30)
    except (OSError, TimeoutError) as error:
        if cluster is not None:
            cluster.close()
        raise UsageError(f"cannot connect to the Dask scheduler at {scheduler}: {error}") from None

    try:
        spec_of = {}
        for number, spec in enumerate(specs):
            future = client.submit(run_cell_isolated, spec, wall_limit, pure=False,
                                   key=f"ermsolve-bench-{number}-{_slug(spec['instance'])}")
            spec_of[future.key] = (future, spec)
        for future in dask_as_completed([future for future, _ in spec_of.values()]):
            spec = spec_of[future.key][1]
            try:
                record = future.result()
            except Exception as error:  # noqa: BLE001 - a lost worker costs one cell, as a crash does
                log.warning("cell %s %s failed on the Dask cluster: %s", spec["instance"],
                            spec["configuration"], error)
                record = {key: value for key, value in spec.items() if key != "csv"}
                record.update(status="crashed", error=f"Dask task failed: {type(error).__name__}: {error}",
                              wall_limit=wall_limit,
                              finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
                for name in RESULT_FIELDS:
                    record.setdefault(name, None)
            write(record)
    finally:
        # NOTE: a cell process whose Dask worker is shut down early keeps running
        # until its own time limit ends it. Only the local pool kills running cells.
        client.close()
        if cluster is not None:
            cluster.close()


# ---------------------------------------------------------------- command line


def register_cli(subparsers) -> None:
    """Add the `bench` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark suite over encodings and solvers and write a report",
        description=(
            "Run every instance x encoding x solver x symmetry cell of a suite, each in its own "
            "process with a hard wall limit, append one JSON line per run to OUT/results.jsonl "
            "(cells already there are skipped, so a stopped run resumes), and write OUT/report.md "
            "and OUT/profile.png. Exit codes: 0 done, 1 a certificate failed verification, "
            "2 invalid input."
        ),
    )
    parser.add_argument("--suite", required=True, metavar="SUITE",
                        help="suite name in instances/suites/ (smoke, standard, hard) or a suite TOML file")

    parser.add_argument("--encodings", action="append", metavar="E1,E2",
                        help="comma-separated MIP encodings (default: the suite's list)")
    parser.add_argument("--solvers", action="append", metavar="S1,S2",
                        help="comma-separated MIP solvers (default: the suite's list)")
    parser.add_argument("--symmetry", action="append", metavar="M1,M2",
                        help="comma-separated symmetry modes: solver, bias-order, none (default: the suite's list)")
    parser.add_argument("--configurations", action="append", metavar="E/S/M,...",
                        help="comma-separated ENCODING/SOLVER/SYMMETRY triples to run instead of the "
                        "product of --encodings, --solvers and --symmetry")
    parser.add_argument("--instances", action="append", metavar="GLOB",
                        help="run only instances whose id matches one of these comma-separated glob patterns")

    parser.add_argument("--time-limit", type=positive_seconds, metavar="S",
                        help="time limit per run in seconds (default: the suite's time_limit)")
    parser.add_argument("--threads", type=positive_int, default=1, metavar="N",
                        help="solver threads per run (default: 1)")
    parser.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                        help="runs at the same time; with --scheduler local, the number of Dask workers (default: 1)")
    parser.add_argument("--kill-margin", type=positive_seconds, default=DEFAULT_KILL_MARGIN_S, metavar="S",
                        help="seconds past the time limit before a run's process is killed "
                        f"(default: {DEFAULT_KILL_MARGIN_S:g})")

    parser.add_argument("--out", metavar="DIR", help="output directory (default: bench-out/SUITE)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on a Dask cluster: a scheduler address such as tcp://host:8786, or "
                        "'local' for a LocalCluster of --jobs workers on this machine")
    parser.add_argument("--baseline", metavar="CONFIG",
                        help="configuration ENCODING/SOLVER/SYMMETRY that speedups are measured against "
                        "(default: the first one)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing; rewrite the report from OUT/results.jsonl")

    parser.set_defaults(handler=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """Run `ermsolve bench`; return 0 when done, 1 when a certificate failed verification, 2 on invalid input."""
    try:
        return _run(args)
    except (InputError, UsageError) as error:
        print(f"ermsolve bench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nermsolve bench: interrupted; finished runs are in results.jsonl, run again to resume",
              file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from ermsolve.bench_report import write_report

    suite = load_suite(args.suite)
    configurations = _chosen_configurations(args, suite)
    check_names(configurations)
    instances = _select_instances(suite, _split(args.instances))
    out_dir = Path(args.out) if args.out else DEFAULT_OUT / suite.name
    time_limit = args.time_limit or suite.time_limit

    if not args.report_only:
        _run_grid(args, suite, instances, configurations, out_dir, time_limit)

    records = read_results(out_dir / RESULTS_FILE)
    if not records:
        raise UsageError(f"no results in {out_dir / RESULTS_FILE}; run without --report-only first")

    report_configurations = _report_configurations(args, configurations, records)
    report, image, summary = write_report(records, out_dir, report_configurations, args.baseline,
                                          [item.id for item in suite.instances])

    for row in summary.rows:
        speedup = "" if row.speedup is None else f", speedup {row.speedup:.2f}x"
        sgm = "-" if row.sgm_time_s is None else f"{row.sgm_time_s:.3g} s"
        print(f"{row.configuration}: solved {row.solved}/{row.runs}, SGM time {sgm}{speedup}")
    print(f"report: {report}" + (f", profile: {image}" if image else ""))

    failed = [record for record in records if record.get("verified") is False]
    if failed:
        print(f"ermsolve bench: {len(failed)} certificates FAILED verification; see verify_problems in "
              f"{out_dir / RESULTS_FILE}", file=sys.stderr)
        return 1
    return 0


def _report_configurations(args, configurations, records: list[dict]) -> list[str] | None:
    """Return the configurations that the report shows, None for all; check --baseline against them.

    Configurations named on the command line select and order the report.
    Otherwise it shows every configuration in the results file.
    """
    present = list(dict.fromkeys(record["configuration"] for record in records))
    chosen = None
    if args.encodings or args.solvers or args.symmetry or args.configurations:
        labels = [configuration_label(*configuration) for configuration in configurations]
        chosen = [label for label in labels if label in present]

    candidates = present if chosen is None else chosen
    if args.baseline and args.baseline not in candidates:
        raise UsageError(f"--baseline {args.baseline!r} is not among the configurations in the report: "
                         f"{', '.join(candidates)}")
    return chosen


def _run_grid(args, suite: Suite, instances, configurations, out_dir: Path, time_limit: float) -> None:
    """Run the pending cells with a progress line per finished cell on stderr."""
    cells = plan_cells(instances, configurations)
    plan = plan_run(suite, cells, out_dir, time_limit, args.threads)
    where = "this machine" if args.scheduler is None else f"Dask scheduler {args.scheduler}"
    if args.scheduler is not None:
        # Dask sets its own loggers to INFO, which would bury the progress lines.
        logging.getLogger("distributed").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
    print(f"suite {suite.name}: {len(instances)} instances x {len(configurations)} configurations = "
          f"{len(cells)} runs, {len(cells) - len(plan.pending)} already in {plan.results_path}; "
          f"running {len(plan.pending)} with time limit {time_limit:g} s, {args.jobs} at a time on {where}",
          file=sys.stderr)
    started = time.monotonic()

    def show(record, done, total):
        if record.get("time_s") is not None:
            detail = f"{record['time_s']:.2f} s"
        else:
            detail = (record.get("error") or "").splitlines()[0][:120] if record.get("error") else ""
        verified = {True: ", verified", False: ", VERIFICATION FAILED"}.get(record.get("verified"), "")
        print(f"[{done:>{len(str(total))}}/{total}] {_clock(time.monotonic() - started)} {record['instance']} "
              f"{record['configuration']}: {record['status']}, {detail}{verified}", file=sys.stderr)

    run_benchmark(suite, plan, out_dir, time_limit=time_limit, threads=args.threads, jobs=args.jobs,
                  scheduler=args.scheduler, kill_margin=args.kill_margin, progress=show)


def _chosen_configurations(args, suite: Suite) -> list[tuple[str, str, str]]:
    """Configurations from --configurations, or the product of the name lists (suite defaults filled in)."""
    if args.configurations:
        if args.encodings or args.solvers or args.symmetry:
            raise UsageError("--configurations lists whole configurations; leave out --encodings, "
                             "--solvers and --symmetry")
        configurations = []
        for text in _split(args.configurations):
            parts = text.split("/")
            if len(parts) != 3 or not all(parts):
                raise UsageError(f"--configurations: {text!r} is not ENCODING/SOLVER/SYMMETRY, "
                                 "for example bigm/scip/solver")
            configurations.append(tuple(parts))
        return configurations
    return grid_configurations(_split(args.encodings) or suite.encodings, _split(args.solvers) or suite.solvers,
                               _split(args.symmetry) or suite.symmetry)


def _split(values: list[str] | None) -> list[str]:
    """Split repeated comma-separated option values into one list without duplicates."""
    names = []
    for value in values or []:
        names.extend(part.strip() for part in value.split(",") if part.strip())
    return list(dict.fromkeys(names))


def _select_instances(suite: Suite, patterns: list[str]) -> list[SuiteInstance]:
    if not patterns:
        return list(suite.instances)
    chosen = [item for item in suite.instances if any(fnmatch.fnmatchcase(item.id, p) for p in patterns)]
    if not chosen:
        raise UsageError(f"--instances {','.join(patterns)} matches no instance of suite {suite.name}; "
                         f"ids: {', '.join(item.id for item in suite.instances)}")
    return chosen


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


if __name__ == "__main__":
    # The cell process: python -m ermsolve.bench --run-cell SPEC RESULT
    if len(sys.argv) == 4 and sys.argv[1] == "--run-cell":
        sys.exit(_run_cell_main(sys.argv[2:]))
    print("usage: python -m ermsolve.bench --run-cell SPEC.json RESULT.json (internal; use `ermsolve bench`)",
          file=sys.stderr)
    sys.exit(2)
