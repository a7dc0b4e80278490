"""Certificates: exact parameters, exact loss and the claim they support, and their verification.

A certificate is a JSON file (format in docs/certificate.md). `verify_certificate`
recomputes everything that can be recomputed from the instance with exact
rational arithmetic: the data fingerprint, the box, the activation pattern,
the loss and the bit-lengths. It never imports a solver, so anyone can check a
certificate with gmpy2 alone.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path

from gmpy2 import mpq

from ermsolve import __version__
import gmpy2
import numpy as np

from ermsolve.architecture import Architecture
from ermsolve.bitbound import METHOD as BOUND_METHOD
from ermsolve.bitbound import parameter_bit_bounds
from ermsolve.encodings.base import TrainingProblem
from ermsolve.errors import InputError
from ermsolve.instance import Instance
from ermsolve.exact_eval import exact_loss_multi
from ermsolve.fast_eval import evaluate_shallow
from ermsolve.fixed_pattern import build_fixed_pattern_program
from ermsolve.kkt import MAX_PROOF_POINTS, kkt_problems, multipliers_to_json, normalised_point
from ermsolve.network import Layer, Network
from ermsolve.rational import bit_length, format_decimal, format_rational, parse_fraction_field

FORMAT_NAME = "ermsolve-certificate"
FORMAT_VERSION = 1


def build_certificate(instance: Instance, architecture: Architecture, result) -> dict:
    """Assemble the certificate of a `TrainResult` that has an exact solution."""
    solution = result.solution
    network = solution.network
    parameter_bits = {name: bit_length(value) for name, value in network.parameters()}
    bounds, bound_method = theoretical_bit_bounds(instance, architecture, solution.signs, solution.pattern)
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "ermsolve_version": __version__,
        "instance": {
            "name": instance.name,
            "fingerprint": instance.fingerprint,
            "n": instance.n,
            "d": instance.d,
        },
        "architecture": architecture.to_json(),
        "network": network_to_json(network),
        "output_signs": list(solution.signs),
        "activation_pattern": pattern_to_json(solution.pattern),
        "loss": {
            "type": architecture.loss,
            "value": format_rational(solution.loss),
            "decimal": format_decimal(solution.loss),
        },
        "bit_lengths": {
            "definition": "bits of |p| plus bits of q for p/q in lowest terms",
            "max": max(parameter_bits.values()),
            "parameters": parameter_bits,
            "bound_method": bound_method,
            "bounds": bounds,
            "max_ratio": _max_ratio(parameter_bits, bounds, architecture),
        },
        "solver": {
            "name": result.solver,
            "version": result.solver_version,
            "encoding": result.encoding,
            "status": result.status,
            "objective": result.solver_objective,
            "dual_bound": result.dual_bound,
            "gap": result.gap,
            "nodes": result.nodes,
            "time_s": round(result.time_s, 6),
            "time_limit_s": result.time_limit,
            "threads": result.threads,
        },
        "optimality": {"status": result.status, "basis": result.basis},
        "rationalization": {"method": solution.method, "certified": solution.certified},
        "fixed_pattern_proof": _fixed_pattern_proof(instance, architecture, solution),
        "warnings": list(result.warnings),
    }


def _fixed_pattern_proof(instance, architecture, solution) -> dict | None:
    """Exact KKT multipliers proving the network optimal for its pattern, where they exist."""
    if solution.duals is None or architecture.domain != "box" or instance.n > MAX_PROOF_POINTS:
        return None
    if architecture.depth != 1 or architecture.outputs != 1:
        return None
    return {
        "claim": "optimal among networks in the box with this activation pattern and these output signs",
        "conditions": "KKT of the fixed-pattern program (see docs/certificate.md)",
        "multipliers": multipliers_to_json(solution.duals),
    }


def theoretical_bit_bounds(instance, architecture, signs, pattern) -> tuple[dict | None, str]:
    """Per-parameter bit-length bounds that the theory guarantees, and how they were obtained."""
    if architecture.domain == "fixed":
        # Every parameter is q / 2^p with |q| <= R 2^p.
        largest = int(gmpy2.floor(mpq(architecture.box) * 2 ** architecture.frac_bits))
        bound = int(gmpy2.bit_length(largest)) + architecture.frac_bits + 1
        names = _parameter_names(instance.d, architecture)
        return {name: bound for name in names}, "fixed-point grid: bits of floor(R 2^p) plus p + 1"
    if architecture.depth == 1 and architecture.outputs == 1:
        problem = TrainingProblem(instance, architecture)
        return parameter_bit_bounds(problem, signs, pattern), BOUND_METHOD
    return None, "none: parameters rationalised from floats; no vertex bound applies"


def _parameter_names(d: int, architecture) -> list[str]:
    names, fan_in = [], d
    for number, width in enumerate([*architecture.hidden, architecture.outputs], start=1):
        names += [f"W{number}[{k}][{j}]" for k in range(width) for j in range(fan_in)]
        names += [f"b{number}[{k}]" for k in range(width)]
        fan_in = width
    return names


def _max_ratio(bits: dict, bounds: dict | None, architecture) -> float | None:
    """Largest bits / bound over the parameters the bound constrains.

    In the one-hidden-layer box form the output weights are +-R by
    construction, so their ratio is always 1; they are left out.
    """
    if not bounds:
        return None
    shallow_box = architecture.depth == 1 and architecture.outputs == 1 and architecture.domain == "box"
    ratios = [
        bits[name] / bounds[name]
        for name in bits
        if name in bounds and not (shallow_box and name.startswith("W2["))
    ]
    return max(ratios, default=None)


def network_to_json(network: Network) -> dict:
    return {
        "activation": network.activation,
        "layers": [
            {
                "W": [[format_rational(v) for v in row] for row in layer.W],
                "b": [format_rational(v) for v in layer.b],
            }
            for layer in network.layers
        ],
    }


def network_from_json(data, where: str = "network") -> Network:
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list) or not data["layers"]:
        raise InputError(f"{where}: expected an object with a non-empty list 'layers'")
    layers = []
    for number, layer in enumerate(data["layers"], start=1):
        if not isinstance(layer, dict) or not isinstance(layer.get("W"), list) or not isinstance(layer.get("b"), list):
            raise InputError(f"{where}: layer {number} needs lists 'W' and 'b'")
        W = []
        for k, row in enumerate(layer["W"]):
            if not isinstance(row, list):
                raise InputError(f"{where}: W{number}[{k}] must be a list")
            W.append(tuple(parse_fraction_field(v, f"{where}: W{number}[{k}][{j}]") for j, v in enumerate(row)))
        b = tuple(parse_fraction_field(v, f"{where}: b{number}[{k}]") for k, v in enumerate(layer["b"]))
        layers.append(Layer(tuple(W), b))
    return Network(tuple(layers), str(data.get("activation", "relu")))


def pattern_to_json(pattern: list[list[int]]) -> list[str]:
    """Encode the pattern as one string per hidden unit; character i is 1 when the unit is active on point i."""
    width = len(pattern[0]) if pattern else 0
    return ["".join(str(int(row[k])) for row in pattern) for k in range(width)]


def write_certificate(certificate: dict, path: str | Path) -> None:
    try:
        Path(path).write_text(json.dumps(certificate, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot write the certificate to {path}: {error.strerror}") from None


def check_writable(path: str | Path, what: str = "certificate") -> None:
    """Raise `InputError` before any solving when `path` cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"--out {path} is a folder; give a file name such as {path / (what + '.json')}")
    if not path.parent.is_dir():
        raise InputError(f"--out {path}: folder {path.parent} not found; create it or choose another path")


