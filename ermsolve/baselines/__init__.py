"""Solvers that share no branch and bound with the MIP path, for cross-checks and comparison.

`enumerate` is an exact oracle: it solves the fixed-pattern program of every
realisable activation pattern. `gd` is a gradient-descent heuristic with no
optimality claim. Both return `ermsolve.train.TrainResult`.
"""

from ermsolve.baselines.enumerate import DEFAULT_LIMIT, count_patterns, solve_by_enumeration, unit_patterns
from ermsolve.baselines.gd import train_gd

__all__ = ["DEFAULT_LIMIT", "count_patterns", "solve_by_enumeration", "train_gd", "unit_patterns"]
