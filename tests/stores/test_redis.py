"""The Redis stores against real servers.

- The contract suite against the Redis at ``REDIS_URL`` and the 3-node cluster on
  ``REDIS_CLUSTER_PORTS`` (``.ci/services/redis-cluster.sh`` starts both). Every
  test works under its own random key prefix and removes only those keys.
- Round trips, counted by a private ``redis-server`` this module starts, so no
  other client's traffic lands in its statistics.
- Outages, on another private server that is stopped, frozen and restarted.
- The contract runs on the client the settings build (RESP3, redis-py's default)
  and on a client the application hands over (RESP2 here).
"""

from __future__ import annotations

import importlib
import logging
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from redis.cluster import RedisCluster

from satchel.errors import ConfigurationError, StoreError, StoreUnavailable
from satchel.stores.base import Record, Store
from satchel.stores.redis import (
    RedisClusterStore,
    RedisStore,
    masked_address,
    redis_client,
    retry_policy,
    server_urls,
)
from satchel.testing import StoreContract, assert_fork_safe, new_key
from tests.support.servers import RedisServer, free_port
from tests.support.services import REDIS_CLUSTER_PORTS, REDIS_URL, need_port

#: How long one call may take while the server is down or frozen (the stores'
#: socket timeouts are 2 s).
OUTAGE_BOUND = 3.0


def new_prefix() -> str:
    return f"satchel-test:{secrets.token_hex(6)}:"


def drop_prefix(client: redis.Redis | RedisCluster, prefix: str) -> None:
    """Delete the keys under ``prefix`` (only those: the servers are shared)."""
    for name in list(client.scan_iter(match=prefix + "*", count=1000)):
        client.delete(name)


def redis_settings(url: str, prefix: str) -> dict[str, str]:
    return {"url": url, "key_prefix": prefix}


# -- the contract, against the shared servers ---------------------------------------


def shared_store(make: Callable[[str], Store]) -> Iterator[RedisStore]:
    """A store on the shared Redis under a fresh prefix (``make(prefix)``), dropped afterwards."""
    target = urlsplit(REDIS_URL)
    need_port(target.hostname or "127.0.0.1", target.port or 6379, "Redis")
    prefix = new_prefix()
    store = make(prefix)
    assert isinstance(store, RedisStore)
    yield store
    store.close()
    with redis.Redis.from_url(REDIS_URL) as client:
        drop_prefix(client, prefix)


class TestRedisStore(StoreContract):
    server_expires = True

    @pytest.fixture
    def store(self) -> Iterator[RedisStore]:
        yield from shared_store(lambda prefix: RedisStore.from_options(redis_settings(REDIS_URL, prefix)))


class TestRedisStoreOnGivenClient(StoreContract):
    """A client the application built itself, speaking RESP2."""

    server_expires = True

    @pytest.fixture
    def store(self) -> Iterator[RedisStore]:
        yield from shared_store(
            lambda prefix: RedisStore(redis.Redis.from_url(REDIS_URL, socket_timeout=2, protocol=2), prefix)
        )


def cluster_urls() -> tuple[str, ...]:
    for port in REDIS_CLUSTER_PORTS:
        need_port("127.0.0.1", port, "Redis Cluster node")
    return tuple(f"redis://127.0.0.1:{port}" for port in REDIS_CLUSTER_PORTS)


class TestRedisClusterStore(StoreContract):
    server_expires = True

    @pytest.fixture
    def store(self) -> Iterator[RedisClusterStore]:
        urls = cluster_urls()
        prefix = new_prefix()
        store = RedisClusterStore.from_options({"urls": urls, "key_prefix": prefix})
        assert isinstance(store, RedisClusterStore)
        yield store
        store.close()
        client = RedisCluster.from_url(urls[0])
        drop_prefix(client, prefix)
        client.close()


