"""A real Pyramid app that exercises the session, and a store that counts its calls."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from pyramid.config import Configurator
from pyramid.csrf import check_csrf_token, get_csrf_token
from pyramid.response import Response
from pyramid.tweens import EXCVIEW
from webtest import TestApp

from satchel.clock import Clock
from satchel.errors import NotSerializable, StoreUnavailable
from satchel.manager import SessionManager
from satchel.session import Session
from satchel.stores.base import Record, Store, Version
from satchel.stores.memory import MemoryStore
from satchel.web.pyramid import session_factory_from_settings

SECRET = "0cb243f53ad865a0f70099c0414ffe9cfcfe03ac"
BASE_SETTINGS = {"session.secret": SECRET, "session.key": "sid"}


class CountingStore(Store):
    """Wraps a real store and counts the calls the session layer makes."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.name = inner.name

    def load(self, key: str) -> Record | None:
        self.calls["load"] += 1
        return self.inner.load(key)

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        self.calls["save"] += 1
        return self.inner.save(key, data, ttl, expected_version)

    def touch(self, key: str, ttl: int | None) -> bool:
        self.calls["touch"] += 1
        return self.inner.touch(key, ttl)

    def delete(self, key: str) -> None:
        self.calls["delete"] += 1
        self.inner.delete(key)

    def purge_expired(self) -> int:
        return self.inner.purge_expired()

    def count(self) -> int | None:
        return self.inner.count()

    def writes(self) -> int:
        return self.calls["save"] + self.calls["touch"] + self.calls["delete"]

    def reset(self) -> None:
        self.calls.clear()


def text(value: Any) -> Response:
    return Response(str(value), content_type="text/plain")


def incr(request: Any) -> Response:
    request.session["count"] = request.session.get("count", 0) + 1
    return text(request.session["count"])


def read(request: Any) -> Response:
    return text(request.session.get("count"))


def nothing(request: Any) -> Response:
    return text("no session here")


def append(request: Any) -> Response:
    request.session.setdefault("items", [])
    request.session["items"].append(len(request.session["items"]))
    return text(request.session["items"])


def nested(request: Any) -> Response:
    request.session.setdefault("cart", {"lines": []})
    request.session["cart"]["lines"].append({"sku": request.params.get("sku", "x")})
    return text(len(request.session["cart"]["lines"]))


def set_key(request: Any) -> Response:
    request.session[request.params["key"]] = request.params["value"]
    return text("ok")


def dump(request: Any) -> Response:
    return text(sorted(request.session.items()))


def flash(request: Any) -> Response:
    request.session.flash(request.params.get("msg", "hello"), queue=request.params.get("queue", ""))
    return text("flashed")


def pop_flash(request: Any) -> Response:
    return text(request.session.pop_flash(request.params.get("queue", "")))


def peek_flash(request: Any) -> Response:
    return text(request.session.peek_flash(request.params.get("queue", "")))


def csrf_token(request: Any) -> Response:
    return text(get_csrf_token(request))


def csrf_check(request: Any) -> Response:
    check_csrf_token(request)
    request.session["posted"] = request.params.get("value", "")
    return text("accepted")


def invalidate(request: Any) -> Response:
    request.session.invalidate()
    return text("bye")


def invalidate_then_set(request: Any) -> Response:
    request.session.invalidate()
    request.session["after"] = "yes"
    return text("fresh")


def login(request: Any) -> Response:
    request.session.regenerate_id()
    request.session["user"] = request.params.get("user", "alice")
    return text("welcome")


def bad_value(request: Any) -> Response:
    try:
        request.session["when"] = object()
    except NotSerializable as exc:
        return Response(str(exc), status=400, content_type="text/plain")
    return text("stored?")


def broken(request: Any) -> Response:
    request.session["before_error"] = True
    raise RuntimeError("view failed")


def on_error(exc: Exception, request: Any) -> Response:
    return Response(f"error: {exc}", status=500, content_type="text/plain")


def on_store_down(exc: Exception, request: Any) -> Response:
    return Response("sessions are unavailable, try again shortly", status=503, content_type="text/plain")


def status(request: Any) -> Response:
    session = request.session
    return text(f"unavailable={session.store_unavailable} count={session.get('count')}")


def on_bad_csrf(exc: Exception, request: Any) -> Response:
    return Response("bad csrf token", status=400, content_type="text/plain")


VIEWS = {
    "incr": incr,
    "read": read,
    "nothing": nothing,
    "append": append,
    "nested": nested,
    "set": set_key,
    "dump": dump,
    "flash": flash,
    "pop_flash": pop_flash,
    "peek_flash": peek_flash,
    "csrf_token": csrf_token,
    "csrf_check": csrf_check,
    "invalidate": invalidate,
    "invalidate_then_set": invalidate_then_set,
    "login": login,
    "bad_value": bad_value,
    "broken": broken,
    "status": status,
}


def include_on_clock(config: Configurator, clock: Clock) -> None:
    """What ``config.include("satchel")`` does for sessions, with the session policy
    and the store reading the time from ``clock``."""
    config.set_session_factory(session_factory_from_settings(config.get_settings(), clock=clock))
    config.add_tween("satchel.web.pyramid.session_tween_factory", under=EXCVIEW)


def make_wsgi_app(settings: Mapping[str, Any], include: bool = True, clock: Clock | None = None) -> Any:
    """The test app; with ``clock``, its sessions read the time from it."""
    from pyramid.exceptions import BadCSRFToken

    with Configurator(settings=dict(settings)) as config:
        if clock is not None:
            include_on_clock(config, clock)
        elif include:
            config.include("satchel")
        for name, view in VIEWS.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        config.add_view(on_bad_csrf, context=BadCSRFToken)
        config.add_view(on_error, context=RuntimeError)
        config.add_view(on_store_down, context=StoreUnavailable)
        return config.make_wsgi_app()


def make_app(settings: Mapping[str, Any] | None = None, clock: Clock | None = None, **overrides: Any) -> TestApp:
    merged = {**BASE_SETTINGS, **(settings or {}), **overrides}
    return TestApp(make_wsgi_app(merged, clock=clock))


def store_of(app: TestApp) -> Store:
    from pyramid.interfaces import ISessionFactory

    registry = app.app.registry
    factory = registry.getUtility(ISessionFactory)
    store: Store = factory.manager.store
    return store


def counting(app: TestApp) -> CountingStore:
    """Put a CountingStore between the app's session manager and its store."""
    from pyramid.interfaces import ISessionFactory

    factory = app.app.registry.getUtility(ISessionFactory)
    # Cookie mode keeps no store: any operation its policy asked for would show here.
    wrapper = CountingStore(factory.manager.store or MemoryStore())
    factory.manager.store = wrapper
    return wrapper


# -- one visitor, straight at the session manager ------------------------------------

MANAGER_MODES = {
    "memory": {"session.type": "memory"},
    "cookie": {
        "session.type": "cookie",
        "session.encrypt_key": "manager-modes-key-Hx4Qp8Wm2Lz7Tk3Rc9Vb6",
        "session.timeout": "600",
    },
}


class Browser:
    """One visitor of a SessionManager: keeps the cookie (named ``sid``) it last sent."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.cookie: str | None = None

    def request(self, view: Callable[[Session], Any]) -> Any:
        session = self.manager.open_request(f"sid={self.cookie}" if self.cookie else None)
        result = view(session)
        for header in self.manager.commit(session):
            value = header.split(";", 1)[0].split("=", 1)[1]
            self.cookie = value or None
        return result

