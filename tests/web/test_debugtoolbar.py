"""pyramid_debugtoolbar reads the session; that must cause no session, write or cookie."""

from __future__ import annotations

from typing import Any

import pytest
from pyramid.config import Configurator
from webtest import TestApp

from tests.support.apps import BASE_SETTINGS, VIEWS, counting

pytest.importorskip("pyramid_debugtoolbar")


def make_toolbar_app() -> TestApp:
    settings: dict[str, Any] = {
        **BASE_SETTINGS,
        "debugtoolbar.hosts": "127.0.0.1",
        "debugtoolbar.intercept_redirects": "false",
        "debugtoolbar.active_panels": "session",  # the panel that reads request.session
    }
    with Configurator(settings=settings) as config:
        config.include("pyramid_debugtoolbar")
        config.include("satchel")
        for name, view in VIEWS.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        app = config.make_wsgi_app()
    return TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})


def test_toolbar_is_active_and_reads_the_session() -> None:
    app = make_toolbar_app()
    res = app.get("/nothing")
    assert res.status_int == 200
    # The view never touches the session; the toolbar's session panel does, and
    # satchel marks every response whose session was read.
    assert "Cookie" in res.headers.get("Vary", "")
    assert app.get("/_debug_toolbar/", status="*").status_int == 200


def test_toolbar_on_view_without_session_creates_nothing() -> None:
    app = make_toolbar_app()
    store = counting(app)
    for _ in range(3):
        res = app.get("/nothing")
        assert "sid=" not in res.headers.get("Set-Cookie", "")
    assert store.writes() == 0
    assert store.count() == 0


def test_toolbar_on_read_only_requests_writes_nothing() -> None:
    app = make_toolbar_app()
    app.get("/incr")
    store = counting(app)
    for _ in range(3):
        res = app.get("/read")
        assert res.text.startswith("1")
        assert "sid=" not in res.headers.get("Set-Cookie", "")
    assert store.writes() == 0
    assert store.count() == 1
