"""Regions on one of satchel's own byte stores (file, SQL): what those backends share.

dogpile has no file or SQL backend that fits: these keep values in satchel's
:class:`~satchel.stores.file.FileStore` (one atomic file per key) and
:class:`~satchel.stores.sql.SQLStore`, through the store contract.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dogpile.cache.api import BytesBackend

from ...errors import StoreUnavailable
from ..generations import Generations

if TYPE_CHECKING:
    from ...stores.base import Store


class StoreCacheBackend(Generations, BytesBackend):
    """A region on one of satchel's byte stores; subclasses say how to open it (``open_store``)."""

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        self.wire(arguments)
        self._store: Store | None = None
        self._store_lock = threading.Lock()

    def open_store(self) -> Store:
        raise NotImplementedError

    @property
    def store(self) -> Store:
        store = self._store
        if store is None:
            with self._store_lock:
                store = self._store
                if store is None:
                    store = self._store = self._connect()
        return store

    def _connect(self) -> Store:
        """Open the store, under ``_store_lock``: one thread connects, the others wait.

        The threads that waited while the database did not answer do not each try
        again (one connect timeout after another): the failure closes the guard, and
        while it is closed they fail at once.
        """
        guard = self.wiring.guard
        if guard.closed():
            raise StoreUnavailable(
                f"cache region {guard.region}: {guard.kind} at {guard.address} failed moments ago",
                guard.kind,
                guard.address,
            )
        try:
            return self.open_store()
        except guard.unavailable:
            guard.close_for_retry()
            raise

    def load(self, key: str) -> bytes | None:
        record = self.store.load(key)
        return None if record is None else record.data

    def write(self, key: str, data: bytes) -> None:
        store = self.store
        current = store.load(key)
        # The write replaces what is stored, even a value stamped with the current
        # generation: that one may have expired or been soft-invalidated (both are
        # decided by its creation time, within the generation), and keeping it would
        # make every caller compute the value again. The version only settles a race:
        # if another process stored a value between the load and this save, the save
        # fails and their value (as fresh as this one) stays.
        store.save(key, data, self.ttl, None if current is None else current.version)

    def remove(self, key: str) -> None:
        self.store.delete(key)

    def reclaim(self) -> int:
        """Delete expired values and lock records (old-generation values expire after ``server_ttl``)."""
        return self.store.purge_expired()

    def add_record(self, record: bytes) -> bool:
        return self.store.save(self.gen_key, record, None, None) is not None

    def swap_record(self, update: Callable[[bytes | None], bytes]) -> None:
        store = self.store
        for _ in range(100):
            current = store.load(self.gen_key)
            new = update(None if current is None else current.data)
            if store.save(self.gen_key, new, None, None if current is None else current.version) is not None:
                return
        raise StoreUnavailable("the generation record kept changing; try again", self.wiring.config.type)


__all__ = ["StoreCacheBackend"]
