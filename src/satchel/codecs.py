"""Encoding a session record, and signing the id that travels in the cookie.

A record is a short text header (format, created, accessed times) and a JSON body.
Keeping the body separate lets the manager tell "unchanged" by comparing bytes,
which also catches changes made inside nested lists and dicts.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import math
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .errors import BadData, NotSerializable

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_decoder = json.JSONDecoder()


def _c_dumps() -> Callable[[Any], str] | None:
    """``_encoder.encode`` without building a new C encoder on every call (~1 µs).

    One encoder per thread, each with its own circular-reference table (the
    table holds the containers being encoded, so two threads must not share
    one); the table is emptied after an error, which can leave entries in it.
    None where this Python has no C encoder or it takes other arguments.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython has it
        return None

    def build() -> tuple[dict[int, Any], Callable[[Any, int], Any]]:
        markers: dict[int, Any] = {}
        basestring = json.encoder.encode_basestring
        return markers, make(markers, _encoder.default, basestring, None, ":", ",", False, False, False)

    try:
        _, chunks = build()
        if "".join(chunks({"a": [1, 2.5, None, True, "\u00e9"]}, 0)) != '{"a":[1,2.5,null,true,"\u00e9"]}':
            return None  # pragma: no cover
    except TypeError:  # pragma: no cover - another signature
        return None
    local = threading.local()
    join = "".join

    def dumps(value: Any) -> str:
        try:
            markers, chunks = local.encoder
        except AttributeError:
            markers, chunks = local.encoder = build()
        try:
            return join(chunks(value, 0))
        except BaseException:
            markers.clear()
            raise

    return dumps


_dumps: Callable[[Any], str] = _c_dumps() or _encoder.encode
#: The decoder's scanner: one JSON value from a position, without the whitespace
#: handling of ``decode`` (a body never has any). Raises StopIteration when none.
_scan: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]
#: The types of JSON's scalars. A value of exactly one of these is immutable, so a
#: session holding only such values cannot change without its methods being called.
PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})


def only_plain(data: dict[str, Any]) -> bool:
    """Whether every value is exactly one of PLAIN_TYPES: then a shallow copy of
    ``data`` is a full copy, and nothing in it can change in place."""
    for value in data.values():
        if type(value) not in PLAIN_TYPES:
            return False
    return True


#: Integers this short always encode (Python refuses to print ints past
#: sys.get_int_max_str_digits(), 4300 digits by default and at least 640).
SHORT_INT_BITS = 1024

#: The body of a session with no data, no flash messages and no CSRF token.
EMPTY_BODY = b'{"d":{}}'
HEADER_MAGIC = b"S1"


def encode_value(value: Any, key: object) -> str:
    """JSON for one session value, or NotSerializable naming the key."""
    try:
        text = _dumps(value)
        text.encode("utf-8")  # a lone surrogate passes json but not UTF-8
        return text
    except (TypeError, ValueError, RecursionError) as exc:  # a cycle: ValueError
        raise NotSerializable(
            f"session[{key!r}] cannot be stored: {exc}. Session values must be JSON "
            "(str, int, float, bool, None, lists and dicts with str keys)",
            key if isinstance(key, str) else repr(key),
        ) from None


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


def encode_body(
    data: dict[str, Any], flash: dict[str, list[Any]], csrf: str | None, user: str | None = None
) -> bytes:
    # The JSON object {"d": data, "f": flash, "t": csrf, "u": user}, written without
    # building that dict: the same bytes, for less.
    try:
        text = '{"d":' + _dumps(data)
        if flash:
            text += ',"f":' + _dumps(flash)
        if csrf is not None:
            text += ',"t":' + _dumps(csrf)
        if user is not None:
            text += ',"u":' + _dumps(user)
        return (text + "}").encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        # Find the key to name: a nested value changed after it was assigned.
        for key, value in data.items():
            encode_value(value, key)
        for queue, messages in flash.items():
            encode_value(messages, f"flash queue {queue!r}")
        raise


@dataclass(slots=True)
class Body:
    data: dict[str, Any]
    flash: dict[str, list[Any]]
    csrf: str | None
    user: str | None = None


def decode_body(raw: bytes) -> Body:
    try:
        text = raw.decode("utf-8")
        body, end = _scan(text, 0)
        if end != len(text):
            raise ValueError(f"extra data at {end}")
        data, flash, csrf, user = body["d"], body.get("f", {}), body.get("t"), body.get("u")
    except StopIteration as exc:
        raise BadData(f"session body is not valid: no JSON value at {exc.value}") from None
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise BadData(f"session body is not valid: {exc}") from exc
    if (
        type(data) is not dict
        or type(flash) is not dict
        or (flash and not all(type(v) is list for v in flash.values()))
        or not (csrf is None or type(csrf) is str)
        or not (user is None or type(user) is str)
    ):
        raise BadData("session body has the wrong shape")
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


# -- ids and the signed cookie value ---------------------------------------------

ID_BYTES = 32  # 256 bits from the operating system's CSPRNG
_SIG_CONTEXT = b"satchel.session-id.v1|"


def new_session_id() -> str:
    return secrets.token_urlsafe(ID_BYTES)


def store_key(session_id: str) -> str:
    """What a store sees: a hash of the id, so a store dump cannot be replayed as cookies."""
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


_B64URL = bytes.maketrans(b"+/", b"-_")


class Signer:
    """HMAC-SHA256 over the session id under a list of secrets.

    The first secret signs; every secret verifies, so a new secret can be put in
    front and the old one kept until the cookies it signed have expired.
    """

    def __init__(self, secret_list: Iterable[str | bytes], context: bytes = _SIG_CONTEXT) -> None:
        self._keys = [
            hashlib.sha256(b"satchel.signing-key|" + (s.encode() if isinstance(s, str) else s)).digest()
            for s in secret_list
        ]
        if not self._keys:
            raise ValueError("a Signer needs at least one secret")
        self._context = context

    def _mac(self, key: bytes, value: bytes) -> bytes:
        digest = hmac.digest(key, self._context + value, "sha256")  # one-shot: the fast C path
        return binascii.b2a_base64(digest, newline=False).translate(_B64URL).rstrip(b"=")

    def sign(self, value: str) -> str:
        raw = value.encode("ascii")
        return value + "." + self._mac(self._keys[0], raw).decode("ascii")

    def unsign(self, signed: str) -> str | None:
        """The value if some secret signed it, else None (compared in constant time)."""
        value, dot, signature = signed.rpartition(".")
        if not dot or not value:
            return None
        try:
            raw, sig = value.encode("ascii"), signature.encode("ascii")
        except UnicodeEncodeError:
            return None
        valid = False
        for key in self._keys:
            valid |= hmac.compare_digest(self._mac(key, raw), sig)
        return value if valid else None
