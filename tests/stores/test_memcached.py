"""The memcached store against real servers: two shared ones, and private ones to kill.

Run ``.ci/services/memcached.sh`` first (servers on 127.0.0.1:11211 and :11212).
Round trips are counted by the servers themselves (``stats``), so these tests
assume nobody else talks to those two servers while they run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from pymemcache.client.base import Client

from satchel.errors import ConfigurationError, StoreError, StoreUnavailable
from satchel.stores.memcached import (
    MAX_KEY_BYTES,
    MemcachedStore,
    ServerRing,
    expiry,
    open_servers,
    parse_servers,
    written,
)
from satchel.testing import StoreContract, assert_fork_safe, new_key
from tests.support.services import MEMCACHED_SERVERS, need, need_port, nonsense_server, port_open

SERVERS = parse_servers(MEMCACHED_SERVERS)
COUNTERS = ("cmd_get", "cmd_set", "cmd_touch", "cas_hits", "cas_misses", "cas_badval", "total_items")
DAY = 24 * 3600


@pytest.fixture
def servers() -> list[tuple[str, int]]:
    for host, port in SERVERS:
        need_port(host, port, "memcached")
    return SERVERS


@pytest.fixture
def store(servers: list[tuple[str, int]]) -> Iterator[MemcachedStore]:
    store = MemcachedStore(MEMCACHED_SERVERS, key_prefix=f"t{secrets.token_hex(6)}:")
    yield store
    store.close()


class TestMemcachedStore(StoreContract):
    # memcached's reply to add and cas does not tell the new CAS value.
    tells_new_version = False
    server_expires = True
    # A 1-second TTL is sent as 2 (memcached's clock has one-second steps).
    expiry_wait = 1.7


def stats(servers: list[tuple[str, int]]) -> list[Counter[str]]:
    """The counters in COUNTERS, per server, as the servers report them."""
    result = []
    for server in servers:
        client = Client(server)
        try:
            raw = client.stats()
        finally:
            client.close()
        result.append(Counter({name: int(raw[name.encode()]) for name in COUNTERS}))
    return result


def delta(before: list[Counter[str]], after: list[Counter[str]]) -> list[Counter[str]]:
    return [+(a - b) for a, b in zip(after, before)]


def total(per_server: list[Counter[str]]) -> Counter[str]:
    return sum(per_server, Counter())


def test_keys_spread_over_both_servers(store: MemcachedStore, servers: list[tuple[str, int]]) -> None:
    keys = [new_key() for _ in range(40)]
    before = stats(servers)
    for key in keys:
        assert store.save(key, b"x", 60, None)
    stored = delta(before, stats(servers))
    for key in keys:
        assert store.load(key) is not None
    both = delta(before, stats(servers))
    assert [d["total_items"] for d in stored] == [d["total_items"] for d in both]
    assert all(d["total_items"] > 0 for d in stored), stored
    assert sum(d["total_items"] for d in stored) == len(keys)
    assert all(d["cmd_get"] > 0 for d in both), both


def test_each_operation_is_one_round_trip(store: MemcachedStore, servers: list[tuple[str, int]]) -> None:
    key = new_key()

    def counted(operation: object) -> Counter[str]:
        before = stats(servers)
        assert callable(operation)
        operation()
        change = total(delta(before, stats(servers)))
        del change["total_items"]
        return change

    assert counted(lambda: store.load(key)) == {"cmd_get": 1}
    assert counted(lambda: store.save(key, b"v1", 60, None)) == {"cmd_set": 1}
    assert counted(lambda: store.save(key, b"v1", 60, None)) == {"cmd_set": 1}  # refused add
    record = store.load(key)
    assert record is not None
    assert counted(lambda: store.load(key)) == {"cmd_get": 1}
    assert counted(lambda: store.save(key, b"v2", 60, record.version)) == {"cmd_set": 1, "cas_hits": 1}
    assert counted(lambda: store.save(key, b"v3", 60, record.version)) == {"cmd_set": 1, "cas_badval": 1}
    assert counted(lambda: store.touch(key, 60)) == {"cmd_touch": 1}
    store.delete(key)
    assert counted(lambda: store.save(key, b"v4", 60, record.version)) == {"cmd_set": 1, "cas_misses": 1}
    assert counted(lambda: store.touch(key, 60)) == {"cmd_touch": 1}


def test_a_second_write_in_a_row_reads_the_record_once(store: MemcachedStore, servers: list[tuple[str, int]]) -> None:
    """A save expecting the version another save answered costs one gets more; a
    save expecting a version load gave costs none."""
    key = new_key()
    first = store.save(key, b"one", 60, None)
    before = stats(servers)
    second = store.save(key, b"two", 60, first)
    change = total(delta(before, stats(servers)))
    del change["total_items"]
    assert second is not None
    assert change == {"cmd_get": 1, "cmd_set": 1, "cas_hits": 1}


def test_the_ring_fetches_many_keys_from_the_servers_that_hold_them(servers: list[tuple[str, int]]) -> None:
    """The cache layer's multi-key read: each key asked once, of its own server."""
    ring = open_servers(MEMCACHED_SERVERS)
    prefix = f"t{secrets.token_hex(6)}:"
    keys = [prefix + new_key() for _ in range(10)]
    try:
        assert len({ring.node(key) for key in keys}) == 2
        for key in keys[:6]:
            assert ring.run(key, lambda client, key=key: client.set(key, key.encode(), 60, noreply=False))
        before = stats(servers)
        found = ring.get_many(keys)
        change = delta(before, stats(servers))
        assert found == {key: key.encode() for key in keys[:6]}
        assert [d["cmd_get"] for d in change] == [
            sum(ring.servers[ring.node(key)] == server for key in keys) for server in servers
        ]
    finally:
        ring.close()


