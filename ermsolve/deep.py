r"""Deeper and multi-output networks over the box: a nonconvex MINLP solved by SCIP.

With hidden layers l = 0..L-1, output layer L, every weight and bias in
[-R, R] and data x_i, the model for point i is

.. math::

    z_{0,i} = W_0 x_i + b_0, \qquad
    z_{l,i} = W_l h_{l-1,i} + b_l \quad (l \ge 1), \qquad
    h_{l,i} = \max(z_{l,i}, 0), \qquad f_i = z_{L,i},

where the products W_l h_{l-1,i} of two variables make every layer after the
first bilinear. ReLU is written by big-M with one binary a per point and
unit, h >= z, h <= z + U (1 - a), h <= U a, h >= 0, using interval bounds on
the box: |z_{0,i}| <= U_{0,i} = R (|x_i|_1 + 1) and
|z_{l,i}| <= U_{l,i} = R (K_{l-1} U_{l-1,i} + 1). The loss over all outputs
is l1 (sum of e_ij >= |f_ij - y_ij|), l2 (sum of squares, through an
epigraph variable) or linf (t >= |f_ij - y_ij|). Hidden units of one layer
are ordered by bias, b_{l,0} >= b_{l,1} >= ..., which loses no optimum
because permuting units keeps the function and the box.

SCIP solves this to global optimality by spatial branch and bound, but in
floating point and within its tolerances (feasibility 1e-6 by default).
Nothing here is an exact proof. The float parameters are then turned into
rationals: their exact binary values, or roundings to small denominators,
whichever has the lowest exact loss. The loss of that network is recomputed
exactly, and `TrainResult.basis` states how far it lies from SCIP's objective. Only an exact loss of 0 is proven optimal, since no loss is
negative.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from fractions import Fraction

from gmpy2 import mpq

from ermsolve.backends.base import OPTIMAL, TIME_LIMIT, objective_tolerance, relative_gap
from ermsolve.backends.scip import STATUS_MAP
from ermsolve.encodings.base import TrainingProblem
from ermsolve.errors import SolverUnavailableError, UsageError
from ermsolve.exact_eval import activation_patterns, exact_loss_multi
from ermsolve.network import Layer, Network
from ermsolve.rational import bit_length, float_to_rational

log = logging.getLogger(__name__)

ENCODING_NAME = "bilinear big-M MINLP"


# Rationalisation candidates: rounding to the grid 2^-k for these k, and the best
# approximation with a denominator of at most each of these limits.
DYADIC_BITS = tuple(range(0, 31))
DENOMINATOR_LIMITS = (10, 100, 1000, 10**4, 10**5, 10**6)


def _import_scip():
    try:
        import pyscipopt
    except ImportError as error:
        raise SolverUnavailableError(
            f"deeper and multi-output networks need PySCIPOpt, which failed to import ({error}); "
            "install it with `pip install 'pyscipopt>=6.3'` or run `make install`"
        ) from None
    return pyscipopt


@dataclass
class DeepModel:
    """The PySCIPOpt model and its parameter variables, `weights[l][k][j]` and `biases[l][k]`."""

    scip: object
    weights: list[list[list[object]]]
    biases: list[list[object]]
    binaries: int
    bilinear_constraints: int


def interval_bounds(problem: TrainingProblem) -> list[list[mpq]]:
    """Return U[i][l]: every pre-activation of layer l on point i lies in [-U, U] on the box.

    U_0 = R (|x_i|_1 + 1) and U_l = R (K_{l-1} U_{l-1} + 1), where K_{l-1} is
    the width of the layer before; the last entry bounds the outputs.
    """
    architecture = problem.architecture
    box = architecture.box
    bounds = []
    for x in problem.instance.X:
        row = [box * (sum((abs(mpq(v)) for v in x), mpq(0)) + 1)]
        for width in architecture.hidden:
            row.append(box * (width * row[-1] + 1))
        bounds.append(row)
    return bounds


def build_deep_model(problem: TrainingProblem, verbose: bool = False) -> DeepModel:
    """Build the MINLP of the module docstring as a PySCIPOpt model."""
    pyscipopt = _import_scip()
    architecture, instance = problem.architecture, problem.instance
    if architecture.activation != "relu":
        raise UsageError(f"the deep model supports the relu activation, not {architecture.activation!r}")
    box = float(architecture.box)
    widths = [instance.d, *architecture.hidden, architecture.outputs]
    depth = architecture.depth
    bounds = interval_bounds(problem)

    scip = pyscipopt.Model(f"deep-{instance.name}")
    if not verbose:
        scip.hideOutput()

    # Variables: the parameters of every layer, in the box.
    weights = [
        [[scip.addVar(f"W{l + 1}[{k}][{j}]", lb=-box, ub=box) for j in range(widths[l])] for k in range(widths[l + 1])]
        for l in range(depth + 1)
    ]
    biases = [[scip.addVar(f"b{l + 1}[{k}]", lb=-box, ub=box) for k in range(widths[l + 1])] for l in range(depth + 1)]

    # Constraints: hidden units of a layer ordered by bias (symmetry breaking).
    for l in range(depth):
        for k in range(widths[l + 1] - 1):
            scip.addCons(biases[l][k] >= biases[l][k + 1], name=f"bias_order[{l + 1}][{k}]")

    # Constraints: the forward pass of every distinct input; layers after the first are bilinear.
    # Points with equal inputs share one forward pass, which also makes their outputs equal in the relaxation.
    binaries, bilinear = 0, 0
    groups = _group_points(instance.X)
    outputs = [None] * instance.n
    for g, members in enumerate(groups):
        values = [float(v) for v in instance.X[members[0]]]
        activations = None
        for l in range(depth + 1):
            bound = float(bounds[members[0]][l])
            z_row = []
            for k in range(widths[l + 1]):
                z = scip.addVar(f"z[{l + 1}][{g}][{k}]", lb=-bound, ub=bound)
                if l == 0:
                    affine = pyscipopt.quicksum(w * v for w, v in zip(weights[0][k], values) if v != 0)
                    scip.addCons(z == affine + biases[0][k], name=f"affine[1][{g}][{k}]")
                else:
                    products = pyscipopt.quicksum(w * h for w, h in zip(weights[l][k], activations))
                    scip.addCons(z == products + biases[l][k], name=f"bilinear[{l + 1}][{g}][{k}]")
                    bilinear += 1
                z_row.append(z)
            if l == depth:
                for i in members:
                    outputs[i] = z_row
                break
            activations = []
            for k, z in enumerate(z_row):
                h = scip.addVar(f"h[{l + 1}][{g}][{k}]", lb=0.0, ub=bound)
                a = scip.addVar(f"a[{l + 1}][{g}][{k}]", vtype="B")
                scip.addCons(h >= z, name=f"relu_lower[{l + 1}][{g}][{k}]")
                scip.addCons(h <= z + bound * (1 - a), name=f"relu_active[{l + 1}][{g}][{k}]")
                scip.addCons(h <= bound * a, name=f"relu_inactive[{l + 1}][{g}][{k}]")
                activations.append(h)
                binaries += 1

    # Objective: the loss over all points and outputs.
    _add_loss(scip, pyscipopt, architecture.loss, outputs, instance.Y)
    return DeepModel(scip, weights, biases, binaries, bilinear)


def _group_points(X) -> list[list[int]]:
    """Return the indices of the points grouped by equal input, in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for i, x in enumerate(X):
        groups.setdefault(tuple(mpq(v) for v in x), []).append(i)
    return list(groups.values())


