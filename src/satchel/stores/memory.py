"""A thread-safe, bounded, expiring store inside the process.

Good for one process and for tests; every process has its own, so it cannot
share sessions between workers.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from ..clock import Clock, system_clock
from ..config.coerce import as_int, uncommented
from ..settings import StoreSettings
from .base import Record, Store, Version, check_key

log = logging.getLogger("satchel.stores.memory")

DEFAULT_MAX_RECORDS = 100_000


class MemoryStore(Store):
    name = "memory"
    options = {"max_records": uncommented(lambda v, k: as_int(v, k, minimum=1))}

    def __init__(self, max_records: int = DEFAULT_MAX_RECORDS, *, clock: Clock = system_clock) -> None:
        self.max_records = max_records
        self.clock = clock
        # key -> its record (immutable: load hands out the stored one); ordered from
        # least to most recently used.
        self._records: OrderedDict[str, Record] = OrderedDict()
        self._lock = threading.Lock()
        self._next_version = 0

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> MemoryStore:
        return cls(max_records=options.get("max_records") or DEFAULT_MAX_RECORDS, clock=clock)

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> MemoryStore:
        return cls.from_options({"max_records": settings.max_records})

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
            record = self._live(key, self.clock())
            if record is not None:
                self._records.move_to_end(key)
            return record

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        now = self.clock()
        records = self._records
        with self._lock:
            current = self._live(key, now)
            if (None if current is None else current.version) != expected_version:
                return None
            if current is None:
                # Only a create can bring a new key in: updates find their key stored.
                check_key(key)
                if len(records) >= self.max_records:
                    self._make_room(now)
            self._next_version = version = self._next_version + 1
            records[key] = Record(bytes(data), version, None if ttl is None else now + ttl)
            records.move_to_end(key)
            return version

    def _make_room(self, now: float) -> None:
        self._purge(now)
        while len(self._records) >= self.max_records:
            self._records.popitem(last=False)
            log.warning("memory store full (%d records): evicted the least recently used one", self.max_records)

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

    def _purge(self, now: float) -> int:
        expired = [k for k, r in self._records.items() if r.expires_at is not None and r.expires_at <= now]
        for key in expired:
            del self._records[key]
        return len(expired)

    def purge_expired(self) -> int:
        with self._lock:
            return self._purge(self.clock())

    def count(self) -> int:
        with self._lock:
            return len(self._records)

    def close(self) -> None:
        with self._lock:
            self._records.clear()
