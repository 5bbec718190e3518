"""Cookie mode (``session.type = cookie``): encrypted and signed cookies, timeouts inside
the payload, size checks inside the view, and sessions spread over several cookies.

The ISession suite in test_pyramid_session.py runs in cookie mode too; the tests
here are the cookie-mode variants of the ones there that look into a store, plus
what only cookie mode has.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import random
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pyramid.config import Configurator
from pyramid.interfaces import ISession, ISessionFactory
from pyramid.response import Response
from webtest import TestApp
from zope.interface.verify import verifyObject

from satchel.codecs import encode_body
from satchel.config import parse_session_settings
from satchel.errors import BadData, ConfigurationError, NotSerializable, SessionTooLarge
from satchel.manager import SessionManager, build_manager
from satchel.policy.cookie import COOKIE_LIMIT, MAX_BODY, CookieSessions
from satchel.session import Session
from satchel.testing import FakeClock
from satchel.web.pyramid import PyramidSession
from tests.support.apps import BASE_SETTINGS, SECRET, VIEWS, include_on_clock

KEY = "cookie-test-key-R4tW8nQ2mZx6Lc9Vb3Ks7Yp5Hd1Jf"
NEW_KEY = "rotated-key-Wp3Lx9Qk2Ts7Mv4Zc8Rb6Nh1Yd5Jf0Ga"
NEW_SECRET = "c4e91b7f3a2d58e0f6b1d92a7c3e8f4b05d6a9e1c2b7f3"

ENCRYPTED = {"session.type": "cookie", "session.encrypt_key": KEY}
SIGNED = {"session.type": "cookie"}


@pytest.fixture(params=["encrypted", "signed"])
def mode(request: pytest.FixtureRequest) -> dict[str, str]:
    return ENCRYPTED if request.param == "encrypted" else SIGNED


# -- helpers ---------------------------------------------------------------------------


def blob(request: Any) -> Response:
    """Store ``n`` characters, random (hardly compressible) or repeated."""
    n = int(request.params.get("n", "100"))
    if request.params.get("kind", "random") == "random":
        value = base64.urlsafe_b64encode(os.urandom(n)).decode()[:n]
    else:
        value = "x" * n
    try:
        request.session["blob"] = value
    except SessionTooLarge as exc:
        return Response(f"too large: {exc.size} > {exc.limit}", status=413, content_type="text/plain")
    return Response(hashlib.sha256(value.encode()).hexdigest(), content_type="text/plain")


def digest(request: Any) -> Response:
    value = request.session.get("blob")
    text = "none" if value is None else hashlib.sha256(value.encode()).hexdigest()
    return Response(text, content_type="text/plain")


def grow_nested(request: Any) -> Response:
    """Grow a nested list: invisible to the per-write check, caught at commit."""
    items = request.session.setdefault("items", [])
    items.append(base64.urlsafe_b64encode(os.urandom(int(request.params["n"]))).decode())
    return Response("grown", content_type="text/plain")


def on_too_large(exc: SessionTooLarge, request: Any) -> Response:
    return Response(f"session too large: {exc.size} > {exc.limit}", status=413, content_type="text/plain")


def client_app(settings: dict[str, Any], clock: FakeClock | None = None, **overrides: Any) -> TestApp:
    """The shared test app's views plus a few that store large values; with
    ``clock``, its sessions read the time from it."""
    from pyramid.exceptions import BadCSRFToken

    from tests.support.apps import on_bad_csrf, on_error

    merged = {**BASE_SETTINGS, **settings, **overrides}
    with Configurator(settings=merged) as config:
        if clock is None:
            config.include("satchel")
        else:
            include_on_clock(config, clock)
        views = {**VIEWS, "blob": blob, "digest": digest, "grow_nested": grow_nested}
        for name, view in views.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        config.add_view(on_bad_csrf, context=BadCSRFToken)
        config.add_view(on_error, context=RuntimeError)
        config.add_view(on_too_large, context=SessionTooLarge)
        return TestApp(config.make_wsgi_app())


def manager_of(app: TestApp) -> SessionManager:
    manager = app.app.registry.getUtility(ISessionFactory).manager
    assert isinstance(manager, SessionManager)
    return manager


def make_manager(settings: dict[str, Any], clock: FakeClock | None = None, **overrides: Any) -> SessionManager:
    parsed = parse_session_settings({**BASE_SETTINGS, **settings, **overrides})
    if clock is None:
        manager = build_manager(parsed, session_class=PyramidSession)
    else:
        manager = SessionManager(parsed, session_class=PyramidSession, clock=clock)
    assert isinstance(manager, SessionManager)
    return manager


def set_cookies(res: Any) -> dict[str, str]:
    """Set-Cookie headers of a response by cookie name."""
    found = {}
    for header in res.headers.getall("Set-Cookie"):
        found[header.split("=", 1)[0]] = header
    return found


def value_of(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]


def cookie_header(headers: list[str]) -> str:
    """The Cookie header a browser sends back after receiving ``headers``."""
    return "; ".join(h.split(";", 1)[0] for h in headers if "Max-Age=0" not in h)


def fresh(manager: SessionManager) -> Session:
    session = manager.open_request(None)
    assert isinstance(manager.policy, CookieSessions)
    return session


Lines = Callable[[], list[logging.LogRecord]]


@pytest.fixture
def security_lines(caplog: pytest.LogCaptureFixture) -> Lines:
    """What the satchel.security logger has emitted (INFO and up) so far in the test."""
    caplog.set_level(logging.INFO, logger="satchel.security")
    return lambda: [r for r in caplog.records if r.name == "satchel.security"]


# -- modes --------------------------------------------------------------------------------


def test_build_manager_picks_cookie_mode_and_keeps_isession() -> None:
    manager = make_manager(ENCRYPTED)
    session = manager.open_request(None)
    assert isinstance(manager.policy, CookieSessions)
    assert type(session) is PyramidSession
    assert verifyObject(ISession, session)


def test_no_server_side_store() -> None:
    manager = make_manager(ENCRYPTED)
    assert manager.store is None
    parsed = parse_session_settings({**BASE_SETTINGS, **ENCRYPTED})
    from satchel.stores.memory import MemoryStore

    with pytest.raises(ConfigurationError):
        SessionManager(parsed, store=MemoryStore())
    manager.close()


def test_encrypted_cookie_hides_the_data() -> None:
    app = client_app(ENCRYPTED)
    app.get("/set", params={"key": "user", "value": "ada-lovelace"})
    value = app.cookies["sid"]
    assert value.startswith("1E")
    raw = base64.urlsafe_b64decode(value[2:] + "=" * (-len(value[2:]) % 4))
    assert b"ada-lovelace" not in raw and b"user" not in raw
    assert app.get("/dump").text == "[('user', 'ada-lovelace')]"


def test_signed_cookie_is_readable_but_not_changeable(security_lines: Lines) -> None:
    app = client_app(SIGNED)
    app.get("/set", params={"key": "user", "value": "ada"})
    value = app.cookies["sid"]
    assert value.startswith("1S")
    encoded, mac = value[2:].rsplit(".", 1)
    payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    assert payload[0] == 0 and b'"user":"ada"' in payload  # plain JSON inside: readable
    forged = payload.replace(b'"ada"', b'"bob"')
    forged_value = "1S" + base64.urlsafe_b64encode(forged).rstrip(b"=").decode() + "." + mac
    app.reset()
    app.set_cookie("sid", forged_value)
    assert app.get("/dump").text == "[]"
    assert [r.getMessage() for r in security_lines()] == [
        "session cookie refused: bad signature; starting a new session"
    ]


def test_signed_cookie_does_not_verify_with_the_id_signer() -> None:
    """The cookie-session signer has its own context: an id cookie's MAC is no use."""
    from satchel.codecs import Signer

    manager = make_manager(SIGNED)
    forged = Signer([SECRET]).sign("S" + base64.urlsafe_b64encode(b"\x00S1 1 1\n{}").rstrip(b"=").decode())
    with pytest.raises(BadData, match="bad signature"):
        manager.policy.sealer.open(forged)


