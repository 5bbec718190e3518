from __future__ import annotations

from collections.abc import Iterator

import pytest

from satchel.stores.memory import MemoryStore
from satchel.testing import FakeClock, StoreContract, new_key


class TestMemoryStore(StoreContract):
    uses_clock = True

    @pytest.fixture
    def store(self, clock: FakeClock) -> Iterator[MemoryStore]:
        store = MemoryStore(clock=clock)
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