def test_connections_have_tcp_nodelay(store: MemcachedStore) -> None:
    for _ in range(20):  # enough keys to open a connection to each server
        store.load(new_key())
    pools = [store.ring.pool(address) for address in store.ring.servers]
    connections = [client.sock for pool in pools for client in pool.idle]
    assert len(connections) == len(SERVERS)
    for sock in connections:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_commands_in_flight_at_once_have_a_connection_each(store: MemcachedStore) -> None:
    address = next(iter(store.ring.servers))
    pool = store.ring.pool(address)
    held: list[Any] = []

    def outer(client: Any) -> Any:
        held.append(client)
        return pool.run(lambda inner: (held.append(inner), inner.version()))

    pool.run(outer)
    assert len(held) == 2 and held[0] is not held[1]
    assert held[0] in pool.idle and held[1] in pool.idle


def test_a_command_that_fails_halfway_leaves_no_reply_for_the_next(store: MemcachedStore) -> None:
    """A command that raised may have left its reply unread on the connection: the
    pool closes it, so the next command on that client reads its own reply."""
    key = new_key()
    assert store.save(key, b"mine", 60, None)
    address = store.ring.node(store.server_key(key))
    pool = store.ring.pool(address)

    def sent_then_failed(client: Any) -> None:
        client.version()  # connected
        client.sock.sendall(b"version\r\n")  # its reply is never read
        raise RuntimeError("the view's code failed")

    with pytest.raises(RuntimeError):
        pool.run(sent_then_failed)
    record = store.load(key)
    assert record is not None and record.data == b"mine"


def test_long_keys_are_hashed(store: MemcachedStore) -> None:
    long_a, long_b = "a" * 250, "a" * 249 + "b"
    assert len(store.key_prefix + long_a) > MAX_KEY_BYTES
    assert len(store.server_key(long_a)) <= MAX_KEY_BYTES
    assert store.save(long_a, b"A", 60, None)
    assert store.save(long_b, b"B", 60, None)
    loaded = store.load(long_a), store.load(long_b)
    assert [r.data if r else None for r in loaded] == [b"A", b"B"]


