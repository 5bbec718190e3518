"""What a request costs in store round trips, counted by the servers (issue 5).

The app of ``serve_app.py`` runs in process (WebTest) on a redis-server and a
memcached this module starts for itself, so no other client's traffic lands in
their statistics, and on an SQLite file whose statements SQLAlchemy reports.

- a view that never reads the session: nothing;
- a new session: one write; a read-only request: one load;
- a changing request: the load and one conditional write, nothing more when
  nobody else wrote meanwhile;
- a read-only request once renewal is due: the load and one touch (Redis
  EVALSHA of PEXPIRE + HSET, SQL UPDATE; memcached cannot report expiry, so
  there it is one cas that rewrites the record).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from webtest import TestApp

from satchel.codecs import Signer, encode_record, split_record, store_key
from satchel.stores import Store
from tests.support.apps import SECRET
from tests.support.serve_app import make_app
from tests.support.servers import BASE_SETTINGS, COOKIE_NAME, PrivateMemcached, PrivateRedis, memcached_stats


@dataclass
class Trips:
    """Round trips one request made, and what they were."""

    count: int
    what: Counter[str] = field(default_factory=Counter)


class Meter:
    """Counts a store's round trips while an action runs."""

    name = ""

    def during(self, action: Callable[[], object]) -> Trips:
        raise NotImplementedError


class RedisMeter(Meter):
    """``total_reads_processed`` is the number of requests the server read: one per
    command or pipeline sent at once, so one per round trip. ``INFO commandstats``
    names them (commands a Lua script runs are counted there too). The second
    ``INFO`` counts itself in both; it is taken off."""

    name = "redis"

    def __init__(self, port: int) -> None:
        self.client = redis.Redis(port=port)

    def _snapshot(self) -> tuple[int, Counter[str]]:
        info: dict[str, Any] = self.client.info("all")
        calls = Counter({k.removeprefix("cmdstat_"): v["calls"] for k, v in info.items() if k.startswith("cmdstat_")})
        return int(info["total_reads_processed"]), calls

    def during(self, action: Callable[[], object]) -> Trips:
        reads, calls = self._snapshot()
        action()
        reads_after, calls_after = self._snapshot()
        commands = calls_after - calls
        commands["info"] -= 1
        return Trips(reads_after - reads - 1, +commands)


class MemcachedMeter(Meter):
    """memcached's command counters (``stats`` itself is in none of them); each of
    satchel's memcached calls is one command on one key, so one round trip."""

    name = "memcached"
    COMMANDS = ("cmd_get", "cmd_set", "cmd_touch", "delete_hits", "delete_misses")

    def __init__(self, port: int) -> None:
        self.port = port

    def during(self, action: Callable[[], object]) -> Trips:
        before = memcached_stats(self.port)
        action()
        after = memcached_stats(self.port)
        what = Counter({name: after[name] - before[name] for name in (*self.COMMANDS, "cas_hits", "cas_misses")})
        return Trips(sum(what[name] for name in self.COMMANDS), +what)


