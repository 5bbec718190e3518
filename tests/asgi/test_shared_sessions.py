"""One visitor, one session, three stacks: a Pyramid app (WebTest), a Starlette app
(httpx over the ASGI transport) and a Flask app (its test client), on the same
store and the same ``session.key``/``secret``."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from webtest import TestApp

from satchel.asgi import SessionMiddleware
from satchel.flask import SessionInterface
from tests.asgi.apps import ROUTES
from tests.flask_app.apps import make_flask
from tests.support.apps import BASE_SETTINGS, make_wsgi_app
from tests.web.conftest import store_settings as store_settings


def test_one_visitor_shares_a_session_across_pyramid_starlette_and_flask(store_settings: dict[str, Any]) -> None:
    if store_settings["session.type"] == "memory":
        pytest.skip("a memory store is private to its app")
    settings = {**BASE_SETTINGS, **store_settings}
    pyramid = TestApp(make_wsgi_app(settings))
    flask_app = make_flask()
    flask_app.session_interface = SessionInterface(settings)
    flask_client = flask_app.test_client()
    asgi = SessionMiddleware(Starlette(routes=ROUTES), settings)

    pyramid.get("/login", {"user": "alice"})
    cookie = pyramid.cookies["sid"]

    async def on_starlette() -> None:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://testserver")
        client.cookies.set("sid", cookie)
        async with client:
            assert (await client.get("/dump")).json() == {"user": "alice"}
            response = await client.get("/incr")
            assert response.text == "1"
            assert "set-cookie" not in response.headers  # the same id: nothing to send
        await asgi.close()

    asyncio.run(on_starlette())
    flask_client.set_cookie("sid", cookie)
    assert flask_client.get("/cart/add/apple").json == ["apple"]
    assert flask_client.get("/read").text == "1"
    assert pyramid.get("/dump").text == str([("cart", ["apple"]), ("count", 1), ("user", "alice")])
    assert pyramid.get("/incr").text == "2"
    flask_app.session_interface.close()  # type: ignore[attr-defined]
