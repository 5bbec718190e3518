"""Log out everywhere: list and revoke all sessions of one user, on every server-side store."""

from __future__ import annotations

import secrets
from typing import Any

from pyramid.config import Configurator
from pyramid.interfaces import ISessionFactory
from pyramid.response import Response
from webtest import TestApp

from satchel.manager import SessionManager, user_index_key
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


def test_log_out_everywhere_else(store_settings: dict[str, Any]) -> None:
    app = make(store_settings)
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


def test_logout_and_relogin_keep_the_index_exact(store_settings: dict[str, Any]) -> None:
    app = make(store_settings)
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


def test_a_login_past_the_limit_ends_the_oldest_session(store_settings: dict[str, Any]) -> None:
    from satchel.policy.users import MAX_SESSIONS_PER_USER

    app = make(store_settings)
    user = f"user-{secrets.token_hex(4)}"
    first = TestApp(app.app)
    first.get("/login", params={"user": user})
    for _ in range(MAX_SESSIONS_PER_USER):
        TestApp(app.app).get("/login", params={"user": user})
    assert first.get("/whoami").text == "None", "the oldest session was ended, not left live and unindexed"
    manager: SessionManager = app.app.registry.getUtility(ISessionFactory).manager
    assert len(manager.user_sessions(user)) == MAX_SESSIONS_PER_USER
    assert manager.revoke_user_sessions(user) == MAX_SESSIONS_PER_USER
