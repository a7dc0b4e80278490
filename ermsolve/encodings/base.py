"""What every encoding shares: the training problem, interval bounds and the model map.

Normalisation used by all one-hidden-layer encodings. The network

    f(x) = sum_k v_k relu(w_k . x + b_k) + c,   every parameter in [-R, R],

is rewritten by positive homogeneity, v relu(z) = sign(v) relu(|v| z) for any
real v, as

    f(x) = sum_k s_k relu(w'_k . x + b'_k) + c,   s_k in {-1, +1},
    w'_k = |v_k| w_k,  b'_k = |v_k| b_k,  so |w'|, |b'| <= R^2,  |c| <= R.

Nothing is lost: every (v, w, b) in the box maps to some (s, w', b') with
|w'|, |b'| <= R^2, and back, any (s, w', b') in that box is (v, w, b) =
(s R, w' / R, b' / R), again in the box. The two sets of functions are equal,
so the optimum is the same. A unit with v_k = 0 becomes w'_k = b'_k = 0 with
either sign.

The normalised form is positively homogeneous in (w', b', c), but the box
only allows scaling down. So the hinge loss, whose margin is fixed at 1,
depends on R, while the 0-1 loss does not; `ermsolve.classification` gives
the argument and how the 0-1 encoding handles the strict inequality y f > 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gmpy2 import mpq

from ermsolve.architecture import Architecture
from ermsolve.classification import check_labels, is_classification
from ermsolve.errors import UsageError
from ermsolve.instance import Instance
from ermsolve.model import MipModel

SYMMETRY_MODES = ("solver", "bias-order", "none")


@dataclass(frozen=True)
class TrainingProblem:
    """An instance together with the architecture it is trained under."""

    instance: Instance
    architecture: Architecture

    def __post_init__(self):
        self.architecture.check_input_dim(self.instance.d, f"instance {self.instance.name!r}")
        if self.architecture.outputs != self.instance.outputs:
            raise UsageError(
                f"the model has {self.architecture.outputs} outputs but instance "
                f"{self.instance.name!r} has {self.instance.outputs} target columns"
            )
        loss = self.architecture.loss
        if is_classification(loss):
            check_labels(self.instance.Y, loss, f"instance {self.instance.name!r}")
            # The MIP encodings and the exact recovery of these losses exist for the shallow path only.
            self.require_shallow(f"the {loss} loss")

    @property
    def is_shallow(self) -> bool:
        """One hidden layer, one output, box domain: the case the exact LP/QP recovery covers."""
        architecture = self.architecture
        return architecture.depth == 1 and architecture.outputs == 1 and architecture.domain == "box"

    def require_shallow(self, what: str) -> None:
        if not self.is_shallow:
            raise UsageError(
                f"{what} handles one hidden layer, one output and the box domain; the model has "
                f"hidden layers {list(self.architecture.hidden)}, {self.architecture.outputs} outputs "
                f"and domain {self.architecture.domain!r}"
            )

    @property
    def width(self) -> int:
        return self.architecture.width

    @property
    def hidden_box(self) -> mpq:
        """Bound on |w'| and |b'| after the output weights are normalised to +-1."""
        return self.architecture.box ** 2

    @property
    def output_box(self) -> mpq:
        return self.architecture.box

    def interval_bounds(self) -> list[tuple[mpq, mpq]]:
        """Bounds L_i <= w' . x_i + b' <= U_i that hold for every unit on point i.

        Interval arithmetic over the box: |w' . x_i + b'| <= R^2 (|x_i|_1 + 1).
        """
        bounds = []
        for x in self.instance.X:
            radius = self.hidden_box * (sum((abs(v) for v in x), mpq(0)) + 1)
            bounds.append((-radius, radius))
        return bounds


@dataclass
class EncodingOptions:
    symmetry: str = "solver"
    # time.monotonic() value by which the whole solve must end. Encodings that do optional
    # work while building (bound tightening) stop it early, so the MIP keeps time to run.
    deadline: float | None = None

    def __post_init__(self):
        if self.symmetry not in SYMMETRY_MODES:
            raise UsageError(
                f"unknown symmetry mode {self.symmetry!r}; valid modes: {', '.join(SYMMETRY_MODES)}"
            )


@dataclass
class EncodedModel:
    """A built model and the map from its variables back to the network.

    `activation[i][k]` is the index of the activation binary of unit k on point
    i, a tuple ("sos1", h, s) for a complementarity pair, or None when the
    bounds fix the unit's sign on that point; `fixed_activation[i][k]` is then
    0 or 1.
    """

    model: MipModel
    signs: tuple[int, ...] | None
    weights: list[list[int]]
    biases: list[int]
    output_bias: int
    activation: list[list]
    fixed_activation: list[list[int | None]] = field(default_factory=list)
    # Binaries of the output signs (1 = +1) when the encoding chooses them instead of fixing them.
    sign_variables: list[int] | None = None
    # Binaries m_i of the 0-1 loss (1 = point i may be misclassified); None for other losses.
    misclassification: list[int] | None = None

    def misclassified_points(self, values: list[float]) -> tuple[int, ...]:
        """Return the points whose 0-1 binary m_i is set in a solution."""
        if self.misclassification is None:
            return ()
        return tuple(i for i, m in enumerate(self.misclassification) if values[m] > 0.5)

    def output_signs(self, values: list[float]) -> tuple[int, ...]:
        if self.sign_variables is None:
            return self.signs
        return tuple(1 if values[v] > 0.5 else -1 for v in self.sign_variables)

    def activation_pattern(self, values: list[float]) -> list[list[int]]:
        """Read the activation pattern (n rows of K entries 0/1) from a solution."""
        pattern = []
        for i, row in enumerate(self.activation):
            entries = []
            for k, var in enumerate(row):
                fixed = self.fixed_activation[i][k]
                if fixed is not None:
                    entries.append(fixed)
                elif isinstance(var, tuple):
                    _, h, slack = var
                    entries.append(1 if values[slack] <= values[h] else 0)
                else:
                    entries.append(int(round(values[var])))
            pattern.append(entries)
        return pattern


def sign_patterns(width: int) -> list[tuple[int, ...]]:
    """Output-sign patterns to solve: one per count of positive units, positives first.

    Units with equal output sign are interchangeable, so only the count of
    positive units matters.
    """
    return [tuple([1] * positives + [-1] * (width - positives)) for positives in range(width, -1, -1)]
