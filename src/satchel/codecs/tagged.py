"""The types a session holds beyond JSON, as JSON: tagged values.

Plain JSON (str, int, float, bool, None, lists, dicts with str keys) is stored
as it is. Every other type a session may hold is written as a one-key object
whose key names the type::

    (1, 2)                  {"~tuple": [1, 2]}
    {1, 2}                  {"~set": [1, 2]}        (frozenset: "~frozenset")
    b"\\x00"                {"~bytes": "AA=="}
    datetime, date, time    {"~datetime": "2026-12-03T09:46:38+01:00"}
    a zoneinfo datetime     {"~datetime": ["2026-12-03T09:46:38", "Europe/Paris", 0]}
    timedelta               {"~timedelta": [days, seconds, microseconds]}
    UUID, Decimal           {"~uuid": "..."}, {"~decimal": "1.10"}
    {101: 2}                {"~dict": [[101, 2]]}   (any key that is not str)

A body holding any of these says so (``"x": 1`` next to ``"d"``); only then are
one-key objects whose key starts with ``~`` read as tags, and a dict of the
application's that looks like one is written as ``~dict``. Bodies without the
mark are plain JSON and load as they always did.

Reading constructs only the types above, by exact type, whatever a record says:
an unknown tag, or a tag holding the wrong shape, is corrupt data.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
import uuid
import zoneinfo
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

#: JSON's scalars: stored as they are, at any depth.
PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})

#: How deeply containers may nest in one value, at assignment, commit and load.
MAX_DEPTH = 64

TAG = "~"

_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Unstorable(TypeError):
    """A value of a type a session cannot hold; ``what`` says which, and where."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class TooDeep(ValueError):
    """Containers nest more than MAX_DEPTH levels deep."""


# -- is it plain JSON? -----------------------------------------------------------------


def looks_tagged(value: dict[Any, Any]) -> bool:
    """Whether a dict would read as a tag in a tagged body."""
    if len(value) != 1:
        return False
    key = next(iter(value))
    return type(key) is str and key.startswith(TAG)


_plain_type = PLAIN_TYPES.__contains__


def is_plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is stored as it is: JSON types only, no dict that looks tagged,
    within the depth limit (numbers JSON cannot print are found when encoding)."""
    kind = type(value)
    if kind in PLAIN_TYPES:
        return True
    if depth >= MAX_DEPTH:
        return False
    if kind is list:
        if all(map(_plain_type, map(type, value))):  # scalars only: no Python call per item
            return True
        return all(type(item) in PLAIN_TYPES or is_plain(item, depth + 1) for item in value)
    if kind is dict:
        if len(value) == 1 and looks_tagged(value):
            return False
        for key, item in value.items():
            if type(key) is not str or (type(item) not in PLAIN_TYPES and not is_plain(item, depth + 1)):
                return False
        return True
    return False


# -- writing ---------------------------------------------------------------------------


def _zone_key(zone: tzinfo | None) -> str | None:
    """The zoneinfo key of an aware value's zone; None for a fixed offset."""
    if type(zone) is zoneinfo.ZoneInfo:
        return zone.key
    if type(zone) is timezone:
        return None
    raise Unstorable(f"a datetime whose tzinfo is a {type(zone).__name__} (only fixed offsets and zoneinfo zones)")


def _datetime(value: datetime) -> Any:
    if value.tzinfo is None:
        return value.isoformat()
    key = _zone_key(value.tzinfo)
    if key is None:
        return value.isoformat()
    return [value.replace(tzinfo=None).isoformat(), key, value.fold]


def _decimal_text(value: decimal.Decimal) -> str:
    if value.is_snan():  # it raises on every comparison, so no merge could handle it
        raise Unstorable("a signaling NaN Decimal")
    return str(value)


def _time(value: time) -> str:
    if value.tzinfo is not None and type(value.tzinfo) is not timezone:
        raise Unstorable(f"a time whose tzinfo is a {type(value.tzinfo).__name__} (only fixed offsets)")
    return value.isoformat()


_SCALARS: dict[type, tuple[str, Callable[[Any], Any]]] = {
    bytes: ("~bytes", lambda v: base64.b64encode(v).decode("ascii")),
    datetime: ("~datetime", _datetime),
    date: ("~date", date.isoformat),
    time: ("~time", _time),
    timedelta: ("~timedelta", lambda v: [v.days, v.seconds, v.microseconds]),
    uuid.UUID: ("~uuid", str),
    decimal.Decimal: ("~decimal", lambda v: _decimal_text(v)),
}

#: Types that cannot change in place: a session holding only these (and plain
#: scalars) at its top level is unchanged unless a method wrote to it.
IMMUTABLE_TYPES = PLAIN_TYPES | frozenset(_SCALARS)

_KEY_TYPES = IMMUTABLE_TYPES | {tuple, frozenset}


