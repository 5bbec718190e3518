"""The Redis stores on Valkey, the Linux Foundation's fork of Redis.

The server at ``VALKEY_URL`` (``.ci/services/valkey.sh`` starts Valkey 8 from
Debian's bookworm-backports on port 6390) runs the sync and async store contracts,
shares one record between the two, and serves a Pyramid app's sessions. The cache
tests run their shared-backend suite on it too (tests/support/cache.py).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis

from satchel.stores.aio.redis import AsyncRedisStore
from satchel.stores.redis import RedisStore
from satchel.testing import AsyncStore, AsyncStoreContract, StoreContract, new_key
from tests.support.apps import make_app
from tests.support.services import VALKEY_URL, need_port


def need_valkey() -> None:
    target = urlsplit(VALKEY_URL)
    need_port(target.hostname or "127.0.0.1", target.port or 6390, "Valkey")


@pytest.fixture
def prefix() -> Iterator[str]:
    """A fresh key prefix on the Valkey server, its keys dropped afterwards."""
    need_valkey()
    prefix = f"satchel-test:{secrets.token_hex(6)}:"
    yield prefix
    with redis.Redis.from_url(VALKEY_URL) as client:
        for name in list(client.scan_iter(match=prefix + "*", count=1000)):
            client.delete(name)


def test_the_server_is_valkey() -> None:
    """The tests below would prove nothing if port 6390 were another Redis."""
    need_valkey()
    with redis.Redis.from_url(VALKEY_URL) as client:
        server = client.info("server")
    assert server.get("server_name") == "valkey"
    assert int(str(server["valkey_version"]).split(".")[0]) >= 7


class TestRedisStoreOnValkey(StoreContract):
    server_expires = True

    @pytest.fixture
    def store(self, prefix: str) -> Iterator[RedisStore]:
        store = RedisStore.from_options({"url": VALKEY_URL, "key_prefix": prefix})
        assert isinstance(store, RedisStore)
        yield store
        store.close()


class TestAsyncRedisStoreOnValkey(AsyncStoreContract):
    server_expires = True

    @pytest.fixture
    def async_store(self, prefix: str) -> AsyncStore:
        return AsyncRedisStore.from_options({"url": VALKEY_URL, "key_prefix": prefix})


def test_sync_and_async_stores_share_records_on_valkey(prefix: str) -> None:
    sync = RedisStore.from_options({"url": VALKEY_URL, "key_prefix": prefix})
    key = new_key()
    version = sync.save(key, b"from the sync store", 60, None)
    assert version is not None

    async def update() -> object:
        store = AsyncRedisStore.from_options({"url": VALKEY_URL, "key_prefix": prefix})
        try:
            record = await store.load(key)
            assert record is not None and record.data == b"from the sync store"
            return await store.save(key, b"from the async store", 60, record.version)
        finally:
            await store.close()

    assert asyncio.run(update()) is not None
    record = sync.load(key)
    assert record is not None and record.data == b"from the async store"
    assert sync.save(key, b"stale", 60, version) is None  # the async write moved the version on
    sync.close()


def test_pyramid_sessions_on_valkey(prefix: str) -> None:
    app = make_app({"session.type": "ext:redis", "session.url": VALKEY_URL, "session.key_prefix": prefix})
    assert app.get("/incr").text == "1"
    assert app.get("/incr").text == "2"
    assert app.get("/read").text == "2"
    with redis.Redis.from_url(VALKEY_URL) as client:
        stored = list(client.scan_iter(match=prefix + "*"))
        assert len(stored) == 1
        assert 0 < client.ttl(stored[0]) <= 86400
