"""Regions on memcached, on the session store's server ring (:mod:`satchel.stores.memcached`).

Keys are spread over the servers by rendezvous hashing, one pool of
pymemcache ``Client`` objects per server, values bytes both ways (the client never
unpickles). A server that fails keeps its keys: the ring rests it for
``RETRY_INTERVAL`` seconds (its keys fail at once, so a down server does not
cost a connect timeout per call), then tries it again. Moving its keys to
another server instead (what pymemcache's ``HashClient`` does after a few
failures) could meet a stale generation record there and serve values an
invalidation retired.

A read is one ``get_many`` of the generation record and the value (one round
trip when both live on one server, two otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from dogpile.cache.api import BytesBackend, CacheMutex

from ...config.cache import RegionConfig
from ...errors import StoreUnavailable
from ...stores.memcached import ServerRing, expiry, open_servers
from ..generations import Generations
from ..guards import RETRY_INTERVAL
from ..locks import ExpiringMutex, LayeredMutex

#: Seconds to connect to a memcached server and to wait for its answer.
SERVER_TIMEOUT = 1.0


def connect(config: RegionConfig) -> ServerRing:
    """The region's ring: short timeouts, and a failed server rested for ``RETRY_INTERVAL``."""
    return open_servers(
        config.url or "", connect_timeout=SERVER_TIMEOUT, timeout=SERVER_TIMEOUT, retry_interval=RETRY_INTERVAL
    )


def get(ring: ServerRing, key: str) -> bytes | None:
    value: bytes | None = ring.run(key, lambda c: c.get(key))
    return value


def add(ring: ServerRing, key: str, value: bytes, exptime: int) -> bool:
    """Store ``value`` unless ``key`` exists; True if this call stored it."""
    return bool(ring.run(key, lambda c: c.add(key, value, expire=exptime, noreply=False), repeatable=False))


def delete(ring: ServerRing, key: str) -> None:
    ring.run(key, lambda c: c.delete(key, noreply=False))


class MemcachedMutex(ExpiringMutex):
    """The lock as a memcached ``add`` on the server ``ring`` puts its key on."""

    def __init__(self, ring: ServerRing, key: str, timeout: int) -> None:
        super().__init__(key, timeout)
        self._ring = ring

    def create(self, token: bytes) -> bool:
        return add(self._ring, self.key, token, expiry(self.timeout))

    def release(self) -> None:
        if get(self._ring, self.key) == self.token:
            delete(self._ring, self.key)

    def locked(self) -> bool:
        return get(self._ring, self.key) is not None


class MemcachedCacheBackend(Generations, BytesBackend):
    """A region's values, generation record and locks on memcached."""

    # 250 bytes, minus "_lock" for the lock key; printable ASCII, no spaces.
    max_key_length: ClassVar[int] = 245
    key_alphabet: ClassVar[str | None] = r"[!-~]+"
    # The ring rests each failed server on its own: the keys of the others stay cached.
    retry_interval: ClassVar[float] = 0

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        self.wire(arguments)
        self.ring = connect(self.wiring.config)
        self._exptime = expiry(self.ttl)

    def load(self, key: str) -> bytes | None:
        return get(self.ring, key)

    def fetch(self, keys: list[str]) -> tuple[bytes | None, list[bytes | None]]:
        found = self.ring.get_many([self.gen_key, *keys])
        return found.get(self.gen_key), [found.get(k) for k in keys]

    def write(self, key: str, data: bytes) -> None:
        self.ring.run(key, lambda c: c.set(key, data, expire=self._exptime, noreply=False))

    def remove(self, key: str) -> None:
        delete(self.ring, key)

    def add_record(self, record: bytes) -> bool:
        return add(self.ring, self.gen_key, record, 0)

    def swap_record(self, update: Callable[[bytes | None], bytes]) -> None:
        key = self.gen_key
        for _ in range(100):
            record, cas = self.ring.run(key, lambda c: c.gets(key))
            new = update(record)
            if record is None:
                if add(self.ring, key, new, 0):
                    return
            elif cas is not None and self._cas(new, cas):
                return
        raise StoreUnavailable("the generation record kept changing; try again", "memcached")

    def _cas(self, record: bytes, cas: bytes) -> bool:
        key = self.gen_key
        return bool(self.ring.run(key, lambda c: c.cas(key, record, cas, expire=0, noreply=False), repeatable=False))

    def get_mutex(self, key: str) -> CacheMutex:
        mutex = MemcachedMutex(self.ring, "_lock" + key, self.wiring.config.lock_timeout)
        return LayeredMutex(mutex, self.wiring.guard)


__all__ = ["SERVER_TIMEOUT", "MemcachedCacheBackend", "MemcachedMutex", "connect"]
