"""Async stores: the same records as the sync stores, for an event loop.

:func:`open_async_store` opens the async store for a session's store settings.
Redis (and Redis Cluster) speak ``redis.asyncio``, SQL SQLAlchemy's asyncio
extension; memory is called on the loop (it never blocks). The file store,
memcached and third-party stores run their sync store in worker threads
(:class:`ThreadedStore`): aiomcache has ``gets``/``cas``/``add`` but speaks to one
server, and the memcached store's ring of servers with failover is pymemcache's.
"""

from __future__ import annotations

import importlib

from ...clock import Clock, system_clock
from ...config.store import StoreConfig
from ...errors import ConfigurationError
from .base import AsyncStore
from .threaded import AsyncMemoryStore, InlineStore, ThreadedStore

#: satchel's own async stores by the sync store's name, as ``"module:Class"``.
BUILT_IN_ASYNC: dict[str, str] = {
    "memory": "satchel.stores.aio.threaded:AsyncMemoryStore",
    "redis": "satchel.stores.aio.redis:AsyncRedisStore",
    "rediscluster": "satchel.stores.aio.redis:AsyncRedisClusterStore",
    "sql": "satchel.stores.aio.sql:AsyncSQLStore",
}


def open_async_store(config: StoreConfig, *, clock: Clock = system_clock) -> AsyncStore:
    """The async store for ``config``: a native one where satchel has it, else the
    sync store in worker threads."""
    if config.cls is None:
        raise ConfigurationError(f"session.type = {config.type} keeps sessions in the cookie: there is no store")
    target = BUILT_IN_ASYNC.get(config.type)
    if target is None:
        return ThreadedStore(config.cls.from_options(config.options, clock=clock))
    module, _, name = target.partition(":")
    cls: type[AsyncStore] = getattr(importlib.import_module(module), name)
    return cls.from_options(config.options, clock=clock)


__all__ = ["AsyncMemoryStore", "AsyncStore", "InlineStore", "ThreadedStore", "open_async_store"]