def test_modes_do_not_accept_each_others_cookies(security_lines: Lines) -> None:
    signed, encrypted = client_app(SIGNED), client_app(ENCRYPTED)
    signed.get("/incr")
    encrypted.get("/incr")
    signed_cookie, encrypted_cookie = signed.cookies["sid"], encrypted.cookies["sid"]
    signed.reset()
    encrypted.reset()
    signed.set_cookie("sid", encrypted_cookie)
    encrypted.set_cookie("sid", signed_cookie)
    assert signed.get("/read").text == "None"
    assert encrypted.get("/read").text == "None"
    assert len(security_lines()) == 2


def test_encrypted_cookie_is_bound_to_its_name(security_lines: Lines) -> None:
    """Same key, another cookie name (another app): the value does not decrypt there."""
    one = client_app(ENCRYPTED)
    other = client_app(ENCRYPTED, **{"session.key": "other"})
    one.get("/incr")
    other.set_cookie("other", one.cookies["sid"])
    assert other.get("/read").text == "None"
    assert "failed authentication" in security_lines()[-1].getMessage()


def test_each_write_uses_a_fresh_nonce() -> None:
    manager = make_manager(ENCRYPTED)
    session = fresh(manager)
    session["a"] = 1
    first = manager.commit(session)
    session.changed()
    second = manager.commit(session)
    assert value_of(first[0]) != value_of(second[0])
    raw1 = base64.urlsafe_b64decode(value_of(first[0])[2:] + "==")
    raw2 = base64.urlsafe_b64decode(value_of(second[0])[2:] + "==")
    assert raw1[1:13] != raw2[1:13]


