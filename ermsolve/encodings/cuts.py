"""Convexity cuts: implications between activation binaries of points in each other's convex hull."""

from __future__ import annotations

import logging

import numpy as np
from gmpy2 import mpq

from ermsolve.encodings.base import EncodedModel, EncodingOptions, TrainingProblem
from ermsolve.encodings.bigm import BigMEncoding
from ermsolve.encodings.obbt import ObbtBigMEncoding
from ermsolve.exact_linalg import row_reduce
from ermsolve.instance import Instance

log = logging.getLogger(__name__)

# A simplex from the float LP keeps the points whose weight exceeds this; the exact check decides.
SUPPORT_TOLERANCE = 1e-9


def hull_sets(instance: Instance) -> list[tuple[int, tuple[int, ...]]]:
    """Return pairs (i, J) with x_i in the convex hull of {x_j : j in J}, J minimal and i not in J.

    The sets, at most one per point, are:

    - duplicates: each repeated point gets J = {first point with the same x};
    - d = 1: each distinct value strictly between two others gets its nearest
      distinct neighbours on each side, J = {left, right};
    - d >= 2: each distinct point gets the support of an optimal vertex of the
      LP min sum_j lambda_j |x_j - x_i|_2 over convex weights lambda on the
      other distinct points with sum_j lambda_j x_j = x_i. A vertex has
      affinely independent support (at most d + 1 points, Caratheodory), so
      x_i has unique, positive barycentric weights on it and no proper subset
      contains it. The distance weights prefer nearby points. For d = 1 this
      LP picks the same nearest neighbours.

    Each set from the float LP is checked with exact arithmetic (unique
    barycentric weights, all positive) and dropped when the check fails, so
    every returned set is exact. Count: at most n sets of at most d + 1 points.
    """
    first_of = {}
    sets = []
    for i, x in enumerate(instance.X):
        if x in first_of:
            sets.append((i, (first_of[x],)))
        else:
            first_of[x] = i
    representatives = list(first_of.values())

    if instance.d == 1:
        ordered = sorted(representatives, key=lambda i: instance.X[i][0])
        for left, middle, right in zip(ordered, ordered[1:], ordered[2:]):
            sets.append((middle, (left, right)))
        return sets

    for i in representatives:
        others = [j for j in representatives if j != i]
        support = _nearby_simplex(instance, i, others)
        if support is None:
            continue
        weights = _barycentric_weights(instance, i, support)
        if weights is None:
            log.debug("hull set %s of point %d failed the exact check; dropped", support, i)
            continue
        sets.append((i, tuple(j for j, weight in zip(support, weights) if weight > 0)))
    return sets


def _nearby_simplex(instance: Instance, i: int, others: list[int]) -> list[int] | None:
    """Return the support of a vertex solution of the distance-weighted hull LP, or None when x_i is outside."""
    import highspy

    if len(others) < 2:
        return None
    X = instance.X_float
    target = X[i]
    points = X[others]
    distances = np.linalg.norm(points - target, axis=1)
    d = instance.d

    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("solver", "simplex")
    count = len(others)
    highs.addVars(count, np.zeros(count), np.ones(count))
    highs.changeColsCost(count, np.arange(count, dtype=np.int32), distances)
    # Rows: sum_j lambda_j x_j = x_i (d rows) and sum_j lambda_j = 1.
    matrix = np.vstack([points.T, np.ones(count)])
    sides = np.concatenate([target, [1.0]])
    starts = np.arange(0, (d + 1) * count, count, dtype=np.int32)
    indices = np.tile(np.arange(count, dtype=np.int32), d + 1)
    highs.addRows(d + 1, sides, sides, (d + 1) * count, starts, indices, matrix.ravel().astype(np.float64))
    highs.run()
    if highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    weights = np.asarray(highs.getSolution().col_value)
    support = [others[j] for j in np.nonzero(weights > SUPPORT_TOLERANCE)[0]]
    return support or None


def _barycentric_weights(instance: Instance, i: int, support: list[int]) -> list[mpq] | None:
    """Solve sum_j lambda_j x_j = x_i, sum_j lambda_j = 1 exactly on `support`.

    Returns the weights when the solution is unique and every weight is >= 0,
    otherwise None.
    """
    d, size = instance.d, len(support)
    # Augmented matrix of d + 1 equations in `size` unknowns.
    rows = [[instance.X[j][coordinate] for j in support] + [instance.X[i][coordinate]] for coordinate in range(d)]
    rows.append([mpq(1)] * size + [mpq(1)])

    reduced, pivots = row_reduce(rows, size + 1)
    if size in pivots:
        return None  # x_i is not in the affine hull of the support.
    if pivots != list(range(size)):
        return None  # The support is affinely dependent, so the weights are not unique.
    weights = [reduced[r][size] for r in range(size)]
    if any(weight < 0 for weight in weights):
        return None
    return weights


