"""HiGHS and SCIP backends through OR-Tools MathOpt.

The model is built with MathOpt's Python `Model`, exported to a `ModelProto`
and solved with the same core call that `mathopt.solve` makes in OR-Tools 9.15.
The result is read from the `SolveResultProto` directly. Three gaps of the
9.15 Python layer make this detour necessary:

- `Model` has no SOS1 constraints, but the proto has, and gSCIP solves them;
- `mathopt.solve` turns every solver error into an AttributeError, because it
  reads a `canonical_code` that pybind11_abseil's StatusNotOk does not have;
- parsing a result fails with "12 is not a valid Limit" when gSCIP stops at
  the cutoff, because the Python `Limit` enum lacks the proto's LIMIT_CUTOFF.
"""

from __future__ import annotations

import datetime
import logging
import math
import time
from collections import Counter
from types import SimpleNamespace

from gmpy2 import mpq

from ermsolve.backends.base import (
    CUTOFF,
    ERROR,
    INFEASIBLE,
    INTERRUPTED,
    OPTIMAL,
    TIME_LIMIT,
    SolveOptions,
    SolveResult,
)
from ermsolve.backends.cpsat import check_indicator_active_values, count_phrase, is_zero_one
from ermsolve.errors import SolverUnavailableError, UsageError
from ermsolve.model import MipModel

log = logging.getLogger(__name__)

# MathOpt's termination reasons (TerminationReasonProto without its prefix) mapped to ours.
# FEASIBLE and NO_SOLUTION_FOUND mean that a limit stopped the solve, and LIMIT_MAP maps that limit.
STATUS_MAP = {
    "OPTIMAL": OPTIMAL,
    "INFEASIBLE": INFEASIBLE,  # CUTOFF instead when an objective limit was set
    "UNBOUNDED": ERROR,
    "INFEASIBLE_OR_UNBOUNDED": ERROR,
    "IMPRECISE": ERROR,
    "NUMERICAL_ERROR": ERROR,
    "OTHER_ERROR": ERROR,
}

# MathOpt's limits (LimitProto without its prefix) for FEASIBLE and NO_SOLUTION_FOUND, mapped to ours.
# NOTE: in OR-Tools 9.15 a Ctrl-C during a HiGHS or gSCIP solve is lost: the solve runs on to
# its time limit. Passing MathOpt's SolveInterrupter instead made gSCIP abort the process.
LIMIT_MAP = {
    "TIME": TIME_LIMIT,
    "ITERATION": TIME_LIMIT,
    "NODE": TIME_LIMIT,
    "SOLUTION": TIME_LIMIT,
    "MEMORY": TIME_LIMIT,
    "OBJECTIVE": TIME_LIMIT,
    "NORM": TIME_LIMIT,
    "SLOW_PROGRESS": TIME_LIMIT,
    "OTHER": TIME_LIMIT,
    "UNDETERMINED": TIME_LIMIT,
    "UNSPECIFIED": TIME_LIMIT,
    "CUTOFF": CUTOFF,
    "INTERRUPTED": INTERRUPTED,
}


def _import_mathopt() -> SimpleNamespace:
    """Import MathOpt's Python layer, its core solve call, the result protos and the core's error type."""
    try:
        from ortools.math_opt import result_pb2, solution_pb2
        from ortools.math_opt.core.python import solver as core
        from ortools.math_opt.python import mathopt
        from pybind11_abseil.status import StatusNotOk
    except ImportError as error:
        raise SolverUnavailableError(
            f"the MathOpt backends need OR-Tools, which failed to import ({error}); "
            "install it with `pip install 'ortools>=9.15'` or run `make install`"
        ) from None
    return SimpleNamespace(
        mathopt=mathopt, core=core, result_pb2=result_pb2, solution_pb2=solution_pb2, StatusNotOk=StatusNotOk
    )


def _ortools_version() -> str:
    _import_mathopt()
    import ortools

    return ortools.__version__


