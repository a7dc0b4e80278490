"""Planted-teacher instances: data whose exact optimum is known to be zero.

A random one-hidden-layer ReLU network (the teacher) with parameters on a small
grid inside the box [-box, box] labels points drawn from the lattice of
multiples of 1/grid in [-1, 1]^d. The targets are the teacher's exact outputs,
so for a student of the same box and at least the teacher's width the optimal
training loss is exactly 0 under l1, l2 and linf. Optional noise, or random
labels, remove that guarantee.

Randomness comes only from `numpy.random.default_rng(seed)`.

NOTE: NumPy's compatibility policy for `numpy.random` promises the same stream
for a seed only on the same build of NumPy. If another release changes the
stream of `Generator.integers`, the same seed gives other data, and
tests/test_instances.py fails on the pinned fingerprints of the shipped planted
instances.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from gmpy2 import mpq

from ermsolve.errors import InputError, UsageError
from ermsolve.instance import Instance, write_instance
from ermsolve.network import Layer, Network
from ermsolve.rational import format_rational, parse_rational

logger = logging.getLogger(__name__)

TEACHER_FORMAT = "ermsolve-teacher-v1"
LABEL_MODES = ("regression", "random")

# Teacher parameters are multiples of box / TEACHER_STEPS, so they stay short
# rationals and lie inside the box for every box.
TEACHER_STEPS = 4

# Noise values are multiples of sigma / NOISE_STEPS in [-sigma, sigma].
NOISE_STEPS = 8

# Maximum draws per hidden unit. After that many, a unit whose pre-activation
# does not change sign on the data is kept with a warning.
MAX_UNIT_DRAWS = 1000


def planted_instance(
    d: int,
    width: int,
    n: int,
    seed: int = 0,
    grid: int = 8,
    box=1,
    noise=0,
    labels: str = "regression",
) -> tuple[Instance, Network | None]:
    """Draw `n` distinct lattice points in [-1, 1]^d and label them with a random teacher.

    Returns the instance and the teacher network. With `labels="random"` the
    targets are uniform on the multiples of 1/grid in [-1, 1], unrelated to any
    network, and the teacher is None. `box` and `noise` are exact rationals
    (int, Fraction, mpq or text such as "1/2"). Each target gets independent
    noise uniform on the multiples of noise/8 in [-noise, noise].

    Raises `InputError` for invalid sizes or values, naming the value.
    """
    box = _to_exact_rational(box, "box")
    noise = _to_exact_rational(noise, "noise")
    _check_sizes(d, width, n, seed, grid, box, noise, labels)

    rng = np.random.default_rng(seed)
    points = _draw_points(rng, d, n, grid)

    if labels == "random":
        targets = [mpq(int(k), grid) for k in rng.integers(-grid, grid, endpoint=True, size=n)]
        name = f"random_d{d}_n{n}_s{seed}"
        return Instance(name, _feature_names(d), tuple(points), tuple(targets)), None

    teacher = _draw_teacher(rng, points, width, box)
    targets = [teacher.forward(x)[0] for x in points]
    if noise:
        steps = rng.integers(-NOISE_STEPS, NOISE_STEPS, endpoint=True, size=n)
        targets = [t + noise * mpq(int(k), NOISE_STEPS) for t, k in zip(targets, steps)]

    name = f"planted_d{d}_w{width}_n{n}_s{seed}"
    return Instance(name, _feature_names(d), tuple(points), tuple(targets)), teacher


def _to_exact_rational(value, option: str) -> mpq:
    if isinstance(value, str):
        try:
            return parse_rational(value)
        except InputError as error:
            raise InputError(f"{option}: {error}") from None
    if isinstance(value, (bool, float)):
        raise InputError(f"{option}: expected an exact rational such as 1 or \"1/2\", got {value!r}")
    return mpq(value)


def _check_sizes(d, width, n, seed, grid, box, noise, labels) -> None:
    for option, value in (("dim", d), ("width", width), ("points", n), ("grid", grid)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{option} must be a positive integer, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if box <= 0:
        raise InputError(f"box must be positive, got {format_rational(box)}")
    if noise < 0:
        raise InputError(f"noise must be zero or positive, got {format_rational(noise)}")
    if labels not in LABEL_MODES:
        raise InputError(f"labels: unknown mode {labels!r}; valid modes: {', '.join(LABEL_MODES)}")
    if labels == "random" and noise:
        raise InputError("noise applies to regression labels only; set it to 0 or use labels 'regression'")

    lattice_size = (2 * grid + 1) ** d
    if n > lattice_size:
        raise InputError(
            f"points = {n} exceeds the {lattice_size} distinct lattice points of grid {grid} "
            f"in dimension {d}; raise grid or lower points"
        )


def _feature_names(d: int) -> tuple[str, ...]:
    return tuple(f"x{j}" for j in range(1, d + 1))


def _draw_points(rng: np.random.Generator, d: int, n: int, grid: int) -> list[tuple[mpq, ...]]:
    """Draw `n` distinct points, each coordinate a multiple of 1/grid in [-1, 1]."""
    side = 2 * grid + 1
    lattice_size = side**d

    # A point is its index in base `side`, so drawing indices without
    # replacement keeps the points distinct. Large lattices use rejection,
    # because `choice` without replacement would allocate the whole lattice.
    if lattice_size <= 1_000_000:
        indices = [int(i) for i in rng.choice(lattice_size, size=n, replace=False)]
    else:
        seen: set[int] = set()
        indices = []
        while len(indices) < n:
            index = int(rng.integers(0, lattice_size))
            if index not in seen:
                seen.add(index)
                indices.append(index)

    points = []
    for index in indices:
        coordinates = []
        for _ in range(d):
            index, digit = divmod(index, side)
            coordinates.append(mpq(digit - grid, grid))
        points.append(tuple(coordinates))
    return points


def _draw_teacher(rng: np.random.Generator, points, width: int, box: mpq) -> Network:
    """Draw a width-`width` ReLU teacher with every parameter a multiple of box/4.

    Each hidden unit is redrawn until its pre-activation is positive on some
    point and negative on another, so no unit is linear or dead on the data.
    Output weights are nonzero, so every unit enters the function.
    """
    step = box / TEACHER_STEPS
    d = len(points[0])

    def draw_parameters(size: int, nonzero: bool = False) -> list[mpq]:
        while True:
            values = [step * int(k) for k in rng.integers(-TEACHER_STEPS, TEACHER_STEPS, endpoint=True, size=size)]
            if not nonzero or any(values):
                return values

    rows, biases = [], []
    for unit in range(width):
        for attempt in range(1, MAX_UNIT_DRAWS + 1):
            weights = draw_parameters(d, nonzero=True)
            bias = draw_parameters(1)[0]
            pre_activations = [sum((w * x for w, x in zip(weights, point)), bias) for point in points]
            if any(z > 0 for z in pre_activations) and any(z < 0 for z in pre_activations):
                break
        else:
            logger.warning(
                "teacher unit %d: pre-activation does not change sign on the data after %d draws; keeping the last draw",
                unit,
                MAX_UNIT_DRAWS,
            )
        rows.append(tuple(weights))
        biases.append(bias)

    output_weights = [_nonzero_draw(rng, step) for _ in range(width)]
    output_bias = draw_parameters(1)[0]
    hidden = Layer(W=tuple(rows), b=tuple(biases))
    output = Layer(W=(tuple(output_weights),), b=(output_bias,))
    return Network(layers=(hidden, output))


def _nonzero_draw(rng: np.random.Generator, step: mpq) -> mpq:
    magnitude = int(rng.integers(1, TEACHER_STEPS, endpoint=True))
    sign = 1 if rng.integers(0, 2) else -1
    return step * (sign * magnitude)


def teacher_to_json(teacher: Network, box, settings: dict) -> dict:
    """Convert a teacher network to a JSON object with every parameter as a "p/q" string."""
    hidden, output = teacher.layers
    return {
        "format": TEACHER_FORMAT,
        "activation": teacher.activation,
        "box": format_rational(box),
        "W1": [[format_rational(v) for v in row] for row in hidden.W],
        "b1": [format_rational(v) for v in hidden.b],
        "W2": [[format_rational(v) for v in row] for row in output.W],
        "b2": [format_rational(v) for v in output.b],
        "settings": settings,
    }


def load_teacher(path: str | Path) -> Network:
    """Read a teacher JSON file written by `ermsolve generate --teacher-out`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: teacher file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read teacher JSON ({error})") from None

    if not isinstance(data, dict) or data.get("format") != TEACHER_FORMAT:
        raise InputError(f"{path}: not a teacher file; expected \"format\": \"{TEACHER_FORMAT}\"")

    def matrix(key: str) -> tuple[tuple[mpq, ...], ...]:
        rows = data.get(key)
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise InputError(f"{path}: {key} must be a list of rows of \"p/q\" strings")
        return tuple(tuple(_field(value, f"{path}: {key}") for value in row) for row in rows)

    def vector(key: str) -> tuple[mpq, ...]:
        values = data.get(key)
        if not isinstance(values, list):
            raise InputError(f"{path}: {key} must be a list of \"p/q\" strings")
        return tuple(_field(value, f"{path}: {key}") for value in values)

    layers = (Layer(matrix("W1"), vector("b1")), Layer(matrix("W2"), vector("b2")))
    return Network(layers=layers, activation=str(data.get("activation", "relu")))


