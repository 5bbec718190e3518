"""ISession behaviour through a real Pyramid app, on every store in STORE_SETTINGS."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from webtest import TestApp
from zope.interface.verify import verifyObject

from satchel.codecs import store_key
from satchel.testing import FakeClock
from tests.support.apps import SECRET, counting, make_app, store_of

# Cookie mode, encrypted (AES-GCM) and signed-only; tests/test_client_sessions.py
# has the cookie-mode variants of the tests below that look into a store.
COOKIE_KEY = "cookie-mode-key-Tq6Wm2Xp9Lz4Rk8Vc3Ns7Bh5Yd1Jf"


SERVER_SIDE = ["memory", "file"]
EVERY_MODE = [*SERVER_SIDE, "cookie", "cookie-signed"]

#: For tests that look into the server-side store.
server_side = pytest.mark.server_side


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "settings" in metafunc.fixturenames:
        modes = SERVER_SIDE if metafunc.definition.get_closest_marker("server_side") else EVERY_MODE
        metafunc.parametrize("settings", modes, indirect=True)


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "memory":
        return {"session.type": "memory"}
    if request.param == "cookie":
        return {"session.type": "cookie", "session.encrypt_key": COOKIE_KEY}
    if request.param == "cookie-signed":
        return {"session.type": "cookie"}
    return {
        "session.type": "file",
        "session.data_dir": str(tmp_path / "data"),
        "session.lock_dir": str(tmp_path / "lock"),
    }


@pytest.fixture
def app(settings: dict[str, Any]) -> TestApp:
    return make_app(settings)


def session_cookie(res: Any, name: str = "sid") -> str | None:
    for header in res.headers.getall("Set-Cookie"):
        if header.startswith(name + "="):
            return header
    return None


def test_verify_object_isession(app: TestApp) -> None:
    from pyramid.interfaces import ISession
    from pyramid.request import Request

    request = Request.blank("/")
    request.registry = app.app.registry
    from pyramid.interfaces import ISessionFactory

    session = app.app.registry.getUtility(ISessionFactory)(request)
    assert verifyObject(ISession, session)
    assert session.new is True
    assert isinstance(session.created, float)


def test_counter_persists(app: TestApp) -> None:
    assert app.get("/incr").text == "1"
    assert app.get("/incr").text == "2"
    assert app.get("/read").text == "2"


def test_view_without_session_does_no_io_and_sets_no_cookie(app: TestApp) -> None:
    store = counting(app)
    res = app.get("/nothing")
    assert session_cookie(res) is None
    assert sum(store.calls.values()) == 0
    assert "Cookie" not in (res.headers.get("Vary") or "")


def test_new_empty_session_writes_nothing(app: TestApp) -> None:
    store = counting(app)
    res = app.get("/read")
    assert res.text == "None"
    assert session_cookie(res) is None
    assert store.writes() == 0
    assert store.calls["load"] == 0  # no cookie, nothing to load
    assert "Cookie" in res.headers["Vary"]


@server_side
def test_read_only_request_writes_nothing(settings: dict[str, Any], app: TestApp) -> None:
    app.get("/incr")
    store = counting(app)
    res = app.get("/read")
    assert res.text == "1"
    assert store.calls["load"] == 1
    assert store.writes() == 0
    assert session_cookie(res) is None


@server_side
def test_changing_request_is_one_load_and_one_write(settings: dict[str, Any], app: TestApp) -> None:
    app.get("/incr")
    store = counting(app)
    app.get("/incr")
    assert store.calls == {"load": 1, "save": 1}


def test_nested_mutation_persists_without_changed(app: TestApp) -> None:
    app.get("/append")
    app.get("/append")
    assert app.get("/append").text == "[0, 1, 2]"
    app.get("/nested", params={"sku": "a"})
    assert app.get("/nested", params={"sku": "b"}).text == "2"


@server_side
def test_changed_forces_a_write(settings: dict[str, Any], app: TestApp) -> None:
    from pyramid.interfaces import ISessionFactory
    from pyramid.request import Request

    app.get("/incr")
    store = counting(app)
    factory = app.app.registry.getUtility(ISessionFactory)
    cookie = app.cookies["sid"]
    session = factory.manager.open(cookie)
    session.changed()
    factory.manager.commit(session)
    assert store.calls["save"] == 1
    del Request


def test_flash_queues(app: TestApp) -> None:
    app.get("/flash", params={"msg": "saved"})
    app.get("/flash", params={"msg": "again"})
    app.get("/flash", params={"msg": "warn", "queue": "warnings"})
    assert app.get("/peek_flash").text == "['saved', 'again']"
    assert app.get("/pop_flash").text == "['saved', 'again']"
    assert app.get("/pop_flash").text == "[]"
    assert app.get("/pop_flash", params={"queue": "warnings"}).text == "['warn']"


def test_flash_without_duplicates() -> None:
    from satchel.session import Session

    session = Session()
    session.flash("x", allow_duplicate=False)
    session.flash("x", allow_duplicate=False)
    session.flash("x")
    assert session.peek_flash() == ["x", "x"]


def test_csrf_with_pyramids_policy(app: TestApp) -> None:
    token = app.get("/csrf_token").text
    assert len(token) >= 40
    assert app.get("/csrf_token").text == token
    res = app.post("/csrf_check", {"csrf_token": token, "value": "v"})
    assert res.text == "accepted"
    bad = app.post("/csrf_check", {"csrf_token": "forged", "value": "v"}, status=400)
    assert "bad csrf" in bad.text
    assert app.get("/dump").text == "[('posted', 'v')]"


@server_side
def test_invalidate_deletes_record_and_expires_cookie(settings: dict[str, Any], app: TestApp) -> None:
    app.get("/incr")
    cookie = app.cookies["sid"]
    session_id = cookie.rsplit(".", 1)[0]
    store = store_of(app)
    assert store.load(store_key(session_id)) is not None
    res = app.get("/invalidate")
    header = session_cookie(res)
    assert header is not None and "Max-Age=0" in header
    assert store.load(store_key(session_id)) is None
    assert app.get("/read").text == "None"
    # The old cookie replayed is worthless.
    app.reset()
    app.set_cookie("sid", cookie)
    assert app.get("/read").text == "None"


def test_data_after_invalidate_starts_a_new_session(app: TestApp) -> None:
    app.get("/incr")
    old = app.cookies["sid"]
    app.get("/invalidate_then_set")
    new = app.cookies["sid"]
    assert new != old
    assert app.get("/dump").text == "[('after', 'yes')]"


@server_side
def test_regenerate_id_keeps_data_under_new_id(settings: dict[str, Any], app: TestApp) -> None:
    app.get("/incr")
    old = app.cookies["sid"]
    app.get("/login", params={"user": "bob"})
    new = app.cookies["sid"]
    assert new != old
    assert app.get("/dump").text == "[('count', 1), ('user', 'bob')]"
    from pyramid.interfaces import ISessionFactory

    manager = app.app.registry.getUtility(ISessionFactory).manager
    assert manager.load(old.rsplit(".", 1)[0]) is None
    # The old cookie replayed finds nothing, and is not told to delete itself: the
    # response could overtake the login's and drop the new cookie.
    app.reset()
    app.set_cookie("sid", old)
    res = app.get("/read")
    assert res.text == "None"
    assert "Set-Cookie" not in res.headers


def test_unserializable_value_fails_inside_the_view(app: TestApp) -> None:
    res = app.get("/bad_value", status=400)
    assert "session['when']" in res.text


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "",
        "a.b",
        "x" * 5000,
        "\u00e9t\u00e9.sig",
        "id-that-the-client-chose.AAAA",
    ],
)
def test_bad_cookies_get_a_fresh_session(app: TestApp, cookie: str, caplog: pytest.LogCaptureFixture) -> None:
    app.set_cookie("sid", cookie)
    res = app.get("/incr")
    assert res.text == "1"
    new_cookie = app.cookies["sid"]
    assert new_cookie != cookie


@server_side
def test_tampered_cookie_is_logged_and_replaced(
    settings: dict[str, Any], app: TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    app.get("/incr")
    good = app.cookies["sid"]
    session_id, sig = good.rsplit(".", 1)
    tampered = session_id[:-1] + ("A" if session_id[-1] != "A" else "B") + "." + sig
    app.reset()
    app.set_cookie("sid", tampered)
    with caplog.at_level(logging.WARNING, logger="satchel.security"):
        assert app.get("/read").text == "None"
    assert any("bad signature" in r.getMessage() for r in caplog.records)


@server_side
def test_unknown_id_is_not_adopted(settings: dict[str, Any], app: TestApp) -> None:
    from pyramid.interfaces import ISessionFactory

    signer = app.app.registry.getUtility(ISessionFactory).manager.policy.signer
    chosen = "attacker-chosen-id-0123456789abcdefghijklmnop"
    app.set_cookie("sid", signer.sign(chosen))
    app.get("/incr")
    assert app.cookies["sid"].rsplit(".", 1)[0] != chosen
    assert store_of(app).load(store_key(chosen)) is None


@server_side
def test_stale_cookie_for_missing_session_is_deleted(settings: dict[str, Any], app: TestApp) -> None:
    app.get("/incr")
    cookie = app.cookies["sid"]
    store_of(app).delete(store_key(cookie.rsplit(".", 1)[0]))
    res = app.get("/read")
    header = session_cookie(res)
    assert header is not None and "Max-Age=0" in header


def test_cookie_attributes(app: TestApp) -> None:
    res = app.get("/incr")
    header = session_cookie(res)
    assert header is not None
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
    assert "Max-Age" not in header  # cookie_expires defaults to a browser-session cookie
    value = header.split(";")[0].split("=", 1)[1]
    session_id = value.rsplit(".", 1)[0]
    assert len(session_id) >= 43  # 256 bits, urlsafe base64


@server_side
def test_secret_rotation_keeps_users_logged_in(settings: dict[str, Any]) -> None:
    old_app = make_app(settings)
    old_app.get("/incr")
    cookie = old_app.cookies["sid"]
    new_secret = "f3b8d1e6a9c2f7b4e0d5a8c1f6b3e9d2a7c4f0b5e8d1"
    rotated = make_app(settings, **{"session.secret": f"{new_secret}\n{SECRET}"})
    rotated.app.registry
    from pyramid.interfaces import ISessionFactory

    rotated_factory = rotated.app.registry.getUtility(ISessionFactory)
    rotated_factory.manager.store = store_of(old_app)
    rotated.set_cookie("sid", cookie)
    assert rotated.get("/incr").text == "2"
    # A secret that was dropped no longer verifies.
    dropped = make_app(settings, **{"session.secret": new_secret})
    dropped.app.registry.getUtility(ISessionFactory).manager.store = store_of(old_app)
    dropped.set_cookie("sid", cookie)
    assert dropped.get("/read").text == "None"


def test_cookie_on_exception_true_saves(settings: dict[str, Any]) -> None:
    app = make_app(settings)
    res = app.get("/broken", status=500)
    assert session_cookie(res) is not None
    assert "before_error" in app.get("/dump").text


def test_cookie_on_exception_false_discards(settings: dict[str, Any]) -> None:
    app = make_app(settings, **{"session.cookie_on_exception": "false"})
    app.get("/incr")
    res = app.get("/broken", status=500)
    assert session_cookie(res) is None
    assert "before_error" not in app.get("/dump").text


def test_cookie_expires_seconds_sets_max_age(settings: dict[str, Any]) -> None:
    app = make_app(settings, **{"session.cookie_expires": "3600"})
    header = session_cookie(app.get("/incr"))
    assert header is not None and "Max-Age=3600" in header


def test_cookie_expires_false_means_long_lived(settings: dict[str, Any]) -> None:
    app = make_app(settings, **{"session.cookie_expires": "false"})
    header = session_cookie(app.get("/incr"))
    assert header is not None and f"Max-Age={400 * 86400}" in header


def test_idle_timeout_expires_session(settings: dict[str, Any], clock: FakeClock) -> None:
    app = make_app(settings, clock=clock, **{"session.timeout": "1", "session.renew_interval": "0"})
    app.get("/incr")
    clock.advance(1.3)
    assert app.get("/read").text == "None"


@server_side
def test_renewal_touches_once_interval_passed(settings: dict[str, Any], clock: FakeClock) -> None:
    app = make_app(settings, clock=clock, **{"session.timeout": "3", "session.renew_interval": "1"})
    app.get("/incr")
    store = counting(app)
    app.get("/read")
    assert store.writes() == 0
    clock.advance(1.2)
    app.get("/read")
    assert store.calls["touch"] == 1
    app.get("/read")
    assert store.calls["touch"] == 1
    clock.advance(2.2)  # past the original 3 s, but renewed 2.2 s ago
    assert app.get("/read").text == "1"


def test_absolute_timeout(settings: dict[str, Any], clock: FakeClock) -> None:
    app = make_app(
        settings,
        clock=clock,
        **{"session.timeout": "1", "session.absolute_timeout": "2", "session.renew_interval": "0"},
    )
    app.get("/incr")
    clock.advance(0.7)
    app.get("/incr")
    clock.advance(0.7)
    app.get("/incr")
    clock.advance(0.8)
    assert app.get("/read").text == "None"


def test_vary_cookie_when_session_read(app: TestApp) -> None:
    assert "Cookie" in app.get("/read").headers["Vary"]


def test_webtest_varname_exposes_session(settings: dict[str, Any]) -> None:
    app = make_app(settings, **{"session.webtest_varname": "session"})
    res = app.get("/incr")
    assert res.session["count"] == 1


def test_hand_wired_factory_saves_without_include(settings: dict[str, Any]) -> None:
    from pyramid.config import Configurator

    from satchel import session_factory_from_settings
    from tests.support.apps import BASE_SETTINGS, VIEWS

    all_settings = {**BASE_SETTINGS, **settings}
    with Configurator(settings=all_settings) as config:
        config.set_session_factory(session_factory_from_settings(all_settings))
        for name, view in VIEWS.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        app = TestApp(config.make_wsgi_app())
    app.get("/incr")
    assert app.get("/incr").text == "2"


def test_lone_surrogate_fails_inside_the_view() -> None:
    from satchel.errors import NotSerializable
    from satchel.session import Session

    session = Session()
    with pytest.raises(NotSerializable, match="session\\['bad'\\]"):
        session["bad"] = "\ud800"


def test_regenerate_id_replaces_the_csrf_token(app: TestApp) -> None:
    before = app.get("/csrf_token").text
    app.get("/login")
    after = app.get("/csrf_token").text
    assert after != before
    app.post("/csrf_check", {"csrf_token": before}, status=400)
    assert app.post("/csrf_check", {"csrf_token": after}).text == "accepted"
