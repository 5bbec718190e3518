"""Sealing a cookie session's payload: signed (readable, not changeable) or encrypted.

Encrypted: ``"E" + base64url(key id | 96-bit random nonce | AES-256-GCM(payload))``
with associated data that binds the cookie's name; the first key encrypts, every
key decrypts, so keys rotate. Signed: ``"S" + base64url(payload) + "." + HMAC``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import BadData, ConfigurationError
from .signing import Signer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_HKDF_INFO = b"satchel.cookie-session.v1|aes-256-gcm"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_MAC_CHARS = 43  # base64url of an HMAC-SHA256, unpadded


def _b64len(n: int) -> int:
    """Length of unpadded base64url for ``n`` bytes."""
    return (4 * n + 2) // 3


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict unpadded base64url: exactly one spelling per byte string is accepted."""
    try:
        encoded = text.encode("ascii")
        raw = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise BadData("not base64url") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != encoded:
        raise BadData("not canonical base64url")
    return raw


class Sealer:
    """Turns a payload into the cookie text and back; raises BadData on anything wrong."""

    mode = ""

    def sealed_length(self, payload_length: int) -> int:
        raise NotImplementedError

    def seal(self, payload: bytes) -> str:
        raise NotImplementedError

    def open(self, value: str) -> bytes:
        raise NotImplementedError


class SignedSealer(Sealer):
    mode = "signed"

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def sealed_length(self, payload_length: int) -> int:
        return 1 + _b64len(payload_length) + 1 + _MAC_CHARS

    def seal(self, payload: bytes) -> str:
        return self.signer.sign("S" + _b64encode(payload))

    def open(self, value: str) -> bytes:
        if not value.startswith("S"):
            raise BadData("not a signed session cookie")
        signed = self.signer.unsign(value)
        if signed is None:
            raise BadData("bad signature")
        return _b64decode(signed[1:])


class EncryptedSealer(Sealer):
    mode = "encrypted"

    def __init__(self, keys: Sequence[str], associated_data: bytes) -> None:
        try:
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF
        except ImportError:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                'session.encrypt_key needs the cryptography package: pip install "satchel[cookie]"',
                "session.encrypt_key",
            ) from None
        self._invalid_tag = InvalidTag
        self._ciphers: list[tuple[int, AESGCM]] = []
        for key in keys:
            derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
                key.encode("utf-8")
            )
            key_id = hashlib.sha256(b"satchel.cookie-key-id|" + derived).digest()[0]
            self._ciphers.append((key_id, AESGCM(derived)))
        if not self._ciphers:
            raise ConfigurationError("encrypted cookie sessions need session.encrypt_key", "session.encrypt_key")
        self._aad = associated_data

    def sealed_length(self, payload_length: int) -> int:
        return 1 + _b64len(1 + _NONCE_BYTES + payload_length + _TAG_BYTES)

    def seal(self, payload: bytes) -> str:
        key_id, cipher = self._ciphers[0]
        nonce = os.urandom(_NONCE_BYTES)
        sealed = cipher.encrypt(nonce, payload, self._aad)
        return "E" + _b64encode(bytes((key_id,)) + nonce + sealed)

    def open(self, value: str) -> bytes:
        if not value.startswith("E"):
            raise BadData("not an encrypted session cookie")
        raw = _b64decode(value[1:])
        if len(raw) < 1 + _NONCE_BYTES + _TAG_BYTES:
            raise BadData("too short")
        key_id, nonce, sealed = raw[0], raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
        candidates = [cipher for kid, cipher in self._ciphers if kid == key_id]
        if not candidates:
            raise BadData("encrypted under a key that is not configured (or tampered)")
        for cipher in candidates:
            try:
                plain = cipher.decrypt(nonce, sealed, self._aad)
            except self._invalid_tag:
                continue
            return plain
        raise BadData("failed authentication (tampered)")
