"""Regions in satchel's SQL store: their own table (``satchel_cache`` by default), rows as locks.

The database is first reached on first use, so an application starts while it
is down (and serves uncached values until it is back).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dogpile.cache.api import CacheMutex

from ..keys import hashed
from ..locks import LayeredMutex, StoreMutex
from .store import StoreCacheBackend

if TYPE_CHECKING:
    from ...stores.base import Store

#: Seconds a cache region waits to connect to PostgreSQL (the session store waits longer):
#: a cache that cannot be reached is skipped, and requests should not wait on it.
SQL_CONNECT_TIMEOUT = 2


def cache_sa_options(url: str | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """The region's ``sa.*`` options, with a short connect timeout unless the settings set one."""
    chosen = dict(options)
    if not url or "connect_args" in chosen or "connect_timeout" in url:
        return chosen
    scheme = url.partition("://")[0].lower()
    if scheme.startswith("postgres") and scheme.partition("+")[2] in ("", "psycopg", "psycopg2"):
        chosen["connect_args"] = {"connect_timeout": SQL_CONNECT_TIMEOUT}
    return chosen


class SQLCacheBackend(StoreCacheBackend):
    """Values and creation locks as rows of the region's table."""

    def open_store(self) -> Store:
        from ...stores.sql import SQLStore

        config = self.wiring.config
        return SQLStore.from_options(
            {
                "url": config.url,
                "table_name": config.table_name,
                "schema_name": config.schema_name,
                "sa": cache_sa_options(config.url, config.sa_options),
                "bind": config.engine,
            }
        )

    def get_mutex(self, key: str) -> CacheMutex:
        config = self.wiring.config
        name = f"{config.key_prefix}{config.name}.lock:{hashed(key)}"
        return LayeredMutex(StoreMutex(lambda: self.store, name, config.lock_timeout), self.wiring.guard)


__all__ = ["SQL_CONNECT_TIMEOUT", "SQLCacheBackend", "cache_sa_options"]