def test_cluster_spreads_records_over_all_primaries() -> None:
    urls = cluster_urls()
    prefix = new_prefix()
    store = RedisClusterStore.from_options({"urls": urls, "key_prefix": prefix})
    keys = [new_key() for _ in range(30)]
    for key in keys:
        assert store.save(key, b"x", 60, None)
    client = RedisCluster.from_url(urls[0])
    try:
        slots = {client.keyslot(prefix + key) for key in keys}
        nodes = {client.get_node_from_key(prefix + key).name for key in keys}
        assert len(slots) > 1 and len(nodes) == len(REDIS_CLUSTER_PORTS)
        assert store.count() == len(keys)
    finally:
        store.close()
        drop_prefix(client, prefix)
        client.close()


# -- details the contract does not cover, against the shared Redis --------------------


@pytest.fixture
def shared() -> Iterator[tuple[RedisStore, redis.Redis]]:
    """A store on the shared Redis and a plain client to look behind it."""
    target = urlsplit(REDIS_URL)
    need_port(target.hostname or "127.0.0.1", target.port or 6379, "Redis")
    prefix = new_prefix()
    store = RedisStore.from_options(redis_settings(REDIS_URL, prefix))
    client = redis.Redis.from_url(REDIS_URL)
    yield store, client
    store.close()
    drop_prefix(client, prefix)
    client.close()


def test_every_record_gets_a_server_side_ttl(shared: tuple[RedisStore, redis.Redis]) -> None:
    store, client = shared
    key = new_key()
    name = store.key_prefix + key
    store.save(key, b"x", 60, None)
    assert 0 < client.pttl(name) <= 60_000
    record = store.load(key)
    assert record is not None and record.expires_at is not None
    assert 55 < record.expires_at - time.time() <= 60
    assert store.touch(key, 600) and 60_000 < client.pttl(name) <= 600_000
    record = store.load(key)
    assert record is not None and record.expires_at is not None
    assert 595 < record.expires_at - time.time() <= 600, "touch moves the expiry load reports"
    assert store.touch(key, None) and client.pttl(name) == -1
    assert store.touch(key, None), "a record without expiry is still there"
    record = store.load(key)
    assert record is not None and record.expires_at is None
    assert store.save(key, b"y", 30, record.version)
    assert 0 < client.pttl(name) <= 30_000


def test_touch_never_creates_a_record(shared: tuple[RedisStore, redis.Redis]) -> None:
    store, client = shared
    key = new_key()
    name = store.key_prefix + key
    assert store.touch(key, 60) is False and store.touch(key, None) is False
    assert client.exists(name) == 0
    store.save(key, b"x", 60, None)
    assert store.touch(key, 0), "the record was there"
    assert client.exists(name) == 0, "a TTL of 0 expires it, leaving nothing behind"


def test_record_without_expiry_field_still_loads(shared: tuple[RedisStore, redis.Redis]) -> None:
    """Records written before the hash held ``e``: no expiry reported, so the session
    manager renews them by rewriting, and the rewrite (or a touch) adds ``e``."""
    store, client = shared
    key = new_key()
    name = store.key_prefix + key
    client.hset(name, mapping={"v": "0123456789abcdef", "d": b"old format"})
    client.pexpire(name, 60_000)
    record = store.load(key)
    assert record == Record(b"old format", "0123456789abcdef", None)
    assert store.save(key, b"rewritten", 120, record.version)
    record = store.load(key)
    assert record is not None and record.data == b"rewritten" and record.expires_at is not None
    assert 115 < record.expires_at - time.time() <= 120 and 0 < client.pttl(name) <= 120_000
    client.hdel(name, "e")
    assert store.touch(key, 300)
    record = store.load(key)
    assert record is not None and record.expires_at is not None
    assert 295 < record.expires_at - time.time() <= 300


def test_record_deleted_and_created_again_refuses_old_version(shared: tuple[RedisStore, redis.Redis]) -> None:
    store, _ = shared
    key = new_key()
    store.save(key, b"first life", 60, None)
    old = store.load(key)
    assert old is not None
    store.delete(key)
    assert store.save(key, b"second life", 60, None)
    assert store.save(key, b"stale writer", 60, old.version) is None


def test_count_takes_the_prefix_literally(shared: tuple[RedisStore, redis.Redis]) -> None:
    base, client = shared
    glob = RedisStore(client, base.key_prefix + "a*:")
    other = RedisStore(client, base.key_prefix + "ab:")
    glob.save(new_key(), b"x", 60, None)
    other.save(new_key(), b"x", 60, None)
    other.save(new_key(), b"x", 60, None)
    assert (glob.count(), other.count()) == (1, 2)


