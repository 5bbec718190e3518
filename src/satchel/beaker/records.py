"""Beaker's session records, from the bytes Beaker stored to what a satchel session holds.

Beaker's ``Session`` stores one value per session, under the name ``session``:
the session dict, serialized (a protocol-2 pickle by default, zlib-compressed
JSON with ``data_serializer = json``) and base64-encoded. The store wraps that
value once more: a pickled dict in a file, dbm or database row, a pickled
string in Redis, the bare value in memcached. The readers unwrap their store's
layer; everything from the value inward is here.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import hashlib
import hmac
import json
import re
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..codecs import check_value
from ..errors import NotSerializable
from .unpickle import UnsafeRecord, plain_loads

#: The ids Beaker makes (``uuid4().hex``); anything else is not a Beaker session id.
BEAKER_ID = re.compile(r"[0-9a-f]{32}")
#: Beaker's signed cookie: the HMAC-SHA1 of the id in hex, then the id.
_SIGNATURE_LENGTH = 40

#: Keys Beaker keeps in the session dict for itself.
_CREATED, _ACCESSED = "_creation_time", "_accessed_time"
_BEAKER_OWN = frozenset({_CREATED, _ACCESSED, "_domain", "_path", "_id", "_expires"})
#: pyramid_beaker's flash queues and CSRF token, inside the session dict.
FLASH_PREFIX, CSRF_KEY = "_f_", "_csrft_"


@dataclass(frozen=True)
class BeakerSession:
    """A Beaker session converted into what a satchel session holds."""

    data: dict[str, Any]
    created: float
    accessed: float
    flash: dict[str, list[Any]] = field(default_factory=dict)
    csrf: str | None = None


def beaker_cookie_id(cookie_value: str, secrets: Iterable[str]) -> str | None:
    """The Beaker session id a cookie carries, or None.

    Signed cookies are verified (in constant time) with each secret; an unsigned
    one (Beaker without ``secret``) is taken when it has the shape of Beaker's ids,
    as Beaker itself took it.
    """
    value = cookie_value.strip('"')
    if BEAKER_ID.fullmatch(value):
        return value
    signature, beaker_id = value[:_SIGNATURE_LENGTH], value[_SIGNATURE_LENGTH:]
    if not BEAKER_ID.fullmatch(beaker_id):
        return None
    return beaker_id if _signed_by(signature, beaker_id, secrets) else None


def _signed_by(signature: str, payload: str, secrets: Iterable[str]) -> bool:
    """Whether one of ``secrets`` made Beaker's HMAC-SHA1 ``signature`` of ``payload`` (constant time)."""
    valid = False
    for secret in secrets:
        expected = hmac.new(secret.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).hexdigest()
        valid |= hmac.compare_digest(expected, signature)
    return valid


def beaker_cookie_session(cookie_value: str, secrets: Iterable[str]) -> dict[str, Any] | None:
    """The session a Beaker cookie session (``type = cookie``) carries, when it is signed
    by one of ``secrets`` and in Beaker's JSON encoding; None otherwise.

    The client wrote it, so a pickled one is never unpickled, and an encrypted one is
    not guessed at: their visitors start afresh.
    """
    value = cookie_value.strip('"')
    signature, payload = value[:_SIGNATURE_LENGTH], value[_SIGNATURE_LENGTH:]
    if not payload or not _signed_by(signature, payload, secrets):
        return None
    try:
        serialized = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        session = _json_session(serialized)
    except UnsafeRecord:
        return None
    return session if isinstance(session, dict) and session else None


def decode_session_value(value: Any) -> dict[str, Any] | None:
    """The session dict from the value Beaker stored under ``session``; None for an empty
    one. Raises UnsafeRecord for an encrypted, foreign or unsafe value."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode("ascii", "replace")
    if not isinstance(value, bytes):
        raise UnsafeRecord(f"the session value is a {type(value).__name__}, not Beaker's base64 text")
    try:
        serialized = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UnsafeRecord("the session value is not base64 (an encrypted Beaker session?)") from None
    if serialized.startswith(b"\x80"):
        session = plain_loads(serialized)
    else:
        session = _json_session(serialized)
    if not isinstance(session, dict):
        raise UnsafeRecord(f"the session is a {type(session).__name__}, not a dict")
    return session or None


def _json_session(serialized: bytes) -> Any:
    try:
        return json.loads(zlib.decompress(serialized).decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, ValueError):
        raise UnsafeRecord("the session value is neither a pickle nor Beaker's JSON (encrypted?)") from None


def convert(session: dict[str, Any], now: float) -> BeakerSession:
    """What a satchel session keeps of a Beaker session dict.

    pyramid_beaker's ``_f_<queue>`` keys become flash queues and ``_csrft_`` the CSRF
    token; Beaker's own bookkeeping goes. Values become JSON: tuples, sets and
    frozensets lists, dates and times ISO 8601 text, timedeltas seconds, Decimals and
    UUIDs text, bytes text when they are UTF-8. Raises UnsafeRecord for a key that is
    not a string or bytes that are not text.
    """
    data: dict[str, Any] = {}
    flash: dict[str, list[Any]] = {}
    csrf: str | None = None
    for key, value in session.items():
        if not isinstance(key, str):
            raise UnsafeRecord(f"the session has a key of type {type(key).__name__}")
        if key in _BEAKER_OWN:
            continue
        if key == CSRF_KEY and isinstance(value, (str, bytes)):
            csrf = _text(value, key)
        elif key.startswith(FLASH_PREFIX) and isinstance(value, list):
            flash[key[len(FLASH_PREFIX) :]] = _storable([to_json(item, key) for item in value], key)
        else:
            data[key] = _storable(to_json(value, key), key)
    created = _time(session.get(_CREATED), now)
    return BeakerSession(data, created, _time(session.get(_ACCESSED), created), flash, csrf)


def _storable(value: Any, key: str) -> Any:
    """``value`` if a satchel session can store it (the check an assignment makes)."""
    try:
        check_value(value, key)
    except NotSerializable as exc:
        raise UnsafeRecord(str(exc)) from None
    return value


def _time(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _text(value: str | bytes, key: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeRecord(f"session[{key!r}] holds bytes that are not UTF-8 text") from None


def to_json(value: Any, key: str) -> Any:
    """``value`` as JSON data (see :func:`convert`)."""
    if isinstance(value, dict):
        return {_json_key(k, key): to_json(v, key) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item, key) for item in value]
    if isinstance(value, (set, frozenset)):
        items = [to_json(item, key) for item in value]
        return sorted(items, key=repr)
    if isinstance(value, bytes):
        return _text(value, key)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    return value


def _json_key(item: Any, key: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, (int, float, bool)) or item is None:
        return json.dumps(item)  # what JSON itself does with such keys
    raise UnsafeRecord(f"session[{key!r}] has a dict key of type {type(item).__name__}")
