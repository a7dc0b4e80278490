"""Gradient-descent baseline: projected Adam from many random starts, with no optimality claim.

The network is trained in the original parameterisation

    f(x) = sum_k v_k relu(w_k . x + b_k) + c,   every parameter in [-R, R],

with Adam (Kingma and Ba, 2015) on the full training loss in numpy float64.
After each step every parameter is clipped to the box, which is the
Euclidean projection onto a box. All restarts run at once as one batch of
arrays. Each restart starts from parameters drawn uniformly from the box.
Each restart keeps the best iterate it visited, and the best of all restarts
is reported.

The best float network is then made exact. Its parameters are floats, so
they are exact binary rationals. In the normalised form of
`ermsolve.encodings.base` its output signs are s_k = sign(v_k) and its
activation pattern is the set of points with exact pre-activation > 0. That
network is a feasible point of the fixed-pattern program for those signs and
that pattern, so `rationalize` returns a network whose exact loss is at most
the exact loss of the gradient-descent network. The result never claims
optimality: its status is "heuristic".

At a kink the gradient uses relu'(0) = 0. For l1 the subgradient sign(r)
is used, and for linf the gradient of the residual with the largest absolute
value (the first one on ties).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
from gmpy2 import mpq

from ermsolve import __version__
from ermsolve.classification import is_classification
from ermsolve.encodings.base import TrainingProblem
from ermsolve.errors import RationalizationError, UsageError
from ermsolve.network import Layer, Network, exact_loss
from ermsolve.rationalize import ExactSolution, rationalize
from ermsolve.train import TrainResult

log = logging.getLogger(__name__)

DEFAULT_RESTARTS = 100
DEFAULT_STEPS = 2000
DEFAULT_LEARNING_RATE = 0.01

# Adam's moment decay rates and denominator offset, the values its paper recommends.
BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8

# The time limit is checked once per this many steps, because a check per step
# costs more than the step itself on tiny instances.
_TIME_CHECK_INTERVAL = 50


@dataclass
class GradientDescentRun:
    """The best float network over all restarts, in the original parameterisation."""

    weights: np.ndarray  # (K, d) hidden weights w_k
    biases: np.ndarray  # (K,) hidden biases b_k
    output_weights: np.ndarray  # (K,) output weights v_k
    output_bias: float  # c
    loss: float  # float loss of this network
    restart_losses: np.ndarray  # (restarts,) best float loss of each restart
    restarts: int
    steps: int  # steps run per restart, fewer than requested when the time limit stopped it
    stopped_by_time: bool
    time_s: float

    def predict(self, X) -> np.ndarray:
        """Float outputs of the network for the rows of `X`."""
        X = np.asarray(X, dtype=float)
        hidden = np.maximum(X @ self.weights.T + self.biases, 0.0)
        return hidden @ self.output_weights + self.output_bias


def train_gd(problem: TrainingProblem, *, restarts: int = DEFAULT_RESTARTS, steps: int = DEFAULT_STEPS,
             learning_rate: float = DEFAULT_LEARNING_RATE, seed: int = 0,
             time_limit: float | None = None) -> TrainResult:
    """Train `problem` by projected Adam from `restarts` seeded random starts, then solve its pattern exactly.

    The result is the same for the same arguments on the same machine and
    numpy version. Raises `UsageError` on a non-positive count, step size or
    time limit.
    """
    run = gradient_descent(problem, restarts=restarts, steps=steps, learning_rate=learning_rate,
                           seed=seed, time_limit=time_limit)
    return result_from_run(problem, run, time_limit=time_limit)


def gradient_descent(problem: TrainingProblem, *, restarts: int = DEFAULT_RESTARTS, steps: int = DEFAULT_STEPS,
                     learning_rate: float = DEFAULT_LEARNING_RATE, seed: int = 0,
                     time_limit: float | None = None) -> GradientDescentRun:
    """Run projected Adam on all restarts at once and return the best float network."""
    problem.require_shallow("gradient descent")
    if is_classification(problem.architecture.loss):
        raise UsageError(
            f"gradient descent supports the l1, l2 and linf losses, not {problem.architecture.loss}"
        )
    _check_options(restarts, steps, learning_rate, seed, time_limit)
    started = time.monotonic()
    X, y = problem.instance.X_float, problem.instance.y_float
    width, d, loss = problem.width, problem.instance.d, problem.architecture.loss
    box = _float_box(problem.architecture.box)

    rng = np.random.default_rng(seed)
    parameters = {
        "W": rng.uniform(-box, box, size=(restarts, width, d)),
        "b": rng.uniform(-box, box, size=(restarts, width)),
        "v": rng.uniform(-box, box, size=(restarts, width)),
        "c": rng.uniform(-box, box, size=(restarts,)),
    }
    first_moment = {name: np.zeros_like(value) for name, value in parameters.items()}
    second_moment = {name: np.zeros_like(value) for name, value in parameters.items()}
    best = {name: value.copy() for name, value in parameters.items()}
    best_loss = np.full(restarts, np.inf)

    steps_done, stopped_by_time = 0, False
    for step in range(1, steps + 1):
        losses, gradients = _loss_and_gradients(parameters, X, y, loss)
        _keep_improved(best, best_loss, parameters, losses)

        for name, gradient in gradients.items():
            first_moment[name] = BETA1 * first_moment[name] + (1 - BETA1) * gradient
            second_moment[name] = BETA2 * second_moment[name] + (1 - BETA2) * gradient * gradient
            corrected_first = first_moment[name] / (1 - BETA1**step)
            corrected_second = second_moment[name] / (1 - BETA2**step)
            updated = parameters[name] - learning_rate * corrected_first / (np.sqrt(corrected_second) + EPSILON)
            parameters[name] = np.clip(updated, -box, box)
        steps_done = step

        if time_limit is not None and step % _TIME_CHECK_INTERVAL == 0 and time.monotonic() - started >= time_limit:
            stopped_by_time = True
            break

    # The iterate after the last step has not been scored yet.
    losses, _ = _loss_and_gradients(parameters, X, y, loss)
    _keep_improved(best, best_loss, parameters, losses)

    winner = int(np.argmin(best_loss))
    run = GradientDescentRun(
        weights=best["W"][winner].copy(),
        biases=best["b"][winner].copy(),
        output_weights=best["v"][winner].copy(),
        output_bias=float(best["c"][winner]),
        loss=float(best_loss[winner]),
        restart_losses=best_loss.copy(),
        restarts=restarts,
        steps=steps_done,
        stopped_by_time=stopped_by_time,
        time_s=time.monotonic() - started,
    )
    log.info("gradient descent: %d restarts of %d steps, best float loss %.9g (median over restarts %.9g), %.2f s",
             restarts, steps_done, run.loss, float(np.median(best_loss)), run.time_s)
    return run


def result_from_run(problem: TrainingProblem, run: GradientDescentRun, *, time_limit=None) -> TrainResult:
    """Solve the fixed-pattern program of the run's best network exactly and wrap both in a `TrainResult`."""
    started = time.monotonic()
    float_network = _exact_network(run)
    float_network_loss = exact_loss(float_network, problem.instance.X, problem.instance.y,
                                    problem.architecture.loss)
    signs, pattern = _signs_and_pattern(run, problem.instance.X)

    warnings = []
    program = "QP" if problem.architecture.loss == "l2" else "LP"
    try:
        solution = rationalize(problem, signs, pattern)
        exact_step = (f"the best network's activation pattern and output signs fixed and the fixed-pattern "
                      f"{program} solved exactly ({solution.method}), which is at least as good as the "
                      "gradient-descent network")
        if solution.loss > float_network_loss:
            # The gradient-descent network is feasible for that program, so this cannot happen
            # unless the exact solve is wrong.
            warnings.append(f"the fixed-pattern optimum {solution.loss} exceeds the exact loss "
                            f"{float_network_loss} of the gradient-descent network it contains")
    except RationalizationError as error:
        log.warning("exact solve of the gradient-descent pattern failed: %s", error)
        warnings.append(f"exact solve of the gradient-descent pattern failed ({error}); "
                        "the gradient-descent parameters themselves are reported")
        solution = ExactSolution(float_network, tuple(int(np.sign(v)) or 1 for v in run.output_weights),
                                 _pattern_of_network(float_network, problem.instance.X),
                                 float_network_loss, "float parameters as exact binary rationals", False)
        exact_step = "exact loss of the gradient-descent parameters themselves"
    rationalize_time = time.monotonic() - started

    limit_text = "; stopped by the time limit" if run.stopped_by_time else ""
    basis = (f"gradient descent (Adam), {run.restarts} restarts of {run.steps} steps{limit_text}, best float "
             f"loss {run.loss:.9g}; {exact_step}; no optimality claim")
    return TrainResult(
        status="heuristic",
        basis=basis,
        solution=solution,
        solver="gd",
        solver_version=f"ermsolve {__version__} gradient descent (numpy {np.__version__})",
        encoding="none",
        solver_objective=run.loss,
        dual_bound=None,
        gap=None,
        nodes=0,
        time_s=run.time_s + rationalize_time,
        solve_time_s=run.time_s,
        rationalize_time_s=rationalize_time,
        warnings=warnings,
        time_limit=time_limit,
        threads=1,
    )


