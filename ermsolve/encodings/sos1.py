"""SOS1 (complementarity) encoding of ReLU training."""

from __future__ import annotations

from gmpy2 import mpq

from ermsolve.encodings.bigm import BigMEncoding
from ermsolve.model import MipModel, add_terms


class Sos1Encoding(BigMEncoding):
    r"""ReLU as a complementarity pair: the activation and the slack are an SOS1 set.

    .. math::

        h_{ik} - s_{ik} = z_{ik},\quad 0 \le h_{ik} \le \max(U_i, 0),\quad
        0 \le s_{ik} \le \max(-L_i, 0),\quad \{h_{ik}, s_{ik}\}\ \text{SOS1}.

    At most one of h and s is non-zero, so h = max(z, 0) and s = max(-z, 0). No
    binary is created: the solver branches on the SOS1 sets. The activation
    pattern is read back as active where s <= h (both are 0 exactly when z = 0,
    where either reading is correct). Valid for any finite bounds; SCIP also
    accepts unbounded SOS1 variables, but finite bounds help its propagation.
    """

    name = "sos1"

    def add_relu(self, model: MipModel, i: int, k: int, pre_activation: dict, lower: mpq, upper: mpq):
        h = model.add_variable(f"h[{i}][{k}]", 0, upper)
        slack = model.add_variable(f"s[{i}][{k}]", 0, -lower)
        # h - s = z
        model.add_linear(
            f"relu_split[{i}][{k}]", add_terms({h: mpq(1), slack: mpq(-1)}, pre_activation, -1), lo=0, hi=0
        )
        model.add_sos1(f"relu_complementarity[{i}][{k}]", [h, slack])
        return h, ("sos1", h, slack)