def test_compressed_when_smaller() -> None:
    manager = make_manager(SIGNED)
    session = fresh(manager)
    session["text"] = "abc " * 500
    [header] = manager.commit(session)
    encoded = value_of(header)[2:].rsplit(".", 1)[0]
    payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    assert payload[0] == 1  # zlib
    body = zlib.decompress(payload.split(b"\n", 1)[1])
    assert json.loads(body)["d"]["text"] == "abc " * 500
    assert len(header) < 500
    small = fresh(manager)
    small["n"] = 1
    [header] = manager.commit(small)
    encoded = value_of(header)[2:].rsplit(".", 1)[0]
    assert base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))[0] == 0


def test_decompression_is_bounded(security_lines: Lines) -> None:
    """Even a cookie sealed with the right key may not inflate past MAX_BODY."""
    manager = make_manager(ENCRYPTED, FakeClock(1_800_000_001.0))
    body = b'{"d":{"x":"' + b"a" * (MAX_BODY + 10) + b'"}}'
    payload = b"\x01" + manager.policy._header(1_800_000_000.0, 1_800_000_000.0) + zlib.compress(body, 9)
    value = "1" + manager.policy.sealer.seal(payload)
    assert len(value) < 4000
    session = manager.open_request(f"sid={value}")
    assert dict(session) == {}
    assert "too large" in security_lines()[-1].getMessage()


# -- what is sent when ---------------------------------------------------------------------


def test_read_only_request_sends_no_cookie(mode: dict[str, str]) -> None:
    app = client_app(mode)
    app.get("/incr")
    res = app.get("/read")
    assert res.text == "1"
    assert res.headers.getall("Set-Cookie") == []


def test_new_empty_session_sends_no_cookie(mode: dict[str, str]) -> None:
    app = client_app(mode)
    assert app.get("/read").headers.getall("Set-Cookie") == []
    assert app.get("/pop_flash").headers.getall("Set-Cookie") == []


def test_changing_request_sends_the_cookie(mode: dict[str, str]) -> None:
    app = client_app(mode)
    first = app.get("/incr")
    second = app.get("/incr")
    assert list(set_cookies(first)) == ["sid"] == list(set_cookies(second))
    assert value_of(set_cookies(first)["sid"]) != value_of(set_cookies(second)["sid"])


def test_changed_forces_a_resend(mode: dict[str, str]) -> None:
    app = client_app(mode)
    app.get("/incr")
    manager = manager_of(app)
    session = manager.open_request(f"sid={app.cookies['sid']}")
    assert manager.commit(session) == []
    session.changed()
    [header] = manager.commit(session)
    assert header.startswith("sid=")
    assert manager.open_request(cookie_header([header]))["count"] == 1


def test_removing_the_last_key_deletes_the_cookie(mode: dict[str, str]) -> None:
    manager = make_manager(mode)
    session = fresh(manager)
    session["a"] = 1
    headers = manager.commit(session)
    loaded = manager.open_request(cookie_header(headers))
    del loaded["a"]
    [header] = manager.commit(loaded)
    assert header.startswith("sid=;") and "Max-Age=0" in header


def test_renewal_resends_once_interval_passed(mode: dict[str, str], clock: FakeClock) -> None:
    app = client_app(mode, clock, **{"session.timeout": "30", "session.renew_interval": "10"})
    app.get("/incr")
    clock.advance(5)
    assert app.get("/read").headers.getall("Set-Cookie") == []
    clock.advance(6)  # 11 s since the cookie was issued
    renewed = app.get("/read")
    assert list(set_cookies(renewed)) == ["sid"]
    assert app.get("/read").headers.getall("Set-Cookie") == []
    clock.advance(25)  # 36 s after the first issue, 25 s after the renewal
    assert app.get("/read").text == "1"


def test_no_renewal_without_timeout_or_relative_expiry(mode: dict[str, str], clock: FakeClock) -> None:
    app = client_app(mode, clock, **{"session.timeout": "none", "session.renew_interval": "10"})
    app.get("/incr")
    clock.advance(3600)
    assert app.get("/read").headers.getall("Set-Cookie") == []


def test_relative_expiry_is_resent_on_renewal(mode: dict[str, str], clock: FakeClock) -> None:
    app = client_app(
        mode,
        clock,
        **{"session.timeout": "none", "session.renew_interval": "60", "session.cookie_expires": "3600"},
    )
    app.get("/incr")
    clock.advance(61)
    header = set_cookies(app.get("/read"))["sid"]
    assert "Max-Age=3600" in header


def test_renewal_disabled(mode: dict[str, str], clock: FakeClock) -> None:
    app = client_app(mode, clock, **{"session.timeout": "30", "session.renew_interval": "0"})
    app.get("/incr")
    clock.advance(20)
    assert app.get("/read").headers.getall("Set-Cookie") == []
    clock.advance(11)
    assert app.get("/read").text == "None"


# -- expiry lives inside the payload -----------------------------------------------------------


