"""Reading Beaker's pickles without running anyone's code.

Beaker stored sessions as pickles, and unpickling an arbitrary pickle runs
whatever callable it names. Whoever could write to Beaker's store (or plant a
file in its ``data_dir``) must not get code execution out of the migration, so
the unpickler here resolves only the constructors of plain data types and
refuses every other global; the result is checked again, value by value.
"""

from __future__ import annotations

import codecs
import datetime as dt
import decimal
import io
import pickle
import uuid
from typing import Any

from ..errors import BadData


class UnsafeRecord(BadData):
    """A Beaker record that holds something other than plain data, or is not a pickle."""


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What protocol-2 pickles call to rebuild ``bytes``: only that one encoding is allowed."""
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafeRecord("a pickle asked to encode something other than latin-1 text")
    return codecs.encode(text, "latin1")


def _empty_bytes(*args: Any) -> bytes:
    """What protocol-2 pickles call for ``b""``; ``bytes(n)`` would allocate n bytes."""
    if args:
        raise UnsafeRecord("a pickle asked for bytes() with arguments")
    return b""


#: The only globals a Beaker session pickle may name, by (module, name).
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytes"): _empty_bytes,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("__builtin__", "bytes"): _empty_bytes,
    ("_codecs", "encode"): _latin1_bytes,
    ("datetime", "datetime"): dt.datetime,
    ("datetime", "date"): dt.date,
    ("datetime", "time"): dt.time,
    ("datetime", "timedelta"): dt.timedelta,
    ("datetime", "timezone"): dt.timezone,
    ("decimal", "Decimal"): decimal.Decimal,
    ("uuid", "UUID"): uuid.UUID,
}

#: The types a value may have once unpickled.
PLAIN_DATA = (
    dict,
    list,
    tuple,
    str,
    bytes,
    int,
    float,
    bool,
    type(None),
    set,
    frozenset,
    dt.datetime,
    dt.date,
    dt.time,
    dt.timedelta,
    dt.timezone,
    decimal.Decimal,
    uuid.UUID,
)

#: Nesting deeper than this is not a session someone wrote by hand.
MAX_DEPTH = 64
#: More values than this (counting each time one is reached) is not a session either.
MAX_VALUES = 200_000


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise UnsafeRecord(f"the pickle names {module}.{name}, which is not plain data")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeRecord("the pickle refers to a persistent object")


def plain_loads(data: bytes) -> Any:
    """Unpickle ``data`` if it holds plain data only (dict, list, tuple, str, bytes, int,
    float, bool, None, set, frozenset, dates and times, Decimal, UUID); raise
    UnsafeRecord for anything else, including a pickle that does not parse."""
    try:
        value = _PlainUnpickler(io.BytesIO(data)).load()
    except UnsafeRecord:
        raise
    except Exception as exc:  # noqa: BLE001 - every way a crafted pickle can fail is a refusal
        raise UnsafeRecord(f"not a readable pickle ({type(exc).__name__})") from None
    check_plain(value)
    return value


def check_plain(value: Any) -> None:
    """UnsafeRecord unless ``value`` is made of PLAIN_DATA only (exact types, no subclasses).

    The walk counts every value as often as it is reached: a pickle can refer to one
    list many times (or to itself), and would unfold into more than any session holds.
    """
    budget = MAX_VALUES
    level: list[Any] = [value]
    for _ in range(MAX_DEPTH + 1):
        budget -= len(level)
        if budget < 0:
            raise UnsafeRecord(f"the pickle unfolds into more than {MAX_VALUES} values")
        children: list[Any] = []
        for item in level:
            if type(item) not in PLAIN_DATA:
                raise UnsafeRecord(f"the pickle holds a {type(item).__name__}, which is not plain data")
            if type(item) is uuid.UUID and type(item.int) is not int:
                raise UnsafeRecord("the pickle holds a UUID built from something other than a number")
            if isinstance(item, dict):
                children.extend(item.keys())
                children.extend(item.values())
            elif isinstance(item, (list, tuple, set, frozenset)):
                children.extend(item)
        if not children:
            return
        level = children
    raise UnsafeRecord(f"values nest more than {MAX_DEPTH} levels deep")
