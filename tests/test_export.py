"""`ermsolve export`: the written MPS or LP file solves to the same optimum as `train`."""

import argparse
from fractions import Fraction

import pytest

from ermsolve import export
from ermsolve.architecture import Architecture
from ermsolve.backends import SolveOptions, get_backend
from ermsolve.encodings import TrainingProblem, get_encoding
from ermsolve.instance import load_instance
from ermsolve.train import train

from conftest import INSTANCES

pyscipopt = pytest.importorskip("pyscipopt")

IRIS = INSTANCES / "iris_petal_12.csv"


def _run(argv):
    """Parse `argv` as the CLI would and run the export handler; return its exit code."""
    parser = argparse.ArgumentParser(prog="ermsolve")
    subparsers = parser.add_subparsers(dest="command")
    export.register_cli(subparsers)
    args = parser.parse_args(["export", *argv])
    return args.handler(args)


def _solve_file(path):
    """Read a written model back with PySCIPOpt, solve it and return the optimal objective."""
    scip = pyscipopt.Model()
    scip.hideOutput()
    scip.readProblem(str(path))
    scip.optimize()
    assert scip.getStatus() == "optimal"
    return scip.getObjVal()


def _pattern_optimum(problem, encoding_name, signs):
    """Optimum of one sign pattern's MIP solved directly with the SCIP backend."""
    model = get_encoding(encoding_name).build(problem, signs).model
    result = get_backend("scip").solve(model, SolveOptions(time_limit=60))
    assert result.status == "optimal"
    return result.objective


@pytest.fixture(scope="module")
def iris_problem():
    return TrainingProblem(load_instance(IRIS), Architecture(hidden=(2,), loss="l1"))


