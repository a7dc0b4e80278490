"""The naive baseline: plain big-M over all output signs, with no symmetry handling."""

from __future__ import annotations

from ermsolve.encodings.signs import SignBinariesEncoding


class NaiveEncoding(SignBinariesEncoding):
    r"""Baseline that speedups are measured against: `SignBinariesEncoding` without any ordering.

    .. math::

        h_{ik} \ge z_{ik},\quad h_{ik} \le z_{ik} - L_i (1 - a_{ik}),\quad
        h_{ik} \le U_i a_{ik},\quad -L_i = U_i = R^2 (|x_i|_1 + 1),

    with the output sign of each unit a free binary (product rows as in
    `SignBinariesEncoding`), no sign ordering and no bias ordering, whatever
    `EncodingOptions.symmetry` requests.

    What the naive baseline was, and why this is not quite it: the original
    measurement used plain big-M with M from the interval bound
    |z| <= R^2 (|x|_1 + 1) and ONE fixed output-sign pattern. A fixed pattern
    searches only the networks with those signs. Its "optimum" is optimal for
    that pattern and can be worse than the optimum over all networks, so
    timing it against a complete method compares unequal searches. This
    encoding keeps what made that baseline naive: interval big-M, no bound
    tightening, no cuts and no symmetry handling. But it lets one MIP choose
    the signs, so what it returns as optimal is optimal over all networks in
    the box. The normalisation in `ermsolve.encodings.base` shows that every
    network is some sign vector with |w'|, |b'| <= R^2. Every sign vector is
    feasible here, with no ordering that could cut one off.

    Measure it with `EncodingOptions(symmetry="none")` (`--symmetry none`),
    which makes `train` switch off SCIP's symmetry detection
    (misc/usesymmetry = 0). Otherwise SCIP finds the unit permutations itself
    and the baseline is no longer naive.
    """

    name = "bigm-naive"
    order_signs = False
    # The baseline as measured had no MIP start; `train` leaves it out with this encoding.
    uses_start = False
    # SCIP parameters that `train` applies with this encoding: no symmetry handling at all.
    solver_parameters = {"misc/usesymmetry": 0}
