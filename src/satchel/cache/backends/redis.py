"""Regions on Redis, through redis-py's public client API.

A read is one ``MGET`` of the generation record and the value. Values are
written with ``SET ... EX`` (kept past ``expire``, so an expired value can be
served while one caller computes the new one); the creation lock is redis-py's
own ``Lock``, expiring after ``lock_timeout``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

from dogpile.cache.api import BytesBackend, CacheMutex

from ...config.cache import RegionConfig
from ...stores.redis import redis_client
from ..generations import Generations
from ..guards import Errors
from ..locks import LayeredMutex

if TYPE_CHECKING:
    import redis

#: Seconds to connect to Redis and to wait for its answer.
SERVER_TIMEOUT = 1.0
#: Seconds between a waiting caller's attempts to take a creation lock.
LOCK_SLEEP = 0.05


def connect(config: RegionConfig) -> redis.Redis:
    """The region's client: satchel's one Redis client policy (its retry policy
    included), with timeouts shorter than a session store's."""
    return redis_client(config.url or "", cluster=False, timeout=SERVER_TIMEOUT)


class RedisMutex:
    """redis-py's ``Lock`` as dogpile's mutex."""

    def __init__(self, lock: Any) -> None:
        self._lock = lock

    def acquire(self, wait: bool = True) -> bool:
        return bool(self._lock.acquire(blocking=wait))

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return bool(self._lock.locked())


class RedisCacheBackend(Generations, BytesBackend):
    """A region's values, generation record and locks on one Redis server."""

    max_key_length: ClassVar[int] = 1024
    key_alphabet: ClassVar[str | None] = None

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        self.wire(arguments)
        self.client = connect(self.wiring.config)

    @classmethod
    def failures(cls) -> tuple[Errors, Errors]:
        import redis

        return (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, OSError), (redis.RedisError,)

    def load(self, key: str) -> bytes | None:
        return cast("bytes | None", self.client.get(key))

    def fetch(self, keys: list[str]) -> tuple[bytes | None, list[bytes | None]]:
        record, *raws = cast("list[bytes | None]", self.client.mget(self.gen_key, *keys))
        return record, raws

    def write(self, key: str, data: bytes) -> None:
        self.client.set(key, data, ex=self.ttl)

    def remove(self, key: str) -> None:
        self.client.delete(key)

    def add_record(self, record: bytes) -> bool:
        return bool(self.client.set(self.gen_key, record, nx=True))

    def swap_record(self, update: Callable[[bytes | None], bytes]) -> None:
        def swap(pipe: Any) -> None:
            new = update(pipe.get(self.gen_key))
            pipe.multi()
            pipe.set(self.gen_key, new)

        self.client.transaction(swap, self.gen_key)

    def reclaim(self) -> int:
        """Delete every value of the region (``SCAN`` + ``UNLINK``, in batches)."""
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self.wiring.base) + "*"
        removed = 0
        batch: list[bytes] = []
        for name in self.client.scan_iter(match=pattern, count=1000):
            batch.append(name)
            if len(batch) >= 500:
                removed += int(self.client.unlink(*batch))
                batch = []
        if batch:
            removed += int(self.client.unlink(*batch))
        return removed

    def get_mutex(self, key: str) -> CacheMutex:
        lock = self.client.lock(
            "_lock" + key, timeout=self.wiring.config.lock_timeout, sleep=LOCK_SLEEP, thread_local=False
        )
        return LayeredMutex(RedisMutex(lock), self.wiring.guard)


__all__ = ["SERVER_TIMEOUT", "RedisCacheBackend", "connect"]
