"""One visitor across real servers: the Pyramid app under waitress and the Starlette
app under uvicorn (two processes each way), with the Flask app beside them, on
Redis and on PostgreSQL, with the same ``session.*`` settings."""

from __future__ import annotations

import pytest

from satchel.flask import SessionInterface
from tests.asgi.servers import AsgiServer
from tests.flask_app.apps import make_flask
from tests.support.servers import AppServer, _tempdir, store_setup


@pytest.mark.parametrize("store", ["redis", "postgresql"])
def test_login_on_pyramid_is_seen_by_starlette_and_flask_and_back(store: str) -> None:
    setup = store_setup(store, "shared")
    logdir = _tempdir(setup, "shared-logs")
    setup.open()  # creates the SQL table once, before the servers race to
    pyramid = AppServer(setup.settings, logdir, "pyramid")
    starlette = AsgiServer(setup.settings, logdir, "starlette")
    flask_app = make_flask()
    flask_app.session_interface = interface = SessionInterface(setup.settings)
    cookies: list[str] = []
    try:
        pyramid.start()
        starlette.start()
        reply = pyramid.get("/login", {"user": "alice"})
        cookie = reply.cookie()
        assert reply.status == 200 and cookie, pyramid.log()
        cookies.append(cookie)

        assert starlette.get("/whoami", cookie=cookie).text == "alice"
        reply = starlette.get("/incr", cookie=cookie)
        assert reply.json() == 1 and reply.set_cookies == [], "the same session id: no new cookie"

        flask = flask_app.test_client()
        flask.set_cookie("sid", cookie)
        assert flask.get("/cart/add/apple").json == ["apple"]
        assert flask.get("/read").text == "1"

        assert pyramid.get("/incr", cookie=cookie).json() == 2
        assert pyramid.get("/dump", cookie=cookie).json() == {"user": "alice", "count": 2, "cart": ["apple"]}
        assert starlette.get("/dump", cookie=cookie).json() == {"user": "alice", "count": 2, "cart": ["apple"]}
        assert "Traceback" not in pyramid.log() + starlette.log()
    finally:
        interface.close()
        pyramid.stop()
        starlette.stop()
        setup.forget(cookies)
        setup.close()
