"""Cookie sessions (``session.type = cookie``): the whole session travels in cookies.

There is no server-side record. The cookie holds a *payload*::

    flag byte (0 = body as is, 1 = body zlib-compressed)
    b"S1 <created> <issued>\\n"          the record header
    body                                 the record body's JSON, maybe compressed

sealed (:mod:`satchel.codecs.sealing`) with ``session.encrypt_key`` (encrypted) or
``session.secret`` (signed). The issue and creation times are inside what is
authenticated, so a replayed cookie past ``timeout`` or ``absolute_timeout`` is
refused whatever the browser kept.

The sealed value is split over at most ``session.max_cookies`` cookies named
``name``, ``name.1``, ...; the first starts with the number of chunks. Every
Set-Cookie line stays within the 4096 bytes browsers keep; a session that would
not fit raises :class:`~satchel.errors.SessionTooLarge` on the write that made it
too large, inside the view.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..beaker.records import beaker_cookie_session, convert
from ..clock import Clock
from ..codecs import EMPTY_BODY, HEADER_MAGIC, Signer, encode_value, open_body, split_record
from ..codecs.sealing import EncryptedSealer, Sealer, SignedSealer
from ..config import SessionConfig
from ..errors import BadData, ConfigurationError, NotSerializable, SessionTooLarge
from ..session import Loaded, Session
from ..throttled import ThrottledLog
from . import cookies, events
from .ops import Steps, immediately
from .timeouts import Timeouts

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
_RAW, _ZLIB = 0, 1
_COUNT = re.compile(r"[1-9][0-9]{0,2}")


class Rejected(Exception):
    """Why a cookie was refused; ``level`` is the log level for the one security line."""

    def __init__(self, message: str, level: int = logging.WARNING, reason: str = "refused") -> None:
        super().__init__(message)
        self.level = level
        #: The short label the refusal is counted under in the aggregated log.
        self.reason = reason


@dataclass(slots=True)
class Chunks:
    """How a cookie session travelled: the chunk indexes the request carried (valid or
    not; 0 is ``name``) and how many the loaded or last sent cookie used."""

    seen: tuple[int, ...] = ()
    count: int = 0


class CookieSessions:
    """The rules of cookie sessions: sealing, chunking, size limits and timeouts."""

    def __init__(
        self,
        settings: SessionConfig,
        clock: Clock,
        session_class: type[Session],
        observer: events.Observer = events.UNOBSERVED,
    ) -> None:
        """``observer`` hears every decision worth counting (:mod:`satchel.policy.events`)."""
        self.observer = observer
        self.settings = settings
        self.clock = clock
        self.session_class = session_class
        self.timeouts = Timeouts(settings)
        #: Refused cookies, aggregated: a flood costs a bounded volume of log.
        self.refused = ThrottledLog(security_log, "session cookies refused", clock=clock)
        if settings.timeout is None and settings.absolute_timeout is None:
            log.warning(
                "session.type = cookie without session.timeout or session.absolute_timeout: "
                "a session cookie, and every copy of it, is accepted for ever"
            )
        name = settings.cookie.name
        self.sealer: Sealer
        if settings.encrypt_keys:
            self.sealer = EncryptedSealer(settings.encrypt_keys, CONTEXT + name.encode("ascii") + b"|E")
        else:
            # Bound to the cookie name, and never valid as a server-side session id.
            self.sealer = SignedSealer(Signer(settings.secrets, context=CONTEXT + name.encode("ascii") + b"|"))
        self.max_cookies = settings.max_cookies
        self._resend_on_renew = cookies.has_relative_expiry(settings.cookie)
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

    def _payload(self, created: float, issued: float, body: bytes) -> bytes:
        header = self._header(created, issued)
        if len(body) >= COMPRESS_MIN:
            packed = zlib.compress(body, 6)
            if len(packed) < len(body):
                return bytes((_ZLIB,)) + header + packed
        return bytes((_RAW,)) + header + body

    def _too_large(self, size: int, what: str) -> SessionTooLarge:
        return SessionTooLarge(
            f"the session {what} needs {size} bytes of cookie value, but {self.max_cookies} cookie(s) of "
            f"{COOKIE_LIMIT} bytes hold {self.capacity} after their names and attributes: keep "
            "less in the session, raise session.max_cookies, or use a server-side store",
            size,
            self.capacity,
        )

    @staticmethod
    def _body(session: Session) -> bytes:
        try:
            return session.encode()
        except UnicodeEncodeError:
            # Text JSON accepts (a lone surrogate) but UTF-8 cannot carry.
            for key, value in session.items():
                try:
                    encode_value(value, key).encode("utf-8")
                except UnicodeEncodeError:
                    raise NotSerializable(
                        f"session[{key!r}] cannot be stored: it holds text UTF-8 cannot encode (a lone surrogate)",
                        key,
                    ) from None
            raise NotSerializable(
                "the session cannot be stored: it holds text UTF-8 cannot encode (a lone surrogate)"
            ) from None

    def _changed_body(self, session: Session) -> bytes | None:
        """The body to send when the loaded session changed, else None."""
        try:
            return session.changed_body()
        except UnicodeEncodeError:
            return self._body(session)  # raises, naming the key

    @staticmethod
    def _check_body(body: bytes) -> None:
        if len(body) > MAX_BODY:
            raise SessionTooLarge(
                f"the session's JSON is {len(body)} bytes; cookie sessions hold at most {MAX_BODY}",
                len(body),
                MAX_BODY,
            )

    def check_size(self, session: Session) -> None:
        """Raise SessionTooLarge unless the session, encoded now, fits its cookies."""
        body = self._body(session)
        self._check_body(body)
        header = 1 + len(self._header(session.created, session.accessed))
        size = self.sealer.sealed_length(header + len(body))
        if size > self.capacity and len(body) >= COMPRESS_MIN:
            size = min(size, self.sealer.sealed_length(header + len(zlib.compress(body, 6))))
        if size > self.capacity:
            raise self._too_large(size, "would be too large:")

    def seal(self, created: float, issued: float, body: bytes) -> list[str]:
        """The chunk values (the first with the count in front); SessionTooLarge if too big."""
        self._check_body(body)
        value = self.sealer.seal(self._payload(created, issued, body))
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

    def read_chunks(self, header: str | None) -> dict[int, str]:
        """The chunk cookies in a raw Cookie header, by index; the first of a name wins."""
        found: dict[int, str] = {}
        if not header or self.settings.cookie.name not in header:
            return found
        for name, value in cookies.cookie_pairs(header):
            index = self._chunk_names.get(name)
            if index is not None and index not in found:
                found[index] = value
        return found

    def open_request(self, cookie_header: str | None) -> Steps[Session]:
        """The session for a request, given its raw ``Cookie`` header."""
        return immediately(self._open(self.read_chunks(cookie_header)))

    def open(self, cookie_value: str | None) -> Steps[Session]:
        """The session in a single (unchunked) cookie value, or a fresh one."""
        return immediately(self._open({0: cookie_value} if cookie_value else {}))

    def _refuse(self, level: int, reason: str, message: str, *args: object) -> None:
        self.observer.event(events.REFUSED, reason)
        self.refused.event(level, reason, message, *args)

    def _fresh(self, seen: Iterable[int] = ()) -> Session:
        session = self.session_class(clock=self.clock)
        session.guard = self.check_size
        session.transport = Chunks(tuple(sorted(seen)))
        session.had_cookie = bool(session.transport.seen)
        return session

    def _open(self, chunks: dict[int, str]) -> Session:
        if not chunks:
            return self._fresh()
        if 0 not in chunks:
            # Chunk cookies without their head; deleted when the response is built.
            self._refuse(
                logging.WARNING,
                "chunks without head",
                "session cookie refused: chunk cookies %s arrived without %s; starting a new session",
                ", ".join(self._chunk_name(k) for k in sorted(chunks)),
                self.settings.cookie.name,
            )
            return self._fresh(chunks)
        if self.settings.beaker is not None and (adopted := self._from_beaker(chunks)) is not None:
            return adopted
        try:
            created, issued, body_bytes = self._verify(chunks, self.clock())
            body = open_body(body_bytes)
        except Rejected as exc:
            self._refuse(exc.level, exc.reason, "session cookie refused: %s; starting a new session", exc)
            return self._fresh(chunks)
        except BadData as exc:
            self._refuse(logging.WARNING, "undecodable", "session cookie refused: %s; starting a new session", exc)
            return self._fresh(chunks)
        session = self.session_class(
            body.data,
            entries=body.entries,
            created=created,
            accessed=issued,
            flash=body.flash,
            csrf=body.csrf,
            user_id=body.user,
            loaded=Loaded(body_bytes, user=body.user),
            had_cookie=True,
            clock=self.clock,
        )
        session.guard = self.check_size
        session.transport = Chunks(tuple(sorted(chunks)), self._count_of(chunks[0]))
        return session

    def _from_beaker(self, chunks: dict[int, str]) -> Session | None:
        """``beaker_transition``: a Beaker cookie session in Beaker's JSON encoding, as a new
        session of ours (sent at commit); None when the cookie is not such a session."""
        assert self.settings.beaker is not None
        stored = beaker_cookie_session(chunks[0], self.settings.beaker.keys) if len(chunks) == 1 else None
        if stored is None:
            return None
        session, now = self._fresh(chunks), self.clock()
        try:
            converted = convert(stored, now)
            session.replace_state(converted.data, converted.flash, converted.csrf, None)
            self.check_size(session)
        except (BadData, SessionTooLarge) as exc:
            self._refuse(logging.WARNING, "beaker cookie", "Beaker cookie session refused: %s; starting afresh", exc)
            return self._fresh(chunks)
        if self.timeouts.past_absolute(converted.created, now) or self.timeouts.idle_expired(converted.accessed, now):
            return self._fresh(chunks)
        session.created = converted.created
        return session

    @staticmethod
    def _count_of(head: str) -> int:
        match = _COUNT.match(head)
        return int(match.group()) if match else 0

    def _verify(self, chunks: dict[int, str], now: float) -> tuple[float, float, bytes]:
        head = chunks[0]
        count = self._count_of(head)
        if count == 0:
            raise BadData("no chunk count in front")
        if count > self.max_cookies:
            raise Rejected(f"it claims {count} chunks, more than session.max_cookies ({self.max_cookies})")
        parts = [head[len(str(count)) :]]
        for k in range(1, count):
            part = chunks.get(k)
            if part is None:
                raise Rejected(f"chunk cookie {self._chunk_name(k)} is missing")
            parts.append(part)
        for k, part in enumerate(parts):
            if len(part) > COOKIE_LIMIT:
                raise Rejected(f"chunk cookie {self._chunk_name(k)} is longer ({len(part)}) than browsers keep")
        created, issued, body = self.unseal("".join(parts))
        self._check_times(created, issued, now)
        return created, issued, body

    def _check_times(self, created: float, issued: float, now: float) -> None:
        """Rejected unless the cookie's times are possible and within the timeouts at ``now``."""
        if not (0 < created <= issued + MAX_CLOCK_SKEW and issued <= now + MAX_CLOCK_SKEW):
            raise Rejected("its times are impossible (created after it was issued, or issued in the future)")
        if self.timeouts.past_absolute(created, now):
            raise Rejected(
                f"expired: started {now - created:.0f} s ago, absolute_timeout is {self.timeouts.absolute}",
                logging.INFO,
                "expired",
            )
        if self.timeouts.idle_expired(issued, now):
            raise Rejected(
                f"expired: issued {now - issued:.0f} s ago, timeout is {self.timeouts.idle}", logging.INFO, "expired"
            )

    # -- committing -------------------------------------------------------------------

    def _renewal_due(self, session: Session, now: float) -> bool:
        if self.timeouts.idle is None and not self._resend_on_renew:
            return False  # nothing would be extended
        return self.timeouts.renewal_due(session.accessed, now)

    def discard(self, session: Session, secure_request: bool) -> Steps[list[str]]:
        """Drop the request's changes; an invalidated cookie session ends when its cookies go."""
        if not session.ended:
            return immediately([])
        self._end_invalidated(session)
        travelled = session.transport if isinstance(session.transport, Chunks) else Chunks()
        return immediately([self._delete(k, secure_request) for k in travelled.seen])

    def commit(self, session: Session, secure_request: bool) -> Steps[list[str]]:
        """The Set-Cookie headers for what the request changed; [] when nothing did."""
        return immediately(self._commit(session, secure_request))

    def _commit(self, session: Session, secure_request: bool) -> list[str]:
        now = self.clock()
        travelled = session.transport if isinstance(session.transport, Chunks) else Chunks()
        loaded = session.loaded.body if session.loaded is not None else None
        # Unchanged since the cookie was read: its body, without encoding the session again.
        if loaded is None:
            body = self._body(session)
        else:
            body = self._changed_body(session) or loaded
        self._end_invalidated(session)
        if body == EMPTY_BODY and not session.marked_changed:
            # Nothing to keep: an empty session needs no cookie, and one it had goes.
            session.transport = Chunks()
            return [self._delete(k, secure_request) for k in travelled.seen]
        changed = session.marked_changed or session.regenerated_from is not None or body != loaded
        if not changed and not self._renewal_due(session, now):
            kept = tuple(k for k in travelled.seen if k < travelled.count)
            session.transport = Chunks(kept, travelled.count)
            return [self._delete(k, secure_request) for k in travelled.seen if k >= travelled.count]
        parts = self.seal(session.created, now, body)
        headers = [
            cookies.set_cookie_header(self._chunk_cookie[k], part, secure_request) for k, part in enumerate(parts)
        ]
        headers += [self._delete(k, secure_request) for k in travelled.seen if k >= len(parts)]
        if loaded is None:
            self.observer.event(events.CREATED)
        elif session.regenerated_from is not None:
            self.observer.event(events.REGENERATED)
        session.new, session.accessed = False, now
        session.loaded = Loaded(body, user=session.user_id)
        session.written = session.marked_changed = False
        session.regenerated_from = None
        session.transport = Chunks(tuple(range(len(parts))), len(parts))
        return headers

    def _end_invalidated(self, session: Session) -> None:
        """The sessions ``invalidate()`` ended: their cookies are replaced or deleted."""
        if session.ended:
            self.observer.event(events.INVALIDATED, count=len(session.ended))
            session.ended = []

    def _chunk_name(self, index: int) -> str:
        name = self.settings.cookie.name
        return name if index == 0 else f"{name}.{index}"

    def _delete(self, index: int, secure_request: bool) -> str:
        if index < len(self._chunk_cookie):
            target = self._chunk_cookie[index]
        else:
            target = dataclasses.replace(self.settings.cookie, name=self._chunk_name(index))
        return cookies.delete_cookie_header(target, secure_request)

    # -- what needs a server-side record --------------------------------------------

    def _no_records(self, what: str) -> NotImplementedError:
        return NotImplementedError(
            f"session.type = cookie keeps no record of sessions on the server, so they cannot be {what}; "
            "removing the encryption key (or secret) in use ends every session at once. "
            "Use a server-side store to do this per user"
        )

    def user_sessions(self, user_id: str | int) -> Steps[list[dict[str, Any]]]:
        """Not possible in cookie mode: raises NotImplementedError."""
        raise self._no_records("listed")

    def revoke_user_sessions(self, user_id: str | int, keep: Session | None = None) -> Steps[int]:
        """Not possible in cookie mode: raises NotImplementedError (returning 0 would
        claim a "log out everywhere" that did not happen)."""
        raise self._no_records("revoked")
