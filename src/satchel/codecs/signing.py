"""Session ids, the keys stores see, and the signature on the session cookie."""

from __future__ import annotations

import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable

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
        keys = [
            hashlib.sha256(b"satchel.signing-key|" + (s.encode() if isinstance(s, str) else s)).digest()
            for s in secret_list
        ]
        if not keys:
            raise ValueError("a Signer needs at least one secret")
        # Each key's HMAC state after the context, made once: a signature copies it
        # (a quarter less work than keying HMAC-SHA256 again on every request).
        self._macs = [hmac.new(key, context, hashlib.sha256) for key in keys]

    @staticmethod
    def _mac(keyed: hmac.HMAC, value: bytes) -> bytes:
        mac = keyed.copy()
        mac.update(value)
        return binascii.b2a_base64(mac.digest(), newline=False).translate(_B64URL).rstrip(b"=")

    def sign(self, value: str) -> str:
        raw = value.encode("ascii")
        return value + "." + self._mac(self._macs[0], raw).decode("ascii")

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
        for keyed in self._macs:
            valid |= hmac.compare_digest(self._mac(keyed, raw), sig)
        return value if valid else None