def read_certificate(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: certificate file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a JSON certificate ({error})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise InputError(f"{path}: not an ermsolve certificate (missing \"format\": \"{FORMAT_NAME}\")")
    if data.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{path}: certificate format version {data.get('format_version')!r} is not supported; "
            f"this ermsolve reads version {FORMAT_VERSION}"
        )
    return data


@dataclass
class Verification:
    """The outcome of checking a certificate: `problems` is empty when it is valid."""

    problems: list[str] = field(default_factory=list)
    loss: mpq | None = None
    max_bits: int | None = None
    # Largest ratio of a parameter's bit-length to its theoretical bound.
    max_bound_ratio: float | None = None
    bound_method: str | None = None
    # True when the fixed-pattern KKT proof was present and checked, None when absent.
    pattern_optimal: bool | None = None

    @property
    def valid(self) -> bool:
        return not self.problems


def verify_certificate(certificate: dict, instance: Instance) -> Verification:
    """Check a certificate against an instance with exact arithmetic only."""
    check = Verification()
    problems = check.problems

    # The certificate must be about this exact data.
    stated = certificate.get("instance", {})
    if stated.get("fingerprint") != instance.fingerprint:
        problems.append(
            f"data fingerprint differs: certificate {stated.get('fingerprint')!r}, "
            f"instance {instance.fingerprint!r} (the data or the instance file is different)"
        )
        return check

    try:
        architecture = Architecture.from_json(certificate.get("architecture"), "certificate architecture")
        network = network_from_json(certificate.get("network"), "certificate network")
        stated_loss = parse_fraction_field(certificate.get("loss", {}).get("value"), "certificate loss value")
    except InputError as error:
        problems.append(str(error))
        return check

    _check_shape(network, architecture, instance, problems)
    if problems:
        return check
    _check_box(network, architecture, problems)
    # One integer forward pass gives the pre-activation signs and the loss for one hidden layer.
    evaluation = evaluate_shallow(network, instance.X, instance.Y, architecture.loss)
    pattern_ok = _check_pattern(certificate, network, instance, problems,
                                None if evaluation is None else evaluation.signs)
    if not pattern_ok:
        return check

    # The loss, recomputed exactly.
    if certificate.get("loss", {}).get("type") != architecture.loss:
        problems.append(
            f"loss type {certificate.get('loss', {}).get('type')!r} differs from the architecture's {architecture.loss!r}"
        )
    if evaluation is not None:
        check.loss = evaluation.loss
    else:
        check.loss = exact_loss_multi(network, instance.X, instance.Y, architecture.loss)
    if check.loss != stated_loss:
        problems.append(
            f"loss differs: certificate states {format_rational(stated_loss)}, "
            f"the exact recomputation gives {format_rational(check.loss)}"
        )
    elif certificate.get("loss", {}).get("decimal") != format_decimal(check.loss):
        problems.append(
            f"loss decimal {certificate.get('loss', {}).get('decimal')!r} is not the rounding "
            f"{format_decimal(check.loss)!r} of the exact loss"
        )

    _check_bits(certificate, network, check)
    _check_bit_bounds(certificate, network, instance, architecture, check)
    _check_fixed_pattern_proof(certificate, network, instance, architecture, check)
    return check


