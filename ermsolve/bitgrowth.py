"""Bit-length growth of exact values through piecewise-linear and polynomial activations.

The `bitgrowth` command draws one random network per depth 1..D, all sharing
their first layers, and runs it once in exact rational arithmetic: forward pass,
loss and backpropagation. For every depth it records the maximum bit-length of
the hidden activations, of the loss and of the gradient entries, the wall time
of that exact pass, and the upper bound derived in `bit_length_bounds`. Through
ReLU the bit-lengths grow by an additive amount per layer. Through x^2 they
double per layer.

Definitions used throughout:

- The bit-length of a rational p/q in lowest terms (q > 0) is bits(|p|) +
  bits(q), with bits(0) = 0, as in `ermsolve.rational.bit_length`. So 0 has
  bit-length 1 and 3/5 has 2 + 3 = 5.
- A B-bit rational is p/q with integers |p| < 2^B and 1 <= q < 2^B, drawn
  uniformly and independently and then reduced. Its absolute value is below
  2^B and its bit-length is at most 2B.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gmpy2
from gmpy2 import mpq

from ermsolve.backprop import LOSSES, Backpropagation, backpropagate
from ermsolve.errors import ErmsolveError, InputError
from ermsolve.network import (
    Activation,
    Layer,
    Network,
    PiecewiseLinear,
    parse_activation,
    parse_parameter_name,
)
from ermsolve.rational import bit_length

logger = logging.getLogger(__name__)

DEFAULT_ACTIVATIONS = ("relu", "square")
JSON_NAME = "bitgrowth.json"
PLOT_NAME = "bitgrowth.png"


# ---------------------------------------------------------------------------
# Settings and random instances


@dataclass(frozen=True)
class SweepSettings:
    """Options of one `bitgrowth` run; see `register_cli` for their meaning."""

    depth: int = 8
    width: int = 3
    activations: tuple[str, ...] = DEFAULT_ACTIVATIONS
    bits: int = 8
    seed: int = 0
    points: int = 4
    loss: str = "l2"
    max_bits: int = 10_000_000
    time_limit: float = 60.0
    sign_of: str | None = None

    def validate(self) -> tuple[Activation, ...]:
        """Raise `InputError` naming the first invalid option; return the parsed activations."""
        for option, value in (("--depth", self.depth), ("--width", self.width), ("--bits", self.bits),
                              ("--points", self.points), ("--max-bits", self.max_bits)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"invalid {option} {value!r}: expected a positive integer")
        if not self.time_limit > 0:
            raise InputError(f"invalid --time-limit {self.time_limit!r}: expected a positive number of seconds")
        if 2 * self.bits > self.max_bits:
            raise InputError(
                f"--bits {self.bits} gives inputs of up to {2 * self.bits} bits, more than "
                f"--max-bits {self.max_bits}; raise --max-bits or lower --bits"
            )
        if self.loss not in LOSSES:
            raise InputError(f"unknown --loss {self.loss!r}; valid losses: {', '.join(LOSSES)}")
        if not self.activations:
            raise InputError("no activation given; use for example --activation relu,square")

        activations = tuple(parse_activation(spelling) for spelling in self.activations)
        names = [activation.name for activation in activations]
        for name in names:
            if names.count(name) > 1:
                raise InputError(f"activation {name!r} is listed twice in --activation")

        if self.sign_of is not None:
            # The deepest network has every parameter name that any depth has.
            parse_parameter_name(self.sign_of)
            _shape_network(self.width, self.depth).parameter(self.sign_of)
        return activations


def _shape_network(width: int, depth: int) -> Network:
    # A zero network with the sweep's shape, used only to check parameter names.
    zero = mpq(0)
    layers = [Layer(((zero,) * width,) * width, (zero,) * width) for _ in range(depth)]
    layers.append(Layer(((zero,) * width,), (zero,)))
    return Network(tuple(layers), "relu")


def random_rational(rng: random.Random, bits: int) -> mpq:
    """Draw a B-bit rational p/q: |p| < 2^bits and 1 <= q < 2^bits, then reduce."""
    limit = 2**bits
    return mpq(rng.randrange(-limit + 1, limit), rng.randrange(1, limit))


@dataclass
class Experiment:
    """Random data, an output layer and hidden layers drawn on demand, shared by all activations.

    The input dimension equals the width. Layers are drawn in order from one
    seeded generator, so the network of depth L is the same whatever the
    maximum depth of the run, and every activation gets the same parameters.
    """

    width: int
    bits: int
    seed: int
    points: int
    X: list[list[mpq]] = field(init=False)
    y: list[mpq] = field(init=False)
    output: Layer = field(init=False)
    hidden: list[Layer] = field(init=False, default_factory=list)

    def __post_init__(self):
        self._rng = random.Random(self.seed)
        self.X = [[random_rational(self._rng, self.bits) for _ in range(self.width)] for _ in range(self.points)]
        self.y = [random_rational(self._rng, self.bits) for _ in range(self.points)]
        self.output = self._draw_layer(1)

    def _draw_layer(self, fan_out: int) -> Layer:
        W = tuple(tuple(random_rational(self._rng, self.bits) for _ in range(self.width)) for _ in range(fan_out))
        b = tuple(random_rational(self._rng, self.bits) for _ in range(fan_out))
        return Layer(W, b)

    def network(self, depth: int, activation: str) -> Network:
        """Build the network of `depth` hidden layers, drawing layers not drawn yet."""
        while len(self.hidden) < depth:
            self.hidden.append(self._draw_layer(self.width))
        return Network(tuple(self.hidden[:depth]) + (self.output,), activation)


# ---------------------------------------------------------------------------
# Derived upper bounds


@dataclass(frozen=True)
class BitBounds:
    """Upper bounds on the bit-lengths of the exact values of one network shape."""

    activations: int
    loss: int
    gradient: int


def _ceil_log2(n: int) -> int:
    # The smallest e >= 0 with n <= 2^e, for an integer n >= 1.
    return max(n - 1, 0).bit_length()


def _exponent_above(value) -> int:
    # The smallest e >= 0 with |value| <= 2^e.
    magnitude = abs(mpq(value))
    ceiling = -((-magnitude.numerator) // magnitude.denominator)
    return _ceil_log2(max(int(ceiling), 1))


def _activation_constants(activation: Activation) -> tuple[int, int, int, int]:
    """Return (d, eV, eC, eC') for the bound recursions of `bit_length_bounds`.

    For every rational z = N/D with integer N and D > 0:
    V * D^d * act(z) and V * D^(d-1) * act'(z) are integers, |act(z)| <=
    2^eC * max(1, |z|)^d and |act'(z)| <= 2^eC' * max(1, |z|)^(d-1), where V <= 2^eV.
    """
    if isinstance(activation, PiecewiseLinear):
        # act(z) is z or a z with a = s/t, so V = t and both magnitudes are at most max(1, |a|).
        slope_exponent = _exponent_above(max(mpq(1), abs(activation.slope)))
        return 1, _ceil_log2(int(activation.slope.denominator)), slope_exponent, slope_exponent

    coefficients = activation.coefficients
    common_denominator = 1
    for c in coefficients:
        common_denominator = int(gmpy2.lcm(common_denominator, c.denominator))
    value_sum = sum((abs(c) for c in coefficients), mpq(0))
    derivative_sum = sum((i * abs(c) for i, c in enumerate(coefficients)), mpq(0))
    return (
        max(activation.degree, 1),
        _ceil_log2(common_denominator),
        _exponent_above(max(mpq(1), value_sum)),
        _exponent_above(max(mpq(1), derivative_sum)),
    )


def bit_length_bounds(activation: Activation, width: int, depth: int, bits: int, points: int, loss: str) -> BitBounds:
    """Bound the bit-lengths of a sweep network's exact activations, loss and gradient.

    The network has input dimension `width`, `depth` hidden layers of `width`
    units and one output. Parameters, inputs and targets are B-bit rationals.

    Every quantity is tracked as exponents. Its magnitude is at most 2^eA. Its
    denominator divides the product of two integers. The first, at most 2^eX,
    depends on the point (products of the input and target denominators). The
    second, at most 2^eS, is shared by all points (products of parameter
    denominators and V). A value v with |v| <= 2^eA whose
    denominator divides an integer Q <= 2^eQ is p/q in lowest terms with
    q <= Q and |p| <= 2^(eA + eQ), so its bit-length is at most eA + 2 eQ + 2.

    One layer with fan-in f and m = width * (f + 1) parameters:
        |z| <= (f + 1) 2^B max(1, A)                  eZ = B + ceil(log2(f + 1)) + eA
        D(z) divides D(h_prev) * (product of the m parameter denominators)
                                                      eS += B m
        h = act(z)                                    eA = eC + d eZ,  eX = d eX,  eS = eV + d eS
    For a piecewise-linear activation d = 1, so each layer adds a constant to
    every exponent and the bound is linear in the depth. For degree d >= 2 the
    exponents are multiplied by d per layer. Summing over N points multiplies the
    point part by N but keeps one copy of the shared part. The gradient goes
    through the same steps backwards, delta_l = act'(z_l) * (W_{l+1}^T delta_{l+1}),
    and dL/dW_l[k][j] = sum over points of dL/dr * delta_l[k] * h_{l-1}[j].
    """
    d, eV, eC, eC_derivative = _activation_constants(activation)
    B, K, N = bits, width, points

    # Forward: per hidden layer the exponents of z and h. Index 0 is the input.
    eA, eX, eS = [B], [K * B], [0]
    eZ, eXz, eSz = [None], [None], [None]
    fan_in = K
    for _ in range(depth):
        parameter_count = K * (fan_in + 1)
        eZ.append(B + _ceil_log2(fan_in + 1) + eA[-1])
        eXz.append(eX[-1])
        eSz.append(eS[-1] + B * parameter_count)
        eA.append(eC + d * eZ[-1])
        eX.append(d * eXz[-1])
        eS.append(eV + d * eSz[-1])
        fan_in = K
    activation_bound = max(eA[l] + 2 * (eX[l] + eS[l]) + 2 for l in range(1, depth + 1))

    # Output and residual r = f - y; the target adds B to the point part.
    e_output = B + _ceil_log2(K + 1) + eA[depth]
    eR = max(e_output, B) + 1
    eXr = eX[depth] + B
    eSr = eS[depth] + B * (K + 1)
    loss_bound = _loss_bound(loss, N, eR, eXr, eSr)

    # Backward: bounds on df/dW_l = delta_l h_{l-1}, from the output layer down.
    # The output layer has delta = 1, so df/dW = h_depth.
    gradient_bound = _gradient_bound(loss, N, eR, eXr, eSr, eA[depth], eX[depth], eS[depth])
    e_delta, eX_delta, eS_delta = 0, 0, 0
    fan_out, above_parameters = 1, K + 1
    for l in range(depth, 0, -1):
        e_delta += B + _ceil_log2(fan_out) + eC_derivative + (d - 1) * eZ[l]
        eX_delta += (d - 1) * eXz[l]
        eS_delta += B * above_parameters + eV + (d - 1) * eSz[l]
        layer_bound = _gradient_bound(
            loss, N, eR, eXr, eSr, e_delta + eA[l - 1], eX_delta + eX[l - 1], eS_delta + eS[l - 1]
        )
        gradient_bound = max(gradient_bound, layer_bound)
        fan_out, above_parameters = K, K * (K + 1)
    return BitBounds(activation_bound, loss_bound, gradient_bound)


def _loss_bound(loss: str, N: int, eR: int, eXr: int, eSr: int) -> int:
    # Residuals have |r| <= 2^eR and a denominator of point part 2^eXr and shared part 2^eSr.
    if loss == "l2":
        magnitude, point, shared = _ceil_log2(N) + 2 * eR, 2 * eXr, 2 * eSr
    elif loss == "l1":
        magnitude, point, shared = _ceil_log2(N) + eR, eXr, eSr
    else:
        # linf is a single |r_i|.
        magnitude, point, shared, N = eR, eXr, eSr, 1
    return magnitude + 2 * (N * point + shared) + 2


def _gradient_bound(loss: str, N: int, eR: int, eXr: int, eSr: int, eG: int, eXg: int, eSg: int) -> int:
    # Bound of sum_i dL/dr_i * G_i, where the factor G (a df/dtheta) has the
    # exponents (eG, eXg, eSg). dL/dr is 2r for l2, otherwise a sign with no denominator.
    if loss == "l2":
        magnitude, point, shared = _ceil_log2(N) + 1 + eR + eG, eXr + eXg, eSr + eSg
    elif loss == "l1":
        magnitude, point, shared = _ceil_log2(N) + eG, eXg, eSg
    else:
        # linf takes dL/dr from one point only.
        magnitude, point, shared, N = eG, eXg, eSg, 1
    return magnitude + 2 * (N * point + shared) + 2


# ---------------------------------------------------------------------------
# Measurement of one exact pass


@dataclass(frozen=True)
class SignReport:
    """The exact sign of one partial derivative and what a rounded computation needs to get it.

    `exact_bits` is the bit-length of the exact value. `float64_correct_bits`
    is the number of leading bits in which an IEEE double evaluation of the same
    backpropagation agrees with the exact value: floor(-log2(relative error)),
    clipped to 0..53. A 0 means that even its sign cannot be trusted. None means
    that it overflowed to inf or nan, or that the exact value is 0. `sufficient_precision`
    is the first MPFR precision in 2, 4, 8, ... (with an exponent range of
    about +-2^30) whose evaluation returned the exact sign, and None when none
    up to the search limit did. An exact zero counts as found only when the
    rounded pass also returns exactly 0, as it does for a unit that ReLU
    switches off.
    """

    parameter: str
    sign: int
    exact_bits: int
    float64_value: str
    float64_correct_bits: int | None
    sufficient_precision: int | None
    seconds: float


@dataclass(frozen=True)
class DepthRecord:
    """Measured and bounded bit-lengths at one depth of one activation's sweep."""

    depth: int
    activation_bits: int
    loss_bits: int
    gradient_bits: int
    bound_activation_bits: int
    bound_loss_bits: int
    bound_gradient_bits: int
    seconds: float
    sign: SignReport | None = None

    @property
    def max_bits(self) -> int:
        return max(self.activation_bits, self.loss_bits, self.gradient_bits)


def measure_exact_pass(network: Network, X, y, loss: str) -> tuple[Backpropagation, dict]:
    """Run the exact pass once; return its result, the maximum bit-lengths and its wall time."""
    start = time.perf_counter()
    result = backpropagate(network, X, y, loss)
    seconds = time.perf_counter() - start

    activation_bits = max(bit_length(h) for point in result.activations for layer in point for h in layer)
    gradient_bits = max(bit_length(value) for _, value in result.gradient.items())
    measured = {
        "activation_bits": activation_bits,
        "loss_bits": bit_length(result.loss),
        "gradient_bits": gradient_bits,
        "seconds": seconds,
    }
    return result, measured


def analyse_sign(network: Network, X, y, loss: str, parameter: str, exact_value: mpq, max_precision: int) -> SignReport:
    """Report the sign of the exact dL/d`parameter` and the precision a rounded pass needs for it."""
    start = time.perf_counter()
    sign = int(gmpy2.sign(exact_value))

    with gmpy2.ieee(64):
        approximation = backpropagate(network, X, y, loss, convert=gmpy2.mpfr).gradient[parameter]
    float64_value = str(approximation)
    correct_bits = None
    if sign and gmpy2.is_finite(approximation):
        correct_bits = _correct_leading_bits(mpq(approximation), exact_value, 53)

    sufficient = None
    precision = 2
    while precision <= max_precision:
        with gmpy2.context(precision=precision):
            rounded = backpropagate(network, X, y, loss, convert=gmpy2.mpfr).gradient[parameter]
        if gmpy2.is_finite(rounded) and int(gmpy2.sign(rounded)) == sign:
            sufficient = precision
            break
        precision *= 2
    # NOTE: the precision search doubles and stops at the first success. A
    # precision between two tried ones may also work, and in rare cases a higher
    # one may fail again, because rounding errors need not shrink monotonically.

    return SignReport(parameter, sign, bit_length(exact_value), float64_value, correct_bits, sufficient,
                      time.perf_counter() - start)


def _correct_leading_bits(approximation: mpq, exact: mpq, precision: int) -> int:
    # floor(-log2(|approximation - exact| / |exact|)), clipped to 0..precision.
    error = abs(approximation - exact) / abs(exact)
    if not error:
        return precision
    if error >= 1:
        return 0
    # 1/error > 1; its integer part n has 2^(bits(n) - 1) <= n, which gives the floor.
    inverse = int(1 / error)
    return min(inverse.bit_length() - 1, precision)


# ---------------------------------------------------------------------------
# The sweep over depths, with its guards


@dataclass
class ActivationRun:
    """The depth sweep of one activation: its records and, if it ended early, where and why."""

    activation: str
    degree: int
    piecewise_linear: bool
    records: list[DepthRecord] = field(default_factory=list)
    stopped_before_depth: int | None = None
    stop_reason: str | None = None


def run_sweep(settings: SweepSettings) -> list[ActivationRun]:
    """Measure every activation of `settings` at depths 1..depth; raise `InputError` on invalid settings.

    A sweep stops early, and its run records why, when a measured bit-length
    exceeds `max_bits`, when its exact passes and sign analyses have used up
    `time_limit` seconds, or when the next depth is estimated to exceed either
    limit. The estimate multiplies the last measured value by the growth factor
    from the depth before.
    """
    activations = settings.validate()
    experiment = Experiment(settings.width, settings.bits, settings.seed, settings.points)
    runs = []
    for activation in activations:
        run = ActivationRun(activation.name, activation.degree, activation.piecewise_linear)
        _sweep_activation(settings, experiment, activation, run)
        runs.append(run)
    return runs


def _sweep_activation(settings: SweepSettings, experiment: Experiment, activation: Activation, run: ActivationRun) -> None:
    used_seconds = 0.0
    for depth in range(1, settings.depth + 1):
        reason = _reason_to_stop(settings, run.records, used_seconds)
        if reason:
            run.stopped_before_depth, run.stop_reason = depth, reason
            logger.info("%s: stopped before depth %d: %s", activation.name, depth, reason)
            return

        network = experiment.network(depth, activation.name)
        result, measured = measure_exact_pass(network, experiment.X, experiment.y, settings.loss)
        used_seconds += measured["seconds"]
        bounds = bit_length_bounds(activation, settings.width, depth, settings.bits, settings.points, settings.loss)

        sign = None
        if settings.sign_of is not None and _has_parameter(network, settings.sign_of):
            exact_value = result.gradient[settings.sign_of]
            # Precision beyond a few times the largest exact bit-length is not
            # expected to help. The cap stops the search for an exact zero, which
            # rounding rarely reproduces, long before --max-bits.
            largest = max(measured["activation_bits"], measured["loss_bits"], measured["gradient_bits"])
            search_limit = min(settings.max_bits, 4 * largest + 64)
            sign = analyse_sign(network, experiment.X, experiment.y, settings.loss, settings.sign_of,
                                exact_value, search_limit)
            used_seconds += sign.seconds

        run.records.append(DepthRecord(
            depth=depth,
            bound_activation_bits=bounds.activations,
            bound_loss_bits=bounds.loss,
            bound_gradient_bits=bounds.gradient,
            sign=sign,
            **measured,
        ))
        logger.debug("%s depth %d: %s", activation.name, depth, measured)


def _has_parameter(network: Network, name: str) -> bool:
    try:
        network.parameter(name)
    except InputError:
        return False
    return True


def _reason_to_stop(settings: SweepSettings, records: list[DepthRecord], used_seconds: float) -> str | None:
    # Checked before each depth, so that a depth estimated too big for the limits
    # is never started.
    # NOTE: a depth that has started always runs to its end, so one exact pass
    # can overrun the time limit when the estimate was too low.
    if not records:
        return None
    last = records[-1]
    if last.max_bits > settings.max_bits:
        return f"a bit-length of {last.max_bits} at depth {last.depth} exceeds --max-bits {settings.max_bits}"
    if used_seconds >= settings.time_limit:
        return f"the sweep used {used_seconds:.1f} s of --time-limit {settings.time_limit:g} s"
    if len(records) < 2:
        return None

    previous = records[-2]
    bits_factor = max(last.max_bits / previous.max_bits, 1.0)
    estimated_bits = last.max_bits * bits_factor
    if estimated_bits > settings.max_bits:
        return (
            f"depth {last.depth + 1} would reach an estimated {estimated_bits:.3g} bits "
            f"(x{bits_factor:.2f} per layer), more than --max-bits {settings.max_bits}"
        )

    # Tiny times are mostly noise, so their ratio is not trusted below 0.05 s.
    time_factor = max(last.seconds / previous.seconds, 1.0) if previous.seconds >= 0.05 else 1.0
    estimated_seconds = last.seconds * time_factor
    remaining = settings.time_limit - used_seconds
    if estimated_seconds > remaining:
        return (
            f"depth {last.depth + 1} would take an estimated {estimated_seconds:.1f} s "
            f"(x{time_factor:.1f} per layer), more than the {remaining:.1f} s left of "
            f"--time-limit {settings.time_limit:g} s"
        )
    return None


# ---------------------------------------------------------------------------
# Output: table, JSON and plot


def format_table(runs: list[ActivationRun], settings: SweepSettings) -> str:
    """Render the measurements as a plain-text table, one row per activation and depth."""
    header = ("activation", "depth", "act bits", "loss bits", "grad bits", "act bound", "grad bound", "seconds")
    rows = []
    for run in runs:
        for record in run.records:
            rows.append((run.activation, record.depth, record.activation_bits, record.loss_bits,
                         record.gradient_bits, record.bound_activation_bits, record.bound_gradient_bits,
                         f"{record.seconds:.3f}"))
    lines = _align([header, *rows])

    lines.append("")
    for run in runs:
        if run.stop_reason:
            lines.append(f"{run.activation}: stopped before depth {run.stopped_before_depth}: {run.stop_reason}")
        else:
            lines.append(f"{run.activation}: completed depths 1 to {settings.depth}")

    if settings.sign_of is not None:
        lines += ["", f"sign of dL/d{settings.sign_of} ({settings.loss} loss):"]
        sign_header = ("activation", "depth", "sign", "exact bits", "float64", "float64 correct bits",
                       "sufficient precision")
        sign_rows = []
        for run in runs:
            for record in run.records:
                report = record.sign
                if report is None:
                    sign_rows.append((run.activation, record.depth, "n/a", "", "", "", ""))
                    continue
                sign_rows.append((run.activation, record.depth, _SIGN_SYMBOLS[report.sign],
                                  report.exact_bits, report.float64_value,
                                  _or_dash(report.float64_correct_bits), _or_dash(report.sufficient_precision)))
        lines += _align([sign_header, *sign_rows])
    return "\n".join(lines)


_SIGN_SYMBOLS = {1: "+", -1: "-", 0: "0"}


def _or_dash(value) -> str:
    return "-" if value is None else str(value)


def _align(rows: list[tuple]) -> list[str]:
    # Left-align the first column and right-align the others, as numbers read best.
    texts = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in texts) for i in range(len(texts[0]))]
    lines = []
    for row in texts:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return lines


