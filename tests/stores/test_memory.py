from __future__ import annotations

from collections.abc import Iterator

import pytest

from satchel.stores.memory import MemoryStore
from satchel.testing import FakeClock, StoreContract


class TestMemoryStore(StoreContract):
    uses_clock = True

    @pytest.fixture
    def store(self, clock: FakeClock) -> Iterator[MemoryStore]:
        store = MemoryStore(clock=clock)
        yield store
        store.close()
