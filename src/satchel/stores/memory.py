"""A thread-safe, expiring store inside the process.

Good for one process and for tests; every process has its own, so it cannot
share sessions between workers. It never evicts a live record: what bounds it is
the session policy's record cap (``max_records``; :attr:`MemoryStore.record_cap`
by default), past which new sessions are served but not saved while existing
ones keep working, and expired records are purged to make room.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ..clock import Clock, system_clock
from .base import Record, Store, Version, check_key


class MemoryStore(Store):
    name = "memory"
    record_cap = 100_000

    def __init__(self, *, clock: Clock = system_clock) -> None:
        self.clock = clock
        self._records: dict[str, Record] = {}
        self._lock = threading.Lock()
        self._next_version = 0

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> MemoryStore:
        return cls(clock=clock)


    @property
    def address(self) -> str:
        return "process memory"

    def _live(self, key: str, now: float) -> Record | None:
        record = self._records.get(key)
        if record is None:
            return None
        if record.expires_at is not None and record.expires_at <= now:
            del self._records[key]
            return None
        return record

    def load(self, key: str) -> Record | None:
        with self._lock:
            return self._live(key, self.clock())

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        now = self.clock()
        with self._lock:
            current = self._live(key, now)
            if (None if current is None else current.version) != expected_version:
                return None
            if current is None:
                check_key(key)  # only a create brings a new key in
            self._next_version = version = self._next_version + 1
            self._records[key] = Record(bytes(data), version, None if ttl is None else now + ttl)
            return version

    def touch(self, key: str, ttl: int | None) -> bool:
        now = self.clock()
        with self._lock:
            record = self._live(key, now)
            if record is None:
                return False
            self._records[key] = record._replace(expires_at=None if ttl is None else now + ttl)
            return True

    def delete(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)

    def purge_expired(self) -> int:
        now = self.clock()
        with self._lock:
            expired = [k for k, r in self._records.items() if r.expires_at is not None and r.expires_at <= now]
            for key in expired:
                del self._records[key]
            return len(expired)

    def count(self) -> int:
        with self._lock:
            return len(self._records)

    def count_excluding(self, data: bytes) -> int:
        now = self.clock()
        with self._lock:
            return sum(1 for key, record in self._records.items() if record.data != data and self._live(key, now))

    def close(self) -> None:
        with self._lock:
            self._records.clear()
