"""Starlette's ``request.session`` on satchel's middleware, through Starlette's test client."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from satchel.stores.aio import AsyncMemoryStore
from tests.asgi.apps import CountingAsyncStore, make_starlette

COOKIE_MODE = {"session.type": "cookie", "session.encrypt_key": "asgi-cookie-mode-encryption-key-0123456789"}


@pytest.fixture
def store() -> CountingAsyncStore:
    return CountingAsyncStore(AsyncMemoryStore())


@pytest.fixture
def client(store: CountingAsyncStore) -> Iterator[TestClient]:
    with TestClient(make_starlette(store=store), raise_server_exceptions=False) as client:
        yield client


def set_cookies(response: object) -> list[str]:
    return response.headers.get_list("set-cookie")  # type: ignore[attr-defined,no-any-return]


def test_request_without_cookie_that_ignores_the_session_does_nothing(
    client: TestClient, store: CountingAsyncStore
) -> None:
    response = client.get("/nothing")
    assert response.text == "no session here"
    assert store.total() == 0
    assert "set-cookie" not in response.headers and "vary" not in response.headers


def test_reading_a_new_session_without_cookie_does_no_io_and_sends_no_cookie(
    client: TestClient, store: CountingAsyncStore
) -> None:
    response = client.get("/read")
    assert response.text == "None"
    assert store.total() == 0
    assert set_cookies(response) == []
    assert response.headers["vary"] == "Cookie"


def test_change_is_one_conditional_write_and_the_session_persists(
    client: TestClient, store: CountingAsyncStore
) -> None:
    assert client.get("/incr").text == "1"
    assert store.calls == {"save": 1}
    store.reset()
    assert client.get("/incr").text == "2"
    assert store.calls == {"load": 1, "save": 1}


def test_read_only_request_loads_once_and_writes_nothing(client: TestClient, store: CountingAsyncStore) -> None:
    client.get("/incr")
    store.reset()
    response = client.get("/read")
    assert response.text == "1"
    assert store.calls == {"load": 1}
    assert set_cookies(response) == []


def test_request_with_cookie_that_ignores_the_session_writes_nothing(
    client: TestClient, store: CountingAsyncStore
) -> None:
    client.get("/incr")
    store.reset()
    response = client.get("/nothing")
    assert store.calls == {"load": 1}
    assert "vary" not in response.headers and set_cookies(response) == []


def test_session_reads_as_a_mapping_like_starlettes(client: TestClient) -> None:
    client.get("/set?a=1&b=2")
    assert client.get("/dump").json() == {"a": "1", "b": "2"}
    client.get("/clear")
    assert client.get("/dump").json() == {}


def test_vary_joins_the_applications_header(client: TestClient) -> None:
    assert client.get("/vary").headers["vary"] == "Accept-Encoding, Cookie"


def test_flash_is_shown_once(client: TestClient) -> None:
    client.get("/flash?message=hello")
    assert client.get("/pop_flash").json() == ["hello"]
    assert client.get("/pop_flash").json() == []


def test_csrf_token_checks_a_post(client: TestClient) -> None:
    token = client.get("/csrf_token").text
    assert client.post("/csrf_check", headers={"X-CSRF-Token": token}).text == "ok"
    assert client.post("/csrf_check", headers={"X-CSRF-Token": "forged"}).status_code == 400


def test_login_regenerates_the_id_and_the_old_cookie_gets_an_empty_session(client: TestClient) -> None:
    client.get("/incr")
    before = client.cookies["sid"]
    client.get("/login?user=alice")
    after = client.cookies["sid"]
    assert after != before
    assert client.get("/dump").json() == {"count": 1, "user": "alice"}
    client.cookies.clear()
    client.cookies.set("sid", before)
    assert client.get("/dump").json() == {}


def test_invalidate_deletes_the_record_and_expires_the_cookie(client: TestClient, store: CountingAsyncStore) -> None:
    client.get("/incr")
    store.reset()
    response = client.get("/invalidate")
    assert store.calls == {"load": 1, "delete": 1}
    assert any("Max-Age=0" in value or "expires=" in value.lower() for value in set_cookies(response))
    assert client.get("/read").text == "None"


def test_exception_in_view_still_saves_an_existing_session(
    client: TestClient, store: CountingAsyncStore
) -> None:
    client.get("/incr")
    response = client.get("/broken")
    assert response.status_code == 500
    # The session existed: its change needs no new cookie, so it is kept.
    assert client.get("/dump").json() == {"count": 1, "broken": True}


def test_exception_in_view_on_new_session_writes_nothing(client: TestClient, store: CountingAsyncStore) -> None:
    assert client.get("/broken").status_code == 500
    assert store.calls["save"] == 0


def test_streaming_response_saves_what_was_set_before_it_started(client: TestClient) -> None:
    response = client.get("/stream")
    assert response.text == "one two three"
    assert set_cookies(response)
    assert client.get("/dump").json() == {"streamed": True}


def test_streaming_body_changing_the_session_after_headers_is_not_saved(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    client.get("/incr")
    with caplog.at_level(logging.WARNING, logger="satchel"):
        assert client.get("/stream_late").text == "headers are out; done"
    assert "after the response started" in caplog.text
    assert client.get("/dump").json() == {"count": 1}


def test_websocket_reads_the_session_of_its_handshake(client: TestClient, store: CountingAsyncStore) -> None:
    client.get("/login?user=bob")
    client.get("/incr")
    store.reset()
    with client.websocket_connect("/ws") as socket:
        assert socket.receive_json() == {"user": "bob", "count": 1}
    assert store.calls == {"load": 1}


def test_websocket_without_cookie_does_no_io(client: TestClient, store: CountingAsyncStore) -> None:
    with client.websocket_connect("/ws") as socket:
        assert socket.receive_json() == {"user": None, "count": None}
    assert store.total() == 0


def test_cookie_mode_keeps_the_session_in_the_cookie() -> None:
    with TestClient(make_starlette(COOKIE_MODE)) as client:
        assert client.get("/read").headers.get("set-cookie") is None
        assert client.get("/incr").text == "1"
        assert client.get("/incr").text == "2"
        client.get("/flash?message=hi")
        assert client.get("/pop_flash").json() == ["hi"]
        client.get("/invalidate")
        assert client.get("/read").text == "None"


def test_settings_given_as_keyword_arguments() -> None:
    from starlette.applications import Starlette

    from satchel.asgi import SessionMiddleware
    from tests.asgi.apps import ROUTES
    from tests.support.apps import SECRET

    app = Starlette(routes=ROUTES)
    app.add_middleware(SessionMiddleware, secret=SECRET, key="sid", type="memory")
    with TestClient(app) as client:
        client.get("/incr")
        assert client.get("/incr").text == "2"


def test_without_cookie_on_exception_a_failed_request_changes_nothing(store: CountingAsyncStore) -> None:
    app = make_starlette({"session.cookie_on_exception": "false"}, store=store)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.get("/incr")
        assert client.get("/broken").status_code == 500
        assert client.get("/dump").json() == {"count": 1}


def test_secure_auto_marks_the_cookie_secure_on_https_requests(store: CountingAsyncStore) -> None:
    auto = {"session.secure": "auto"}
    with TestClient(make_starlette(auto, store=store), base_url="https://testserver") as client:
        assert "secure" in client.get("/incr").headers["set-cookie"].lower()
    with TestClient(make_starlette(auto, store=store), base_url="http://testserver") as client:
        assert "secure" not in client.get("/incr").headers["set-cookie"].lower()


def test_real_session_is_in_the_scope_for_code_that_needs_a_dict(store: CountingAsyncStore) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from satchel.asgi import SessionMiddleware
    from satchel.session import Session
    from tests.support.apps import BASE_SETTINGS

    async def real(request: Request) -> JSONResponse:
        session = request.scope["satchel.get_session"]()
        return JSONResponse({"is_dict": isinstance(session, dict) and isinstance(session, Session)})

    app = SessionMiddleware(Starlette(routes=[Route("/real", real)]), BASE_SETTINGS, store=store)
    with TestClient(app) as client:
        assert client.get("/real").json() == {"is_dict": True}
