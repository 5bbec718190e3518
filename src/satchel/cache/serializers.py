"""How values become bytes in shared backends: JSON by default, pickle on request.

JSON (the default) cannot run code when it is read, whoever wrote the bytes.
Pickle can: unpickling data from a cache server that someone else can write to
(a memcached without authentication on a shared network, a Redis shared with
another application) runs that someone's code in this application. It is only
available as ``cache.<region>.serializer = pickle``, and logged at start-up.

A value that cannot be read back (damaged, written by other code, or pickled by
a class that no longer exists) counts as missing: the creator runs again.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any

from dogpile.cache.api import CantDeserializeException

from ..errors import NotSerializable

Serializer = Callable[[Any], bytes]
Deserializer = Callable[[bytes], Any]


def json_dumps(value: Any) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise NotSerializable(
            f"this cache region stores JSON, and the value is not JSON ({exc}); cache plain data "
            "(dict, list, str, int, float, bool, None), or set the region's serializer = pickle "
            "if only this application can write to its cache server (see docs/caching.md)"
        ) from exc


def json_loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:  # also UnicodeDecodeError
        raise CantDeserializeException() from exc


def check_json(value: Any) -> None:
    """Raise :class:`NotSerializable` unless ``value`` could be stored as JSON."""
    json_dumps(value)


def pickle_dumps(value: Any) -> bytes:
    try:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise NotSerializable(f"the value cannot be pickled: {exc}") from exc


def pickle_loads(data: bytes) -> Any:
    try:
        return pickle.loads(data)  # noqa: S301 - opted into with serializer = pickle, see module docstring
    except Exception as exc:  # unpickling raises whatever a class's __reduce__ does
        raise CantDeserializeException() from exc


SERIALIZERS: dict[str, tuple[Serializer, Deserializer]] = {
    "json": (json_dumps, json_loads),
    "pickle": (pickle_dumps, pickle_loads),
}

__all__ = ["SERIALIZERS", "check_json", "json_dumps", "json_loads", "pickle_dumps", "pickle_loads"]
