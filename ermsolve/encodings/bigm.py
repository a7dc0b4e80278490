"""Big-M encoding of one-hidden-layer ReLU training with interval bounds."""

from __future__ import annotations

from gmpy2 import mpq

from ermsolve.classification import zero_one_margin
from ermsolve.encodings.base import EncodedModel, EncodingOptions, TrainingProblem
from ermsolve.model import MipModel, add_terms


class BigMEncoding:
    r"""Big-M formulation with per-point bounds; one MIP per output-sign pattern.

    For point i, unit k, pre-activation z_ik = w'_k . x_i + b'_k with bounds
    L_i <= z_ik <= U_i, activation h_ik and activation binary a_ik:

    .. math::

        h_{ik} \ge z_{ik},\quad h_{ik} \ge 0,\quad
        h_{ik} \le z_{ik} - L_i (1 - a_{ik}),\quad h_{ik} \le U_i a_{ik},

    so a_ik = 1 forces h = z >= 0 and a_ik = 0 forces h = 0 >= z. Where U_i <= 0
    the unit is inactive on point i and gets no binary, only the row z <= 0
    (h = 0); where L_i >= 0 it is active, with the row z >= 0 (h = z). The
    output is f_i = sum_k s_k h_ik + c with fixed signs s, and the loss is
    written as

    - l1: min sum_i e_i with e_i >= +-(f_i - y_i);
    - linf: min t with t >= +-(f_i - y_i);
    - l2: min sum_i (f_i - y_i)^2, a convex quadratic objective;
    - hinge: min sum_i e_i with e_i >= 0, e_i >= 1 - y_i f_i;
    - zero_one: min sum_i m_i over binaries m_i with
      y_i f_i >= mu - M_i m_i, where M_i = mu + K U_i + R bounds mu - y_i f_i.
      m_i = 0 demands the margin mu > 0 of `zero_one_margin`, so every point
      with m_i = 0 is strictly correct. The optimum is an upper bound on the
      0-1 optimum, and equals it when some optimal classifier reaches margin
      mu in the box (see `ermsolve.classification`).

    Valid for any finite bounds that every optimal network satisfies; the
    interval bounds of `TrainingProblem.interval_bounds` satisfy that on the
    whole box. This is the standard formulation of Tjeng, Xiao and Tedrake,
    "Evaluating robustness of neural networks with mixed integer programming"
    (ICLR 2019), used here with the weights as variables instead of the inputs.
    """

    name = "bigm"

    def build(
        self,
        problem: TrainingProblem,
        signs: tuple[int, ...],
        options: EncodingOptions | None = None,
        bounds: list[list[tuple[mpq, mpq]]] | None = None,
    ) -> EncodedModel:
        """Build the MIP for output signs `signs`; `bounds[i][k]` overrides the interval bounds."""
        problem.require_shallow(f"the {self.name} encoding")
        options = options or EncodingOptions()
        instance = problem.instance
        width, d = problem.width, instance.d
        if bounds is None:
            bounds = [[interval] * width for interval in problem.interval_bounds()]
        model = MipModel(f"{self.name}-{instance.name}-signs{''.join('+' if s > 0 else '-' for s in signs)}")
        model.objective_floor = mpq(0)

        # Create the network's parameters in the normalised box.
        weights, biases, output_bias = add_parameters(model, problem)

        # Create one activation and, where the sign is not fixed by the bounds, one binary per point and unit.
        activation = [[None] * width for _ in range(instance.n)]
        fixed = [[None] * width for _ in range(instance.n)]
        outputs = []
        for i, x in enumerate(instance.X):
            output = {output_bias: mpq(1)}
            for k in range(width):
                lower, upper = bounds[i][k]
                pre_activation = {weights[k][j]: x[j] for j in range(d)}
                pre_activation[biases[k]] = mpq(1)

                # A unit fixed by the bounds gets a sign row instead of a binary, so the MIP
                # cannot leave the bounds on that point and model a wrong activation.
                if upper <= 0:
                    fixed[i][k] = 0
                    model.add_linear(f"relu_fixed_inactive[{i}][{k}]", pre_activation, hi=0)
                    continue
                if lower >= 0:
                    fixed[i][k] = 1
                    model.add_linear(f"relu_fixed_active[{i}][{k}]", pre_activation, lo=0)
                    add_terms(output, pre_activation, signs[k])
                    continue

                h, a = self.add_relu(model, i, k, pre_activation, lower, upper)
                activation[i][k] = a
                add_terms(output, {h: mpq(1)}, signs[k])
            outputs.append(output)

        # Break the symmetry of interchangeable units by ordering their biases, when asked.
        if options.symmetry == "bias-order":
            for k in range(width - 1):
                if signs[k] == signs[k + 1]:
                    model.add_linear(f"bias_order[{k}]", {biases[k]: mpq(1), biases[k + 1]: mpq(-1)}, lo=0)

        misclassification = _add_loss(model, problem, outputs)
        return EncodedModel(model, tuple(signs), weights, biases, output_bias, activation, fixed,
                            misclassification=misclassification)

    def add_relu(self, model: MipModel, i: int, k: int, pre_activation: dict, lower: mpq, upper: mpq):
        """Add h = relu(z) for a unit whose sign is open on point i; return (h, activation binary)."""
        h = model.add_variable(f"h[{i}][{k}]", 0, upper)
        a = model.add_variable(f"a[{i}][{k}]", 0, 1, "binary")
        # h >= z
        model.add_linear(f"relu_lower[{i}][{k}]", add_terms({h: mpq(1)}, pre_activation, -1), lo=0)
        # h <= z - L (1 - a)
        model.add_linear(
            f"relu_active[{i}][{k}]",
            add_terms({h: mpq(1), a: -lower}, pre_activation, -1),
            hi=-lower,
        )
        # h <= U a
        model.add_linear(f"relu_inactive[{i}][{k}]", {h: mpq(1), a: -upper}, hi=0)
        return h, a