class _MathOptBackend:
    """Translate a `MipModel` into a MathOpt model and solve it with one MathOpt solver."""

    name = ""
    solver_label = ""
    solver_type = ""  # a member name of mathopt.SolverType
    supports_indicators = False
    supports_sos1 = False
    supports_quadratic = False
    # Whether MathOpt's cutoff_limit works with this solver; otherwise the limit becomes a constraint.
    has_native_cutoff = False
    alternatives = "'scip'"

    def version(self) -> str:
        return f"{self.solver_label} via OR-Tools MathOpt {_ortools_version()}"

    def solve(self, mip: MipModel, options: SolveOptions) -> SolveResult:
        ortools = _import_mathopt()
        mathopt = ortools.mathopt
        self._check_supported(mip)
        if options.start is not None and len(options.start) != len(mip.variables):
            raise UsageError(
                f"the MIP start has {len(options.start)} values, "
                f"but model {mip.name!r} has {len(mip.variables)} variables"
            )

        model = mathopt.Model(name=mip.name)
        variables = _add_variables(model, mip)
        _add_linear(model, mip, variables)
        _add_indicators(model, mathopt, mip, variables)
        _set_objective(model, mathopt, mip, variables)
        has_limit = options.objective_limit is not None and math.isfinite(options.objective_limit)
        if has_limit and not self.has_native_cutoff:
            _add_objective_limit(model, mip, variables, options.objective_limit)

        # MathOpt rejects repeated names, which `MipModel` allows, so drop names only then.
        proto = model.export_model(remove_names=_has_repeated_names(mip))
        _add_sos1(proto, mip, variables)

        parameters = self._parameters(mathopt, options)
        model_parameters = mathopt.ModelSolveParameters()
        if options.start is not None:
            hint = {variables[i]: float(value) for i, value in enumerate(options.start) if value is not None}
            model_parameters.solution_hints.append(mathopt.SolutionHint(variable_values=hint))

        log.debug("%s solving %s: %s", self.solver_label, mip.name, mip.count())
        started = time.monotonic()
        try:
            response = ortools.core.solve(
                proto,
                getattr(mathopt.SolverType, self.solver_type).value,
                mathopt.StreamableSolverInitArguments().to_proto(),
                parameters.to_proto(),
                model_parameters.to_proto(),
                self._log_solver_lines if options.verbose else None,
                mathopt.CallbackRegistration().to_proto(),
                None,
                None,
            )
        except ortools.StatusNotOk as error:
            return self._failed(error, mip, time.monotonic() - started)
        return self._result(response, ortools, variables, options, has_limit)

    def _log_solver_lines(self, lines: list[str]) -> None:
        """Send the solver's log to our logger, so that it goes where logging goes (stderr in the CLI)."""
        for line in lines:
            if line.strip():
                log.info("%s: %s", self.solver_label, line)

    def _check_supported(self, mip: MipModel) -> None:
        """Raise a `UsageError` naming every part of `mip` this solver cannot take."""
        check_indicator_active_values(mip)
        problems = []
        if mip.objective.squares and not self.supports_quadratic:
            problems.append(f"a quadratic objective ({count_phrase(mip.objective.squares, 'squared term')})")
        if mip.indicators and not self.supports_indicators:
            problems.append(count_phrase(mip.indicators, "indicator constraint"))
        if mip.sos1 and not self.supports_sos1:
            problems.append(count_phrase(mip.sos1, "SOS1 constraint"))
        for constraint in mip.indicators:
            binary = mip.variables[constraint.binary]
            if not is_zero_one(binary):
                problems.append(
                    f"indicator constraint {constraint.name!r} on variable {binary.name!r}, "
                    "which is not a 0/1 variable"
                )
                break
        if problems:
            raise UsageError(
                f"the {self.name} backend ({self.solver_label} via OR-Tools MathOpt) cannot solve model "
                f"{mip.name!r}, which has " + "; ".join(problems) + f"; use solver {self.alternatives} instead"
            )

    def _parameters(self, mathopt, options: SolveOptions):
        parameters = mathopt.SolveParameters(enable_output=bool(options.verbose))
        if options.time_limit is not None:
            parameters.time_limit = datetime.timedelta(seconds=max(float(options.time_limit), 0.0))
        return parameters

    def _failed(self, error, mip: MipModel, elapsed: float) -> SolveResult:
        """Raise on a rejected model or parameter; return an ERROR result on any other solver failure."""
        code = error.status.code().name
        message = error.status.message()
        if code in ("INVALID_ARGUMENT", "UNIMPLEMENTED"):
            raise UsageError(
                f"{self.solver_label} via MathOpt rejected model {mip.name!r} or its parameters: {message}"
            ) from None
        log.error("%s via MathOpt failed on model %s: %s (%s)", self.solver_label, mip.name, message, code)
        return SolveResult(
            status=ERROR,
            solver=self.name,
            solver_version=self.version(),
            raw_status=f"{code}: {message}",
            time_s=elapsed,
        )

    def _result(self, response, ortools, variables: list, options: SolveOptions, has_limit: bool) -> SolveResult:
        result_pb2 = ortools.result_pb2
        termination = response.termination
        reason = result_pb2.TerminationReasonProto.Name(termination.reason).removeprefix("TERMINATION_REASON_")
        limit = result_pb2.LimitProto.Name(termination.limit).removeprefix("LIMIT_")
        if reason in ("FEASIBLE", "NO_SOLUTION_FOUND"):
            status = LIMIT_MAP.get(limit, TIME_LIMIT)
            raw = f"{reason}, limit {limit}"
        else:
            status = STATUS_MAP.get(reason, ERROR)
            raw = reason
        if termination.detail:
            raw += f" ({termination.detail})"
        if status == INFEASIBLE and has_limit:
            status = CUTOFF

        stats = response.solve_stats
        result = SolveResult(
            status=status,
            solver=self.name,
            solver_version=self.version(),
            raw_status=raw,
            nodes=int(stats.node_count),
            time_s=stats.solve_time.seconds + stats.solve_time.nanos * 1e-9,
        )

        feasible = _best_feasible_solution(response, ortools.solution_pb2)
        if feasible is not None and status in (OPTIMAL, TIME_LIMIT, INTERRUPTED):
            position = {variable.id: i for i, variable in enumerate(variables)}
            values = [0.0] * len(variables)
            for variable_id, value in zip(feasible.variable_values.ids, feasible.variable_values.values):
                if variable_id in position:  # auxiliary variables of the translation are left out
                    values[position[variable_id]] = float(value)
            result.values = values
            result.objective = float(feasible.objective_value)

        if status == CUTOFF:
            # No solution below the limit exists, so the optimum is at least the limit.
            result.dual_bound = float(options.objective_limit)
        else:
            dual = float(termination.objective_bounds.dual_bound)
            result.dual_bound = dual if math.isfinite(dual) else None
        return result