def test_mps_all_positive_matches_train(tmp_path, iris_problem, capsys):
    """Default signs are all positive; train solves that pattern first, without an objective limit."""
    out = tmp_path / "iris.mps"
    assert _run([str(IRIS), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out

    result = train(iris_problem, encoding="bigm", start="none")
    first_run = result.runs[0]
    assert first_run.signs == (1, 1)
    assert _solve_file(out) == pytest.approx(first_run.objective, abs=1e-6)
    # The optimum of iris width 2 has signs ++, so the file also reaches the exact loss.
    assert result.solution.signs == (1, 1)
    assert _solve_file(out) == pytest.approx(float(result.solution.loss), abs=1e-6)


@pytest.mark.parametrize("encoding_name", ["bigm", "bigm-cuts", "indicator", "sos1", "bigm-obbt-cuts"])
def test_lp_chosen_signs_match_pattern_optimum(tmp_path, iris_problem, encoding_name):
    out = tmp_path / "iris.lp"
    code = _run([str(IRIS), "--out", str(out), "--format", "lp", "--signs", "+-", "--encoding", encoding_name])
    assert code == 0
    expected = _pattern_optimum(iris_problem, "bigm", (1, -1))
    assert _solve_file(out) == pytest.approx(expected, abs=1e-6)


def test_sign_binaries_file_matches_train(tmp_path, iris_problem):
    out = tmp_path / "signs.mps"
    assert _run([str(IRIS), "--out", str(out), "--encoding", "bigm-signs"]) == 0
    result = train(iris_problem, encoding="bigm", start="none")
    assert _solve_file(out) == pytest.approx(float(result.solution.loss), abs=1e-6)


def test_l2_file_with_overrides(tmp_path, write_csv):
    """Points (0, 0), (4, 4), width 1, box 1/2: the l2 optimum is 45/8 (derived in test_encodings.py)."""
    data = write_csv("x,y\n0,0\n4,4\n")
    out = tmp_path / "slope.mps"
    code = _run([str(data), "--out", str(out), "--width", "1", "--loss", "l2", "--box", "1/2"])
    assert code == 0
    assert _solve_file(out) == pytest.approx(float(Fraction(45, 8)), abs=1e-6)


def test_mps_keeps_model_names(tmp_path):
    out = tmp_path / "iris.mps"
    assert _run([str(IRIS), "--out", str(out)]) == 0
    words = set(out.read_text().split())
    for name in ("w[0][1]", "b[1]", "c", "h[3][0]", "a[3][0]", "e[11]", "relu_active[3][0]"):
        assert name in words, name


def test_lp_spells_indices_with_underscores(tmp_path):
    """The LP format reads [ as the start of a quadratic term, so h[3][0] is written h_3_0."""
    out = tmp_path / "iris.lp"
    assert _run([str(IRIS), "--out", str(out), "--format", "lp"]) == 0
    text = out.read_text()
    assert "[" not in text
    words = set(text.replace(":", " ").split())
    for name in ("w_0_1", "b_1", "c", "h_3_0", "a_3_0", "e_11", "relu_active_3_0"):
        assert name in words, name


def test_l2_lp_file_reads_back(tmp_path, write_csv):
    """The quadratic epigraph row survives the LP format too (optimum 45/8 as above)."""
    data = write_csv("x,y\n0,0\n4,4\n")
    out = tmp_path / "slope.lp"
    code = _run([str(data), "--out", str(out), "--format", "lp", "--width", "1", "--loss", "l2", "--box", "1/2"])
    assert code == 0
    assert _solve_file(out) == pytest.approx(float(Fraction(45, 8)), abs=1e-6)


def test_out_name_without_extension(tmp_path):
    """SCIP chooses its writer by extension; export writes the requested format under any name."""
    out = tmp_path / "model.txt"
    assert _run([str(IRIS), "--out", str(out), "--format", "mps"]) == 0
    assert "ROWS" in out.read_text().split()
    assert list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--format", "cip"], "unknown format 'cip'; valid formats: mps, lp"),
        (["--encoding", "bigm-magic"], "valid encodings: bigm"),
        (["--signs", "+"], "--signs must be 2 characters"),
        (["--signs", "+x"], "--signs must be 2 characters"),
        (["--encoding", "bigm-signs", "--signs", "++"], "leave out --signs"),
        (["--box", "-1"], "--box must be positive"),
        (["--box", "abc"], "--box must be an exact positive number"),
        (["--width", "0"], "--width must be a positive integer"),
    ],
)
def test_bad_input_exits_2(tmp_path, capsys, argv, message):
    out = tmp_path / "model.mps"
    assert _run([str(IRIS), "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_instance_exits_2(tmp_path, capsys):
    assert _run([str(tmp_path / "absent.csv"), "--out", str(tmp_path / "m.mps")]) == 2
    assert "not found" in capsys.readouterr().err


def test_missing_folder_exits_2(tmp_path, capsys):
    assert _run([str(IRIS), "--out", str(tmp_path / "absent" / "m.mps")]) == 2
    assert "not found" in capsys.readouterr().err


def test_exact_box_reaches_the_model(tmp_path):
    """--box 1/2 gives |w'| <= 1/4: the written bounds of w are 0.25."""
    out = tmp_path / "box.lp"
    assert _run([str(IRIS), "--out", str(out), "--format", "lp", "--box", "1/2"]) == 0
    assert "-0.25 <= w_0_0 <= 0.25" in out.read_text()


@pytest.fixture
def cli_main(monkeypatch):
    """`ermsolve.cli.main` with the export subcommand registered, whether or not the CLI lists it yet."""
    from ermsolve import cli

    if "ermsolve.export" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "ermsolve.export"))
    return cli.main


def test_cli_writes_model(tmp_path, cli_main):
    out = tmp_path / "iris.mps"
    assert cli_main(["export", str(IRIS), "--out", str(out)]) == 0
    assert out.stat().st_size > 0


def test_cli_bad_format_exits_2(tmp_path, cli_main, capsys):
    assert cli_main(["export", str(IRIS), "--out", str(tmp_path / "m.x"), "--format", "xml"]) == 2
    assert "valid formats: mps, lp" in capsys.readouterr().err


def test_cli_missing_out_exits_2(cli_main, capsys):
    with pytest.raises(SystemExit) as stop:
        cli_main(["export", str(IRIS)])
    assert stop.value.code == 2
    assert "--out" in capsys.readouterr().err
