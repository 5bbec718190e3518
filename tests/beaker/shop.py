"""A shop built the way pyramid_beaker apps are: login, a cart, flash messages and
CSRF through Pyramid's ISession; the same views run on Beaker and on satchel."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from pyramid.config import Configurator
from pyramid.response import Response
from webtest import TestApp

from satchel.clock import Clock
from satchel.web.pyramid import session_factory_from_settings, session_tween_factory

SECRET = "0cb243f53ad865a0f70099c0414ffe9cfcfe03ac"


def login(request: Any) -> Response:
    request.session["user"] = request.params["user"]
    request.session.flash(f"Welcome back, {request.params['user']}")
    return Response("ok")


def add(request: Any) -> Response:
    cart = request.session.get("cart", [])
    cart.append(request.params["item"])
    request.session["cart"] = cart
    request.session.flash(f"{request.params['item']} added", "cart")
    return Response("ok")


def token(request: Any) -> Response:
    return Response(request.session.get_csrf_token())


def page(request: Any) -> Response:
    """What a returning visitor sees: who they are, their cart, their pending messages."""
    session = request.session
    shown = {
        "user": session.get("user"),
        "cart": session.get("cart", []),
        "flash": session.pop_flash(),
        "cart_flash": session.pop_flash("cart"),
        "csrf": session.get_csrf_token(),
    }
    return Response(json.dumps(shown), content_type="application/json", charset="utf-8")


def _routes(config: Configurator) -> None:
    for name in ("login", "add", "token", "page"):
        config.add_route(name, "/" + name)
        config.add_view(globals()[name], route_name=name)


def beaker_app(settings: Mapping[str, Any]) -> TestApp:
    """The shop on pyramid_beaker, with Beaker writing its own records."""
    config = Configurator(settings=dict(settings))
    config.include("pyramid_beaker")
    _routes(config)
    return TestApp(config.make_wsgi_app())


def satchel_app(settings: Mapping[str, Any], clock: Clock | None = None, cookiejar: Any = None) -> TestApp:
    """The same shop switched to satchel (``config.include("satchel")``, same settings)."""
    config = Configurator(settings=dict(settings))
    if clock is None:
        config.include("satchel")
    else:
        config.set_session_factory(session_factory_from_settings(settings, clock=clock))
        config.add_tween("satchel.web.pyramid.session_tween_factory", under="pyramid.tweens.excview_tween_factory")
    _routes(config)
    return TestApp(config.make_wsgi_app(), cookiejar=cookiejar)


def shop_visit(app: TestApp, user: str) -> str:
    """A visitor logs in, fills a cart and leaves with messages pending; returns the CSRF token."""
    app.post("/login", {"user": user})
    app.post("/add", {"item": "teapot"})
    app.post("/add", {"item": "kettle"})
    return str(app.get("/token").text)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


__all__ = ["SECRET", "beaker_app", "satchel_app", "session_tween_factory", "shop_visit", "unique"]
