"""Exact optimality proofs for the fixed-pattern program: KKT multipliers checked in Q.

For the LP (l1, linf, hinge) and the convex QP (l2) of a fixed activation
pattern, the KKT conditions are sufficient for optimality. A point x and
multipliers y >= 0 (rows of A_ub), u_lower, u_upper >= 0 (bounds) prove x
optimal when x is feasible, every multiplier is complementary to its slack,
and the gradient of the objective is cancelled:

    2 M^T (M x - t) + c + A_ub^T y - u_lower + u_upper = 0.

A certificate carries the non-zero multipliers. `verify` rebuilds the program
from the data and the pattern and x from the network, then checks every
condition with exact rational arithmetic. No solver is involved.
"""

from __future__ import annotations

from gmpy2 import mpq

from ermsolve.fixed_pattern import FixedPatternProgram
from ermsolve.rational import format_rational, parse_fraction_field

# Above this many points the proof is left out of certificates: rebuilding the
# program in rational arithmetic would dominate the time verify takes.
MAX_PROOF_POINTS = 5000


def multipliers_to_json(duals: dict) -> dict:
    """Sparse form of exact multipliers: {"ub": {"index": "p/q"}, "lower": ..., "upper": ...}."""
    return {
        key: {str(index): format_rational(value) for index, value in enumerate(values) if value != 0}
        for key, values in duals.items()
        if key in ("ub", "lower", "upper")
    }


def normalised_point(program: FixedPatternProgram, network, signs, instance) -> list[mpq]:
    """Rebuild the program's variables from a one-hidden-layer network in certificate form.

    The normalised parameters are w' = |v| w and b' = |v| b with v = +-R, and
    the auxiliary errors take their smallest feasible values, which are the
    values at any optimum.
    """
    hidden, output = network.layers
    x = [mpq(0)] * program.variable_count
    for k in range(program.width):
        scale = abs(output.W[0][k])
        for j in range(program.d):
            x[program.w_index(k, j)] = hidden.W[k][j] * scale
        x[program.b_index(k)] = hidden.b[k] * scale
    x[program.c_index] = output.b[0]

    first = program.parameter_count
    residuals = [network.forward(point)[0] - target for point, target in zip(instance.X, instance.y)]
    if program.loss == "l1":
        for i, r in enumerate(residuals):
            x[first + i] = abs(r)
    elif program.loss == "linf":
        x[first] = max(abs(r) for r in residuals)
    elif program.loss == "hinge":
        for i, (r, label) in enumerate(zip(residuals, instance.y)):
            x[first + i] = max(mpq(0), 1 - label * (r + label))
    return x


def kkt_problems(program: FixedPatternProgram, x: list[mpq], multipliers: dict) -> list[str]:
    """Return the KKT conditions that fail for `x`; an empty list proves `x` optimal."""
    problems = []
    try:
        y = _dense(multipliers.get("ub", {}), len(program.A_ub), "ub")
        lower_multipliers = _dense(multipliers.get("lower", {}), program.variable_count, "lower")
        upper_multipliers = _dense(multipliers.get("upper", {}), program.variable_count, "upper")
    except ValueError as error:
        return [str(error)]

    # Primal feasibility and complementarity of the rows.
    for r, (row, rhs) in enumerate(zip(program.A_ub, program.b_ub)):
        slack = rhs - sum((a * x[j] for j, a in row.items()), mpq(0))
        if slack < 0:
            problems.append(f"row {r} of the fixed-pattern program is violated")
        if y[r] < 0 or (y[r] != 0 and slack != 0):
            problems.append(f"multiplier of row {r} is negative or not complementary")

    # Bounds.
    for j in range(program.variable_count):
        for bound, multiplier, gap in (
            (program.lower[j], lower_multipliers[j], None if program.lower[j] is None else x[j] - program.lower[j]),
            (program.upper[j], upper_multipliers[j], None if program.upper[j] is None else program.upper[j] - x[j]),
        ):
            if bound is None:
                if multiplier != 0:
                    problems.append(f"multiplier on the missing bound of variable {j}")
                continue
            if gap < 0:
                problems.append(f"bound of variable {j} is violated")
            if multiplier < 0 or (multiplier != 0 and gap != 0):
                problems.append(f"bound multiplier of variable {j} is negative or not complementary")

    # Stationarity.
    gradient = list(program.c) if program.c else [mpq(0)] * program.variable_count
    for row, target in zip(program.M or [], program.t or []):
        error = sum((a * x[j] for j, a in row.items()), mpq(0)) - target
        for j, a in row.items():
            gradient[j] += 2 * a * error
    for r, row in enumerate(program.A_ub):
        if y[r]:
            for j, a in row.items():
                gradient[j] += a * y[r]
    for j in range(program.variable_count):
        gradient[j] += upper_multipliers[j] - lower_multipliers[j]
    nonzero = [j for j, value in enumerate(gradient) if value != 0]
    if nonzero:
        problems.append(f"stationarity fails for variables {nonzero[:5]}")
    return problems


def _dense(sparse: dict, size: int, key: str) -> list[mpq]:
    values = [mpq(0)] * size
    if not isinstance(sparse, dict):
        raise ValueError(f"fixed-pattern proof: multipliers {key!r} must be an object")
    for index, text in sparse.items():
        if not str(index).isdigit() or int(index) >= size:
            raise ValueError(f"fixed-pattern proof: multiplier index {index!r} of {key!r} is out of range")
        try:
            values[int(index)] = parse_fraction_field(text, f"multiplier {key}[{index}]")
        except Exception as error:  # InputError: report as a failed check, not a crash
            raise ValueError(str(error)) from None
    return values
