"""What a session costs an ASGI or Flask request with satchel, against the peers.

    .venv/bin/python bench/asgibench.py            # about a minute
    .venv/bin/python bench/asgibench.py --rounds 5 # a smoke test

In process: every contender is a minimal app of its framework with ``/incr``
(changes a counter in the session), ``/read`` (only reads it) and ``/nothing``
(never touches it), called directly (an ASGI app with a prepared scope on one
event loop, a Flask app as a WSGI callable with a prepared environ). Session
requests carry the cookie a previous request set (steady state). Contenders run
in interleaved rounds, one batch of every contender and view per round in a new
random order; the figure is the median batch's mean, and "added" subtracts the
framework's floor (the same app without sessions) measured in the same run.

Round trips are counted by a private redis-server (``INFO stats``), per request:
a request without a cookie that does not use the session, a read, a change.
Peers: Starlette's ``SessionMiddleware`` (signed cookie), starsessions on Redis,
Litestar's server-side sessions on Redis and its client-side sessions, Flask's
signed cookie, Flask-Session on Redis and on files.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import hashlib  # noqa: E402
import os  # noqa: E402

import servers  # noqa: E402

#: Every process of one run (the HTTP part's workers) must share the keys.
SECRET = os.environ.get("SATCHEL_BENCH_SECRET") or secrets.token_hex(32)
ENCRYPT_KEY = hashlib.sha256(f"{SECRET}:encrypt".encode()).hexdigest()
VIEWS = ("incr", "read")
Call = Callable[[str, str | None], Any]


# -- calling apps ------------------------------------------------------------------


def _set_cookie(headers: list[tuple[str, str]], jar: str | None) -> str | None:
    """The Cookie header a browser sends next, after these response headers."""
    cookies = dict(part.split("=", 1) for part in (jar.split("; ") if jar else []))
    for name, value in headers:
        if name.lower() == "set-cookie":
            pair = value.split(";", 1)[0]
            key, _, val = pair.partition("=")
            if val and "max-age=0" not in value.lower():
                cookies[key.strip()] = val
            else:
                cookies.pop(key.strip(), None)
    return "; ".join(f"{k}={v}" for k, v in cookies.items()) or None


async def asgi_call(app: Any, path: str, cookie: str | None) -> list[tuple[str, str]]:
    headers = [(b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", cookie.encode("latin-1")))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 1234), "server": ("testserver", 80), "state": {},
    }
    started: list[tuple[str, str]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.extend((k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", ()))

    await app(scope, receive, send)
    return started


async def lifespan_startup(app: Any) -> None:
    """Run the app's lifespan startup (Litestar needs it) and leave the task running."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    ready = asyncio.Event()
    await inbox.put({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            ready.set()

    asyncio.get_running_loop().create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                                inbox.get, send))
    await ready.wait()