def to_json(runs: list[ActivationRun], settings: SweepSettings) -> dict:
    """Collect settings, definitions, machine and measurements as a JSON-ready dictionary."""
    return {
        "settings": {**asdict(settings), "activations": list(settings.activations), "input_dim": settings.width},
        "definitions": {
            "bit_length": "bits(|p|) + bits(q) of p/q in lowest terms; 0 has bit-length 1",
            "b_bit_rational": "p/q with |p| < 2^B and 1 <= q < 2^B, drawn uniformly, then reduced",
            "activation_bits": "maximum bit-length over all hidden activations at all points",
            "gradient_bits": "maximum bit-length over all entries of the gradient of the loss",
            "seconds": "wall time of one exact forward pass, loss and backpropagation over all points",
            "bound": "upper bound derived in ermsolve.bitgrowth.bit_length_bounds",
        },
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "gmpy2": gmpy2.version(),
            "gmp": gmpy2.mp_version(),
        },
        "runs": [
            {
                "activation": run.activation,
                "degree": run.degree,
                "piecewise_linear": run.piecewise_linear,
                "stopped_before_depth": run.stopped_before_depth,
                "stop_reason": run.stop_reason,
                "depths": [
                    {**asdict(record), "seconds": round(record.seconds, 6)} for record in run.records
                ],
            }
            for run in runs
        ],
    }


