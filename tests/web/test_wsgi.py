"""The WSGI middleware through WebTest: a plain WSGI app, a Flask app, and a PasteDeploy pipeline."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from paste.deploy import loadapp
from webtest import TestApp

from satchel.codecs import store_key
from satchel.config import parse_session_settings
from satchel.errors import ConfigurationError, StoreUnavailable
from satchel.session import Session
from satchel.stores.file import FileStore
from satchel.stores.memory import MemoryStore
from satchel.wsgi import LazySession, SessionMiddleware, filter_app_factory, filter_factory, filter_settings
from tests.support.apps import SECRET, CountingStore

BASE = {"session.secret": SECRET, "session.key": "sid"}

# -- a plain WSGI application ----------------------------------------------------------


def respond(start_response: Any, body: Any, headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), *(headers or [])])
    return [str(body).encode()]


def plain_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    session = environ["satchel.session"]
    if path == "/incr":
        session["count"] = session.get("count", 0) + 1
        return respond(start_response, session["count"])
    if path == "/read":
        return respond(start_response, session.get("count"))
    if path == "/nothing":
        return respond(start_response, "no session here")
    if path == "/vary":
        return respond(start_response, session.get("count"), [("Vary", "Accept-Encoding")])
    if path == "/flash":
        session.flash("saved!")
        return respond(start_response, "flashed")
    if path == "/pop_flash":
        return respond(start_response, session.pop_flash())
    if path == "/invalidate":
        session.invalidate()
        return respond(start_response, "bye")
    if path == "/beaker":
        environ["beaker.session"]["via"] = "beaker"
        return respond(start_response, environ["beaker.session"] is session)
    if path == "/real":
        real = environ["satchel.get_session"]()
        real["json"] = True
        start_response("200 OK", [("Content-Type", "application/json"), ("X-Type", type(real).__name__)])
        return [json.dumps(real).encode()]
    if path == "/repr":
        return respond(start_response, repr(session))
    if path == "/raise":
        session["before_error"] = True
        raise RuntimeError("view failed")
    if path == "/exc_info":
        session["before_error"] = True
        try:
            raise RuntimeError("view failed")
        except RuntimeError:
            import sys

            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
            return [b"error page"]
    if path == "/late":
        return late_reader(environ, start_response)
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


def late_reader(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield str(environ["satchel.session"].get("count")).encode()


def session_cookie(res: Any, name: str = "sid") -> str | None:
    for header in res.headers.getall("Set-Cookie"):
        if header.startswith(name + "="):
            return str(header)
    return None


@pytest.fixture(params=["memory", "file"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "memory":
        return {**BASE, "session.type": "memory"}
    return {
        **BASE,
        "session.type": "file",
        "session.data_dir": str(tmp_path / "data"),
        "session.lock_dir": str(tmp_path / "lock"),
    }


def counting_app(**overrides: Any) -> tuple[TestApp, CountingStore]:
    store = CountingStore(MemoryStore())
    middleware = SessionMiddleware(plain_app, {**BASE, **overrides}, store=store)
    return TestApp(middleware), store


def test_counter(settings: dict[str, Any]) -> None:
    app = TestApp(SessionMiddleware(plain_app, settings))
    first = app.get("/incr")
    assert first.text == "1"
    assert session_cookie(first) is not None
    assert app.get("/incr").text == "2"
    assert app.get("/read").text == "2"


def test_untouched_session_costs_nothing() -> None:
    app, store = counting_app()
    res = app.get("/nothing")
    assert store.calls == {}
    assert "Set-Cookie" not in res.headers
    assert "Vary" not in res.headers
    app.get("/incr")  # now the client holds a cookie
    store.reset()
    res = app.get("/nothing")
    assert store.calls == {}
    assert "Set-Cookie" not in res.headers


def test_read_only_request_writes_nothing_and_sets_no_cookie() -> None:
    app, store = counting_app()
    app.get("/incr")
    store.reset()
    res = app.get("/read")
    assert res.text == "1"
    assert store.calls["load"] == 1
    assert store.writes() == 0
    assert "Set-Cookie" not in res.headers
    assert res.headers["Vary"] == "Cookie"


def test_new_session_that_stays_empty_writes_nothing() -> None:
    app, store = counting_app()
    res = app.get("/read")
    assert res.text == "None"
    assert store.writes() == 0
    assert "Set-Cookie" not in res.headers
    assert res.headers["Vary"] == "Cookie"


def test_vary_joins_the_application_header() -> None:
    app, _ = counting_app()
    res = app.get("/vary")
    assert res.headers.getall("Vary") == ["Accept-Encoding, Cookie"]


def test_flash(settings: dict[str, Any]) -> None:
    app = TestApp(SessionMiddleware(plain_app, settings))
    app.get("/flash")
    app.get("/flash")
    assert app.get("/pop_flash").text == "['saved!', 'saved!']"
    assert app.get("/pop_flash").text == "[]"


def test_invalidate(settings: dict[str, Any]) -> None:
    middleware = SessionMiddleware(plain_app, settings)
    app = TestApp(middleware)
    cookie = session_cookie(app.get("/incr"))
    assert cookie is not None
    session_id = middleware.manager.policy.signer.unsign(cookie.split(";")[0].split("=", 1)[1])
    assert session_id is not None
    assert middleware.manager.store.load(store_key(session_id)) is not None
    res = app.get("/invalidate")
    gone = session_cookie(res)
    assert gone is not None and "Max-Age=0" in gone
    assert middleware.manager.store.load(store_key(session_id)) is None
    assert app.get("/read").text == "None"


def test_secure_cookie_follows_the_url_scheme() -> None:
    app, _ = counting_app(**{"session.secure": "auto"})
    plain = session_cookie(app.get("/incr"))
    app.reset()
    secure = session_cookie(app.get("/incr", extra_environ={"wsgi.url_scheme": "https"}))
    assert plain is not None and "Secure" not in plain
    assert secure is not None and "; Secure" in secure


def test_beaker_alias_is_the_same_session() -> None:
    app, _ = counting_app()
    assert app.get("/beaker").text == "True"
    assert session_cookie(app.get("/incr")) is None  # the session exists: no new cookie
    assert app.get("/real").json == {"via": "beaker", "count": 1, "json": True}


def test_beaker_alias_can_be_turned_off_and_never_replaces_a_session() -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen.update(environ)
        return respond(start_response, "ok")

    TestApp(SessionMiddleware(app, BASE, beaker_alias=False)).get("/")
    assert "beaker.session" not in seen
    outer = object()
    TestApp(SessionMiddleware(app, BASE)).get("/", extra_environ={"beaker.session": outer})
    assert seen["beaker.session"] is outer


def test_get_session_returns_the_real_dict() -> None:
    app, _ = counting_app()
    res = app.get("/real")
    assert res.json == {"json": True}
    assert res.headers["X-Type"] == "Session"
    assert app.get("/real").json == {"json": True}


def test_repr_does_not_load_the_session() -> None:
    app, store = counting_app()
    app.get("/incr")
    store.reset()
    assert app.get("/repr").text == "<LazySession (not loaded)>"
    assert store.calls == {}


def test_lazy_session_is_a_mutable_mapping() -> None:
    captured: list[LazySession] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        session = environ["satchel.session"]
        captured.append(session)
        session.update(a=1)
        session |= {"b": 2}
        session.setdefault("c", [])
        assert dict(session) == {"a": 1, "b": 2, "c": []}
        assert "a" in session and len(session) == 3 and sorted(session) == ["a", "b", "c"]
        assert session == {"a": 1, "b": 2, "c": []}
        del session["c"]
        assert session.pop("b") == 2
        assert session.new is True and session.is_new is True
        session.persist()
        return respond(start_response, repr(session))

    res = TestApp(SessionMiddleware(app, BASE)).get("/")
    assert res.text == "<Session new=True {'a': 1}>"
    assert session_cookie(res) is not None
    assert isinstance(captured[0], LazySession)


def test_beaker_delete_invalidates() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/set":
            environ["beaker.session"]["user"] = "alice"
        else:
            environ["beaker.session"].delete()
        return respond(start_response, "ok")

    test = TestApp(SessionMiddleware(app, BASE))
    test.get("/set")
    gone = session_cookie(test.get("/delete"))
    assert gone is not None and "Max-Age=0" in gone


def test_exception_before_start_response_saves_an_existing_session(settings: dict[str, Any]) -> None:
    app = TestApp(SessionMiddleware(plain_app, settings))
    app.get("/incr")
    with pytest.raises(RuntimeError, match="view failed"):
        app.get("/raise")
    assert app.get("/real").json == {"count": 1, "before_error": True, "json": True}


def test_exception_with_cookie_on_exception_off_saves_nothing() -> None:
    app, store = counting_app(**{"session.cookie_on_exception": "false"})
    app.get("/incr")
    store.reset()
    with pytest.raises(RuntimeError):
        app.get("/raise")
    assert store.writes() == 0
    assert app.get("/real").json == {"count": 1, "json": True}


def test_exception_in_a_new_session_stores_nothing() -> None:
    app, store = counting_app()
    with pytest.raises(RuntimeError):
        app.get("/raise")
    assert store.calls == {}


@pytest.mark.parametrize(("on_exception", "saved"), [("true", True), ("false", False)])
def test_error_response_with_exc_info(on_exception: str, saved: bool) -> None:
    app, _ = counting_app(**{"session.cookie_on_exception": on_exception})
    res = app.get("/exc_info", status=500)
    assert res.headers["Vary"] == "Cookie"
    assert (session_cookie(res) is not None) is saved


def test_store_failure_at_commit_happens_before_the_response_starts(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", tmp_path / "lock")
    shutil.rmtree(tmp_path / "lock")
    (tmp_path / "lock").write_text("not a directory")  # the store can no longer lock: it is unavailable
    middleware = SessionMiddleware(plain_app, BASE, store=store)
    started: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        started.append(status)
        return lambda data: None

    environ = {"PATH_INFO": "/incr", "REQUEST_METHOD": "GET", "wsgi.url_scheme": "http"}
    with pytest.raises(StoreUnavailable):
        middleware(environ, start_response)
    assert started == []  # the server can still send a clean error response


def test_session_first_used_while_streaming_is_readable(caplog: pytest.LogCaptureFixture) -> None:
    app, _ = counting_app()
    app.get("/incr")
    with caplog.at_level(logging.WARNING, logger="satchel"):
        assert app.get("/late").text == "1"
    assert "after the response started" in caplog.text


def test_webtest_varname() -> None:
    app, _ = counting_app(**{"session.webtest_varname": "session"})
    res = app.get("/incr")
    assert res.session["count"] == 1


def test_parsed_settings_are_accepted() -> None:
    parsed = parse_session_settings(BASE)
    app = TestApp(SessionMiddleware(plain_app, parsed))
    assert app.get("/incr").text == "1"


def test_bad_settings_fail_at_start_up() -> None:
    with pytest.raises(ConfigurationError, match=r"session\.secret is required"):
        SessionMiddleware(plain_app, {"session.type": "memory"})


def test_session_class() -> None:
    class MySession(Session):
        __slots__ = ()

    app = TestApp(SessionMiddleware(plain_app, BASE, session_class=MySession))
    assert app.get("/real").headers["X-Type"] == "MySession"


# -- Flask ---------------------------------------------------------------------------------


def make_flask_app(settings: dict[str, Any], store: CountingStore | None = None) -> TestApp:
    flask_app = Flask(__name__)

    def session() -> Any:
        return request.environ["satchel.session"]

    @flask_app.route("/incr")
    def incr() -> str:
        session()["count"] = session().get("count", 0) + 1
        return str(session()["count"])

    @flask_app.route("/read")
    def read() -> str:
        return str(session().get("count"))

    @flask_app.route("/nothing")
    def nothing() -> str:
        return "no session here"

    @flask_app.route("/flash")
    def flash() -> str:
        session().flash(request.args.get("msg", "hello"))
        return "flashed"

    @flask_app.route("/pop_flash")
    def pop_flash() -> str:
        return json.dumps(session().pop_flash())

    @flask_app.route("/invalidate")
    def invalidate() -> str:
        session().invalidate()
        return "bye"

    flask_app.wsgi_app = SessionMiddleware(flask_app.wsgi_app, settings, store=store)  # type: ignore[method-assign]
    return TestApp(flask_app)


def test_flask_counter(settings: dict[str, Any]) -> None:
    app = make_flask_app(settings)
    assert app.get("/incr").text == "1"
    assert app.get("/incr").text == "2"
    assert app.get("/read").text == "2"


def test_flask_untouched_and_read_only_requests() -> None:
    store = CountingStore(MemoryStore())
    app = make_flask_app(BASE, store)
    res = app.get("/nothing")
    assert store.calls == {} and "Set-Cookie" not in res.headers and "Vary" not in res.headers
    app.get("/incr")
    store.reset()
    res = app.get("/read")
    assert res.text == "1"
    assert store.writes() == 0
    assert "Set-Cookie" not in res.headers
    assert "Cookie" in res.headers["Vary"]


def test_flask_flash_and_invalidate(settings: dict[str, Any]) -> None:
    app = make_flask_app(settings)
    app.get("/flash", {"msg": "one"})
    app.get("/flash", {"msg": "two"})
    assert json.loads(app.get("/pop_flash").text) == ["one", "two"]
    assert json.loads(app.get("/pop_flash").text) == []
    app.get("/incr")
    res = app.get("/invalidate")
    gone = session_cookie(res)
    assert gone is not None and "Max-Age=0" in gone
    assert app.get("/read").text == "None"


# -- PasteDeploy -----------------------------------------------------------------------------


def paste_app_factory(global_conf: dict[str, Any], **local_conf: Any) -> Any:
    """``use = call:tests.web.test_wsgi:paste_app_factory`` in the INI files below."""
    return plain_app


def write_ini(tmp_path: Path, filter_lines: str, defaults: str = "") -> Path:
    ini = tmp_path / "app.ini"
    ini.write_text(
        f"""[DEFAULT]
{defaults}

