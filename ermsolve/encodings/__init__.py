"""Encodings of ReLU training as mixed-integer programs, by name."""

from ermsolve.encodings.base import EncodedModel, EncodingOptions, TrainingProblem, sign_patterns
from ermsolve.encodings.bigm import BigMEncoding
from ermsolve.encodings.cuts import ConvexityCutsEncoding, ObbtConvexityCutsEncoding
from ermsolve.encodings.indicator import IndicatorEncoding
from ermsolve.encodings.naive import NaiveEncoding
from ermsolve.encodings.obbt import ObbtBigMEncoding
from ermsolve.encodings.signs import SignBinariesEncoding
from ermsolve.encodings.sos1 import Sos1Encoding
from ermsolve.errors import UsageError

ENCODINGS = {
    encoding.name: encoding
    for encoding in (
        BigMEncoding,
        IndicatorEncoding,
        Sos1Encoding,
        ObbtBigMEncoding,
        ConvexityCutsEncoding,
        ObbtConvexityCutsEncoding,
        SignBinariesEncoding,
        NaiveEncoding,
    )
}


def get_encoding(name: str):
    """Return a new encoding object for `name`; an unknown name lists the valid ones."""
    try:
        return ENCODINGS[name]()
    except KeyError:
        raise UsageError(f"unknown encoding {name!r}; valid encodings: {', '.join(ENCODINGS)}") from None


__all__ = ["ENCODINGS", "EncodedModel", "EncodingOptions", "TrainingProblem", "get_encoding", "sign_patterns"]