def add_convexity_cuts(problem: TrainingProblem, encoded: EncodedModel, sets=None) -> int:
    r"""Add, for each hull set (i, J) and unit k, the two implications between activation binaries.

    .. math::

        \sum_{j \in J} a_{jk} - |J| + 1 \le a_{ik} \quad\text{(all active implies active)},\qquad
        a_{ik} \le \sum_{j \in J} a_{jk} \quad\text{(all inactive implies inactive)}.

    A binary fixed by the bounds enters as its constant. A row whose premise
    can never hold is skipped, and so is the inactive row when every member of
    J is fixed: see `ConvexityCutsEncoding` for why these choices keep the
    optimum. Returns the number of rows added. Encodings without activation
    binaries (SOS1) get none.
    """
    if sets is None:
        sets = hull_sets(problem.instance)
    model = encoded.model
    added = 0
    for i, members in sets:
        for k in range(problem.width):
            own = encoded.activation[i][k]
            if own is None or isinstance(own, tuple):
                continue  # The unit is fixed on point i, or it is an SOS1 pair without a binary.

            open_members = [encoded.activation[j][k] for j in members if encoded.activation[j][k] is not None]
            fixed_values = [encoded.fixed_activation[j][k] for j in members if encoded.activation[j][k] is None]
            terms = {own: mpq(1)}
            for binary in open_members:
                terms[binary] = terms.get(binary, mpq(0)) - 1

            # All members active implies active: a_ik - sum_open a_jk >= 1 - |open|.
            if 0 not in fixed_values:
                model.add_linear(f"hull_active[{i}][{k}]", terms, lo=1 - len(open_members))
                added += 1
            # All members inactive implies inactive: a_ik - sum_open a_jk <= 0.
            if 1 not in fixed_values and open_members:
                model.add_linear(f"hull_inactive[{i}][{k}]", terms, hi=0)
                added += 1
    return added



def add_monotone_rows(problem: TrainingProblem, encoded: EncodedModel) -> int:
    r"""For d = 1, make each unit's activation pattern monotone along the sorted data.

    The neighbour cuts of `add_convexity_cuts` forbid an isolated flip such as
    0 1 0, but not 1 1 0 0 1 1. For d = 1, z = w' x + b' is monotone in x, so
    each unit gets a direction binary u_k (1: non-decreasing), tied to the sign
    of w'_k. Over its open points j_1, ..., j_m in sorted order:

    .. math::

        a_{j_{t}k} - a_{j_{t+1}k} \le 1 - u_k,\quad a_{j_{t+1}k} - a_{j_{t}k} \le u_k,\quad
        -R^2 (1 - u_k) \le w'_k \le R^2 u_k.

    Valid with the rule a = [z >= 0]: take u = 1 when w' > 0, u = 0 when
    w' < 0, and either when w' = 0, where every rule value is the same. Points
    where the unit is fixed are left out of its chain, and the rule values
    of the open points alone are still monotone. Returns the number of rows
    added; none when d != 1 or the encoding has no activation binaries.
    """
    instance = problem.instance
    if instance.d != 1:
        return 0
    model = encoded.model
    hidden_box = problem.hidden_box
    order = sorted(range(instance.n), key=lambda i: instance.X[i][0])
    added = 0
    for k in range(problem.width):
        chain = [encoded.activation[i][k] for i in order if encoded.activation[i][k] is not None]
        if len(chain) < 2 or isinstance(chain[0], tuple):
            continue

        # Variables: the direction of unit k.
        direction = model.add_variable(f"direction[{k}]", 0, 1, "binary")

        # Constraints: the direction follows the sign of w'_k, and the pattern follows the direction.
        weight = encoded.weights[k][0]
        model.add_linear(f"direction_up[{k}]", {weight: mpq(1), direction: -hidden_box}, lo=-hidden_box)
        model.add_linear(f"direction_down[{k}]", {weight: mpq(1), direction: -hidden_box}, hi=0)
        for t, (before, after) in enumerate(zip(chain, chain[1:])):
            # a_before - a_after <= 1 - u and a_after - a_before <= u.
            model.add_linear(f"monotone_up[{t}][{k}]", {before: mpq(1), after: mpq(-1), direction: mpq(1)}, hi=1)
            model.add_linear(f"monotone_down[{t}][{k}]", {after: mpq(1), before: mpq(-1), direction: mpq(-1)}, hi=0)
        added += 2 * len(chain)
    return added

