"""Write a large instance and a valid certificate for it, to time `ermsolve verify`.

The network is random, with every hidden parameter a multiple of 1/4 in
[-1, 1] and output weights +-1 (the normalised form that certificates use).
It is not a trained network. The certificate states its true exact loss and
activation pattern, which is what `verify` checks, and its optimality block
states that it is synthetic. The targets are a planted
teacher's outputs plus noise (`ermsolve.generate.planted_instance`), so the
loss is not 0.

    .venv/bin/python instances/suites/make_verify_case.py --points 100000 --width 8 --out DIR
    .venv/bin/ermsolve verify DIR/verify-n100000-w8.json DIR/verify-n100000-w8.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from gmpy2 import mpq

from ermsolve.architecture import Architecture
from ermsolve.certificate import build_certificate, write_certificate
from ermsolve.generate import planted_instance
from ermsolve.instance import write_instance
from ermsolve.network import Layer, Network, exact_loss
from ermsolve.rationalize import ExactSolution

STEPS = 4


def random_network(rng: np.random.Generator, d: int, width: int) -> tuple[Network, tuple[int, ...]]:
    """Draw hidden parameters on multiples of 1/STEPS in [-1, 1] and output weights +-1."""
    def draw(size):
        return [mpq(int(k), STEPS) for k in rng.integers(-STEPS, STEPS, endpoint=True, size=size)]

    hidden = Layer(W=tuple(tuple(draw(d)) for _ in range(width)), b=tuple(draw(width)))
    signs = tuple(int(s) for s in rng.choice([-1, 1], size=width))
    output = Layer(W=(tuple(mpq(s) for s in signs),), b=(draw(1)[0],))
    return Network(layers=(hidden, output)), signs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000, help="number of data points (default 100000)")
    parser.add_argument("--width", type=int, default=8, help="hidden units (default 8)")
    parser.add_argument("--dim", type=int, default=3, help="features (default 3)")
    parser.add_argument("--grid", type=int, default=32, help="coordinates are multiples of 1/GRID (default 32)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--out", required=True, help="folder for the CSV and the certificate")
    args = parser.parse_args(argv)

    instance, _ = planted_instance(args.dim, 2, args.points, seed=args.seed, grid=args.grid, noise="1/10")
    network, signs = random_network(np.random.default_rng(args.seed + 1), args.dim, args.width)
    architecture = Architecture(hidden=(args.width,), loss="l1", name=f"width {args.width}")
    pattern = [[1 if z > 0 else 0 for z in network.pre_activations(x)[0]] for x in instance.X]

    solution = ExactSolution(network=network, signs=signs, pattern=pattern,
                             loss=exact_loss(network, instance.X, instance.y, "l1"),
                             method="synthetic: random network, not trained", certified=False)
    result = SimpleNamespace(
        solution=solution, solver="none", solver_version="none", encoding="none", status="synthetic",
        solver_objective=None, dual_bound=None, gap=None, nodes=0, time_s=0.0, time_limit=None, threads=1,
        basis="synthetic certificate for timing `ermsolve verify`; no optimality is claimed", warnings=[],
    )
    certificate = build_certificate(instance, architecture, result)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"verify-n{args.points}-w{args.width}"
    write_instance(out / f"{stem}.csv", instance)
    write_certificate(certificate, out / f"{stem}.json")
    print(f"wrote {out / stem}.csv and {out / stem}.json: n={instance.n}, d={instance.d}, width {args.width}, "
          f"loss {float(solution.loss):.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