class SQLMeter(Meter):
    """Statements SQLAlchemy sends, by first word (each is one round trip: the
    engine runs in autocommit mode, without BEGIN or COMMIT)."""

    name = "sql"

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def during(self, action: Callable[[], object]) -> Trips:
        seen: Counter[str] = Counter()

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            seen[statement.split(None, 1)[0].upper()] += 1

        sa.event.listen(self.engine, "before_cursor_execute", record)
        try:
            action()
        finally:
            sa.event.remove(self.engine, "before_cursor_execute", record)
        return Trips(sum(seen.values()), seen)


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("redis-trips"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def private_memcached() -> Iterator[PrivateMemcached]:
    server = PrivateMemcached()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Subject:
    app: TestApp
    meter: Meter
    store: Store


@pytest.fixture(params=["redis", "memcached", "sql"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    settings = dict(BASE_SETTINGS)
    if request.param == "redis":
        server: PrivateRedis = request.getfixturevalue("private_redis")
        settings.update({"session.type": "ext:redis", "session.url": server.url, "session.key_prefix": "trips:"})
    elif request.param == "memcached":
        cache: PrivateMemcached = request.getfixturevalue("private_memcached")
        settings.update({"session.type": "ext:memcached", "session.url": cache.address})
    else:
        settings.update({"session.type": "ext:database", "session.url": f"sqlite:///{tmp_path / 'trips.db'}"})
    wsgi = make_app(settings)
    store = wsgi.registry.satchel_stats.inner
    meter: Meter
    if request.param == "redis":
        meter = RedisMeter(server.port)
    elif request.param == "memcached":
        meter = MemcachedMeter(cache.port)
    else:
        meter = SQLMeter(store.engine)
    app = TestApp(wsgi)
    # Warm up: connect, load the Lua script, and leave a session with a message queued.
    app.get("/start")
    app.get("/incr")
    app.get("/flash", {"m": "hello"})
    try:
        yield Subject(app, meter, store)
    finally:
        store.close()
        if isinstance(meter, RedisMeter):
            meter.client.flushall()
            meter.client.close()


def age(subject: Subject, seconds: int) -> None:
    """Make the session look last renewed ``seconds`` ago, to every store: its expiry
    comes that much closer (Redis, SQL) and its recorded access time goes back
    (memcached, which cannot report expiry)."""
    session_id = Signer([SECRET]).unsign(subject.app.cookies[COOKIE_NAME])
    assert session_id is not None
    key = store_key(session_id)
    record = subject.store.load(key)
    assert record is not None
    created, accessed, body = split_record(record.data)
    ttl = 1200 - seconds  # the default timeout
    assert subject.store.save(key, encode_record(created, accessed - seconds, body), ttl, record.version)


def test_view_without_session_costs_nothing(subject: Subject) -> None:
    trips = subject.meter.during(lambda: subject.app.get("/ping"))
    assert trips.count == 0, trips


def test_new_session_is_one_write(subject: Subject) -> None:
    fresh = TestApp(subject.app.app)
    trips = subject.meter.during(lambda: fresh.get("/start"))
    assert trips.count == 1, trips
    expected = {
        "redis": Counter(evalsha=1, hget=1, hset=1, pexpire=1),
        "memcached": Counter(cmd_set=1),
        "sql": Counter(INSERT=1),
    }[subject.meter.name]
    assert trips.what == expected


def test_read_only_request_is_one_round_trip(subject: Subject) -> None:
    trips = subject.meter.during(lambda: subject.app.get("/dump"))
    assert trips.count == 1, trips
    expected = {
        "redis": Counter(hmget=1),  # version, data and expiry in one command
        "memcached": Counter(cmd_get=1),
        "sql": Counter(SELECT=1),
    }[subject.meter.name]
    assert trips.what == expected


def test_changing_request_is_load_and_one_conditional_write(subject: Subject) -> None:
    trips = subject.meter.during(lambda: subject.app.get("/incr"))
    assert trips.count == 2, trips
    expected = {
        "redis": Counter(hmget=1, evalsha=1, hget=1, hset=1, pexpire=1),
        "memcached": Counter(cmd_get=1, cmd_set=1, cas_hits=1),
        "sql": Counter(SELECT=1, UPDATE=1),
    }[subject.meter.name]
    assert trips.what == expected


def test_pop_flash_is_load_and_one_conditional_write(subject: Subject) -> None:
    result: list[Any] = []
    trips = subject.meter.during(lambda: result.append(subject.app.get("/pop").json))
    assert result == [["hello"]]
    assert trips.count == 2, trips


def test_renewal_adds_exactly_one_touch(subject: Subject) -> None:
    age(subject, 300)  # past renew_interval (120 s), within timeout (1200 s)
    trips = subject.meter.during(lambda: subject.app.get("/dump"))
    assert trips.count == 2, trips
    expected = {
        "redis": Counter(hmget=1, evalsha=1, type=1, pexpire=1, hset=1),  # touch: one script
        "memcached": Counter(cmd_get=1, cmd_set=1, cas_hits=1),
        "sql": Counter(SELECT=1, UPDATE=1),
    }[subject.meter.name]
    assert trips.what == expected
    # Renewed: the next read-only request is back to one round trip.
    assert subject.meter.during(lambda: subject.app.get("/dump")).count == 1


def test_pop_then_change_is_two_round_trips(subject: Subject) -> None:
    """The pop is carried out by the one conditional write at the end of the request."""
    trips = subject.meter.during(lambda: subject.app.get("/add", {"k": "x", "pop": "1"}))
    assert trips.count == 2, trips
