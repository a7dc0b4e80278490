"""Solver backends by name; each translates a `MipModel` for one solver."""

from ermsolve.backends.base import SolveOptions, SolveResult
from ermsolve.backends.cpsat import CpSatBackend
from ermsolve.backends.mathopt import MathOptHighsBackend, MathOptScipBackend
from ermsolve.backends.scip import ScipBackend
from ermsolve.errors import UsageError

BACKENDS = {backend.name: backend for backend in (ScipBackend, CpSatBackend, MathOptHighsBackend, MathOptScipBackend)}


def get_backend(name: str):
    """Return a new backend object for `name`; an unknown name lists the valid ones."""
    try:
        return BACKENDS[name]()
    except KeyError:
        raise UsageError(f"unknown solver {name!r}; valid solvers: {', '.join(BACKENDS)}") from None


__all__ = ["BACKENDS", "SolveOptions", "SolveResult", "get_backend"]
