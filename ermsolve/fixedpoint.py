r"""Training on the fixed-point domain: an exact integer model for any depth, width and outputs.

Every parameter of every layer, output weights and biases included, is
theta = q 2^-p with an integer q in [-Q, Q], Q = floor(R 2^p), where p is
`frac_bits` and R the box. Nothing is normalised. Each data point i is scaled
by D_i, the least common multiple of the denominators of x_i and y_i, so
A_i = D_i x_i is an integer vector. Points with equal inputs share one forward
pass and one D_i (taken over all their targets), which also makes their
outputs equal in the LP relaxation. Write L for the number of hidden layers
and number the affine layers l = 0..L (layer L is the output layer). With
H_{-1} = A_i, the scaled pre-activations and activations

.. math::

    Z_{l,i} = Q^W_l H_{l-1,i} + 2^{l p} D_i\, q^b_l, \qquad H_{l,i} = \max(Z_{l,i}, 0)

are integers, and the real ones are z_{l,i} = Z_{l,i} 2^{-(l+1) p} / D_i and
h likewise (the factor is positive, so it commutes with ReLU). The output
residual is r_ij = (Z_{L,i,j} - T_ij) 2^{-(L+1) p} / D_i with the integer
T_ij = y_ij D_i 2^{(L+1) p}.

The model, in integers only:

- ReLU by big-M with the interval bound of the box,
  |Z_{l,i}| <= U_{l,i} = Q (sum_k max H_{l-1,i,k} + 2^{l p} D_i), and one
  binary a: H >= Z, H <= Z + U (1 - a), H <= U a, H >= 0. The bound is
  symmetric, so every unit gets a binary unless U = 0, where H = 0.
- A product q H of a parameter and an activation (layers l >= 1) is
  linearised exactly through the binary expansion of one factor. Either
  q = -2^B beta_B + sum_{j<B} 2^j beta_j (two's complement, B = bitlen(Q)) and
  u_j = beta_j H by u_j <= Hmax beta_j, u_j <= H, u_j >= H - Hmax (1 - beta_j);
  or H = sum_j 2^j g_j and v_j = g_j q by the four inequalities on [-Q, Q].
  The factor with fewer bits is expanded; parameter bits are shared by all
  points.
- With c_i = lcm(D) / D_i and S = 2^{(L+1) p} lcm(D), the objective is
  l1: sum c_i e_ij with e_ij >= |R_ij|; linf: t >= c_i |R_ij|; l2:
  sum (c_i R_ij)^2. The loss is the objective over S (over S^2 for l2). For a
  backend without quadratic objectives (CP-SAT) the square of e = |R| is
  linearised exactly: e = sum_j 2^j g_j, e^2 = sum_j 2^j u_j with
  u_j >= e - emax (1 - g_j), u_j >= 0, which is tight at every optimum.
- Hidden units of one layer are interchangeable, so their biases are ordered,
  q^b_{l,0} >= q^b_{l,1} >= ...; sorting any network's units by bias keeps
  its function and its grid, so no optimum is lost.

Valid whenever p is given: every network of the grid extends to an integer
point of the model whose objective is its scaled loss, and at every integer
point the objective is at least the scaled loss of the network that its q
values define. So both optima agree. The optimal
parameters are read from the integer solution (no rationalisation) and the
loss is recomputed exactly with `exact_loss_multi`. What the optimality claim
rests on depends on the solver, and `TrainResult.basis` says which: CP-SAT
works in integer arithmetic, SCIP in floating point within its tolerances.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import gmpy2
from gmpy2 import mpq

from ermsolve.backends import SolveOptions, get_backend
from ermsolve.backends.base import CUTOFF, OPTIMAL, TIME_LIMIT, objective_tolerance, relative_gap
from ermsolve.encodings.base import TrainingProblem
from ermsolve.errors import UsageError
from ermsolve.exact_eval import activation_patterns, exact_loss_multi
from ermsolve.model import MipModel, Terms, add_terms
from ermsolve.network import Layer, Network
from ermsolve.rationalize import ExactSolution

log = logging.getLogger(__name__)

ENCODING_NAME = "fixed-point integer"

# SCIP reads every coefficient and bound as a double, which represents integers exactly only up to 2^53.
FLOAT_EXACT_LIMIT = 2**53

# A SCIP value further than this from an integer means the solution is not integral.
INTEGRALITY_TOLERANCE = 1e-4



@dataclass
class FixedPointModel:
    """The integer model and the map from its variables back to the network.

    `weights[l][k][j]` and `biases[l][k]` are the variable indices of the
    integers q of layer l. The loss equals the model objective divided by
    `objective_divisor`. `statistics` counts the products linearised by each
    kind of binary expansion, and the variables.
    """

    model: MipModel
    frac_bits: int
    weights: list[list[list[int]]]
    biases: list[list[int]]
    objective_divisor: mpq
    linearized_squares: bool
    statistics: dict = field(default_factory=dict)

    def network(self, integers: dict[int, int]) -> Network:
        """Return the network with parameters q 2^-p read from integer variable values."""
        scale = mpq(1, 1 << self.frac_bits)
        layers = []
        for weight_rows, bias_row in zip(self.weights, self.biases):
            W = tuple(tuple(integers[v] * scale for v in row) for row in weight_rows)
            b = tuple(integers[v] * scale for v in bias_row)
            layers.append(Layer(W, b))
        return Network(tuple(layers), "relu")


def grid_limit(problem: TrainingProblem) -> int:
    """Return Q = floor(R 2^p), the largest |q| of a parameter q 2^-p in the box."""
    architecture = problem.architecture
    return int(gmpy2.f_div(architecture.box.numerator << architecture.frac_bits, architecture.box.denominator))


def build_fixed_point_model(problem: TrainingProblem, linearize_squares: bool = False) -> FixedPointModel:
    """Build the integer model of the module docstring for `problem`.

    With `linearize_squares`, an l2 loss is written as a linear objective over
    the binary expansion of each |residual|, for backends without quadratic
    objectives. Raises `UsageError` when the architecture is not on the
    fixed-point domain.
    """
    architecture = problem.architecture
    if architecture.domain != "fixed" or architecture.frac_bits is None:
        raise UsageError(
            f"the fixed-point model needs domain = \"fixed\" and frac_bits; the model has domain "
            f"{architecture.domain!r} and frac_bits {architecture.frac_bits!r}"
        )
    if architecture.activation != "relu":
        raise UsageError(f"the fixed-point model supports the relu activation, not {architecture.activation!r}")
    return _FixedPointBuilder(problem, linearize_squares).build()


class _FixedPointBuilder:
    """Builder of one `FixedPointModel`, with a cache of the binary expansions made so far."""

    def __init__(self, problem: TrainingProblem, linearize_squares: bool):
        self.problem = problem
        self.architecture = problem.architecture
        self.instance = problem.instance
        self.p = self.architecture.frac_bits
        self.Q = grid_limit(problem)
        self.linearize_squares = linearize_squares and self.architecture.loss == "l2"
        self.model = MipModel(f"fixed-{self.instance.name}-p{self.p}")
        self.model.objective_floor = mpq(0)
        # Binary expansions by variable index: a list of (bit variable, weight).
        self.bits: dict[int, list[tuple[int, int]]] = {}
        self.products = {"parameter_expansions": 0, "activation_expansions": 0}

    def build(self) -> FixedPointModel:
        instance, architecture, model = self.instance, self.architecture, self.model
        widths = [instance.d, *architecture.hidden, architecture.outputs]
        depth = architecture.depth

        # Variables: the integers q of every weight and bias, in [-Q, Q].
        weights, biases = [], []
        for l in range(depth + 1):
            weights.append([
                [model.add_variable(f"qW{l + 1}[{k}][{j}]", -self.Q, self.Q, "integer") for j in range(widths[l])]
                for k in range(widths[l + 1])
            ])
            biases.append([model.add_variable(f"qb{l + 1}[{k}]", -self.Q, self.Q, "integer")
                           for k in range(widths[l + 1])])

        # Constraints: hidden units of a layer ordered by bias (symmetry breaking).
        for l in range(depth):
            for k in range(widths[l + 1] - 1):
                model.add_linear(f"bias_order[{l + 1}][{k}]", {biases[l][k]: mpq(1), biases[l][k + 1]: mpq(-1)}, lo=0)

        # Constraints: the forward pass of every distinct input, then the residuals of its points.
        groups = _group_points(instance.X)
        scales = [_point_scale(instance.X[members[0]], [v for i in members for v in instance.Y[i]])
                  for members in groups]
        common = _lcm(scales)
        residual_terms = []
        for g, members in enumerate(groups):
            D = scales[g]
            # Each activation is ("constant", value) or ("variable", index, upper bound) or None for zero.
            activations = [("constant", mpq(v) * D) for v in instance.X[members[0]]]
            for l in range(depth + 1):
                forms, bound = self._pre_activations(g, l, weights[l], biases[l], activations, D)
                if l == depth:
                    break
                activations = [self._relu(g, l, k, form, bound) for k, form in enumerate(forms)]
            shift = mpq(D) * (1 << ((depth + 1) * self.p))
            for i in members:
                for j, (form, target) in enumerate(zip(forms, instance.Y[i])):
                    residual_terms.append((i, j, form, mpq(target) * shift, bound, common // D))

        # Objective: the scaled loss.
        S = mpq(common) * (1 << ((depth + 1) * self.p))
        divisor = self._add_loss(residual_terms, S)

        self.products["variables"] = len(model.variables)
        log.debug("fixed-point model %s: %s, products %s", model.name, model.count(), self.products)
        return FixedPointModel(model, self.p, weights, biases, divisor, self.linearize_squares, dict(self.products))

    def _pre_activations(self, g, l, weight_rows, bias_row, activations, D):
        """Return the forms Z_{l,g,k} of distinct input g for every unit k of layer l, and their common bound."""
        bias_multiplier = mpq(D) * (1 << (l * self.p))
        magnitude = bias_multiplier
        for activation in activations:
            if activation is None:
                continue
            magnitude += abs(activation[1]) if activation[0] == "constant" else activation[2]
        bound = magnitude * self.Q

        forms = []
        for k, (row, bias) in enumerate(zip(weight_rows, bias_row)):
            form: Terms = {bias: bias_multiplier}
            for j, (q, activation) in enumerate(zip(row, activations)):
                if activation is None:
                    continue
                if activation[0] == "constant":
                    add_terms(form, {q: activation[1]})
                else:
                    add_terms(form, self._product(f"[{l + 1}][{g}][{k}][{j}]", q, activation[1], activation[2]))
            forms.append({v: c for v, c in form.items() if c != 0})
        return forms, bound

    def _relu(self, g, l, k, form: Terms, bound: mpq):
        """Add H = max(Z, 0) for Z = `form` with |Z| <= bound; return the activation entry."""
        model = self.model
        name = f"[{l + 1}][{g}][{k}]"
        if bound <= 0 or not form:
            return None
        h = model.add_variable(f"H{name}", 0, bound, "integer")
        a = model.add_variable(f"a{name}", 0, 1, "binary")
        # H >= Z
        model.add_linear(f"relu_lower{name}", add_terms({h: mpq(1)}, form, -1), lo=0)
        # H <= Z + bound (1 - a)
        model.add_linear(f"relu_active{name}", add_terms({h: mpq(1), a: bound}, form, -1), hi=bound)
        # H <= bound a
        model.add_linear(f"relu_inactive{name}", {h: mpq(1), a: -bound}, hi=0)
        return ("variable", h, bound)

    def _product(self, name: str, q: int, h: int, h_max: mpq) -> Terms:
        """Return a linear form equal to q * H, exact at every integer point of the model."""
        if self.Q == 0 or h_max <= 0:
            return {}
        parameter_bits = self.Q.bit_length() + 1
        activation_bits = int(h_max).bit_length()
        if activation_bits < parameter_bits:
            return self._product_by_activation_bits(name, q, h, h_max)
        return self._product_by_parameter_bits(name, q, h, h_max)

    def _product_by_parameter_bits(self, name, q, h, h_max) -> Terms:
        model = self.model
        self.products["parameter_expansions"] += 1
        form: Terms = {}
        for bit, weight in self._parameter_bits(q):
            u = model.add_variable(f"u{name}[{weight}]", 0, h_max, "integer")
            # u = bit * H: u <= Hmax bit, u <= H, u >= H - Hmax (1 - bit)
            model.add_linear(f"product_off{name}[{weight}]", {u: mpq(1), bit: -h_max}, hi=0)
            model.add_linear(f"product_upper{name}[{weight}]", {u: mpq(1), h: mpq(-1)}, hi=0)
            model.add_linear(f"product_on{name}[{weight}]", {u: mpq(1), h: mpq(-1), bit: -h_max}, lo=-h_max)
            form[u] = mpq(weight)
        return form

    def _product_by_activation_bits(self, name, q, h, h_max) -> Terms:
        model, Q = self.model, mpq(self.Q)
        self.products["activation_expansions"] += 1
        form: Terms = {}
        for bit, weight in self._activation_bits(h, h_max):
            v = model.add_variable(f"v{name}[{weight}]", -Q, Q, "integer")
            # v = bit * q on q in [-Q, Q]: |v| <= Q bit and |v - q| <= Q (1 - bit)
            model.add_linear(f"product_off_upper{name}[{weight}]", {v: mpq(1), bit: -Q}, hi=0)
            model.add_linear(f"product_off_lower{name}[{weight}]", {v: mpq(1), bit: Q}, lo=0)
            model.add_linear(f"product_on_upper{name}[{weight}]", {v: mpq(1), q: mpq(-1), bit: Q}, hi=Q)
            model.add_linear(f"product_on_lower{name}[{weight}]", {v: mpq(1), q: mpq(-1), bit: -Q}, lo=-Q)
            form[v] = mpq(weight)
        return form

    def _parameter_bits(self, q: int) -> list[tuple[int, int]]:
        """Two's complement bits of q: q = -2^B beta_B + sum_{j<B} 2^j beta_j, B = bitlen(Q)."""
        if q not in self.bits:
            top = self.Q.bit_length()
            weights = [1 << j for j in range(top)] + [-(1 << top)]
            self.bits[q] = self._expand(q, weights, "beta")
        return self.bits[q]

    def _activation_bits(self, h: int, h_max: mpq) -> list[tuple[int, int]]:
        """Binary expansion H = sum_j 2^j g_j with bitlen(Hmax) bits."""
        if h not in self.bits:
            self.bits[h] = self._expand(h, [1 << j for j in range(int(h_max).bit_length())], "g")
        return self.bits[h]

    def _expand(self, variable: int, weights: list[int], prefix: str) -> list[tuple[int, int]]:
        model = self.model
        name = model.variables[variable].name
        bits = [(model.add_variable(f"{prefix}[{name}][{w}]", 0, 1, "binary"), w) for w in weights]
        terms = {variable: mpq(1)}
        for bit, weight in bits:
            terms[bit] = mpq(-weight)
        model.add_linear(f"expansion[{name}]", terms, lo=0, hi=0)
        return bits

    def _add_loss(self, residual_terms, S: mpq) -> mpq:
        """Add the scaled loss as the objective; return the divisor that maps it back to the loss."""
        model, loss = self.model, self.architecture.loss
        objective = model.objective

        if loss == "linf":
            largest = max(weight * (bound + abs(target)) for _, _, _, target, bound, weight in residual_terms)
            t = model.add_variable("t", 0, largest, "integer")
            for i, j, form, target, _, weight in residual_terms:
                # t >= c_i (Z - T) and t >= -c_i (Z - T)
                model.add_linear(f"error_upper[{i}][{j}]", add_terms({t: mpq(1)}, form, -weight), lo=-weight * target)
                model.add_linear(f"error_lower[{i}][{j}]", add_terms({t: mpq(1)}, form, weight), lo=weight * target)
            objective.linear[t] = mpq(1)
            return S

        if loss == "l2" and not self.linearize_squares:
            for _, _, form, target, _, weight in residual_terms:
                objective.squares.append(({v: weight * c for v, c in form.items()}, -weight * target))
            return S * S

        for i, j, form, target, bound, weight in residual_terms:
            largest = bound + abs(target)
            e = model.add_variable(f"e[{i}][{j}]", 0, largest, "integer")
            # e >= Z - T and e >= T - Z
            model.add_linear(f"error_upper[{i}][{j}]", add_terms({e: mpq(1)}, form, -1), lo=-target)
            model.add_linear(f"error_lower[{i}][{j}]", add_terms({e: mpq(1)}, form, 1), lo=target)
            if loss == "l1":
                objective.linear[e] = objective.linear.get(e, mpq(0)) + weight
                continue
            # l2 without quadratic objectives: e^2 = sum_j 2^j (g_j e), each product bounded from below.
            for bit, power in self._activation_bits(e, largest):
                u = model.add_variable(f"square[{i}][{j}][{power}]", 0, largest, "integer")
                model.add_linear(f"square_on[{i}][{j}][{power}]", {u: mpq(1), e: mpq(-1), bit: -largest}, lo=-largest)
                objective.linear[u] = mpq(weight * weight * power)
        return S if loss == "l1" else S * S