@pytest.mark.parametrize("ttl", [30 * DAY - 1, 30 * DAY, 40 * DAY, 400 * DAY])
def test_long_ttl_is_not_read_as_a_past_date(store: MemcachedStore, ttl: int) -> None:
    key = new_key()
    assert store.save(key, b"long", ttl, None)
    assert store.touch(key, ttl)
    record = store.load(key)
    assert record is not None and record.data == b"long"


def test_expiry_sent_to_memcached() -> None:
    """One second more than asked (memcached's clock steps by seconds); absolute past 30 days."""
    assert (expiry(None), expiry(0), expiry(1), expiry(30 * DAY - 1)) == (0, -1, 2, 30 * DAY)
    now = int(time.time())
    assert now + 30 * DAY + 1 <= expiry(30 * DAY) <= int(time.time()) + 30 * DAY + 1


def test_from_options_and_registry(servers: list[tuple[str, int]]) -> None:
    url = ",".join(f"{host}:{port}" for host, port in servers)
    store = MemcachedStore.from_options({"url": url, "key_prefix": "t:registry:"})
    try:
        assert isinstance(store, MemcachedStore)
        assert store.address == ";".join(f"{host}:{port}" for host, port in servers)
        key = new_key()
        assert store.save(key, b"x", 60, None)
        assert store.load(key) is not None
        store.delete(key)
    finally:
        store.close()


def test_server_list_parsing() -> None:
    assert parse_servers("a:1;b:2, c [::1]:4") == [("a", 1), ("b", 2), ("c", 11211), ("::1", 4)]
    for bad in ("a:b", "::1:11211", "a:1:2"):
        with pytest.raises(ConfigurationError):
            parse_servers(bad)
    with pytest.raises(ConfigurationError):
        MemcachedStore("127.0.0.1:11211", key_prefix="has space:")
    with pytest.raises(ConfigurationError):
        MemcachedStore.from_options({})
    assert parse_servers(["a:1", " b ", ("c", 3)]) == [("a", 1), ("b", 11211), ("c", 3)]
    with pytest.raises(ConfigurationError):
        parse_servers(" ; ")


def test_from_options_reads_beakers_names(servers: list[tuple[str, int]]) -> None:
    url = ";".join(f"{host}:{port}" for host, port in servers)
    for options in (
        {"url": url, "key_prefix": "t:options:"},
        {"urls": tuple(url.split(";")), "key_prefix": "t:options:", "memcache_module": "pymemcache"},
        {"url": url, "memcache_module": "auto"},
    ):
        store = MemcachedStore.from_options(options)
        try:
            assert store.address == url
            assert store.key_prefix == options.get("key_prefix", "satchel:s:")
        finally:
            store.close()
    assert set(MemcachedStore.options) == {"url", "urls", "key_prefix", "memcache_module"}


def test_a_memcache_module_other_than_pymemcache_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="pymemcache") as raised:
        MemcachedStore.from_options({"url": "127.0.0.1:11211", "memcache_module": "pylibmc"})
    assert raised.value.key == "memcache_module"


# -- outages, on private servers this test starts and kills ------------------------


class OwnMemcached:
    """A memcached on a free local port that the test can kill and restart."""

    def __init__(self, *options: str) -> None:
        binary = shutil.which("memcached") or "/usr/bin/memcached"
        need(os.access(binary, os.X_OK), "the memcached binary")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.command = [binary, "-p", str(self.port), "-U", "0", "-l", "127.0.0.1", "-m", "16", *options]
        if os.geteuid() == 0:
            self.command += ["-u", "root"]
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(self.command)
        deadline = time.monotonic() + 5
        while not port_open("127.0.0.1", self.port, timeout=0.2):
            assert time.monotonic() < deadline, f"memcached did not start on {self.address}"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def own_servers() -> Iterator[tuple[OwnMemcached, OwnMemcached]]:
    first = OwnMemcached()
    try:
        second = OwnMemcached()
    except BaseException:
        first.stop()
        raise
    yield first, second
    first.stop()
    second.stop()