def write_plot(runs: list[ActivationRun], settings: SweepSettings, path: Path) -> None:
    """Plot bit-length against depth on a log axis, one colour per activation."""
    # Imported here because matplotlib takes about a second to import, and the
    # Agg canvas needs no display and leaves pyplot's global state alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    figure = Figure(figsize=(9, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    handles = []
    for index, run in enumerate(runs):
        colour = f"C{index % 10}"
        handles.append(Line2D([], [], color=colour, marker="o", label=run.activation))
        if not run.records:
            continue
        depths = [record.depth for record in run.records]
        axes.plot(depths, [r.activation_bits for r in run.records], "o-", color=colour)
        axes.plot(depths, [r.gradient_bits for r in run.records], "s--", color=colour, markersize=4)
        axes.plot(depths, [r.bound_activation_bits for r in run.records], ":", color=colour)
        if run.stop_reason:
            axes.annotate(f"stopped: {_short_reason(run.stop_reason)}", (depths[-1], run.records[-1].activation_bits),
                          textcoords="offset points", xytext=(8, -4), ha="left", fontsize=8, color=colour)

    # One legend entry per activation, then one per line style.
    handles += [
        Line2D([], [], color="black", linestyle="-", label="activations (max)"),
        Line2D([], [], color="black", linestyle="--", label="gradient entries (max)"),
        Line2D([], [], color="black", linestyle=":", label="derived bound on activations"),
    ]
    axes.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.set_yscale("log", base=2)
    axes.set_xlabel("depth (hidden layers)")
    axes.set_ylabel("bit-length of the exact value")
    axes.set_title(f"width {settings.width}, {settings.bits}-bit parameters, {settings.points} points, "
                   f"{settings.loss} loss, seed {settings.seed}", fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    figure.savefig(path, dpi=110)


def _short_reason(reason: str) -> str:
    if "--max-bits" in reason:
        return "bit-length limit"
    return "time limit"


# ---------------------------------------------------------------------------
# Command line


def register_cli(subparsers) -> None:
    """Add the `bitgrowth` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "bitgrowth",
        help="measure how bit-lengths of exact values grow with depth, ReLU versus polynomial activations",
        description=(
            "Run random networks with B-bit rational parameters and inputs (p/q with |p| < 2^B and "
            "1 <= q < 2^B) exactly at depths 1..D, and record the maximum bit-length of the "
            "activations, of the loss and of the gradient entries, with the wall time of each "
            "exact pass. Writes a table to stdout and bitgrowth.json and bitgrowth.png to --out."
        ),
    )

    # Network shape and data.
    parser.add_argument("--depth", type=int, default=SweepSettings.depth, metavar="D",
                        help="largest number of hidden layers; every depth from 1 to D is run (default %(default)s)")
    parser.add_argument("--width", type=int, default=SweepSettings.width, metavar="K",
                        help="units per hidden layer, also the input dimension (default %(default)s)")
    parser.add_argument("--activation", action="append", metavar="NAME[,NAME...]",
                        help="activations to compare, repeatable or comma-separated: relu, identity, "
                             "leaky_relu:SLOPE, square, cube, poly:C0,C1,...,CN (coefficients from z^0 up; "
                             "inside a list, pieces after a poly that are not activation names continue "
                             "its coefficients). "
                             f"Default {','.join(DEFAULT_ACTIVATIONS)}")
    parser.add_argument("--bits", type=int, default=SweepSettings.bits, metavar="B",
                        help="parameters, inputs and targets are p/q with |p| < 2^B and 1 <= q < 2^B "
                             "(default %(default)s)")
    parser.add_argument("--seed", type=int, default=SweepSettings.seed, metavar="S",
                        help="seed of the random parameters and data (default %(default)s)")
    parser.add_argument("--points", type=int, default=SweepSettings.points, metavar="N",
                        help="number of training points (default %(default)s)")
    parser.add_argument("--loss", default=SweepSettings.loss, metavar="LOSS",
                        help="l1, l2 or linf (default %(default)s)")

    # What to report, the limits of a sweep and where to write.
    parser.add_argument("--sign-of", metavar="PARAMETER",
                        help="also report the exact sign of dL/dPARAMETER, for example W2[0][1] or b1[0], "
                             "its bit-length and the float precision that gets the sign right")
    parser.add_argument("--max-bits", type=int, default=SweepSettings.max_bits, metavar="BITS",
                        help="stop an activation's sweep once a bit-length exceeds BITS or is estimated to "
                             "at the next depth (default %(default)s)")
    parser.add_argument("--time-limit", type=float, default=SweepSettings.time_limit, metavar="SECONDS",
                        help="maximum wall time of one activation's sweep in seconds, exact passes and "
                             "--sign-of analysis together (default %(default)s)")
    parser.add_argument("--out", default="bitgrowth-out", metavar="DIR",
                        help=f"directory for {JSON_NAME} and {PLOT_NAME} (default %(default)s)")
    parser.add_argument("--json", action="store_true",
                        help="print the JSON document to stdout in place of the table")

    parser.set_defaults(handler=run_cli)


def split_activation_list(values: list[str] | None) -> tuple[str, ...]:
    """Split repeated and comma-separated --activation values into single spellings.

    A comma separates activations. After a `poly:`, though, every piece that
    does not start with an activation name continues its coefficients. So
    `relu,poly:1,0,1/2,square` is relu, 1 + z^2/2 and square, and a bad
    coefficient is reported as part of its polynomial.
    """
    if not values:
        return DEFAULT_ACTIVATIONS
    spellings: list[str] = []
    for value in values:
        current: list[str] = []
        for piece in value.split(","):
            stripped = piece.strip()
            continues_poly = current and current[0].startswith("poly:") and not _starts_activation(stripped)
            if continues_poly:
                current.append(stripped)
                continue
            if current:
                spellings.append(",".join(current))
            if not stripped:
                raise InputError(f"empty activation name in --activation {value!r}")
            current = [stripped]
        spellings.append(",".join(current))
    return tuple(spellings)


def _starts_activation(piece: str) -> bool:
    name = piece.split(":", 1)[0]
    return name in ("relu", "identity", "square", "cube", "leaky_relu", "poly")


def run_cli(args: argparse.Namespace) -> int:
    """Run the `bitgrowth` subcommand; return 0 on success, 2 on invalid input."""
    try:
        settings = SweepSettings(
            depth=args.depth, width=args.width, activations=split_activation_list(args.activation),
            bits=args.bits, seed=args.seed, points=args.points, loss=args.loss, max_bits=args.max_bits,
            time_limit=args.time_limit, sign_of=args.sign_of,
        )
        settings.validate()
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
    except ErmsolveError as error:
        print(f"ermsolve bitgrowth: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"ermsolve bitgrowth: error: cannot create --out directory {args.out!r}: {error}", file=sys.stderr)
        return 2

    runs = run_sweep(settings)
    document = to_json(runs, settings)
    json_path, plot_path = out / JSON_NAME, out / PLOT_NAME
    try:
        json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        write_plot(runs, settings, plot_path)
    except OSError as error:
        print(f"ermsolve bitgrowth: error: cannot write to --out directory {args.out!r}: {error}", file=sys.stderr)
        return 2

    if args.json:
        print(json.dumps(document, indent=2))
        print(f"wrote {json_path} and {plot_path}", file=sys.stderr)
    else:
        print(format_table(runs, settings))
        print(f"\nwrote {json_path} and {plot_path}")
    return 0
