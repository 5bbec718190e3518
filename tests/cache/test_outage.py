"""A cache server that is down: values are computed and served uncached, with a warning.

Servers nobody listens on, and private redis-server / memcached processes that
are killed and started again, after which the same region caches again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from satchel.cache import CacheRegion, cache_region, configure_from_settings, invalidate_region, regions_from_settings
from satchel.cache.backends.memcached import MemcachedCacheBackend
from satchel.cache.backends.redis import SERVER_TIMEOUT
from satchel.cache.backends.sql import SQL_CONNECT_TIMEOUT, cache_sa_options
from satchel.cache.guards import RETRY_INTERVAL
from satchel.errors import StoreUnavailable
from tests.support.cache import RedisServer, backend, free_port, region, server_settings
from tests.support.servers import PrivateMemcached

#: No call may wait out a connect timeout while the server is down: connections are
#: refused at once, so a call taking the shortest of the timeouts (redis and memcached
#: 1 s) must have waited for one, or retried with a backoff.
FAST = SERVER_TIMEOUT


class Creator:
    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> dict[str, int]:
        with self.lock:
            self.calls += 1
            return {"call": self.calls}


def dead_settings(kind: str) -> dict[str, str]:
    port = free_port()
    urls = {
        "redis": f"redis://127.0.0.1:{port}/0",
        "memcached": f"127.0.0.1:{port}",
        "postgres": f"postgresql+psycopg://postgres@127.0.0.1:{port}/test",
    }
    return {
        "cache.regions": "r",
        "cache.type": {"redis": "ext:redis", "memcached": "ext:memcached", "postgres": "ext:database"}[kind],
        "cache.url": urls[kind],
        "cache.expire": "60",
    }


@pytest.mark.parametrize("kind", ["redis", "memcached", "postgres"])
def test_nothing_listening(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    region = regions_from_settings(dead_settings(kind))["r"]  # starting up does not need the server
    create = Creator()
    with caplog.at_level(logging.WARNING, "satchel.cache"):
        for expected in range(1, 6):
            started = time.monotonic()
            assert region.get_or_create("k", create) == {"call": expected}
            assert time.monotonic() - started < FAST
    warnings = [r for r in caplog.records if "is unavailable" in r.getMessage()]
    assert len(warnings) == 1, caplog.text  # one line, not one per request
    assert "serving values uncached" in warnings[0].getMessage()
    assert "cache region r" in warnings[0].getMessage()


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_invalidating_a_dead_region_raises(kind: str) -> None:
    region = regions_from_settings(dead_settings(kind))["r"]
    with pytest.raises(StoreUnavailable, match="cannot invalidate the region"):
        invalidate_region(region)
    with pytest.raises(StoreUnavailable, match="cannot delete a value"):
        region.delete("k")


def test_a_decorated_function_keeps_working(caplog: pytest.LogCaptureFixture) -> None:
    configure_from_settings({**dead_settings("redis"), "cache.regions": "t_dead"})
    seen: list[int] = []

    @cache_region("t_dead")
    def double(x: int) -> int:
        seen.append(x)
        return 2 * x

    with caplog.at_level(logging.WARNING, "satchel.cache"):
        assert [double(2), double(2)] == [4, 4]
    assert seen == [2, 2]


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_threads_are_not_serialized_while_down(kind: str) -> None:
    region = regions_from_settings(dead_settings(kind))["r"]
    region.get_or_create("warm-up", dict)  # the first failure opens the breaker

    def slow() -> str:
        time.sleep(0.3)
        return "v"

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(region.get_or_create("k", slow))) for _ in range(10)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["v"] * 10
    assert time.monotonic() - started < 2.0  # not 10 x 0.3 s one after the other


def test_threads_do_not_queue_connect_timeouts(tmp_path: Path) -> None:
    r = region(server_settings("sql", tmp_path))
    b = backend(r)
    opened: list[float] = []

    def hanging_open() -> Any:
        opened.append(time.monotonic())
        time.sleep(0.4)  # the database does not answer: a connect timeout
        raise StoreUnavailable("simulated connect timeout", "sql")

    b.open_store = hanging_open  # type: ignore[attr-defined]
    barrier = threading.Barrier(6)
    results: list[str] = []

    def call() -> None:
        barrier.wait()
        results.append(r.get_or_create("k", lambda: "v"))

    threads = [threading.Thread(target=call) for _ in range(6)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["v"] * 6
    assert len(opened) == 1
    assert time.monotonic() - started < 1.2  # not 6 x 0.4 s one after the other


def test_cache_regions_connect_to_postgres_with_a_short_timeout() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1/test"
    assert cache_sa_options(url, {}) == {"connect_args": {"connect_timeout": SQL_CONNECT_TIMEOUT}}
    assert cache_sa_options(url + "?connect_timeout=9", {}) == {}
    assert cache_sa_options(url, {"connect_args": {"connect_timeout": 7}}) == {"connect_args": {"connect_timeout": 7}}
    assert cache_sa_options("sqlite:///x.db", {}) == {}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def cached_twice(region: CacheRegion, create: Creator) -> tuple[Any, Any]:
    return region.get_or_create("k", create), region.get_or_create("k", create)


def wait_for_retry() -> None:
    time.sleep(RETRY_INTERVAL + 0.2)


def test_redis_killed_and_restarted(redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    settings = {"cache.regions": "r", "cache.type": "ext:redis", "cache.url": redis_server.url, "cache.expire": "60"}
    region = regions_from_settings(settings)["r"]
    create = Creator()
    assert cached_twice(region, create) == ({"call": 1}, {"call": 1})

    redis_server.stop()
    with caplog.at_level(logging.WARNING, "satchel.cache"):
        assert region.get_or_create("k", create) == {"call": 2}
        wait_for_retry()
        assert region.get_or_create("k", create) == {"call": 3}
    assert "is unavailable" in caplog.text

    redis_server.start()  # empty: nothing was saved
    wait_for_retry()
    caplog.clear()
    with caplog.at_level(logging.WARNING, "satchel.cache"):
        assert cached_twice(region, create) == ({"call": 4}, {"call": 4})
    assert "is reachable again" in caplog.text
    invalidate_region(region)  # and cluster-wide invalidation works again
    assert region.get_or_create("k", create) == {"call": 5}


def test_memcached_killed_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    server = PrivateMemcached()
    server.start()
    try:
        settings = {
            "cache.regions": "r",
            "cache.type": "ext:memcached",
            "cache.url": server.address,
            "cache.expire": "60",
        }
        region = regions_from_settings(settings)["r"]
        create = Creator()
        assert cached_twice(region, create) == ({"call": 1}, {"call": 1})
        server.stop()
        with caplog.at_level(logging.WARNING, "satchel.cache"):
            assert region.get_or_create("k", create) == {"call": 2}
            assert region.get_or_create("k", create) == {"call": 3}
        assert "is unavailable" in caplog.text
        server.start()
        wait_for_retry()
        assert cached_twice(region, create) == ({"call": 4}, {"call": 4})
    finally:
        server.stop()


def test_a_memcached_region_keeps_caching_on_the_servers_that_answer(caplog: pytest.LogCaptureFixture) -> None:
    """A failed server rests on its own: the keys of the others stay cached meanwhile."""
    servers = [PrivateMemcached(), PrivateMemcached()]
    for server in servers:
        server.start()
    try:
        settings = {
            "cache.regions": "r",
            "cache.type": "ext:memcached",
            "cache.url": ";".join(server.address for server in servers),
            "cache.expire": "60",
        }
        region = regions_from_settings(settings)["r"]
        memcached, mangle = backend(region), region.key_mangler
        assert isinstance(memcached, MemcachedCacheBackend) and mangle is not None
        holder = memcached.ring.node(memcached.gen_key)
        names = {f"k{n}": memcached.ring.node(mangle(f"k{n}")) for n in range(40)}
        live = next(name for name, node in names.items() if node == holder)
        lost = next(name for name, node in names.items() if node != holder)
        next(server for server in servers if server.address != holder).stop()

        live_create, lost_create = Creator(), Creator()
        with caplog.at_level(logging.WARNING, "satchel.cache"):
            for _ in range(3):
                assert region.get_or_create(lost, lost_create) == {"call": lost_create.calls}
                assert region.get_or_create(live, live_create) == {"call": 1}
        assert (live_create.calls, lost_create.calls) == (1, 3)
        assert "is unavailable" in caplog.text
    finally:
        for server in servers:
            server.stop()