def add_parameters(model: MipModel, problem: TrainingProblem):
    """Add w'[k][j], b'[k] in [-R^2, R^2] and c in [-R, R]; return their indices."""
    hidden_box, output_box = problem.hidden_box, problem.output_box
    weights = [
        [model.add_variable(f"w[{k}][{j}]", -hidden_box, hidden_box) for j in range(problem.instance.d)]
        for k in range(problem.width)
    ]
    biases = [model.add_variable(f"b[{k}]", -hidden_box, hidden_box) for k in range(problem.width)]
    output_bias = model.add_variable("c", -output_box, output_box)
    return weights, biases, output_bias


def _add_loss(model: MipModel, problem: TrainingProblem, outputs: list[dict]) -> list[int] | None:
    """Add the loss of the outputs f_i as the objective; return the 0-1 loss's binaries m_i, else None."""
    loss = problem.architecture.loss
    targets = problem.instance.y

    if loss == "hinge":
        for i, (output, label) in enumerate(zip(outputs, targets)):
            error = model.add_variable(f"e[{i}]", 0, None)
            model.objective.linear[error] = mpq(1)
            # e_i + y_i f_i >= 1
            model.add_linear(f"hinge[{i}]", add_terms({error: mpq(1)}, output, label), lo=1)
        return None
    if loss == "zero_one":
        return _add_zero_one(model, problem, outputs)

    if loss == "l2":
        for output, target in zip(outputs, targets):
            model.objective.squares.append((output, -target))
        return

    if loss == "linf":
        worst = model.add_variable("t", 0, None)
        model.objective.linear[worst] = mpq(1)
    for i, (output, target) in enumerate(zip(outputs, targets)):
        error = worst if loss == "linf" else model.add_variable(f"e[{i}]", 0, None)
        if loss == "l1":
            model.objective.linear[error] = mpq(1)
        # error >= f_i - y_i and error >= y_i - f_i
        model.add_linear(f"error_above[{i}]", add_terms({error: mpq(1)}, output, -1), lo=-target)
        model.add_linear(f"error_below[{i}]", add_terms({error: mpq(1)}, output, 1), lo=target)
    return None


def _add_zero_one(model: MipModel, problem: TrainingProblem, outputs: list[dict]) -> list[int]:
    """Add binaries m_i with y_i f_i + M_i m_i >= mu and minimise their sum."""
    margin = zero_one_margin(problem.architecture.box)
    misclassified = []
    # The interval bounds hold on the whole box, so M_i is valid whatever bounds the encoding used.
    for i, (output, label, (_, upper)) in enumerate(zip(outputs, problem.instance.y, problem.interval_bounds())):
        big_m = margin + problem.width * upper + problem.output_box
        m = model.add_variable(f"m[{i}]", 0, 1, "binary")
        model.objective.linear[m] = mpq(1)
        model.add_linear(f"margin[{i}]", add_terms({m: big_m}, output, label), lo=margin)
        misclassified.append(m)
    return misclassified
