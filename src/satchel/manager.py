"""Session policy: from a cookie to a Session, and from a Session back to a store write.

The manager is the only part that combines ids, signing, timeouts, renewal,
lazy creation and conflict merging. It knows nothing of any web framework: the
edges hand it the cookie value and get back the Set-Cookie header to send.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections import Counter
from typing import Any

from . import cookies
from .codecs import (
    EMPTY_BODY,
    Body,
    Signer,
    decode_body,
    encode_body,
    encode_record,
    encode_value,
    new_session_id,
    only_plain,
    split_record,
    store_key,
)
from .errors import BadData, SessionConflict, StoreError, StoreUnavailable
from .session import Session
from .settings import SessionSettings
from .stores import Store, open_store

log = logging.getLogger("satchel")
security_log = logging.getLogger("satchel.security")

MAX_SESSIONS_PER_USER = 100
#: What ``regenerate_id`` leaves under the old id for a minute: "moved, nothing here".
MOVED_MARKER = b"S1 moved\n"
MOVED_MARKER_TTL = 60
#: How often the record count behind ``max_records`` is refreshed from the store.
COUNT_REFRESH_SECONDS = 5.0
OUTAGE_LOG_SECONDS = 5.0
#: Conditional writes of one session in a process take turns on one of these locks,
#: so they conflict only with other processes. Sessions sharing a stripe take turns too.
WRITE_LOCK_STRIPES = 256
#: Flat records (no list or dict values, no flash messages) decoded recently, by store
#: key: loading the same bytes again copies the values instead of parsing header and JSON.
DECODED_RECORDS = 4096
DECODED_RECORD_MAX_BYTES = 2048
#: Cookie values whose signature verified, with their id and store key: a browser
#: sends the same value on every request, and checking it again would find the same.
VERIFIED_COOKIES = 4096
#: Whole Cookie headers whose session cookie verified, up to this length: a browser
#: sends the same header on every request, so the header alone finds the id.
VERIFIED_HEADER_MAX_CHARS = 1024


#: A remembered flat record: its bytes, then created, accessed, body bytes, data, csrf, user.
_Decoded = tuple[bytes | str, float, float, bytes, dict[str, Any], str | None, str | None]


class _Moved(Exception):
    """The id was moved by ``regenerate_id``; the old record is a marker."""


class SessionManager:
    """Opens sessions from cookies and commits them to a store."""

    def __init__(
        self,
        settings: SessionSettings,
        store: Store | None = None,
        session_class: type[Session] = Session,
    ) -> None:
        self.settings = settings
        self.store = store if store is not None else open_store(settings.store)
        self.signer = Signer(settings.secrets)
        self.session_class = session_class
        self._resend_on_renew = cookies.has_relative_expiry(settings.cookie)
        self._record_cap = settings.max_records if not settings.client_side else None
        self._counted_at = -COUNT_REFRESH_SECONDS
        self._known_count: int | None = None
        self._cap_logged_at = -COUNT_REFRESH_SECONDS
        self._outage_logged_at = -OUTAGE_LOG_SECONDS
        # Conditional writes of one session in this process take turns, so they
        # conflict only with other processes' writes, never with each other.
        self._write_locks = [threading.Lock() for _ in range(WRITE_LOCK_STRIPES)]
        self._claim_flash = self.claim_flash  # one bound method, for every session loaded
        # signed cookie value -> (session id, store key), for values that verified
        self._verified: dict[str, tuple[str, str]] = {}
        # raw Cookie header -> the same, for headers whose session cookie verified;
        # not for a subclass with its own ``open``, which sees every cookie value
        self._verified_headers: dict[str | None, tuple[str, str]] = {}
        self._remember_headers = type(self).open is SessionManager.open
        # store key (a sealed cookie value in cookie mode) -> (record bytes, created,
        # accessed, body bytes, data, csrf, user) of a flat record
        self._decoded: dict[str, _Decoded] = {}

    def _write_lock(self, key: str) -> threading.Lock:
        """The lock this process's writes of ``key`` take turns on (one of a fixed set)."""
        return self._write_locks[hash(key) % WRITE_LOCK_STRIPES]

    def _cookie(self, session: Session, secure_request: bool) -> str:
        return cookies.set_cookie_header(self.settings.cookie, self.signer.sign(self._id(session)), secure_request)

    def _latest(self, key: str) -> tuple[Any, float, bytes, Body] | None:
        """The stored record under ``key`` decoded, for a merge: (record, created, body
        bytes, body); None when it is gone. Raises _Moved for a moved session and
        BadData for a record that cannot be decoded."""
        record = self.store.load(key)
        if record is None:
            return None
        if record.data == MOVED_MARKER:
            raise _Moved
        created, _, body_bytes = split_record(record.data)
        return record, created, body_bytes, decode_body(body_bytes)

    def _outage_log(self, level: int, message: str, exc: Exception) -> None:
        """Log an outage at most once per OUTAGE_LOG_SECONDS: not a line per request."""
        clock = time.monotonic()
        if clock - self._outage_logged_at >= OUTAGE_LOG_SECONDS:
            self._outage_logged_at = clock
            log.log(level, message, exc)

    # -- opening ------------------------------------------------------------------

    def open_request(self, cookie_header: str | None) -> Session:
        """The session for a request, given its raw ``Cookie`` header."""
        verified = self._verified_headers.get(cookie_header)
        if verified is not None:
            return self._open_verified(verified)
        value = cookies.read_cookie(cookie_header, self.settings.cookie.name)
        session = self.open(value)
        if value and cookie_header and len(cookie_header) <= VERIFIED_HEADER_MAX_CHARS and self._remember_headers:
            verified = self._verified.get(value)
            if verified is not None:
                _remember_bounded(self._verified_headers, cookie_header, verified, VERIFIED_COOKIES)
        return session

    def open(self, cookie_value: str | None) -> Session:
        """The session the cookie names, or a fresh one (never adopting the client's id)."""
        if not cookie_value:
            return self.session_class()
        verified = self._verified.get(cookie_value)
        if verified is None:
            session_id = self.signer.unsign(cookie_value)
            if session_id is None:
                security_log.warning("session cookie with a bad signature; starting a new session")
                return self.session_class(had_cookie=True)
            verified = (session_id, store_key(session_id))
            _remember_bounded(self._verified, cookie_value, verified, VERIFIED_COOKIES)
        return self._open_verified(verified)

    def _open_verified(self, verified: tuple[str, str]) -> Session:
        """The session of a verified (id, store key), or a fresh one."""
        try:
            loaded = self._load(verified[0], verified[1])
        except _Moved:
            # A request that carries the cookie from before a login in another tab:
            # an empty session that is never saved, so neither a new cookie nor a
            # deletion can overtake the one the login sent.
            session = self.session_class()
            session.unsaved = True
            return session
        except StoreUnavailable as exc:
            if self.settings.on_store_error != "fresh":
                raise
            self._outage_log(logging.WARNING, "session store unavailable (%s); serving unsaved sessions", exc)
            return self.session_class(had_cookie=True, store_unavailable=True)
        return loaded if loaded is not None else self.session_class(had_cookie=True)

    def load(self, session_id: str, now: float | None = None) -> Session | None:
        """The stored session for a verified id, or None; reading never writes,
        except to remove a record that is corrupt or past its absolute lifetime."""
        try:
            return self._load(session_id, store_key(session_id), now)
        except _Moved:
            return None

    def _load(self, session_id: str, key: str, now: float | None = None) -> Session | None:
        record = self.store.load(key)
        if record is None:
            return None
        if record.data == MOVED_MARKER:
            raise _Moved
        decoded = self._decoded.get(key)
        if decoded is not None and decoded[0] == record.data:
            _, created, accessed, body_bytes, data, csrf, user = decoded
            flash: dict[str, list[Any]] = {}
        else:
            try:
                created, accessed, body_bytes = split_record(record.data)
                body = decode_body(body_bytes)
            except BadData as exc:
                security_log.warning("stored session record is corrupt (%s); starting a new session", exc)
                if self.settings.invalidate_corrupt:
                    self.store.delete(key)
                return None
            data, flash, csrf, user = body.data, body.flash, body.csrf, body.user
            self._remember(key, record.data, created, accessed, body_bytes, data, flash, csrf, user)
        settings = self.settings
        if settings.absolute_timeout is not None or (record.expires_at is None and settings.timeout is not None):
            now = time.time() if now is None else now
            if settings.absolute_timeout is not None and created + settings.absolute_timeout <= now:
                self.store.delete(key)
                return None
            if record.expires_at is None and settings.timeout is not None and accessed + settings.timeout <= now:
                return None
        # _stored copies ``data`` into the session: the remembered dict is never shared.
        return self.session_class._stored(
            data,
            session_id,
            created,
            accessed,
            flash,
            csrf,
            user,
            record.version,
            body_bytes,
            record.expires_at,
            self._claim_flash,
            (session_id, key),
        )

    def _remember(
        self,
        key: str,
        raw: bytes | str,
        created: float,
        accessed: float,
        body_bytes: bytes,
        data: dict[str, Any],
        flash: dict[str, list[Any]],
        csrf: str | None,
        user: str | None,
    ) -> None:
        """Keep a flat record's decoded values for its next load (see DECODED_RECORDS).

        Only records whose values are all of JSON's scalar types exactly (str, int,
        float, bool, None) and that hold no flash messages: a shallow copy of those is
        a full copy, and a session the request wrote holds just what decoding its
        record would give back.
        """
        if flash or len(raw) > DECODED_RECORD_MAX_BYTES or not only_plain(data):
            return  # flash lists, too large, mutable values, or not what decoding gives back
        remembered = (raw, created, accessed, body_bytes, dict(data), csrf, user)
        _remember_bounded(self._decoded, key, remembered, DECODED_RECORDS)

    # -- committing ---------------------------------------------------------------

    def _ttl(self, session: Session, now: float) -> int | None:
        settings = self.settings
        if settings.absolute_timeout is None:
            return settings.timeout
        remaining = max(1, int(session.created + settings.absolute_timeout - now))
        return remaining if settings.timeout is None else min(settings.timeout, remaining)

    def commit(self, session: Session, secure_request: bool = False) -> list[str]:
        """Persist what the request changed; return the Set-Cookie headers to send."""
        if session.unsaved:
            # The visitor's stored session may be intact: keep their cookie.
            return []
        try:
            header = self._commit(session, secure_request)
        except StoreUnavailable as exc:
            if self.settings.on_store_error != "fresh":
                raise
            self._outage_log(logging.ERROR, "session store unavailable (%s); session changes are being lost", exc)
            return []
        return [] if header is None else [header]

    def _save_loaded(self, session: Session, secure_request: bool) -> str | None:
        """Commit a loaded session that keeps its id and user: write it if it changed,
        renew it if that is due, else nothing (a read-only request encodes nothing)."""
        loaded, now = session._loaded_body, time.time()
        if loaded is not None and session._unchanged():
            body = loaded
        else:
            # The session is a dict: encoded as it is, without a copy.
            body = encode_body(session, session._flash, session._csrf, session.user_id)
        if session._dirty or body != loaded:
            try:
                if not self._update(session, body, now):
                    return cookies.delete_cookie_header(self.settings.cookie, secure_request)
            except _Moved:
                return None  # the browser's new cookie, from the login, must stay
            if self._resend_on_renew:
                return self._cookie(session, secure_request)
            return None
        if self._renewal_due(session, now):
            self._renew(session, body, now)
            if self._resend_on_renew:
                return self._cookie(session, secure_request)
        return None

    def _commit(self, session: Session, secure_request: bool) -> str | None:
        old_id = session.id if session.id is not None else next(iter(session.invalidated_ids[-1:]), None)
        old_user = session._loaded_user
        header = self._write(session, secure_request)
        user = session.user_id
        if user == old_user and session.id == old_id:
            return header
        old_key = store_key(old_id) if old_id is not None else None
        new_key = store_key(session.id) if session.id is not None else None
        try:
            if old_user is not None and old_user != user:
                self._index_update(old_user, add=None, remove=old_key)
            if user is not None:
                # Same user under a new id (a login's regenerate_id): one index write.
                self._index_update(user, add=new_key, remove=old_key if old_user == user else None)
        except (StoreUnavailable, StoreError) as exc:
            # The session itself is saved: its cookie must still go out.
            log.warning("could not update a user's session index (%s)", exc)
        session._loaded_user = user
        return header

    def _write(self, session: Session, secure_request: bool) -> str | None:
        for old_id in session.invalidated_ids:
            self.store.delete(store_key(old_id))
        if session.id is not None and not session._regenerate:
            return self._save_loaded(session, secure_request)
        now = time.time()
        cookie = self.settings.cookie
        # The session is a dict: encoded as it is, without a copy.
        body = encode_body(session, session._flash, session._csrf, session.user_id)
        if session.id is None:
            if body == EMPTY_BODY:  # save() or changed() on an empty session stores nothing
                if session.had_cookie:
                    return cookies.delete_cookie_header(cookie, secure_request)
                return None
            if not self._room_for_new_session():
                return None
            self._create(session, body, now)
            return self._cookie(session, secure_request)
        # regenerate_id()
        if not self._move(session, body, now):
            return cookies.delete_cookie_header(cookie, secure_request)
        return self._cookie(session, secure_request)

    @staticmethod
    def _id(session: Session) -> str:
        assert session.id is not None
        return session.id

    @staticmethod
    def _key(session: Session) -> str:
        """The store key of the session's id; hashed once per id (kept on the session)."""
        cached = session._key
        if cached is not None and cached[0] is session.id:
            return cached[1]
        session_id = SessionManager._id(session)
        key = store_key(session_id)
        session._key = (session_id, key)
        return key

    def _room_for_new_session(self) -> bool:
        """False once the store holds ``max_records`` records (counted every few seconds)."""
        cap = self._record_cap
        if cap is None:
            return True
        clock = time.monotonic()
        if clock - self._counted_at >= COUNT_REFRESH_SECONDS:
            self._known_count, self._counted_at = self.store.count(), clock
            if self._known_count is None:
                log.warning("max_records cannot be enforced: the %s store cannot count its records", self.store.name)
                self._record_cap = None
        elif self._known_count is not None:
            self._known_count += 1
        if self._known_count is None or self._known_count < cap:
            return True
        if clock - self._cap_logged_at >= COUNT_REFRESH_SECONDS:
            self._cap_logged_at = clock
            log.warning(
                "session store holds %d records, max_records is %d: new sessions are not being saved",
                self._known_count,
                cap,
            )
        return False

    def _create(self, session: Session, body: bytes, now: float) -> None:
        record = encode_record(session.created, now, body)
        ttl = self._ttl(session, now)
        while True:
            session_id = new_session_id()
            if self.store.save(store_key(session_id), record, ttl, None) is not None:
                break
        session.id, session.new, session.accessed = session_id, False, now
        session._loaded_body, session._dirty, session._regenerate = body, False, False

    def _move(self, session: Session, body: bytes, now: float) -> bool:
        """``regenerate_id``: put the session under a new id, atomically.

        The old record is first replaced, conditionally, by a short-lived marker
        that reads as "gone" and holds no data; changes another request committed
        meanwhile are merged in before that. Requests still carrying the old
        cookie then find no session, and do not delete the (new) cookie either.
        False when the session was invalidated meanwhile.
        """
        old_key = self._key(session)
        base = _loaded(session)
        current = Body(dict(session), session._flash, session._csrf, session.user_id)
        with self._write_lock(old_key):
            version = session.version
            for attempt in range(self.settings.merge_retries + 1):
                if self.store.save(old_key, MOVED_MARKER, MOVED_MARKER_TTL, version) is not None:
                    break
                try:
                    found = self._latest(old_key)
                except (_Moved, BadData):
                    found = None
                if found is None:
                    log.info("session was invalidated or moved by another request during regenerate_id")
                    return False
                record, _, _, latest = found
                current = merge(base, current, latest)
                base, version = latest, record.version
                _backoff(attempt)
            else:
                raise SessionConflict("the session kept changing while its id was regenerated")
        merged = encode_body(current.data, current.flash, current.csrf, current.user)
        dict.clear(session)
        dict.update(session, current.data)
        session._flash, session._csrf, session.user_id = current.flash, current.csrf, current.user
        self._create(session, merged, now)
        return True

    def _renewal_due(self, session: Session, now: float) -> bool:
        interval = self.settings.renew_interval
        if interval <= 0:
            return False
        ttl = self._ttl(session, now)
        if session.expires_at is not None and ttl is not None:
            last_renewal = session.expires_at - ttl
        else:
            last_renewal = session.accessed
        return now - last_renewal >= interval

    def _renew(self, session: Session, body: bytes, now: float) -> None:
        key = self._key(session)
        ttl = self._ttl(session, now)
        if session.expires_at is not None:
            self.store.touch(key, ttl)
            return
        # The store cannot report expiry, so the record's access time says when it
        # was renewed; rewriting it is the renewal. A conflict means another
        # request wrote it, which renewed it too.
        self.store.save(key, encode_record(session.created, now, body), ttl, session.version)

    def claim_flash(self, session: Session, queue: str) -> list[Any]:
        """Pop a flash queue with an immediate conditional write of the stored record.

        Only the queue is taken out of the stored record; the view's other changes
        are left for the end of the request. Returns what the store held in that
        queue at the moment of the successful write, plus the messages this request
        flashed itself, so of two concurrent requests only one gets each message.
        """
        base = _loaded(session)
        own = _multiset_minus(session._flash.pop(queue, []), base.flash.get(queue, []))
        key = self._key(session)
        # From now on the queue counts as gone from what was loaded, so the end of
        # the request neither writes its removal again nor brings it back.
        remaining = {q: m for q, m in base.flash.items() if q != queue}
        session._loaded_body = encode_body(base.data, remaining, base.csrf, base.user)
        try:
            stored = self._claim(session, key, base, queue)
        except StoreUnavailable as exc:
            if self.settings.on_store_error != "fresh":
                raise
            self._outage_log(logging.WARNING, "session store unavailable (%s); flash messages not claimed", exc)
            stored = base.flash.get(queue, [])
        return stored + own

    def _claim(self, session: Session, key: str, base: Body, queue: str) -> list[Any]:
        created, version, latest = session.created, session.version, base
        with self._write_lock(key):
            for attempt in range(self.settings.merge_retries + 1):
                if attempt:
                    try:
                        found = self._latest(key)
                    except (_Moved, BadData):
                        found = None
                    if found is None:
                        return []  # invalidated, or moved (with its messages) to a new id
                    record, created, _, latest = found
                    version = record.version
                claimed = latest.flash.get(queue, [])
                if not claimed:
                    return []
                flash = {q: m for q, m in latest.flash.items() if q != queue}
                body = encode_body(latest.data, flash, latest.csrf, latest.user)
                now = time.time()
                new_version = self.store.save(key, encode_record(created, now, body), self._ttl(session, now), version)
                if new_version is not None:
                    if not attempt:
                        # The record now holds exactly what the session counts as
                        # loaded (claim_flash set that): the request's own write at
                        # the end is conditional on this one, not a conflict with it.
                        session.version = new_version
                    return claimed
                _backoff(attempt)
        raise SessionConflict("the session kept changing while its flash messages were popped")

    def _update(self, session: Session, body: bytes, now: float) -> bool:
        """Write the session conditionally; on a conflict merge this request's changes
        into the latest record and try again. False when the session is gone."""
        key = self._key(session)
        ttl = self._ttl(session, now)
        record = encode_record(session.created, now, body)
        lock = self._write_lock(key)
        lock.acquire()  # rather than ``with``: a third cheaper, on every changing request
        try:
            if self.store.save(key, record, ttl, session.version) is not None:
                session._loaded_body, session._dirty = body, False
                # The next request loads these very bytes.
                self._remember(
                    key, record, session.created, now, body, session, session._flash, session._csrf, session.user_id
                )
                return True
            return self._merge_locked(session, key, ttl, now)
        finally:
            lock.release()

    def _merge_locked(self, session: Session, key: str, ttl: int | None, now: float) -> bool:
        """After a conflict: merge into the latest record and write that, until it sticks."""
        base = _loaded(session)
        current = Body(dict(session), session._flash, session._csrf, session.user_id)
        for attempt in range(self.settings.merge_retries):
            try:
                found = self._latest(key)  # _Moved: moved to a new id by another request
            except BadData:
                security_log.warning("stored session record became corrupt; dropping it")
                return False
            if found is None:
                log.info("session was invalidated by another request; dropping this request's changes")
                return False
            record, created, latest_bytes, latest = found
            merged = merge(base, current, latest)
            merged_body = encode_body(merged.data, merged.flash, merged.csrf, merged.user)
            # Nothing of this request's left to write (say, its own flash claim
            # already took the queue out): the stored record is the result.
            if (
                merged_body == latest_bytes
                or self.store.save(key, encode_record(created, now, merged_body), ttl, record.version) is not None
            ):
                dict.clear(session)
                dict.update(session, merged.data)
                session._flash, session._csrf, session.user_id = merged.flash, merged.csrf, merged.user
                session._loaded_body, session._dirty = merged_body, False
                return True
            _backoff(attempt)
        log.error("session %s: %d conflicting writes in a row, giving up", key[:12], self.settings.merge_retries)
        raise SessionConflict(f"the session kept changing under this request ({self.settings.merge_retries} retries)")

    # -- a user's sessions ----------------------------------------------------------

    def _index_update(self, user_id: str, add: str | None, remove: str | None) -> None:
        """Add or remove one session key in the user's index record (conditional writes)."""
        if add is None and remove is None:
            return
        key = user_index_key(user_id)
        for _ in range(self.settings.merge_retries + 1):
            record = self.store.load(key)
            entries = _decode_index(record.data) if record is not None else {}
            if remove is not None:
                entries.pop(remove, None)
            if add is not None:
                # Logging in is rare: drop entries whose sessions are gone meanwhile.
                entries = {k: t for k, t in entries.items() if k != add and self.store.load(k) is not None}
                entries[add] = time.time()
                if len(entries) > MAX_SESSIONS_PER_USER:
                    entries = dict(sorted(entries.items(), key=lambda kv: kv[1])[-MAX_SESSIONS_PER_USER:])
            version = record.version if record is not None else None
            if not entries:
                if record is not None:
                    self.store.delete(key)
                return
            data = json.dumps(entries, separators=(",", ":")).encode()
            if self.store.save(key, data, self.settings.absolute_timeout, version) is not None:
                return
        log.warning("could not update the session index of a user after %d tries", self.settings.merge_retries)

    def user_sessions(self, user_id: str | int) -> list[dict[str, Any]]:
        """The user's live sessions: store key (a hash, not the id), created and accessed times."""
        record = self.store.load(user_index_key(str(user_id)))
        if record is None:
            return []
        found = []
        for key in _decode_index(record.data):
            stored = self.store.load(key)
            if stored is None:
                continue
            try:
                created, accessed, _ = split_record(stored.data)
            except BadData:
                continue
            found.append({"key": key, "created": created, "accessed": accessed})
        return sorted(found, key=lambda info: info["created"])

    def revoke_user_sessions(self, user_id: str | int, keep: Session | None = None) -> int:
        """Delete every session of the user ("log out everywhere"), except ``keep``.

        Returns how many sessions were deleted.
        """
        user = str(user_id)
        kept = store_key(keep.id) if keep is not None and keep.id is not None else None
        record = self.store.load(user_index_key(user))
        if record is None:
            return 0
        revoked = 0
        for key in _decode_index(record.data):
            if key != kept:
                if self.store.load(key) is not None:
                    revoked += 1
                self.store.delete(key)
        if kept is None:
            self.store.delete(user_index_key(user))
        else:
            self._index_update(user, add=kept, remove=None)
        log.info("revoked %d session(s) of a user", revoked)
        return revoked

    def close(self) -> None:
        self.store.close()


