"""Network architectures read from TOML files in `models/`.

Keys (all optional but `hidden` or `width`):

    name        label used in reports
    input_dim   number of features; checked against the data when given
    hidden      list of hidden widths, for example [2]; `width = 2` is short for [2]
    activation  "relu"
    outputs     number of outputs (1)
    loss        "l1" (sum of absolute errors), "l2" (sum of squared errors),
                "linf" (largest absolute error), or, for labels -1/+1,
                "hinge" (sum of max(0, 1 - y f)) or "zero_one" (number of
                points with y f <= 0, so a tie f = 0 is an error). The hinge
                loss depends on the box, because the box bounds the margin
                y f. The 0-1 loss does not (see `ermsolve.classification`).
    box         every parameter lies in [-box, box]; exact text or integer
                such as "1/2" or 4 (default 1)
    domain      "box" (rational parameters in the box, default) or "fixed"
                (fixed point: parameters in 2^-frac_bits Z within the box)
    frac_bits   fractional bits p of the fixed-point domain; needed with "fixed"

TOML floats are read from their literal text, so `box = 0.1` is exactly 1/10.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from gmpy2 import mpq

from ermsolve.errors import InputError, UsageError
from ermsolve.rational import format_rational, parse_rational

LOSSES = ("l1", "l2", "linf", "hinge", "zero_one")
DOMAINS = ("box", "fixed")
ACTIVATIONS = ("relu",)
DEFAULT_BOX = mpq(1)

_KEYS = ("name", "input_dim", "hidden", "width", "activation", "outputs", "loss", "box", "domain", "frac_bits")


@dataclass(frozen=True)
class Architecture:
    """A fully connected network with the loss and the parameter box it is trained under."""

    hidden: tuple[int, ...]
    loss: str = "l1"
    box: mpq = DEFAULT_BOX
    activation: str = "relu"
    outputs: int = 1
    input_dim: int | None = None
    name: str = ""
    domain: str = "box"
    frac_bits: int | None = None

    def __post_init__(self):
        if not self.hidden or any(not isinstance(w, int) or w < 1 for w in self.hidden):
            raise InputError(f"hidden widths must be positive integers, got {list(self.hidden)}")
        if self.loss not in LOSSES:
            raise InputError(f"unknown loss {self.loss!r}; valid losses: {', '.join(LOSSES)}")
        if self.activation not in ACTIVATIONS:
            raise InputError(
                f"unknown activation {self.activation!r}; valid activations: {', '.join(ACTIVATIONS)}"
            )
        if not isinstance(self.outputs, int) or self.outputs < 1:
            raise InputError(f"outputs must be a positive integer, got {self.outputs!r}")
        if mpq(self.box) <= 0:
            raise InputError(f"box must be positive, got {format_rational(self.box)}")
        if self.input_dim is not None and (not isinstance(self.input_dim, int) or self.input_dim < 1):
            raise InputError(f"input_dim must be a positive integer, got {self.input_dim!r}")
        if self.domain not in DOMAINS:
            raise InputError(f"unknown domain {self.domain!r}; valid domains: {', '.join(DOMAINS)}")
        if self.domain == "fixed" and (not isinstance(self.frac_bits, int) or self.frac_bits < 0):
            raise InputError(
                f"the fixed-point domain needs frac_bits, a non-negative integer, got {self.frac_bits!r}"
            )
        if self.domain == "box" and self.frac_bits is not None:
            raise InputError("frac_bits applies only to the fixed-point domain; set domain = \"fixed\" or drop it")

    @property
    def width(self) -> int:
        """Width of the first hidden layer."""
        return self.hidden[0]

    @property
    def depth(self) -> int:
        """Number of hidden layers."""
        return len(self.hidden)

    def with_overrides(self, *, width=None, loss=None, box=None, domain=None, frac_bits=None) -> "Architecture":
        """Return a copy with the given command-line values in place of the file's."""
        changes = {}
        if domain is not None:
            changes["domain"] = domain
            if domain == "box":
                changes["frac_bits"] = None
        if frac_bits is not None:
            changes["frac_bits"] = frac_bits
        if width is not None:
            if self.depth != 1:
                raise UsageError(
                    f"--width sets the width of a one-hidden-layer network, but the model has "
                    f"hidden layers {list(self.hidden)}; edit `hidden` in the model file instead"
                )
            changes["hidden"] = (width,)
        if loss is not None:
            changes["loss"] = loss
        if box is not None:
            changes["box"] = box
        return replace(self, **changes)

    def check_input_dim(self, d: int, where: str) -> None:
        if self.input_dim is not None and self.input_dim != d:
            raise InputError(
                f"the model declares input_dim = {self.input_dim} but {where} has {d} feature columns"
            )

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "input_dim": self.input_dim,
            "hidden": list(self.hidden),
            "activation": self.activation,
            "outputs": self.outputs,
            "loss": self.loss,
            "box": format_rational(self.box),
            "domain": self.domain,
            "frac_bits": self.frac_bits,
        }

    @classmethod
    def from_json(cls, data: dict, where: str = "architecture") -> "Architecture":
        if not isinstance(data, dict):
            raise InputError(f"{where}: expected an object, got {data!r}")
        return _from_mapping(data, where)


def load_architecture(path: str | Path) -> Architecture:
    """Read a TOML architecture file; raise `InputError` naming the file and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: model file not found") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read model file ({error.strerror})") from None
    try:
        data = tomllib.loads(text, parse_float=str)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: invalid TOML ({error})") from None
    architecture = _from_mapping(data, str(path))
    if not architecture.name:
        architecture = replace(architecture, name=path.stem)
    return architecture


def _from_mapping(data: dict, where: str) -> Architecture:
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise InputError(f"{where}: unknown keys {', '.join(unknown)}; valid keys: {', '.join(_KEYS)}")
    if "hidden" in data and "width" in data:
        raise InputError(f"{where}: give either `hidden` or `width`, not both")

    if "width" in data:
        hidden = (_integer(data["width"], "width", where),)
    elif "hidden" in data:
        if not isinstance(data["hidden"], list):
            raise InputError(f"{where}: `hidden` must be a list of widths such as [2], got {data['hidden']!r}")
        hidden = tuple(_integer(w, "hidden", where) for w in data["hidden"])
    else:
        raise InputError(f"{where}: missing `hidden` (a list of widths) or `width`")

    box = DEFAULT_BOX
    if "box" in data and data["box"] is not None:
        raw = data["box"]
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise InputError(f"{where}: `box` must be a number such as 1, \"0.5\" or \"7/3\", got {raw!r}")
        try:
            box = parse_rational(str(raw))
        except InputError as error:
            raise InputError(f"{where}: `box`: {error}") from None

    input_dim = data.get("input_dim")
    if input_dim is not None:
        input_dim = _integer(input_dim, "input_dim", where)
    frac_bits = data.get("frac_bits")
    if frac_bits is not None:
        frac_bits = _integer(frac_bits, "frac_bits", where)

    try:
        return Architecture(
            hidden=hidden,
            loss=str(data.get("loss", "l1")),
            box=box,
            activation=str(data.get("activation", "relu")),
            outputs=_integer(data.get("outputs", 1), "outputs", where),
            input_dim=input_dim,
            name=str(data.get("name", "") or ""),
            domain=str(data.get("domain", "box")),
            frac_bits=frac_bits,
        )
    except InputError as error:
        raise InputError(f"{where}: {error}") from None


def _integer(value, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{where}: `{key}` must be an integer, got {value!r}")
    return value