def test_replayed_cookie_past_idle_timeout_is_refused(
    mode: dict[str, str], clock: FakeClock, security_lines: Lines
) -> None:
    app = client_app(mode, clock, **{"session.timeout": "60", "session.renew_interval": "0"})
    app.get("/incr")
    kept = app.cookies["sid"]
    clock.advance(61)
    app.reset()
    app.set_cookie("sid", kept)  # the browser kept it (or somebody copied it)
    assert app.get("/read").text == "None"
    [line] = security_lines()
    assert line.levelno == logging.INFO and "expired" in line.getMessage()


def test_renewed_session_outlives_the_first_issue(mode: dict[str, str], clock: FakeClock) -> None:
    app = client_app(mode, clock, **{"session.timeout": "60", "session.renew_interval": "10"})
    app.get("/incr")
    first = app.cookies["sid"]
    for _ in range(5):
        clock.advance(30)
        assert app.get("/read").text == "1"
    # The first cookie, replayed now, is 150 s old: refused.
    app.reset()
    app.set_cookie("sid", first)
    assert app.get("/read").text == "None"


def test_absolute_timeout_is_enforced_on_an_active_session(
    mode: dict[str, str], clock: FakeClock, security_lines: Lines
) -> None:
    app = client_app(
        mode,
        clock,
        **{"session.timeout": "60", "session.absolute_timeout": "120", "session.renew_interval": "5"},
    )
    app.get("/incr")
    for _ in range(3):
        clock.advance(35)
        assert app.get("/incr").text in ("2", "3", "4")
    clock.advance(20)  # 125 s after it was created, 20 s after the last write
    assert app.get("/read").text == "None"
    assert "absolute_timeout" in security_lines()[-1].getMessage()


def test_cookie_issued_in_the_future_is_refused(
    mode: dict[str, str], clock: FakeClock, security_lines: Lines
) -> None:
    manager = make_manager(mode, clock)
    session = fresh(manager)
    session["a"] = 1
    clock.advance(3600)
    headers = manager.commit(session)
    clock.advance(-3600)
    assert dict(manager.open_request(cookie_header(headers))) == {}
    assert "impossible" in security_lines()[-1].getMessage()


# -- bad cookies ---------------------------------------------------------------------------------


