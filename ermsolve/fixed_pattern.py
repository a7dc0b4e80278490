"""The fixed-pattern program: with output signs and activation pattern fixed, training is an LP or QP.

With the output signs s and the activation pattern a fixed, the network output
f_i = sum_k a_ik s_k (w'_k . x_i + b'_k) + c is linear in the normalised
parameters, and the pattern itself is a set of linear inequalities
(a_ik = 1: w'_k . x_i + b'_k >= 0, a_ik = 0: <= 0). So the best network with
that pattern solves a linear program (l1, linf) or a convex quadratic program
(l2). This module only builds the program, in exact rationals, and imports no
solver, so certificate verification can rebuild it to bound bit-lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

from gmpy2 import mpq

from ermsolve.encodings.base import TrainingProblem


@dataclass
class FixedPatternProgram:
    """minimise c.x (+ ||M x - t||^2 for l2) s.t. A_ub x <= b_ub, lower <= x <= upper.

    Variables: w'[k][j] at k * d + j, then b'[k] at K * d + k, then c, then,
    for l1, one error e_i per point or, for linf, one error t.
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


def build_fixed_pattern_program(problem: TrainingProblem, signs, pattern) -> FixedPatternProgram:
    """Build the exact fixed-pattern LP (l1, linf) or QP (l2) of `problem`."""
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