def wsgi_call(app: Any, path: str, cookie: str | None) -> list[tuple[str, str]]:
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "", "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": None,
        "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "wsgi.version": (1, 0), "HTTP_HOST": "testserver",
    }
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    got: list[tuple[str, str]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        got.extend(headers)
        return lambda data: None

    body = app(environ, start_response)
    for _ in body:
        pass
    if hasattr(body, "close"):
        body.close()
    return got


# -- contenders ----------------------------------------------------------------------


@dataclass
class Contender:
    framework: str
    name: str
    store: str
    app: Any
    is_async: bool
    redis: bool = False
    cookie: str | None = None
    timings: dict[str, list[float]] = field(default_factory=lambda: {view: [] for view in VIEWS})


def starlette_app(session: bool) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def incr(request: Any) -> Any:
        if session:
            request.session["count"] = request.session.get("count", 0) + 1
        return PlainTextResponse("ok")

    async def read(request: Any) -> Any:
        return PlainTextResponse(str(request.session.get("count")) if session else "ok")

    async def nothing(request: Any) -> Any:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/incr", incr), Route("/read", read), Route("/nothing", nothing)])



def litestar_app(plugins: list[Any], middleware: list[Any], session: bool) -> Any:
    from litestar import Litestar, Request, get

    @get("/incr")
    async def incr(request: Request) -> str:  # type: ignore[type-arg]
        if session:
            request.session["count"] = request.session.get("count", 0) + 1
        return "ok"

    @get("/read")
    async def read(request: Request) -> str:  # type: ignore[type-arg]
        return str(request.session.get("count")) if session else "ok"

    @get("/nothing")
    async def nothing() -> str:
        return "ok"

    return Litestar([incr, read, nothing], plugins=plugins, middleware=middleware, logging_config=None)


def flask_app(session_on: bool) -> Any:
    from flask import Flask, session

    app = Flask(__name__)
    app.secret_key = SECRET

    @app.route("/incr")
    def incr() -> str:
        if session_on:
            session["count"] = session.get("count", 0) + 1
        return "ok"

    @app.route("/read")
    def read() -> str:
        return str(session.get("count")) if session_on else "ok"

    @app.route("/nothing")
    def nothing() -> str:
        return "ok"

    return app


def contenders(redis_url: str, tmp: Path) -> list[Contender]:
    from starlette.middleware.sessions import SessionMiddleware as StarletteSessions
    from starsessions import SessionAutoloadMiddleware
    from starsessions import SessionMiddleware as Starsessions
    from starsessions.stores.redis import RedisStore as StarRedis

    from satchel.asgi import SessionMiddleware
    from satchel.flask import SessionInterface
    from satchel.litestar import SessionPlugin

    satchel_redis = {"session.secret": SECRET, "session.type": "redis", "session.url": redis_url,
                     "session.key_prefix": "bench-satchel:"}
    satchel_cookie = {"session.secret": SECRET, "session.type": "cookie",
                      "session.encrypt_key": ENCRYPT_KEY}
    out = [Contender("starlette", "none (floor)", "-", starlette_app(False), True)]
    out.append(Contender("starlette", "Starlette SessionMiddleware", "signed cookie",
                         StarletteSessions(starlette_app(True), secret_key=SECRET), True))
    out.append(Contender("starlette", "starsessions", "redis", Starsessions(SessionAutoloadMiddleware(
        starlette_app(True)), store=StarRedis(url=redis_url), cookie_https_only=False), True, redis=True))
    out.append(Contender("starlette", "satchel", "redis", SessionMiddleware(starlette_app(True), satchel_redis),
                         True, redis=True))
    out.append(Contender("starlette", "satchel", "encrypted cookie",
                         SessionMiddleware(starlette_app(True), satchel_cookie), True))

    from litestar.middleware.session.client_side import CookieBackendConfig
    from litestar.middleware.session.server_side import ServerSideSessionConfig
    from litestar.stores.redis import RedisStore as LitestarRedis

    out.append(Contender("litestar", "none (floor)", "-", litestar_app([], [], False), True))
    server_side = ServerSideSessionConfig()
    app = litestar_app([], [server_side.middleware], True)
    app.stores.register(server_side.store, LitestarRedis.with_client(url=redis_url, namespace="bench-ls"))
    out.append(Contender("litestar", "Litestar server-side", "redis", app, True, redis=True))
    client_side = CookieBackendConfig(secret=bytes.fromhex(ENCRYPT_KEY)[:16])
    out.append(Contender("litestar", "Litestar client-side", "encrypted cookie",
                         litestar_app([], [client_side.middleware], True), True))
    out.append(Contender("litestar", "satchel", "redis", litestar_app([SessionPlugin(satchel_redis)], [], True), True,
                         redis=True))

    import redis as redis_py
    from flask_session import Session as FlaskSession

    out.append(Contender("flask", "none (floor)", "-", flask_app(False), False))
    out.append(Contender("flask", "Flask signed cookie", "signed cookie", flask_app(True), False))
    for store in ("redis", "filesystem"):
        app = flask_app(True)
        app.config.update(SESSION_TYPE=store, SESSION_REDIS=redis_py.Redis.from_url(redis_url),
                          SESSION_FILE_DIR=str(tmp / "flask-session"))
        if store == "filesystem":
            app.config.update(SESSION_TYPE="cachelib")
            from cachelib import FileSystemCache

            app.config["SESSION_CACHELIB"] = FileSystemCache(str(tmp / "flask-session"))
        FlaskSession(app)
        out.append(Contender("flask", "Flask-Session", "files" if store == "filesystem" else "redis", app, False,
                             redis=store == "redis"))
    for store, settings in (("redis", satchel_redis),
                            ("files", {"session.secret": SECRET, "session.type": "file",
                                       "session.data_dir": str(tmp / "satchel")})):
        app = flask_app(True)
        app.session_interface = SessionInterface(settings)
        out.append(Contender("flask", "satchel", store, app, False, redis=store == "redis"))
    return out


# -- measuring -------------------------------------------------------------------------


async def request(contender: Contender, path: str, cookie: str | None) -> list[tuple[str, str]]:
    if contender.is_async:
        return await asgi_call(contender.app, path, cookie)
    return wsgi_call(contender.app, path, cookie)


async def prime(contender: Contender) -> None:
    contender.cookie = _set_cookie(await request(contender, "/incr", None), None)
    contender.cookie = _set_cookie(await request(contender, "/incr", contender.cookie), contender.cookie)


async def batch(contender: Contender, view: str, n: int) -> float:
    """Mean µs per request of ``n`` requests of ``view`` in steady state."""
    await prime(contender)  # a cookie-only session must not age into a renewal mid-run
    path, cookie = f"/{view}", contender.cookie
    start = time.perf_counter()
    for _ in range(n):
        headers = await request(contender, path, cookie)
        if view == "incr":
            cookie = _set_cookie(headers, cookie)
    return (time.perf_counter() - start) / n * 1e6


async def round_trips(contender: Contender, counter: servers.RedisCounter) -> dict[str, float]:
    await prime(contender)
    out = {}
    for label, path, cookie in (("no cookie", "/nothing", None), ("read", "/read", contender.cookie),
                                ("change", "/incr", contender.cookie)):
        before = counter.snapshot()
        n = 20
        for _ in range(n):
            headers = await request(contender, path, cookie)
            if path == "/incr":
                cookie = _set_cookie(headers, cookie)
        out[label] = counter.delta(before, counter.snapshot())["round_trips"] / n
    return out


async def main_async(args: argparse.Namespace) -> int:
    running = servers.start(None, None)
    assert running.redis_url and running.redis_private, "the benchmark needs a private redis-server"
    tmp = Path(tempfile.mkdtemp(prefix="satchel-asgibench-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    everyone = contenders(running.redis_url, tmp)
    for contender in everyone:
        if contender.framework == "litestar":
            await lifespan_startup(contender.app)
    counter = servers.RedisCounter(running.redis_url)
    trips = {id(c): await round_trips(c, counter) for c in everyone if c.redis}
    series = [(c, view) for c in everyone for view in VIEWS]
    rng = random.Random(1)
    for number in range(args.rounds):
        rng.shuffle(series)
        for contender, view in series:
            contender.timings[view].append(await batch(contender, view, args.batch))
        print(f"\r  round {number + 1}/{args.rounds}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    report(everyone, trips, args)
    servers.stop()
    return 0


def report(everyone: list[Contender], trips: dict[int, dict[str, float]], args: argparse.Namespace) -> None:
    median = {id(c): {v: statistics.median(c.timings[v]) for v in VIEWS} for c in everyone}
    floors = {c.framework: median[id(c)] for c in everyone if c.name == "none (floor)"}
    print(f"\n{args.rounds} rounds of {args.batch} requests per contender and view; median batch, µs per request\n")
    print("| framework | sessions | store | incr | read | added: incr | added: read "
          "| round trips: none / read / change |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
    for c in everyone:
        m, floor = median[id(c)], floors[c.framework]
        rt = trips.get(id(c))
        counted = f"{rt['no cookie']:g} / {rt['read']:g} / {rt['change']:g}" if rt else "-"
        added = ("-", "-") if c.name == "none (floor)" else (f"{m['incr'] - floor['incr']:.0f}",
                                                            f"{m['read'] - floor['read']:.0f}")
        print(f"| {c.framework} | {c.name} | {c.store} | {m['incr']:.0f} | {m['read']:.0f} | {added[0]} | "
              f"{added[1]} | {counted} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--cpu", default="last",
                        help="run on this CPU with the Redis server it starts: a number, 'last' (default) "
                        "or 'all' (not pinned); see servers.pin")
    args = parser.parse_args()
    servers.pin(args.cpu)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
