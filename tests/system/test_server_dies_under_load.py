"""The store's server dies under concurrent traffic, then comes back (issue 9).

For a private Redis (append-only file, ``appendfsync always``), a private
memcached and a private PostgreSQL, this module runs the app of
``serve_app.py`` in three waitress processes on that one store: two with
``on_store_error = raise`` and one with ``on_store_error = fresh``. It creates
``SESSIONS`` sessions, each holding a known value, then starts ``THREADS``
client threads that read and update those sessions (and call a view that never
touches the session), and while they run it kills the server (SIGKILL;
``pg_ctl -m immediate stop`` for PostgreSQL), keeps the traffic going, and
starts the server again on the same port and data directory. The app
processes are never restarted. Then:

- every request got an HTTP answer: no connection reset, no 500;
- while the server was down, a request touching the session got the app's 503
  page (raise) or a 200 telling it that the session is a stand-in (fresh),
  with no Set-Cookie; ``/ping`` stayed 200 throughout;
- after the restart every process serves sessions again within
  ``RECOVERY_LIMIT`` seconds;
- Redis and PostgreSQL kept every session's value from before the outage and
  every update that was answered 200 by a raise process (each update adds a
  distinct key; updates answered 503, and those of the fresh process, whose
  failed saves are logged and dropped, may or may not be there);
- memcached lost everything with the kill: old cookies get fresh sessions,
  without errors.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from satchel.config import parse_session_settings
from satchel.stores import open_store
from tests.support.serve_app import UNAVAILABLE_TEXT
from tests.support.servers import (
    BASE_SETTINGS,
    AppServer,
    PrivateMemcached,
    PrivateRedis,
    Reply,
    get,
    private_postgres,
    wait_until,
)

STORES = ("redis", "memcached", "postgresql")
#: Sessions created before the traffic starts.
SESSIONS = 20
#: Client threads.
THREADS = 8
#: Requests one client thread sends at most, and seconds it runs at most.
MAX_REQUESTS = 3000
MAX_TRAFFIC_SECONDS = 12.0
#: Seconds of traffic before the kill, during the outage, and after recovery.
LEAD_IN = 1.0
OUTAGE = 1.5
TAIL = 1.0
#: Seconds every app process may take to serve sessions again after the restart.
RECOVERY_LIMIT = 10.0
#: Seconds one request may take: bounds a hung server (never asserted on).
HTTP_TIMEOUT = 15.0


def owner(index: int) -> str:
    """The known value session ``index`` holds under ``"owner"``."""
    return f"visitor-{index}"


def fetch(port: int, path: str, params: Mapping[str, Any] | None = None, cookie: str | None = None) -> Reply:
    """One GET on a new connection, with this file's shorter timeout."""
    return get(port, path, params, cookie, timeout=HTTP_TIMEOUT)


# -- the store's server -------------------------------------------------------------------


@dataclass
class Backend:
    """A store's server that the test may kill and restart (same port, same data)."""

    name: str
    settings: dict[str, Any]
    kill: Callable[[], object]
    restart: Callable[[], object]
    #: Whether what the server acknowledged survives a kill.
    durable: bool


@pytest.fixture(params=STORES)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    name: str = request.param
    base = dict(BASE_SETTINGS)
    if name == "redis":
        workdir = tmp_path / "redis"
        workdir.mkdir()
        # appendonly + appendfsync always: what Redis acknowledged survives a SIGKILL.
        redis_server = PrivateRedis(workdir, persistent=True)
        try:
            redis_server.start()
            settings = {**base, "session.type": "ext:redis", "session.url": redis_server.url}
            yield Backend(name, settings, redis_server.kill, redis_server.start, durable=True)
        finally:
            redis_server.stop()
    elif name == "memcached":
        memcached = PrivateMemcached()
        try:
            memcached.start()
            settings = {**base, "session.type": "ext:memcached", "session.url": memcached.address}
            yield Backend(name, settings, memcached.kill, memcached.start, durable=False)
        finally:
            memcached.stop()
    else:
        with private_postgres() as postgres:
            settings = {**base, "session.type": "ext:database", "session.url": postgres.url}
            yield Backend(name, settings, postgres.kill, postgres.start, durable=True)


