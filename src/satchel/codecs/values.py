"""Session values: what may be stored, and its JSON text.

A value is refused where it is assigned, naming its key and the type that cannot
be stored, so a bad value fails inside the view instead of at the end of the
request. What may be stored is JSON plus the tagged types of
:mod:`satchel.codecs.tagged`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import NotSerializable
from .tagged import IMMUTABLE_TYPES, MAX_DEPTH, PLAIN_TYPES, TooDeep, Unstorable, is_plain, tag

__all__ = ["MAX_DEPTH", "PLAIN_TYPES", "check_depth", "check_value", "dumps", "encode_value", "only_plain"]

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

#: What a session may hold, for error messages.
STORABLE = (
    "Session values may be JSON (str, int, float, bool, None, lists, dicts with str keys), "
    "tuples, sets, frozensets, bytes, datetimes (naive, fixed offset or zoneinfo), dates, times, "
    "timedeltas, UUIDs and Decimals, and dicts keyed by any of those scalars or tuples"
)

#: Integers this short always encode (Python refuses to print ints past
#: sys.get_int_max_str_digits(), 4300 digits by default and at least 640).
SHORT_INT_BITS = 1024


def dumps(value: Any) -> str:
    """Compact JSON text; raises TypeError/ValueError/RecursionError for what JSON cannot hold."""
    return _encoder.encode(value)


def only_plain(data: dict[str, Any]) -> bool:
    """Whether every value is exactly one of the immutable types: then a shallow copy
    of ``data`` is a full copy, and nothing in it can change in place."""
    return all(type(value) in IMMUTABLE_TYPES for value in data.values())


def _named(key: object) -> str:
    return key if isinstance(key, str) else repr(key)


def to_json(value: Any, key: object) -> Any:
    """``value`` ready for the JSON encoder (itself when it is plain JSON), or
    NotSerializable naming the key and the type that cannot be stored."""
    if is_plain(value):
        return value
    try:
        return tag(value)
    except Unstorable as exc:
        message = f"session[{key!r}] cannot be stored: it holds {exc.what}. {STORABLE}"
        raise NotSerializable(message, _named(key)) from None
    except (TooDeep, RecursionError):
        raise NotSerializable(
            f"session[{key!r}] cannot be stored: lists and dicts in it nest more than {MAX_DEPTH} levels deep",
            _named(key),
        ) from None


def encode_value(value: Any, key: object) -> str:
    """JSON for one session value, or NotSerializable naming the key."""
    try:
        text = dumps(to_json(value, key))
        text.encode("utf-8")  # a lone surrogate passes json but not UTF-8
        return text
    except NotSerializable:
        raise
    except (TypeError, ValueError, RecursionError) as exc:
        raise NotSerializable(f"session[{key!r}] cannot be stored: {exc}. {STORABLE}", _named(key)) from None


_CONTAINERS = (list, dict, tuple, set, frozenset)


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether containers nest more than ``limit`` levels deep in ``value``."""
    level: list[Any] = [value] if isinstance(value, _CONTAINERS) else []
    for _ in range(limit):
        if not level:
            return False
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, _CONTAINERS)
        ]
    return bool(level)


def _brackets(text: str | bytes) -> int:
    """An upper bound on nesting depth, cheap enough to skip the walk for most values."""
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{")
    return text.count("[") + text.count("{")


def check_depth(value: Any, key: object, text: str | bytes) -> None:
    """NotSerializable naming ``key`` when ``value`` (encoded as ``text``) nests too deeply."""
    if _brackets(text) > MAX_DEPTH and too_deep(value):
        raise NotSerializable(
            f"session[{key!r}] cannot be stored: lists and dicts in it nest more than {MAX_DEPTH} levels deep",
            key if isinstance(key, str) else repr(key),
        )


def check_value(value: Any, key: object) -> None:
    """Raise NotSerializable unless ``value`` can be stored; scalars without encoding them."""
    kind = type(value)
    if kind is bool or value is None:
        return
    if kind is int:
        if value.bit_length() > SHORT_INT_BITS:
            encode_value(value, key)  # too long to print
        return
    if kind is str:
        if not value.isascii():
            encode_value(value, key)  # a lone surrogate cannot be stored
        return
    if kind is float:
        if not math.isfinite(value):
            encode_value(value, key)
        return
    encode_value(value, key)
