"""Helpers the cache tests share (this module holds no tests).

Every server test works under its own random ``key_prefix``, so tests never see
each other's values, generations or locks on the shared servers.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from satchel.cache import CacheRegion, regions_from_settings
from satchel.cache.generations import Generations
from tests.support.servers import RedisServer as RedisServer
from tests.support.servers import free_port as free_port
from tests.support.services import MEMCACHED_SERVERS, POSTGRES_URL, REDIS_URL, VALKEY_URL, need_port

FIELD_BLOCK = {
    "cache.regions": "default_term, second, short_term, long_term",
    "cache.type": "memory",
    "cache.second.expire": "1",
    "cache.short_term.expire": "60",
    "cache.default_term.expire": "300",
    "cache.long_term.expire": "3600",
}
SESSION = {
    "session.secret": "0cb243f53ad865a0f70099c0414ffe9cfcfe03ac",
    "session.type": "memory",
}

#: The shared backends, by the names the tests use.
TYPES = {
    "redis": "ext:redis",
    "valkey": "ext:redis",
    "memcached": "ext:memcached",
    "file": "file",
    "sql": "ext:database",
    "postgres": "ext:database",
}


#: Every shared backend a region can live on.
SHARED_KINDS = ["redis", "valkey", "memcached", "file", "sql", "postgres"]


class Creator:
    """A region's creator that counts its calls: ``{"call": n}``, or ``value`` when given."""

    def __init__(self, value: Any = None) -> None:
        self.calls = 0
        self.value = value

    def __call__(self) -> Any:
        self.calls += 1
        return self.value if self.value is not None else {"call": self.calls}


def need_redis() -> None:
    parts = urlsplit(REDIS_URL)
    need_port(parts.hostname or "127.0.0.1", parts.port or 6379, "Redis")


def need_valkey() -> None:
    parts = urlsplit(VALKEY_URL)
    need_port(parts.hostname or "127.0.0.1", parts.port or 6390, "Valkey")


def need_memcached() -> None:
    for server in MEMCACHED_SERVERS.replace(",", ";").split(";"):
        host, _, port = server.strip().rpartition(":")
        need_port(host, int(port), "memcached")


def need_postgres() -> None:
    parts = urlsplit(POSTGRES_URL.replace("postgresql+psycopg", "postgresql"))
    need_port(parts.hostname or "127.0.0.1", parts.port or 5432, "PostgreSQL")


def server_settings(kind: str, tmp_path: Path, expire: int | None = 60, **extra: str) -> dict[str, str]:
    """Settings for one region ``r`` on backend ``kind``, under a fresh key prefix."""
    settings = {
        "cache.regions": "r",
        "cache.type": TYPES[kind],
        "cache.key_prefix": f"t{secrets.token_hex(5)}:",
        "cache.expire": str(expire) if expire else "none",
    }
    if kind == "redis":
        need_redis()
        settings["cache.url"] = REDIS_URL
    elif kind == "valkey":
        need_valkey()
        settings["cache.url"] = VALKEY_URL
    elif kind == "memcached":
        need_memcached()
        settings["cache.url"] = MEMCACHED_SERVERS
    elif kind == "file":
        settings["cache.data_dir"] = str(tmp_path / "cache-data")
        settings["cache.lock_dir"] = str(tmp_path / "cache-lock")
    elif kind == "sql":
        settings["cache.url"] = f"sqlite:///{tmp_path / 'cache.sqlite'}"
    elif kind == "postgres":
        need_postgres()
        settings["cache.url"] = POSTGRES_URL
    settings.update({f"cache.{k}": v for k, v in extra.items()})
    return settings



def region(settings: dict[str, str]) -> CacheRegion:
    """Region ``r`` built afresh from ``settings``: two calls stand for two processes."""
    return regions_from_settings(settings)["r"]


def backend(r: CacheRegion) -> Generations:
    """The shared backend under the region's guard."""
    actual = r.actual_backend
    assert isinstance(actual, Generations)
    return actual


class Switch:
    """Wraps ``owner.name`` so it raises ``error()`` while ``on`` is true (the server itself keeps running)."""

    def __init__(self, owner: Any, name: str, error: Callable[[], BaseException]) -> None:
        self.on = True
        self.calls = 0
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self.on:
                self.calls += 1
                raise error()
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)