def test_outage_raises_store_unavailable_then_recovers(
    own_servers: tuple[OwnMemcached, OwnMemcached],
) -> None:
    down, up = own_servers
    store = MemcachedStore(f"{down.address};{up.address}", key_prefix=f"t{secrets.token_hex(6)}:")
    keys = {new_key(): secrets.token_bytes(8) for _ in range(30)}
    for key, data in keys.items():
        assert store.save(key, data, 60, None)

    down.stop()
    on_down, on_up = [], []
    for key, data in keys.items():
        started = time.monotonic()
        try:
            record = store.load(key)
        except StoreUnavailable as exc:
            assert (exc.store, exc.address) == ("memcached", down.address)
            assert down.address in str(exc)
            assert isinstance(exc.__cause__, OSError)
            with pytest.raises(StoreUnavailable):
                store.save(key, b"new", 60, None)
            with pytest.raises(StoreUnavailable):
                store.touch(key, 60)
            on_down.append(key)
        else:
            # Keys on the live server stay where they are, with their data.
            assert record is not None and record.data == data
            on_up.append(key)
        assert time.monotonic() - started < 8  # bounded by the 2-second timeouts
    assert on_down and on_up

    down.start()  # same port, empty: memcached keeps nothing across a restart
    for key in on_down:
        assert store.load(key) is None
        assert store.save(key, b"again", 60, None)
        record = store.load(key)
        assert record is not None and record.data == b"again"
    for key in on_up:
        record = store.load(key)
        assert record is not None and record.data == keys[key]
    store.close()


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_ring_with_a_retry_interval_rests_only_the_failed_server(
    own_servers: tuple[OwnMemcached, OwnMemcached],
) -> None:
    """Its keys fail at once, without the server being asked, until the interval has
    passed; the other server's keys keep working meanwhile."""
    down, up = own_servers
    ticks = Ticks()
    ring = ServerRing(parse_servers(f"{down.address};{up.address}"), retry_interval=5, monotonic=ticks)
    keys = [f"t:rest:{new_key()}" for _ in range(20)]
    on_down = next(key for key in keys if ring.node(key) == down.address)
    on_up = next(key for key in keys if ring.node(key) == up.address)

    def get(key: str) -> bytes | None:
        value: bytes | None = ring.run(key, lambda client: client.get(key))
        return value

    down.stop()
    with pytest.raises(StoreUnavailable, match="unreachable"):
        get(on_down)
    down.start()
    ticks.now += 4.9
    with pytest.raises(StoreUnavailable, match="not tried again yet") as raised:
        get(on_down)
    assert (raised.value.store, raised.value.address) == ("memcached", down.address)
    assert get(on_up) is None
    assert stats([("127.0.0.1", down.port)])[0]["cmd_get"] == 0  # never asked while resting

    ticks.now += 0.1
    assert get(on_down) is None
    assert get(on_down) is None
    assert stats([("127.0.0.1", down.port)])[0]["cmd_get"] == 2
    ring.close()


def test_the_session_store_asks_a_failed_server_again_on_the_next_call(
    own_servers: tuple[OwnMemcached, OwnMemcached],
) -> None:
    server, _ = own_servers
    store = MemcachedStore(server.address, key_prefix="t:again:")
    key = new_key()
    server.stop()
    for _ in range(2):
        with pytest.raises(StoreUnavailable, match="unreachable"):
            store.load(key)
    server.start()
    assert store.load(key) is None
    store.close()