def _add_loss(scip, pyscipopt, loss: str, outputs, targets) -> None:
    residuals = [
        (i, j, f - float(target)) for i, (row, target_row) in enumerate(zip(outputs, targets))
        for j, (f, target) in enumerate(zip(row, target_row))
    ]
    if loss == "l2":
        # PySCIPOpt takes only linear objectives, so minimise an epigraph variable.
        epigraph = scip.addVar("squared_error", lb=0.0, ub=None)
        scip.addCons(pyscipopt.quicksum(r * r for _, _, r in residuals) <= epigraph, name="squared_error_epigraph")
        scip.setObjective(epigraph, sense="minimize")
        return
    if loss == "linf":
        t = scip.addVar("max_error", lb=0.0, ub=None)
        for i, j, r in residuals:
            scip.addCons(t >= r, name=f"error_upper[{i}][{j}]")
            scip.addCons(t >= -r, name=f"error_lower[{i}][{j}]")
        scip.setObjective(t, sense="minimize")
        return
    errors = []
    for i, j, r in residuals:
        e = scip.addVar(f"e[{i}][{j}]", lb=0.0, ub=None)
        scip.addCons(e >= r, name=f"error_upper[{i}][{j}]")
        scip.addCons(e >= -r, name=f"error_lower[{i}][{j}]")
        errors.append(e)
    scip.setObjective(pyscipopt.quicksum(errors), sense="minimize")


