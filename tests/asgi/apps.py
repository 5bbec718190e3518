"""A Starlette app that exercises the session through ``request.session``, and an
async store that counts the calls the session layer makes."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from satchel.asgi import SessionMiddleware
from satchel.stores.aio import AsyncStore
from satchel.stores.base import Record, Version
from tests.support.apps import BASE_SETTINGS


class CountingAsyncStore(AsyncStore):
    """Wraps a real async store and counts the calls the session layer makes."""

    def __init__(self, inner: AsyncStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.name = inner.name  # type: ignore[misc]

    async def load(self, key: str) -> Record | None:
        self.calls["load"] += 1
        return await self.inner.load(key)

    async def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        self.calls["save"] += 1
        return await self.inner.save(key, data, ttl, expected_version)

    async def touch(self, key: str, ttl: int | None) -> bool:
        self.calls["touch"] += 1
        return await self.inner.touch(key, ttl)

    async def delete(self, key: str) -> None:
        self.calls["delete"] += 1
        await self.inner.delete(key)

    async def count(self) -> int | None:
        return await self.inner.count()

    async def close(self) -> None:
        await self.inner.close()

    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        self.calls.clear()


async def nothing(request: Request) -> Response:
    return PlainTextResponse("no session here")


async def incr(request: Request) -> Response:
    request.session["count"] = request.session.get("count", 0) + 1
    return PlainTextResponse(str(request.session["count"]))


async def read(request: Request) -> Response:
    return PlainTextResponse(str(request.session.get("count")))


async def dump(request: Request) -> Response:
    return JSONResponse(dict(request.session))


async def set_values(request: Request) -> Response:
    request.session.update(dict(request.query_params))
    return PlainTextResponse("set")


async def clear(request: Request) -> Response:
    request.session.clear()
    return PlainTextResponse("cleared")


async def flash(request: Request) -> Response:
    request.session.flash(request.query_params.get("message", "saved!"))
    return PlainTextResponse("flashed")


async def pop_flash(request: Request) -> Response:
    return JSONResponse(request.session.pop_flash())


async def csrf_token(request: Request) -> Response:
    return PlainTextResponse(request.session.get_csrf_token())


async def csrf_check(request: Request) -> Response:
    ok = request.headers.get("x-csrf-token") == request.session.get_csrf_token()
    return PlainTextResponse("ok" if ok else "bad token", status_code=200 if ok else 400)


async def login(request: Request) -> Response:
    request.session.regenerate_id()
    request.session.bind_user(request.query_params.get("user", "alice"))
    request.session["user"] = request.query_params.get("user", "alice")
    return PlainTextResponse("welcome")


async def invalidate(request: Request) -> Response:
    request.session.invalidate()
    return PlainTextResponse("bye")


async def vary(request: Request) -> Response:
    return PlainTextResponse(str(request.session.get("count")), headers={"Vary": "Accept-Encoding"})


async def broken(request: Request) -> Response:
    request.session["broken"] = True
    raise RuntimeError("the view failed")


async def stream(request: Request) -> Response:
    request.session["streamed"] = True

    async def body() -> AsyncIterator[bytes]:
        for part in (b"one ", b"two ", b"three"):
            yield part

    return StreamingResponse(body(), media_type="text/plain")


async def stream_late(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        yield b"headers are out; "
        request.session["too_late"] = True
        yield b"done"

    return StreamingResponse(body(), media_type="text/plain")


async def user_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"user": websocket.session.get("user"), "count": websocket.session.get("count")})
    await websocket.close()


ROUTES = [
    Route("/nothing", nothing),
    Route("/incr", incr),
    Route("/read", read),
    Route("/dump", dump),
    Route("/set", set_values),
    Route("/clear", clear),
    Route("/flash", flash),
    Route("/pop_flash", pop_flash),
    Route("/csrf_token", csrf_token),
    Route("/csrf_check", csrf_check, methods=["POST"]),
    Route("/login", login),
    Route("/invalidate", invalidate),
    Route("/vary", vary),
    Route("/broken", broken),
    Route("/stream", stream),
    Route("/stream_late", stream_late),
    WebSocketRoute("/ws", user_socket),
]


def make_starlette(settings: Mapping[str, Any] | None = None, store: AsyncStore | None = None) -> Starlette:
    app = Starlette(routes=ROUTES)
    app.add_middleware(SessionMiddleware, settings={**BASE_SETTINGS, **(settings or {})}, store=store)
    return app