def test_memcached_without_cas_is_a_clear_error() -> None:
    server = OwnMemcached("-C")
    try:
        store = MemcachedStore(server.address, key_prefix="t:nocas:")
        key = new_key()
        assert store.save(key, b"x", 60, None)
        with pytest.raises(StoreError, match="CAS"):
            store.load(key)
        store.close()
    finally:
        server.stop()


def idle_connections(store: MemcachedStore, count: int) -> None:
    """Leave ``count`` connected idle connections in the pool of the store's one server."""
    (address,) = store.ring.servers
    pool = store.ring.pool(address)

    def hold(left: int) -> None:
        # Each command holds its client while the next one borrows another.
        if left:
            pool.run(lambda client: (client.version(), hold(left - 1)))

    hold(count)
    assert len(pool.idle) >= count


def test_a_restart_between_calls_costs_a_load_nothing(own_servers: tuple[OwnMemcached, OwnMemcached]) -> None:
    """A load on a connection the restarted server closed is sent again on a new
    one, and the server's other idle connections (closed too) go with it, so the
    writes after it find working connections."""
    server, _ = own_servers
    store = MemcachedStore(server.address, key_prefix="t:restart:")
    key = new_key()
    assert store.save(key, b"x", 60, None)
    idle_connections(store, 3)
    server.stop()
    server.start()
    assert store.load(key) is None  # memcached kept nothing
    version = None
    for n in range(3):
        assert store.save(key, b"after the restart %d" % n, 60, version) is not None
        record = store.load(key)
        assert record is not None and record.data == b"after the restart %d" % n
        version = record.version
    store.close()


@pytest.mark.parametrize("retry_interval", [0, 60])
def test_a_write_first_after_a_restart_is_unavailable_once(
    own_servers: tuple[OwnMemcached, OwnMemcached], retry_interval: float
) -> None:
    """A write on a connection found closed is never sent again (the server may have
    run it): its outcome is unknown, so it is StoreUnavailable, not a conflict. The
    server's stale connections are dropped with it, and the next write works, also
    on a ring that rests failed servers (the server did answer)."""
    server, _ = own_servers
    store = MemcachedStore(server.address, key_prefix="t:restart:")
    store.ring.retry_interval = retry_interval
    assert store.save(new_key(), b"x", 60, None)
    idle_connections(store, 3)
    server.stop()
    server.start()
    key = new_key()
    with pytest.raises(StoreUnavailable, match="outcome is unknown"):
        store.save(key, b"first", 60, None)
    assert store.save(key, b"second", 60, None) is not None
    record = store.load(key)
    assert record is not None and record.data == b"second"
    store.close()


# -- values, as memcached holds them ------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"\r\nEND\r\n", b"VALUE k 0 1 1\r\nx\r\nEND\r\n", bytes(range(256)) * 3, secrets.token_bytes(900_000)],
    ids=["empty", "end-marker", "a-whole-reply", "every-byte", "900-KB"],
)
def test_any_bytes_round_trip(store: MemcachedStore, data: bytes) -> None:
    key = new_key()
    assert store.save(key, data, 60, None)
    record = store.load(key)
    assert record is not None and record.data == data
    assert store.save(key, data[::-1], 60, record.version)
    again = store.load(key)
    assert again is not None and again.data == data[::-1]


def test_value_over_the_item_size_limit_is_a_store_error_and_nothing_is_lost(store: MemcachedStore) -> None:
    key = new_key()
    assert store.save(key, b"kept", 60, None)
    record = store.load(key)
    assert record is not None
    with pytest.raises(StoreError, match="too large"):
        store.save(key, b"x" * (2 << 20), 60, record.version)  # memcached's default limit: 1 MB
    with pytest.raises(StoreError, match="too large"):
        store.save(new_key(), b"x" * (2 << 20), 60, None)
    after = store.load(key)
    assert after is not None and after.data == b"kept"
    assert store.save(key, b"next", 60, after.version)


