"""Classification losses for labels y_i in {-1, +1}: the hinge loss and the 0-1 loss.

    hinge     sum_i max(0, 1 - y_i f(x_i))
    zero_one  #{i : y_i f(x_i) <= 0}

A tie f(x_i) = 0 counts as an error under the 0-1 loss, so a network is
credited with point i only when it separates it strictly. Under the hinge
loss a tie costs 1.

Margins and the box. The normalised network of `ermsolve.encodings.base`,
f(x) = sum_k s_k relu(w'_k . x + b'_k) + c with |w'|, |b'| <= R^2 and
|c| <= R, is positively homogeneous in (w', b', c): scaling them by
lambda > 0 scales f by lambda. Inside the box only lambda <= 1 is always
allowed, so f cannot be scaled up at will.

* The hinge loss depends on R. Its margin 1 is fixed, and for a small box no
  network may reach y f >= 1 on any point. For example, on the points
  x = -1, 1 with labels -1, +1 and width K, f(1) - f(-1) <= 2 K R^2, so the
  hinge loss is at least 2 - 2 K R^2.
* The 0-1 loss does not depend on R. Any network, of any size, can be scaled
  down into the box without changing the sign of f on any point, so the set
  of achievable sign vectors, and with it the optimum, is the same for every
  box.

A MIP cannot state the strict inequality y f > 0 directly, so the 0-1
encoding requires a fixed margin mu > 0 (`zero_one_margin`) on the points it
counts as correct. That gives an upper bound on the 0-1 optimum, and it is
the optimum whenever some optimal classifier reaches margin mu in the box.
By homogeneity that holds for all small enough mu, but no useful a priori
value of mu is known. A Cramer bound gives one, but it is far below what a
floating-point solver can resolve. So the training result for a nonzero 0-1
loss is reported as "unproven", with the margin in its basis.
"""

from __future__ import annotations

from gmpy2 import mpq

from ermsolve.errors import InputError

CLASSIFICATION_LOSSES = ("hinge", "zero_one")
LABELS = (mpq(-1), mpq(1))

# Margin mu of the 0-1 encoding, as a fraction of min(R, R^2): the largest
# margin a unit can contribute scales with R^2 and the output bias with R.
# 1/1000 keeps mu about 1000 times above SCIP's default feasibility tolerance 1e-6 for R = 1.
# NOTE: for R below about 1/30, mu falls under that tolerance, and the MIP may count
# points with f = 0 as correct. The exact recovery then rejects the pattern or
# recounts the errors, so the reported loss stays exact, but the search is weaker.
ZERO_ONE_MARGIN_FRACTION = mpq(1, 1000)


def is_classification(loss: str) -> bool:
    return loss in CLASSIFICATION_LOSSES


def zero_one_margin(box) -> mpq:
    """Return the margin mu > 0 the 0-1 MIP requires on correctly classified points."""
    box = mpq(box)
    return ZERO_ONE_MARGIN_FRACTION * min(box, box * box)


def check_labels(targets, loss: str, where: str) -> None:
    """Raise `InputError` naming the first target that is not exactly -1 or +1.

    `targets` is a sequence of target rows. Row numbers follow the CSV file:
    the header is row 1, so point i is on row i + 2.
    """
    for index, row in enumerate(targets):
        for value in row:
            if value not in LABELS:
                raise InputError(
                    f"{where}: row {index + 2} has target {value}, but the {loss} loss needs "
                    "labels -1 or +1; relabel the classes as -1 and +1"
                )


def classification_loss(outputs, labels, loss: str) -> mpq:
    """Return the exact hinge or 0-1 loss of network outputs f_i against labels y_i."""
    if loss == "hinge":
        return sum((max(mpq(0), 1 - mpq(y) * f) for f, y in zip(outputs, labels)), mpq(0))
    if loss == "zero_one":
        return mpq(sum(1 for f, y in zip(outputs, labels) if mpq(y) * f <= 0))
    raise InputError(f"{loss!r} is not a classification loss; valid: {', '.join(CLASSIFICATION_LOSSES)}")
