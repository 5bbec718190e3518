"""The async stores against the store contract, on real servers.

Each async store holds the same records as its sync twin: a record one writes,
the other reads and updates at the version it was given.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from satchel.clock import Clock
from satchel.stores.aio import AsyncMemoryStore, ThreadedStore
from satchel.stores.aio.redis import AsyncRedisClusterStore, AsyncRedisStore
from satchel.stores.file import FileStore
from satchel.stores.memcached import MemcachedStore
from satchel.stores.redis import RedisStore
from satchel.testing import AsyncStore, AsyncStoreContract, FakeClock, new_key
from tests.support.services import MEMCACHED_SERVERS, REDIS_CLUSTER_PORTS, REDIS_URL, need_port


def new_prefix() -> str:
    return f"satchel-test:{secrets.token_hex(6)}:"


def drop_prefix(client: redis.Redis | RedisCluster, prefix: str) -> None:
    for name in list(client.scan_iter(match=prefix + "*", count=1000)):
        client.delete(name)


class TestAsyncMemoryStore(AsyncStoreContract):
    uses_clock = True

    @pytest.fixture
    def async_store(self, clock: FakeClock) -> AsyncStore:
        return AsyncMemoryStore(clock=clock)


class TestThreadedFileStore(AsyncStoreContract):
    uses_clock = True

    @pytest.fixture
    def async_store(self, tmp_path: Path, clock: Clock) -> AsyncStore:
        return ThreadedStore(FileStore(tmp_path / "data", clock=clock))


class TestThreadedMemcachedStore(AsyncStoreContract):
    tells_new_version = False
    server_expires = True
    expiry_wait = 2.0

    @pytest.fixture
    def async_store(self) -> AsyncStore:
        for server in MEMCACHED_SERVERS.split(";"):
            host, _, port = server.partition(":")
            need_port(host, int(port), "memcached")
        return ThreadedStore(MemcachedStore.from_options({"url": MEMCACHED_SERVERS, "key_prefix": new_prefix()}))


class TestAsyncRedisStore(AsyncStoreContract):
    server_expires = True

    @pytest.fixture
    def async_store(self) -> Iterator[AsyncStore]:
        need_port("127.0.0.1", 6379, "Redis")
        prefix = new_prefix()
        yield AsyncRedisStore.from_options({"url": REDIS_URL, "key_prefix": prefix})
        with redis.Redis.from_url(REDIS_URL) as client:
            drop_prefix(client, prefix)


class TestAsyncRedisClusterStore(AsyncStoreContract):
    server_expires = True

    @pytest.fixture
    def async_store(self) -> Iterator[AsyncStore]:
        for port in REDIS_CLUSTER_PORTS:
            need_port("127.0.0.1", port, "Redis Cluster node")
        urls = [f"redis://127.0.0.1:{port}" for port in REDIS_CLUSTER_PORTS]
        prefix = new_prefix()
        yield AsyncRedisClusterStore.from_options({"urls": urls, "key_prefix": prefix})
        client = RedisCluster.from_url(urls[0])
        drop_prefix(client, prefix)
        client.close()


def test_async_and_sync_redis_stores_share_records() -> None:
    need_port("127.0.0.1", 6379, "Redis")
    prefix = new_prefix()
    sync_store = RedisStore.from_options({"url": REDIS_URL, "key_prefix": prefix})
    key = new_key()

    async def scenario() -> None:
        async_store = AsyncRedisStore.from_options({"url": REDIS_URL, "key_prefix": prefix})
        try:
            created = await async_store.save(key, b"from asgi", 60, None)
            record = sync_store.load(key)
            assert record is not None and record.data == b"from asgi" and record.version == created
            updated = sync_store.save(key, b"from wsgi", 60, record.version)
            again = await async_store.load(key)
            assert again is not None and again.data == b"from wsgi" and again.version == updated
            assert again.expires_at is not None
            assert await async_store.save(key, b"stale", 60, created) is None
        finally:
            await async_store.close()

    try:
        asyncio.run(scenario())
    finally:
        sync_store.close()
        with redis.Redis.from_url(REDIS_URL) as client:
            drop_prefix(client, prefix)
