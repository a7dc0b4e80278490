"""Big-M with per-point, per-unit bounds from optimisation-based bound tightening (OBBT)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
from gmpy2 import mpq

from ermsolve.classification import is_classification
from ermsolve.encodings.base import EncodedModel, EncodingOptions, TrainingProblem
from ermsolve.errors import UsageError
from ermsolve.encodings.bigm import BigMEncoding

log = logging.getLogger(__name__)

# Tightened bounds are rounded outward to multiples of 2^-BOUND_BITS times the
# interval radius of their point, so the MIP gets short dyadic coefficients.
BOUND_BITS = 20

# Float descent for the upper bound: restarts run side by side, each for a fixed step count.
HEURISTIC_RESTARTS = 8
HEURISTIC_ITERATIONS = 300
# Parameters of a float network are rounded to multiples of 2^-PARAMETER_BITS before the exact loss.
PARAMETER_BITS = 20

# A round that narrows the bounds by less than this fraction of their total width ends the tightening.
MIN_ROUND_PROGRESS = 0.01


@dataclass
class ObbtStatistics:
    """Counts and times of one bound tightening, for logs and benchmarks."""

    signs: tuple[int, ...]
    upper_bound: mpq | None
    binaries_before: int
    binaries_after: int
    lp_solves: int
    rounds: int
    heuristic_time_s: float
    time_s: float


class ObbtBigMEncoding(BigMEncoding):
    r"""Big-M whose bounds L_ik <= z_ik <= U_ik come from LPs over the relaxation with a loss cutoff.

    For each point i and unit k whose sign is open, solve

    .. math::

        L_{ik} = \min z_{ik},\quad U_{ik} = \max z_{ik}
        \quad\text{over}\quad P_{LP} \cap \{\ell(f) \le \bar\ell\},

    where P_LP is the LP relaxation of the big-M model (binaries in [0, 1])
    with the current bounds. The loss bound \bar\ell is the exact loss of a
    network with the same output signs, found by a short float descent
    (`heuristic_upper_bound`). The MIP is then
    `BigMEncoding` with the bounds L_ik, U_ik per unit. A unit with U_ik <= 0 or
    L_ik >= 0 loses its binary and keeps only a sign row. The bounds of one
    round change the big-M rows, so a second round can tighten more. Each round
    rebuilds the LP, and it stops after `rounds` rounds or once it narrows the
    bounds by less than 1 %.

    Why the bounds stay valid: the optimal network of this output-sign pattern
    has loss at most \bar\ell, because the heuristic network itself has this
    pattern. Together with its activations h = relu(z), binaries a = [z >= 0]
    and errors e = |f - y|, it is a point of P_LP that satisfies the cutoff. Every
    LP minimum is therefore at most its z_ik, and every maximum at least. So
    the optimum of each pattern's MIP is unchanged. When symmetry rows or
    convexity cuts are in the model, they are in the LP too. They keep at least
    one optimal network feasible, and the argument applies to that network. The
    l2 cutoff sum r_i^2 <= \bar\ell is not linear, so the LP uses its
    relaxation |r_i| <= sqrt(\bar\ell) and sum |r_i| <= sqrt(n \bar\ell)
    (Cauchy-Schwarz).

    Why the cutoff is needed: without it, every (w', b', c) in the box extends
    to a point of P_LP (set h = relu(z), a = [z >= 0] and let the error
    variables grow), so the LP projects onto the whole box. The extremes of one
    linear form w'_k . x_i + b'_k over a box, where each variable occurs once,
    are exactly the interval bounds +-R^2 (|x_i|_1 + 1). Only the cutoff ties
    the parameters to the data.

    Safe rounding: HiGHS solves in floating point, so its optimum is not used
    as a bound directly. The bound is instead the weak-duality value of its row
    duals y, evaluated exactly over the rationals on the exact LP data:
    min c.x >= sum_r y_r side_r + sum_j min(r_j l_j, r_j u_j) with r = c - A^T y,
    which holds for every y because every column has finite bounds. It is then
    rounded outward to a multiple of 2^-20 times the point's interval radius.
    A float error in HiGHS can weaken a bound this way but never cut off a
    network. This replaces a heuristic margin such as 1e-7 relative, which
    would only make an error unlikely.

    Valid whenever `BigMEncoding` is. OBBT is standard in global optimisation.
    Its use with a cutoff on training problems is the elementary argument
    above. The big-M rows are those of Tjeng, Xiao and Tedrake (ICLR 2019).
    """

    name = "bigm-obbt"

    def __init__(self, rounds: int = 2):
        self.rounds = rounds
        self.statistics: list[ObbtStatistics] = []

    def build(
        self,
        problem: TrainingProblem,
        signs: tuple[int, ...],
        options: EncodingOptions | None = None,
        bounds: list[list[tuple[mpq, mpq]]] | None = None,
    ) -> EncodedModel:
        """Tighten the bounds for output signs `signs`, then build the big-M MIP with them."""
        if is_classification(problem.architecture.loss):
            # The loss cutoff of the relaxation and the heuristic bound are written for l1, l2 and linf.
            raise UsageError(
                f"the {self.name} encoding supports the l1, l2 and linf losses, not "
                f"{problem.architecture.loss}; use --encoding bigm"
            )
        problem.require_shallow(f"the {self.name} encoding")
        options = options or EncodingOptions()
        started = time.monotonic()

        upper_bound = heuristic_upper_bound(problem, signs)
        heuristic_time = time.monotonic() - started

        tightened, statistics = self.tighten_bounds(problem, signs, options, bounds, upper_bound)
        encoded = self.build_with_bounds(problem, signs, options, tightened)

        statistics.heuristic_time_s = heuristic_time
        statistics.time_s = time.monotonic() - started
        self.statistics.append(statistics)
        log.info(
            "OBBT for output signs %s: loss bound %.6g, binaries %d -> %d (%d removed), "
            "%d LPs in %d rounds, %.3f s (heuristic %.3f s)",
            _signs_text(signs), float(upper_bound), statistics.binaries_before, statistics.binaries_after,
            statistics.binaries_before - statistics.binaries_after, statistics.lp_solves, statistics.rounds,
            statistics.time_s, heuristic_time,
        )
        return encoded

    def build_with_bounds(self, problem, signs, options, bounds) -> EncodedModel:
        """Build the big-M model with `bounds` and whatever rows a subclass adds (`strengthen`)."""
        encoded = BigMEncoding.build(self, problem, signs, options, bounds)
        self.strengthen(problem, encoded)
        return encoded

    def strengthen(self, problem: TrainingProblem, encoded: EncodedModel) -> None:
        """Add valid rows to a built model, which also enter the OBBT relaxation. This class adds none."""

    def tighten_bounds(
        self,
        problem: TrainingProblem,
        signs: tuple[int, ...],
        options: EncodingOptions,
        bounds: list[list[tuple[mpq, mpq]]] | None,
        upper_bound: mpq | None,
    ) -> tuple[list[list[tuple[mpq, mpq]]], ObbtStatistics]:
        """Return bounds[i][k] tightened by OBBT, and statistics. With `upper_bound` None there is no cutoff."""
        width = problem.width
        radii = [upper for _, upper in problem.interval_bounds()]
        if bounds is None:
            bounds = [[interval] * width for interval in problem.interval_bounds()]
        bounds = [list(row) for row in bounds]
        binaries_before = _count_open(bounds)
        lp_solves, rounds = 0, 0
        # Spend at most half of the remaining time on tightening; the bounds found so far stay valid.
        stop_at = None
        if options.deadline is not None:
            stop_at = time.monotonic() + max(options.deadline - time.monotonic(), 0.0) / 2
        out_of_time = False

        for _ in range(self.rounds):
            if out_of_time:
                break
            rounds += 1
            encoded = self.build_with_bounds(problem, signs, options, bounds)
            relaxation = _Relaxation(encoded, problem, upper_bound)
            width_before = _total_width(bounds)

            for i, x in enumerate(problem.instance.X):
                if stop_at is not None and time.monotonic() >= stop_at:
                    log.info("OBBT stopped at point %d of %d: half of the remaining time is used",
                             i, problem.instance.n)
                    out_of_time = True
                    break
                step = _grid_step(radii[i])
                for k in range(width):
                    lower, upper = bounds[i][k]
                    if upper <= 0 or lower >= 0:
                        continue
                    pre_activation = {encoded.weights[k][j]: x[j] for j in range(problem.instance.d)}
                    pre_activation[encoded.biases[k]] = mpq(1)

                    new_lower = relaxation.minimum(pre_activation)
                    new_upper = relaxation.minimum({j: -c for j, c in pre_activation.items()})
                    lp_solves += 2
                    if new_lower is not None:
                        lower = max(lower, _round_down(new_lower, step))
                    if new_upper is not None:
                        upper = min(upper, _round_up(-new_upper, step))
                    if lower > upper:
                        # Both are valid bounds of a set that contains the optimum, so this is a bug.
                        log.warning("OBBT produced crossing bounds %s > %s on point %d, unit %d; kept the old ones",
                                    lower, upper, i, k)
                        continue
                    if (lower, upper) != bounds[i][k]:
                        bounds[i][k] = (lower, upper)
                        relaxation.update_unit(i, k, lower, upper)

            width_after = _total_width(bounds)
            if width_before == 0 or width_before - width_after < MIN_ROUND_PROGRESS * width_before:
                break

        statistics = ObbtStatistics(
            tuple(signs), upper_bound, binaries_before, _count_open(bounds), lp_solves, rounds, 0.0, 0.0
        )
        return bounds, statistics


class _Relaxation:
    """The LP relaxation of a big-M model plus a loss cutoff, in HiGHS and exactly.

    HiGHS keeps the model between objectives, so each solve starts from the
    previous basis. The exact rows are kept beside it to turn HiGHS's duals into
    a rigorous bound (`minimum`).
    """

    def __init__(self, encoded: EncodedModel, problem: TrainingProblem, upper_bound: mpq | None):
        import highspy

        self.highspy = highspy
        model = encoded.model
        self.lower: list[mpq | None] = []
        self.upper: list[mpq | None] = []
        self.rows: list[dict] = []
        self.row_lower: list[mpq | None] = []
        self.row_upper: list[mpq | None] = []
        loss = problem.architecture.loss

        # Columns: the model's variables with binaries relaxed to [0, 1]; loss variables capped by the cutoff.
        column_names = {}
        for variable in model.variables:
            upper = variable.ub
            if upper is None and upper_bound is not None and loss in ("l1", "linf"):
                # A network below the cutoff can set each error variable to |r_i|, which is at most the cutoff.
                upper = upper_bound
            self.lower.append(variable.lb)
            self.upper.append(upper)
            column_names[variable.name] = variable.index

        # Rows: the model's linear rows.
        row_names = {}
        for constraint in model.linear:
            if constraint.lo is None and constraint.hi is None:
                continue
            row_names[constraint.name] = len(self.rows)
            self._add_row(dict(constraint.terms), constraint.lo, constraint.hi)

        # Cutoff: the loss of a network is at most `upper_bound`.
        if upper_bound is not None:
            if loss == "l2":
                self._add_l2_cutoff(model, upper_bound, problem.instance.n)
            else:
                objective = dict(model.objective.linear)
                self._add_row(objective, None, upper_bound - model.objective.constant)

        self.relu_rows = {}
        for i, row in enumerate(encoded.activation):
            for k, binary in enumerate(row):
                if binary is None or isinstance(binary, tuple):
                    continue
                self.relu_rows[i, k] = (
                    column_names[f"h[{i}][{k}]"],
                    binary,
                    row_names[f"relu_active[{i}][{k}]"],
                    row_names[f"relu_inactive[{i}][{k}]"],
                )
        self.highs = self._pass_to_highs()
        self.cost: dict[int, mpq] = {}

    def _add_row(self, terms: dict, lo, hi) -> None:
        self.rows.append(terms)
        self.row_lower.append(lo)
        self.row_upper.append(hi)

    def _add_l2_cutoff(self, model, upper_bound: mpq, n: int) -> None:
        """Add e_i >= |r_i|, e_i <= sqrt(bound) and sum e_i <= sqrt(n bound): a relaxation of sum r_i^2 <= bound."""
        point_cap = _sqrt_upper(upper_bound)
        total_cap = _sqrt_upper(upper_bound * n)
        errors = []
        for terms, offset in model.objective.squares:
            error = len(self.lower)
            self.lower.append(mpq(0))
            self.upper.append(point_cap)
            errors.append(error)
            # e_i - r_i >= 0 and e_i + r_i >= 0 with r_i = terms + offset.
            above = {error: mpq(1)}
            below = {error: mpq(1)}
            for index, coefficient in terms.items():
                above[index] = -coefficient
                below[index] = coefficient
            self._add_row(above, offset, None)
            self._add_row(below, -offset, None)
        self._add_row({error: mpq(1) for error in errors}, None, total_cap)

    def _pass_to_highs(self):
        highspy = self.highspy
        infinity = highspy.kHighsInf
        from ermsolve.exact_lp import _quiet_highs

        highs = _quiet_highs()
        highs.setOptionValue("solver", "simplex")
        lower = np.array([-infinity if v is None else float(v) for v in self.lower], dtype=np.float64)
        upper = np.array([infinity if v is None else float(v) for v in self.upper], dtype=np.float64)
        highs.addVars(len(self.lower), lower, upper)

        starts, indices, values = [], [], []
        for terms in self.rows:
            starts.append(len(indices))
            for index, coefficient in terms.items():
                indices.append(index)
                values.append(float(coefficient))
        row_lower = np.array([-infinity if v is None else float(v) for v in self.row_lower], dtype=np.float64)
        row_upper = np.array([infinity if v is None else float(v) for v in self.row_upper], dtype=np.float64)
        highs.addRows(
            len(self.rows), row_lower, row_upper, len(indices),
            np.array(starts, dtype=np.int32), np.array(indices, dtype=np.int32), np.array(values, dtype=np.float64),
        )
        return highs

    def update_unit(self, i: int, k: int, lower: mpq, upper: mpq) -> None:
        """Put new bounds of unit k on point i into the big-M rows, in HiGHS and in the exact copy."""
        if (i, k) not in self.relu_rows:
            return
        h, a, active_row, inactive_row = self.relu_rows[i, k]
        # h <= z - L (1 - a) is the row h - z - L a <= -L.
        self.rows[active_row][a] = -lower
        self.row_upper[active_row] = -lower
        self.highs.changeCoeff(active_row, a, float(-lower))
        self.highs.changeRowBounds(active_row, -self.highspy.kHighsInf, float(-lower))
        # h <= U a
        self.rows[inactive_row][a] = -upper
        self.highs.changeCoeff(inactive_row, a, float(-upper))
        # 0 <= h <= max(U, 0)
        self.upper[h] = max(upper, mpq(0))
        self.highs.changeColBounds(h, 0.0, float(self.upper[h]))

    def minimum(self, objective: dict) -> mpq | None:
        """Return a rigorous lower bound on min objective . x over the LP, or None when HiGHS fails."""
        highspy = self.highspy
        changed = set(self.cost) | set(objective)
        self.cost = dict(objective)
        indices = np.array(sorted(changed), dtype=np.int32)
        costs = np.array([float(self.cost.get(j, 0)) for j in indices], dtype=np.float64)
        self.highs.changeColsCost(len(indices), indices, costs)
        self.highs.run()
        status = self.highs.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            log.debug("OBBT LP ended with status %s; the bound is not tightened",
                      self.highs.modelStatusToString(status))
            return None
        duals = np.asarray(self.highs.getSolution().row_dual)
        return self._dual_bound(objective, duals)

    def _dual_bound(self, objective: dict, duals: np.ndarray) -> mpq | None:
        """Weak duality evaluated exactly: sum_r y_r side_r + sum_j min(r_j l_j, r_j u_j), r = c - A^T y."""
        reduced = {j: mpq(c) for j, c in objective.items()}
        bound = mpq(0)
        for r in np.nonzero(duals)[0]:
            dual = float(duals[r])
            side = self.row_lower[r] if dual > 0 else self.row_upper[r]
            if side is None:
                # The multiplier points at a missing side; dropping it (y_r = 0) keeps the bound valid.
                continue
            y = mpq(dual)
            bound += y * side
            for j, a in self.rows[r].items():
                reduced[j] = reduced.get(j, mpq(0)) - y * a
        for j, cost in reduced.items():
            if cost == 0:
                continue
            limit = self.lower[j] if cost > 0 else self.upper[j]
            if limit is None:
                return None
            bound += cost * limit
        return bound


def heuristic_upper_bound(
    problem: TrainingProblem,
    signs: tuple[int, ...],
    restarts: int = HEURISTIC_RESTARTS,
    iterations: int = HEURISTIC_ITERATIONS,
    seed: int = 0,
) -> mpq:
    """Return the exact loss of the best network with output signs `signs` that a float descent finds.

    Candidates are the constant network (all hidden weights 0) and the result
    of each restart of projected Adam on the loss, with parameters rounded to
    2^-20 and clipped to the normalised box. For each candidate the output bias
    is replaced by its exact optimum for the fixed hidden part. The returned
    value is the exact loss of one of these networks, so it is a valid upper
    bound on the optimum of this sign pattern.
    """
    width, d = problem.width, problem.instance.d
    candidates = [([[mpq(0)] * d for _ in range(width)], [mpq(0)] * width)]
    for weights, biases in _descend(problem, signs, restarts, iterations, seed):
        candidates.append((_to_box(weights, problem.hidden_box), _to_box([biases], problem.hidden_box)[0]))
    return min(_best_loss_for_hidden(problem, signs, weights, biases) for weights, biases in candidates)


def _descend(problem: TrainingProblem, signs, restarts: int, iterations: int, seed: int):
    """Run projected Adam from `restarts` random starts at once; yield each start's best (weights, biases)."""
    X = problem.instance.X_float
    y = problem.instance.y_float
    loss = problem.architecture.loss
    n, d = X.shape
    width = len(signs)
    hidden_box, output_box = float(problem.hidden_box), float(problem.output_box)
    sign_vector = np.array(signs, dtype=float)
    rng = np.random.default_rng(seed)

    # Start each unit with its kink through a random data point, so that no unit starts dead on
    # every point. The weight scale keeps w . x_r, and so the bias -w . x_r, inside the box.
    scale = hidden_box / (np.abs(X).sum(axis=1).max() + 1.0)
    directions = rng.normal(size=(restarts, width, d))
    directions /= np.linalg.norm(directions, ord=1, axis=2, keepdims=True) + 1e-12
    W = directions * rng.uniform(0.2, 1.0, (restarts, width, 1)) * scale * d
    np.clip(W, -hidden_box, hidden_box, out=W)
    anchors = X[rng.integers(0, n, (restarts, width))]
    B = np.clip(-np.einsum("pkd,pkd->pk", W, anchors), -hidden_box, hidden_box)
    # The output bias starts at the clipped mean target.
    C = np.full(restarts, float(np.clip(np.mean(y), -output_box, output_box)))
    parameters = [W, B, C]
    boxes = [hidden_box, hidden_box, output_box]
    first = [np.zeros_like(p) for p in parameters]
    second = [np.zeros_like(p) for p in parameters]
    best_loss = np.full(restarts, np.inf)
    best_W, best_B = W.copy(), B.copy()

    for step in range(1, iterations + 1):
        Z = np.einsum("pkd,nd->pnk", W, X) + B[:, None, :]
        H = np.maximum(Z, 0.0)
        R = H @ sign_vector + C[:, None] - y[None, :]
        if loss == "l1":
            values, gradient = np.abs(R).sum(axis=1), np.sign(R)
        elif loss == "l2":
            values, gradient = (R * R).sum(axis=1), 2.0 * R
        else:
            worst = np.argmax(np.abs(R), axis=1)
            values = np.abs(R)[np.arange(restarts), worst]
            gradient = np.zeros_like(R)
            gradient[np.arange(restarts), worst] = np.sign(R[np.arange(restarts), worst])

        improved = values < best_loss
        best_loss[improved] = values[improved]
        best_W[improved], best_B[improved] = W[improved], B[improved]

        dZ = gradient[:, :, None] * sign_vector[None, None, :] * (Z > 0)
        gradients = [np.einsum("pnk,nd->pkd", dZ, X), dZ.sum(axis=1), gradient.sum(axis=1)]
        rate = 0.05 * (1.0 - step / (iterations + 1))
        for index, (parameter, grad, box) in enumerate(zip(parameters, gradients, boxes)):
            first[index] = 0.9 * first[index] + 0.1 * grad
            second[index] = 0.999 * second[index] + 0.001 * grad * grad
            corrected_first = first[index] / (1 - 0.9 ** step)
            corrected_second = second[index] / (1 - 0.999 ** step)
            parameter -= rate * box * corrected_first / (np.sqrt(corrected_second) + 1e-12)
            np.clip(parameter, -box, box, out=parameter)

    for restart in range(restarts):
        yield best_W[restart].tolist(), best_B[restart].tolist()