def _canonical(items: list[Any]) -> list[Any]:
    """Set members in one order (by their JSON), so an unchanged set encodes the same."""
    return sorted(items, key=_compact.encode)


def tag(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-ready data, tagged where JSON has no such type.

    Raises Unstorable for any other type and TooDeep past MAX_DEPTH.
    """
    kind = type(value)
    if kind in PLAIN_TYPES:
        return value
    scalar = _SCALARS.get(kind)
    if scalar is not None:
        return {scalar[0]: scalar[1](value)}
    if depth >= MAX_DEPTH:
        raise TooDeep(f"containers in it nest more than {MAX_DEPTH} levels deep")
    inner = depth + 1
    if kind is list:
        return [tag(item, inner) for item in value]
    if kind is dict:
        if all(type(key) is str for key in value) and not looks_tagged(value):
            return {key: tag(item, inner) for key, item in value.items()}
        return {"~dict": [[_tag_key(key, inner), tag(item, inner)] for key, item in value.items()]}
    if kind is tuple:
        return {"~tuple": [tag(item, inner) for item in value]}
    if kind is set:
        return {"~set": _canonical([tag(item, inner) for item in value])}
    if kind is frozenset:
        return {"~frozenset": _canonical([tag(item, inner) for item in value])}
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    raise Unstorable(f"a {name}")


def _tag_key(key: Any, depth: int) -> Any:
    if type(key) not in _KEY_TYPES:
        raise Unstorable(f"a dict key of type {type(key).__name__}")
    return tag(key, depth)


# -- reading ---------------------------------------------------------------------------


def _text(value: Any) -> str:
    if type(value) is not str:
        raise ValueError("a tag holds the wrong shape")
    return value


def _items(value: Any) -> list[Any]:
    if type(value) is not list:
        raise ValueError("a tag holds the wrong shape")
    return value


def _read_datetime(value: Any) -> datetime:
    if type(value) is str:
        read = datetime.fromisoformat(value)
        if read.tzinfo is not None and type(read.tzinfo) is not timezone:
            raise ValueError("a datetime with an unexpected zone")
        return read
    wall, key, fold = _items(value)
    if type(fold) is not int or fold not in (0, 1):
        raise ValueError("a datetime with a bad fold")
    naive = datetime.fromisoformat(_text(wall))
    if naive.tzinfo is not None:
        raise ValueError("a zoned datetime with an offset")
    return naive.replace(tzinfo=zoneinfo.ZoneInfo(_text(key)), fold=fold)


def _read_timedelta(value: Any) -> timedelta:
    days, seconds, microseconds = _items(value)
    if not all(type(part) is int for part in (days, seconds, microseconds)):
        raise ValueError("a timedelta with parts that are not integers")
    return timedelta(days=days, seconds=seconds, microseconds=microseconds)


def _read_decimal(value: Any) -> decimal.Decimal:
    number = decimal.Decimal(_text(value))
    if number.is_snan():
        raise ValueError("a signaling NaN Decimal")
    return number


def _read_dict(value: Any) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for pair in _items(value):
        key, item = _items(pair)
        out[key] = item  # TypeError for an unhashable key
    return out


_READERS: dict[str, Callable[[Any], Any]] = {
    "~tuple": lambda v: tuple(_items(v)),
    "~set": lambda v: set(_items(v)),
    "~frozenset": lambda v: frozenset(_items(v)),
    "~dict": _read_dict,
    "~bytes": lambda v: base64.b64decode(_text(v), validate=True),
    "~datetime": _read_datetime,
    "~date": lambda v: date.fromisoformat(_text(v)),
    "~time": lambda v: time.fromisoformat(_text(v)),
    "~timedelta": _read_timedelta,
    "~uuid": lambda v: uuid.UUID(_text(v)),
    "~decimal": _read_decimal,
}

#: What reading a tagged record can raise for data that is not one (BadData for the caller).
READ_ERRORS = (ValueError, TypeError, KeyError, OverflowError, ArithmeticError, binascii.Error, RecursionError)


def untag_object(value: dict[str, Any]) -> Any:
    """The JSON decoder's ``object_hook`` for tagged bodies: each object, innermost
    first, becomes the value its tag names; ValueError (or another of READ_ERRORS)
    for a tag ``tag`` never writes."""
    if len(value) != 1:
        return value
    name, inner = next(iter(value.items()))
    if not name.startswith(TAG):
        return value
    reader = _READERS.get(name)
    if reader is None:
        raise ValueError(f"unknown tag {name[:20]!r}")
    return reader(inner)


def escaped(mapping: dict[str, Any]) -> Any:
    """A str-keyed dict of tagged values, as ``tag`` would write the dict itself."""
    return {"~dict": [[key, item] for key, item in mapping.items()]} if looks_tagged(mapping) else mapping