def test_key_of_another_type_loads_as_no_record(
    shared: tuple[RedisStore, redis.Redis], caplog: pytest.LogCaptureFixture
) -> None:
    store, client = shared
    keys = [new_key(), new_key()]
    for key in keys:
        client.set(store.key_prefix + key, b"not a hash", ex=60)
    with caplog.at_level(logging.DEBUG, logger="satchel.stores.redis"):
        assert [store.load(key) for key in keys] == [None, None]
    levels = [r.levelno for r in caplog.records if "is not a session record" in r.getMessage()]
    assert levels == [logging.WARNING, logging.DEBUG], "warned once, not once per request"
    assert client.get(store.key_prefix + keys[0]) == b"not a hash"


def test_writes_refuse_a_key_of_another_type(shared: tuple[RedisStore, redis.Redis]) -> None:
    store, client = shared
    key = new_key()
    name = store.key_prefix + key
    client.set(name, b"not a hash", ex=60)
    for write in (
        lambda: store.save(key, b"x", 60, None),
        lambda: store.save(key, b"x", 60, "0123456789abcdef"),
        lambda: store.touch(key, 600),
        lambda: store.touch(key, None),
    ):
        with pytest.raises(StoreError) as caught:
            write()
        assert not isinstance(caught.value, StoreUnavailable)
        assert isinstance(caught.value.__cause__, redis.exceptions.ResponseError)
        assert "holds a string" in str(caught.value) and store.address in str(caught.value)
    assert client.get(name) == b"not a hash"
    assert 0 < client.pttl(name) <= 60_000, "touch left the foreign key's TTL alone"
    store.delete(key)
    assert store.save(key, b"x", 60, None), "once the key is gone, a record can be created"


def test_error_answer_leaves_the_connection_in_use(counted: tuple[RedisStore, ServerCounts]) -> None:
    store, counts = counted
    key = new_key()
    counts.client.set(store.key_prefix + key, b"not a hash", ex=60)
    connections = counts.client.info("stats")["total_connections_received"]
    assert store.load(key) is None
    for write in (lambda: store.save(key, b"x", 60, None), lambda: store.touch(key, 60)):
        with pytest.raises(StoreError) as caught:
            write()
        assert "WRONGTYPE" in str(caught.value)
    other = new_key()
    assert store.save(other, b"fine", 60, None)
    record = store.load(other)
    assert record is not None and record.data == b"fine"
    store.delete(other)
    assert store.load(other) is None
    # The INFO client was connected before: the store made no new connection.
    assert counts.client.info("stats")["total_connections_received"] == connections


def test_address_hides_the_whole_userinfo() -> None:
    assert masked_address("redis://user:p@ss:w@rd@cache.example:6380/2") == "redis://***@cache.example:6380/2"
    assert masked_address("rediss://:secret@cache.example/0?ssl_cert_reqs=none") == (
        "rediss://***@cache.example/0?ssl_cert_reqs=none"
    )
    assert masked_address("redis://cache.example:6379/0?password=secret&db=1") == (
        "redis://cache.example:6379/0?password=***&db=1"
    )
    assert masked_address("unix:///run/redis.sock?db=3") == "unix:///run/redis.sock?db=3"


def test_server_urls_take_lists_and_bare_host_ports() -> None:
    assert server_urls("a:7000; b:7001,redis://c:7002") == ("redis://a:7000", "redis://b:7001", "redis://c:7002")
    assert server_urls(["rediss://a:6380"]) == ("rediss://a:6380",)


