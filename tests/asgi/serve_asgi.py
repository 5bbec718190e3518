"""A Starlette (or, with ``--framework fastapi``, FastAPI) app with satchel sessions,
served by uvicorn in a process of its own: the ASGI twin of ``tests/support/serve_app.py``
(same views, same ``/stats``).

Run it as ``python tests/asgi/serve_asgi.py --port 0 --settings-json '{...}'``;
the first line on stdout is ``serving on 127.0.0.1:PORT`` once the socket listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from satchel.asgi import SessionMiddleware
from satchel.config import parse_session_settings
from satchel.errors import SessionConflict, StoreUnavailable
from satchel.stores.aio import AsyncStore, open_async_store
from satchel.stores.base import Record, Version

STATS: Counter[str] = Counter()


class StatsStore(AsyncStore):
    """Counts the store calls this process makes (one event loop: no lock needed)."""

    def __init__(self, inner: AsyncStore) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]

    async def load(self, key: str) -> Record | None:
        STATS["load"] += 1
        return await self.inner.load(key)

    async def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        STATS["save"] += 1
        saved = await self.inner.save(key, data, ttl, expected_version)
        if saved is None:
            STATS["save_conflict"] += 1
        return saved

    async def touch(self, key: str, ttl: int | None) -> bool:
        STATS["touch"] += 1
        return await self.inner.touch(key, ttl)

    async def delete(self, key: str) -> None:
        STATS["delete"] += 1
        await self.inner.delete(key)

    async def count(self) -> int | None:
        return await self.inner.count()

    async def close(self) -> None:
        await self.inner.close()


async def changing(request: Request) -> Any:
    session = request.session
    delay_ms = float(request.query_params.get("delay_ms", 0) or 0)
    if delay_ms > 0:
        await asyncio.sleep(delay_ms / 1000)
    return session


async def start(request: Request) -> Response:
    (await changing(request))["started"] = True
    return PlainTextResponse("started")


async def add(request: Request) -> Response:
    session = await changing(request)
    popped: list[Any] = session.pop_flash() if request.query_params.get("pop") else []
    session[request.query_params["k"]] = True
    if "m" in request.query_params:
        session.flash(request.query_params["m"])
    return JSONResponse(popped)


async def flash(request: Request) -> Response:
    (await changing(request)).flash(request.query_params["m"])
    return PlainTextResponse("flashed")


async def pop(request: Request) -> Response:
    return JSONResponse((await changing(request)).pop_flash())


async def peek(request: Request) -> Response:
    return JSONResponse(request.session.peek_flash())


async def dump(request: Request) -> Response:
    return JSONResponse(dict(request.session))


async def incr(request: Request) -> Response:
    session = await changing(request)
    session["count"] = session.get("count", 0) + 1
    return JSONResponse(session["count"])


async def login(request: Request) -> Response:
    session = await changing(request)
    session.regenerate_id()
    session.bind_user(request.query_params["user"])
    session["user"] = request.query_params["user"]
    return PlainTextResponse("in")


async def whoami(request: Request) -> Response:
    return PlainTextResponse(str(request.session.get("user")))


async def ping(request: Request) -> Response:
    return PlainTextResponse("pong")


async def stats(request: Request) -> Response:
    return JSONResponse(dict(STATS))


ROUTES = [
    Route(f"/{view.__name__}", view)
    for view in (start, add, flash, pop, peek, dump, incr, login, whoami, ping, stats)
]


def make_app(settings: dict[str, Any], framework: str = "starlette") -> Any:
    parsed = parse_session_settings(settings)
    store = None if parsed.client_side else StatsStore(open_async_store(parsed.store))
    if framework == "fastapi":
        from fastapi import FastAPI

        routed: Any = FastAPI(routes=ROUTES)
    else:
        routed = Starlette(routes=ROUTES)
    inner = SessionMiddleware(routed, parsed, store=store)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        # Commit errors reach here before any response was sent: answer them as the WSGI twin does.
        try:
            await inner(scope, receive, send)
        except SessionConflict:
            STATS["conflict_errors"] += 1
            await PlainTextResponse("session conflict", status_code=409)(scope, receive, send)
        except StoreUnavailable:
            await PlainTextResponse("session store unavailable, try again shortly", status_code=503)(
                scope, receive, send
            )

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--settings-json", required=True)
    parser.add_argument("--exit-with-stdin", action="store_true")
    parser.add_argument("--framework", choices=("starlette", "fastapi"), default="starlette")
    parser.add_argument("--threads", type=int, default=0, help="accepted for the WSGI twin's launcher; unused")
    args = parser.parse_args()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    if args.exit_with_stdin:
        threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    config = uvicorn.Config(
        make_app(json.loads(args.settings_json), args.framework), log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    print(f"serving on 127.0.0.1:{sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