def tamper(value: str, position: int) -> str:
    char = value[position]
    return value[:position] + ("A" if char != "A" else "B") + value[position + 1 :]


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_tampered_cookie_is_logged_once_and_replaced(
    mode: dict[str, str], where: str, security_lines: Lines
) -> None:
    app = client_app(mode)
    app.get("/incr")
    good = app.cookies["sid"]
    position = {"start": 3, "middle": len(good) // 2, "end": len(good) - 1}[where]
    app.reset()
    app.set_cookie("sid", tamper(good, position))
    res = app.get("/read")
    assert res.text == "None"
    lines = security_lines()
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "starting a new session" in lines[0].getMessage()
    # The bad cookie is deleted, since the session stayed empty.
    assert "Max-Age=0" in set_cookies(res)["sid"]


@pytest.mark.parametrize(
    "value",
    ["", "1", "0E", "1E", "1S", "01E" + "A" * 40, "9E" + "A" * 40, "1E" + "A" * 5000, "1E!!!", "1S.x", "é"],
)
def test_garbage_cookies_give_a_fresh_session(
    mode: dict[str, str], value: str, security_lines: Lines
) -> None:
    manager = make_manager(mode)
    session = manager.open_request(f"sid={value}")
    assert dict(session) == {} and session.new
    assert len(security_lines()) == 1


def test_truncated_cookie(mode: dict[str, str], security_lines: Lines) -> None:
    manager = make_manager(mode)
    session = fresh(manager)
    session["a"] = "b" * 50
    value = value_of(manager.commit(session)[0])
    for cut in (len(value) - 1, len(value) - 3, len(value) // 2, 3):
        assert dict(manager.open_request(f"sid={value[:cut]}")) == {}
    assert len(security_lines()) == 3  # the first three of an interval in full, the rest counted


def test_non_canonical_base64_is_refused(security_lines: Lines) -> None:
    """Unused low bits of the last base64 character would otherwise give a second
    spelling of the same cookie."""
    manager = make_manager(ENCRYPTED)
    session = fresh(manager)
    session["a"] = 1
    value = value_of(manager.commit(session)[0])
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    variants = [value[:-1] + c for c in alphabet if c != value[-1]]
    accepted = [v for v in variants if dict(manager.open_request(f"sid={v}"))]
    assert accepted == []


def test_encryption_key_rotation(security_lines: Lines) -> None:
    old = client_app(ENCRYPTED)
    old.get("/incr")
    cookie = old.cookies["sid"]
    rotated = client_app(ENCRYPTED, **{"session.encrypt_key": f"{NEW_KEY}\n{KEY}"})
    rotated.set_cookie("sid", cookie)
    assert rotated.get("/read").text == "1"  # the old key still decrypts
    assert rotated.get("/incr").text == "2"  # and the write re-encrypts under the new one
    reissued = rotated.cookies["sid"]
    dropped = client_app(ENCRYPTED, **{"session.encrypt_key": NEW_KEY})
    dropped.set_cookie("sid", reissued)
    assert dropped.get("/read").text == "2"
    dropped.reset()
    dropped.set_cookie("sid", cookie)  # never rewritten: its key is gone
    assert dropped.get("/read").text == "None"
    assert "key that is not configured" in security_lines()[-1].getMessage()


def test_encrypted_mode_does_not_depend_on_the_secret() -> None:
    one = client_app(ENCRYPTED)
    one.get("/incr")
    other = client_app(ENCRYPTED, **{"session.secret": NEW_SECRET})
    other.set_cookie("sid", one.cookies["sid"])
    assert other.get("/read").text == "1"


def test_signing_secret_rotation(security_lines: Lines) -> None:
    old = client_app(SIGNED)
    old.get("/incr")
    cookie = old.cookies["sid"]
    rotated = client_app(SIGNED, **{"session.secret": f"{NEW_SECRET}\n{SECRET}"})
    rotated.set_cookie("sid", cookie)
    assert rotated.get("/incr").text == "2"
    dropped = client_app(SIGNED, **{"session.secret": NEW_SECRET})
    dropped.set_cookie("sid", rotated.cookies["sid"])
    assert dropped.get("/read").text == "2"
    dropped.reset()
    dropped.set_cookie("sid", cookie)
    assert dropped.get("/read").text == "None"


# -- invalidate and regenerate_id -------------------------------------------------------------------


def test_invalidate_deletes_every_chunk(mode: dict[str, str]) -> None:
    app = client_app(mode, **{"session.max_cookies": "4"})
    app.get("/blob", params={"n": "9000"})
    assert {"sid", "sid.1", "sid.2"} <= set(app.cookies)
    res = app.get("/invalidate")
    deleted = set_cookies(res)
    assert set(deleted) == {"sid", "sid.1", "sid.2"}
    assert all("Max-Age=0" in h for h in deleted.values())
    assert dict(app.cookies) == {}
    assert app.get("/read").text == "None"


def test_invalidate_cannot_revoke_a_copy(mode: dict[str, str]) -> None:
    """Documented limitation: a copy of the cookie stays valid until it expires."""
    app = client_app(mode)
    app.get("/incr")
    copy = app.cookies["sid"]
    app.get("/invalidate")
    app.reset()
    app.set_cookie("sid", copy)
    assert app.get("/read").text == "1"


def test_invalidate_then_set_starts_over(mode: dict[str, str], clock: FakeClock) -> None:
    app = client_app(mode, clock, **{"session.absolute_timeout": "3600"})
    app.get("/incr")
    clock.advance(3000)
    app.get("/invalidate_then_set")
    clock.advance(1000)  # past the first session's absolute timeout, not the new one's
    assert app.get("/dump").text == "[('after', 'yes')]"


def test_regenerate_id_resends_and_rotates_csrf(mode: dict[str, str]) -> None:
    app = client_app(mode)
    app.get("/incr")
    token = app.get("/csrf_token").text
    before = app.cookies["sid"]
    res = app.get("/login", params={"user": "bob"})
    assert "sid" in set_cookies(res)
    assert app.cookies["sid"] != before
    assert app.get("/dump").text == "[('count', 1), ('user', 'bob')]"
    new_token = app.get("/csrf_token").text
    assert new_token != token
    app.post("/csrf_check", {"csrf_token": token}, status=400)
    assert app.post("/csrf_check", {"csrf_token": new_token}).text == "accepted"


def test_regenerate_id_without_csrf_token_or_change_still_resends(
    mode: dict[str, str], clock: FakeClock
) -> None:
    manager = make_manager(mode, clock)
    session = fresh(manager)
    session["user"] = "ada"
    first = manager.commit(session)
    clock.advance(0.01)  # a fresh issue time (and, when encrypted, a fresh nonce)
    loaded = manager.open_request(cookie_header(first))
    loaded.regenerate_id()
    second = manager.commit(loaded)
    assert len(second) == 1 and value_of(second[0]) != value_of(first[0])
    assert loaded.csrf is None


# -- size: checked inside the view ---------------------------------------------------------------------


def test_too_large_assignment_raises_inside_the_view(mode: dict[str, str]) -> None:
    app = client_app(mode)
    app.get("/blob", params={"n": "1000"})
    kept = app.get("/digest").text
    res = app.get("/blob", params={"n": "6000"}, status=413)
    size, limit = (int(x) for x in res.text.split(": ")[1].split(" > "))
    assert size > limit
    assert res.headers.getall("Set-Cookie") == []  # nothing changed
    assert app.get("/digest").text == kept


def test_failed_writes_leave_the_session_as_it_was(mode: dict[str, str]) -> None:
    manager = make_manager(mode)
    session: Session = fresh(manager)
    session["keep"] = "k"
    big = base64.urlsafe_b64encode(os.urandom(6000)).decode()
    with pytest.raises(SessionTooLarge) as info:
        session["keep"] = big
    assert session == {"keep": "k"}
    assert info.value.size > info.value.limit == manager.policy.capacity
    with pytest.raises(SessionTooLarge):
        session["new"] = big
    assert "new" not in session
    with pytest.raises(SessionTooLarge):
        session.setdefault("other", big)
    assert "other" not in session
    with pytest.raises(SessionTooLarge):
        session.update({"a": 1, "b": big[:3000], "c": big[3000:]})
    assert session == {"keep": "k"}  # all or nothing
    with pytest.raises(SessionTooLarge):
        session |= {"b": big}
    assert session == {"keep": "k"}
    session.flash("first")
    with pytest.raises(SessionTooLarge):
        session.flash(big)
    with pytest.raises(SessionTooLarge):
        session.flash(big, queue="new-queue")
    assert session.peek_flash() == ["first"] and session.peek_flash("new-queue") == []
    assert "new-queue" not in session.flash_queues
    session["keep"] = "x" * 100  # still usable
    assert manager.commit(session)


def test_csrf_token_creation_is_checked(mode: dict[str, str]) -> None:
    manager = make_manager(mode)
    session = fresh(manager)
    filler = base64.urlsafe_b64encode(os.urandom(4000)).decode()
    step = 1000
    while step:  # fill up to just below the limit
        try:
            session["f"] = filler[: len(session.get("f", "")) + step]
        except SessionTooLarge:
            step //= 2
    with pytest.raises(SessionTooLarge):
        session.get_csrf_token()
    assert session.csrf is None


def test_nested_growth_is_caught_at_commit_and_reaches_exception_views(mode: dict[str, str]) -> None:
    app = client_app(mode)
    app.get("/grow_nested", params={"n": "1000"})
    res = app.get("/grow_nested", params={"n": "5000"}, status=413)
    assert "session too large" in res.text
    assert res.headers.getall("Set-Cookie") == []
    assert app.get("/dump").text.count("'items'") == 1  # the first request's state survives


def test_larger_sessions_are_compressed_to_fit(mode: dict[str, str]) -> None:
    app = client_app(mode)
    app.get("/blob", params={"n": "20000", "kind": "repeat"})  # 20 KB of JSON, compressible
    assert list(app.cookies) == ["sid"]
    assert app.get("/digest").text == hashlib.sha256(b"x" * 20000).hexdigest()


def test_body_limit_applies_even_when_it_would_compress(mode: dict[str, str]) -> None:
    manager = make_manager(mode, **{"session.max_cookies": "8"})
    session = fresh(manager)
    with pytest.raises(SessionTooLarge) as info:
        session["x"] = "a" * (MAX_BODY + 1)
    assert info.value.limit == MAX_BODY


def fill_to_the_limit(manager: SessionManager, session: Session) -> str:
    """The longest random value the session accepts, found by bisection."""
    # Random, so zlib cannot shrink it; seeded, so every run checks the same case.
    source = base64.urlsafe_b64encode(random.Random(4096).randbytes(manager.policy.capacity)).decode()
    low, high = 0, len(source)
    while low < high:
        middle = (low + high + 1) // 2
        try:
            session["f"] = source[:middle]
        except SessionTooLarge:
            high = middle - 1
        else:
            low = middle
    session["f"] = source[:low]
    return source[:low]


@pytest.mark.parametrize("max_cookies", [1, 3])
@pytest.mark.parametrize(
    "cookie_settings",
    [
        {},
        {"session.secure": "true", "session.cookie_expires": "false", "session.cookie_domain": "example.org"},
        {"session.secure": "auto", "session.cookie_expires": "2099-01-01T00:00:00", "session.key": "a" * 200},
    ],
)
def test_a_session_filled_to_the_limit_fits_every_header(
    mode: dict[str, str], max_cookies: int, cookie_settings: dict[str, str]
) -> None:
    """The check is exact: the largest accepted session is sent, each Set-Cookie line
    within 4096 bytes, and reads back."""
    manager = make_manager(mode, **{"session.max_cookies": str(max_cookies)}, **cookie_settings)
    session = fresh(manager)
    value = fill_to_the_limit(manager, session)
    for secure_request in (False, True):
        session.changed()
        headers = manager.commit(session, secure_request=secure_request)
        assert len(headers) == max_cookies
        assert all(len(h) <= COOKIE_LIMIT for h in headers)
        # ...and it used the room there was (base64 and the payload framing leave a few bytes).
        assert max(len(h) for h in headers) >= COOKIE_LIMIT - 32
        assert manager.open_request(cookie_header(headers))["f"] == value
    with pytest.raises(SessionTooLarge):
        session["f"] = value + "xx"


@hsettings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(
    data=st.dictionaries(
        st.text(max_size=20),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=400),
            lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=10), inner, max_size=8),
            max_leaves=30,
        ),
        max_size=12,
    ),
    max_cookies=st.integers(min_value=1, max_value=4),
    encrypted=st.booleans(),
)
def test_every_accepted_session_round_trips_within_the_limit(
    data: dict[str, Any], max_cookies: int, encrypted: bool
) -> None:
    manager = make_manager(ENCRYPTED if encrypted else SIGNED, **{"session.max_cookies": str(max_cookies)})
    session = fresh(manager)
    try:
        session.update(data)
    except NotSerializable:
        assert dict(session) == {}  # text with lone surrogates: refused in the view
        return
    except SessionTooLarge:
        assert dict(session) == {}
        predicted = manager.policy.sealer.sealed_length(
            1 + 32 + len(zlib.compress(encode_body(data, {}, None), 6))
        )
        assert predicted > manager.policy.capacity - 64
        return
    headers = manager.commit(session)
    assert len(headers) <= max_cookies
    assert all(len(h) <= COOKIE_LIMIT for h in headers)
    if data:
        assert dict(manager.open_request(cookie_header(headers))) == data


