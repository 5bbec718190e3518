"""Regions on memcached, through pymemcache's public clients.

Keys are spread over the servers by rendezvous hashing (pymemcache's
``RendezvousHash``), one thread-safe ``PooledClient`` per server. A server that
fails keeps its keys: its calls raise at once for ``RETRY_INTERVAL`` seconds,
then it is tried again. Moving its keys to another server instead (what
pymemcache's ``HashClient`` does after a few failures) could meet a stale
generation record there and serve values an invalidation retired.

A read is one ``get_many`` of the generation record and the value (one round
trip when both live on one server, two otherwise). Values are bytes both ways:
the client never unpickles.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from dogpile.cache.api import BytesBackend, CacheMutex

from ...errors import ConfigurationError, StoreUnavailable
from ..generations import Generations
from ..guards import RETRY_INTERVAL, Errors
from ..locks import LayeredMutex, MemcachedMutex
from ..settings import RegionConfig

#: Seconds to connect to a memcached server and to wait for its answer.
SERVER_TIMEOUT = 1.0
#: memcached reads a larger ``exptime`` as a Unix time.
MAX_RELATIVE_EXPIRY = 30 * 24 * 3600


def server_list(text: str) -> list[str]:
    """Beaker's ``host:port;host:port`` (commas and spaces separate too) as a list."""
    servers = [s for s in re.split(r"[;,\s]+", text.strip()) if s]
    if not servers:
        raise ConfigurationError("a memcached region needs url = host:port[;host:port...]", "url")
    return servers


def memcached_expiry(ttl: int | None) -> int:
    """memcached's ``exptime`` keeping a value at least ``ttl`` seconds (0: no expiry)."""
    if ttl is None:
        return 0
    seconds = ttl + 1  # memcached's clock ticks once a second
    return seconds if seconds <= MAX_RELATIVE_EXPIRY else int(time.time()) + seconds


class BytesSerde:
    """pymemcache serde that stores bytes and returns bytes: it never unpickles.

    pymemcache's default serde unpickles any value whose flags say "pickled", so
    whoever can write to the server could make this application run code.
    """

    def serialize(self, key: Any, value: Any) -> tuple[bytes, int]:
        if isinstance(value, bytes):
            return value, 0
        return str(value).encode("ascii"), 0

    def deserialize(self, key: Any, value: bytes, flags: int) -> bytes:
        return value


class ServerDown(ConnectionError):
    """A memcached server failed less than ``retry_interval`` seconds ago: not tried again yet."""