def _group_points(X) -> list[list[int]]:
    """Return the indices of the points grouped by equal input, in order of first appearance.

    Points with equal inputs share one forward pass, which also makes their
    outputs equal in the LP relaxation.
    """
    groups: dict[tuple, list[int]] = {}
    for i, x in enumerate(X):
        groups.setdefault(tuple(mpq(v) for v in x), []).append(i)
    return list(groups.values())


def _point_scale(x, y) -> int:
    """Return the least common multiple of the denominators of a point and its targets."""
    return _lcm(int(mpq(v).denominator) for v in (*x, *y))


def _lcm(values) -> int:
    result = gmpy2.mpz(1)
    for value in values:
        result = gmpy2.lcm(result, value)
    return int(result)


def train_fixed_point(
    problem: TrainingProblem,
    *,
    solver: str = "cpsat",
    time_limit: float | None = None,
    threads: int = 1,
    verbose: bool = False,
    solver_parameters: dict | None = None,
):
    """Train `problem` on the fixed-point domain with `solver` ("cpsat" or "scip").

    Returns a `TrainResult` whose solution contains the exact network read from
    the integer solution, its exact loss over all outputs, the first hidden
    layer's activation pattern and no output signs (the empty tuple, because
    output weights are not normalised here).
    """
    from ermsolve.train import SignRun, TrainResult

    started = time.monotonic()
    backend = get_backend(solver)
    linearize = not getattr(backend, "supports_quadratic", False)
    encoded = build_fixed_point_model(problem, linearize_squares=linearize)
    counts = encoded.model.count()
    warnings = _float_warnings(encoded.model) if solver != "cpsat" else []
    log.info("fixed-point model: %d variables (%d binary, %d integer), %d constraints",
             counts["variables"], counts["binary"], counts["integer"], counts["linear"])

    options = SolveOptions(time_limit=time_limit, threads=threads, verbose=verbose,
                           solver_parameters=dict(solver_parameters or {}))
    solved = backend.solve(encoded.model, options)
    solve_time = time.monotonic() - started
    log.info("fixed-point %s: %s, objective %s, dual bound %s, %s nodes, %.2f s",
             solver, solved.status, solved.objective, solved.dual_bound, solved.nodes, solved.time_s)

    divisor = encoded.objective_divisor
    objective = _exact_or_float(solved, "exact_objective", "objective")
    dual_bound = _exact_or_float(solved, "exact_dual_bound", "dual_bound")
    objective_loss = None if objective is None else objective / divisor
    dual_loss = None if dual_bound is None else max(dual_bound / divisor, 0)

    result = TrainResult(
        status=_train_status(solved.status),
        basis="",
        solution=None,
        solver=backend.name,
        solver_version=backend.version(),
        encoding=ENCODING_NAME,
        solver_objective=None if objective_loss is None else float(objective_loss),
        dual_bound=None if dual_loss is None else float(dual_loss),
        gap=None,
        nodes=solved.nodes or 0,
        time_s=0.0,
        solve_time_s=solve_time,
        rationalize_time_s=0.0,
        runs=[SignRun((), solved.status, solved.objective, solved.dual_bound, solved.nodes, solved.time_s,
                      counts["variables"], counts["binary"], counts["linear"])],
        warnings=warnings,
        time_limit=time_limit,
        threads=threads,
    )
    result.gap = relative_gap(result.solver_objective, result.dual_bound)

    if solved.has_solution:
        recover_started = time.monotonic()
        result.solution = _read_solution(problem, encoded, solved.values, result.warnings)
        result.rationalize_time_s = time.monotonic() - recover_started
    _state_basis(result, problem, objective_loss, dual_loss)
    result.time_s = time.monotonic() - started
    return result


