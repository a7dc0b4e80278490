"""Planted-teacher generator: determinism, exact fit, box, options and bad input."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
from gmpy2 import mpq

from ermsolve.errors import InputError
from ermsolve.generate import load_teacher, planted_instance, register_cli
from ermsolve.instance import load_instance
from ermsolve.network import exact_loss

LOSSES = ("l1", "l2", "linf")


def run_generate(argv: list[str]) -> int:
    """Parse `argv` as `ermsolve generate ...` would and run the handler."""
    parser = argparse.ArgumentParser(prog="ermsolve")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register_cli(subparsers)
    args = parser.parse_args(["generate", *argv])
    return args.handler(args)


def test_cli_same_seed_same_files(tmp_path, capsys):
    outputs = []
    for run in ("a", "b"):
        csv_path, teacher_path = tmp_path / f"{run}.csv", tmp_path / f"{run}.json"
        code = run_generate([
            "--dim", "2", "--width", "2", "--points", "20", "--seed", "7",
            "--out", str(csv_path), "--teacher-out", str(teacher_path),
        ])
        assert code == 0
        outputs.append((csv_path.read_bytes(), teacher_path.read_bytes()))
    assert outputs[0] == outputs[1]
    assert "n=20 d=2 sha256:" in capsys.readouterr().out


def test_cli_other_seed_other_data(tmp_path):
    paths = []
    for seed in ("1", "2"):
        path = tmp_path / f"seed{seed}.csv"
        assert run_generate(["--dim", "2", "--width", "2", "--points", "20", "--seed", seed, "--out", str(path)]) == 0
        paths.append(path)
    assert paths[0].read_bytes() != paths[1].read_bytes()


def test_cli_teacher_file_fits_written_csv(tmp_path):
    csv_path, teacher_path = tmp_path / "planted.csv", tmp_path / "teacher.json"
    code = run_generate([
        "--dim", "3", "--width", "3", "--points", "25", "--grid", "4", "--box", "1/2",
        "--seed", "3", "--out", str(csv_path), "--teacher-out", str(teacher_path),
    ])
    assert code == 0

    instance = load_instance(csv_path)
    teacher = load_teacher(teacher_path)
    assert (instance.n, instance.d) == (25, 3)
    for loss in LOSSES:
        assert exact_loss(teacher, instance.X, instance.y, loss) == 0, loss

    data = json.loads(teacher_path.read_text())
    assert data["box"] == "1/2"
    assert data["settings"]["seed"] == 3
    for value in data["b1"] + data["b2"] + [v for row in data["W1"] + data["W2"] for v in row]:
        assert "/" in value


@pytest.mark.parametrize(
    "d, width, n, seed, box",
    [(1, 1, 5, 0, 1), (1, 3, 17, 4, 1), (2, 2, 20, 1, "1/2"), (3, 4, 40, 9, 3), (5, 2, 30, 2, "7/3")],
)
def test_teacher_reproduces_targets_in_box(d, width, n, seed, box):
    instance, teacher = planted_instance(d, width, n, seed=seed, box=box)
    assert (instance.n, instance.d) == (n, d)
    assert teacher.layers[0].fan_out == width
    for loss in LOSSES:
        assert exact_loss(teacher, instance.X, instance.y, loss) == 0, loss

    limit = mpq(box)
    for name, value in teacher.parameters():
        assert -limit <= value <= limit, name


def test_points_distinct_on_lattice():
    grid = 3
    instance, _ = planted_instance(2, 2, 49, seed=5, grid=grid)
    assert len(set(instance.X)) == 49
    for point in instance.X:
        for value in point:
            assert -1 <= value <= 1
            assert (value * grid).denominator == 1


def test_every_lattice_point_when_points_fill_it():
    instance, _ = planted_instance(1, 1, 5, seed=0, grid=2)
    assert sorted(x for (x,) in instance.X) == [mpq(k, 2) for k in range(-2, 3)]


def test_teacher_units_change_sign_on_data():
    instance, teacher = planted_instance(2, 3, 30, seed=11)
    hidden = teacher.layers[0]
    for unit in range(hidden.fan_out):
        pre_activations = [hidden.apply(x)[unit] for x in instance.X]
        assert any(z > 0 for z in pre_activations), unit
        assert any(z < 0 for z in pre_activations), unit
    assert all(v != 0 for v in teacher.layers[1].W[0])


def test_noise_stays_within_sigma():
    clean, teacher = planted_instance(2, 2, 30, seed=4)
    noisy, noisy_teacher = planted_instance(2, 2, 30, seed=4, noise="1/10")
    assert noisy.X == clean.X
    assert noisy_teacher == teacher
    assert noisy.y != clean.y

    sigma = mpq(1, 10)
    for clean_target, noisy_target in zip(clean.y, noisy.y):
        deviation = noisy_target - clean_target
        assert abs(deviation) <= sigma
        assert (deviation / (sigma / 8)).denominator == 1


def test_random_labels_have_no_teacher():
    instance, teacher = planted_instance(2, 2, 20, seed=1, grid=4, labels="random")
    assert teacher is None
    for target in instance.y:
        assert -1 <= target <= 1
        assert (target * 4).denominator == 1


def test_python_api_rejects_float_box():
    with pytest.raises(InputError, match="box"):
        planted_instance(2, 2, 10, box=0.5)


@pytest.mark.parametrize(
    "options, expected_message",
    [
        (["--points", "-3"], "--points must be a positive integer, got -3"),
        (["--width", "0"], "--width must be a positive integer, got 0"),
        (["--dim", "0"], "--dim must be a positive integer, got 0"),
        (["--grid", "0"], "--grid must be a positive integer, got 0"),
        (["--seed", "-1"], "--seed must be a non-negative integer, got -1"),
        (["--labels", "classification"], "unknown mode 'classification'"),
        (["--noise", "nan"], "--noise: invalid number 'nan'"),
        (["--noise=-1/4"], "--noise must be zero or positive, got -1/4"),
        (["--box", "0"], "--box must be positive, got 0/1"),
        (["--box", "1/0"], "--box: zero denominator in '1/0'"),
        (["--points", "300", "--grid", "8"], "exceeds the 289 distinct lattice points"),
        (["--labels", "random", "--noise", "1/2"], "noise applies to regression labels only"),
    ],
)
def test_cli_bad_value_exits_2(tmp_path, capsys, options, expected_message):
    argv = ["--dim", "2", "--width", "2", "--points", "10", "--out", str(tmp_path / "out.csv")]
    # Later options replace earlier ones, so each case overrides one default.
    code = run_generate(argv + options)
    assert code == 2
    assert expected_message in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_cli_missing_directory_exits_2(tmp_path, capsys):
    target = tmp_path / "no-such-dir" / "out.csv"
    code = run_generate(["--dim", "1", "--width", "1", "--points", "3", "--out", str(target)])
    assert code == 2
    assert "no-such-dir" in capsys.readouterr().err


def test_cli_teacher_with_random_labels_exits_2(tmp_path, capsys):
    code = run_generate([
        "--dim", "1", "--width", "1", "--points", "3", "--labels", "random",
        "--out", str(tmp_path / "out.csv"), "--teacher-out", str(tmp_path / "t.json"),
    ])
    assert code == 2
    assert "--teacher-out needs --labels regression" in capsys.readouterr().err


def test_cli_non_integer_points_is_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_generate(["--dim", "1", "--width", "1", "--points", "ten", "--out", str(tmp_path / "o.csv")])
    assert exit_info.value.code == 2
    assert "--points" in capsys.readouterr().err


def test_ermsolve_command_generate(tmp_path):
    out = tmp_path / "planted.csv"
    good = subprocess.run(
        [sys.executable, "-m", "ermsolve.cli", "generate", "--dim", "2", "--width", "2",
         "--points", "12", "--seed", "5", "--out", str(out)],
        capture_output=True, text=True, timeout=60,
    )
    assert good.returncode == 0, good.stderr
    assert load_instance(out).n == 12

    bad = subprocess.run(
        [sys.executable, "-m", "ermsolve.cli", "generate", "--dim", "2", "--width", "2",
         "--points", "5", "--noise", "nan", "--out", str(tmp_path / "bad.csv")],
        capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 2
    assert "--noise: invalid number 'nan'" in bad.stderr


def test_load_teacher_rejects_other_json(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"format": "something-else"}')
    with pytest.raises(InputError, match="not a teacher file"):
        load_teacher(path)