# -- several cookies -------------------------------------------------------------------------------------


def test_max_cookies_spreads_a_large_session(mode: dict[str, str]) -> None:
    app = client_app(mode, **{"session.max_cookies": "4"})
    stored = app.get("/blob", params={"n": "10000"}).text
    assert set(app.cookies) == {"sid", "sid.1", "sid.2"}
    assert app.cookies["sid"].startswith("3")
    assert app.get("/digest").text == stored
    res = app.get("/read")
    assert res.headers.getall("Set-Cookie") == []  # reads send nothing, however many chunks


def test_one_cookie_refuses_what_four_can_hold(mode: dict[str, str]) -> None:
    one = client_app(mode)
    one.get("/blob", params={"n": "10000"}, status=413)
    assert dict(one.cookies) == {}


def test_shrinking_deletes_the_unused_chunks(mode: dict[str, str]) -> None:
    app = client_app(mode, **{"session.max_cookies": "4"})
    app.get("/blob", params={"n": "10000"})
    stale = {name: app.cookies[name] for name in ("sid.1", "sid.2")}
    res = app.get("/blob", params={"n": "10"})
    headers = set_cookies(res)
    assert "Max-Age=0" not in headers["sid"]
    assert "Max-Age=0" in headers["sid.1"] and "Max-Age=0" in headers["sid.2"]
    assert set(app.cookies) == {"sid"} and app.cookies["sid"].startswith("1")
    stored = app.get("/digest").text
    # A browser that ignored the deletion and sends the old chunks still reads the session
    # (the count says one chunk), and that read deletes them again.
    for name, value in stale.items():
        app.set_cookie(name, value)
    res = app.get("/digest")
    assert res.text == stored
    assert set(set_cookies(res)) == {"sid.1", "sid.2"}
    assert all("Max-Age=0" in h for h in set_cookies(res).values())


