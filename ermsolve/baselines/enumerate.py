"""Exact training by enumeration of activation patterns, with no MIP solver.

This is the approach of Arora, Basu, Mianjy and Mukherjee ("Understanding Deep
Neural Networks with Rectified Linear Units", ICLR 2018), whose algorithm
trains one hidden layer to global optimality in time polynomial in the number
of points n for fixed input dimension d and width K.

Method. In the normalised form of `ermsolve.encodings.base`,
f(x) = sum_k s_k relu(w'_k . x + b'_k) + c, a network is determined on the data
by its output signs s, the activation pattern of each unit on the n points,
and the parameters. With signs and pattern fixed, the best parameters solve
the fixed-pattern LP or QP of `ermsolve.rationalize`, which is solved exactly
over the rationals. The global optimum is the minimum over every sign pattern
and every combination of per-unit activation patterns that some network can
have. This module enumerates those combinations and keeps the best exact
optimum. For the 0-1 loss, each combination is paired with every set S of
allowed errors, smallest first, and the exact maximum-margin LP decides
whether the other points can be separated strictly. This costs up to 2^n
LPs per combination. It shares only the exact fixed-pattern solve and the certificate with
the MIP path.

Which unit patterns suffice. Each point x_i gives a hyperplane
H_i = {(w, b) : w . x_i + b = 0} in the parameter space Q^(d+1). A chamber of
this arrangement is a connected component of the complement of all H_i. On a
chamber every pre-activation is nonzero, so the chamber has one strict
pattern {i : w . x_i + b > 0}. Every (w, b), generic or not, lies in the
closure of some chamber: a small generic perturbation keeps each nonzero
pre-activation's sign and makes the zero ones nonzero. The fixed-pattern
program of that chamber's pattern therefore contains (w, b) as a feasible
point, because a = 1 allows pre-activation >= 0 and a = 0 allows <= 0, and a
pre-activation of 0 satisfies both. So the chamber patterns are enough for
the exact optimum. Each of them is also feasible in the box, because scaling
an open cone keeps it open and nonempty. So every fixed-pattern program
solved here is feasible.

How the chambers are enumerated exactly (`unit_patterns`). Identical points
always share a sign, so the work is on the m distinct points. Patterns depend
only on the affine hull of the points, so the points are first written in
coordinates of their affine hull, of dimension k <= d.

* k = 0 (one distinct point): the all-off and all-on patterns.
* k = 1: the points are sorted along the line. A generic affine function
  is positive on a prefix or on a suffix, which gives 2m patterns.
* k >= 2: the closure of a chamber is a pointed polyhedral cone of dimension
  k + 1, because the vectors (x_i, 1) span Q^(k+1). So it has an extreme ray r.
  An extreme ray lies on k linearly independent hyperplanes, so r is the
  normal (w, b) of the affine hyperplane through k affinely independent
  points. Near r only the hyperplanes through r cut the space, so the
  chambers next to r are exactly: the strict signs of r on the points off
  that hyperplane, combined with any chamber pattern of the points Z on it.
  Z has affine dimension at most k - 1, so the recursion ends. Every
  combination produced this way is a real chamber, and every chamber is
  produced from one of its extreme rays, so the set is exact.

All of this is in exact rational arithmetic (`gmpy2.mpq`). For m points in
general position the count is Cover's 2 * sum_{j=0..k} C(m - 1, j).

Combinations. Units with equal output sign are interchangeable, so one sign
pattern per count of positive units is solved (`sign_patterns`), and within
each sign group only the multiset of unit patterns matters. A unit with the
all-off pattern contributes nothing, with either sign, so the all-off
pattern is only given to positive units. The combination with it on a
negative unit has the same optimum as the one with that unit made positive.
"""

from __future__ import annotations

import logging
import math
import time
from itertools import combinations, combinations_with_replacement

from gmpy2 import mpq

from ermsolve import __version__
from ermsolve.backends.base import CUTOFF, OPTIMAL, TIME_LIMIT, relative_gap
from ermsolve.encodings.base import TrainingProblem, sign_patterns
from ermsolve.errors import RationalizationError, UsageError
from ermsolve.exact_linalg import row_reduce
from ermsolve.rationalize import PatternInfeasibleError, rationalize, rationalize_zero_one_search
from ermsolve.train import SignRun, TrainResult

log = logging.getLogger(__name__)

# Default cap on the number of fixed-pattern programs. One exact solve took
# 2-8 ms on shipped instances of up to 30 points (2 shared cores), so by that
# estimate the cap keeps a run to a few minutes.
DEFAULT_LIMIT = 20_000

# Beyond this many k-subsets of distinct points the geometric enumeration of
# unit patterns stops once the combination count passes the limit, because
# the exact count would cost more than it is worth. Below it the count is
# always exact, so refusals name the exact count.
_SUBSET_SCAN_LIMIT = 200_000


