from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from contract import StoreContract, new_key
from satchel.stores.memory import MemoryStore


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[MemoryStore]:
        store = MemoryStore()
        yield store
        store.close()


def test_memory_store_is_bounded() -> None:
    store = MemoryStore(max_records=3)
    keys = [new_key() for _ in range(5)]
    for key in keys:
        assert store.save(key, b"x", 60, None)
    assert store.count() == 3
    assert store.load(keys[0]) is None
    assert store.load(keys[-1]) is not None


def test_a_subclass_with_its_own_save_is_asked_by_save_version() -> None:
    """A store subclass that overrides save keeps deciding every write, including
    the ones the manager makes through save_version (whose version it cannot tell)."""

    class Refusing(MemoryStore):
        def save(self, key: str, data: bytes, ttl: int | None, expected_version: object) -> bool:
            self.asked = getattr(self, "asked", 0) + 1
            return False

    class Extending(MemoryStore):  # the usual shape: its own work, then the store's
        def save(self, key: str, data: bytes, ttl: int | None, expected_version: object) -> bool:
            self.asked = getattr(self, "asked", 0) + 1
            return super().save(key, data, ttl, expected_version)  # type: ignore[arg-type]

    refusing, extending = Refusing(), Extending()
    assert refusing.save_version(new_key(), b"x", 60, None) == (False, None)
    assert extending.save_version(new_key(), b"x", 60, None) == (True, None)
    assert refusing.asked == extending.asked == 1
    stored, version = MemoryStore().save_version(new_key(), b"x", 60, None)
    assert stored and version is not None


def test_save_written_as_a_call_of_save_version_does_not_loop() -> None:
    """A wrapper-shaped subclass (save through save_version, which counts and asks
    the store's own) gets one write and the version."""

    class Counting(MemoryStore):
        writes = 0

        def save(self, key: str, data: bytes, ttl: int | None, expected_version: object) -> bool:
            return self.save_version(key, data, ttl, expected_version)[0]  # type: ignore[arg-type]

        def save_version(self, key: str, data: bytes, ttl: int | None, expected_version: object) -> Any:
            self.writes += 1
            return super().save_version(key, data, ttl, expected_version)  # type: ignore[arg-type]

    store, key = Counting(), new_key()
    assert store.save(key, b"x", 60, None)
    stored, version = store.save_version(key, b"y", 60, 1)
    assert stored and version == 2 and store.writes == 2


def test_save_replaced_on_the_instance_is_asked_by_save_version() -> None:
    """Call counters replace methods on the instance: save_version goes through them."""
    store, seen = MemoryStore(), []
    original = store.save

    def counted(key: str, data: bytes, ttl: int | None, expected_version: Any) -> bool:
        seen.append(key)
        return original(key, data, ttl, expected_version)

    store.save = counted  # type: ignore[method-assign]
    key = new_key()
    assert store.save_version(key, b"x", 60, None) == (True, None)
    assert seen == [key]
