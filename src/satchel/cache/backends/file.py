"""Regions in satchel's file store: one file per key, written atomically; ``flock`` locks."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dogpile.cache.api import CacheMutex

from ..guards import Errors
from ..locks import FlockMutex, LayeredMutex
from .store import StoreCacheBackend

if TYPE_CHECKING:
    from ...stores.base import Store


class FileCacheBackend(StoreCacheBackend):
    """Values under ``data_dir``; creation locks are files under ``lock_dir``.

    The store opens at configuration: a directory that cannot be created is a
    start-up error.
    """

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        super().__init__(arguments)
        config = self.wiring.config
        assert config.data_dir is not None
        self.lock_dir = Path(config.lock_dir) if config.lock_dir else Path(config.data_dir) / ".locks"
        self._store = self.open_store()

    @classmethod
    def failures(cls) -> tuple[Errors, Errors]:
        return (), (OSError,)

    def open_store(self) -> Store:
        from ...stores.file import FileStore

        config = self.wiring.config
        assert config.data_dir is not None
        return FileStore(config.data_dir, config.lock_dir)

    def get_mutex(self, key: str) -> CacheMutex:
        name = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
        return LayeredMutex(FlockMutex(self.lock_dir / f"cache-{name}.lock"), self.wiring.guard)


__all__ = ["FileCacheBackend"]
