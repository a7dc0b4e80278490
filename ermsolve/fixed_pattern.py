"""The fixed-pattern program: with output signs and activation pattern fixed, training is an LP or QP.

With the output signs s and the activation pattern a fixed, the network output
f_i = sum_k a_ik s_k (w'_k . x_i + b'_k) + c is linear in the normalised
parameters, and the pattern itself is a set of linear inequalities
(a_ik = 1: w'_k . x_i + b'_k >= 0, a_ik = 0: <= 0). So the best network with
that pattern solves a linear program (l1, linf, hinge) or a convex quadratic
program (l2).

For the 0-1 loss the program also fixes the set S of points allowed to be
misclassified and maximises the margin t of the others:

    max t  s.t.  y_i f_i >= t for i not in S,  0 <= t <= 1,  pattern, box.

The points outside S are strictly separated by some network with this
pattern exactly when the optimum t is positive. The cap t <= 1 keeps the
program bounded when S contains every point, and it does not change the
sign of the optimum. This module only builds the program, in exact rationals, and imports no
solver, so certificate verification can rebuild it to bound bit-lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

from gmpy2 import mpq

from ermsolve.encodings.base import TrainingProblem


@dataclass
class FixedPatternProgram:
    """minimise c.x (+ ||M x - t||^2 for l2) s.t. A_ub x <= b_ub, lower <= x <= upper.

    Variables: w'[k][j] at k * d + j, then b'[k] at K * d + k, then c. After
    them come one error e_i per point for l1 and hinge, one error t for linf,
    or the margin t for zero_one (objective -t).
    """

    loss: str
    width: int
    d: int
    c: list[mpq]
    A_ub: list[dict[int, mpq]]
    b_ub: list[mpq]
    lower: list[mpq | None]
    upper: list[mpq | None]
    M: list[dict[int, mpq]] | None = None
    t: list[mpq] | None = None

    def w_index(self, k: int, j: int) -> int:
        return k * self.d + j

    def b_index(self, k: int) -> int:
        return self.width * self.d + k

    @property
    def c_index(self) -> int:
        return self.width * self.d + self.width

    @property
    def parameter_count(self) -> int:
        return self.c_index + 1

    @property
    def variable_count(self) -> int:
        return len(self.lower)


def build_fixed_pattern_program(problem: TrainingProblem, signs, pattern, misclassified=()) -> FixedPatternProgram:
    """Build the exact fixed-pattern LP (l1, linf, hinge, zero_one) or QP (l2) of `problem`.

    `misclassified` is the set S of point indices of the 0-1 program; other losses ignore it.
    """
    instance, width, d = problem.instance, problem.width, problem.instance.d
    hidden_box, output_box = problem.hidden_box, problem.output_box
    loss = problem.architecture.loss
    program = FixedPatternProgram(loss, width, d, [], [], [], [], [])

    # Bounds of the normalised parameters.
    parameter_count = program.parameter_count
    program.lower = [-hidden_box] * (width * d + width) + [-output_box]
    program.upper = [hidden_box] * (width * d + width) + [output_box]

    # The activation pattern as inequalities, and each output as a linear form.
    outputs = []
    for i, x in enumerate(instance.X):
        output = {program.c_index: mpq(1)}
        for k in range(width):
            pre_activation = {program.w_index(k, j): x[j] for j in range(d) if x[j] != 0}
            pre_activation[program.b_index(k)] = mpq(1)
            active = pattern[i][k]
            program.A_ub.append({index: (-v if active else v) for index, v in pre_activation.items()})
            program.b_ub.append(mpq(0))
            if active:
                for index, value in pre_activation.items():
                    output[index] = output.get(index, mpq(0)) + signs[k] * value
        outputs.append({index: v for index, v in output.items() if v != 0})

    if loss == "l2":
        program.c = [mpq(0)] * parameter_count
        program.M, program.t = outputs, list(instance.y)
        return program

    if loss == "hinge":
        return _add_hinge(program, outputs, instance.y)
    if loss == "zero_one":
        return _add_margin(program, outputs, instance.y, set(misclassified))

    # Errors e_i >= |f_i - y_i| (l1) or one t >= |f_i - y_i| (linf), and their sum as objective.
    error_count = instance.n if loss == "l1" else 1
    program.lower += [mpq(0)] * error_count
    program.upper += [None] * error_count
    program.c = [mpq(0)] * parameter_count + [mpq(1)] * error_count
    for i, (output, target) in enumerate(zip(outputs, instance.y)):
        error = parameter_count + (i if loss == "l1" else 0)
        # f_i - e <= y_i and -f_i - e <= -y_i
        program.A_ub.append({**output, error: mpq(-1)})
        program.b_ub.append(target)
        program.A_ub.append({**{index: -v for index, v in output.items()}, error: mpq(-1)})
        program.b_ub.append(-target)
    return program


def _add_hinge(program: FixedPatternProgram, outputs, labels) -> FixedPatternProgram:
    """Add errors e_i >= 0, e_i >= 1 - y_i f_i and minimise their sum."""
    parameter_count = program.parameter_count
    program.lower += [mpq(0)] * len(outputs)
    program.upper += [None] * len(outputs)
    program.c = [mpq(0)] * parameter_count + [mpq(1)] * len(outputs)
    for i, (output, label) in enumerate(zip(outputs, labels)):
        # -y_i f_i - e_i <= -1
        program.A_ub.append({**{index: -label * v for index, v in output.items()}, parameter_count + i: mpq(-1)})
        program.b_ub.append(mpq(-1))
    return program


def _add_margin(program: FixedPatternProgram, outputs, labels, misclassified: set) -> FixedPatternProgram:
    """Add the margin t in [0, 1] with y_i f_i >= t outside `misclassified`, and maximise t."""
    margin = program.parameter_count
    program.lower.append(mpq(0))
    program.upper.append(mpq(1))
    program.c = [mpq(0)] * margin + [mpq(-1)]
    for i, (output, label) in enumerate(zip(outputs, labels)):
        if i in misclassified:
            continue
        # t - y_i f_i <= 0
        program.A_ub.append({**{index: -label * v for index, v in output.items()}, margin: mpq(1)})
        program.b_ub.append(mpq(0))
    return program