@dataclass
class Apps:
    raising: list[AppServer]
    fresh: AppServer

    @property
    def all(self) -> list[AppServer]:
        return [*self.raising, self.fresh]

    def logs(self) -> str:
        return "\n".join(f"--- {app.log_path.name}\n{app.log()}" for app in self.all)


@pytest.fixture
def apps(backend: Backend, tmp_path: Path) -> Iterator[Apps]:
    logdir = tmp_path / "logs"
    logdir.mkdir()
    # Create the SQL table once, before three processes race to.
    open_store(parse_session_settings(backend.settings).store).close()
    fresh_settings = {**backend.settings, "session.on_store_error": "fresh"}
    servers = [AppServer(backend.settings, logdir, f"{backend.name}-raise-{n}") for n in range(2)]
    servers.append(AppServer(fresh_settings, logdir, f"{backend.name}-fresh"))
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
        yield Apps(servers[:2], servers[2])
    finally:
        for server in servers:
            server.stop()


# -- traffic --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One request of the traffic and what came of it."""

    mode: str  # "raise", "fresh" ("any" for /ping)
    kind: str  # "update", "read", "ping"
    session: int
    key: str | None
    sent: float
    received: float
    status: int | None = None
    text: str = ""
    store_unavailable: bool | None = None
    set_cookies: tuple[str, ...] = ()
    error: str | None = None

    def within(self, start: float, end: float) -> bool:
        """Sent and answered between ``start`` and ``end``."""
        return start <= self.sent and self.received <= end