class _TooManyPatterns(Exception):
    """Raised inside the chamber scan once the combination count exceeds the limit."""

    def __init__(self, lower_bound: int):
        super().__init__(lower_bound)
        self.lower_bound = lower_bound


def unit_patterns(X) -> list[tuple[int, ...]]:
    """Enumerate the activation patterns that one ReLU unit can have on the points `X`.

    Returns the strict patterns {i : w . x_i + b > 0} of all generic affine
    functions, as 0/1 tuples of length n in sorted order. The module docstring
    explains why this set is exactly the set of arrangement chambers and why
    it suffices for the exact optimum.
    """
    return _unit_patterns(X, stop=None)


def count_patterns(problem: TrainingProblem, *, limit: int | None = DEFAULT_LIMIT) -> int:
    """Count the fixed-pattern programs that `solve_by_enumeration` solves, without solving any.

    The count is the number of (sign pattern, multiset of unit patterns)
    combinations after the symmetry reductions of the module docstring. It
    enumerates the unit patterns exactly, which costs about C(m, k) small exact
    linear solves for m distinct points of affine dimension k. When C(m, k)
    exceeds 200000 and the count exceeds `limit`, the scan stops early and
    returns a number that is above `limit` but only a lower bound on the
    count. `limit=None` always returns the exact count, however long it takes.
    """
    problem.require_shallow("enumeration")
    stop = None if limit is None else (problem.width, limit)
    try:
        patterns = _unit_patterns(problem.instance.X, stop)
    except _TooManyPatterns as too_many:
        return too_many.lower_bound
    return _combination_count(len(patterns), problem.width)


def solve_by_enumeration(problem: TrainingProblem, *, max_patterns: int = DEFAULT_LIMIT,
                         time_limit: float | None = None) -> TrainResult:
    """Train `problem` to exact global optimality by solving every fixed-pattern program.

    Raises `UsageError` before solving anything when more than `max_patterns`
    programs would be needed. With `time_limit` (seconds) the run stops after
    the program that crosses it and reports status "time_limit" with the best
    network found, without an optimality claim.
    """
    problem.require_shallow("enumeration")
    _check_options(max_patterns, time_limit)
    started = time.monotonic()
    width, n = problem.width, problem.instance.n

    try:
        patterns = _unit_patterns(problem.instance.X, stop=(width, max_patterns))
    except _TooManyPatterns as too_many:
        raise UsageError(_limit_message(too_many.lower_bound, max_patterns, exact=False)) from None
    total = _combination_count(len(patterns), width)
    if total > max_patterns:
        raise UsageError(_limit_message(total, max_patterns, exact=True))
    log.info("enumerating %d fixed-pattern programs: %d unit patterns on %d points, width %d",
             total, len(patterns), n, width)

    search = _Search(problem, patterns, started, time_limit)
    search.run()
    solve_time = time.monotonic() - started

    log.info("solved %d of %d fixed-pattern programs in %.2f s", search.solved, total, solve_time)
    return _result(problem, search, total, len(patterns), solve_time, time_limit)


def _check_options(max_patterns, time_limit) -> None:
    if isinstance(max_patterns, bool) or not isinstance(max_patterns, int) or max_patterns < 1:
        raise UsageError(f"max_patterns must be a positive integer, got {max_patterns!r}")
    if time_limit is not None and (
        isinstance(time_limit, bool)
        or not isinstance(time_limit, (int, float))
        or not math.isfinite(time_limit)
        or time_limit <= 0
    ):
        raise UsageError(f"time_limit must be a positive number of seconds, got {time_limit!r}")


def _limit_message(count: int, limit: int, *, exact: bool) -> str:
    amount = f"{count}" if exact else f"at least {count}"
    return (
        f"enumeration needs {amount} fixed-pattern programs, more than the limit of {limit}; "
        f"raise the limit with --max-patterns {count if exact else 'N'} (max_patterns in Python) "
        "or use the MIP solver"
    )