def _to_box(rows, box: mpq) -> list[list[mpq]]:
    scale = 2 ** PARAMETER_BITS
    return [[min(max(mpq(round(value * scale), scale), -box), box) for value in row] for row in rows]


def _best_loss_for_hidden(problem: TrainingProblem, signs, weights, biases) -> mpq:
    """Exact loss of the hidden part (weights, biases) with the best output bias in [-R, R]."""
    instance, loss = problem.instance, problem.architecture.loss
    # residual_i = c - t_i with t_i = y_i - hidden output on point i.
    shifted = []
    for x, target in zip(instance.X, instance.y):
        hidden = mpq(0)
        for k, sign in enumerate(signs):
            z = biases[k] + sum((w * xj for w, xj in zip(weights[k], x)), mpq(0))
            if z > 0:
                hidden += sign * z
        shifted.append(target - hidden)

    # The loss is convex in c, so the clipped unconstrained minimiser is the constrained one.
    ordered = sorted(shifted)
    if loss == "l1":
        output_bias = ordered[(len(ordered) - 1) // 2]
    elif loss == "l2":
        output_bias = sum(ordered, mpq(0)) / len(ordered)
    else:
        output_bias = (ordered[0] + ordered[-1]) / 2
    box = problem.output_box
    output_bias = min(max(output_bias, -box), box)

    residuals = [output_bias - t for t in shifted]
    if loss == "l1":
        return sum((abs(r) for r in residuals), mpq(0))
    if loss == "l2":
        return sum((r * r for r in residuals), mpq(0))
    return max(abs(r) for r in residuals)


def _sqrt_upper(value: mpq) -> mpq:
    """Return a dyadic rational q >= sqrt(value)."""
    root = mpq(math.sqrt(float(value)))
    step = root / 2 ** 40 + mpq(1, 2 ** 60)
    while root * root < value:
        root += step
    return root


def _grid_step(radius: mpq) -> mpq:
    """Return 2^(e - BOUND_BITS) with 2^e <= radius < 2^(e+1)."""
    _, exponent = math.frexp(float(radius))
    return mpq(2) ** (exponent - 1 - BOUND_BITS)


def _round_down(value: mpq, step: mpq) -> mpq:
    return math.floor(value / step) * step


def _round_up(value: mpq, step: mpq) -> mpq:
    return math.ceil(value / step) * step


def _count_open(bounds) -> int:
    return sum(1 for row in bounds for lower, upper in row if lower < 0 < upper)


def _total_width(bounds) -> mpq:
    return sum((upper - lower for row in bounds for lower, upper in row if lower < 0 < upper), mpq(0))


def _signs_text(signs) -> str:
    return "".join("+" if s > 0 else "-" for s in signs)
