"""A flood of new sessions never logs anyone out: past the record cap new sessions
are served but not saved, existing ones (logins included) keep working, and the
cap lifts by itself once the flood's sessions expire."""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.interfaces import ISessionFactory
from pyramid.response import Response
from webtest import TestApp

from satchel.stores.memory import MemoryStore
from satchel.web.pyramid import session_factory_from_settings
from tests.support.apps import SECRET

CAP = 5


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def form(request: Any) -> Response:
    return Response(request.session.get_csrf_token())


def login(request: Any) -> Response:
    request.session.regenerate_id()
    request.session.bind_user("ada")
    request.session["user"] = "ada"
    return Response("in")


def whoami(request: Any) -> Response:
    return Response(str(request.session.get("user")))


def make(clock: Clock, **settings: str) -> TestApp:
    factory = session_factory_from_settings(
        {"session.secret": SECRET, "session.key": "sid", "session.type": "memory", **settings}, clock=clock
    )
    with Configurator() as config:
        config.set_session_factory(factory)
        for name, view in {"form": form, "login": login, "whoami": whoami}.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        return TestApp(config.make_wsgi_app())


def flood(app: TestApp, requests: int) -> int:
    """Cookieless requests to a page that issues a CSRF token; how many got a cookie."""
    saved = 0
    for _ in range(requests):
        res = TestApp(app.app).get("/form")
        saved += bool(res.headers.getall("Set-Cookie"))
    return saved


def test_a_flood_past_the_cap_does_not_log_anyone_out() -> None:
    clock = Clock()
    app = make(clock, **{"session.max_records": str(CAP)})
    app.get("/login")
    assert flood(app, 50) < CAP
    assert app.get("/whoami").text == "ada"
    latecomer = TestApp(app.app)
    latecomer.get("/form")
    latecomer.get("/login")  # a login still works at the cap
    assert latecomer.get("/whoami").text == "ada"


def test_the_cap_lifts_once_the_flood_expires() -> None:
    clock = Clock()
    app = make(clock, **{"session.max_records": str(CAP), "session.timeout": "600"})
    app.get("/login")
    flood(app, 50)
    assert flood(app, 1) == 0
    clock.now += 500
    assert app.get("/whoami").text == "ada"  # renewed: the signed-in user stays
    clock.now += 200  # the flood's sessions have expired
    assert flood(app, 1) == 1
    assert app.get("/whoami").text == "ada"


def test_the_memory_store_caps_new_sessions_by_default() -> None:
    assert MemoryStore.record_cap == 100_000
    clock = Clock()
    app = make(clock)
    manager = app.app.registry.queryUtility(ISessionFactory).manager
    assert manager.policy.limit.cap == MemoryStore.record_cap
