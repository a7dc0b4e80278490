"""Big-M with the output signs as binaries: one MIP for all sign patterns."""

from __future__ import annotations

from gmpy2 import mpq

from ermsolve.encodings.base import EncodedModel, EncodingOptions, TrainingProblem
from ermsolve.encodings.bigm import BigMEncoding, _add_loss, add_parameters
from ermsolve.errors import UsageError
from ermsolve.model import MipModel, add_terms


class SignBinariesEncoding(BigMEncoding):
    r"""Big-M where each unit's output sign is a binary sigma_k, s_k = 2 sigma_k - 1.

    The activation h_ik is encoded as in `BigMEncoding`. The signed term
    s_k h_ik = 2 p_ik - h_ik uses the product p_ik = sigma_k h_ik, which is
    linear for a binary sigma_k and 0 <= h_ik <= U_i:

    .. math::

        0 \le p_{ik} \le h_{ik},\quad p_{ik} \le U_i \sigma_k,\quad
        p_{ik} \ge h_{ik} - U_i (1 - \sigma_k),\qquad
        f_i = c + \sum_k (2 p_{ik} - h_{ik}),\qquad
        \sigma_1 \ge \sigma_2 \ge \dots \ge \sigma_K.

    sigma_k = 1 forces p = h (s = +1) and sigma_k = 0 forces p = 0 (s = -1),
    so the product is exact, not a relaxation. The ordering puts positive
    units first. It is valid because permuting units leaves the network
    unchanged, and every network has a permutation with its positive units
    first. With `EncodingOptions(symmetry="bias-order")` the biases of
    neighbouring units with equal sign are also ordered. The row
    b_k - b_{k+1} + 2 R^2 (sigma_k - sigma_{k+1}) >= 0 applies only when the
    signs are equal, and sorting units by (sign, bias) satisfies both orders.

    `train` solves this model once, instead of once per sign pattern, and
    reads the signs back from sigma (`EncodedModel.sign_variables`). It needs
    the same finite bounds as `BigMEncoding`, because U_i is the product's big-M.
    Big-M rows after Tjeng, Xiao and Tedrake (ICLR 2019). The product rows are
    the exact linearisation of a binary times a bounded variable (McCormick
    envelopes, which are exact when one factor is binary).
    """

    name = "bigm-signs"
    sign_binaries = True
    # Subclasses that measure the cost of symmetry switch the sign ordering off.
    order_signs = True

    def build(
        self,
        problem: TrainingProblem,
        signs: tuple[int, ...] | None = None,
        options: EncodingOptions | None = None,
        bounds: list[list[tuple[mpq, mpq]]] | None = None,
    ) -> EncodedModel:
        """Build the one MIP over all output signs; `signs` must be None because the MIP chooses them."""
        problem.require_shallow(f"the {self.name} encoding")
        if signs is not None:
            raise UsageError(
                f"the {self.name} encoding chooses the output signs itself; build it without signs "
                f"(got {''.join('+' if s > 0 else '-' for s in signs)})"
            )
        options = options or EncodingOptions()
        instance = problem.instance
        width, d = problem.width, instance.d
        hidden_box = problem.hidden_box
        if bounds is None:
            bounds = [[interval] * width for interval in problem.interval_bounds()]
        model = MipModel(f"{self.name}-{instance.name}")
        model.objective_floor = mpq(0)

        # Variables: the parameters in the normalised box and one sign binary per unit.
        weights, biases, output_bias = add_parameters(model, problem)
        sign_variables = [model.add_variable(f"sigma[{k}]", 0, 1, "binary") for k in range(width)]

        # Constraints: ReLU and signed product per point and unit.
        activation, fixed, outputs = [], [], []
        for i, x in enumerate(instance.X):
            output = {output_bias: mpq(1)}
            activation_row, fixed_row = [None] * width, [None] * width
            for k in range(width):
                lower, upper = bounds[i][k]
                pre_activation = {weights[k][j]: x[j] for j in range(d)}
                pre_activation[biases[k]] = mpq(1)
                if upper <= 0:
                    # Inactive on point i by the bounds: no term in the output.
                    fixed_row[k] = 0
                    model.add_linear(f"relu_fixed_inactive[{i}][{k}]", pre_activation, hi=0)
                    continue
                if lower >= 0:
                    # Active by the bounds: h = z exactly, which also enforces z >= 0 through h >= 0.
                    fixed_row[k] = 1
                    h = model.add_variable(f"h[{i}][{k}]", 0, upper)
                    model.add_linear(f"relu_fixed_active[{i}][{k}]", add_terms({h: mpq(1)}, pre_activation, -1),
                                     lo=0, hi=0)
                else:
                    h, activation_row[k] = self.add_relu(model, i, k, pre_activation, lower, upper)
                product = self._add_signed_product(model, i, k, h, sign_variables[k], upper)
                # s_k h = 2 p - h
                add_terms(output, {product: mpq(2), h: mpq(-1)})
            activation.append(activation_row)
            fixed.append(fixed_row)
            outputs.append(output)

        # Constraints: positive units first, and optionally biases ordered within equal signs.
        if self.order_signs:
            for k in range(width - 1):
                model.add_linear(
                    f"sign_order[{k}]", {sign_variables[k]: mpq(1), sign_variables[k + 1]: mpq(-1)}, lo=0
                )
                if options.symmetry == "bias-order":
                    model.add_linear(
                        f"bias_order[{k}]",
                        {
                            biases[k]: mpq(1),
                            biases[k + 1]: mpq(-1),
                            sign_variables[k]: 2 * hidden_box,
                            sign_variables[k + 1]: -2 * hidden_box,
                        },
                        lo=0,
                    )

        # Objective: the loss of the outputs.
        misclassification = _add_loss(model, problem, outputs)
        return EncodedModel(model, None, weights, biases, output_bias, activation, fixed,
                            misclassification=misclassification,
                            sign_variables=sign_variables)

    def _add_signed_product(self, model, i: int, k: int, h: int, sign: int, upper: mpq) -> int:
        """Add p = sigma h for 0 <= h <= upper and binary sigma; return p."""
        product = model.add_variable(f"p[{i}][{k}]", 0, upper)
        # p <= h
        model.add_linear(f"product_below_h[{i}][{k}]", {product: mpq(1), h: mpq(-1)}, hi=0)
        # p <= U sigma
        model.add_linear(f"product_sign_off[{i}][{k}]", {product: mpq(1), sign: -upper}, hi=0)
        # p >= h - U (1 - sigma)
        model.add_linear(f"product_sign_on[{i}][{k}]", {product: mpq(1), h: mpq(-1), sign: -upper}, lo=-upper)
        return product