[pipeline:main]
pipeline = satchel app

[filter:satchel]
use = egg:satchel
{filter_lines}

[app:app]
use = call:tests.web.test_wsgi:paste_app_factory
"""
    )
    return ini


def test_paste_deploy_pipeline(tmp_path: Path) -> None:
    ini = write_ini(
        tmp_path,
        f"""session.type = file
session.data_dir = %(here)s/sessions
session.key = sid
session.secret = {SECRET}
""",
    )
    wsgi_app = loadapp(f"config:{ini}")
    assert isinstance(wsgi_app, SessionMiddleware)
    assert wsgi_app.manager.store.address == str(tmp_path / "sessions")
    app = TestApp(wsgi_app)
    assert app.get("/incr").text == "1"
    assert app.get("/incr").text == "2"
    assert session_cookie(app.get("/incr"), "sid") is None


def test_paste_deploy_defaults_and_own_options(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "session.key = sid\nbeaker_alias = false\n", defaults=f"session.secret = {SECRET}")
    wsgi_app = loadapp(f"config:{ini}")
    assert wsgi_app.manager.settings.cookie.name == "sid"
    assert wsgi_app.manager.settings.secrets == (SECRET,)  # from [DEFAULT]
    assert wsgi_app.beaker_alias is False
    assert TestApp(wsgi_app).get("/incr").text == "1"


def test_filter_section_wins_over_defaults() -> None:
    settings, options = filter_settings(
        {"here": "/srv", "beaker.session.key": "old", "session.timeout": "60", "debug": "true"},
        {"session.key": "sid", "environ_key": "my.session"},
    )
    assert settings == {"session.key": "sid", "session.timeout": "60"}
    assert options == {"environ_key": "my.session"}


def test_paste_deploy_refuses_unknown_keys(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, f"secret = {SECRET}\n")
    with pytest.raises(ConfigurationError, match=r"unknown setting secret .*did you mean session.secret\?"):
        loadapp(f"config:{ini}")
    ini = write_ini(tmp_path, f"session.secret = {SECRET}\ncache.regions = short\n")
    with pytest.raises(ConfigurationError, match="sessions only"):
        loadapp(f"config:{ini}")


def test_filter_factories_directly() -> None:
    middleware = filter_app_factory(plain_app, {"here": "/tmp"}, **BASE, environ_key="my.session")
    assert middleware.environ_key == "my.session"
    with pytest.raises(ConfigurationError, match=r"session\.secret is required"):
        filter_factory({}, **{"session.key": "sid"})  # checked before any app is wrapped
    wrapped = filter_factory({}, **BASE)(plain_app)
    assert TestApp(wrapped).get("/incr").text == "1"


def test_cookie_mode() -> None:
    app = TestApp(SessionMiddleware(plain_app, {**BASE, "session.type": "cookie"}))
    assert app.get("/nothing").headers.get("Set-Cookie") is None
    assert app.get("/incr").text == "1"
    assert app.get("/incr").text == "2"
    read = app.get("/read")
    assert read.text == "2" and session_cookie(read) is None
    app.get("/flash")
    assert app.get("/pop_flash").text == "['saved!']"
    gone = session_cookie(app.get("/invalidate"))
    assert gone is not None and "Max-Age=0" in gone
    assert app.get("/read").text == "None"
