"""Client-side sessions (``session.type = cookie``): the whole session travels in cookies.

There is no server-side record. The cookie holds a *payload*::

    flag byte (0 = body as is, 1 = body zlib-compressed)
    b"S1 <created> <issued>\\n"          the record header of codecs.encode_record
    body                                 codecs.encode_body JSON, maybe compressed

sealed one of two ways, chosen by the settings:

``session.encrypt_key`` given (encrypted mode)
    ``"E" + base64url(key id | 96-bit random nonce | AES-256-GCM(payload))``, the
    cookie's name bound in as associated data. The first key encrypts; every key
    decrypts, so keys rotate. Neither readable nor changeable by the client.

only ``session.secret`` / ``validate_key`` (signed mode)
    ``"S" + base64url(payload) + "." + HMAC-SHA256`` (:class:`~satchel.codecs.Signer`
    under a context of its own). The client cannot change it, but can read it.

The issue time and the creation time are inside what is authenticated, so a
replayed cookie past ``timeout`` (idle since it was issued) or ``absolute_timeout``
is refused whatever the browser kept.

The sealed value is split over at most ``session.max_cookies`` cookies named
``name``, ``name.1``, ... The first one starts with the number of chunks in
decimal. Every ``Set-Cookie`` line (name, value and attributes) stays within the
4096 bytes browsers keep; a session that would not fit raises
:class:`~satchel.errors.SessionTooLarge` on the assignment that made it too large,
inside the view.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import logging
import os
import re
import threading
import time
import zlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import cookies
from .codecs import (
    EMPTY_BODY,
    HEADER_MAGIC,
    Signer,
    decode_body,
    encode_body,
    encode_value,
    new_token,
    split_record,
)
from .errors import BadData, ConfigurationError, NotSerializable, SessionTooLarge
from .manager import SessionManager
from .session import Session
from .settings import SessionSettings
from .stores.base import Record, Store, Version

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger("satchel")
security_log = logging.getLogger("satchel.security")

#: Browsers keep a cookie whose Set-Cookie line (name, value, attributes) fits here.
COOKIE_LIMIT = 4096
#: The decoded body is refused beyond this (a compressed cookie could otherwise
#: expand without bound); assigning more raises SessionTooLarge.
MAX_BODY = 1 << 20
#: Bodies shorter than this are never worth compressing.
COMPRESS_MIN = 96
#: A cookie issued this far in the future (clock skew between servers) is refused.
MAX_CLOCK_SKEW = 300.0
#: Chunk cookies ``name.K`` with K at or above this are ignored entirely.
MAX_CHUNK_INDEX = 64

CONTEXT = b"satchel.cookie-session.v1|"
_HKDF_INFO = b"satchel.cookie-session.v1|aes-256-gcm"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_MAC_CHARS = 43  # base64url of an HMAC-SHA256, unpadded
_RAW, _ZLIB = 0, 1
_COUNT = re.compile(r"[1-9][0-9]{0,2}")


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


class _Rejected(Exception):
    """Why a cookie was refused; ``level`` is the log level for the one security line."""

    def __init__(self, reason: str, level: int = logging.WARNING) -> None:
        super().__init__(reason)
        self.level = level


# -- sealing ------------------------------------------------------------------------


class _Sealer:
    """Turns a payload into the cookie text and back; raises BadData on anything wrong."""

    mode = ""

    def sealed_length(self, payload_length: int) -> int:
        raise NotImplementedError

    def seal(self, payload: bytes) -> str:
        raise NotImplementedError

    def open(self, value: str) -> bytes:
        raise NotImplementedError


class _SignedSealer(_Sealer):
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


class _EncryptedSealer(_Sealer):
    mode = "encrypted"

    def __init__(self, keys: Sequence[str], associated_data: bytes) -> None:
        try:
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF
        except ImportError:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "session.encrypt_key needs the cryptography package: pip install 'satchel[cookie]'",
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


# -- the session class ----------------------------------------------------------------


class ClientSession(Session):
    """A session whose writes check, inside the view, that it still fits its cookies.

    Combined with the application's session class by :func:`client_session_class`
    (``PyramidSession`` keeps its ``ISession`` declaration). Each write re-encodes
    the session, which stays cheap because a cookie session is small by nature.
    Changes made inside nested values (``session["cart"].append(x)``) are not
    seen until the end of the request; there the size is checked again.
    """

    __slots__ = ("_chunk_count", "_chunks_seen", "_client", "_packed")

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        #: The manager that checks the size; None for a session built by hand.
        self._client: ClientSessionManager | None = None
        #: Chunk indexes (0 is ``name``) the request carried, valid or not.
        self._chunks_seen: tuple[int, ...] = ()
        #: How many chunks the loaded (or last sent) cookie used.
        self._chunk_count = 0
        #: (body, compressed body) from the last size check that compressed, for the commit.
        self._packed: tuple[bytes, bytes] | None = None

    def _check(self) -> None:
        if self._client is not None:
            self._client.check_size(self)

    def __setitem__(self, key: str, value: Any) -> None:
        if self._client is None:
            super().__setitem__(key, value)
            return
        missing = object()
        old = dict.get(self, key, missing)
        super().__setitem__(key, value)
        try:
            self._check()
        except BaseException:
            if old is missing:
                dict.__delitem__(self, key)
            else:
                dict.__setitem__(self, key, old)
            raise

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        client = self._client
        if client is None:
            super().update(other, **kwargs)
            return
        before = dict(self)
        self._client = None  # one check for the whole update, and all or nothing
        try:
            super().update(other, **kwargs)
            client.check_size(self)
        except BaseException:
            dict.clear(self)
            dict.update(self, before)
            raise
        finally:
            self._client = client

    def flash(self, msg: Any, queue: str = "", allow_duplicate: bool = True) -> None:
        had_queue = queue in self._flash
        length = len(self._flash.get(queue, ()))
        super().flash(msg, queue, allow_duplicate)
        try:
            self._check()
        except BaseException:
            if had_queue:
                del self._flash[queue][length:]
            else:
                self._flash.pop(queue, None)
            raise

    def new_csrf_token(self) -> str:
        old = self._csrf
        token = super().new_csrf_token()
        try:
            self._check()
        except BaseException:
            self._csrf = old
            raise
        return token

    def bind_user(self, user_id: str | int) -> None:
        old = self.user_id
        super().bind_user(user_id)
        try:
            self._check()
        except BaseException:
            self.user_id = old
            raise

    def regenerate_id(self) -> None:
        """There is no server-side id: the cookie is re-sealed (fresh nonce and issue
        time) and the CSRF token, if there is one, replaced, so a token an attacker
        learnt from a cookie planted before login is worthless after it."""
        super().regenerate_id()
        if self._csrf is not None:
            self._csrf = new_token()


_CLASSES: dict[type[Session], type[ClientSession]] = {}
_CLASSES_LOCK = threading.Lock()


def client_session_class(session_class: type[Session]) -> type[ClientSession]:
    """``session_class`` with the size checks of :class:`ClientSession` mixed in."""
    if issubclass(session_class, ClientSession):
        return session_class
    with _CLASSES_LOCK:
        cls = _CLASSES.get(session_class)
        if cls is None:
            cls = type("Client" + session_class.__name__, (ClientSession, session_class), {"__slots__": ()})
            cls.__module__ = session_class.__module__
            _CLASSES[session_class] = cls
        return cls


# -- a store that is not there -----------------------------------------------------------


class NoStore(Store):
    """What ``ClientSessionManager.store`` is: cookie sessions keep nothing on the server."""

    name = "cookie"

    @property
    def address(self) -> str:
        return "the client's cookies"

    def _refuse(self) -> RuntimeError:
        return RuntimeError("session.type = cookie keeps the session in the cookie; there is no store")

    def load(self, key: str) -> Record | None:
        raise self._refuse()

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> bool:
        raise self._refuse()

    def touch(self, key: str, ttl: int | None) -> bool:
        raise self._refuse()

    def delete(self, key: str) -> None:
        raise self._refuse()


# -- the manager ---------------------------------------------------------------------------


class ClientSessionManager(SessionManager):
    """Opens sessions from their cookies and turns them back into Set-Cookie headers."""

    def __init__(
        self,
        settings: SessionSettings,
        store: Store | None = None,
        session_class: type[Session] = Session,
    ) -> None:
        if store is not None:
            raise ConfigurationError("session.type = cookie keeps no server-side store; do not pass one")
        super().__init__(settings, NoStore(), session_class)
        if settings.timeout is None and settings.absolute_timeout is None:
            log.warning(
                "session.type = cookie without session.timeout or session.absolute_timeout: "
                "a session cookie, and every copy of it, is accepted for ever"
            )
        name = settings.cookie.name
        # Bound to the cookie name, and never valid as a server-side session id.
        self.signer = Signer(settings.secrets, context=CONTEXT + name.encode("ascii") + b"|")
        self.session_class = client_session_class(session_class)
        self.sealer: _Sealer
        if settings.encrypt_keys:
            self.sealer = _EncryptedSealer(settings.encrypt_keys, CONTEXT + name.encode("ascii") + b"|E")
        else:
            self.sealer = _SignedSealer(self.signer)
        self.max_cookies = settings.max_cookies
        self._chunk_cookie = [
            settings.cookie if k == 0 else dataclasses.replace(settings.cookie, name=f"{name}.{k}")
            for k in range(self.max_cookies)
        ]
        # What each chunk cookie's value may hold: 4096 minus the name and the
        # attributes at their longest (Secure included), minus the chunk count in front.
        count_digits = len(str(self.max_cookies))
        self._chunk_capacity = [
            COOKIE_LIMIT
            - len(cookies.set_cookie_header(self._chunk_cookie[k], "", secure_request=True).encode("utf-8"))
            - (count_digits if k == 0 else 0)
            for k in range(self.max_cookies)
        ]
        if min(self._chunk_capacity) < 512:
            raise ConfigurationError(
                "the session cookie's name and attributes leave less than 512 bytes for its value",
                "session.key",
            )
        #: The longest sealed value the cookies can carry.
        self.capacity = sum(self._chunk_capacity)
        self._chunk_names = {f"{name}.{k}": k for k in range(1, MAX_CHUNK_INDEX)}
        self._chunk_names[name] = 0

    # -- encoding -------------------------------------------------------------------

    @staticmethod
    def _header(created: float, issued: float) -> bytes:
        return b"%s %.3f %.3f\n" % (HEADER_MAGIC, created, issued)

    def _payload(self, created: float, issued: float, body: bytes, packed: bytes | None = None) -> bytes:
        header = self._header(created, issued)
        if len(body) >= COMPRESS_MIN:
            if packed is None:
                packed = zlib.compress(body, 6)
            if len(packed) < len(body):
                return bytes((_ZLIB,)) + header + packed
        return bytes((_RAW,)) + header + body

    def _too_large(self, size: int, what: str) -> SessionTooLarge:
        n = self.max_cookies
        return SessionTooLarge(
            f"the session {what} needs {size} bytes of cookie value, but {n} cookie(s) of "
            f"{COOKIE_LIMIT} bytes hold {self.capacity} after their names and attributes: keep "
            "less in the session, raise session.max_cookies, or use a server-side store",
            size,
            self.capacity,
        )

    @staticmethod
    def _body(session: Session) -> bytes:
        try:
            return encode_body(dict(session), session._flash, session._csrf, session.user_id)
        except UnicodeEncodeError:
            # Text JSON accepts (a lone surrogate) but UTF-8 cannot carry.
            for key, value in session.items():
                try:
                    encode_value(value, key).encode("utf-8")
                except UnicodeEncodeError:
                    raise NotSerializable(
                        f"session[{key!r}] cannot be stored: it holds text UTF-8 cannot encode "
                        "(a lone surrogate)",
                        key,
                    ) from None
            raise NotSerializable(
                "the session cannot be stored: it holds text UTF-8 cannot encode (a lone surrogate)"
            ) from None

    def check_size(self, session: Session) -> None:
        """Raise SessionTooLarge unless the session, encoded now, fits its cookies."""
        body = self._body(session)
        if len(body) > MAX_BODY:
            raise SessionTooLarge(
                f"the session's JSON is {len(body)} bytes; cookie sessions hold at most {MAX_BODY}",
                len(body),
                MAX_BODY,
            )
        header = 1 + len(self._header(session.created, session.accessed))
        size = self.sealer.sealed_length(header + len(body))
        if size <= self.capacity:
            return
        if len(body) >= COMPRESS_MIN:
            packed = zlib.compress(body, 6)
            if isinstance(session, ClientSession):
                session._packed = (body, packed)  # the commit will not compress it again
            size = min(size, self.sealer.sealed_length(header + len(packed)))
        if size > self.capacity:
            raise self._too_large(size, "would be too large:")

    def seal(self, created: float, issued: float, body: bytes, packed: bytes | None = None) -> list[str]:
        """The chunk values (the first with the count in front); SessionTooLarge if too big."""
        if len(body) > MAX_BODY:
            raise SessionTooLarge(
                f"the session's JSON is {len(body)} bytes; cookie sessions hold at most {MAX_BODY}",
                len(body),
                MAX_BODY,
            )
        value = self.sealer.seal(self._payload(created, issued, body, packed))
        if len(value) > self.capacity:
            raise self._too_large(len(value), "became too large (changed inside a nested value?):")
        parts: list[str] = []
        start = 0
        for capacity in self._chunk_capacity:
            if start >= len(value):
                break
            parts.append(value[start : start + capacity])
            start += capacity
        parts[0] = f"{len(parts)}{parts[0]}"
        return parts

    def unseal(self, value: str) -> tuple[float, float, bytes]:
        """(created, issued, body JSON) from the joined cookie value, or BadData."""
        payload = self.sealer.open(value)
        if not payload or payload[0] not in (_RAW, _ZLIB):
            raise BadData("unknown payload format")
        created, issued, body = split_record(payload[1:])
        if payload[0] == _ZLIB:
            inflater = zlib.decompressobj()
            try:
                body = inflater.decompress(body, MAX_BODY + 1)
            except zlib.error:
                raise BadData("bad compressed body") from None
            if not inflater.eof or inflater.unconsumed_tail or len(body) > MAX_BODY:
                raise BadData("compressed body is truncated or too large")
        return created, issued, body

    # -- opening --------------------------------------------------------------------

    def _read_chunks(self, header: str | None) -> dict[int, str]:
        """The chunk cookies in a raw Cookie header, by index; the first of a name wins."""
        found: dict[int, str] = {}
        if not header or self.settings.cookie.name not in header:
            return found
        for part in header.split(";"):
            key, eq, value = part.partition("=")
            if not eq:
                continue
            index = self._chunk_names.get(key.strip())
            if index is None or index in found:
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            found[index] = value
        return found

    def open_request(self, cookie_header: str | None) -> Session:
        """The session for a request, given its raw ``Cookie`` header."""
        return self._open(self._read_chunks(cookie_header))

    def open(self, cookie_value: str | None) -> Session:
        """The session in a single (unchunked) cookie value, or a fresh one."""
        return self._open({0: cookie_value} if cookie_value else {})

    def _fresh(self, seen: Iterable[int] = ()) -> ClientSession:
        session = self.session_class()
        assert isinstance(session, ClientSession)
        session._client = self
        session._chunks_seen = tuple(sorted(seen))
        session.had_cookie = bool(session._chunks_seen)
        return session

    def _open(self, chunks: dict[int, str], now: float | None = None) -> ClientSession:
        if not chunks:
            return self._fresh()
        if 0 not in chunks:
            # Chunk cookies without their head; deleted when the response is built.
            security_log.warning(
                "session cookie refused: chunk cookies %s arrived without %s; starting a new session",
                ", ".join(self._chunk_name(k) for k in sorted(chunks)),
                self.settings.cookie.name,
            )
            return self._fresh(chunks)
        now = time.time() if now is None else now
        head = chunks[0]
        # A single cookie this process opened (or sent) before: its authenticated
        # contents are remembered by its exact value; only the clock is checked again.
        remembered = self._decoded.get(head) if len(chunks) == 1 else None
        try:
            if remembered is not None:
                _, created, issued, body, data, csrf, user = remembered
                flash: dict[str, list[Any]] = {}
                self._check_times(created, issued, now)
            else:
                created, issued, body = self._verify(chunks, now)
                decoded = decode_body(body)
                data, flash, csrf, user = decoded.data, decoded.flash, decoded.csrf, decoded.user
                if len(chunks) == 1:
                    self._remember(head, head, created, issued, body, data, flash, csrf, user)
        except _Rejected as exc:
            security_log.log(exc.level, "session cookie refused: %s; starting a new session", exc)
            return self._fresh(chunks)
        except BadData as exc:
            security_log.warning("session cookie refused: %s; starting a new session", exc)
            return self._fresh(chunks)
        session = self.session_class(
            data,  # copied into the session: a remembered dict is never shared
            new=False,
            created=created,
            accessed=issued,
            flash=flash,
            csrf=csrf,
            loaded_body=body,
            had_cookie=True,
            user_id=user,
        )
        assert isinstance(session, ClientSession)
        session._client = self
        session._chunks_seen = tuple(sorted(chunks))
        session._chunk_count = 1 if remembered is not None else self._count_of(head)
        return session

    def _count_of(self, head: str) -> int:
        match = _COUNT.match(head)
        return int(match.group()) if match else 0

    def _verify(self, chunks: dict[int, str], now: float) -> tuple[float, float, bytes]:
        head = chunks[0]
        count = self._count_of(head)
        if count == 0:
            raise BadData("no chunk count in front")
        if count > self.max_cookies:
            raise _Rejected(f"it claims {count} chunks, more than session.max_cookies ({self.max_cookies})")
        parts = [head[len(str(count)) :]]
        for k in range(1, count):
            part = chunks.get(k)
            if part is None:
                raise _Rejected(f"chunk cookie {self._chunk_name(k)} is missing")
            parts.append(part)
        for k, part in enumerate(parts):
            if len(part) > COOKIE_LIMIT:
                raise _Rejected(f"chunk cookie {self._chunk_name(k)} is longer ({len(part)}) than browsers keep")
        created, issued, body = self.unseal("".join(parts))
        self._check_times(created, issued, now)
        return created, issued, body

    def _check_times(self, created: float, issued: float, now: float) -> None:
        """_Rejected unless the cookie's times are possible and within the timeouts at ``now``."""
        settings = self.settings
        if not (0 < created <= issued + MAX_CLOCK_SKEW and issued <= now + MAX_CLOCK_SKEW):
            raise _Rejected("its times are impossible (created after it was issued, or issued in the future)")
        if settings.absolute_timeout is not None and created + settings.absolute_timeout <= now:
            raise _Rejected(
                f"expired: started {now - created:.0f} s ago, absolute_timeout is {settings.absolute_timeout}",
                logging.INFO,
            )
        if settings.timeout is not None and issued + settings.timeout <= now:
            raise _Rejected(
                f"expired: issued {now - issued:.0f} s ago, timeout is {settings.timeout}", logging.INFO
            )

    # -- committing -------------------------------------------------------------------

    def _renewal_due(self, session: Session, now: float) -> bool:
        settings = self.settings
        if settings.renew_interval <= 0:
            return False
        if settings.timeout is None and not self._resend_on_renew:
            return False  # nothing would be extended
        return now - session.accessed >= settings.renew_interval

    def commit(self, session: Session, secure_request: bool = False) -> list[str]:
        """The Set-Cookie headers for what the request changed; [] when nothing did."""
        now = time.time()
        seen: tuple[int, ...] = ()
        count = 0
        cached: tuple[bytes, bytes] | None = None
        if isinstance(session, ClientSession):
            seen, count, cached = session._chunks_seen, session._chunk_count, session._packed
            session._packed = None
        loaded = session._loaded_body
        # Unchanged since the cookie was read: its body, without encoding the session again.
        body = loaded if loaded is not None and session._unchanged() else self._body(session)
        if body == EMPTY_BODY and not session._dirty:
            # Nothing to keep: an empty session needs no cookie, and one it had goes.
            headers = [self._delete(k, secure_request) for k in seen]
            self._sent(session, (), 0)
            return headers
        changed = session._dirty or session._regenerate or body != session._loaded_body
        if not changed and not self._renewal_due(session, now):
            stale = [k for k in seen if k >= count]
            self._sent(session, tuple(k for k in seen if k < count), count)
            return [self._delete(k, secure_request) for k in stale]
        parts = self.seal(session.created, now, body, cached[1] if cached and cached[0] == body else None)
        if len(parts) == 1:  # the browser sends it back next time
            head = parts[0]
            flash, csrf, user = session._flash, session._csrf, session.user_id
            self._remember(head, head, session.created, now, body, session, flash, csrf, user)
        headers = [
            cookies.set_cookie_header(self._chunk_cookie[k], part, secure_request) for k, part in enumerate(parts)
        ]
        headers += [self._delete(k, secure_request) for k in seen if k >= len(parts)]
        session.new, session.accessed = False, now
        session._loaded_body, session._dirty, session._regenerate = body, False, False
        self._sent(session, tuple(range(len(parts))), len(parts))
        return headers

    def _chunk_name(self, index: int) -> str:
        name = self.settings.cookie.name
        return name if index == 0 else f"{name}.{index}"

    def _delete(self, index: int, secure_request: bool) -> str:
        if index < len(self._chunk_cookie):
            target = self._chunk_cookie[index]
        else:
            target = dataclasses.replace(self.settings.cookie, name=self._chunk_name(index))
        return cookies.delete_cookie_header(target, secure_request)

    @staticmethod
    def _sent(session: Session, chunks: tuple[int, ...], count: int) -> None:
        if isinstance(session, ClientSession):
            session._chunks_seen, session._chunk_count = chunks, count

    # -- what needs a server-side record --------------------------------------------

    def _no_records(self, what: str) -> NotImplementedError:
        return NotImplementedError(
            f"session.type = cookie keeps no record of sessions on the server, so they cannot be {what}; "
            "removing the encryption key (or secret) in use ends every session at once. "
            "Use a server-side store to do this per user"
        )

    def user_sessions(self, user_id: str | int) -> list[dict[str, Any]]:
        """Not possible in cookie mode: raises NotImplementedError."""
        raise self._no_records("listed")

    def revoke_user_sessions(self, user_id: str | int, keep: Session | None = None) -> int:
        """Not possible in cookie mode: raises NotImplementedError (returning 0 would
        claim a "log out everywhere" that did not happen)."""
        raise self._no_records("revoked")

    def claim_flash(self, session: Session, queue: str) -> list[Any]:
        """Cookie sessions pop flash messages in memory (the cookie is the only copy)."""
        return session._flash.pop(queue, [])

    def close(self) -> None:
        """Nothing to release: there is no store."""