class ConvexityCutsEncoding(BigMEncoding):
    r"""Big-M plus convexity cuts on the activation binaries, from the geometry of the data.

    The pre-activation z_k(x) = w'_k . x + b'_k is affine in x. If
    x_i = sum_{j in J} lambda_j x_j with lambda_j > 0 and sum lambda_j = 1, then
    z_k(x_i) = sum_j lambda_j z_k(x_j), so

    - z_k(x_j) >= 0 for all j in J implies z_k(x_i) >= 0, and
    - z_k(x_j) < 0 for all j in J implies z_k(x_i) < 0.

    `add_convexity_cuts` turns both into rows on the binaries for the hull sets
    of `hull_sets` (at most n sets, so at most 2 n K rows):

    .. math::

        \sum_{j \in J} a_{jk} - |J| + 1 \le a_{ik},\qquad a_{ik} \le \sum_{j \in J} a_{jk}.

    Why the optimum is kept with both families at once: at z = 0 the big-M
    rows allow a = 0 and a = 1, so a cut could in principle exclude the only
    assignment of some optimal network. It does not, because of the rule
    a_ik = 1 iff z_ik >= 0. For any network, the binaries set by this rule
    satisfy the big-M rows with h = relu(z). They satisfy the first family by
    the first implication. They satisfy the second family by the second, whose
    premise is then strict: inactive means z < 0, and a convex combination with
    positive weights of negative numbers is negative. So every network keeps a
    feasible assignment, and the MIP optimum is unchanged. The case of
    z_ik = 0 on a point in the hull of points with z < 0 cannot occur. Only
    the assignment read from the MIP may differ from the rule at ties, and the
    exact recovery accepts either reading there.

    Bounds can fix a unit's sign on a point (OBBT). A member fixed active
    (L >= 0, so z >= 0 and the rule sets 1) enters as the constant 1. A member
    fixed inactive only has z <= 0, so the rule may set 1 at z = 0. It drops
    the active row, whose premise then needs a member the rule may set to 0.
    It enters the inactive row as 0. That row still follows from the rule,
    because some open member with z < 0 and positive weight makes z_ik < 0. An
    inactive row with no open member is skipped.

    For d = 1 the sets are the nearest neighbours in sorted order. Those cuts
    alone forbid an isolated flip (0 1 0 or 1 0 1 on three neighbours) but
    still allow 1 1 0 0 1 1. So for d = 1 `add_monotone_rows` also adds one
    direction binary per unit and 2 (n + 1) rows at most, which make every
    unit's pattern monotone along the sorted data: the active points form a
    prefix or a suffix, as they do for an affine z. The same rule
    a = [z >= 0] satisfies those rows, so all three families hold at once.

    The argument is elementary (affinity of z and convexity). The encoding is
    valid with any bounds that `BigMEncoding` accepts.
    """

    name = "bigm-cuts"

    def build(
        self,
        problem: TrainingProblem,
        signs: tuple[int, ...],
        options: EncodingOptions | None = None,
        bounds: list[list[tuple[mpq, mpq]]] | None = None,
    ) -> EncodedModel:
        """Build the big-M model and add the convexity cuts."""
        encoded = super().build(problem, signs, options, bounds)
        added = add_convexity_cuts(problem, encoded)
        added += add_monotone_rows(problem, encoded)
        log.info("added %d convexity cuts", added)
        return encoded


class ObbtConvexityCutsEncoding(ObbtBigMEncoding):
    """`ObbtBigMEncoding` with the convexity cuts of `ConvexityCutsEncoding`, in the MIP and in the OBBT LPs.

    The cuts keep a feasible binary assignment for every network (the rule
    a = [z >= 0]), so they may also enter the LP relaxation that OBBT
    minimises over. The bounds stay valid by the argument in
    `ObbtBigMEncoding`.
    """

    name = "bigm-obbt-cuts"

    def __init__(self, rounds: int = 2):
        super().__init__(rounds)
        # Hull sets of the last instance seen; every LP round and every sign pattern reuses them.
        self._hull_cache: tuple[Instance, list] | None = None

    def strengthen(self, problem: TrainingProblem, encoded: EncodedModel) -> None:
        if self._hull_cache is None or self._hull_cache[0] is not problem.instance:
            self._hull_cache = (problem.instance, hull_sets(problem.instance))
        add_convexity_cuts(problem, encoded, self._hull_cache[1])
        add_monotone_rows(problem, encoded)