def test_a_value_another_client_marked_as_pickled_is_read_as_bytes(store: MemcachedStore) -> None:
    """Records are bytes whatever their flags (1 is pymemcache's "pickled"): loading
    never runs code someone with access to the server wrote."""
    key = new_key()
    name = store.server_key(key)
    client = Client(store.ring.servers[store.ring.node(name)])
    try:
        payload = b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01."
        assert client.set(name, payload, expire=60, noreply=False, flags=1)
    finally:
        client.close()
    record = store.load(key)
    assert record is not None and record.data == payload


def test_a_record_written_as_plain_bytes_before_loads_and_updates(store: MemcachedStore) -> None:
    """Records are stored as they are (no header of the store's own), so what an
    earlier satchel wrote with a plain set reads back and takes a conditional write."""
    key = new_key()
    name = store.server_key(key)
    client = Client(store.ring.servers[store.ring.node(name)])
    try:
        assert client.set(name, b"an older record", expire=60, noreply=False)
    finally:
        client.close()
    record = store.load(key)
    assert record is not None and record.data == b"an older record"
    assert store.save(key, b"updated", 60, record.version) is not None


def test_a_second_write_is_checked_against_the_bytes_the_first_wrote(store: MemcachedStore) -> None:
    """memcached does not tell the CAS value a write gave its record, so save's
    version names the bytes written: a following save expecting it writes only
    while the record still holds them."""
    key = new_key()
    first = store.save(key, b"one", 60, None)
    assert first is not None
    second = store.save(key, b"two", 60, first)
    assert second is not None and second != first
    assert store.save(key, b"lost", 60, first) is None  # the record moved on to "two"
    other = store.load(key)
    assert other is not None
    assert store.save(key, b"by another writer", 60, other.version)
    assert store.save(key, b"lost too", 60, second) is None
    store.delete(key)
    assert store.save(key, b"zombie", 60, written(b"by another writer")) is None
    assert store.load(key) is None