class MathOptHighsBackend(_MathOptBackend):
    """HiGHS through MathOpt: linear objective and linear constraints over any variable kinds.

    MathOpt 9.15 passes neither quadratic objectives, indicator constraints nor
    SOS1 constraints to HiGHS, and it rejects a cutoff and a thread count for
    HiGHS. The objective limit therefore becomes the constraint objective <= limit,
    and a solution equal to the limit comes back as OPTIMAL, where SCIP's
    strict cutoff would report CUTOFF. `solver_parameters` take HiGHS option
    names; the type of the Python value chooses the options map.
    """

    name = "highs"
    solver_label = "HiGHS"
    solver_type = "HIGHS"
    alternatives = "'scip' or 'mathopt-scip'"

    def _parameters(self, mathopt, options: SolveOptions):
        parameters = super()._parameters(mathopt, options)
        if options.threads > 1:
            # HiGHS keeps one thread pool per process, sized by its first solve, and MathOpt
            # rejects its `threads` parameter, so a thread count cannot be set per solve.
            log.warning(
                "HiGHS via MathOpt cannot set a thread count; ignoring threads=%d and using HiGHS's default",
                options.threads,
            )
        for key, value in options.solver_parameters.items():
            getattr(parameters.highs, _highs_option_map(key, value))[key] = value
        return parameters