def _remember_bounded(memo: dict[Any, Any], key: Any, value: Any, limit: int) -> None:
    """``memo[key] = value``, emptying the memo first when it holds ``limit`` entries."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value


def _loaded(session: Session) -> Body:
    """The body the session was loaded with (empty for a new one)."""
    return decode_body(session._loaded_body) if session._loaded_body else Body({}, {}, None)


def _backoff(attempt: int) -> None:
    """Jittered exponential wait before the next conditional-write attempt."""
    time.sleep(random.uniform(0, 0.005 * 2**attempt))


def user_index_key(user_id: str) -> str:
    """Store key of the record listing a user's sessions (a hash: no user id in the store)."""
    return "u-" + hashlib.sha256(b"satchel.user|" + user_id.encode("utf-8")).hexdigest()


def _decode_index(raw: bytes) -> dict[str, float]:
    try:
        entries = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(entries, dict):
        return {}
    return {k: float(v) for k, v in entries.items() if isinstance(k, str) and isinstance(v, (int, float))}


def _multiset_minus(left: list[Any], right: list[Any]) -> list[Any]:
    """Items of ``left`` not matched one-for-one in ``right``, in order."""
    remaining = Counter(encode_value(item, "flash") for item in right)
    out = []
    for item in left:
        encoded = encode_value(item, "flash")
        if remaining[encoded]:
            remaining[encoded] -= 1
        else:
            out.append(item)
    return out