def hang_up(sock: socket.socket) -> None:
    """Close ``sock`` with a FIN now (a plain close() waits for a thread blocked in recv() on it)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class Proxy:
    """A TCP relay to a real memcached that hands its replies on in small pieces,
    and can hang up in the middle of the first reply it relays."""

    def __init__(self, upstream: tuple[str, int], piece: int = 1, cut_after: int | None = None) -> None:
        self.upstream, self.piece, self.cut_after = upstream, piece, cut_after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            server = socket.create_connection(self.upstream)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._forward, args=(client, server), daemon=True).start()
            threading.Thread(target=self._dribble, args=(server, client), daemon=True).start()

    def _forward(self, source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                target.sendall(chunk)
        hang_up(target)

    def _dribble(self, source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                start = 0
                while start < len(chunk):
                    size = self.piece
                    if self.cut_after is not None:
                        if self.cut_after <= 0:
                            self.cut_after = None
                            hang_up(target)
                            hang_up(source)
                            return
                        size = min(size, self.cut_after)
                        self.cut_after -= size
                    target.sendall(chunk[start : start + size])
                    if start < 64:
                        time.sleep(0.001)  # the reader sees the head of a reply in pieces
                    start += size
        hang_up(target)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def proxy(servers: list[tuple[str, int]]) -> Iterator[Proxy]:
    relay = Proxy(servers[0], piece=1)
    yield relay
    relay.close()


def test_replies_arriving_in_pieces_are_read_whole(proxy: Proxy) -> None:
    store = MemcachedStore(proxy.address, key_prefix=f"t{secrets.token_hex(6)}:")
    key, big = new_key(), secrets.token_bytes(70_000)
    proxy.piece = 1
    assert store.load(key) is None
    assert store.save(key, b"\r\nEND\r\n", 60, None)
    assert store.save(key, b"again", 60, None) is None
    record = store.load(key)
    assert record is not None and record.data == b"\r\nEND\r\n"
    proxy.piece = 4096
    assert store.save(key, big, 60, record.version)
    loaded = store.load(key)
    assert loaded is not None and loaded.data == big
    assert store.touch(key, 60)
    store.delete(key)
    assert store.touch(key, 60) is False
    store.close()


@pytest.fixture
def relay(servers: list[tuple[str, int]]) -> Iterator[Proxy]:
    proxy = Proxy(servers[0], piece=1024)
    yield proxy
    proxy.close()


@pytest.mark.parametrize("cut_after", [0, 10, 30_000])
def test_a_load_cut_off_mid_reply_is_sent_again(relay: Proxy, cut_after: int) -> None:
    """gets gives the same answer however often it runs: a new connection gets it."""
    store = MemcachedStore(relay.address, key_prefix=f"t{secrets.token_hex(6)}:")
    key, data = new_key(), secrets.token_bytes(60_000)
    assert store.save(key, data, 60, None)
    relay.cut_after = cut_after  # the next reply stops after this many bytes, then a FIN
    started = time.monotonic()
    record = store.load(key)
    assert record is not None and record.data == data
    assert time.monotonic() - started < 1  # a hang-up, noticed at once: no timeout ran out
    store.close()


@pytest.mark.parametrize("cut_after", [0, 3])
@pytest.mark.parametrize("create", [True, False], ids=["add", "cas"])
def test_a_write_cut_off_mid_reply_is_unavailable_not_a_conflict(relay: Proxy, cut_after: int, create: bool) -> None:
    """The server ran the write before the connection went: sending it again would
    answer "conflict" (False) for a write that landed. Its outcome is unknown."""
    store = MemcachedStore(relay.address, key_prefix=f"t{secrets.token_hex(6)}:")
    key = new_key()
    version = None
    if create:
        assert store.load(key) is None  # the write goes on this idle connection
    else:
        assert store.save(key, b"before", 60, None)
        loaded = store.load(key)
        assert loaded is not None
        version = loaded.version
    relay.cut_after = cut_after
    with pytest.raises(StoreUnavailable) as raised:
        store.save(key, b"the write", 60, version)
    assert "no answer in time" not in str(raised.value)
    record = store.load(key)  # it did land
    assert record is not None and record.data == b"the write"
    store.close()


@pytest.mark.parametrize(
    "answer",
    [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"-ERR unknown command\r\n", b"VALUE x y z\r\n"],
    ids=["http", "resp", "bad-value-header"],
)
def test_another_service_on_the_port_is_a_store_error_never_a_miss(answer: bytes) -> None:
    """A load or a write answered by something that is not memcached fails loudly:
    never an empty session, never a conflict. (pymemcache reads any reply to
    ``touch`` and ``delete`` other than success as "not found".)"""
    with nonsense_server(answer) as port:
        store = MemcachedStore(f"127.0.0.1:{port}", key_prefix="t:")
        for operation in (
            lambda: store.load("k"),
            lambda: store.save("k", b"v", 60, None),
            lambda: store.save("k", b"v", 60, 7),
        ):
            with pytest.raises(StoreError, match=f"memcached at 127.0.0.1:{port}"):
                operation()
        store.close()


def test_a_full_server_that_never_evicts_keeps_the_session() -> None:
    """memcached -M refuses a write it has no room for instead of evicting. Filled
    up, such a server keeps the session the refused cas was to replace, and the
    store reports the server's error."""
    server = OwnMemcached("-M", "-m", "8")
    store = MemcachedStore(server.address, key_prefix="t:full:")
    filler = socket.create_connection(("127.0.0.1", server.port))
    try:
        key = new_key()
        assert store.save(key, b"the session", 3600, None) is not None
        blob, refused, n = b"f" * 20000, False, 0
        while not refused and n < 5000:  # about 8 MB of 20 KB items, until one is refused
            filler.sendall(b"".join(b"set fill:%d 0 0 %d\r\n%b\r\n" % (n + i, len(blob), blob) for i in range(50)))
            replies = b""
            while replies.count(b"\r\n") < 50:
                replies += filler.recv(65536)
            refused, n = b"SERVER_ERROR" in replies, n + 50
        assert refused, "the server never ran out of room"
        record = store.load(key)
        assert record is not None
        with pytest.raises(StoreError, match="out of memory"):
            store.save(key, b"g" * 20000, 3600, record.version)
        kept = store.load(key)
        assert kept is not None and kept.data == b"the session"
    finally:
        filler.close()
        store.close()
        server.stop()