class MathOptScipBackend(_MathOptBackend):
    """SCIP through MathOpt (gSCIP): quadratic objectives, indicator and SOS1 constraints.

    `SolveOptions.threads` > 1 makes gSCIP run SCIP's concurrent solver, as
    `ScipBackend` does. `solver_parameters` take SCIP parameter names such as
    "misc/usesymmetry"; the type of the Python value chooses the gSCIP map.
    """

    name = "mathopt-scip"
    solver_label = "SCIP (gSCIP)"
    solver_type = "GSCIP"
    supports_indicators = True
    supports_sos1 = True
    supports_quadratic = True
    has_native_cutoff = True

    def _parameters(self, mathopt, options: SolveOptions):
        parameters = super()._parameters(mathopt, options)
        # With threads > 1 and verbose, SCIP's concurrent solvers print a few lines
        # straight to stdout, past the message callback (OR-Tools 9.15).
        parameters.threads = max(int(options.threads), 1)
        if options.objective_limit is not None and math.isfinite(options.objective_limit):
            # gSCIP passes the cutoff to SCIP's objective limit, which keeps only strictly better solutions.
            parameters.cutoff_limit = float(options.objective_limit)
        for key, value in options.solver_parameters.items():
            getattr(parameters.gscip, _gscip_parameter_map(key, value))[key] = value
        return parameters


def _highs_option_map(key: str, value) -> str:
    """Name the HiGHS options map of MathOpt's HighsOptionsProto that takes `value`."""
    if isinstance(value, bool):
        return "bool_options"
    if isinstance(value, int):
        return "int_options"
    if isinstance(value, float):
        return "double_options"
    if isinstance(value, str):
        return "string_options"
    raise UsageError(f"HiGHS option {key} has value {value!r} of type {type(value).__name__}; "
                     "use a bool, int, float or str")


def _gscip_parameter_map(key: str, value) -> str:
    """Name the gSCIP parameters map that takes `value`.

    NOTE: a Python int always goes to `int_params`, so SCIP's longint
    parameters (such as "limits/nodes") are rejected by SCIP with a type error.
    """
    if isinstance(value, bool):
        return "bool_params"
    if isinstance(value, int):
        return "int_params"
    if isinstance(value, float):
        return "real_params"
    if isinstance(value, str):
        return "char_params" if len(value) == 1 else "string_params"
    raise UsageError(f"SCIP parameter {key} has value {value!r} of type {type(value).__name__}; "
                     "use a bool, int, float or str")


def _add_variables(model, mip: MipModel) -> list:
    variables = []
    for v in mip.variables:
        lower = -math.inf if v.lb is None else float(v.lb)
        upper = math.inf if v.ub is None else float(v.ub)
        if v.kind == "binary":
            lower, upper = max(lower, 0.0), min(upper, 1.0)
        variables.append(model.add_variable(lb=lower, ub=upper, is_integer=v.kind != "continuous", name=v.name))
    return variables


def _add_linear(model, mip: MipModel, variables: list) -> None:
    for constraint in mip.linear:
        if constraint.lo is None and constraint.hi is None:
            continue
        row = model.add_linear_constraint(
            lb=-math.inf if constraint.lo is None else float(constraint.lo),
            ub=math.inf if constraint.hi is None else float(constraint.hi),
            name=constraint.name,
        )
        for index, coefficient in constraint.terms.items():
            row.set_coefficient(variables[index], float(coefficient))


