"""A store written outside satchel proves itself with satchel.testing, as a third party's would."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from satchel.clock import Clock, system_clock
from satchel.config import parse_session_settings
from satchel.manager import SessionManager
from satchel.stores.base import Record, Store, Version, check_key
from satchel.testing import AsyncStoreContract, FakeClock, StoreContract
from tests.support.apps import BASE_SETTINGS, Browser


class DictStore(Store):
    """Records in a dict, expiring by the clock it is given."""

    name = "dict"

    def __init__(self, *, clock: Clock = system_clock) -> None:
        self.clock = clock
        self.records: dict[str, Record] = {}
        self.lock = threading.Lock()
        self.versions = itertools.count(1)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> DictStore:
        return cls(clock=clock)

    def _live(self, key: str) -> Record | None:
        record = self.records.get(check_key(key))
        if record is not None and record.expires_at is not None and record.expires_at <= self.clock():
            del self.records[key]
            return None
        return record

    def _expiry(self, ttl: int | None) -> float | None:
        return None if ttl is None else self.clock() + ttl

    def load(self, key: str) -> Record | None:
        with self.lock:
            return self._live(key)

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        with self.lock:
            current = self._live(key)
            if (None if current is None else current.version) != expected_version:
                return None
            version = next(self.versions)
            self.records[key] = Record(data, version, self._expiry(ttl))
            return version

    def touch(self, key: str, ttl: int | None) -> bool:
        with self.lock:
            record = self._live(key)
            if record is None:
                return False
            self.records[key] = record._replace(expires_at=self._expiry(ttl))
            return True

    def delete(self, key: str) -> None:
        with self.lock:
            self.records.pop(check_key(key), None)

    def purge_expired(self) -> int:
        with self.lock:
            now = self.clock()
            expired = [k for k, r in self.records.items() if r.expires_at is not None and r.expires_at <= now]
            for key in expired:
                del self.records[key]
            return len(expired)

    def count(self) -> int:
        with self.lock:
            return len(self.records)


class AsyncDictStore:
    """The same records behind coroutines: the shape of an async store."""

    def __init__(self, clock: Clock) -> None:
        self.inner = DictStore(clock=clock)
        self.closed = False

    async def load(self, key: str) -> Record | None:
        return self.inner.load(key)

    async def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        return self.inner.save(key, data, ttl, expected_version)

    async def touch(self, key: str, ttl: int | None) -> bool:
        return self.inner.touch(key, ttl)

    async def delete(self, key: str) -> None:
        self.inner.delete(key)

    async def purge_expired(self) -> int:
        return self.inner.purge_expired()

    async def count(self) -> int | None:
        return self.inner.count()

    async def close(self) -> None:
        self.closed = True


class TestDictStore(StoreContract):
    uses_clock = True

    @pytest.fixture
    def store(self, clock: FakeClock) -> Iterator[DictStore]:
        store = DictStore(clock=clock)
        yield store
        store.close()


class TestAsyncDictStore(AsyncStoreContract):
    uses_clock = True

    @pytest.fixture
    def async_store(self, clock: FakeClock) -> AsyncDictStore:
        return AsyncDictStore(clock)


def test_the_async_store_is_closed_with_its_blocking_view(clock: FakeClock) -> None:
    from satchel.testing import BlockingStore

    async_store = AsyncDictStore(clock)
    blocking = BlockingStore(async_store)
    blocking.close()
    blocking.close()
    assert async_store.closed


def test_settings_name_the_store_by_module_and_class(clock: FakeClock) -> None:
    settings = parse_session_settings({**BASE_SETTINGS, "session.type": f"{__name__}:DictStore"})
    manager = SessionManager(settings, clock=clock)
    assert isinstance(manager.store, DictStore)
    visitor = Browser(manager)
    visitor.request(lambda session: session.__setitem__("count", 1))
    assert visitor.request(lambda session: session["count"]) == 1