def test_forked_child_takes_its_own_connections(servers: list[tuple[str, int]]) -> None:
    host, port = servers[0]
    store = MemcachedStore(f"{host}:{port}", key_prefix=f"t{secrets.token_hex(6)}:")
    admin = Client(servers[0])  # one connection for every count, so counting adds none
    try:
        assert_fork_safe(store, lambda: int(admin.stats()[b"total_connections"]))
    finally:
        admin.close()
        store.close()


def wait_until_stopped(pid: int) -> None:
    """SIGSTOP arrives asynchronously: wait until every thread of ``pid`` has stopped."""
    deadline = time.monotonic() + 5
    while True:
        states = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/stat") as stat:
                states.append(stat.read().rpartition(")")[2].split()[0])
        if all(state == "T" for state in states):
            return
        assert time.monotonic() < deadline, f"memcached did not stop: {states}"
        time.sleep(0.01)


def test_a_frozen_server_times_out_and_the_record_survives(own_servers: tuple[OwnMemcached, OwnMemcached]) -> None:
    server, _ = own_servers
    store = MemcachedStore(server.address, key_prefix="t:frozen:", timeout=0.3)
    key = new_key()
    assert store.save(key, b"before", 60, None)
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)  # keeps the connection, never answers
    wait_until_stopped(server.process.pid)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="no answer in time"):
            store.load(key)
        with pytest.raises(StoreUnavailable, match="no answer in time"):
            store.save(key, b"lost?", 60, None)
        assert time.monotonic() - started < 4  # two 0.3 s waits (connecting is the kernel's, not frozen)
    finally:
        server.process.send_signal(signal.SIGCONT)
    record = store.load(key)
    assert record is not None and record.data == b"before"
    store.close()


def test_keys_land_where_pymemcaches_hash_client_puts_them(store: MemcachedStore) -> None:
    """The ring places keys as pymemcache's HashClient does (the same rendezvous
    hash over "host:port" names), so both find each other's records."""
    from pymemcache.client.hash import HashClient

    hashed = HashClient(SERVERS, connect_timeout=2, timeout=2)
    try:
        keys = [new_key() for _ in range(20)]
        for key in keys:
            assert store.save(key, key.encode(), 60, None)
        assert [hashed.get(store.server_key(key)) for key in keys] == [key.encode() for key in keys]
    finally:
        hashed.close()


def test_opentelemetry_sees_a_span_for_every_command(store: MemcachedStore) -> None:
    """The store calls pymemcache's public client, so its instrumentation sees each
    command of a session's load and writes, with the server it went to."""
    from opentelemetry.instrumentation.pymemcache import PymemcacheInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = PymemcacheInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        key = new_key()
        assert store.load(key) is None
        assert store.save(key, b"new", 60, None)
        record = store.load(key)
        assert record is not None
        assert store.save(key, b"changed", 60, record.version)
        assert store.touch(key, 60)
        store.delete(key)
    finally:
        instrumentor.uninstrument()
    spans = exporter.get_finished_spans()
    assert [span.name for span in spans] == ["gets", "add", "gets", "cas", "touch", "delete"]
    address = store.ring.servers[store.ring.node(store.server_key(key))]
    for span in spans:
        attributes = dict(span.attributes or {})
        assert store.server_key(key) in str(attributes.values())
        assert address[1] in attributes.values()