def _check_options(restarts, steps, learning_rate, seed, time_limit) -> None:
    for name, value in (("restarts", restarts), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{name} must be a positive integer, got {value!r}")
    if not _is_positive_number(learning_rate):
        raise UsageError(f"learning_rate must be a positive finite number, got {learning_rate!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"seed must be a nonnegative integer, got {seed!r}")
    if time_limit is not None and not _is_positive_number(time_limit):
        raise UsageError(f"time_limit must be a positive number of seconds, got {time_limit!r}")


def _is_positive_number(value) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isfinite(value) and value > 0)


def _float_box(box: mpq) -> float:
    """Return the largest float <= the exact box, so that clipped parameters stay inside it exactly."""
    value = float(box)
    if mpq(value) > box:
        value = float(np.nextafter(value, 0.0))
    return value


def _loss_and_gradients(parameters, X, y, loss):
    """Float loss of every restart and its (sub)gradient with respect to each parameter array."""
    W, b, v, c = parameters["W"], parameters["b"], parameters["v"], parameters["c"]
    pre_activation = np.einsum("skd,nd->snk", W, X) + b[:, None, :]
    active = pre_activation > 0
    hidden = np.where(active, pre_activation, 0.0)
    residual = np.einsum("snk,sk->sn", hidden, v) + c[:, None] - y[None, :]

    if loss == "l1":
        losses = np.abs(residual).sum(axis=1)
        output_gradient = np.sign(residual)
    elif loss == "l2":
        losses = (residual * residual).sum(axis=1)
        output_gradient = 2.0 * residual
    else:
        worst = np.argmax(np.abs(residual), axis=1)
        rows = np.arange(residual.shape[0])
        losses = np.abs(residual[rows, worst])
        output_gradient = np.zeros_like(residual)
        output_gradient[rows, worst] = np.sign(residual[rows, worst])

    pre_activation_gradient = output_gradient[:, :, None] * v[:, None, :] * active
    gradients = {
        "W": np.einsum("snk,nd->skd", pre_activation_gradient, X),
        "b": pre_activation_gradient.sum(axis=1),
        "v": np.einsum("sn,snk->sk", output_gradient, hidden),
        "c": output_gradient.sum(axis=1),
    }
    return losses, gradients


def _keep_improved(best, best_loss, parameters, losses) -> None:
    improved = losses < best_loss
    if not improved.any():
        return
    best_loss[improved] = losses[improved]
    for name, value in parameters.items():
        best[name][improved] = value[improved]


def _exact_network(run: GradientDescentRun) -> Network:
    """Convert the float network to the exact rational network with the same parameter values."""
    hidden = Layer(
        tuple(tuple(mpq(float(w)) for w in row) for row in run.weights),
        tuple(mpq(float(bias)) for bias in run.biases),
    )
    output = Layer((tuple(mpq(float(v)) for v in run.output_weights),), (mpq(run.output_bias),))
    return Network((hidden, output), "relu")


def _signs_and_pattern(run: GradientDescentRun, X):
    """Output signs sign(v_k) (+1 for 0) and the exact strict pattern of the scaled pre-activations.

    A unit with v_k = 0 has scaled pre-activation 0 everywhere, so its pattern is all 0.
    """
    signs = tuple(-1 if v < 0 else 1 for v in run.output_weights)
    network = _exact_network(run)
    pattern = []
    for x in X:
        z = network.pre_activations(x)[0]
        pattern.append([1 if z[k] > 0 and run.output_weights[k] != 0 else 0 for k in range(len(signs))])
    return signs, pattern


def _pattern_of_network(network: Network, X) -> list[list[int]]:
    return [[1 if z > 0 else 0 for z in network.pre_activations(x)[0]] for x in X]
