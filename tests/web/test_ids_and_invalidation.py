"""``session.id`` is the id the response carries, and an ``invalidate()`` holds
whatever the view does after it, on every server-side store."""

from __future__ import annotations

from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.response import Response
from webtest import TestApp

from tests.support.apps import SECRET


class Boom(Exception):
    pass


def new_visit(request: Any) -> Response:
    session = request.session
    session["seen"] = True
    return Response(session.id)


def login(request: Any) -> Response:
    session = request.session
    before = session.id
    session.regenerate_id()
    session["user"] = "ada"
    return Response(f"{before} {session.id}")


def logout_then_fail(request: Any) -> Response:
    request.session.invalidate()
    raise Boom


def on_boom(exc: Boom, request: Any) -> Response:
    return Response("failed", status=500)


def whoami(request: Any) -> Response:
    return Response(str(request.session.get("user")))


def make(settings: dict[str, Any], **extra: str) -> TestApp:
    with Configurator(settings={"session.secret": SECRET, "session.key": "sid", **settings, **extra}) as config:
        config.include("satchel")
        for name, view in {"new": new_visit, "login": login, "logout": logout_then_fail, "whoami": whoami}.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        config.add_view(on_boom, context=Boom)
        return TestApp(config.make_wsgi_app())


def cookie_id(app: TestApp) -> str:
    return app.cookies["sid"].rpartition(".")[0]


def test_a_new_session_knows_its_id_inside_the_view(store_settings: dict[str, Any]) -> None:
    app = make(store_settings)
    shown = app.get("/new").text
    assert shown and shown == cookie_id(app)


def test_after_regenerate_id_the_id_is_the_new_one(store_settings: dict[str, Any]) -> None:
    app = make(store_settings)
    app.get("/new")
    old = cookie_id(app)
    before, after = app.get("/login").text.split()
    assert before == old and after != old
    assert after == cookie_id(app)


@pytest.mark.parametrize("on_exception", ["true", "false"])
def test_a_logout_sticks_when_the_view_then_fails(store_settings: dict[str, Any], on_exception: str) -> None:
    app = make(store_settings, **{"session.cookie_on_exception": on_exception})
    app.get("/login")
    assert app.get("/whoami").text == "ada"
    stolen = app.cookies["sid"]
    app.get("/logout", status=500)
    thief = TestApp(app.app)
    thief.set_cookie("sid", stolen)
    assert thief.get("/whoami").text == "None"
