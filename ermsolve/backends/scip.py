"""SCIP backend through PySCIPOpt."""

from __future__ import annotations

import logging
import math

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
from ermsolve.errors import SolverUnavailableError
from ermsolve.model import MipModel

log = logging.getLogger(__name__)

# SCIP's status strings (PySCIPOpt `Model.getStatus`) mapped to ours.
STATUS_MAP = {
    "optimal": OPTIMAL,
    "timelimit": TIME_LIMIT,
    "nodelimit": TIME_LIMIT,
    "totalnodelimit": TIME_LIMIT,
    "stallnodelimit": TIME_LIMIT,
    "gaplimit": TIME_LIMIT,
    "memlimit": TIME_LIMIT,
    "sollimit": TIME_LIMIT,
    "bestsollimit": TIME_LIMIT,
    "restartlimit": TIME_LIMIT,
    "primallimit": TIME_LIMIT,
    "duallimit": TIME_LIMIT,
    "infeasible": INFEASIBLE,
    "inforunbd": ERROR,
    "unbounded": ERROR,
    "userinterrupt": INTERRUPTED,
    "terminate": INTERRUPTED,
    "unknown": ERROR,
}


def _import_scip():
    try:
        import pyscipopt
    except ImportError as error:
        raise SolverUnavailableError(
            f"the SCIP backend needs PySCIPOpt, which failed to import ({error}); "
            "install it with `pip install 'pyscipopt>=6.3'` or run `make install`"
        ) from None
    return pyscipopt


class ScipBackend:
    """Translate a `MipModel` into a PySCIPOpt model and solve it."""

    name = "scip"
    supports_indicators = True
    supports_sos1 = True
    supports_quadratic = True

    def version(self) -> str:
        pyscipopt = _import_scip()
        model = pyscipopt.Model()
        return (
            f"SCIP {model.getMajorVersion()}.{model.getMinorVersion()}.{model.getTechVersion()}"
            f" (PySCIPOpt {pyscipopt.__version__})"
        )

    def solve(self, mip: MipModel, options: SolveOptions) -> SolveResult:
        pyscipopt = _import_scip()
        scip = pyscipopt.Model(mip.name)
        if not options.verbose:
            scip.hideOutput()

        variables = self._add_variables(scip, mip)
        self._add_constraints(scip, mip, variables, pyscipopt)
        self._set_objective(scip, mip, variables, pyscipopt)
        self._set_parameters(scip, options)
        if options.start is not None:
            self._add_start(scip, variables, options.start)

        log.debug("SCIP solving %s: %s", mip.name, mip.count())
        if options.threads > 1:
            # NOTE: concurrent SCIP runs independent solvers with different settings and
            # reports no node count of its own; it is used only when threads > 1.
            scip.solveConcurrent()
        else:
            scip.optimize()
        return self._result(scip, variables, options)

    def _add_variables(self, scip, mip: MipModel) -> list:
        types = {"continuous": "C", "binary": "B", "integer": "I"}
        return [
            scip.addVar(
                name=v.name,
                vtype=types[v.kind],
                lb=None if v.lb is None else float(v.lb),
                ub=None if v.ub is None else float(v.ub),
            )
            for v in mip.variables
        ]

    def _add_constraints(self, scip, mip: MipModel, variables: list, pyscipopt) -> None:
        def expression(terms):
            return pyscipopt.quicksum(float(c) * variables[i] for i, c in terms.items())

        for constraint in mip.linear:
            if constraint.lo is None and constraint.hi is None:
                continue
            scip.addCons(
                pyscipopt.scip.ExprCons(
                    expression(constraint.terms),
                    lhs=None if constraint.lo is None else float(constraint.lo),
                    rhs=None if constraint.hi is None else float(constraint.hi),
                ),
                name=constraint.name,
            )

        for constraint in mip.indicators:
            # SCIP's indicator constraint is binary = 1 -> (form <= rhs); other forms are rewritten.
            for side, bound in (("hi", constraint.hi), ("lo", constraint.lo)):
                if bound is None:
                    continue
                form = expression(constraint.terms)
                inequality = form <= float(bound) if side == "hi" else -form <= -float(bound)
                binary = variables[constraint.binary]
                scip.addConsIndicator(
                    inequality,
                    binvar=binary,
                    activeone=bool(constraint.active_value),
                    name=f"{constraint.name}_{side}",
                )

        for constraint in mip.sos1:
            scip.addConsSOS1([variables[i] for i in constraint.variables], name=constraint.name)

    def _set_objective(self, scip, mip: MipModel, variables: list, pyscipopt) -> None:
        objective = mip.objective
        linear = pyscipopt.quicksum(float(c) * variables[i] for i, c in objective.linear.items())
        if objective.squares:
            # PySCIPOpt takes only linear objectives: minimise an epigraph variable instead.
            epigraph = scip.addVar(name="squared_error", lb=0.0, ub=None)
            squares = pyscipopt.quicksum(
                (pyscipopt.quicksum(float(c) * variables[i] for i, c in terms.items()) + float(offset)) ** 2
                for terms, offset in objective.squares
            )
            scip.addCons(squares <= epigraph, name="squared_error_epigraph")
            linear = linear + epigraph
        scip.setObjective(linear + float(objective.constant), sense="minimize")

    def _set_parameters(self, scip, options: SolveOptions) -> None:
        if options.time_limit is not None:
            scip.setParam("limits/time", max(float(options.time_limit), 0.0))
        if options.threads > 1:
            scip.setParam("parallel/maxnthreads", int(options.threads))
            scip.setParam("parallel/minnthreads", int(options.threads))
        if options.objective_limit is not None and math.isfinite(options.objective_limit):
            scip.setObjlimit(float(options.objective_limit))
        for key, value in options.solver_parameters.items():
            scip.setParam(key, value)

    def _add_start(self, scip, variables: list, start: list) -> None:
        solution = scip.createPartialSol()
        for variable, value in zip(variables, start):
            if value is not None:
                scip.setSolVal(solution, variable, float(value))
        scip.addSol(solution)

    def _result(self, scip, variables: list, options: SolveOptions) -> SolveResult:
        raw = scip.getStatus()
        status = STATUS_MAP.get(raw, ERROR)
        has_solution = scip.getNSols() > 0 and status in (OPTIMAL, TIME_LIMIT, INTERRUPTED)
        if status == INFEASIBLE and options.objective_limit is not None:
            status = CUTOFF

        result = SolveResult(
            status=status,
            solver=self.name,
            solver_version=self.version(),
            raw_status=raw,
            nodes=int(scip.getNTotalNodes()),
            time_s=float(scip.getSolvingTime()),
        )
        if has_solution:
            best = scip.getBestSol()
            result.values = [scip.getSolVal(best, v) for v in variables]
            result.objective = float(scip.getSolObjVal(best))
        dual = float(scip.getDualbound())
        result.dual_bound = dual if math.isfinite(dual) and abs(dual) < 1e19 else None
        return result