def _check_fixed_pattern_proof(certificate, network, instance, architecture, check: Verification) -> None:
    """Check the exact KKT multipliers of the fixed-pattern program, when the certificate has them."""
    proof = certificate.get("fixed_pattern_proof")
    if proof is None or check.problems:
        return
    if not isinstance(proof, dict) or not isinstance(proof.get("multipliers"), dict):
        check.problems.append("fixed_pattern_proof must be an object with 'multipliers'")
        return
    signs = certificate["output_signs"]
    rows = certificate["activation_pattern"]
    pattern = [[int(row[i]) for row in rows] for i in range(instance.n)]
    program = build_fixed_pattern_program(TrainingProblem(instance, architecture), signs, pattern)
    point = normalised_point(program, network, signs, instance)
    failures = kkt_problems(program, point, proof["multipliers"])
    check.pattern_optimal = not failures
    if failures:
        check.problems.append("the fixed-pattern optimality proof fails: " + "; ".join(failures[:3]))


def _check_shape(network, architecture, instance, problems) -> None:
    widths = [layer.fan_out for layer in network.layers[:-1]]
    if widths != list(architecture.hidden):
        problems.append(f"hidden widths {widths} differ from the architecture's {list(architecture.hidden)}")
    if network.input_dim != instance.d:
        problems.append(f"the network takes {network.input_dim} inputs, the instance has {instance.d} features")
    if network.layers[-1].fan_out != architecture.outputs:
        problems.append(
            f"the network has {network.layers[-1].fan_out} outputs, the architecture {architecture.outputs}"
        )
    if network.activation != architecture.activation:
        problems.append(f"activation {network.activation!r} differs from the architecture's {architecture.activation!r}")