def test_missing_chunk(mode: dict[str, str], security_lines: Lines) -> None:
    app = client_app(mode, **{"session.max_cookies": "4"})
    app.get("/blob", params={"n": "10000"})
    jar = dict(app.cookies)
    del jar["sid.1"]
    app.reset()
    for name, value in jar.items():
        app.set_cookie(name, value)
    res = app.get("/digest")
    assert res.text == "none"
    [line] = security_lines()
    assert "chunk cookie sid.1 is missing" in line.getMessage()
    assert {"sid", "sid.2"} == {n for n, h in set_cookies(res).items() if "Max-Age=0" in h}


def test_head_missing(mode: dict[str, str], security_lines: Lines) -> None:
    manager = make_manager(mode, **{"session.max_cookies": "4"})
    session = fresh(manager)
    session["blob"] = base64.urlsafe_b64encode(os.urandom(8000)).decode()
    headers = manager.commit(session)
    without_head = cookie_header(headers[1:])
    loaded = manager.open_request(without_head)
    assert dict(loaded) == {}
    assert "without sid" in security_lines()[-1].getMessage()
    deletes = manager.commit(loaded)
    assert len(deletes) == len(headers) - 1 and all("Max-Age=0" in h for h in deletes)


def test_chunks_of_two_sessions_do_not_mix(mode: dict[str, str], security_lines: Lines) -> None:
    manager = make_manager(mode, **{"session.max_cookies": "4"})
    sets = []
    for _ in range(2):
        session = fresh(manager)
        session["blob"] = base64.urlsafe_b64encode(os.urandom(8000)).decode()
        sets.append(manager.commit(session))
    a, b = ([value_of(h) for h in headers] for headers in sets)
    assert len(a) == len(b) == 3
    swapped = [a[0], a[2], a[1]]
    for mixed in ([a[0], b[1], a[2]], [b[0], a[1], a[2]], [a[0], b[1], b[2]], swapped):
        header = f"sid={mixed[0]}; sid.1={mixed[1]}; sid.2={mixed[2]}"
        assert dict(manager.open_request(header)) == {}
    assert len(security_lines()) == 3  # the first three of an interval in full, the rest counted
    assert manager.open_request(f"sid={b[0]}; sid.1={b[1]}; sid.2={b[2]}")["blob"]