def train_deep(
    problem: TrainingProblem,
    *,
    solver: str = "scip",
    time_limit: float | None = None,
    threads: int = 1,
    verbose: bool = False,
    solver_parameters: dict | None = None,
):
    """Train a box-domain network with several hidden layers or outputs with SCIP's MINLP solver.

    Returns a `TrainResult` whose solution contains the rationalised network, its
    exact loss over all outputs, the first hidden layer's activation pattern
    and no output signs (the empty tuple). `solution.certified` is False,
    because SCIP proves optimality only within its tolerances.
    """
    from ermsolve.train import SignRun, TrainResult

    if solver != "scip":
        raise UsageError(
            f"solver {solver!r} cannot train hidden layers {list(problem.architecture.hidden)} with "
            f"{problem.architecture.outputs} outputs over the box: the products of weights make the model "
            "nonlinear, which only 'scip' solves here; use --solver scip, or domain = \"fixed\" for an integer model"
        )
    started = time.monotonic()
    deep = build_deep_model(problem, verbose)
    scip = deep.scip
    if time_limit is not None:
        scip.setParam("limits/time", max(float(time_limit), 0.0))
    # NOTE: `threads` is ignored, because this path does not use SCIP's concurrent mode.
    for key, value in (solver_parameters or {}).items():
        scip.setParam(key, value)

    log.info("deep model: %d variables, %d binaries, %d bilinear constraints",
             scip.getNVars(), deep.binaries, deep.bilinear_constraints)
    scip.optimize()
    solve_time = time.monotonic() - started

    raw = scip.getStatus()
    status = STATUS_MAP.get(raw, "error")
    objective = float(scip.getSolObjVal(scip.getBestSol())) if scip.getNSols() > 0 else None
    dual = float(scip.getDualbound())
    dual = max(dual, 0.0) if math.isfinite(dual) and abs(dual) < 1e19 else None
    log.info("deep model: %s, objective %s, dual bound %s, %d nodes, %.2f s",
             raw, objective, dual, scip.getNTotalNodes(), scip.getSolvingTime())

    if status == OPTIMAL:
        train_status = "optimal"
    elif status == TIME_LIMIT:
        train_status = "time_limit"
    else:
        train_status = "error"
    version = f"SCIP {scip.getMajorVersion()}.{scip.getMinorVersion()}.{scip.getTechVersion()}"
    result = TrainResult(
        status=train_status,
        basis="",
        solution=None,
        solver="scip",
        solver_version=version,
        encoding=ENCODING_NAME,
        solver_objective=objective,
        dual_bound=dual,
        gap=relative_gap(objective, dual),
        nodes=int(scip.getNTotalNodes()),
        time_s=0.0,
        solve_time_s=solve_time,
        rationalize_time_s=0.0,
        runs=[SignRun((), status, objective, dual, int(scip.getNTotalNodes()), float(scip.getSolvingTime()),
                      scip.getNVars(), deep.binaries, scip.getNConss())],
        time_limit=time_limit,
        threads=threads,
    )
    if objective is not None:
        best = scip.getBestSol()
        weights = [[[scip.getSolVal(best, w) for w in row] for row in layer] for layer in deep.weights]
        biases = [[scip.getSolVal(best, b) for b in layer] for layer in deep.biases]
        rationalize_started = time.monotonic()
        result.solution = rationalize_floats(problem, weights, biases)
        result.rationalize_time_s = time.monotonic() - rationalize_started
    _state_basis(result, problem)
    result.time_s = time.monotonic() - started
    return result


