"""CP-SAT backend through OR-Tools, for models whose variables are all integer.

CP-SAT solves over 64-bit integers only, and the translation into them is
exact. Each linear constraint is multiplied by the least common multiple of
its coefficients' denominators, which makes every coefficient an integer. Its
bounds are then rounded inward, which loses no solution because the left-hand
side is an integer at every integer point. The objective is scaled the same
way without its constant and mapped back as integer / scale + constant, so
`CpSatResult.exact_objective` and `exact_dual_bound` are exact rationals.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import gmpy2
from gmpy2 import mpq

from ermsolve.backends.base import (
    CUTOFF,
    ERROR,
    INFEASIBLE,
    OPTIMAL,
    TIME_LIMIT,
    SolveOptions,
    SolveResult,
)
from ermsolve.errors import SolverUnavailableError, UsageError
from ermsolve.model import MipModel, Terms

log = logging.getLogger(__name__)

# CP-SAT's status names (`CpSolver.status_name`) mapped to ours.
# NOTE: CP-SAT catches Ctrl-C itself and then also ends with FEASIBLE or
# UNKNOWN, so an interrupted search is reported as TIME_LIMIT, not INTERRUPTED.
STATUS_MAP = {
    "OPTIMAL": OPTIMAL,
    "FEASIBLE": TIME_LIMIT,    # a limit stopped the search after it found a solution
    "UNKNOWN": TIME_LIMIT,     # a limit stopped the search before any solution or proof
    "INFEASIBLE": INFEASIBLE,  # CUTOFF instead when an objective limit was set
    "MODEL_INVALID": ERROR,
}

# CP-SAT takes 64-bit integers, so larger scaled coefficients and bounds are rejected before solving.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _import_cp_model():
    try:
        from ortools.sat.python import cp_model
    except ImportError as error:
        raise SolverUnavailableError(
            f"the CP-SAT backend needs OR-Tools, which failed to import ({error}); "
            "install it with `pip install 'ortools>=9.15'` or run `make install`"
        ) from None
    return cp_model


@dataclass
class CpSatResult(SolveResult):
    """A `SolveResult` with the objective and dual bound as exact rationals."""

    exact_objective: mpq | None = None
    exact_dual_bound: mpq | None = None


@dataclass
class _ScaledObjective:
    """The objective as integer coefficients over `scale`, plus the exact constant."""

    coefficients: dict[int, int]
    scale: int
    constant: mpq

    def value(self, integer_value: int) -> mpq:
        return mpq(integer_value, self.scale) + self.constant


class CpSatBackend:
    """Translate an all-integer `MipModel` into a CP-SAT model with exact integer coefficients.

    `SolveOptions.threads` sets CP-SAT's `num_workers`. One worker runs a single
    sequential search. Several workers run a portfolio of different searches in
    parallel, so node counts and run times are not comparable across thread counts.
    """

    name = "cpsat"
    supports_indicators = True
    supports_sos1 = True
    supports_quadratic = False

    def version(self) -> str:
        _import_cp_model()
        import ortools

        return f"OR-Tools {ortools.__version__} CP-SAT"

    def solve(self, mip: MipModel, options: SolveOptions) -> CpSatResult:
        cp_model = _import_cp_model()
        _check_supported(mip)
        if options.start is not None and len(options.start) != len(mip.variables):
            raise UsageError(
                f"the MIP start has {len(options.start)} values, "
                f"but model {mip.name!r} has {len(mip.variables)} variables"
            )

        model = cp_model.CpModel()
        model.name = mip.name
        variables = _add_variables(model, mip)
        for constraint in mip.linear:
            _add_scaled(model, cp_model, variables, constraint.name, constraint.terms, constraint.lo, constraint.hi)
        for constraint in mip.indicators:
            literal = variables[constraint.binary]
            if constraint.active_value == 0:
                literal = ~literal
            _add_scaled(
                model, cp_model, variables, constraint.name, constraint.terms, constraint.lo, constraint.hi,
                enforce=literal,
            )
        for constraint in mip.sos1:
            _add_sos1(model, mip, variables, constraint.variables, constraint.name)

        objective = _scale_objective(mip)
        expression = _weighted_sum(cp_model, variables, objective.coefficients, f"model {mip.name!r} objective")
        if objective.coefficients:
            model.minimize(expression)
        if options.objective_limit is not None and math.isfinite(options.objective_limit):
            _add_objective_limit(model, cp_model, expression, objective, options.objective_limit)
        if options.start is not None:
            for variable, value in zip(variables, options.start):
                if value is not None:
                    model.add_hint(variable, int(round(value)))

        problem = model.validate()
        if problem:
            raise UsageError(f"CP-SAT rejected model {mip.name!r}: {problem}")

        solver = cp_model.CpSolver()
        self._set_parameters(solver, options)
        if options.verbose:
            # Send CP-SAT's log to our logger, so that it goes where logging goes (stderr in the CLI).
            solver.parameters.log_to_stdout = False
            solver.log_callback = _log_solver_line
        logger = _make_incumbent_logger(cp_model, mip.name, objective)
        log.debug("CP-SAT solving %s: %s", mip.name, mip.count())
        status = solver.solve(model, logger)
        return self._result(solver, status, variables, objective, options)

    def _set_parameters(self, solver, options: SolveOptions) -> None:
        parameters = solver.parameters
        parameters.num_workers = max(int(options.threads), 1)
        parameters.log_search_progress = bool(options.verbose)
        if options.time_limit is not None:
            parameters.max_time_in_seconds = max(float(options.time_limit), 0.0)
        for key, value in options.solver_parameters.items():
            try:
                setattr(parameters, key, value)
            except (AttributeError, TypeError) as error:
                raise UsageError(
                    f"invalid CP-SAT parameter {key}={value!r} ({error}); "
                    "see the field names of SatParameters in OR-Tools' sat_parameters.proto"
                ) from None

    def _result(self, solver, status, variables, objective: _ScaledObjective, options: SolveOptions) -> CpSatResult:
        raw = solver.status_name(status)
        ours = STATUS_MAP.get(raw, ERROR)
        has_limit = options.objective_limit is not None and math.isfinite(options.objective_limit)
        if ours == INFEASIBLE and has_limit:
            ours = CUTOFF
        if raw == "MODEL_INVALID":
            log.error("CP-SAT reported the model invalid: %s", solver.solution_info())

        result = CpSatResult(
            status=ours,
            solver=self.name,
            solver_version=self.version(),
            raw_status=raw,
            nodes=int(solver.num_branches),
            time_s=float(solver.wall_time),
        )

        if raw in ("OPTIMAL", "FEASIBLE"):
            values = [int(solver.value(variable)) for variable in variables]
            result.values = [float(value) for value in values]
            integer_objective = sum(c * values[i] for i, c in objective.coefficients.items())
            result.exact_objective = objective.value(integer_objective)
            result.objective = float(result.exact_objective)

        if ours == CUTOFF:
            # Infeasible under "objective < limit" proves that the optimum is at least the limit.
            result.exact_dual_bound = mpq(options.objective_limit)
        elif raw in ("OPTIMAL", "FEASIBLE", "UNKNOWN") and objective.coefficients:
            # The inner bound is exact: it bounds our integer objective, which CP-SAT gets without offset.
            bound = int(solver.response_proto.inner_objective_lower_bound)
            if INT64_MIN < bound < INT64_MAX:
                result.exact_dual_bound = objective.value(bound)
        elif raw == "OPTIMAL":
            result.exact_dual_bound = objective.constant
        if result.exact_dual_bound is not None:
            result.dual_bound = float(result.exact_dual_bound)
        return result


def _check_supported(mip: MipModel) -> None:
    """Raise a `UsageError` listing every part of `mip` that CP-SAT cannot take exactly."""
    check_indicator_active_values(mip)
    problems = []

    continuous = [v.name for v in mip.variables if v.kind == "continuous"]
    if continuous:
        problems.append(f"{count_phrase(continuous, 'continuous variable')} (first: {continuous[0]!r})")

    unbounded = [v.name for v in mip.variables if v.kind != "continuous" and (v.lb is None or v.ub is None)]
    if unbounded:
        problems.append(
            f"{count_phrase(unbounded, 'integer variable')} without finite bounds (first: {unbounded[0]!r})"
        )

    if mip.objective.squares:
        problems.append(f"a quadratic objective ({count_phrase(mip.objective.squares, 'squared term')})")

    for constraint in mip.indicators:
        binary = mip.variables[constraint.binary]
        if not is_zero_one(binary):
            problems.append(
                f"indicator constraint {constraint.name!r} on variable {binary.name!r}, "
                f"which is not a 0/1 variable"
            )
            break

    if problems:
        raise UsageError(
            f"the cpsat backend takes only integer and binary variables with finite bounds and a linear "
            f"objective, but model {mip.name!r} has " + "; ".join(problems)
            + "; use solver 'scip' (or 'mathopt-scip') instead"
        )


def check_indicator_active_values(mip: MipModel) -> None:
    """Raise a `UsageError` for an indicator constraint whose active value is neither 0 nor 1."""
    for constraint in mip.indicators:
        if constraint.active_value not in (0, 1):
            raise UsageError(
                f"indicator constraint {constraint.name!r} of model {mip.name!r} has active value "
                f"{constraint.active_value!r}; expected 0 or 1"
            )


def count_phrase(items, noun: str) -> str:
    """Return "1 noun" or "n nouns" for the number of `items`."""
    return f"{len(items)} {noun}" + ("" if len(items) == 1 else "s")


def is_zero_one(variable) -> bool:
    """Return whether `variable` can take only the values 0 and 1."""
    if variable.kind == "binary":
        return True
    return variable.kind == "integer" and variable.lb is not None and variable.ub is not None \
        and variable.lb >= 0 and variable.ub <= 1


def _add_variables(model, mip: MipModel) -> list:
    variables = []
    for v in mip.variables:
        lower = math.ceil(v.lb)
        upper = math.floor(v.ub)
        if v.kind == "binary":
            lower, upper = max(lower, 0), min(upper, 1)
        if lower > upper:
            # No integer lies in the bounds, so the model is infeasible. CP-SAT would reject an empty
            # domain as an invalid model, so it gets the domain {lower} and a constraint that nothing satisfies.
            log.debug("variable %s has no integer in [%s, %s]; the model is infeasible", v.name, v.lb, v.ub)
            model.add_linear_constraint(0, 1, 1)
            upper = lower
        _check_int64(lower, f"lower bound of variable {v.name!r}")
        _check_int64(upper, f"upper bound of variable {v.name!r}")
        if lower == 0 and upper == 1:
            variables.append(model.new_bool_var(v.name))
        else:
            variables.append(model.new_int_var(int(lower), int(upper), v.name))
    return variables


def _denominator_lcm(coefficients) -> int:
    scale = gmpy2.mpz(1)
    for coefficient in coefficients:
        scale = gmpy2.lcm(scale, mpq(coefficient).denominator)
    return int(scale)


def _check_int64(value, description: str) -> None:
    if not INT64_MIN <= value <= INT64_MAX:
        raise UsageError(
            f"{description} is {value} after scaling to integers, outside CP-SAT's 64-bit range; "
            "use solver 'scip' instead"
        )


def _weighted_sum(cp_model, variables: list, coefficients: dict[int, int], description: str):
    for index, coefficient in coefficients.items():
        _check_int64(coefficient, f"coefficient of {variables[index].name!r} in {description}")
    indices = list(coefficients)
    return cp_model.LinearExpr.weighted_sum([variables[i] for i in indices], [coefficients[i] for i in indices])


def _add_scaled(model, cp_model, variables: list, name: str, terms: Terms, lo, hi, enforce=None) -> None:
    """Add lo <= sum(terms) <= hi scaled to integers; with `enforce`, only when that literal is true."""
    if lo is None and hi is None:
        return
    scale = _denominator_lcm(terms.values())
    coefficients = {index: int(coefficient * scale) for index, coefficient in terms.items()}
    expression = _weighted_sum(cp_model, variables, coefficients, f"constraint {name!r}")

    lower = cp_model.INT_MIN if lo is None else math.ceil(lo * scale)
    upper = cp_model.INT_MAX if hi is None else math.floor(hi * scale)
    _check_int64(lower, f"lower side of constraint {name!r}")
    _check_int64(upper, f"upper side of constraint {name!r}")

    constraint = model.add_linear_constraint(expression, int(lower), int(upper))
    constraint.name = name
    if enforce is not None:
        constraint.only_enforce_if(enforce)


def _add_sos1(model, mip: MipModel, variables: list, members: list[int], name: str) -> None:
    """Allow at most one member to be non-zero, through one "is non-zero" literal per member."""
    literals = []
    for index in members:
        variable = mip.variables[index]
        if is_zero_one(variable):
            literals.append(variables[index])
            continue
        nonzero = model.new_bool_var(f"{name}_nonzero[{variable.name}]")
        model.add(variables[index] == 0).only_enforce_if(~nonzero)
        literals.append(nonzero)
    model.add_at_most_one(literals)


def _scale_objective(mip: MipModel) -> _ScaledObjective:
    linear = mip.objective.linear
    scale = _denominator_lcm(linear.values())
    coefficients = {index: int(coefficient * scale) for index, coefficient in linear.items() if coefficient != 0}
    return _ScaledObjective(coefficients, scale, mpq(mip.objective.constant))


def _add_objective_limit(model, cp_model, expression, objective: _ScaledObjective, limit: float) -> None:
    """Keep only solutions with objective strictly below `limit`, read exactly from the float."""
    # objective < limit  <=>  integer objective < scale * (limit - constant)  <=>  integer <= ceil(...) - 1
    upper = math.ceil(objective.scale * (mpq(limit) - objective.constant)) - 1
    if upper >= INT64_MAX:
        return  # every int64 objective value is below the limit
    if upper < INT64_MIN:
        # No int64 objective value is below the limit: add a constraint that nothing satisfies.
        model.add_linear_constraint(0, 1, 1)
        return
    constraint = model.add_linear_constraint(expression, cp_model.INT_MIN, int(upper))
    constraint.name = "objective_limit"


def _log_solver_line(line: str) -> None:
    if line:
        log.info("CP-SAT: %s", line)


def _make_incumbent_logger(cp_model, model_name: str, objective: _ScaledObjective):
    """Build a solution callback that logs each incumbent in the model's objective units."""

    class IncumbentLogger(cp_model.CpSolverSolutionCallback):
        def __init__(self):
            super().__init__()
            self.count = 0

        def on_solution_callback(self) -> None:
            self.count += 1
            if not objective.coefficients:
                log.info("CP-SAT %s: solution %d", model_name, self.count)
                return
            constant = float(objective.constant)
            log.info(
                "CP-SAT %s: incumbent %d, objective %.12g, bound %.12g, %.2f s",
                model_name,
                self.count,
                self.objective_value / objective.scale + constant,
                self.best_objective_bound / objective.scale + constant,
                self.wall_time,
            )

    return IncumbentLogger()
