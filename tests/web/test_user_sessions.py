"""Log out everywhere: list and revoke all sessions of one user, on every server-side store."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.interfaces import ISessionFactory
from pyramid.response import Response
from webtest import TestApp

from satchel.manager import SessionManager, user_index_key
from tests.support import services
from tests.support.apps import SECRET


def login(request: Any) -> Response:
    request.session.regenerate_id()
    request.session.bind_user(request.params["user"])
    request.session["user"] = request.params["user"]
    return Response("in")


def whoami(request: Any) -> Response:
    return Response(str(request.session.get("user")))


def logout(request: Any) -> Response:
    request.session.invalidate()
    return Response("out")


def logout_elsewhere(request: Any) -> Response:
    manager: SessionManager = request.registry.getUtility(ISessionFactory).manager
    count = manager.revoke_user_sessions(request.session.user_id, keep=request.session)
    return Response(str(count))


def make(settings: dict[str, Any]) -> TestApp:
    with Configurator(settings={"session.secret": SECRET, "session.key": "sid", **settings}) as config:
        config.include("satchel")
        for name, view in {"login": login, "whoami": whoami, "logout": logout, "elsewhere": logout_elsewhere}.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        return TestApp(config.make_wsgi_app())


STORES = ["memory", "file", "sqlite", "postgresql", "mariadb", "redis", "rediscluster", "memcached"]


@pytest.fixture(params=STORES)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    name = request.param
    prefix = f"t{secrets.token_hex(4)}:"
    table = f"satchel_users_{secrets.token_hex(4)}"
    if name == "memory":
        yield {"session.type": "memory"}
    elif name == "file":
        yield {"session.type": "file", "session.data_dir": str(tmp_path / "d")}
    elif name == "sqlite":
        yield {"session.type": "ext:database", "session.url": f"sqlite:///{tmp_path / 's.db'}"}
    elif name in ("postgresql", "mariadb"):
        url = services.POSTGRES_URL if name == "postgresql" else services.MARIADB_URL
        services.need_port("127.0.0.1", 5432 if name == "postgresql" else 3306, name)
        yield {"session.type": "ext:database", "session.url": url, "session.table_name": table}
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()
    elif name == "redis":
        services.need_port("127.0.0.1", 6379, "Redis")
        yield {"session.type": "ext:redis", "session.url": services.REDIS_URL, "session.key_prefix": prefix}
    elif name == "rediscluster":
        port = services.REDIS_CLUSTER_PORTS[0]
        services.need_port("127.0.0.1", port, "Redis Cluster")
        urls = " ".join(f"redis://127.0.0.1:{p}" for p in services.REDIS_CLUSTER_PORTS)
        yield {"session.type": "ext:rediscluster", "session.urls": urls, "session.key_prefix": prefix}
    else:
        for server in services.MEMCACHED_SERVERS.split(";"):
            host, _, port = server.partition(":")
            services.need_port(host, int(port), "memcached")
        yield {"session.type": "ext:memcached", "session.url": services.MEMCACHED_SERVERS, "session.key_prefix": prefix}


def test_log_out_everywhere_else(settings: dict[str, Any]) -> None:
    app = make(settings)
    user = f"user-{secrets.token_hex(4)}"
    browsers = [TestApp(app.app) for _ in range(3)]
    for browser in browsers:
        browser.get("/login", params={"user": user})
        assert browser.get("/whoami").text == user
    manager: SessionManager = app.app.registry.getUtility(ISessionFactory).manager
    assert len(manager.user_sessions(user)) == 3

    assert browsers[0].get("/elsewhere").text == "2"
    assert browsers[0].get("/whoami").text == user
    assert browsers[1].get("/whoami").text == "None"
    assert browsers[2].get("/whoami").text == "None"
    assert len(manager.user_sessions(user)) == 1


def test_logout_and_relogin_keep_the_index_exact(settings: dict[str, Any]) -> None:
    app = make(settings)
    user = f"user-{secrets.token_hex(4)}"
    manager: SessionManager = app.app.registry.getUtility(ISessionFactory).manager
    first, second = TestApp(app.app), TestApp(app.app)
    first.get("/login", params={"user": user})
    second.get("/login", params={"user": user})
    second.get("/login", params={"user": user})  # a new id at each login
    assert len(manager.user_sessions(user)) == 2
    first.get("/logout")
    assert len(manager.user_sessions(user)) == 1
    assert manager.revoke_user_sessions(user) == 1
    assert second.get("/whoami").text == "None"
    assert manager.user_sessions(user) == []
    assert manager.store.load(user_index_key(user)) is None


def test_a_login_past_the_limit_ends_the_oldest_session_instead_of_forgetting_it(settings: dict[str, Any]) -> None:
    from satchel.policy.users import MAX_SESSIONS_PER_USER

    app = make(settings)
    user = f"user-{secrets.token_hex(4)}"
    first = TestApp(app.app)
    first.get("/login", params={"user": user})
    for _ in range(MAX_SESSIONS_PER_USER):
        TestApp(app.app).get("/login", params={"user": user})
    assert first.get("/whoami").text == "None", "the oldest session was ended, not left live and unindexed"
    manager: SessionManager = app.app.registry.getUtility(ISessionFactory).manager
    assert len(manager.user_sessions(user)) == MAX_SESSIONS_PER_USER
    assert manager.revoke_user_sessions(user) == MAX_SESSIONS_PER_USER
