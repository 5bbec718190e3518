"""Failure behaviour as a feature: stores that cannot be reached, secure cookies, floods."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from webtest import TestApp

from tests.support.apps import BASE_SETTINGS, VIEWS, counting, make_app, on_error, store_of


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def down_redis_settings(**extra: Any) -> dict[str, Any]:
    return {
        "session.type": "ext:redis",
        "session.url": f"redis://127.0.0.1:{closed_port()}/0?socket_connect_timeout=0.5",
        **extra,
    }


def test_store_down_reaches_the_exception_view() -> None:
    app = make_app(down_redis_settings())
    app.set_cookie("sid", "someid.somesig")
    # A bad signature never reaches the store; a good one does.
    from pyramid.interfaces import ISessionFactory

    signer = app.app.registry.getUtility(ISessionFactory).manager.policy.signer
    app.set_cookie("sid", signer.sign("x" * 43))
    res = app.get("/read", status=503)
    assert "unavailable" in res.text
    assert app.get("/nothing").status_int == 200  # views without a session keep working


def test_store_down_with_fresh_opt_in_serves_an_unsaved_session() -> None:
    app = make_app(down_redis_settings(**{"session.on_store_error": "fresh"}))
    from pyramid.interfaces import ISessionFactory

    signer = app.app.registry.getUtility(ISessionFactory).manager.policy.signer
    app.set_cookie("sid", signer.sign("y" * 43))
    res = app.get("/status")
    assert res.text == "unavailable=True count=None"
    # The visitor's cookie is kept: their stored session may be intact.
    assert "sid=" not in res.headers.get("Set-Cookie", "")
    res = app.get("/incr")
    assert res.status_int == 200
    assert "sid=" not in res.headers.get("Set-Cookie", "")


def test_new_session_write_during_outage_with_fresh_opt_in_is_dropped_not_500() -> None:
    app = make_app(down_redis_settings(**{"session.on_store_error": "fresh"}))
    res = app.get("/incr")
    assert res.status_int == 200
    assert "sid=" not in res.headers.get("Set-Cookie", "")


def test_secure_auto_follows_the_request_scheme() -> None:
    app = make_app(**{"session.secure": "auto"})
    plain = app.get("/incr").headers["Set-Cookie"]
    assert "Secure" not in plain
    app.reset()
    secure = app.get("/incr", extra_environ={"wsgi.url_scheme": "https"}).headers["Set-Cookie"]
    assert "; Secure" in secure


def test_secure_auto_follows_a_request_class_that_reads_the_proxy_scheme() -> None:
    """An app whose request class takes the scheme from X-Forwarded-Proto (behind a TLS
    proxy) gets Secure cookies from the normal commit and from the one after an error."""
    from pyramid.config import Configurator
    from pyramid.request import Request

    class ProxiedRequest(Request):
        @property
        def scheme(self) -> str:
            return str(self.headers.get("X-Forwarded-Proto", self.environ["wsgi.url_scheme"]))

    settings = {**BASE_SETTINGS, "session.secure": "auto", "session.cookie_on_exception": "true"}
    with Configurator(settings=settings) as config:
        config.set_request_factory(ProxiedRequest)
        config.include("satchel")
        for name in ("incr", "broken"):
            config.add_route(name, f"/{name}")
            config.add_view(VIEWS[name], route_name=name)
        config.add_view(on_error, context=RuntimeError)
        app = TestApp(config.make_wsgi_app())
    proxied = {"X-Forwarded-Proto": "https"}
    assert "; Secure" in app.get("/incr", headers=proxied).headers["Set-Cookie"]
    app.reset()
    failed = app.get("/broken", headers=proxied, status=500)
    assert "; Secure" in failed.headers["Set-Cookie"]
    app.reset()
    assert "Secure" not in app.get("/incr").headers["Set-Cookie"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ([("Vary", "Accept"), ("vary", "Origin")], ["Accept, Cookie", "Origin"]),
        ([("VARY", "accept-encoding")], ["accept-encoding, Cookie"]),
        ([("Vary", "Origin"), ("Vary", "cookie")], ["Origin", "cookie"]),
        ([("Vary", "*")], ["*"]),
        ([], ["Cookie"]),
    ],
    ids=["two-headers", "upper-case", "cookie-in-second", "star", "none"],
)
def test_vary_keeps_every_vary_header_the_view_set(given: list[tuple[str, str]], expected: list[str]) -> None:
    from pyramid.config import Configurator
    from pyramid.response import Response

    def view(request: Any) -> Response:
        request.session["seen"] = True
        response = Response("ok")
        response.headerlist.extend(given)
        return response

    with Configurator(settings=dict(BASE_SETTINGS)) as config:
        config.include("satchel")
        config.add_route("view", "/view")
        config.add_view(view, route_name="view")
        app = TestApp(config.make_wsgi_app())
    res = app.get("/view")
    assert [v for k, v in res.headerlist if k.lower() == "vary"] == expected


def test_cookie_less_flood_creates_no_records(tmp_path: Any) -> None:
    app = make_app(
        {"session.type": "file", "session.data_dir": str(tmp_path / "d"), "session.lock_dir": str(tmp_path / "l")}
    )
    store = counting(app)
    for _ in range(300):
        fresh = TestApp(app.app)
        res = fresh.get("/read")
        assert "Set-Cookie" not in res.headers
    assert store.writes() == 0
    assert store_of(app).count() == 0


def test_record_cap_stops_new_sessions_with_a_log_line(tmp_path: Any, caplog: Any) -> None:
    import logging

    app = make_app(
        {
            "session.type": "file",
            "session.data_dir": str(tmp_path / "d"),
            "session.max_records": "5",
        }
    )
    browsers = [TestApp(app.app) for _ in range(8)]
    with caplog.at_level(logging.WARNING, logger="satchel"):
        for browser in browsers:
            browser.get("/incr")
    assert store_of(app).count() == 5
    assert any("max_records is 5" in r.getMessage() for r in caplog.records)
    # Sessions that exist keep working.
    assert browsers[0].get("/incr").text == "2"
    assert browsers[-1].get("/read").text == "None"


def test_record_cap_on_a_store_that_cannot_count_says_so(caplog: Any) -> None:
    import logging

    from tests.support import services

    services.need_port("127.0.0.1", int(services.MEMCACHED_SERVERS.split(";")[0].split(":")[1]), "memcached")
    app = make_app(
        {
            "session.type": "ext:memcached",
            "session.url": services.MEMCACHED_SERVERS,
            "session.max_records": "5",
            "session.key_prefix": "capcheck:",
        }
    )
    with caplog.at_level(logging.WARNING, logger="satchel"):
        assert app.get("/incr").text == "1"
    assert any("cannot be enforced" in r.getMessage() for r in caplog.records)