def _exact_or_float(solved, exact_field: str, float_field: str) -> mpq | None:
    """Return the backend's exact rational value if it has one, else its float read exactly."""
    exact = getattr(solved, exact_field, None)
    if exact is not None:
        return mpq(exact)
    value = getattr(solved, float_field)
    if value is None or not math.isfinite(value):
        return None
    return mpq(value)


def _train_status(backend_status: str) -> str:
    """Map a backend status to a `TrainResult` status.

    The all-zero network is always feasible, so a model reported infeasible
    means a broken model or solver and becomes "error" like any other failure.
    """
    if backend_status == OPTIMAL:
        return "optimal"
    if backend_status in (TIME_LIMIT, CUTOFF):
        return "time_limit"
    return "error"


def _float_warnings(model: MipModel) -> list[str]:
    """Warn when a coefficient or bound is too large for a double to hold exactly."""
    largest = 0
    for variable in model.variables:
        for bound in (variable.lb, variable.ub):
            if bound is not None:
                largest = max(largest, abs(bound))
    for constraint in model.linear:
        for value in (*constraint.terms.values(), constraint.lo or 0, constraint.hi or 0):
            largest = max(largest, abs(value))
    if largest <= FLOAT_EXACT_LIMIT:
        return []
    message = (
        f"the fixed-point model has integers up to {int(largest)}, beyond 2^53, which a floating-point "
        "solver rounds; use solver 'cpsat' for an exact model"
    )
    log.warning(message)
    return [message]


