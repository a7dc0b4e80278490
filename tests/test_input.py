"""Exact parsing of instances and architectures, and the errors for bad input."""

from fractions import Fraction

import pytest

from ermsolve.architecture import load_architecture
from ermsolve.cli import main
from ermsolve.errors import InputError
from ermsolve.instance import load_instance
from ermsolve.rational import bit_length, format_rational, parse_rational

from conftest import INSTANCES


@pytest.mark.parametrize(
    "text, expected",
    [
        ("3", Fraction(3)),
        ("-0.25", Fraction(-1, 4)),
        ("1e-3", Fraction(1, 1000)),
        ("2E-3", Fraction(1, 500)),
        ("7/3", Fraction(7, 3)),
        ("-7/3", Fraction(-7, 3)),
        (" 0.1 ", Fraction(1, 10)),
        ("+.5", Fraction(1, 2)),
        ("5.", Fraction(5)),
        ("1.5e2", Fraction(150)),
    ],
)
def test_parse_rational_exact(text, expected):
    value = parse_rational(text)
    assert value == expected
    assert Fraction(int(value.numerator), int(value.denominator)) == expected


def test_parse_rational_tenth_is_not_float():
    assert parse_rational("0.1") != Fraction(0.1)


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "", "  ", "1/0", "abc", "1,5", "0x10", "1e", "1/2/3", "--1"])
def test_parse_rational_rejects(text):
    with pytest.raises(InputError):
        parse_rational(text)


def test_zero_denominator_message():
    with pytest.raises(InputError, match="zero denominator"):
        parse_rational("3/0")


def test_bit_length_definition():
    assert bit_length(Fraction(0)) == 1
    assert bit_length(Fraction(1)) == 2
    assert bit_length(Fraction(-3, 4)) == 2 + 3
    assert bit_length(Fraction(255, 256)) == 8 + 9


def test_format_rational_lowest_terms():
    assert format_rational(Fraction(6, 4)) == "3/2"
    assert format_rational(Fraction(-2)) == "-2/1"


def test_instance_values_exact(write_csv):
    path = write_csv("a,b,y\n3,-0.25,1e-3\n2E-3,7/3,0\n")
    instance = load_instance(path)
    assert instance.X == ((Fraction(3), Fraction(-1, 4)), (Fraction(1, 500), Fraction(7, 3)))
    assert instance.y == (Fraction(1, 1000), Fraction(0))
    assert instance.feature_names == ("a", "b")


def test_fingerprint_ignores_spelling(write_csv):
    first = load_instance(write_csv("a,y\n0.5,1\n", "first.csv"))
    second = load_instance(write_csv("b,y\n1/2,1.0\n", "second.csv"))
    third = load_instance(write_csv("a,y\n0.5,1.001\n", "third.csv"))
    assert first.fingerprint == second.fingerprint
    assert first.fingerprint != third.fingerprint
    assert first.fingerprint.startswith("sha256:")


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("", ["empty file"]),
        ("x,y\n", ["header only"]),
        ("x,y\n1,2\n3\n", ["row 3", "1 values", "2 columns"]),
        ("x,y\n1,2\n3,4,5\n", ["row 3", "3 values"]),
        ("x,y\n1,abc\n", ["row 2", "column 'y'", "'abc'"]),
        ("x,y\nnan,1\n", ["row 2", "column 'x'", "'nan'"]),
        ("x,y\n1,inf\n", ["row 2", "column 'y'", "'inf'"]),
        ("x,y\n,1\n", ["row 2", "column 'x'", "empty value"]),
        ("x,y\n1/0,1\n", ["row 2", "column 'x'", "zero denominator"]),
        ("x,target\n1,2\n", ["last header column", "'target'"]),
        ("y\n1\n", ["no feature column"]),
        ("x,x,y\n1,2,3\n", ["duplicate header columns x"]),
        ("x,y\n1,2\n\n3,4\n", ["row 3 is empty"]),
    ],
)
def test_instance_rejects(write_csv, text, fragments):
    path = write_csv(text)
    with pytest.raises(InputError) as caught:
        load_instance(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_instance_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_instance(tmp_path / "absent.csv")


def test_trailing_blank_lines_allowed(write_csv):
    assert load_instance(write_csv("x,y\n1,2\n\n\n")).n == 1


def test_architecture_reads_exact_box(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('hidden = [3]\nloss = "l2"\nbox = 0.1\ninput_dim = 2\n')
    architecture = load_architecture(path)
    assert architecture.box == Fraction(1, 10)
    assert architecture.hidden == (3,)
    assert architecture.loss == "l2"
    assert architecture.name == "m"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("hidden = [2]\nloss = 'l3'\n", "unknown loss 'l3'"),
        ("hidden = [2]\nactivation = 'tanh'\n", "unknown activation 'tanh'"),
        ("hidden = [0]\n", "positive integers"),
        ("width = 2\nhidden = [2]\n", "either `hidden` or `width`"),
        ("loss = 'l1'\n", "missing `hidden`"),
        ("hidden = [2]\nbox = -1\n", "box must be positive"),
        ("hidden = [2]\nbox = 'nan'\n", "invalid number 'nan'"),
        ("hidden = [2]\nlearning_rate = 1\n", "unknown keys learning_rate"),
        ("hidden = [2\n", "invalid TOML"),
    ],
)
def test_architecture_rejects(tmp_path, text, fragment):
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=None) as caught:
        load_architecture(path)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        (["solve", "{bad}"], "column 'x'"),
        (["solve", "{good}", "--width", "0"], "positive integer"),
        (["solve", "{good}", "--time-limit", "nan"], "positive finite"),
        (["solve", "{good}", "--box", "inf"], "invalid number"),
        (["solve", "{good}", "--solver", "gurobi"], "invalid choice"),
        (["solve", "{good}", "--model", "{model}"], "input_dim = 3"),
        (["solve", "{missing}"], "not found"),
    ],
)
def test_cli_bad_input_exits_2(write_csv, tmp_path, capsys, arguments, fragment):
    bad = write_csv("x,y\nnan,1\n", "bad.csv")
    good = write_csv("x,y\n1,2\n", "good.csv")
    model = tmp_path / "m.toml"
    model.write_text("hidden = [1]\ninput_dim = 3\n")
    paths = {"bad": bad, "good": good, "model": model, "missing": tmp_path / "missing.csv"}
    argv = [a.format(**paths) for a in arguments]
    with pytest.raises(SystemExit) as caught:
        raise SystemExit(main(argv))
    assert caught.value.code == 2
    assert fragment in capsys.readouterr().err


def test_shipped_models_load():
    from conftest import MODELS

    names = sorted(path.name for path in MODELS.glob("*.toml"))
    assert "relu2_l1.toml" in names
    for path in MODELS.glob("*.toml"):
        assert load_architecture(path).hidden[0] >= 1
    assert INSTANCES.exists()


def test_multi_output_targets(write_csv):
    instance = load_instance(write_csv("a,y1,y2\n1,2,3/4\n0,-1,0.5\n"))
    assert instance.outputs == 2
    assert instance.Y == ((Fraction(2), Fraction(3, 4)), (Fraction(-1), Fraction(1, 2)))
    assert instance.y is None
    assert instance.target_names == ("y1", "y2")


def test_multi_output_header_order(write_csv):
    with pytest.raises(InputError, match="y1, y2"):
        load_instance(write_csv("a,y2,y1\n1,2,3\n"))
