"""Stores hold opaque bytes under a key and know nothing of sessions.

Each store is one module, registered here by name as ``"module:Class"`` and
imported on first use, so a missing driver costs nothing until it is chosen.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigurationError
from ..settings import StoreSettings
from .base import Record, Store, Version, VersionedStore

REGISTRY: dict[str, str] = {
    "memory": "satchel.stores.memory:MemoryStore",
    "file": "satchel.stores.file:FileStore",
    "redis": "satchel.stores.redis:RedisStore",
    "rediscluster": "satchel.stores.redis:RedisClusterStore",
    "memcached": "satchel.stores.memcached:MemcachedStore",
    "sql": "satchel.stores.sql:SQLStore",
}


def store_class(type_name: str) -> type[Store]:
    try:
        target = REGISTRY[type_name]
    except KeyError:
        raise ConfigurationError(f"no store is registered as {type_name!r}") from None
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls: type[Store] = getattr(module, class_name)
    return cls


def open_store(settings: StoreSettings) -> Store:
    """Build the store the settings name (drivers are imported only now)."""
    cls: Any = store_class(settings.type)
    store: Store = cls.from_settings(settings)
    return store


__all__ = ["REGISTRY", "Record", "Store", "Version", "VersionedStore", "open_store", "store_class"]
