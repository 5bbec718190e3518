"""A sync store behind coroutines.

:class:`ThreadedStore` runs each call of a blocking store (files, pymemcache, a
third party's store) in a worker thread with :func:`asyncio.to_thread`, so the
event loop keeps serving other requests while the disk or the network answers.
:class:`InlineStore` calls a store that never blocks (the memory store: a dict
behind a lock held for microseconds) on the loop itself, where a thread hop
would cost more than the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

from ...clock import Clock, system_clock
from ..base import Record, Store, Version
from ..memory import MemoryStore
from .base import AsyncStore


class ThreadedStore(AsyncStore):
    """``store``'s calls, each in a worker thread."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.name = store.name  # type: ignore[misc]
        self.record_cap = store.record_cap  # type: ignore[misc]

    @property
    def address(self) -> str:
        return self.store.address

    async def load(self, key: str) -> Record | None:
        return await asyncio.to_thread(self.store.load, key)

    async def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        return await asyncio.to_thread(self.store.save, key, data, ttl, expected_version)

    async def touch(self, key: str, ttl: int | None) -> bool:
        return await asyncio.to_thread(self.store.touch, key, ttl)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.store.delete, key)

    async def purge_expired(self) -> int:
        return await asyncio.to_thread(self.store.purge_expired)

    async def count(self) -> int | None:
        return await asyncio.to_thread(self.store.count)

    async def close(self) -> None:
        await asyncio.to_thread(self.store.close)


class InlineStore(ThreadedStore):
    """``store``'s calls on the event loop: only for a store that never blocks."""

    async def load(self, key: str) -> Record | None:
        return self.store.load(key)

    async def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        return self.store.save(key, data, ttl, expected_version)

    async def touch(self, key: str, ttl: int | None) -> bool:
        return self.store.touch(key, ttl)

    async def delete(self, key: str) -> None:
        self.store.delete(key)

    async def purge_expired(self) -> int:
        return self.store.purge_expired()

    async def count(self) -> int | None:
        return self.store.count()

    async def close(self) -> None:
        self.store.close()


class AsyncMemoryStore(InlineStore):
    """The memory store (:class:`~satchel.stores.memory.MemoryStore`) for an event loop."""

    name: ClassVar[str] = "memory"
    record_cap: ClassVar[int | None] = MemoryStore.record_cap
    options = MemoryStore.options

    def __init__(self, store: MemoryStore | None = None, *, clock: Clock = system_clock) -> None:
        super().__init__(store if store is not None else MemoryStore(clock=clock))

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> AsyncMemoryStore:
        return cls(MemoryStore.from_options(options, clock=clock))
