"""The calls the contract suite makes, and an async store seen through them.

The contract's test bodies are written once, against :class:`SyncStore`. A sync
:class:`~satchel.stores.base.Store` is one already; an async store becomes one by
:class:`BlockingStore`, which runs each of its coroutines to completion. So the
async contract reuses every test body instead of repeating it with ``await``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from ..stores.base import Record, Version

T = TypeVar("T")


class SyncStore(Protocol):
    """What the contract suite calls on a store (the sync store contract)."""

    def load(self, key: str) -> Record | None: ...

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None: ...

    def touch(self, key: str, ttl: int | None) -> bool: ...

    def delete(self, key: str) -> None: ...

    def purge_expired(self) -> int: ...

    def count(self) -> int | None: ...

    def close(self) -> None: ...


class AsyncStore(Protocol):
    """The same calls as coroutines: the shape of an async store."""

    async def load(self, key: str) -> Record | None: ...

    async def save(
        self, key: str, data: bytes, ttl: int | None, expected_version: Version | None
    ) -> Version | None: ...

    async def touch(self, key: str, ttl: int | None) -> bool: ...

    async def delete(self, key: str) -> None: ...

    async def purge_expired(self) -> int: ...

    async def count(self) -> int | None: ...

    async def close(self) -> None: ...


class BlockingStore:
    """An :class:`AsyncStore` behind sync calls, for the contract suite.

    Every call runs on one event loop that lives in a thread of its own, rather
    than in a fresh ``asyncio.run`` each: an async driver's connections belong to
    the loop that opened them, and callers in several threads (the suite's
    concurrency test) all reach the same loop safely. :meth:`close` closes the
    async store, then stops the loop.
    """

    def __init__(self, store: AsyncStore) -> None:
        self.store = store
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="satchel-blocking-store", daemon=True)
        self._thread.start()

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()

    def load(self, key: str) -> Record | None:
        return self._run(self.store.load(key))

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        return self._run(self.store.save(key, data, ttl, expected_version))

    def touch(self, key: str, ttl: int | None) -> bool:
        return self._run(self.store.touch(key, ttl))

    def delete(self, key: str) -> None:
        self._run(self.store.delete(key))

    def purge_expired(self) -> int:
        return self._run(self.store.purge_expired())

    def count(self) -> int | None:
        return self._run(self.store.count())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self.store.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
