"""Indicator encoding of ReLU training."""

from __future__ import annotations

from gmpy2 import mpq

from ermsolve.encodings.bigm import BigMEncoding
from ermsolve.model import MipModel, add_terms


class IndicatorEncoding(BigMEncoding):
    r"""ReLU through indicator constraints instead of big-M rows.

    .. math::

        h_{ik} \ge z_{ik},\quad h_{ik} \ge 0,\quad
        a_{ik} = 1 \Rightarrow h_{ik} \le z_{ik},\quad
        a_{ik} = 0 \Rightarrow h_{ik} \le 0.

    The implications carry no big-M, so the formulation is valid for any
    bounds; the solver still receives h <= U_i as a variable bound because SCIP
    separates indicator constraints better when the slack is bounded. Everything
    else (normalised parameters, output signs, loss) is as in `BigMEncoding`.
    Needs a backend with indicator constraints (SCIP, CP-SAT on integer models).
    """

    name = "indicator"

    def add_relu(self, model: MipModel, i: int, k: int, pre_activation: dict, lower: mpq, upper: mpq):
        h = model.add_variable(f"h[{i}][{k}]", 0, upper)
        a = model.add_variable(f"a[{i}][{k}]", 0, 1, "binary")
        # h >= z always; h <= z when active, h <= 0 when inactive.
        model.add_linear(f"relu_lower[{i}][{k}]", add_terms({h: mpq(1)}, pre_activation, -1), lo=0)
        model.add_indicator(
            f"relu_active[{i}][{k}]", a, 1, add_terms({h: mpq(1)}, pre_activation, -1), hi=0
        )
        model.add_indicator(f"relu_inactive[{i}][{k}]", a, 0, {h: mpq(1)}, hi=0)
        return h, a
