"""The Pyramid applications the benchmark drives, one per session library and store.

Every application has the same two views:

- ``/incr`` increments a counter in the session (a changing request);
- ``/read`` only reads it (a read-only request).

The no-session floor has the same views without touching any session; the raw
server floors have them running the bare client commands (and run those
commands alone in a tight loop as well, for comparison).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from io import BytesIO
from typing import Any, TypeVar

from pyramid.config import Configurator
from pyramid.response import Response

# Secrets for the benchmark only (satchel refuses short or repetitive ones).
SECRET = "b7e1c0d2a9f84e6b3c5d7a1f0e2b4c6d8a0f1e3d5c7b9a1e"
ENCRYPT_KEY = "4f2a9c1e7b3d5f0a8c6e2b4d1f3a5c7e9b0d2f4a6c8e1b3d"
COOKIE_NAME = "sid"

T = TypeVar("T")


def incr(request: Any) -> Response:
    session = request.session
    count = session.get("count", 0) + 1
    session["count"] = count
    return Response(str(count), content_type="text/plain")


def read(request: Any) -> Response:
    return Response(str(request.session.get("count")), content_type="text/plain")


def floor_view(request: Any) -> Response:
    return Response("0", content_type="text/plain")


def build_app(configure: Callable[[Configurator], None] | None,
              views: tuple[Callable[[Any], Response], Callable[[Any], Response]] = (incr, read)) -> Any:
    with Configurator(settings={}) as config:
        if configure is not None:
            configure(config)
        config.add_route("incr", "/incr")
        config.add_route("read", "/read")
        config.add_view(views[0], route_name="incr")
        config.add_view(views[1], route_name="read")
        return config.make_wsgi_app()


def settings_app(settings: dict[str, Any], include: str | None = None,
                 factory: Callable[[dict[str, Any]], Any] | None = None,
                 views: tuple[Callable[[Any], Response], Callable[[Any], Response]] = (incr, read),
                 more: Callable[[Configurator], None] | None = None) -> Any:
    """An app configured from flat settings: ``config.include(include)`` or a factory;
    ``views`` at /incr and /read, and whatever ``more`` adds."""

    def configure(config: Configurator) -> None:
        config.registry.settings.update(settings)
        if include:
            config.include(include)
        if factory is not None:
            config.set_session_factory(factory(settings))
        if more is not None:
            more(config)

    return build_app(configure, views)


# -- calling a WSGI app directly --------------------------------------------------

_EMPTY = BytesIO(b"")

BASE_ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "QUERY_STRING": "",
    "SERVER_NAME": "bench.local",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "HTTP_HOST": "bench.local",
    "REMOTE_ADDR": "127.0.0.1",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.input": _EMPTY,
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": False,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


def environ(path: str, cookie: str | None) -> dict[str, Any]:
    env = dict(BASE_ENVIRON, PATH_INFO=path)
    if cookie:
        env["HTTP_COOKIE"] = cookie
    return env


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
    return _write


def _write(data: bytes) -> None:  # pragma: no cover - WSGI's legacy write()
    pass


def make_caller(app: Any, path: str, cookie: str | None) -> Callable[[], None]:
    """A no-argument function doing one request, as cheap as a WSGI server's own work."""
    template = environ(path, cookie)
    copy = template.copy
    start_response = _start_response

    def call() -> None:
        body = app(copy(), start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()

    return call


@dataclass
class Reply:
    status: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def set_cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]


