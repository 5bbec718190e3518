"""A stored session record: a short text header and a JSON body.

``S1 <created> <accessed>\\n{"d": data, "f": flash, "t": csrf token, "u": user}``

A body whose values hold tagged types (:mod:`.tagged`) starts ``{"x":1,``; any
other body is plain JSON and decodes as such.

Keeping the body apart from the header lets the policy tell "unchanged" by
comparing body bytes, which also catches changes made inside nested values.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ..errors import BadData
from .tagged import PLAIN_TYPES, READ_ERRORS, escaped, is_plain, untag_object
from .values import MAX_DEPTH, dumps, encode_value, to_json, too_deep

#: The body of a session with no data, no flash messages and no CSRF token.
EMPTY_BODY = b'{"d":{}}'
HEADER_MAGIC = b"S1"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a session can hold")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is too large a number for a session")
    return number


# NaN, Infinity and numbers that overflow to them load as errors: a session
# holding one could never be written again.
_decoder = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)
_tagged_decoder = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite, object_hook=untag_object)
TAGGED_START = b'{"x":1,'


@dataclass(slots=True)
class Body:
    """What a session holds, decoded."""

    data: dict[str, Any]
    flash: dict[str, list[Any]]
    csrf: str | None
    user: str | None = None


def _all_plain(data: dict[str, Any], flash: dict[str, list[Any]]) -> bool:
    for value in data.values():
        if type(value) not in PLAIN_TYPES and not is_plain(value):
            return False
    for messages in flash.values():
        for message in messages:
            if type(message) not in PLAIN_TYPES and not is_plain(message):
                return False
    return True


def encode_body(data: dict[str, Any], flash: dict[str, list[Any]], csrf: str | None, user: str | None = None) -> bytes:
    """The body's JSON; NotSerializable naming the key when a value cannot be stored
    (also a value changed in place after it was assigned)."""
    body: dict[str, Any]
    if _all_plain(data, flash):
        body = {"d": data}
    else:
        body = {"x": 1, "d": escaped({key: to_json(value, key) for key, value in data.items()})}
        flash = escaped(
            {
                queue: [to_json(message, f"flash queue {queue!r}") for message in messages]
                for queue, messages in flash.items()
            }
        )
    if flash:
        body["f"] = flash
    if csrf is not None:
        body["t"] = csrf
    if user is not None:
        body["u"] = user
    try:
        return dumps(body).encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        # A number or text JSON cannot carry: find the key to name.
        for key, value in data.items():
            encode_value(value, key)
        for queue, messages in flash.items():
            encode_value(messages, f"flash queue {queue!r}")
        raise


def decode_body(raw: bytes) -> Body:
    """The body of a record, or BadData for anything that is not one."""
    decoder = _tagged_decoder if raw.startswith(TAGGED_START) else _decoder
    try:
        body = decoder.decode(raw.decode("utf-8"))
        data, flash, csrf, user = body["d"], body.get("f", {}), body.get("t"), body.get("u")
    except (*READ_ERRORS, UnicodeDecodeError, AttributeError) as exc:
        raise BadData(f"session body is not valid: {exc}") from None
    if (
        type(data) is not dict
        or type(flash) is not dict
        or not all(type(v) is list for v in flash.values())
        or not (csrf is None or type(csrf) is str)
        or not (user is None or type(user) is str)
    ):
        raise BadData("session body has the wrong shape")
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and any(too_deep(v) for v in data.values()):
        raise BadData(f"session body nests more than {MAX_DEPTH} levels deep")
    return Body(data, flash, csrf, user)


def encode_record(created: float, accessed: float, body: bytes) -> bytes:
    return b"%s %.3f %.3f\n%s" % (HEADER_MAGIC, created, accessed, body)


def split_record(raw: bytes) -> tuple[float, float, bytes]:
    """(created, accessed, body) of a stored record; BadData when it is not one."""
    header, newline, body = raw.partition(b"\n")
    parts = header.split(b" ")
    if not newline or len(parts) != 3 or parts[0] != HEADER_MAGIC:
        raise BadData("stored record has no valid header")
    try:
        return float(parts[1]), float(parts[2]), body
    except ValueError:
        raise BadData("stored record has a bad timestamp") from None
