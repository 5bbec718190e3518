"""The store's server goes down under a running app, then comes back (issue 3).

The app of ``serve_app.py`` runs under waitress in a process of its own, on a
redis-server or a memcached this module starts, kills (SIGKILL) and restarts on
the same port. While the server is down, every request that touches the session
gets the app's 503 page (``StoreUnavailable`` reached its exception view: no
500, no traceback in the app's log), also a request that had loaded its session
before the outage and saves after it; a view that never touches the session
still answers 200. Once the server is back the same app process, never
restarted, serves sessions again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.serve_app import UNAVAILABLE_TEXT
from tests.support.servers import BASE_SETTINGS, AppServer, PrivateMemcached, PrivateRedis, Reply, wait_until


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    # appendonly with appendfsync always: what Redis acknowledged survives a SIGKILL.
    server = PrivateRedis(tmp_path, persistent=True)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def memcached_server() -> Iterator[PrivateMemcached]:
    server = PrivateMemcached()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def redis_app(redis_server: PrivateRedis, logdir: Path) -> Iterator[AppServer]:
    settings = {**BASE_SETTINGS, "session.type": "ext:redis", "session.url": redis_server.url}
    app = AppServer(settings, logdir, "redis-app")
    try:
        yield app.start()
    finally:
        app.stop()


@pytest.fixture
def memcached_app(memcached_server: PrivateMemcached, logdir: Path) -> Iterator[AppServer]:
    settings = {**BASE_SETTINGS, "session.type": "ext:memcached", "session.url": memcached_server.address}
    app = AppServer(settings, logdir, "memcached-app")
    try:
        yield app.start()
    finally:
        app.stop()


def assert_unavailable(reply: Reply, app: AppServer) -> None:
    assert (reply.status, reply.text) == (503, UNAVAILABLE_TEXT), (reply.status, reply.text, app.log())


def start_session(app: AppServer) -> str:
    reply = app.get("/start")
    cookie = reply.cookie()
    assert reply.status == 200 and cookie, (reply.status, reply.text, app.log())
    assert app.get("/add", {"k": "before"}, cookie).status == 200
    assert app.get("/dump", cookie=cookie).json() == {"started": True, "before": True}
    return cookie


class HeldRequest:
    """A request whose view has loaded the session and waits for ``/release``."""

    def __init__(self, app: AppServer, params: dict[str, str], cookie: str) -> None:
        self.app = app
        self.reply: Reply | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=({**params, "hold": "outage"}, cookie), daemon=True)
        self.thread.start()
        wait_until(lambda: app.get("/held", {"name": "outage"}).json() == 1, 30, "the view did not reach its hold")

    def _run(self, params: dict[str, str], cookie: str) -> None:
        try:
            self.reply = self.app.get("/add", params, cookie)
        except BaseException as exc:
            self.error = exc

    def finish(self) -> Reply:
        assert self.app.get("/release", {"name": "outage"}).status == 200
        self.thread.join(60)
        assert not self.thread.is_alive(), "the held request never finished"
        assert self.error is None, self.error
        assert self.reply is not None
        return self.reply


def assert_down_behaviour(app: AppServer, cookie: str) -> None:
    """With the store down: 503 wherever the session is touched, 200 elsewhere."""
    for path, params in (("/dump", {}), ("/add", {"k": "while-down"}), ("/pop", {}), ("/incr", {})):
        assert_unavailable(app.get(path, params, cookie), app)
    assert_unavailable(app.get("/start"), app)  # a new session cannot be written either
    for with_cookie in (cookie, None):
        reply = app.get("/ping", cookie=with_cookie)
        assert (reply.status, reply.text, reply.set_cookies) == (200, "pong", [])


def test_redis_outage_answers_503_and_recovers_with_the_data(redis_server: PrivateRedis, redis_app: AppServer) -> None:
    app = redis_app
    assert app.process is not None
    pid = app.process.pid
    cookie = start_session(app)
    held = HeldRequest(app, {"k": "saved-after-outage"}, cookie)

    redis_server.kill()
    assert_unavailable(held.finish(), app)  # the save at the end of the request failed
    assert_down_behaviour(app, cookie)

    redis_server.start()  # same port and directory: the append-only file is read back
    reply = app.get("/dump", cookie=cookie)
    assert reply.status == 200, (reply.status, reply.text, app.log())
    assert reply.json() == {"started": True, "before": True}, "written before the outage, intact"
    assert reply.cookie() is None, "the same session, under the same cookie"
    assert app.get("/add", {"k": "after"}, cookie).status == 200
    assert app.get("/dump", cookie=cookie).json() == {"started": True, "before": True, "after": True}
    fresh = app.get("/start")
    assert fresh.status == 200 and fresh.cookie()

    assert app.process is not None and app.process.pid == pid and app.process.poll() is None
    assert "Traceback" not in app.log(), app.log()


def test_memcached_outage_answers_503_and_recovers(
    memcached_server: PrivateMemcached, memcached_app: AppServer
) -> None:
    app = memcached_app
    assert app.process is not None
    pid = app.process.pid
    cookie = start_session(app)
    held = HeldRequest(app, {"k": "saved-after-outage"}, cookie)

    memcached_server.kill()
    assert_unavailable(held.finish(), app)
    assert_down_behaviour(app, cookie)

    memcached_server.start()  # same port, but memcached keeps nothing across a restart
    reply = app.get("/dump", cookie=cookie)
    assert reply.status == 200, (reply.status, reply.text, app.log())
    assert reply.json() == {}, "the session was lost with the server's memory"
    assert reply.cookie() == "", "and the stale cookie is deleted"
    fresh = app.get("/start")
    new_cookie = fresh.cookie()
    assert fresh.status == 200 and new_cookie
    assert app.get("/add", {"k": "after"}, new_cookie).status == 200
    assert app.get("/dump", cookie=new_cookie).json() == {"started": True, "after": True}

    assert app.process is not None and app.process.pid == pid and app.process.poll() is None
    assert "Traceback" not in app.log(), app.log()
