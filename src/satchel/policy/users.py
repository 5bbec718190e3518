"""A user's sessions: the index behind "list my sessions" and "log out everywhere".

``bind_user`` ties a session to a user; the policy keeps, per user, one index
record listing the store keys of that user's sessions (under a hash of the user
id: no user id appears in the store).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from ..clock import Clock
from ..codecs import split_record
from ..errors import BadData
from .ops import Delete, Load, Save, Steps

log = logging.getLogger("satchel")

MAX_SESSIONS_PER_USER = 100


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


class UserIndex:
    """Reads and updates users' index records (conditional writes, like sessions)."""

    def __init__(self, retries: int, ttl: int | None, clock: Clock) -> None:
        self.retries = retries
        self.ttl = ttl
        self.clock = clock

    def update(self, user_id: str, add: str | None, remove: str | None) -> Steps[None]:
        """Add and/or remove one session key in the user's index."""
        if add is None and remove is None:
            return
        key = user_index_key(user_id)
        for _ in range(self.retries + 1):
            record = yield Load(key)
            entries = decode_index(record.data) if record is not None else {}
            if remove is not None:
                entries.pop(remove, None)
            if add is not None:
                live = {}
                for other, when in entries.items():  # logging in is rare: drop sessions gone meanwhile
                    if other != add and (yield Load(other)) is not None:
                        live[other] = when
                live[add] = self.clock()
                entries = dict(sorted(live.items(), key=lambda kv: kv[1])[-MAX_SESSIONS_PER_USER:])
            if not entries:
                if record is not None:
                    yield Delete(key)
                return
            data = json.dumps(entries, separators=(",", ":")).encode()
            if (yield Save(key, data, self.ttl, None if record is None else record.version)) is not None:
                return
        log.warning("could not update the session index of a user after %d tries", self.retries)

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
        """Delete every session of the user except the one under store key ``keep``."""
        index = user_index_key(user_id)
        record = yield Load(index)
        if record is None:
            return 0
        revoked = 0
        for key in decode_index(record.data):
            if key == keep:
                continue
            if (yield Load(key)) is not None:
                revoked += 1
            yield Delete(key)
        if keep is None:
            yield Delete(index)
        else:
            yield from self.update(user_id, add=keep, remove=None)
        log.info("revoked %d session(s) of a user", revoked)
        return revoked
