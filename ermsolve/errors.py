"""Domain exceptions of ermsolve.

The CLI maps them to exit codes: `InputError` and `UsageError` to 2, the rest to 1.
"""


class ErmsolveError(Exception):
    """Base class of every error that ermsolve raises on purpose."""


class InputError(ErmsolveError):
    """An instance, architecture or certificate file is malformed or inconsistent."""


class UsageError(ErmsolveError):
    """Options conflict with each other or with the files they refer to."""


class SolverUnavailableError(ErmsolveError):
    """A solver package named by the user is not installed or cannot be imported."""


class NoSolutionError(ErmsolveError):
    """The solver finished without any feasible solution."""


class RationalizationError(ErmsolveError):
    """The exact recovery of parameters from a solver's incumbent failed."""


class VerificationError(ErmsolveError):
    """A certificate does not match its instance or its own stated values."""
