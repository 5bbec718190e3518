"""A user's sessions: the index behind "list my sessions" and "log out everywhere".

``bind_user`` ties a session to a user. Per user, one index record lists the
store keys of the sessions ever bound to that user (under a hash of the user
id: no user id appears in the store), with when each was added.

- A login adds its session to the index *before* the session is written; if the
  index cannot be written, the login fails instead of leaving a session that
  "log out everywhere" would miss.
- Adding is one conditional write of the index (after one load); concurrent
  logins of one user retry, with jitter, until each is in.
- Entries are never dropped silently: past ``MAX_SESSIONS_PER_USER`` the oldest
  sessions are ended (deleted) as they leave the index. Entries of sessions
  that expired on their own are dropped when the index is read whole (listing,
  revoking, or trimming at the cap).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from typing import Any

from ..clock import Clock
from ..codecs import split_record
from ..errors import BadData, SessionConflict
from .ops import Delete, Load, Pause, Save, Steps

log = logging.getLogger("satchel")

MAX_SESSIONS_PER_USER = 100
#: Conditional writes of one index before a login gives up (logins of one user at
#: once all write the same record; each round, one of them gets through).
INDEX_WRITE_ATTEMPTS = 200


def user_index_key(user_id: str) -> str:
    """Store key of the record listing a user's sessions."""
    return "u-" + hashlib.sha256(b"satchel.user|" + user_id.encode("utf-8")).hexdigest()


def decode_index(raw: bytes) -> dict[str, float]:
    try:
        entries = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(entries, dict):
        return {}
    return {k: float(v) for k, v in entries.items() if isinstance(k, str) and isinstance(v, (int, float))}


def encode_index(entries: dict[str, float]) -> bytes:
    return json.dumps(entries, separators=(",", ":")).encode()


class UserIndex:
    """Reads and updates users' index records with conditional writes."""

    def __init__(self, ttl: int | None, clock: Clock, cap: int = MAX_SESSIONS_PER_USER) -> None:
        self.ttl = ttl
        self.clock = clock
        self.cap = cap

    def update(self, user_id: str, add: str | None, remove: str | None) -> Steps[None]:
        """Add and/or remove one session key in the user's index; raises SessionConflict
        when the index kept changing (the caller's login must then fail)."""
        if add is None and remove is None:
            return
        key = user_index_key(user_id)
        for attempt in range(INDEX_WRITE_ATTEMPTS):
            record = yield Load(key)
            entries = decode_index(record.data) if record is not None else {}
            if remove is not None:
                entries.pop(remove, None)
            ended: list[str] = []
            if add is not None:
                entries[add] = self.clock()
                if len(entries) > self.cap:
                    entries, ended = yield from self._trim(entries, add)
            version = None if record is None else record.version
            if not entries:
                if record is not None:
                    yield Delete(key)
                return
            if (yield Save(key, encode_index(entries), self.ttl, version)) is not None:
                for gone in ended:
                    yield Delete(gone)
                if ended:
                    log.info("ended %d old session(s) of a user past the limit of %d", len(ended), self.cap)
                return
            yield Pause(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))
        raise SessionConflict("a user's session index kept changing; the login was not completed")

    def _trim(self, entries: dict[str, float], adding: str) -> Steps[tuple[dict[str, float], list[str]]]:
        """Entries within the cap: sessions that expired meanwhile are dropped first, then
        the oldest live ones are ended (returned, for deletion once the index is written).
        ``adding`` is the session being logged in, not written yet."""
        oldest_first = sorted(entries.items(), key=lambda kv: kv[1])
        live: list[tuple[str, float]] = []
        for index, (session_key, when) in enumerate(oldest_first):
            if len(oldest_first) - index + len(live) <= self.cap:
                live.extend(oldest_first[index:])
                break
            if session_key == adding or (yield Load(session_key)) is not None:
                live.append((session_key, when))
        excess = max(0, len(live) - self.cap)
        return dict(live[excess:]), [session_key for session_key, _ in live[:excess]]

    def sessions(self, user_id: str) -> Steps[list[dict[str, Any]]]:
        """The user's live sessions: store key (a hash, not the id), created and accessed times."""
        record = yield Load(user_index_key(user_id))
        if record is None:
            return []
        found = []
        for key in decode_index(record.data):
            stored = yield Load(key)
            if stored is None:
                continue
            try:
                created, accessed, _ = split_record(stored.data)
            except BadData:
                continue
            found.append({"key": key, "created": created, "accessed": accessed})
        return sorted(found, key=lambda info: info["created"])

    def revoke(self, user_id: str, keep: str | None) -> Steps[int]:
        """Delete every session of the user except the one under store key ``keep``;
        returns how many live sessions were deleted."""
        index = user_index_key(user_id)
        revoked = 0
        for attempt in range(INDEX_WRITE_ATTEMPTS):
            record = yield Load(index)
            if record is None:
                return revoked
            entries = decode_index(record.data)
            for key in entries:
                if key == keep:
                    continue
                if (yield Load(key)) is not None:
                    revoked += 1
                yield Delete(key)
            kept = {keep: entries.get(keep, self.clock())} if keep is not None else {}
            # Written conditionally: a login indexed meanwhile is not forgotten; its
            # session is ended on the next round.
            done = (yield Save(index, encode_index(kept), self.ttl, record.version)) is not None
            if done and not kept:
                # Emptied conditionally first, so a login that loaded the index meanwhile
                # meets a conflict and adds itself again.
                yield Delete(index)
            if done:
                log.info("revoked %d session(s) of a user", revoked)
                return revoked
            yield Pause(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))
        raise SessionConflict("a user's session index kept changing while the user's sessions were revoked")
