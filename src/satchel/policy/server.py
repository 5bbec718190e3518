"""Server-side sessions: from a signed cookie to a Session, and back to a store write.

Everything here decides; nothing does I/O. Each public method is a generator of
store operations (:mod:`satchel.policy.ops`) that a runner carries out.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any

from ..beaker.records import beaker_cookie_id
from ..beaker.transition import Transition
from ..clock import Clock
from ..codecs import (
    EMPTY_BODY,
    Body,
    Signer,
    decode_body,
    encode_body,
    encode_record,
    open_body,
    split_record,
    store_key,
)
from ..config import SessionConfig
from ..errors import BadData, SessionConflict, StoreError, StoreUnavailable
from ..session import Loaded, Session
from ..stores.base import Store
from ..throttled import ThrottledLog
from . import cookies, events
from .limits import RecordLimit
from .merge import MergeStats, merge_counted
from .ops import Delete, Load, Pause, Save, Steps, Touch
from .outage import OutageLog
from .timeouts import Timeouts
from .users import UserIndex

if TYPE_CHECKING:
    from ..stores.aio.base import AsyncStore

log = logging.getLogger("satchel")
security_log = logging.getLogger("satchel.security")

#: What ``regenerate_id`` leaves under the old id for a minute: "moved, nothing here".
MOVED_MARKER = b"S1 moved\n"
MOVED_MARKER_TTL = 60


class Moved(Exception):
    """The id was moved by ``regenerate_id``; the old record is a marker."""


class ServerSessions:
    """The rules of server-side sessions: ids, signing, timeouts, renewal, merging,
    the record cap and the user index."""

    def __init__(
        self,
        settings: SessionConfig,
        clock: Clock,
        session_class: type[Session],
        store: Store | AsyncStore,
        observer: events.Observer = events.UNOBSERVED,
    ) -> None:
        """``store`` is consulted for its name and default record cap only: policies do no I/O.
        ``observer`` hears every decision worth counting (:mod:`satchel.policy.events`)."""
        self.observer = observer
        self.settings = settings
        self.clock = clock
        self.session_class = session_class
        self.signer = Signer(settings.secrets)
        self.timeouts = Timeouts(settings)
        self.limit = RecordLimit(settings.max_records or store.record_cap, clock, store.name)
        self.users = UserIndex(settings.absolute_timeout, clock)
        self.outages = OutageLog(clock)
        #: Bad cookies and records, aggregated: a flood costs a bounded volume of log.
        self.refused = ThrottledLog(security_log, "session cookies or records refused", clock=clock)
        self._resend_on_renew = cookies.has_relative_expiry(settings.cookie)
        #: Converts the sessions of visitors who come back with Beaker's cookie.
        beaker = settings.beaker
        self.transition = Transition(clock, self.timeouts, self.refused, beaker.keys) if beaker is not None else None
        #: Conflicts merged, and leaves changed by two requests (the later commit won).
        self.merge_stats = MergeStats()

    # -- opening ------------------------------------------------------------------

    def open_request(self, cookie_header: str | None) -> Steps[Session]:
        """The session for a request, given its raw ``Cookie`` header."""
        return self.open(cookies.read_cookie(cookie_header, self.settings.cookie.name))

    def open(self, cookie_value: str | None) -> Steps[Session]:
        """The session the cookie names, or a fresh one (never adopting the client's id)."""
        if not cookie_value:
            return self._fresh()
        session_id = self.signer.unsign(cookie_value)
        if session_id is None:
            if self.transition is not None and (beaker_id := beaker_cookie_id(cookie_value, self.transition.keys)):
                return (yield from self.transition.open(beaker_id, self._fresh))
            self._refuse("bad signature", "session cookie with a bad signature; starting a new session")
            return self._fresh(had_cookie=True)
        try:
            loaded = yield from self.load(session_id)
        except Moved:
            # A request that carries the cookie from before a login in another tab:
            # an empty session that is never saved, so neither a new cookie nor a
            # deletion can overtake the one the login sent.
            session = self._fresh()
            session.unsaved = True
            return session
        except StoreUnavailable as exc:
            if self.settings.on_store_error != "fresh":
                raise
            self.observer.event(events.OUTAGE)
            self.outages.log(logging.WARNING, "session store unavailable (%s); serving unsaved sessions", exc)
            return self._fresh(had_cookie=True, store_unavailable=True)
        return loaded if loaded is not None else self._fresh(had_cookie=True)

    def _refuse(self, reason: str, message: str, *args: object) -> None:
        self.observer.event(events.REFUSED, reason)
        self.refused.event(logging.WARNING, reason, message, *args)

    def _fresh(self, *, had_cookie: bool = False, store_unavailable: bool = False, **state: Any) -> Session:
        """A new session started now (by the policy's clock); empty unless ``state`` fills it."""
        return self.session_class(had_cookie=had_cookie, store_unavailable=store_unavailable, clock=self.clock, **state)

    def load(self, session_id: str) -> Steps[Session | None]:
        """The stored session for a verified id, or None; reading never writes, except to
        remove a record that is corrupt or past its absolute lifetime. Raises Moved."""
        key = store_key(session_id)
        record = yield Load(key)
        if record is None:
            return None
        if record.data == MOVED_MARKER:
            raise Moved
        try:
            created, accessed, body_bytes = split_record(record.data)
            body = open_body(body_bytes)
        except BadData as exc:
            self._refuse("corrupt record", "stored session record is corrupt (%s); starting a new session", exc)
            if self.settings.invalidate_corrupt:
                yield Delete(key)
            return None
        now = self.clock()
        if self.timeouts.past_absolute(created, now):
            yield Delete(key)
            return None
        if record.expires_at is None and self.timeouts.idle_expired(accessed, now):
            return None
        return self.session_class(
            body.data,
            entries=body.entries,
            id=session_id,
            created=created,
            accessed=accessed,
            flash=body.flash,
            csrf=body.csrf,
            user_id=body.user,
            loaded=Loaded(body_bytes, record.version, record.expires_at, body.user, key),
            had_cookie=True,
            clock=self.clock,
        )

    # -- committing ---------------------------------------------------------------

    def commit(self, session: Session, secure_request: bool) -> Steps[list[str]]:
        """Persist what the request changed; return the Set-Cookie headers to send."""
        if session.unsaved:
            return []  # the visitor's stored session may be intact: keep their cookie
        try:
            header = yield from self._commit(session, secure_request)
            if self.transition is not None:
                yield from self.transition.finish(session)
        except StoreUnavailable as exc:
            if self.settings.on_store_error != "fresh":
                raise
            self.observer.event(events.OUTAGE)
            self.outages.log(logging.ERROR, "session store unavailable (%s); session changes are being lost", exc)
            return []
        return [] if header is None else [header]

    def discard(self, session: Session, secure_request: bool) -> Steps[list[str]]:
        """Drop the request's changes but carry out its ``invalidate()`` calls: a logout
        sticks whatever happened after it. Returns the headers that remove the cookie."""
        if not session.ended:
            return []
        yield from self._end_invalidated(session)
        return [cookies.delete_cookie_header(self.settings.cookie, secure_request)]

    def _end_invalidated(self, session: Session) -> Steps[None]:
        ended, session.ended = session.ended, []
        for gone in ended:
            key = store_key(gone.id)
            yield Delete(key)
            self.observer.event(events.INVALIDATED)
            if gone.user is not None:
                yield from self._index(gone.user, add=None, remove=key)

    def _commit(self, session: Session, secure_request: bool) -> Steps[str | None]:
        if session.ended:
            yield from self._end_invalidated(session)
        loaded = session.loaded
        old_user = loaded.user if loaded is not None else None
        old_key = loaded.key if loaded is not None else None
        user = session.user_id
        if user is not None and (user != old_user or session.regenerated_from is not None):
            # Indexed before it is written: a login "log out everywhere" would miss
            # fails instead (the index raises when it cannot be written).
            yield from self.users.update(user, add=store_key(session.id), remove=old_key if old_user == user else None)
        if loaded is not None and session.regenerated_from is None:
            header = yield from self._save_loaded(session, secure_request)
        else:
            header = yield from self._save_new_id(session, secure_request)
        if old_user is not None and old_user != user:
            yield from self._index(old_user, add=None, remove=old_key)
        return header

    def _index(self, user: str, add: str | None, remove: str | None) -> Steps[None]:
        try:
            yield from self.users.update(user, add=add, remove=remove)
        except (StoreUnavailable, StoreError) as exc:
            # The session itself is saved: its cookie must still go out.
            log.warning("could not update a user's session index (%s)", exc)

    def _cookie(self, session: Session, secure_request: bool) -> str:
        return cookies.set_cookie_header(self.settings.cookie, self.signer.sign(session.id), secure_request)

    def _save_new_id(self, session: Session, secure_request: bool) -> Steps[str | None]:
        """A session without a stored record under its id: new, or moved by regenerate_id."""
        cookie = self.settings.cookie
        now = self.clock()
        body = session.encode()
        if session.regenerated_from is None:
            if body == EMPTY_BODY:  # save() or changed() on an empty session stores nothing
                return cookies.delete_cookie_header(cookie, secure_request) if session.had_cookie else None
            # Past the record cap new anonymous sessions are served but not saved; a
            # login (a session bound to a user) needs credentials, so it always is.
            if session.user_id is None and not (yield from self.limit.room_for_new_session()):
                self.observer.event(events.CAPPED)
                return None
            yield from self._create(session, body, now)
            self.observer.event(events.CREATED)
            return self._cookie(session, secure_request)
        if not (yield from self._move(session, now)):
            return cookies.delete_cookie_header(cookie, secure_request)
        self.observer.event(events.REGENERATED)
        return self._cookie(session, secure_request)

    def _save_loaded(self, session: Session, secure_request: bool) -> Steps[str | None]:
        """A loaded session that keeps its id: written if it changed, renewed if that is
        due, else nothing (a read-only request encodes nothing)."""
        assert session.loaded is not None
        now = self.clock()
        body = session.changed_body()
        if body is not None:
            try:
                if not (yield from self._update(session, body, now)):
                    return cookies.delete_cookie_header(self.settings.cookie, secure_request)
            except Moved:
                return None  # the browser's new cookie, from the login, must stay
            return self._cookie(session, secure_request) if self._resend_on_renew else None
        if self._renewal_due(session, now):
            yield from self._renew(session, now)
            if self._resend_on_renew:
                return self._cookie(session, secure_request)
        return None

    def _renewal_due(self, session: Session, now: float) -> bool:
        ttl = self.timeouts.ttl(session.created, now)
        expires_at = session.loaded.expires_at if session.loaded is not None else None
        last_renewal = expires_at - ttl if expires_at is not None and ttl is not None else session.accessed
        return self.timeouts.renewal_due(last_renewal, now)

    def _renew(self, session: Session, now: float) -> Steps[None]:
        assert session.loaded is not None
        key, ttl = session.loaded.key or store_key(session.id), self.timeouts.ttl(session.created, now)
        if session.loaded.expires_at is not None:
            yield Touch(key, ttl)
            return
        # The store cannot report expiry, so the record's access time says when it
        # was renewed; rewriting it is the renewal. A conflict means another
        # request wrote it, which renewed it too.
        yield Save(key, encode_record(session.created, now, session.loaded.body), ttl, session.loaded.version)

    def _create(self, session: Session, body: bytes, now: float) -> Steps[None]:
        record = encode_record(session.created, now, body)
        ttl = self.timeouts.ttl(session.created, now)
        while (version := (yield Save(key := store_key(session.id), record, ttl, None))) is None:
            session.assign_new_id()  # taken: vanishingly rare with 256-bit ids
        self._stored(session, body, version, now, key)

    def _update(self, session: Session, body: bytes, now: float) -> Steps[bool]:
        """Write the session conditionally; on a conflict merge this request's changes
        into the latest record and try again. False when the session is gone."""
        assert session.loaded is not None
        key, ttl = session.loaded.key or store_key(session.id), self.timeouts.ttl(session.created, now)
        version = yield Save(key, encode_record(session.created, now, body), ttl, session.loaded.version)
        if version is not None:
            self._stored(session, body, version, now, key)
            return True
        base, current = _loaded_body(session), _current_body(session)
        self.observer.event(events.CONFLICT)
        for attempt in range(self.settings.merge_retries):
            try:
                found = yield from self._latest(key)
            except BadData:
                self._refuse("corrupt record", "stored session record became corrupt; dropping it")
                session.loaded = None
                return False
            if found is None:
                log.info("session was invalidated by another request; dropping this request's changes")
                session.loaded = None
                return False
            latest_version, created, latest_bytes, latest = found
            merged, overwritten = merge_counted(base, current, latest, session.increments)
            merged_bytes = encode_body(merged.data, merged.flash, merged.csrf, merged.user)
            if merged_bytes == latest_bytes:
                version = latest_version  # nothing of this request's is left to write
            else:
                version = yield Save(key, encode_record(created, now, merged_bytes), ttl, latest_version)
            if version is not None:
                self._merged(overwritten)
                session.replace_state(merged.data, merged.flash, merged.csrf, merged.user)
                self._stored(session, merged_bytes, version, now, key)
                return True
            self.observer.event(events.CONFLICT)
            yield Pause(_backoff(attempt))
        self.observer.event(events.RETRIES_EXHAUSTED)
        log.error("a session had %d conflicting writes in a row; giving up", self.settings.merge_retries)
        raise SessionConflict(f"the session kept changing under this request ({self.settings.merge_retries} retries)")

    def _merged(self, overwritten: int) -> None:
        """A conflict resolved by merging; ``overwritten`` leaves went to the later commit."""
        self.merge_stats.record(overwritten)
        self.observer.event(events.MERGED)
        if overwritten:
            self.observer.event(events.OVERWRITTEN, count=overwritten)

    @staticmethod
    def _stored(session: Session, body: bytes, version: Any, now: float, key: str) -> None:
        session.loaded = Loaded(body, version, None, session.user_id, key)
        session.new, session.accessed = False, now
        session.written = session.marked_changed = False
        session.increments = {}

    def _latest(self, key: str) -> Steps[tuple[Any, float, bytes, Body] | None]:
        """The stored record under ``key``, decoded for a merge: (version, created, body
        bytes, body); None when it is gone. Raises Moved, or BadData when undecodable."""
        record = yield Load(key)
        if record is None:
            return None
        if record.data == MOVED_MARKER:
            raise Moved
        created, _, body_bytes = split_record(record.data)
        return record.version, created, body_bytes, decode_body(body_bytes)

    def _move(self, session: Session, now: float) -> Steps[bool]:
        """``regenerate_id``: put the session under its new id, atomically.

        The old record is first replaced, conditionally, by a short-lived marker
        that reads as "gone" and holds no data; changes another request committed
        meanwhile are merged in before that. Requests still carrying the old
        cookie then find no session, and do not delete the (new) cookie either.
        False when the session was invalidated meanwhile.
        """
        assert session.loaded is not None and session.regenerated_from is not None
        old_key = store_key(session.regenerated_from)
        base, current, version = _loaded_body(session), _current_body(session), session.loaded.version
        merged, overwritten = current, 0
        for attempt in range(self.settings.merge_retries + 1):
            if (yield Save(old_key, MOVED_MARKER, MOVED_MARKER_TTL, version)) is not None:
                break
            self.observer.event(events.CONFLICT)
            try:
                found = yield from self._latest(old_key)
            except (Moved, BadData):
                found = None
            if found is None:
                log.info("session was invalidated or moved by another request during regenerate_id")
                session.loaded = None
                return False
            version, _, _, latest = found
            merged, overwritten = merge_counted(base, current, latest, session.increments)
            yield Pause(_backoff(attempt))
        else:
            self.observer.event(events.RETRIES_EXHAUSTED)
            raise SessionConflict("the session kept changing while its id was regenerated")
        if merged is not current:
            self._merged(overwritten)
        current = merged
        session.replace_state(current.data, current.flash, current.csrf, current.user)
        yield from self._create(session, session.encode(), now)
        session.regenerated_from = None
        return True

    # -- a user's sessions ----------------------------------------------------------

    def user_sessions(self, user_id: str | int) -> Steps[list[dict[str, Any]]]:
        return self.users.sessions(str(user_id))

    def revoke_user_sessions(self, user_id: str | int, keep: Session | None = None) -> Steps[int]:
        kept = store_key(keep.id) if keep is not None and keep.loaded is not None else None
        revoked = yield from self.users.revoke(str(user_id), kept)
        if revoked:
            self.observer.event(events.REVOKED, count=revoked)
        return revoked


def _loaded_body(session: Session) -> Body:
    """The body the session was loaded with (empty for a new one)."""
    return decode_body(session.loaded.body) if session.loaded is not None else Body({}, {}, None)


def _current_body(session: Session) -> Body:
    return Body(dict(session), session.flash_queues, session.csrf, session.user_id)


#: The longest wait between two conditional-write attempts, in seconds.
MAX_BACKOFF = 0.1


def _backoff(attempt: int) -> float:
    """Jittered exponential wait before the next conditional-write attempt, capped: a
    request that keeps losing to another process's stream of writes tries again
    often rather than waiting longer and longer (16 attempts wait 1.3 s at most)."""
    return random.uniform(0, min(0.005 * 2**attempt, MAX_BACKOFF))