class ServerRing:
    """The subset of pymemcache's client API the backend uses, over several servers.

    Every call raises the server's error (never a silent default), and a server
    that failed is skipped, raising :class:`ServerDown`, for ``retry_interval``
    seconds.
    """

    def __init__(self, servers: Iterable[str], make_client: Callable[[str], Any], retry_interval: float) -> None:
        from pymemcache.client.rendezvous import RendezvousHash
        from pymemcache.exceptions import MemcacheUnexpectedCloseError

        self._hash = RendezvousHash()
        self._clients: dict[str, Any] = {}
        for server in servers:
            self._clients[server] = make_client(server)
            self._hash.add_node(server)
        self._retry_interval = retry_interval
        self._failed_at: dict[str, float] = {}
        self._connection_errors: Errors = (OSError, MemcacheUnexpectedCloseError)

    def _call(self, server: str, method: str, *args: Any, **kwargs: Any) -> Any:
        failed = self._failed_at.get(server)
        if failed is not None and time.monotonic() - failed < self._retry_interval:
            raise ServerDown(f"memcached {server} failed less than {self._retry_interval}s ago")
        try:
            result = getattr(self._clients[server], method)(*args, **kwargs)
        except self._connection_errors:
            self._failed_at[server] = time.monotonic()
            raise
        if failed is not None:
            self._failed_at.pop(server, None)
        return result

    def _on(self, key: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._call(self._hash.get_node(key), method, key, *args, **kwargs)

    def get(self, key: str) -> bytes | None:
        value: bytes | None = self._on(key, "get")
        return value

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        by_server: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            by_server[self._hash.get_node(key)].append(key)
        found: dict[str, bytes] = {}
        for server, some in by_server.items():
            found.update(self._call(server, "get_many", some))
        return found

    def gets(self, key: str) -> tuple[bytes | None, bytes | None]:
        value, cas = self._on(key, "gets")
        return value, cas

    def set(self, key: str, value: bytes, expire: int = 0, noreply: bool = False) -> bool:
        return bool(self._on(key, "set", value, expire=expire, noreply=noreply))

    def add(self, key: str, value: bytes, expire: int = 0, noreply: bool = False) -> bool:
        return bool(self._on(key, "add", value, expire=expire, noreply=noreply))

    def cas(self, key: str, value: bytes, cas: bytes, expire: int = 0, noreply: bool = False) -> bool | None:
        result: bool | None = self._on(key, "cas", value, cas, expire=expire, noreply=noreply)
        return result

    def delete(self, key: str, noreply: bool = False) -> bool:
        return bool(self._on(key, "delete", noreply=noreply))


def connect(config: RegionConfig) -> ServerRing:
    """The region's client: bytes only, bounded timeouts, ``TCP_NODELAY``, errors raised."""
    from pymemcache.client.base import PooledClient, normalize_server_spec

    def client(server: str) -> Any:
        return PooledClient(
            normalize_server_spec(server),
            serde=BytesSerde(),
            connect_timeout=SERVER_TIMEOUT,
            timeout=SERVER_TIMEOUT,
            no_delay=True,  # each request is one small write: do not let Nagle hold it back
            default_noreply=False,
        )

    return ServerRing(server_list(config.url or ""), client, RETRY_INTERVAL)


class MemcachedCacheBackend(Generations, BytesBackend):
    """A region's values, generation record and locks on memcached."""

    # 250 bytes, minus "_lock" for the lock key; printable ASCII, no spaces.
    max_key_length: ClassVar[int] = 245
    key_alphabet: ClassVar[str | None] = r"[!-~]+"
    # The client skips a failed server itself, per server.
    retry_interval: ClassVar[float] = 0

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        self.wire(arguments)
        self.client = connect(self.wiring.config)
        self._exptime = memcached_expiry(self.ttl)

    @classmethod
    def failures(cls) -> tuple[Errors, Errors]:
        from pymemcache.exceptions import MemcacheError, MemcacheUnexpectedCloseError

        return (OSError, MemcacheUnexpectedCloseError), (MemcacheError,)

    def load(self, key: str) -> bytes | None:
        return self.client.get(key)

    def fetch(self, keys: list[str]) -> tuple[bytes | None, list[bytes | None]]:
        found = self.client.get_many([self.gen_key, *keys])
        return found.get(self.gen_key), [found.get(k) for k in keys]

    def write(self, key: str, data: bytes) -> None:
        self.client.set(key, data, expire=self._exptime, noreply=False)

    def remove(self, key: str) -> None:
        self.client.delete(key, noreply=False)

    def add_record(self, record: bytes) -> bool:
        return self.client.add(self.gen_key, record, expire=0, noreply=False)

    def swap_record(self, update: Callable[[bytes | None], bytes]) -> None:
        client = self.client
        for _ in range(100):
            record, cas = client.gets(self.gen_key)
            new = update(record)
            if record is None:
                if client.add(self.gen_key, new, expire=0, noreply=False):
                    return
            elif cas is not None and client.cas(self.gen_key, new, cas, expire=0, noreply=False):
                return
        raise StoreUnavailable("the generation record kept changing; try again", "memcached")

    def get_mutex(self, key: str) -> CacheMutex:
        mutex = MemcachedMutex(lambda: self.client, "_lock" + key, self.wiring.config.lock_timeout)
        return LayeredMutex(mutex, self.wiring.guard)


__all__ = ["SERVER_TIMEOUT", "BytesSerde", "MemcachedCacheBackend", "ServerRing", "connect", "memcached_expiry"]