def _field(value, where: str) -> mpq:
    if not isinstance(value, str):
        raise InputError(f"{where}: expected a string like \"3/4\", got {value!r}")
    try:
        return parse_rational(value)
    except InputError as error:
        raise InputError(f"{where}: {error}") from None


def register_cli(subparsers) -> None:
    """Add the `generate` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "generate",
        help="write a planted-teacher instance whose optimal loss is known",
        description=(
            "Draw distinct points on the lattice of multiples of 1/GRID in [-1, 1]^D and label "
            "them with a random ReLU teacher of width K whose parameters are multiples of BOX/4. "
            "With noise 0 and regression labels, a network of width >= K in the same box fits "
            "every target exactly, so the optimal l1, l2 and linf loss is 0."
        ),
    )

    parser.add_argument("--dim", type=int, required=True, metavar="D", help="number of features")
    parser.add_argument("--width", type=int, required=True, metavar="K", help="hidden units of the teacher")
    parser.add_argument("--points", type=int, required=True, metavar="N", help="number of data points")

    parser.add_argument(
        "--grid", type=int, default=8, metavar="G",
        help="coordinates are multiples of 1/G in [-1, 1] (default 8)",
    )
    parser.add_argument(
        "--box", default="1", metavar="R",
        help="teacher parameters lie in [-R, R]; exact, such as 1 or 1/2 (default 1)",
    )
    parser.add_argument(
        "--noise", default="0", metavar="SIGMA",
        help="add noise uniform on the multiples of SIGMA/8 in [-SIGMA, SIGMA] to each target; "
        "exact, such as 1/10 (default 0)",
    )
    parser.add_argument(
        "--labels", default="regression", metavar="MODE",
        help="'regression': targets are the teacher's outputs; 'random': targets uniform on the "
        "multiples of 1/G in [-1, 1] (default regression)",
    )

    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--out", required=True, metavar="FILE.csv", help="instance CSV to write")
    parser.add_argument(
        "--teacher-out", metavar="TEACHER.json",
        help="also write the teacher's parameters as \"p/q\" strings (regression labels only)",
    )

    parser.set_defaults(handler=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """Run `ermsolve generate`; return 0 on success, 2 on invalid input, 1 if a write fails."""
    try:
        instance, teacher = _generate_from_args(args)
    except (InputError, UsageError) as error:
        print(f"ermsolve generate: error: {error}", file=sys.stderr)
        return 2

    settings = {
        "dim": args.dim, "width": args.width, "points": args.points, "grid": args.grid,
        "box": format_rational(parse_rational(args.box)),
        "noise": format_rational(parse_rational(args.noise)),
        "labels": args.labels, "seed": args.seed,
    }
    try:
        write_instance(args.out, instance)
        if args.teacher_out:
            text = json.dumps(teacher_to_json(teacher, parse_rational(args.box), settings), indent=2)
            Path(args.teacher_out).write_text(text + "\n", encoding="utf-8")
    except OSError as error:
        print(f"ermsolve generate: error: cannot write {error.filename}: {error.strerror}", file=sys.stderr)
        return 1

    print(f"wrote {args.out}: n={instance.n} d={instance.d} {instance.fingerprint}")
    if args.teacher_out:
        print(f"wrote {args.teacher_out}: teacher of width {args.width}")
    return 0


def _generate_from_args(args: argparse.Namespace) -> tuple[Instance, Network | None]:
    if args.labels not in LABEL_MODES:
        raise UsageError(f"--labels: unknown mode {args.labels!r}; valid modes: {', '.join(LABEL_MODES)}")
    if args.teacher_out and args.labels == "random":
        raise UsageError("--teacher-out needs --labels regression; random labels have no teacher")

    for option, path in (("--out", args.out), ("--teacher-out", args.teacher_out)):
        if path and not Path(path).parent.is_dir():
            raise UsageError(f"{option}: directory {str(Path(path).parent)!r} not found for {path!r}")
    if args.teacher_out and Path(args.teacher_out).resolve() == Path(args.out).resolve():
        raise UsageError(f"--out and --teacher-out name the same file {args.out!r}")

    try:
        return planted_instance(
            args.dim, args.width, args.points, seed=args.seed, grid=args.grid,
            box=args.box, noise=args.noise, labels=args.labels,
        )
    except InputError as error:
        # Every message of `planted_instance` starts with the option's name, so
        # "points must be ..." becomes "--points must be ...".
        raise InputError(f"--{error}") from None