def test_from_options_builds_a_working_store(shared: tuple[RedisStore, redis.Redis]) -> None:
    base, _ = shared
    timeout = RedisStore.options["socket_timeout"]("0.5   # seconds", "session.socket_timeout")
    options = {"url": REDIS_URL.removeprefix("redis://"), "key_prefix": base.key_prefix, "socket_timeout": timeout}
    store = RedisStore.from_options(options)
    try:
        assert store.address == REDIS_URL and store.key_prefix == base.key_prefix
        key = new_key()
        version = store.save(key, b"x", 60, None)
        record = base.load(key)
        assert version is not None and record is not None and (record.data, record.version) == (b"x", version)
        client, _ = store._server()
        assert client.connection_pool.connection_kwargs["socket_timeout"] == 0.5
    finally:
        store.close()


def test_bad_options_are_configuration_errors() -> None:
    coerce = RedisStore.options["socket_timeout"]
    for bad in ("soon", "0", "-1"):
        with pytest.raises(ConfigurationError, match=r"session\.socket_timeout"):
            coerce(bad, "session.socket_timeout")
    with pytest.raises(ConfigurationError, match="url"):
        RedisStore.from_options({})
    with pytest.raises(ConfigurationError, match="urls"):
        RedisClusterStore.from_options({"urls": ()})
    with pytest.raises(ConfigurationError, match="one url"):
        redis_client("a:1;b:2", cluster=False)


def test_client_for_others_has_the_stores_timeouts_and_retry_policy() -> None:
    client = redis_client("127.0.0.1:6379/15", cluster=False)
    try:
        options = client.connection_pool.connection_kwargs
        assert (options["socket_timeout"], options["socket_connect_timeout"]) == (2.0, 2.0)
        assert options["retry"].get_retries() == retry_policy().get_retries() == 1
    finally:
        client.close()


def test_missing_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "satchel.stores.redis")
    with pytest.raises(StoreUnavailable, match=r'pip install "satchel\[redis\]"'):
        importlib.import_module("satchel.stores.redis")


# -- private servers ------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def quiet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A server nobody else talks to: its statistics count only this module's calls."""
    server = RedisServer(tmp_path_factory.mktemp("redis-counted"))
    server.start()
    yield server
    server.stop()


# -- round trips, as the server counts them ---------------------------------------------


class ServerCounts:
    """What the server saw between two ``INFO`` calls.

    ``reads``: ``total_reads_processed``, the socket reads that brought requests
    in. A request (one command or a pipeline of several) sent in one write
    arrives in one read, so for small requests this is the number of network
    round trips. ``commands``: ``INFO commandstats`` deltas. Redis counts there
    the commands a Lua script runs as well as the EVALSHA itself. The second
    ``INFO`` counts itself in both, and is taken off.
    """

    def __init__(self, server: RedisServer) -> None:
        self.client = redis.Redis(port=server.port)
        self.reads, self.commands = 0, Counter[str]()

    def _snapshot(self) -> tuple[int, Counter[str]]:
        info: dict[str, Any] = self.client.info("all")
        calls = Counter({k.removeprefix("cmdstat_"): v["calls"] for k, v in info.items() if k.startswith("cmdstat_")})
        return info["total_reads_processed"], calls

    def during(self, action: Callable[[], object]) -> ServerCounts:
        reads, calls = self._snapshot()
        action()
        reads_after, calls_after = self._snapshot()
        self.reads = reads_after - reads - 1
        self.commands = calls_after - calls
        self.commands["info"] -= 1
        self.commands = +self.commands  # drop the zero entries
        return self


@pytest.fixture
def counted(quiet_server: RedisServer) -> Iterator[tuple[RedisStore, ServerCounts]]:
    store = RedisStore.from_options(redis_settings(quiet_server.url, new_prefix()))
    # Warm up: open the connection (HELLO, CLIENT SETINFO) and load the scripts.
    store.load(new_key())
    store.save(new_key(), b"warm", 60, None)
    store.touch(new_key(), None)
    counts = ServerCounts(quiet_server)
    yield store, counts
    counts.client.close()
    store.close()


def test_load_is_one_round_trip(counted: tuple[RedisStore, ServerCounts]) -> None:
    store, counts = counted
    key = new_key()
    store.save(key, b"data", 60, None)
    seen = counts.during(lambda: store.load(key))
    assert seen.reads == 1
    assert seen.commands == Counter(hmget=1)  # version, data and expiry in one command
    seen = counts.during(lambda: store.load(new_key()))
    assert (seen.reads, seen.commands) == (1, Counter(hmget=1))