def _check_box(network, architecture, problems) -> None:
    box = architecture.box
    outside = [name for name, value in network.parameters() if abs(value) > box]
    if outside:
        problems.append(
            f"{len(outside)} parameters lie outside the box [-{format_rational(box)}, "
            f"{format_rational(box)}]: {', '.join(outside[:5])}"
        )
    if architecture.domain == "fixed":
        step = 2 ** architecture.frac_bits
        off_grid = [name for name, value in network.parameters() if (mpq(value) * step).denominator != 1]
        if off_grid:
            problems.append(
                f"{len(off_grid)} parameters are not multiples of 2^-{architecture.frac_bits}: "
                f"{', '.join(off_grid[:5])}"
            )


def _check_pattern(certificate, network, instance, problems, signs=None) -> bool:
    """Check that each stated activation agrees with the sign of the exact pre-activation.

    Active (1) needs pre-activation >= 0 and inactive (0) needs <= 0, so both
    are accepted at exactly 0, where ReLU is 0 either way. `signs` (n x K) are
    the pre-activation signs when already computed. Returns False when the
    pattern is malformed, since the later checks need it.
    """
    stated = certificate.get("activation_pattern")
    width = network.layers[0].fan_out
    if not isinstance(stated, list) or len(stated) != width or any(
        not isinstance(row, str) or len(row) != instance.n or set(row) - {"0", "1"} for row in stated
    ):
        problems.append(f"activation_pattern must be {width} strings of {instance.n} characters 0 or 1")
        return False

    if signs is not None:
        active = np.array([np.frombuffer(row.encode("ascii"), dtype=np.uint8) == ord("1") for row in stated]).T
        mismatch = (active & (signs < 0)) | (~active & (signs > 0))
        wrong = [f"unit {k} on point {i}" for i, k in zip(*np.nonzero(mismatch))]
    else:
        wrong = []
        for i, x in enumerate(instance.X):
            z = network.pre_activations(x)[0]
            for k in range(width):
                active = stated[k][i] == "1"
                if (active and z[k] < 0) or (not active and z[k] > 0):
                    wrong.append(f"unit {k} on point {i}")
    if wrong:
        problems.append(
            f"activation pattern disagrees with the parameters at {len(wrong)} places: {', '.join(wrong[:5])}"
        )
    return True


def _check_bits(certificate, network, check: Verification) -> None:
    bits = {name: bit_length(value) for name, value in network.parameters()}
    check.max_bits = max(bits.values())
    stated = certificate.get("bit_lengths", {})
    if stated.get("max") != check.max_bits:
        check.problems.append(f"max bit-length differs: certificate {stated.get('max')!r}, recomputed {check.max_bits}")
    stated_parameters = stated.get("parameters", {})
    mismatched = [name for name, value in bits.items() if stated_parameters.get(name) != value]
    if mismatched:
        check.problems.append(f"bit-lengths differ for {', '.join(mismatched[:5])}")


def _check_bit_bounds(certificate, network, instance, architecture, check: Verification) -> None:
    """Recompute the theoretical bounds from the data and pattern, and check every parameter against them."""
    signs = certificate.get("output_signs")
    pattern_rows = certificate.get("activation_pattern")
    pattern = [[int(row[i]) for row in pattern_rows] for i in range(instance.n)]
    if architecture.depth == 1 and architecture.outputs == 1 and architecture.domain == "box":
        if not isinstance(signs, list) or any(s not in (1, -1) for s in signs) or len(signs) != architecture.width:
            check.problems.append(f"output_signs must be {architecture.width} entries +1 or -1, got {signs!r}")
            return
        output_weights = network.layers[-1].W[0]
        if any(weight != sign * architecture.box for weight, sign in zip(output_weights, signs)):
            check.problems.append("output weights are not output_signs times the box")
    bounds, method = theoretical_bit_bounds(instance, architecture, signs, pattern)
    check.bound_method = method
    if bounds is None:
        return
    bits = {name: bit_length(value) for name, value in network.parameters()}
    over = [f"{name} ({bits[name]} > {bounds[name]})" for name in bits if bits[name] > bounds.get(name, 0)]
    if over:
        check.problems.append(f"bit-length above the theoretical bound for {', '.join(over[:5])}")
    check.max_bound_ratio = _max_ratio(bits, bounds, architecture)