class _Search:
    """The loop over all combinations, with the incumbent and per-sign-pattern records.

    NOTE: no combination is skipped by a bound, only by a zero incumbent, so
    the run time grows with the full count. A sound skip would need an exact
    lower bound per program, for example from rounded float duals.
    """

    def __init__(self, problem, patterns, started, time_limit):
        self.problem = problem
        self.patterns = patterns
        self.started = started
        self.time_limit = time_limit
        self.best = None
        self.solved = 0
        self.failures: list[str] = []
        self.runs: list[SignRun] = []
        self.stopped_by_time = False
        self.rationalize_time = 0.0

    def run(self) -> None:
        width = self.problem.width
        for signs in sign_patterns(width):
            positives = signs.count(1)
            run_started = time.monotonic()
            run_best, run_solved, status = None, 0, OPTIMAL

            for units in self._unit_combinations(positives, width - positives):
                reason = self._stop_reason()
                if reason is not None:
                    status = reason
                    break
                solution = self._solve(signs, units)
                run_solved += 1
                if solution is not None and (run_best is None or solution.loss < run_best):
                    run_best = solution.loss

            objective = None if run_best is None else float(run_best)
            dual_bound = {OPTIMAL: objective, CUTOFF: 0.0}.get(status)
            self.runs.append(SignRun(signs, status, objective, dual_bound, run_solved,
                                     time.monotonic() - run_started))

    def _unit_combinations(self, positives: int, negatives: int):
        """Yield unit-pattern indices, positive units first; all-off only on positive units."""
        everything = range(len(self.patterns))
        nonempty = [index for index, pattern in enumerate(self.patterns) if any(pattern)]
        for positive_units in combinations_with_replacement(everything, positives):
            for negative_units in combinations_with_replacement(nonempty, negatives):
                yield positive_units + negative_units

    def _stop_reason(self) -> str | None:
        """Return why the search must stop before the next program, or None to go on."""
        if self.best is not None and self.best.loss == 0:
            # Every loss is >= 0, so nothing can beat a zero incumbent.
            return CUTOFF
        if self.time_limit is not None and time.monotonic() - self.started >= self.time_limit:
            self.stopped_by_time = True
            return TIME_LIMIT
        return None

    def _solve(self, signs, units):
        pattern = [[self.patterns[unit][i] for unit in units] for i in range(self.problem.instance.n)]
        solve_started = time.monotonic()
        try:
            if self.problem.architecture.loss == "zero_one":
                below = None if self.best is None else int(self.best.loss)
                try:
                    solution = rationalize_zero_one_search(self.problem, signs, pattern, below)
                except PatternInfeasibleError:
                    # No set of fewer errors than the incumbent's works with this pattern.
                    return None
            else:
                solution = rationalize(self.problem, signs, pattern)
        except RationalizationError as error:
            # Every chamber combination is feasible, so this is a failure of the
            # exact solve, and the optimality claim must be dropped.
            log.warning("fixed-pattern program for signs %s, unit patterns %s failed: %s",
                        signs, [self.patterns[unit] for unit in units], error)
            self.failures.append(str(error))
            return None
        finally:
            self.rationalize_time += time.monotonic() - solve_started
        self.solved += 1

        if not solution.certified:
            self.failures.append(f"the fixed-pattern optimum by {solution.method} is not certified")
        if self.best is None or solution.loss < self.best.loss:
            self.best = solution
            log.debug("new best exact loss %s after %d programs", solution.loss, self.solved)
        return solution


def _result(problem, search, total, unit_count, solve_time, time_limit) -> TrainResult:
    best = search.best
    loss = None if best is None else best.loss
    program = "QP" if problem.architecture.loss == "l2" else "LP"
    complete = not search.stopped_by_time and not search.failures

    if search.failures:
        status = "unproven" if best is not None else "error"
        basis = (f"{len(search.failures)} of {total} fixed-pattern {program}s failed to solve exactly; "
                 "optimality is not proven")
    elif loss == 0:
        status = "optimal"
        basis = (f"exact: the network found has loss 0, the smallest possible loss "
                 f"(after {search.solved} of {total} fixed-pattern {program}s, each solved exactly)")
    elif complete:
        status = "optimal"
        basis = (f"exact: enumeration of all {total} realisable activation-pattern combinations "
                 f"({unit_count} patterns per unit), each fixed-pattern {program} solved exactly")
    else:
        status = "time_limit"
        basis = (f"time limit reached after {search.solved} of {total} fixed-pattern {program}s; "
                 "best exact loss so far, optimality not proven")

    objective = None if loss is None else float(loss)
    # A loss is never negative, so 0 is a valid dual bound when the search is incomplete.
    dual_bound = objective
    if status != "optimal" and objective is not None:
        dual_bound = 0.0
    return TrainResult(
        status=status,
        basis=basis,
        solution=best,
        solver="enumerate",
        solver_version=f"ermsolve {__version__} enumeration",
        encoding="none",
        solver_objective=objective,
        dual_bound=dual_bound,
        gap=relative_gap(objective, dual_bound),
        nodes=search.solved,
        time_s=solve_time,
        solve_time_s=solve_time,
        rationalize_time_s=search.rationalize_time,
        runs=search.runs,
        warnings=[f"exact solve failed: {failure}" for failure in search.failures[:5]],
        time_limit=time_limit,
        threads=1,
    )