def test_save_is_one_evalsha(counted: tuple[RedisStore, ServerCounts]) -> None:
    store, counts = counted
    key = new_key()
    # The script's HGET, HSET and PEXPIRE are counted too: they run inside the EVALSHA.
    inside = Counter(hget=1, hset=1, pexpire=1)
    seen = counts.during(lambda: store.save(key, b"new", 60, None))
    assert (seen.reads, seen.commands) == (1, Counter(evalsha=1) + inside)
    record = store.load(key)
    assert record is not None
    seen = counts.during(lambda: store.save(key, b"next", 60, record.version))
    assert (seen.reads, seen.commands) == (1, Counter(evalsha=1) + inside)
    seen = counts.during(lambda: store.save(key, b"late", 60, record.version))  # a conflict
    assert (seen.reads, seen.commands) == (1, Counter(evalsha=1, hget=1))


def test_touch_is_one_evalsha(counted: tuple[RedisStore, ServerCounts]) -> None:
    store, counts = counted
    key = new_key()
    store.save(key, b"data", 60, None)
    # The TTL and the expiry field "e" that load reads, set together by one script.
    # TYPE first: a key of another type is refused before its TTL changes.
    seen = counts.during(lambda: store.touch(key, 120))
    assert (seen.reads, seen.commands) == (1, Counter(evalsha=1, type=1, pexpire=1, hset=1))
    seen = counts.during(lambda: store.touch(key, None))
    assert (seen.reads, seen.commands) == (1, Counter(evalsha=1, type=1, persist=1, hset=1))
    seen = counts.during(lambda: store.touch(new_key(), 120))  # a missing record
    assert (seen.reads, seen.commands) == (1, Counter(evalsha=1, type=1))


def test_delete_is_one_del(counted: tuple[RedisStore, ServerCounts]) -> None:
    store, counts = counted
    key = new_key()
    store.save(key, b"data", 60, None)
    seen = counts.during(lambda: store.delete(key))
    assert (seen.reads, seen.commands) == (1, Counter({"del": 1}))


def test_forgotten_script_costs_one_script_load(counted: tuple[RedisStore, ServerCounts]) -> None:
    store, counts = counted
    counts.client.script_flush()
    seen = counts.during(lambda: store.save(new_key(), b"data", 60, None))
    # EVALSHA answered NOSCRIPT, SCRIPT LOAD, EVALSHA again.
    assert seen.reads == 3
    assert seen.commands == Counter({"evalsha": 2, "script|load": 1, "hget": 1, "hset": 1, "pexpire": 1})
    key = new_key()
    store.save(key, b"data", 60, None)
    counts.client.script_flush()
    seen = counts.during(lambda: store.touch(key, 120))
    assert seen.reads == 3
    assert seen.commands == Counter({"evalsha": 2, "script|load": 1, "type": 1, "pexpire": 1, "hset": 1})
    # Save and touch share the script: it is loaded again once, not once each.
    seen = counts.during(lambda: store.save(new_key(), b"data", 60, None))
    assert (seen.reads, seen.commands["script|load"]) == (1, 0)


# -- outages --------------------------------------------------------------------------


def assert_unavailable(store: RedisStore, call: Callable[[], object]) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        call()
    assert time.monotonic() - started <= OUTAGE_BOUND
    error = caught.value
    assert (error.store, error.address) == ("redis", store.address)
    assert store.address in str(error)
    assert isinstance(error.__cause__, redis.exceptions.RedisError)


def test_server_down_then_back(server: RedisServer) -> None:
    store = RedisStore.from_options(redis_settings(server.url, new_prefix()))
    assert store.address == server.url
    key = new_key()
    assert store.save(key, b"before", 60, None)

    server.stop()
    for call in (
        lambda: store.load(key),
        lambda: store.save(key, b"during", 60, None),
        lambda: store.touch(key, 60),
        lambda: store.touch(key, None),
        lambda: store.delete(key),
        store.count,
    ):
        assert_unavailable(store, call)

    server.start()  # same port, empty (no persistence), scripts forgotten
    assert store.load(key) is None
    assert store.save(key, b"after", 60, None) is not None
    record = store.load(key)
    assert record is not None and record.data == b"after"
    store.close()


