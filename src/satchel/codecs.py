"""Encoding a session record, and signing the id that travels in the cookie.

A record is a short text header (format, created, accessed times) and a JSON body.
Keeping the body separate lets the manager tell "unchanged" by comparing bytes,
which also catches changes made inside nested lists and dicts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import BadData, NotSerializable

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_decoder = json.JSONDecoder()

#: The body of a session with no data, no flash messages and no CSRF token.
EMPTY_BODY = b'{"d":{}}'
HEADER_MAGIC = b"S1"


def encode_value(value: Any, key: object) -> str:
    """JSON for one session value, or NotSerializable naming the key."""
    try:
        text = _encoder.encode(value)
        text.encode("utf-8")  # a lone surrogate passes json but not UTF-8
        return text
    except (TypeError, ValueError) as exc:
        raise NotSerializable(
            f"session[{key!r}] cannot be stored: {exc}. Session values must be JSON "
            "(str, int, float, bool, None, lists and dicts with str keys)",
            key if isinstance(key, str) else repr(key),
        ) from None


def encode_body(
    data: dict[str, Any], flash: dict[str, list[Any]], csrf: str | None, user: str | None = None
) -> bytes:
    body: dict[str, Any] = {"d": data}
    if flash:
        body["f"] = flash
    if csrf is not None:
        body["t"] = csrf
    if user is not None:
        body["u"] = user
    try:
        return _encoder.encode(body).encode("utf-8")
    except (TypeError, ValueError):
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
        body = _decoder.decode(raw.decode("utf-8"))
        data, flash, csrf, user = body["d"], body.get("f", {}), body.get("t"), body.get("u")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise BadData(f"session body is not valid: {exc}") from exc
    if (
        not isinstance(data, dict)
        or not isinstance(flash, dict)
        or not all(isinstance(v, list) for v in flash.values())
        or not (csrf is None or isinstance(csrf, str))
        or not (user is None or isinstance(user, str))
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
        return base64.urlsafe_b64encode(digest).rstrip(b"=")

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