def _read_solution(problem: TrainingProblem, encoded: FixedPointModel, values, warnings) -> ExactSolution | None:
    """Read the integers q of the incumbent and rebuild the network and its exact loss."""
    parameter_indices = [v for layer in encoded.weights for row in layer for v in row]
    parameter_indices += [v for layer in encoded.biases for v in layer]
    integers = {}
    for index in parameter_indices:
        value = values[index]
        nearest = round(value)
        if abs(value - nearest) > INTEGRALITY_TOLERANCE:
            warnings.append(
                f"the solver's value {value!r} of {encoded.model.variables[index].name} is not an integer; "
                "no exact network was read"
            )
            return None
        integers[index] = int(nearest)

    network = encoded.network(integers)
    instance = problem.instance
    loss = exact_loss_multi(network, instance.X, instance.Y, problem.architecture.loss)
    pattern = activation_patterns(network, instance.X)[0]
    return ExactSolution(network, (), pattern, loss, "integer solution, exact", True)


def _state_basis(result, problem: TrainingProblem, objective_loss: mpq | None, dual_loss: mpq | None) -> None:
    """Write what the optimality claim rests on, and downgrade it when the exact loss disagrees."""
    solution = result.solution
    if solution is None:
        if result.status == "optimal":
            result.status = "error"
        result.basis = "no solution found" if objective_loss is None else "the solver's solution could not be read"
        return

    read = "parameters read from the integer solution, loss recomputed exactly"
    if solution.loss == 0:
        result.status = "optimal"
        result.basis = f"exact: the network has loss 0, the smallest possible loss; {read}"
        result.dual_bound = 0.0
        result.gap = 0.0
        return

    if result.solver == "cpsat":
        _state_cpsat_basis(result, solution, objective_loss, dual_loss, read)
    else:
        _state_float_basis(result, problem, solution, objective_loss, read)