def _combination_count(pattern_count: int, width: int) -> int:
    """Number of (sign pattern, multisets of unit patterns) combinations that are solved.

    For p positive and q = width - p negative units: multisets of size p from
    all P patterns, times multisets of size q from the P - 1 patterns other
    than all-off. A multiset of size s from N items is C(N + s - 1, s).
    """
    total = 0
    for positives in range(width, -1, -1):
        negatives = width - positives
        total += math.comb(pattern_count + positives - 1, positives) * math.comb(
            pattern_count - 1 + negatives - 1, negatives
        )
    return total


def _unit_patterns(X, stop) -> list[tuple[int, ...]]:
    """Enumerate unit patterns.

    With `stop = (width, limit)` and a scan over more than `_SUBSET_SCAN_LIMIT`
    subsets, raise `_TooManyPatterns` once the combination count passes the limit.
    """
    # Identical points always share a sign on a chamber, so work on distinct points.
    distinct: dict[tuple, int] = {}
    owner = []
    for x in X:
        key = tuple(mpq(v) for v in x)
        owner.append(distinct.setdefault(key, len(distinct)))
    points = list(distinct)

    scan_stop = None
    if stop is not None:
        width, limit = stop
        dimension = len(_affine_coordinates(points)[0])
        if math.comb(len(points), dimension) > _SUBSET_SCAN_LIMIT:
            scan_stop = (width, limit)

    chambers = _chambers(points, tuple(range(len(points))), {}, scan_stop)

    patterns = {tuple(1 if owner[i] in chamber else 0 for i in range(len(owner))) for chamber in chambers}
    return sorted(patterns)


def _chambers(points, subset: tuple[int, ...], memo: dict, stop=None) -> frozenset:
    """Strict sign patterns (as sets of positive indices) of generic affine functions on `subset`."""
    if subset in memo:
        return memo[subset]
    coordinates = _affine_coordinates([points[i] for i in subset])
    dimension = len(coordinates[0])

    if dimension == 0:
        result = {frozenset(), frozenset(subset)}
    elif dimension == 1:
        order = [index for _, index in sorted(zip((c[0] for c in coordinates), subset))]
        result = set()
        for cut in range(len(order) + 1):
            result.add(frozenset(order[:cut]))
            result.add(frozenset(order[cut:]))
    else:
        result = _chambers_from_rays(points, subset, coordinates, dimension, memo, stop)

    memo[subset] = frozenset(result)
    return memo[subset]


def _chambers_from_rays(points, subset, coordinates, dimension, memo, stop) -> set:
    """Collect the chambers next to each extreme ray: hyperplanes through `dimension` points."""
    result = set()
    seen_hyperplanes = set()
    for chosen in combinations(range(len(subset)), dimension):
        rows = [(*coordinates[c], mpq(1)) for c in chosen]
        normal = _null_vector(rows, dimension + 1)
        if normal is None:
            continue  # the chosen points are affinely dependent and span no hyperplane

        values = [sum((a * b for a, b in zip((*point, mpq(1)), normal)), mpq(0)) for point in coordinates]
        on_hyperplane = tuple(subset[i] for i, v in enumerate(values) if v == 0)
        # The points on it determine the hyperplane, so each one is handled once.
        if on_hyperplane in seen_hyperplanes:
            continue
        seen_hyperplanes.add(on_hyperplane)

        positive = frozenset(subset[i] for i, v in enumerate(values) if v > 0)
        negative = frozenset(subset[i] for i, v in enumerate(values) if v < 0)
        for part in _chambers(points, on_hyperplane, memo):
            result.add(positive | part)  # the ray along +normal
            result.add(negative | part)  # the ray along -normal

        if stop is not None:
            width, limit = stop
            lower_bound = _combination_count(len(result), width)
            if lower_bound > limit:
                raise _TooManyPatterns(lower_bound)
    return result


def _affine_coordinates(points) -> list[tuple]:
    """Write the points in coordinates of their affine hull, of dimension = rank of the differences.

    Projection onto the pivot columns of the differences is injective on the
    affine hull, so generic affine functions on the projected points give the
    same patterns.
    """
    base = points[0]
    differences = [[a - b for a, b in zip(point, base)] for point in points[1:]]
    _, pivots = row_reduce(differences, len(base))
    return [tuple(point[j] for j in pivots) for point in points]


def _null_vector(rows, column_count: int):
    """Return a nonzero vector spanning the null space when it is one-dimensional, else None."""
    reduced, pivots = row_reduce(rows, column_count)
    if len(pivots) != column_count - 1:
        return None
    free = next(j for j in range(column_count) if j not in pivots)
    vector = [mpq(0)] * column_count
    vector[free] = mpq(1)
    for row, pivot in zip(reduced, pivots):
        vector[pivot] = -row[free]
    return vector
