"""`ermsolve bench`: the smoke suite end to end, resume, the report, the statistics and bad input."""

import argparse
import json
import math
import sys

import pytest

from ermsolve import bench
from ermsolve.bench_report import (
    performance_ratios,
    profile_value,
    shifted_geometric_mean,
    summarize,
)
from ermsolve.errors import InputError

from conftest import ROOT

# Every record must carry these fields, whatever its status.
RECORD_FIELDS = (
    "suite", "instance", "fingerprint", "encoding", "solver", "symmetry", "configuration", "status",
    "time_s", "nodes", "objective", "dual_bound", "gap", "exact_loss", "verified", "rationalize_time_s",
    "verify_time_s", "versions", "machine", "time_limit", "finished",
)
SMOKE_IDS = {"xor-k2", "v_shape_5-k1", "planted-d1-w1-n8-s1", "random-d1-n6-s1-k1"}


def run_bench(*argv) -> int:
    """Parse `ermsolve bench ARGV` with the subcommand's own parser and run it."""
    parser = argparse.ArgumentParser(prog="ermsolve")
    subparsers = parser.add_subparsers(dest="command", required=True)
    bench.register_cli(subparsers)
    args = parser.parse_args(["bench", *argv])
    return args.handler(args)


def read_lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One run of the smoke suite with a 5 s limit and 2 jobs, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("smoke")
    code = run_bench("--suite", "smoke", "--time-limit", "5", "--jobs", "2", "--out", str(out))
    return code, out


def test_smoke_run_exits_zero(smoke_run):
    code, _ = smoke_run
    assert code == 0


def test_smoke_results_one_line_per_cell(smoke_run):
    _, out = smoke_run
    records = read_lines(out / "results.jsonl")
    assert len(records) == 4
    assert {record["instance"] for record in records} == SMOKE_IDS
    for record in records:
        missing = [name for name in RECORD_FIELDS if name not in record]
        assert not missing, f"{record['instance']} lacks {missing}"


def test_smoke_results_are_solved_and_verified(smoke_run):
    """The known optima: XOR width 2 is 0, the V shape width 1 is 1, the planted instance is 0."""
    _, out = smoke_run
    records = {record["instance"]: record for record in read_lines(out / "results.jsonl")}
    for record in records.values():
        assert record["status"] == "optimal", record
        assert record["verified"] is True
        assert record["versions"]["solver"].startswith("SCIP")
        assert (out / record["certificate"]).is_file()
    assert records["xor-k2"]["exact_loss"] == "0/1"
    assert records["v_shape_5-k1"]["exact_loss"] == "1/1"
    assert records["planted-d1-w1-n8-s1"]["exact_loss"] == "0/1"