def _state_cpsat_basis(result, solution, objective_loss, dual_loss, read) -> None:
    """CP-SAT: optimal only when its exact dual bound equals the exact loss."""
    if result.status != "optimal":
        gap = "infinite" if result.gap is None else f"{100 * result.gap:.2f}%"
        result.basis = f"CP-SAT stopped at status {result.status}, gap {gap}; optimality not proven; {read}"
        return
    if dual_loss is None or dual_loss != solution.loss:
        result.status = "unproven"
        result.basis = (
            f"CP-SAT reported OPTIMAL, but its exact dual bound {dual_loss} differs from the exact loss "
            f"{solution.loss}; optimality is not proven"
        )
        result.warnings.append(result.basis)
        return
    result.gap = 0.0
    # NOTE: this proof assumes CP-SAT's reasoning is sound. OR-Tools documents that CP-SAT works over the
    # integers (developers.google.com/optimization/cp/cp_solver), and its parameter use_exact_lp_reason
    # (default true in OR-Tools 9.15) turns what the LP infers into exact integer propagation.
    result.basis = (
        f"{result.solver_version}: proven optimal in integer arithmetic on the exact integer model of the "
        f"fixed-point grid, dual bound equal to the exact loss {solution.loss}; {read}"
    )


def _state_float_basis(result, problem, solution, objective_loss, read) -> None:
    """SCIP and other float solvers: optimal within their tolerances only."""
    exact = float(solution.loss)
    objective = float(objective_loss) if objective_loss is not None else exact
    tolerance = objective_tolerance(objective, problem.instance.n)
    if exact > objective + tolerance:
        result.warnings.append(
            f"EXACT LOSS IS WORSE THAN THE SOLVER'S OBJECTIVE: exact {exact!r} versus solver {objective!r}"
        )
    name = result.solver_version.split(" (")[0]
    if result.status == "optimal":
        if result.dual_bound is not None and exact > result.dual_bound + tolerance:
            result.status = "unproven"
            result.basis = (
                f"{name} reported optimality, but the exact loss {exact:.12g} exceeds its dual bound "
                f"{result.dual_bound:.12g} beyond tolerance; optimality is not proven"
            )
            return
        result.basis = (
            f"{name} floating-point branch and bound on the integer model of the fixed-point grid, gap 0 "
            f"within its tolerances (not an exact proof); {read}"
        )
    elif result.status == "time_limit":
        gap = "infinite" if result.gap is None else f"{100 * result.gap:.2f}%"
        result.basis = f"time limit reached, gap {gap}; optimality not proven; {read}"
    else:
        result.basis = f"the solver stopped with an error; {read}"