def merge(base: Body, current: Body, latest: Body) -> Body:
    """Apply the change from ``base`` to ``current`` on top of ``latest``.

    Keys this request set or deleted win for those keys only; flash messages it
    added are appended and the ones it popped removed; a new CSRF token wins.
    """
    data = dict(latest.data)
    for key, value in current.data.items():
        if key not in base.data or encode_value(base.data[key], key) != encode_value(value, key):
            data[key] = value
    for key in base.data:
        if key not in current.data:
            data.pop(key, None)
    flash: dict[str, list[Any]] = {q: list(m) for q, m in latest.flash.items()}
    for queue in set(base.flash) | set(current.flash):
        before, after = base.flash.get(queue, []), current.flash.get(queue, [])
        popped = _multiset_minus(before, after)
        added = _multiset_minus(after, before)
        messages = _multiset_minus(flash.get(queue, []), popped) + added
        if messages:
            flash[queue] = messages
        else:
            flash.pop(queue, None)
    csrf = current.csrf if current.csrf != base.csrf else latest.csrf
    user = current.user if current.user != base.user else latest.user
    return Body(data, flash, csrf, user)


def build_manager(
    settings: SessionSettings, store: Store | None = None, session_class: type[Session] = Session
) -> SessionManager:
    """The manager the settings ask for: server-side, or the whole session in the cookie."""
    if settings.client_side:
        from .client import ClientSessionManager

        client: SessionManager = ClientSessionManager(settings, session_class=session_class)
        return client
    return SessionManager(settings, store, session_class=session_class)
