from __future__ import annotations

from collections.abc import Iterator

import pytest

from satchel.stores.memory import MemoryStore
from tests.support.contract import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[MemoryStore]:
        store = MemoryStore()
        yield store
        store.close()