def _add_indicators(model, mathopt, mip: MipModel, variables: list) -> None:
    for constraint in mip.indicators:
        expression = mathopt.fast_sum(float(c) * variables[i] for i, c in constraint.terms.items())
        # gSCIP rejects ranged implied constraints, so each side becomes its own indicator.
        for side, bound in (("lo", constraint.lo), ("hi", constraint.hi)):
            if bound is None:
                continue
            model.add_indicator_constraint(
                indicator=variables[constraint.binary],
                activate_on_zero=constraint.active_value == 0,
                implied_lb=float(bound) if side == "lo" else None,
                implied_ub=float(bound) if side == "hi" else None,
                implied_expr=expression,
                name=f"{constraint.name}_{side}",
            )


def _set_objective(model, mathopt, mip: MipModel, variables: list) -> None:
    """Set the objective, with the squares in one quadratic constraint on an epigraph variable.

    As in `ScipBackend`: minimise t subject to sum of squares <= t and t >= 0.
    With the squares in the objective instead, gSCIP reported dual bounds below
    0 on l2 training, although a sum of squares is never negative.

    NOTE: gSCIP in OR-Tools 9.15 needs far more nodes on l2 training than SCIP 10
    via PySCIPOpt. Its log reports that it was built without a symmetry detector.
    On planted_d1_w2_n10.csv with one unit it stopped at a 20 s limit after
    about 10,000 nodes, where `ScipBackend` proved optimality in 40 nodes (2 cores).
    """
    objective = mip.objective
    model.objective.is_maximize = False
    model.objective.offset = float(objective.constant)
    for index, coefficient in objective.linear.items():
        if coefficient != 0:
            model.objective.set_linear_coefficient(variables[index], float(coefficient))
    if not objective.squares:
        return

    squares = []
    for terms, offset in objective.squares:
        form = mathopt.fast_sum(float(c) * variables[i] for i, c in terms.items()) + float(offset)
        squares.append(form * form)
    epigraph = model.add_variable(lb=0.0, name="squared_error")
    model.add_quadratic_constraint(mathopt.fast_sum(squares) - epigraph <= 0.0, name="squared_error_epigraph")
    model.objective.set_linear_coefficient(epigraph, 1.0)


def _add_objective_limit(model, mip: MipModel, variables: list, limit: float) -> None:
    """Add linear objective <= limit, for solvers that take no cutoff from MathOpt."""
    objective = mip.objective
    if objective.squares:
        raise UsageError(
            "an objective limit on a quadratic objective needs a native cutoff; use solver 'mathopt-scip' or 'scip'"
        )
    row = model.add_linear_constraint(ub=float(mpq(limit) - objective.constant), name="objective_limit")
    for index, coefficient in objective.linear.items():
        row.set_coefficient(variables[index], float(coefficient))


def _add_sos1(proto, mip: MipModel, variables: list) -> None:
    """Add the SOS1 constraints to the exported proto, one expression of weight 1 per member."""
    for number, constraint in enumerate(mip.sos1):
        sos = proto.sos1_constraints[number]
        sos.name = constraint.name
        for index in constraint.variables:
            expression = sos.expressions.add()
            expression.ids.append(variables[index].id)
            expression.coefficients.append(1.0)


def _has_repeated_names(mip: MipModel) -> bool:
    for names in (
        [v.name for v in mip.variables] + ["squared_error"],
        [c.name for c in mip.linear] + ["objective_limit"],
        [f"{c.name}_{side}" for c in mip.indicators for side in ("lo", "hi")],
        [c.name for c in mip.sos1],
    ):
        repeated = [name for name, count in Counter(names).items() if name and count > 1]
        if repeated:
            log.debug("model %s repeats the name %r; names are left out of the MathOpt model", mip.name, repeated[0])
            return True
    return False


def _best_feasible_solution(response, solution_pb2):
    """Return the first primal solution that MathOpt marks feasible (solutions come best first)."""
    for solution in response.solutions:
        if not solution.HasField("primal_solution"):
            continue
        if solution.primal_solution.feasibility_status == solution_pb2.SOLUTION_STATUS_FEASIBLE:
            return solution.primal_solution
    return None


