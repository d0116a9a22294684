"""JSON from a gateway or supplier, read strictly.

A signature is checked over the bytes that arrived and the fields are then
read from the parsed object; if the two could disagree (a key sent twice:
Python keeps the last value, another verifier the first), a forger has room.
So: UTF-8 only, no key twice, no NaN or Infinity, a size cap.
"""
from __future__ import annotations

import json

MAX_BYTES = 64 * 1024


class StrictJSONError(ValueError):
    """The body is not JSON kameng will read; the message holds no data."""


def _pairs(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise StrictJSONError("a JSON key appears twice")
        out[key] = value
    return out


def _constant(name):
    raise StrictJSONError("NaN and Infinity are not JSON numbers")


def loads(data: bytes, *, max_bytes: int = MAX_BYTES, parse_float=None, parse_int=None):
    """Parse ``data``; ``parse_float``/``parse_int`` as for :func:`json.loads`
    (``decimal.Decimal`` keeps amounts exact)."""
    if len(data) > max_bytes:
        raise StrictJSONError("the body is too large")
    try:
        text = data.decode("utf-8", "strict")
    except UnicodeDecodeError:
        raise StrictJSONError("the body is not UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant, parse_float=parse_float,
                          parse_int=parse_int)
    except StrictJSONError:
        raise
    except (ValueError, RecursionError):
        raise StrictJSONError("the body is not JSON") from None