def test_smoke_report_renders(smoke_run):
    _, out = smoke_run
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "bigm/scip/solver" in report
    assert "| 4 | 4 |" in report  # 4 runs, 4 solved
    assert (out / "profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_skips_finished_cells(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_bench("--suite", "smoke", "--time-limit", "5", "--jobs", "2", "--out", str(out)) == 0
    first = read_lines(out / "results.jsonl")

    # Drop one finished cell: only that one may run again.
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert run_bench("--suite", "smoke", "--time-limit", "5", "--out", str(out)) == 0
    assert "running 1 " in capsys.readouterr().err

    second = read_lines(out / "results.jsonl")
    assert len(second) == 4
    assert second[:3] == first[:3]
    assert second[3]["instance"] == first[3]["instance"]

    capsys.readouterr()
    assert run_bench("--suite", "smoke", "--time-limit", "5", "--out", str(out)) == 0
    assert "running 0 " in capsys.readouterr().err
    assert read_lines(out / "results.jsonl") == second


def test_resume_rejects_other_time_limit(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_bench("--suite", "smoke", "--time-limit", "5", "--instances", "xor*", "--out", str(out)) == 0
    assert run_bench("--suite", "smoke", "--time-limit", "7", "--out", str(out)) == 2
    assert "same --time-limit" in capsys.readouterr().err


def test_configurations_option_runs_listed_triples(tmp_path):
    out = tmp_path / "run"
    code = run_bench("--suite", "smoke", "--time-limit", "5", "--instances", "xor*", "--out", str(out),
                     "--configurations", "bigm/scip/solver,bigm-naive/scip/none")
    assert code == 0
    records = read_lines(out / "results.jsonl")
    assert sorted(record["configuration"] for record in records) == ["bigm-naive/scip/none", "bigm/scip/solver"]


@pytest.mark.parametrize("value", ["bigm/scip", "bigm//solver", "bigm/scip/solver/x"])
def test_configurations_bad_format_exits_2(tmp_path, capsys, value):
    assert run_bench("--suite", "smoke", "--configurations", value, "--out", str(tmp_path)) == 2
    assert "is not ENCODING/SOLVER/SYMMETRY" in capsys.readouterr().err


def test_configurations_with_encodings_exits_2(tmp_path, capsys):
    code = run_bench("--suite", "smoke", "--configurations", "bigm/scip/solver", "--encodings", "bigm",
                     "--out", str(tmp_path))
    assert code == 2
    assert "leave out --encodings" in capsys.readouterr().err


@pytest.mark.parametrize("status, loss, expected", [
    ("optimal", "1/1", "match"),
    ("optimal", "3/2", "mismatch"),
    ("time_limit", "3/2", "match"),
    ("time_limit", "1/2", "mismatch"),
    ("error", None, None),
])
def test_check_optimum(status, loss, expected):
    record = {"status": status, "exact_loss": loss, "known_optimum": "1/1"}
    assert bench.check_optimum(record) == expected


def test_check_optimum_without_known_optimum():
    assert bench.check_optimum({"status": "optimal", "exact_loss": "0/1", "known_optimum": None}) is None


def test_wrong_optimum_is_not_solved():
    record = make_record("p1", "bigm/scip/solver", "optimal", 1.0)
    record["optimum_check"] = "mismatch"
    row = summarize([record]).rows[0]
    assert row.solved == 0
    assert row.wrong_optimum == 1


def test_partial_last_line_is_ignored(tmp_path):
    path = tmp_path / "results.jsonl"
    good = {"instance": "a", "encoding": "bigm", "solver": "scip", "symmetry": "solver"}
    path.write_text(json.dumps(good) + "\n" + '{"instance": "b", "enc', encoding="utf-8")
    assert bench.read_results(path) == [good]


def test_report_only_rewrites_report(smoke_run, capsys):
    _, out = smoke_run
    (out / "report.md").unlink()
    assert run_bench("--suite", "smoke", "--time-limit", "5", "--out", str(out), "--report-only") == 0
    assert (out / "report.md").is_file()


def test_dask_local_cluster_runs_smoke(tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "dask"
    code = run_bench("--suite", "smoke", "--time-limit", "5", "--jobs", "2", "--scheduler", "local",
                     "--out", str(out))
    assert code == 0
    records = read_lines(out / "results.jsonl")
    assert {record["instance"] for record in records} == SMOKE_IDS
    assert all(record["verified"] is True for record in records)


def smoke_spec():
    suite = bench.load_suite("smoke")
    item = suite.instances[0]
    csv = (ROOT / "instances" / "xor.csv").read_text(encoding="utf-8")
    return {
        "suite": "smoke", "instance": item.id, "fingerprint": item.instance.fingerprint, "width": 2,
        "loss": "l1", "box": "1", "encoding": "bigm", "solver": "scip", "symmetry": "solver",
        "configuration": "bigm/scip/solver", "time_limit": 5.0, "threads": 1, "csv": csv,
    }


def test_cell_over_wall_limit_is_killed():
    """A wall limit shorter than the start-up of Python makes the harness kill the cell."""
    record = bench.run_cell_isolated(smoke_spec(), wall_limit=0.05)
    assert record["status"] == "killed"
    assert record["verified"] is None
    missing = [name for name in RECORD_FIELDS if name not in record and name != "versions"]
    assert not missing


def test_cell_without_result_is_crashed(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")
    record = bench.run_cell_isolated(smoke_spec(), wall_limit=30)
    assert record["status"] == "crashed"
    assert "exit code 1" in record["error"]


def test_cell_error_is_recorded():
    """An exception inside the cell becomes status "error", not a crash of the harness."""
    spec = smoke_spec()
    spec["fingerprint"] = "sha256:0"
    record = bench.run_cell_isolated(spec, wall_limit=30)
    assert record["status"] == "error"
    assert "fingerprint" in record["error"]


# ---------------------------------------------------------------- statistics on hand-made numbers


def test_shifted_geometric_mean_exact_values():
    # (0 + 1)(3 + 1) = 4, square root 2, minus the shift 1.
    assert shifted_geometric_mean([0, 3]) == pytest.approx(1.0, rel=1e-12)
    # 1 * 8 * 27 = 216, cube root 6.
    assert shifted_geometric_mean([0, 7, 26]) == pytest.approx(5.0, rel=1e-12)
    # Shift 10: (0 + 10)(990 + 10) = 10^4, square root 100.
    assert shifted_geometric_mean([0, 990], shift=10) == pytest.approx(90.0, rel=1e-12)


def test_shifted_geometric_mean_rejects_no_values():
    with pytest.raises(ValueError):
        shifted_geometric_mean([])


def test_performance_ratios_exact_values():
    times = {
        "A": [1.0, 2.0, None, 4.0, None],
        "B": [2.0, 2.0, 3.0, None, None],
    }
    ratios = performance_ratios(times)
    assert ratios["A"] == [1.0, 1.0, math.inf, 1.0, math.inf]
    assert ratios["B"] == [2.0, 1.0, 1.0, math.inf, math.inf]


def test_profile_values_exact():
    ratios = performance_ratios({"A": [1.0, 2.0, None, 4.0, None], "B": [2.0, 2.0, 3.0, None, None]})
    assert profile_value(ratios["A"], 1.0) == 3 / 5
    assert profile_value(ratios["B"], 1.0) == 2 / 5
    assert profile_value(ratios["B"], 1.99) == 2 / 5
    assert profile_value(ratios["B"], 2.0) == 3 / 5
    # The instance that no configuration solved is never reached.
    assert profile_value(ratios["A"], 1e12) == 3 / 5


def make_record(instance, configuration, status, time_s, limit=10.0):
    encoding, solver, symmetry = configuration.split("/")
    return {
        "suite": "hand", "instance": instance, "encoding": encoding, "solver": solver, "symmetry": symmetry,
        "configuration": configuration, "status": status, "time_s": time_s, "time_limit": limit,
        "verified": True if status == "optimal" else None, "solve_time_s": time_s,
        "rationalize_time_s": 0.0, "verify_time_s": 0.0,
    }


def test_summary_counts_unsolved_at_time_limit():
    """Baseline: both instances unsolved, counted at 9 s; the other solves both in 0 s: speedup (9+1)/(0+1)."""
    records = [
        make_record("p1", "naive/scip/none", "time_limit", 9.0, limit=9.0),
        make_record("p2", "naive/scip/none", "error", None, limit=9.0),
        make_record("p1", "bigm/scip/solver", "optimal", 0.0, limit=9.0),
        make_record("p2", "bigm/scip/solver", "optimal", 0.0, limit=9.0),
    ]
    summary = summarize(records)
    naive, best = summary.rows
    assert (naive.solved, naive.time_limit, naive.failed) == (0, 1, 1)
    assert naive.sgm_time_s == pytest.approx(9.0, rel=1e-12)
    assert best.sgm_time_s == pytest.approx(0.0, abs=1e-12)
    assert best.speedup == pytest.approx(10.0, rel=1e-12)


def test_summary_caps_solved_time_at_limit():
    records = [make_record("p1", "bigm/scip/solver", "optimal", 12.0, limit=3.0)]
    assert summarize(records).rows[0].sgm_time_s == pytest.approx(3.0, rel=1e-12)


def test_summary_unverified_optimum_is_not_solved():
    record = make_record("p1", "bigm/scip/solver", "optimal", 1.0)
    record["verified"] = False
    row = summarize([record]).rows[0]
    assert row.solved == 0
    assert row.verify_failed == 1


def test_summary_leaves_out_incomplete_instances():
    records = [
        make_record("p1", "a/scip/solver", "optimal", 1.0),
        make_record("p1", "b/scip/solver", "optimal", 3.0),
        make_record("p2", "a/scip/solver", "optimal", 7.0),
    ]
    summary = summarize(records)
    assert summary.complete_instances == ["p1"]
    assert summary.rows[0].sgm_time_s == pytest.approx(1.0, rel=1e-12)
    assert summary.ratios == {"a/scip/solver": [1.0], "b/scip/solver": [3.0]}


# ---------------------------------------------------------------- bad input


def test_unknown_suite_exits_2(tmp_path, capsys):
    assert run_bench("--suite", "no-such-suite", "--out", str(tmp_path)) == 2
    error = capsys.readouterr().err
    assert "unknown suite 'no-such-suite'" in error
    assert "smoke" in error


def test_unknown_encoding_lists_valid_ones(tmp_path, capsys):
    assert run_bench("--suite", "smoke", "--encodings", "bigm,nope", "--out", str(tmp_path)) == 2
    error = capsys.readouterr().err
    assert "unknown encoding 'nope'" in error
    assert "bigm" in error.split("valid:")[1]


def test_unknown_solver_exits_2(tmp_path, capsys):
    assert run_bench("--suite", "smoke", "--solvers", "gurobi", "--out", str(tmp_path)) == 2
    assert "unknown solver 'gurobi'" in capsys.readouterr().err


def test_report_only_without_results_exits_2(tmp_path, capsys):
    assert run_bench("--suite", "smoke", "--out", str(tmp_path / "empty"), "--report-only") == 2
    assert "no results" in capsys.readouterr().err


def test_negative_time_limit_is_usage_error(tmp_path):
    with pytest.raises(SystemExit) as stop:
        run_bench("--suite", "smoke", "--time-limit", "-1", "--out", str(tmp_path))
    assert stop.value.code == 2


# ---------------------------------------------------------------- suite files


def write_suite(tmp_path, text):
    path = tmp_path / "suite.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_suite_lists_expand_to_product(tmp_path):
    path = write_suite(tmp_path, '[[planted]]\ndim = [1, 2]\nwidth = [1, 2]\npoints = 10\nseed = 3\ngrid = 16\n')
    ids = [item.id for item in bench.load_suite(path).instances]
    assert ids == ["planted-d1-w1-n10-s3-g16", "planted-d1-w2-n10-s3-g16",
                   "planted-d2-w1-n10-s3-g16", "planted-d2-w2-n10-s3-g16"]


def test_suite_generation_is_reproducible(tmp_path):
    path = write_suite(tmp_path, '[[planted]]\ndim = 2\nwidth = 2\npoints = 20\nseed = 1\n')
    first, second = bench.load_suite(path), bench.load_suite(path)
    assert first.instances[0].instance.fingerprint == second.instances[0].instance.fingerprint


@pytest.mark.parametrize("text, message", [
    ('[[planted]]\ndim = 1\nwidth = 1\npoints = 10\ncolour = "red"\n', "unknown keys colour"),
    ('[[planted]]\ndim = 1\nwidth = 1\npoints = 10\nnoise = 0.1\n', "`noise` must be an integer or a string"),
    ('[[planted]]\ndim = 1\nwidth = 1\npoints = 100\n', "exceeds the 17 distinct lattice points"),
    ('[[random]]\ndim = 1\npoints = 5\n', "missing `width`"),
    ('[[file]]\npath = "none.csv"\nwidth = 1\n', "not found"),
    ('[[random]]\ndim = 1\npoints = 5\nwidth = 1\n[[random]]\ndim = 1\npoints = 5\nwidth = 1\n',
     "occur more than once"),
    ('time_limit = 0\n[[random]]\ndim = 1\npoints = 5\nwidth = 1\n', "time_limit must be a positive"),
    ('name = "x"\n', "no instances"),
])
def test_invalid_suite_is_rejected(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        bench.load_suite(write_suite(tmp_path, text))


def test_shipped_suites_load():
    for name in ("smoke", "standard", "hard"):
        suite = bench.load_suite(name)
        assert suite.instances, name


def test_standard_suite_covers_the_stated_grid():
    """Dimensions 1-3, widths 1-3, n from 10 to 200, planted, noisy, random and the real data sets."""
    suite = bench.load_suite("standard")
    generated = [item for item in suite.instances if item.source["kind"] != "file"]
    assert {item.instance.d for item in generated} == {1, 2, 3}
    assert {item.width for item in generated} == {1, 2, 3}
    sizes = [item.instance.n for item in generated]
    assert min(sizes) == 10
    assert max(sizes) == 200
    assert {item.id.split("-")[0] for item in generated} == {"planted", "noisy", "random"}
    used = {item.source["path"].removeprefix("../") for item in suite.instances if item.source["kind"] == "file"}
    real = {"iris_petal_12.csv", "iris_petal_1d_22.csv", "iris_sepal_30.csv", "diabetes_bmi_s5_20.csv"}
    assert real <= used
