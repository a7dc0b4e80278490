"""A solver-neutral mixed-integer model.

An encoding builds one `MipModel`; every backend translates it into its own
solver's objects. Coefficients and bounds are exact rationals (`mpq`), so a
backend that works in integers (CP-SAT) can scale them exactly and a float
backend converts them once, at translation time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from gmpy2 import mpq

Terms = dict[int, mpq]
"""A linear form as {variable index: coefficient}."""

VARIABLE_KINDS = ("continuous", "binary", "integer")


@dataclass
class Variable:
    index: int
    name: str
    lb: mpq | None
    ub: mpq | None
    kind: str = "continuous"


@dataclass
class LinearConstraint:
    """lo <= sum(terms) <= hi; a side that is None is absent."""

    name: str
    terms: Terms
    lo: mpq | None = None
    hi: mpq | None = None


@dataclass
class IndicatorConstraint:
    """If `binary` takes `active_value`, then lo <= sum(terms) <= hi must hold."""

    name: str
    binary: int
    active_value: int
    terms: Terms
    lo: mpq | None = None
    hi: mpq | None = None


@dataclass
class SOS1Constraint:
    """At most one of `variables` is non-zero."""

    name: str
    variables: list[int]


@dataclass
class Objective:
    """Minimise constant + sum(linear) + sum over `squares` of (form + offset)^2."""

    linear: Terms = field(default_factory=dict)
    constant: mpq = field(default_factory=lambda: mpq(0))
    squares: list[tuple[Terms, mpq]] = field(default_factory=list)

    @property
    def is_linear(self) -> bool:
        return not self.squares


@dataclass
class MipModel:
    """Variables, constraints and a minimisation objective, each with a descriptive name."""

    name: str
    variables: list[Variable] = field(default_factory=list)
    linear: list[LinearConstraint] = field(default_factory=list)
    indicators: list[IndicatorConstraint] = field(default_factory=list)
    sos1: list[SOS1Constraint] = field(default_factory=list)
    objective: Objective = field(default_factory=Objective)
    # Lower bound on the objective known from the problem (a loss is never negative).
    objective_floor: mpq | None = None

    def add_variable(self, name: str, lb=None, ub=None, kind: str = "continuous") -> int:
        if kind not in VARIABLE_KINDS:
            raise ValueError(f"unknown variable kind {kind!r}")
        index = len(self.variables)
        self.variables.append(
            Variable(index, name, None if lb is None else mpq(lb), None if ub is None else mpq(ub), kind)
        )
        return index

    def add_linear(self, name: str, terms: Terms, lo=None, hi=None) -> None:
        self.linear.append(
            LinearConstraint(name, _clean(terms), None if lo is None else mpq(lo), None if hi is None else mpq(hi))
        )

    def add_indicator(self, name: str, binary: int, active_value: int, terms: Terms, lo=None, hi=None) -> None:
        self.indicators.append(
            IndicatorConstraint(
                name, binary, active_value, _clean(terms),
                None if lo is None else mpq(lo), None if hi is None else mpq(hi),
            )
        )

    def add_sos1(self, name: str, variables: Iterable[int]) -> None:
        self.sos1.append(SOS1Constraint(name, list(variables)))

    def count(self) -> dict[str, int]:
        """Sizes by kind, for statistics and for tests that pin an encoding's size."""
        kinds = [v.kind for v in self.variables]
        return {
            "variables": len(kinds),
            "binary": kinds.count("binary"),
            "integer": kinds.count("integer"),
            "continuous": kinds.count("continuous"),
            "linear": len(self.linear),
            "indicator": len(self.indicators),
            "sos1": len(self.sos1),
            "squares": len(self.objective.squares),
        }


def add_terms(target: Terms, terms: Terms, scale=1) -> Terms:
    """Add scale * terms into target in place and return target."""
    scale = mpq(scale)
    for index, coefficient in terms.items():
        target[index] = target.get(index, mpq(0)) + scale * coefficient
    return target


def _clean(terms: Terms) -> Terms:
    return {index: mpq(c) for index, c in terms.items() if c != 0}