def test_restart_between_calls_goes_unnoticed(server: RedisServer) -> None:
    store = RedisStore.from_options(redis_settings(server.url, new_prefix()))
    key = new_key()
    assert store.save(key, b"before", 60, None)
    server.stop()
    server.start()
    # The pooled connection is dead; redis-py replaces it before using it.
    assert store.load(key) is None
    assert store.save(key, b"after", 60, None) is not None
    store.close()


def test_connections_killed_by_the_server_are_replaced(server: RedisServer) -> None:
    """The server closes the store's idle connections (CLIENT KILL, an idle timeout):
    the next call fails on the dead connection, reconnects and sends the command again."""
    store = RedisStore.from_options(redis_settings(server.url, new_prefix()))
    key = new_key()
    assert store.save(key, b"before", 60, None)
    with redis.Redis(port=server.port) as admin:
        for call in (
            lambda: store.load(key),
            lambda: store.touch(key, 60),
            lambda: store.delete(new_key()),
        ):
            assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
            call()
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        record = store.load(key)
        assert record is not None and record.data == b"before"
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        assert store.save(key, b"after", 60, record.version) is not None
        # A killed connection and forgotten scripts at once: reconnect, NOSCRIPT, SCRIPT LOAD.
        admin.script_flush()
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        assert store.touch(key, 120) is True
    record = store.load(key)
    assert record is not None and record.data == b"after" and record.expires_at is not None
    store.close()


def test_forked_child_takes_its_own_connections(server: RedisServer) -> None:
    store = RedisStore.from_options(redis_settings(server.url, new_prefix()))
    with redis.Redis(port=server.port) as admin:
        assert_fork_safe(store, lambda: int(admin.info("stats")["total_connections_received"]))
    store.close()


def test_frozen_server_times_out_within_bound_without_a_retry(server: RedisServer) -> None:
    store = RedisStore.from_options(redis_settings(server.url, new_prefix()))
    key = new_key()
    assert store.save(key, b"before", 60, None)
    with redis.Redis(port=server.port) as admin:
        connections = admin.info("stats")["total_connections_received"]
        server.signal(signal.SIGSTOP)  # accepts connections, never answers
        try:
            assert_unavailable(store, lambda: store.load(key))
        finally:
            server.signal(signal.SIGCONT)
        admin.ping()  # any connection a retry opened is accepted by now
        assert admin.info("stats")["total_connections_received"] == connections, "a timeout is not retried"
    record = store.load(key)
    assert record is not None and record.data == b"before"
    store.close()


def test_unreachable_server_hides_credentials() -> None:
    url = f"redis://satchel:hunter2-secret@127.0.0.1:{free_port()}/0"
    store = RedisStore.from_options(redis_settings(url, new_prefix()))
    with pytest.raises(StoreUnavailable) as caught:
        store.load(new_key())
    assert "hunter2" not in str(caught.value) and "hunter2" not in caught.value.address
    assert caught.value.address == f"redis://***@127.0.0.1:{url.rsplit(':', 1)[1]}"


def test_cluster_down_at_start_is_unavailable_not_fatal() -> None:
    port = free_port()
    settings = {"urls": (f"127.0.0.1:{port}",), "key_prefix": new_prefix()}
    store = RedisClusterStore.from_options(settings)  # redis-py would connect here; the store waits for first use
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        store.load(new_key())
    assert time.monotonic() - started <= OUTAGE_BOUND
    assert caught.value.store == "rediscluster"
    assert f"127.0.0.1:{port}" in str(caught.value)
    store.close()


def test_a_hash_with_a_version_this_store_never_writes_is_no_record(shared: tuple[RedisStore, redis.Redis]) -> None:
    store, client = shared
    key = new_key()
    client.hset(store.key_prefix + key, mapping={"v": "vérsion".encode(), "d": b"S1 1.0 1.0\n{}"})
    client.pexpire(store.key_prefix + key, 60_000)
    assert store.load(key) is None
    store.delete(key)
