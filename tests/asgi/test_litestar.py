"""Litestar's ``request.session`` on satchel (the plugin), and satchel's stores as Litestar stores."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar, Request, get
from litestar.testing import TestClient

from satchel.litestar import LitestarStore, SessionPlugin
from satchel.stores.aio import AsyncMemoryStore
from satchel.testing import FakeClock
from tests.asgi.apps import CountingAsyncStore
from tests.support.apps import BASE_SETTINGS


@get("/incr")
async def incr(request: Request[Any, Any, Any]) -> int:
    request.session["count"] = request.session.get("count", 0) + 1
    return int(request.session["count"])


@get("/read")
async def read(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return dict(request.session)


@get("/nothing")
async def nothing() -> str:
    return "no session here"


@get("/replace")
async def replace(request: Request[Any, Any, Any]) -> str:
    request.set_session({"replaced": True})
    return "replaced"


@get("/clear")
async def clear(request: Request[Any, Any, Any]) -> str:
    request.clear_session()
    return "cleared"


@get("/login")
async def login(request: Request[Any, Any, Any]) -> str:
    request.session.regenerate_id()
    request.session["user"] = "alice"
    return "welcome"


@pytest.fixture
def store() -> CountingAsyncStore:
    return CountingAsyncStore(AsyncMemoryStore())


@pytest.fixture
def client(store: CountingAsyncStore) -> Iterator[TestClient[Litestar]]:
    app = Litestar([incr, read, nothing, replace, clear, login], plugins=[SessionPlugin(BASE_SETTINGS, store=store)])
    with TestClient(app) as client:
        yield client


def test_every_route_shares_one_session(client: TestClient[Litestar], store: CountingAsyncStore) -> None:
    assert client.get("/incr").json() == 1
    assert client.get("/incr").json() == 2
    assert client.get("/read").json() == {"count": 2}
    assert store.calls == {"save": 2, "load": 2}


def test_route_without_session_does_no_io(client: TestClient[Litestar], store: CountingAsyncStore) -> None:
    response = client.get("/nothing")
    assert store.total() == 0 and "set-cookie" not in response.headers


def test_set_session_replaces_the_content_and_clear_session_ends_it(client: TestClient[Litestar]) -> None:
    client.get("/incr")
    client.get("/replace")
    assert client.get("/read").json() == {"replaced": True}
    client.get("/clear")
    assert client.get("/read").json() == {}


def test_login_regenerates_the_id(client: TestClient[Litestar]) -> None:
    client.get("/incr")
    before = client.cookies["sid"]
    client.get("/login")
    assert client.cookies["sid"] != before
    assert client.get("/read").json() == {"count": 1, "user": "alice"}


def test_litestar_store_adapter_sets_gets_renews_and_deletes() -> None:
    clock = FakeClock()
    store = LitestarStore(AsyncMemoryStore(clock=clock), clock=clock)

    async def scenario() -> None:
        await store.set("any key / with spaces", "value", expires_in=10)
        assert await store.get("any key / with spaces") == b"value"
        await store.set("any key / with spaces", b"again", expires_in=10)
        assert await store.expires_in("any key / with spaces") == 10
        clock.advance(5)
        assert await store.get("any key / with spaces", renew_for=60) == b"again"
        assert await store.expires_in("any key / with spaces") == 60
        assert await store.exists("any key / with spaces")
        await store.delete("any key / with spaces")
        assert not await store.exists("any key / with spaces")
        await store.set("short", b"x", expires_in=1)
        clock.advance(2)
        assert await store.get("short") is None

    asyncio.run(scenario())
