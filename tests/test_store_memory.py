from __future__ import annotations

from collections.abc import Iterator

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

    store = Refusing()
    assert store.save_version(new_key(), b"x", 60, None) == (False, None)
    assert store.asked == 1
    plain = MemoryStore()
    stored, version = plain.save_version(new_key(), b"x", 60, None)
    assert stored and version is not None
