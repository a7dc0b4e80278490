"""The shipped instances: sizes, pinned fingerprints, provenance and stated optima."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import pytest
from gmpy2 import mpq
from sklearn.datasets import load_diabetes, load_iris

from ermsolve.generate import load_teacher, planted_instance
from ermsolve.instance import load_instance
from ermsolve.network import Layer, Network, exact_loss

INSTANCES = Path(__file__).resolve().parent.parent / "instances"

# File name: (n, d, fingerprint). A changed fingerprint means the data changed,
# so every optimum recorded in instances/README.md must be recomputed.
SHIPPED = {
    "iris_petal_12.csv": (12, 2, "sha256:703e4800c96b96d393da5649024bd489e0d26c5608059d1226bd0d6387bf396a"),
    "iris_petal_1d_22.csv": (22, 1, "sha256:9a429f3887332ab0c51e98b4b58335ae1b8e7ddb51646cf876ad8f186ea0f6de"),
    "iris_sepal_30.csv": (30, 2, "sha256:9f6b3e0de912369562e54c1f606cbc603e9f115bd4e6f62e87cc717a9399add9"),
    "diabetes_bmi_s5_20.csv": (20, 2, "sha256:38acc9493df315420e3bff9e6fa7b5b7c8bbc83724ed05081519dee5153787ce"),
    "xor.csv": (4, 2, "sha256:09335f44d78993afd1a8e1399c77d80030911331970d500ba029ce785f19ee1e"),
    "v_shape_5.csv": (5, 1, "sha256:76031747133703e42204c938017b10f0eadb503bcbb31076c773d528b67c2e26"),
    "clipped_ramp_5.csv": (5, 1, "sha256:864f76433cb256bf57276b957ae94971f47ebac87025b83e037c45bf8661ade6"),
    "planted_d1_w2_n10.csv": (10, 1, "sha256:6664cb0119fdae35af22b7d509253a497799c77eb3d32a7cd5bc4f1ba4eb71e3"),
    "planted_d2_w2_n20.csv": (20, 2, "sha256:54b26f9392cab75ad757ebc5f7a3aff24cfd53ddf8797c51b18de5ce68702004"),
    "planted_d3_w3_n30.csv": (30, 3, "sha256:19f5e641f2c76c1e05acd0d45d6935ddef583dd87d7c358f5fbd631541181cff"),
    "multi_output_hinge_pair_5.csv": (5, 1, "sha256:bb6d3df9a9db89b735055d8e11e66a221b3592fdea075c91f0feed13e2063ba6"),
    "multi_output_repeated_4.csv": (4, 1, "sha256:7a53a88ef94913253930763cb7cfb7f6bf0526d7d6eceac48a055aa06aba13b4"),
    "xor_labels.csv": (4, 2, "sha256:87621221441f1d11d196d2bae72facb3ce045b75d476f25eb2b1679fb8a13a5e"),
}

# Planted file stem: the `planted_instance` arguments that produced it.
PLANTED = {
    "planted_d1_w2_n10": dict(d=1, width=2, n=10, seed=1),
    "planted_d2_w2_n20": dict(d=2, width=2, n=20, seed=1),
    "planted_d3_w3_n30": dict(d=3, width=3, n=30, seed=1),
}

LOSSES = ("l1", "l2", "linf")


def _build_module():
    spec = importlib.util.spec_from_file_location("build_sklearn", INSTANCES / "build_sklearn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _one_hidden_layer(W1, b1, v, c) -> Network:
    """Build a network from exact text values, for the hand-derived optima."""
    hidden = Layer(tuple(tuple(mpq(w) for w in row) for row in W1), tuple(mpq(b) for b in b1))
    output = Layer((tuple(mpq(x) for x in v),), (mpq(c),))
    return Network((hidden, output))


def test_every_csv_is_listed():
    on_disk = {path.name for path in INSTANCES.glob("*.csv")}
    assert on_disk == set(SHIPPED)


def test_readme_has_row_per_instance():
    readme = (INSTANCES / "README.md").read_text(encoding="utf-8")
    for file_name, (n, d, _) in SHIPPED.items():
        assert f"| `{file_name}` |" in readme, file_name
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{file_name}` |"))
        assert f"| {n} | {d} |" in row, file_name


@pytest.mark.parametrize("file_name", sorted(SHIPPED))
def test_instance_size_and_fingerprint(file_name):
    n, d, fingerprint = SHIPPED[file_name]
    instance = load_instance(INSTANCES / file_name)
    assert instance.n == n
    assert instance.d == d
    assert instance.fingerprint == fingerprint


def test_sklearn_files_rebuild_byte_for_byte():
    build = _build_module()
    for file_name, text in build.build_all().items():
        assert (INSTANCES / file_name).read_bytes() == text.encode("utf-8"), file_name


def test_iris_values_match_sklearn():
    build = _build_module()
    data = load_iris().data

    for file_name, (rows, features, target) in build.IRIS_INSTANCES.items():
        instance = load_instance(INSTANCES / file_name)
        assert instance.feature_names == tuple(name for name, _ in features)
        assert len(rows) == instance.n

        columns = [column for _, column in features]
        for x, y, row in zip(instance.X, instance.y, rows):
            # repr of a float read from a one-decimal text is that text again.
            expected = [Fraction(repr(float(data[row, column]))) for column in columns]
            assert [Fraction(int(v.numerator), int(v.denominator)) for v in x] == expected, (file_name, row)
            assert Fraction(int(y.numerator), int(y.denominator)) == Fraction(repr(float(data[row, target])))


def test_demo_instance_is_first_four_of_each_species():
    instance = load_instance(INSTANCES / "iris_petal_12.csv")
    assert instance.X[0] == (mpq(51, 10), mpq(14, 10))
    assert instance.y[0] == mpq(2, 10)
    assert instance.X[11] == (mpq(63, 10), mpq(56, 10))
    assert instance.y[11] == mpq(18, 10)


def test_diabetes_values_are_rounded_sklearn_data():
    build = _build_module()
    bunch = load_diabetes()
    instance = load_instance(INSTANCES / "diabetes_bmi_s5_20.csv")
    half_unit = Fraction(1, 2 * 10**build.DIABETES_DECIMALS)

    assert instance.feature_names == ("bmi", "s5")
    assert bunch.feature_names[build.DIABETES_BMI] == "bmi"
    assert bunch.feature_names[build.DIABETES_S5] == "s5"
    for x, y, row in zip(instance.X, instance.y, build.DIABETES_ROWS):
        for value, column in zip(x, (build.DIABETES_BMI, build.DIABETES_S5)):
            exact = Fraction(int(value.numerator), int(value.denominator))
            assert abs(exact - Fraction(float(bunch.data[row, column]))) <= half_unit, (row, column)
        assert y * 100 == mpq(int(bunch.target[row]))


@pytest.mark.parametrize("stem", sorted(PLANTED))
def test_planted_file_regenerates(stem):
    generated, _ = planted_instance(**PLANTED[stem])
    assert generated.fingerprint == load_instance(INSTANCES / f"{stem}.csv").fingerprint


@pytest.mark.parametrize("stem", sorted(PLANTED))
def test_planted_teacher_fits_exactly(stem):
    instance = load_instance(INSTANCES / f"{stem}.csv")
    teacher = load_teacher(INSTANCES / f"{stem}.teacher.json")
    assert teacher.layers[0].fan_out == PLANTED[stem]["width"]
    for _, value in teacher.parameters():
        assert -1 <= value <= 1
    for loss in LOSSES:
        assert exact_loss(teacher, instance.X, instance.y, loss) == 0, loss


@pytest.mark.parametrize("stem", sorted(PLANTED))
def test_planted_teacher_units_are_not_linear(stem):
    instance = load_instance(INSTANCES / f"{stem}.csv")
    teacher = load_teacher(INSTANCES / f"{stem}.teacher.json")
    hidden, output = teacher.layers
    for unit in range(hidden.fan_out):
        pre_activations = [hidden.apply(x)[unit] for x in instance.X]
        assert any(z > 0 for z in pre_activations), unit
        assert any(z < 0 for z in pre_activations), unit
        assert output.W[0][unit] != 0, unit


# Witnesses of the optima stated in instances/README.md. Each network lies in
# the box [-1, 1] and attains the stated value. The matching lower bounds are
# the hand proofs in the README.
WITNESSES = [
    ("xor.csv", ([[1, -1], [-1, 1]], [0, 0], [1, 1], 0), {"l1": 0, "l2": 0, "linf": 0}),
    ("xor.csv", ([[-1, -1]], [1], [-1], 1), {"l1": 1}),
    ("v_shape_5.csv", ([[1], [-1]], [0, 0], [1, 1], 0), {"l1": 0, "l2": 0, "linf": 0}),
    ("v_shape_5.csv", ([[1]], ["-1/2"], [1], "1/2"), {"l1": 1, "l2": "1/2", "linf": "1/2"}),
    ("clipped_ramp_5.csv", ([[1], [1]], [0, "-1/2"], [1, -1], 0), {"l1": 0, "l2": 0, "linf": 0}),
    ("clipped_ramp_5.csv", ([[1]], [0], ["1/2"], 0), {"l1": "1/4"}),
    ("clipped_ramp_5.csv", ([[1]], ["1/6"], ["1/2"], 0), {"l2": "1/24"}),
    ("clipped_ramp_5.csv", ([[1]], [0], ["1/2"], "1/8"), {"linf": "1/8"}),
]


@pytest.mark.parametrize("file_name, parameters, optima", WITNESSES)
def test_hand_derived_optimum_attained(file_name, parameters, optima):
    instance = load_instance(INSTANCES / file_name)
    network = _one_hidden_layer(*parameters)
    for _, value in network.parameters():
        assert -1 <= value <= 1
    for loss, value in optima.items():
        assert exact_loss(network, instance.X, instance.y, loss) == mpq(value), loss