def request(app: Any, path: str, cookie: str | None) -> Reply:
    """One request, keeping status, headers and body (for checks and counting)."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        seen["status"], seen["headers"] = status, list(headers)
        return _write

    body = app(environ(path, cookie), start_response)
    try:
        data = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return Reply(seen["status"], seen["headers"], data)


def cookie_from(reply: Reply) -> str | None:
    """``name=value`` pairs of the Set-Cookie headers, as the next request sends them."""
    pairs = []
    for header in reply.set_cookies:
        pair = header.split(";", 1)[0].strip()
        if pair.split("=", 1)[1:] not in ([""], []):
            pairs.append(pair)
    return "; ".join(pairs) or None


# -- the contenders -------------------------------------------------------------------


@dataclass
class Contender:
    """One session library on one store."""

    key: str
    library: str  # "none", "pyramid", "beaker", "pyramid_session_redis", "satchel", "raw", "rawloop", "rawwork"
    store: str  # memory, file, sql, redis, memcached, cookie, cookie-signed, ...
    label: str
    build: Callable[[], Any] | None = None  # -> WSGI app
    counter: str | None = None  # "redis", "memcached", "sql" or None
    unavailable: str | None = None  # why it cannot run here
    raw: dict[str, Callable[[], None]] = field(default_factory=dict)  # raw floors: view -> op
    app: Any = None
    cookie: str | None = None
    #: False: keep the cookie of the set-up requests for the whole run instead of a
    #: fresh one before each batch (a visitor whose last cookie is seconds old).
    reprime: bool = True


def _has(module: str) -> str | None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"{module} not importable: {exc}"
    except Exception as exc:  # another module in progress may fail on import
        return f"{module} fails to import: {type(exc).__name__}: {exc}"
    return None


def satchel_cookie_unavailable() -> str | None:
    reason = _has("satchel.policy.cookie")
    if reason:
        return "satchel cookie mode (satchel.policy.cookie) is not available: " + reason
    return None


def beaker_memcached_unavailable() -> str | None:
    for module in ("memcache", "pylibmc", "bmemcached"):
        if _has(module) is None:
            return None
    return ("Beaker's ext:memcached needs python-memcached, pylibmc or python-binary-memcached "
            "(pip install -r bench/requirements.txt)")


def make_contenders(redis_url: str | None, memcached: str | None, tmp: str, sql_url: str | None = None,
                    app: Callable[..., Any] = settings_app) -> list[Contender]:
    """Every contender; ``app(settings, include=, factory=)`` builds the apps of the
    session libraries (``settings_app``: the incr and read views)."""
    import pyramid_beaker
    import pyramid_session_redis
    from pyramid.session import SignedCookieSessionFactory

    import satchel

    def sqlite(name: str) -> str:
        return sql_url or f"sqlite:///{os.path.join(tmp, name)}"

    no_redis = None if redis_url else "no Redis server reachable"
    no_memcached = None if memcached else "no memcached server reachable"
    beaker_base = {"session.key": COOKIE_NAME, "session.secret": SECRET}
    satchel_base = {"session.key": COOKIE_NAME, "session.secret": SECRET}

    def beaker(**options: Any) -> Callable[[], Any]:
        settings = {**beaker_base, **{f"session.{k}": v for k, v in options.items()}}
        return lambda: app(settings, factory=pyramid_beaker.session_factory_from_settings)

    def satchel_app(**options: Any) -> Callable[[], Any]:
        settings = {**satchel_base, **{f"session.{k}": v for k, v in options.items()}}
        return lambda: app(settings, include="satchel")

    def satchel_metrics(on: bool) -> Callable[[], Any]:
        """satchel memory with its manager built by hand, reporting to an OpenTelemetry
        SDK meter provider (``on``; the default auto setting reports nothing without
        one) or not at all: the two rows differ in the telemetry only."""

        def build() -> Any:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader

            from satchel.config import parse_session_settings
            from satchel.manager import SessionManager
            from satchel.telemetry import SessionTelemetry
            from satchel.web.pyramid import PyramidSession, SatchelSessionFactory

            settings = {**satchel_base, "session.type": "memory", "session.telemetry": "true" if on else "false"}
            provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
            telemetry = SessionTelemetry("memory", meter_provider=provider) if on else None
            manager = SessionManager(parse_session_settings(settings), session_class=PyramidSession,
                                     telemetry=telemetry)

            def configure(config: Configurator) -> None:
                config.registry.settings.update(settings)
                config.include("satchel")
                config.set_session_factory(SatchelSessionFactory(manager))

            return build_app(configure)

        return build

    def pyramid_signed() -> Any:
        return app({}, factory=lambda _: SignedCookieSessionFactory(SECRET))

    def psr() -> Any:
        return app({}, factory=lambda _: pyramid_session_redis.RedisSessionFactory(
            secret=SECRET, redis_url=redis_url, timeout=1200))

    c: list[Contender] = [
        Contender("floor", "none", "-", "no session (floor)", lambda: build_app(None, views=(floor_view, floor_view))),
        Contender("pyramid-signed", "pyramid", "cookie-signed", "Pyramid SignedCookieSessionFactory", pyramid_signed),
        Contender("pyramid-signed-aged", "pyramid", "cookie-signed", "Pyramid signed, cookie >1 s old",
                  pyramid_signed, reprime=False),
        Contender("beaker-memory", "beaker", "memory", "pyramid_beaker memory", beaker(type="memory")),
        Contender("beaker-file", "beaker", "file", "pyramid_beaker file",
                  beaker(type="file", data_dir=os.path.join(tmp, "beaker/data"),
                         lock_dir=os.path.join(tmp, "beaker/lock"))),
        Contender("beaker-cookie-signed", "beaker", "cookie-signed", "pyramid_beaker cookie (signed)",
                  beaker(type="cookie", validate_key=SECRET)),
        Contender("beaker-cookie", "beaker", "cookie", "pyramid_beaker cookie (encrypted)",
                  beaker(type="cookie", validate_key=SECRET, encrypt_key=ENCRYPT_KEY, crypto_type="cryptography")),
        Contender("beaker-memcached", "beaker", "memcached", "pyramid_beaker ext:memcached",
                  beaker(type="ext:memcached", url=memcached, lock_dir=os.path.join(tmp, "beaker/mclock")),
                  counter="memcached", unavailable=no_memcached or beaker_memcached_unavailable()),
        Contender("beaker-redis", "beaker", "redis", "pyramid_beaker ext:redis",
                  beaker(type="ext:redis", url=redis_url), counter="redis", unavailable=no_redis),
        Contender("beaker-sql", "beaker", "sql", "pyramid_beaker ext:database (SQLite)",
                  beaker(type="ext:database", url=sqlite("beaker.sqlite")), counter="sql"),
        Contender("psr-redis", "pyramid_session_redis", "redis", "pyramid_session_redis", psr,
                  counter="redis", unavailable=no_redis),
        Contender("satchel-memory", "satchel", "memory", "satchel memory", satchel_app(type="memory")),
        Contender("satchel-memory-metrics", "satchel", "memory", "satchel memory, metrics on (OTel SDK)",
                  satchel_metrics(True), unavailable=_has("opentelemetry.sdk.metrics")),
        Contender("satchel-memory-metrics-off", "satchel", "memory", "satchel memory, metrics off (same wiring)",
                  satchel_metrics(False), unavailable=_has("opentelemetry.sdk.metrics")),
        Contender("satchel-file", "satchel", "file", "satchel file",
                  satchel_app(type="file", data_dir=os.path.join(tmp, "satchel/data"),
                              lock_dir=os.path.join(tmp, "satchel/lock"))),
        Contender("satchel-sql", "satchel", "sql", "satchel ext:database (SQLite)",
                  satchel_app(type="ext:database", url=sqlite("satchel.sqlite")), counter="sql",
                  unavailable=_has("satchel.stores.sql")),
        Contender("satchel-redis", "satchel", "redis", "satchel ext:redis",
                  satchel_app(type="ext:redis", url=redis_url), counter="redis", unavailable=no_redis),
        Contender("satchel-memcached", "satchel", "memcached", "satchel ext:memcached",
                  satchel_app(type="ext:memcached", url=memcached), counter="memcached", unavailable=no_memcached),
        Contender("satchel-cookie", "satchel", "cookie", "satchel cookie (encrypted)",
                  satchel_app(type="cookie", encrypt_key=ENCRYPT_KEY), unavailable=satchel_cookie_unavailable()),
    ]
    del satchel
    c += raw_floors(redis_url, memcached, sqlite("raw.sqlite"))
    return c


# -- raw floors: the server work alone ----------------------------------------------

RAW_VALUE = b'S1 1700000000.000 1700000000.000\n{"d":{"count":12345}}'


def _nothing() -> None:
    pass


NO_WORK: dict[str, Callable[[], None]] = {"incr": _nothing, "read": _nothing}


def session_work() -> dict[str, Callable[[], None]]:
    """What satchel memory's manager does in a changing and in a read-only request
    (cookie, load, change, commit; no Pyramid glue), to run between raw commands."""
    from satchel.config import parse_session_settings
    from satchel.manager import build_manager

    manager = build_manager(parse_session_settings(
        {"session.type": "memory", "session.secret": SECRET, "session.key": COOKIE_NAME}))
    session = manager.open_request(None)
    session["count"] = 0
    header = manager.commit(session)[0].split(";", 1)[0]

    def incr() -> None:
        session = manager.open_request(header)
        session["count"] = session.get("count", 0) + 1
        manager.commit(session)

    def read() -> None:
        manager.commit(manager.open_request(header))

    return {"incr": incr, "read": read}


def _read_then_write(read: Callable[[], T], write: Callable[[T], object],
                     work: dict[str, Callable[[], None]]) -> dict[str, Callable[[], None]]:
    """The two views' operations from a client's read and its conditional write: ``incr``
    reads, runs ``work["incr"]`` and writes with what it read; ``read`` reads and runs
    ``work["read"]``."""
    between, after_read = work["incr"], work["read"]

    def incr() -> None:
        found = read()
        between()
        write(found)

    def read_only() -> None:
        read()
        after_read()

    return {"incr": incr, "read": read_only}


def _refused(what: str) -> RuntimeError:
    return RuntimeError(f"the raw conditional write was refused ({what}): another client wrote meanwhile?")


#: The record's lifetime the raw writes set, as satchel's default session timeout.
RAW_TTL = 1200


def redis_ops(redis_url: str, work: dict[str, Callable[[], None]] = NO_WORK) -> dict[str, Callable[[], None]]:
    """satchel's two Redis commands through redis-py's public client: ``HMGET`` of
    version, data and expiry, then ``EVALSHA`` of satchel's compare-and-set script
    (registered with ``register_script``) with the version read, its reply checked."""
    import redis

    from satchel.stores.redis import SCRIPT

    client = redis.Redis.from_url(redis_url)
    script = client.register_script(SCRIPT)
    key = "bench:raw"
    client.delete(key)
    client.hset(key, mapping={"v": "0", "d": RAW_VALUE, "e": ""})
    ttl_ms = str(RAW_TTL * 1000)

    def read() -> Any:
        return client.hmget(key, "v", "d", "e")[0]

    def write(version: Any) -> None:
        expires = str(int(time.time() * 1000) + RAW_TTL * 1000)
        if not script(keys=(key,), args=("save", ttl_ms, expires, os.urandom(8).hex(), RAW_VALUE, version)):
            raise _refused("EVALSHA")

    return _read_then_write(read, write, work)


def redis_unconditional_ops(redis_url: str) -> dict[str, Callable[[], None]]:
    """The peers' two Redis commands through the same client: ``GET``, then an
    unconditional ``SET`` with a TTL (pyramid_session_redis sends ``SETEX``,
    Beaker ``SET``). Beside satchel's ``HMGET`` and ``EVALSHA``, in the same run,
    this row tells what the compare-and-set costs by itself."""
    import redis

    client = redis.Redis.from_url(redis_url)
    key = "bench:raw-unconditional"
    client.set(key, RAW_VALUE, ex=RAW_TTL)

    def read() -> Any:
        return client.get(key)

    def write(_: Any) -> None:
        if not client.set(key, RAW_VALUE, ex=RAW_TTL):
            raise _refused("SET")

    return _read_then_write(read, write, NO_WORK)


def memcached_ops(memcached: str, work: dict[str, Callable[[], None]] = NO_WORK) -> dict[str, Callable[[], None]]:
    """satchel's two memcached commands through pymemcache's public client: ``gets``,
    then ``cas`` with the CAS value read, its reply read and checked."""
    from pymemcache.client.base import Client

    host, _, port = memcached.rpartition(":")
    client = Client((host, int(port)), no_delay=True, default_noreply=False)
    key = "bench:raw"
    client.set(key, RAW_VALUE, RAW_TTL + 1)

    def read() -> Any:
        return client.gets(key)[1]

    def write(cas: Any) -> None:
        if not client.cas(key, RAW_VALUE, cas, RAW_TTL + 1, noreply=False):
            raise _refused("cas")

    return _read_then_write(read, write, work)


def sql_ops(sql_url: str, work: dict[str, Callable[[], None]] = NO_WORK) -> dict[str, Callable[[], None]]:
    """satchel's two SQL statements through SQLAlchemy Core, each on its own
    ``engine.connect()`` of an engine set up as satchel's (autocommit, no reset on
    return, the same SQLite pragmas): the ``SELECT`` of a live row, then the
    ``UPDATE`` conditional on the version read, its row count checked."""
    import sqlalchemy as sa

    engine = sa.create_engine(sql_url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None)

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 5000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", pragmas)

    meta = sa.MetaData()
    table = sa.Table("raw", meta, sa.Column("key", sa.String(250), primary_key=True),
                     sa.Column("data", sa.LargeBinary, nullable=False),
                     sa.Column("version", sa.BigInteger, nullable=False),
                     sa.Column("expires_at", sa.BigInteger, index=True))
    meta.create_all(engine)
    c, bind = table.c, sa.bindparam
    live = sa.or_(c.expires_at.is_(None), c.expires_at > bind("now", type_=sa.BigInteger()))
    select = sa.select(c.data, c.version, c.expires_at).where(c.key == bind("k"), live)
    update = (table.update().where(c.key == bind("k"), c.version == bind("expected"), live)
              .values(data=bind("new_data"), expires_at=bind("new_expires"), version=bind("new_version")))
    with engine.connect() as conn:
        conn.execute(table.delete())
        conn.execute(table.insert().values(key="k", data=RAW_VALUE, version=1, expires_at=None))

    def read() -> Any:
        with engine.connect() as conn:
            row = conn.execute(select, {"k": "k", "now": int(time.time() * 1000)}).first()
        return row[1]

    def write(version: Any) -> None:
        now = int(time.time() * 1000)
        params = {"k": "k", "now": now, "expected": version, "new_data": RAW_VALUE,
                  "new_expires": now + RAW_TTL * 1000, "new_version": int.from_bytes(os.urandom(7), "big")}
        with engine.connect() as conn:
            if conn.execute(update, params).rowcount != 1:
                raise _refused("UPDATE")

    return _read_then_write(read, write, work)


RAW_LABELS = {
    "redis": "raw redis-py HMGET (+EVALSHA)",
    "memcached": "raw pymemcache gets (+cas)",
    "sql": "raw SQLAlchemy SELECT (+UPDATE)",
}


def raw_floors(redis_url: str | None, memcached: str | None, sql_url: str) -> list[Contender]:
    """The commands satchel sends to each shared store, through the driver's public
    calls: in the floor's view, alone in a loop, and in the view with satchel
    memory's session work between the read and the write.

    The last one is the yardstick of satchel's shared stores: what a request costs
    with the same round trips and the same session work, and nothing of satchel's
    store layer. It also tells how much that Python work costs once a request waits
    on a server (caches cooled by the server and the network stack meanwhile)."""
    out = []
    sources: list[tuple[str, Callable[..., dict[str, Callable[[], None]]], str | None, str | None]] = [
        ("redis", redis_ops, redis_url, None if redis_url else "no Redis server reachable"),
        ("memcached", memcached_ops, memcached, None if memcached else "no memcached server reachable"),
        ("sql", sql_ops, sql_url, None),
    ]
    for store, make_ops, address, unavailable in sources:
        label = RAW_LABELS[store]
        ops = partial(make_ops, address)
        out.append(Contender(f"raw-{store}", "raw", store, label, build=raw_view_app(ops), counter=store,
                             unavailable=unavailable))
        out.append(Contender(f"raw-{store}-loop", "rawloop", store, f"{label}, loop", build=ops, counter=store,
                             unavailable=unavailable))
        out.append(Contender(f"raw-{store}-work", "rawwork", store, f"{label} + satchel memory's work",
                             build=raw_view_app(lambda ops=ops: ops(session_work())), counter=store,
                             unavailable=unavailable))
    if redis_url:
        out.append(Contender("raw-redis-unconditional", "raw", "redis", "raw redis-py GET (+SET), the peers' commands",
                             build=raw_view_app(partial(redis_unconditional_ops, redis_url)), counter="redis"))
    return out


def raw_view_app(build_ops: Callable[[], dict[str, Callable[[], None]]]) -> Callable[[], Any]:
    """The floor's app with views that run the raw commands: what they add to a request."""

    def build() -> Any:
        ops = build_ops()
        return build_app(None, views=(_running(ops["incr"]), _running(ops["read"])))

    return build


def _running(op: Callable[[], None]) -> Callable[[Any], Response]:
    """A view that runs ``op`` and answers like the floor's."""

    def view(request: Any) -> Response:
        op()
        return floor_view(request)

    return view
