"""One visitor across real servers, on Redis and on PostgreSQL with the same
``session.*`` settings: logged in through the Pyramid app (waitress), seen by the
FastAPI app (uvicorn), adding to the cart through the Flask app (waitress), and
the Pyramid app reads it all back."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from satchel.flask import SessionInterface
from tests.asgi.servers import AsgiServer
from tests.flask_app.apps import make_flask
from tests.support.browser import serve
from tests.support.servers import AppServer, StoreSetup, _tempdir, get, store_setup


class FastAPIServer(AsgiServer):
    framework = "fastapi"


@pytest.fixture(params=["redis", "postgresql"])
def setup(request: pytest.FixtureRequest) -> Iterator[StoreSetup]:
    setup = store_setup(request.param, "shared")
    setup.open()  # creates the SQL table once, before the servers race to
    try:
        yield setup
    finally:
        setup.close()


def test_login_on_pyramid_is_seen_by_fastapi_and_flask_and_back(setup: StoreSetup) -> None:
    logdir = _tempdir(setup, "shared-logs")
    pyramid = AppServer(setup.settings, logdir, "pyramid")
    fastapi = FastAPIServer(setup.settings, logdir, "fastapi")
    flask_app = make_flask()
    flask_app.session_interface = interface = SessionInterface(setup.settings)
    cookies: list[str] = []
    try:
        pyramid.start()
        fastapi.start()
        with serve(flask_app) as flask_url:
            flask_port = urlsplit(flask_url).port
            assert flask_port is not None
            reply = pyramid.get("/login", {"user": "alice"})
            cookie = reply.cookie()
            assert reply.status == 200 and cookie, pyramid.log()
            cookies.append(cookie)

            assert fastapi.get("/whoami", cookie=cookie).text == "alice"
            reply = fastapi.get("/incr", cookie=cookie)
            assert reply.json() == 1 and reply.set_cookies == [], "the same session id: no new cookie"

            reply = get(flask_port, "/cart/add/apple", cookie=cookie)
            assert reply.json() == ["apple"] and reply.set_cookies == []
            assert get(flask_port, "/read", cookie=cookie).text == "1"

        assert pyramid.get("/incr", cookie=cookie).json() == 2
        everything = {"user": "alice", "count": 2, "cart": ["apple"]}
        assert pyramid.get("/dump", cookie=cookie).json() == everything
        assert fastapi.get("/dump", cookie=cookie).json() == everything
        assert "Traceback" not in pyramid.log() + fastapi.log()
    finally:
        interface.close()
        pyramid.stop()
        fastapi.stop()
        setup.forget(cookies)
