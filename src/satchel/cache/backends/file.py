"""Regions in satchel's file store: one file per key, written atomically; ``flock`` locks."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from dogpile.cache.api import CacheMutex

from ...stores.file import FileStore
from ..guards import Errors
from ..locks import FlockMutex, LayeredMutex
from .store import StoreCacheBackend


class FileCacheBackend(StoreCacheBackend):
    """Values under ``data_dir``; creation locks are files under ``lock_dir``.

    The store opens at configuration: a directory that cannot be created is a
    start-up error.
    """

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        super().__init__(arguments)
        store = self.open_store()
        self.lock_dir = store.lock_dir
        self._store = store

    @classmethod
    def failures(cls) -> tuple[Errors, Errors]:
        return (), (OSError,)

    def open_store(self) -> FileStore:
        config = self.wiring.config
        return FileStore.from_options({"data_dir": config.data_dir, "lock_dir": config.lock_dir})

    def get_mutex(self, key: str) -> CacheMutex:
        name = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
        return LayeredMutex(FlockMutex(self.lock_dir / f"cache-{name}.lock"), self.wiring.guard)


__all__ = ["FileCacheBackend"]
