"""The cache backends by name: ``"module:Class"`` strings, imported on first use.

A backend's driver (redis-py, pymemcache, SQLAlchemy) is imported only when a
region that needs it is configured. The names are the backend kinds the
settings parser produces from Beaker's type names (``ext:redis`` is ``redis``).
Each is also registered with dogpile.cache as ``satchel.<kind>``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from dogpile.cache.backends import register_backend

#: Backend kind -> the class that serves it.
BACKENDS: Mapping[str, str] = MappingProxyType(
    {
        "memory": "satchel.cache.backends.memory:CheckedMemoryBackend",
        "redis": "satchel.cache.backends.redis:RedisCacheBackend",
        "memcached": "satchel.cache.backends.memcached:MemcachedCacheBackend",
        "file": "satchel.cache.backends.file:FileCacheBackend",
        "sql": "satchel.cache.backends.sql:SQLCacheBackend",
    }
)


def dogpile_name(kind: str) -> str:
    """The name dogpile.cache knows the backend of ``kind`` by."""
    return f"satchel.{kind}"


def backend_class(kind: str) -> type[Any]:
    """The class serving ``kind``, imported now."""
    module, _, name = BACKENDS[kind].partition(":")
    cls: type[Any] = getattr(importlib.import_module(module), name)
    return cls


for _kind, _target in BACKENDS.items():
    _module, _, _name = _target.partition(":")
    register_backend(dogpile_name(_kind), _module, _name)  # type: ignore[no-untyped-call]

__all__ = ["BACKENDS", "backend_class", "dogpile_name"]
