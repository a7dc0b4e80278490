"""The `export` subcommand: write an encoding's MIP to an MPS or LP file for other solvers.

The model goes through the SCIP backend's own translation, so the file contains
the model that `ermsolve solve --solver scip` would solve, with readable
names: w[k][j], b[k], c, h[i][k], a[i][k], e[i] (and sigma[k], p[i][k] for
encodings that choose the output signs). The LP format reserves square
brackets for quadratic terms, so LP files spell the same names w_k_j, h_i_k
and so on. Coefficients are written as doubles, so an exact rational such
as 1/10 appears rounded to the nearest double.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from ermsolve.architecture import LOSSES
from ermsolve.encodings import ENCODINGS, EncodingOptions, get_encoding
from ermsolve.encodings.base import SYMMETRY_MODES
from ermsolve.errors import InputError, UsageError
from ermsolve.model import MipModel

log = logging.getLogger(__name__)

FORMATS = ("mps", "lp")
# An index in a model name, such as the [3] of h[3][0].
_INDEX = re.compile(r"\[(\d+)\]")
EXIT_OK, EXIT_USAGE = 0, 2


def register_cli(subparsers) -> None:
    export = subparsers.add_parser(
        "export",
        help="write the MIP of one output-sign pattern to an MPS or LP file",
        description="Build an encoding's MIP for one output-sign pattern and write it in MPS or LP "
        "format, for solving or inspecting with another solver.",
    )
    export.add_argument("instance", metavar="INSTANCE", help="CSV file: feature columns, then the target column y")
    export.add_argument("--model", metavar="FILE", help="architecture TOML file (default: width 2, l1 loss, box 1)")
    export.add_argument("--width", type=int, help="hidden units; overrides the model file")
    export.add_argument("--loss", choices=LOSSES, help="loss; overrides the model file")
    export.add_argument("--box", metavar="R", help="every parameter in [-R, R], exact (e.g. 2, 0.5, 7/3); "
                        "overrides the model file")
    export.add_argument("--encoding", default="bigm", help=f"MIP encoding (default: bigm); one of: {', '.join(ENCODINGS)}")
    export.add_argument("--symmetry", default="solver", choices=SYMMETRY_MODES,
                        help="bias-order adds bias ordering rows; the other modes write no extra rows")
    export.add_argument("--format", default="mps", help="file format: mps (default) or lp")
    export.add_argument("--out", required=True, metavar="FILE", help="file to write")
    export.add_argument("--signs", metavar="SIGNS",
                        help="output sign per hidden unit as a string of + and -, e.g. +- "
                        "(default: all +); not allowed for encodings that choose the signs")
    # export has no fixed-point models; these defaults let it share solve's problem loader.
    export.set_defaults(handler=run_cli, domain=None, frac_bits=None)


def run_cli(args) -> int:
    """Write the model; return 0 on success and 2, with a message on stderr, on bad input."""
    try:
        path, counts = export_model(args)
    except (InputError, UsageError) as error:
        print(f"ermsolve: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    # The counts are the encoding's own; SCIP may add rows when it writes the file (an epigraph
    # row for a squared loss, one row per side of a two-sided indicator).
    print(f"wrote {path}: encoding model with {counts['variables']} variables ({counts['binary']} binary), "
          f"{counts['linear']} linear, {counts['indicator']} indicator and {counts['sos1']} SOS1 constraints")
    return EXIT_OK


def export_model(args) -> tuple[Path, dict]:
    """Build the model the arguments describe and write it; return the path and the model's counts."""
    file_format = (args.format or "").lower()
    if file_format not in FORMATS:
        raise UsageError(f"unknown format {args.format!r}; valid formats: {', '.join(FORMATS)}")
    if args.width is not None and args.width < 1:
        raise UsageError(f"--width must be a positive integer, got {args.width}")
    encoder = get_encoding(args.encoding)
    if isinstance(args.box, str):
        args.box = _parse_box(args.box)
    from ermsolve.commands import load_problem

    problem, _ = load_problem(args)
    signs = _choose_signs(encoder, args.signs, problem.width)

    encoded = encoder.build(problem, signs, EncodingOptions(symmetry=args.symmetry))
    path = Path(args.out)
    write_model(encoded.model, path, file_format)
    counts = encoded.model.count()
    log.info("exported %s to %s: %s", encoded.model.name, path, counts)
    return path, counts


def write_model(mip, path: Path, file_format: str) -> None:
    """Translate `mip` with the SCIP backend and write it to `path` in `file_format`.

    SCIP picks the writer from the file extension, so the model is written to
    a temporary file with the right extension in the target folder, then
    renamed. `path` may carry any name.
    """
    from ermsolve.backends.scip import ScipBackend, _import_scip

    pyscipopt = _import_scip()
    if file_format == "lp":
        mip = _with_lp_names(mip)
    backend = ScipBackend()
    scip = pyscipopt.Model(mip.name)
    scip.hideOutput()
    # NOTE: these are the backend's private translation steps; they are reused so that the
    # file matches what the SCIP backend solves. A change of their signatures breaks export.
    variables = backend._add_variables(scip, mip)
    backend._add_constraints(scip, mip, variables, pyscipopt)
    backend._set_objective(scip, mip, variables, pyscipopt)

    folder = path.resolve().parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: folder {folder} not found")
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(suffix=f".{file_format}", dir=folder)
        os.close(handle)
        scip.writeProblem(temporary, verbose=False)
        os.replace(temporary, path)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error}") from None
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)


def _with_lp_names(mip: MipModel) -> MipModel:
    """Return a copy of `mip` whose names spell each index [n] as _n, which the LP format can read."""

    def rename(name: str) -> str:
        return _INDEX.sub(r"_\1", name)

    return replace(
        mip,
        variables=[replace(v, name=rename(v.name)) for v in mip.variables],
        linear=[replace(c, name=rename(c.name)) for c in mip.linear],
        indicators=[replace(c, name=rename(c.name)) for c in mip.indicators],
        sos1=[replace(c, name=rename(c.name)) for c in mip.sos1],
    )


def _choose_signs(encoder, text: str | None, width: int) -> tuple[int, ...] | None:
    if getattr(encoder, "sign_binaries", False):
        if text is not None:
            raise UsageError(
                f"encoding {encoder.name!r} chooses the output signs in the MIP; leave out --signs"
            )
        return None
    if text is None:
        return (1,) * width
    if len(text) != width or any(ch not in "+-" for ch in text):
        raise UsageError(
            f"--signs must be {width} characters, each + or -, one per hidden unit; got {text!r}"
        )
    return tuple(1 if ch == "+" else -1 for ch in text)


def _parse_box(text: str):
    from ermsolve.rational import parse_rational

    try:
        box = parse_rational(text)
    except (ValueError, InputError) as error:
        raise UsageError(f"--box must be an exact positive number such as 2, 0.5 or 7/3, got {text!r}: {error}") from None
    if box <= 0:
        raise UsageError(f"--box must be positive, got {text!r}")
    return box