def rationalize_floats(problem: TrainingProblem, weights, biases):
    """Turn float parameters into the rational network of lowest exact loss among the candidates.

    Candidates are the exact binary values of the floats, their roundings to
    2^-k for k in `DYADIC_BITS`, and their best approximations with
    denominators up to each of `DENOMINATOR_LIMITS`. Every value is clipped to
    the box, and ties go to the candidate with the fewest bits.
    """
    # NOTE: each parameter is rounded on its own. Where many networks are optimal, a rounded
    # network can miss the optimum by about SCIP's tolerance even though an exact optimum with
    # small denominators exists (seen on multi_output_repeated_4.csv, l1: 2 + 2.8e-9 instead of 2).
    from ermsolve.rationalize import ExactSolution

    architecture, instance = problem.architecture, problem.instance
    box = mpq(architecture.box)

    def clip(value: mpq) -> mpq:
        return max(-box, min(box, value))

    roundings = [("exact binary values of the floats", float_to_rational)]
    roundings += [(f"floats rounded to multiples of 2^-{k}", _dyadic_rounding(k)) for k in DYADIC_BITS]
    roundings += [(f"floats rounded to denominators <= {limit}", _bounded_denominator(limit))
                  for limit in DENOMINATOR_LIMITS]

    best = None
    for method, rounding in roundings:
        network = Network(tuple(
            Layer(tuple(tuple(clip(rounding(w)) for w in row) for row in layer_weights),
                  tuple(clip(rounding(b)) for b in layer_biases))
            for layer_weights, layer_biases in zip(weights, biases)
        ), "relu")
        loss = exact_loss_multi(network, instance.X, instance.Y, architecture.loss)
        bits = max(bit_length(value) for _, value in network.parameters())
        if best is None or (loss, bits) < (best[0], best[1]):
            best = (loss, bits, network, method)

    loss, bits, network, method = best
    log.debug("rationalised with %s: exact loss %s, max bit-length %d", method, loss, bits)
    pattern = activation_patterns(network, instance.X)[0]
    return ExactSolution(network, (), pattern, loss, method, False)


def _dyadic_rounding(bits: int):
    scale = 1 << bits

    def rounding(value: float) -> mpq:
        return mpq(round(value * scale), scale)

    return rounding


def _bounded_denominator(limit: int):
    def rounding(value: float) -> mpq:
        return mpq(Fraction(value).limit_denominator(limit))

    return rounding


def _state_basis(result, problem: TrainingProblem) -> None:
    """Write what the result rests on, with the exact loss's distance from SCIP's objective."""
    solution = result.solution
    if solution is None:
        if result.status == "optimal":
            result.status = "error"
        result.basis = "no solution found"
        return

    exact = float(solution.loss)
    if solution.loss == 0:
        result.status = "optimal"
        result.basis = (
            f"exact: the rationalised network ({solution.method}) has loss 0, recomputed exactly, "
            "the smallest possible loss"
        )
        result.dual_bound = 0.0
        result.gap = 0.0
        return

    objective = result.solver_objective
    difference = float(solution.loss - mpq(objective))
    relation = (f"exceeds the solver's objective by {difference:.3g}" if difference > 0
                else f"is below the solver's objective by {-difference:.3g}" if difference < 0
                else "equals the solver's objective")
    tolerance = objective_tolerance(objective, problem.instance.n * problem.architecture.outputs)
    steps = (f"parameters rationalised from floats ({solution.method}), loss recomputed exactly; "
             f"the exact loss {relation}")

    if result.dual_bound is not None and exact < result.dual_bound - tolerance:
        result.warnings.append(
            f"the exact loss {exact:.12g} is below SCIP's dual bound {result.dual_bound:.12g} beyond the "
            f"tolerance {tolerance:.3g}, so that dual bound is wrong"
        )
    if result.status == "optimal":
        if result.dual_bound is not None and exact > result.dual_bound + tolerance:
            result.status = "unproven"
            result.basis = (
                f"SCIP reported optimality, but the exact loss {exact:.12g} exceeds its dual bound "
                f"{result.dual_bound:.12g} beyond the tolerance {tolerance:.3g}; optimality is not proven; {steps}"
            )
            result.warnings.append(result.basis)
            return
        result.basis = (
            f"SCIP spatial branch and bound within its tolerances (not an exact proof), gap 0; {steps}"
        )
    elif result.status == "time_limit":
        gap = "infinite" if result.gap is None else f"{100 * result.gap:.2f}%"
        result.basis = f"time limit reached, gap {gap}; optimality not proven; {steps}"
    else:
        result.basis = f"SCIP stopped with status {result.runs[0].status}; {steps}"