@dataclass
class Traffic:
    """``THREADS`` clients reading and updating the sessions, like browsers (they keep
    the cookies they are given), until stopped or out of requests or time."""

    apps: Apps
    jar: dict[int, str]
    outcomes: list[Outcome] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        deadline = time.monotonic() + MAX_TRAFFIC_SECONDS
        for index in range(THREADS):
            thread = threading.Thread(target=self._client, args=(index, deadline), daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(HTTP_TIMEOUT + 5)
        assert not any(thread.is_alive() for thread in self._threads), "a client thread hung"

    def _client(self, index: int, deadline: float) -> None:
        rng = random.Random(index)
        for number in range(MAX_REQUESTS):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            session = rng.randrange(SESSIONS)
            roll = rng.random()
            if roll < 0.15:
                kind, app, mode = "ping", rng.choice(self.apps.all), "any"
            elif roll < 0.40:
                kind, app, mode = rng.choice(("update", "read")), self.apps.fresh, "fresh"
            else:
                kind = "update" if rng.random() < 0.7 else "read"
                app, mode = rng.choice(self.apps.raising), "raise"
            key = f"t{index}-{number}" if kind == "update" else None
            self._record(self._send(app, mode, kind, session, key))

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def _send(self, app: AppServer, mode: str, kind: str, session: int, key: str | None) -> Outcome:
        with self._lock:
            cookie = self.jar.get(session)
        path, params = ("/ping", {}) if kind == "ping" else ("/state", {"k": key} if key else {})
        sent = time.monotonic()
        try:
            reply = fetch(app.port, path, params, cookie)
            unavailable = None
            if kind != "ping" and reply.status == 200:
                unavailable = bool(reply.json()["store_unavailable"])
        except Exception as exc:  # a reset, a timeout, a body that is not the view's: all recorded
            return Outcome(mode, kind, session, key, sent, time.monotonic(), error=repr(exc))
        received = time.monotonic()
        new_cookie = reply.cookie()
        if new_cookie is not None:
            with self._lock:  # a browser keeps what it is given
                if new_cookie:
                    self.jar[session] = new_cookie
                elif self.jar.get(session) == cookie:
                    self.jar.pop(session, None)
        return Outcome(
            mode, kind, session, key, sent, received, reply.status, reply.text, unavailable, tuple(reply.set_cookies)
        )


# -- the scenario ---------------------------------------------------------------------------


def create_sessions(apps: Apps) -> dict[int, str]:
    """``SESSIONS`` sessions, made alternately through both raise processes."""
    jar: dict[int, str] = {}
    for index in range(SESSIONS):
        app = apps.raising[index % 2]
        reply = fetch(app.port, "/start")
        cookie = reply.cookie()
        assert reply.status == 200 and cookie, (reply.status, reply.text, apps.logs())
        reply = fetch(app.port, "/state", {"k": "owner", "v": owner(index)}, cookie)
        assert reply.status == 200 and reply.set_cookies == [], (reply.status, reply.text)
        jar[index] = cookie
    for index, cookie in jar.items():
        reply = fetch(apps.raising[(index + 1) % 2].port, "/state", cookie=cookie)
        assert reply.json() == {"store_unavailable": False, "data": {"started": True, "owner": owner(index)}}
    return jar


def wait_for_recovery(apps: Apps, cookie: str) -> None:
    """Poll every app process until it serves sessions again, ``RECOVERY_LIMIT`` s in all."""
    deadline = time.monotonic() + RECOVERY_LIMIT

    def serves(app: AppServer) -> bool:
        reply = fetch(app.port, "/state", cookie=cookie)
        assert reply.status in (200, 503), (reply.status, reply.text, app.log())
        return reply.status == 200 and not reply.json()["store_unavailable"]

    for app in apps.all:
        limit = max(0.0, deadline - time.monotonic())
        wait_until(functools.partial(serves, app), limit, f"{app.log_path.stem} did not serve sessions again")


@dataclass
class Timeline:
    kill_started: float
    down: float  # the kill returned: the server is gone
    restart_started: float
    recovered: float  # every app process served a session again


def run_outage(backend: Backend, apps: Apps, jar: dict[int, str]) -> tuple[Traffic, Timeline]:
    traffic = Traffic(apps, dict(jar))
    traffic.start()
    try:
        time.sleep(LEAD_IN)
        kill_started = time.monotonic()
        backend.kill()
        down = time.monotonic()
        time.sleep(OUTAGE)
        restart_started = time.monotonic()
        backend.restart()
        wait_for_recovery(apps, jar[0])
        recovered = time.monotonic()
        time.sleep(TAIL)
    finally:
        traffic.stop()
    return traffic, Timeline(kill_started, down, restart_started, recovered)


def check_traffic(backend: Backend, apps: Apps, traffic: Traffic, timeline: Timeline) -> Counter[str]:
    """Every answer of the traffic is one the scenario allows; returns counts for the report."""
    counts: Counter[str] = Counter()
    problems: list[str] = []

    def problem(outcome: Outcome, why: str) -> None:
        problems.append(f"{why}: {outcome}")

    for outcome in traffic.outcomes:
        counts["requests"] += 1
        if outcome.error is not None:
            problem(outcome, "no HTTP answer")
            continue
        strictly_down = outcome.within(timeline.down, timeline.restart_started)
        before = outcome.received < timeline.kill_started
        after = outcome.sent >= timeline.recovered
        if backend.durable and outcome.set_cookies:
            problem(outcome, "a durable store's session lost its cookie")
        if outcome.kind == "ping":
            counts["ping"] += 1
            counts["ping during outage"] += strictly_down
            if (outcome.status, outcome.text, outcome.set_cookies) != (200, "pong", ()):
                problem(outcome, "/ping must stay 200, without cookies")
        elif outcome.mode == "raise":
            if outcome.status == 503:
                counts["503"] += 1
                if outcome.text != UNAVAILABLE_TEXT or outcome.set_cookies:
                    problem(outcome, "a 503 that is not the exception view's page")
                if before or after:
                    problem(outcome, "503 while the server was up")
            elif outcome.status == 200:
                counts["raise 200"] += 1
                if outcome.store_unavailable:
                    problem(outcome, "store_unavailable under on_store_error = raise")
                if strictly_down:
                    problem(outcome, "200 from a session while the server was down")
            else:
                problem(outcome, "neither 200 nor 503")
            counts["503 during outage"] += strictly_down and outcome.status == 503
        else:
            if outcome.status != 200:
                problem(outcome, "on_store_error = fresh must answer 200")
                continue
            if outcome.store_unavailable:
                counts["fresh 200 unavailable"] += 1
                if outcome.set_cookies:
                    problem(outcome, "a stand-in session sent a Set-Cookie")
                if before or after:
                    problem(outcome, "a stand-in session while the server was up")
            else:
                counts["fresh 200 stored"] += 1
                if strictly_down:
                    problem(outcome, "a stored session while the server was down")
    assert not problems, f"{len(problems)} bad answers, e.g.:\n" + "\n".join(problems[:10]) + "\n" + apps.logs()
    # The outage was exercised on every kind of request, and recovery was seen under load.
    assert counts["503 during outage"] > 0, counts
    assert counts["ping during outage"] > 0, counts
    down_fresh = [
        o for o in traffic.outcomes if o.mode == "fresh" and o.within(timeline.down, timeline.restart_started)
    ]
    assert down_fresh and all(o.store_unavailable for o in down_fresh), counts
    served_after = [o for o in traffic.outcomes if o.mode == "raise" and o.sent >= timeline.recovered]
    assert served_after, "no traffic after the recovery"
    return counts


def check_durable_data(apps: Apps, traffic: Traffic, jar: dict[int, str], counts: Counter[str]) -> None:
    """Each session holds its value from before the outage and every acknowledged update."""
    acknowledged: dict[int, set[str]] = {index: set() for index in range(SESSIONS)}
    maybe: dict[int, set[str]] = {index: set() for index in range(SESSIONS)}
    #: Updates fresh answered 200 for a stored session: its save may still have failed.
    fresh_stored: dict[int, set[str]] = {index: set() for index in range(SESSIONS)}
    for outcome in traffic.outcomes:
        if outcome.kind != "update" or outcome.key is None:
            continue
        if outcome.mode == "raise" and outcome.status == 200:
            acknowledged[outcome.session].add(outcome.key)
        else:  # a 503, or fresh, whose failed saves are dropped
            maybe[outcome.session].add(outcome.key)
            if outcome.mode == "fresh" and outcome.store_unavailable is False:
                fresh_stored[outcome.session].add(outcome.key)
    lost: list[str] = []
    for index, cookie in jar.items():
        seen = []
        for app in apps.all:  # each process, the fresh one too, reads the same session
            reply = fetch(app.port, "/state", cookie=cookie)
            assert reply.status == 200 and reply.set_cookies == [], (reply.status, reply.text, app.log())
            seen.append(reply.json())
        assert seen[0]["store_unavailable"] is False and all(state == seen[0] for state in seen), seen
        data: dict[str, Any] = seen[0]["data"]
        assert (data.get("started"), data.get("owner")) == (True, owner(index)), "the value before the outage"
        lost += [f"session {index}: {key}" for key in sorted(acknowledged[index] - data.keys())]
        unexpected = data.keys() - acknowledged[index] - maybe[index] - {"started", "owner"}
        assert not unexpected, f"keys nobody wrote: {unexpected}"
        counts["unacknowledged updates kept"] += len(maybe[index] & data.keys())
        counts["fresh stored-session updates dropped"] += len(fresh_stored[index] - data.keys())
    counts["acknowledged updates"] = sum(len(keys) for keys in acknowledged.values())
    counts["unacknowledged updates"] = sum(len(keys) for keys in maybe.values())
    counts["lost acknowledged updates"] = len(lost)
    assert not lost, f"{len(lost)} acknowledged updates lost, e.g. {lost[:10]}"


def check_cache_data(apps: Apps, jar: dict[int, str]) -> None:
    """memcached forgot every session: old cookies get fresh sessions, without errors."""
    for index, cookie in jar.items():
        app = apps.raising[index % 2]
        reply = fetch(app.port, "/state", cookie=cookie)
        assert (reply.status, reply.json()["data"]) == (200, {}), (reply.status, reply.text, app.log())
        assert reply.cookie() == "", "the stale cookie is deleted"
        reply = fetch(app.port, "/state", {"k": "again"}, cookie)
        new_cookie = reply.cookie()
        assert reply.status == 200 and new_cookie and new_cookie != cookie, (reply.status, reply.set_cookies)
        reply = fetch(apps.raising[(index + 1) % 2].port, "/state", cookie=new_cookie)
        assert reply.json() == {"store_unavailable": False, "data": {"again": True}}


def test_store_server_dies_under_load(backend: Backend, apps: Apps) -> None:
    pids = [app.process.pid for app in apps.all if app.process is not None]
    jar = create_sessions(apps)

    traffic, timeline = run_outage(backend, apps, jar)

    counts = check_traffic(backend, apps, traffic, timeline)
    if backend.durable:
        check_durable_data(apps, traffic, jar, counts)
    else:
        check_cache_data(apps, jar)
    assert [app.process.pid for app in apps.all if app.process is not None and app.process.poll() is None] == pids
    for app in apps.all:
        assert "Traceback" not in app.log(), app.log()
    recovery = timeline.recovered - timeline.restart_started
    print(f"\n{backend.name}: {dict(counts)}; served again {recovery:.2f} s after the restart began")