def test_more_chunks_than_configured(mode: dict[str, str], security_lines: Lines) -> None:
    four = make_manager(mode, **{"session.max_cookies": "4"})
    session = fresh(four)
    session["blob"] = base64.urlsafe_b64encode(os.urandom(8000)).decode()
    headers = four.commit(session)
    two = make_manager(mode, **{"session.max_cookies": "2"})
    assert dict(two.open_request(cookie_header(headers))) == {}
    assert "more than session.max_cookies" in security_lines()[-1].getMessage()


def test_duplicate_cookie_names_first_wins(mode: dict[str, str]) -> None:
    manager = make_manager(mode)
    session = fresh(manager)
    session["a"] = 1
    header = cookie_header(manager.commit(session))
    assert manager.open_request(f"{header}; sid=junk")["a"] == 1
    assert dict(manager.open_request(f"sid=junk; {header}")) == {}


def test_quoted_cookie_value_and_other_cookies(mode: dict[str, str]) -> None:
    manager = make_manager(mode)
    session = fresh(manager)
    session["a"] = 1
    value = value_of(manager.commit(session)[0])
    assert manager.open_request(f'theme=dark; sid="{value}"; sid.x=1; sidecar=2')["a"] == 1


# -- concurrency -------------------------------------------------------------------------------------------


def test_concurrent_writes_are_last_writer_wins(mode: dict[str, str]) -> None:
    """Documented limitation: two requests from one state, each sending its cookie;
    the browser keeps the last, and the other request's change is gone."""
    manager = make_manager(mode)
    session = fresh(manager)
    session["cart"] = []
    start = cookie_header(manager.commit(session))
    one, two = manager.open_request(start), manager.open_request(start)
    one["cart"] = ["apple"]
    two["cart"] = ["pear"]
    manager.commit(one)
    last = manager.commit(two)
    assert manager.open_request(cookie_header(last))["cart"] == ["pear"]


# -- settings ---------------------------------------------------------------------------------------------


def test_validate_key_alone_gives_signed_mode() -> None:
    settings = {"session.type": "cookie", "session.validate_key": NEW_SECRET, "session.key": "sid"}
    manager = build_manager(parse_session_settings(settings), session_class=PyramidSession)
    assert isinstance(manager, SessionManager) and manager.policy.sealer.mode == "signed"
    session = fresh(manager)
    session["a"] = 1
    assert value_of(manager.commit(session)[0]).startswith("1S")


def test_warns_when_cookies_never_expire(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="satchel"):
        make_manager(ENCRYPTED, **{"session.timeout": "none"})
    assert any("accepted for ever" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="satchel"):
        make_manager(ENCRYPTED)
    assert not any("accepted for ever" in r.getMessage() for r in caplog.records)


def test_open_takes_a_single_cookie_value(mode: dict[str, str]) -> None:
    manager = make_manager(mode)
    session = fresh(manager)
    session["a"] = 1
    value = value_of(manager.commit(session)[0])
    assert manager.open(value)["a"] == 1
    assert manager.open(None).new and manager.open("").new


def test_bound_user_travels_in_the_cookie_but_cannot_be_revoked(mode: dict[str, str]) -> None:
    manager = make_manager(mode)
    session = fresh(manager)
    session.regenerate_id()
    session.bind_user(42)
    headers = manager.commit(session)
    assert headers  # binding a user is a change
    loaded = manager.open_request(cookie_header(headers))
    assert loaded.user_id == "42"
    assert manager.commit(loaded) == []
    with pytest.raises(NotImplementedError, match="cannot be revoked"):
        manager.revoke_user_sessions(42)
    with pytest.raises(NotImplementedError, match="cannot be listed"):
        manager.user_sessions(42)


def test_pop_flash_in_cookie_mode(mode: dict[str, str]) -> None:
    manager = make_manager(mode)
    session = fresh(manager)
    session.flash("hello")
    loaded = manager.open_request(cookie_header(manager.commit(session)))
    assert loaded.pop_flash() == ["hello"]
    [header] = manager.commit(loaded)
    assert "Max-Age=0" in header  # the session is empty again


def test_plain_wsgi_middleware_in_cookie_mode(mode: dict[str, str]) -> None:
    from satchel.wsgi import SessionMiddleware

    def counter(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["satchel.session"]
        if environ["PATH_INFO"] == "/incr":
            session["n"] = session.get("n", 0) + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(session.get("n")).encode()]

    app = TestApp(SessionMiddleware(counter, {**BASE_SETTINGS, **mode, "session.max_cookies": "2"}))
    assert app.get("/incr").text == "1"
    assert app.get("/incr").text == "2"
    res = app.get("/read")
    assert res.text == "2" and res.headers.getall("Set-Cookie") == []


def test_text_utf8_cannot_carry_is_refused_in_the_view(mode: dict[str, str]) -> None:
    manager = make_manager(mode)
    session = fresh(manager)
    session["ok"] = "fine"
    with pytest.raises(NotSerializable) as info:
        session["bad"] = "\ud800"
    assert info.value.key == "bad"
    assert session == {"ok": "fine"}
