"""Drivers' own instrumentation sees every command a store sends.

The stores call their drivers' public APIs only, so OpenTelemetry's
instrumentation for a driver traces each store command of a session request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from satchel.testing import new_key
from tests.support.apps import make_app, store_of
from tests.support.servers import RedisServer


@pytest.fixture
def redis_spans() -> Iterator[InMemorySpanExporter]:
    """redis-py instrumented for the test, its spans kept in memory; uninstrumented afterwards."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = RedisInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield exporter
    instrumentor.uninstrument()
    provider.shutdown()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of the test's own: its statistics count only the store's commands."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def server_commands(server: RedisServer) -> Counter[str]:
    """Top-level commands the server ran: the ones a client can send (not those inside scripts)."""
    import redis

    with redis.Redis(port=server.port) as admin:
        info: dict[str, Any] = admin.info("commandstats")
    calls = Counter({k.removeprefix("cmdstat_"): v["calls"] for k, v in info.items()})
    return Counter({name: calls[name] for name in ("hmget", "evalsha", "script|load", "del") if calls[name]})


def test_redis_session_request_commands_are_all_traced(
    redis_server: RedisServer, redis_spans: InMemorySpanExporter
) -> None:
    app = make_app({"session.type": "redis", "session.url": redis_server.url, "session.key_prefix": "traced:"})
    try:
        app.get("/incr")  # a new session: one conditional write (the server learns the script first)
        first = [span.name for span in redis_spans.get_finished_spans()]
        redis_spans.clear()
        app.get("/incr")  # load, change, conditional write
        app.get("/read")  # load only
        app.get("/invalidate")  # load, delete
        later = [span.name for span in redis_spans.get_finished_spans()]
    finally:
        store_of(app).close()

    assert first == ["EVALSHA", "SCRIPT LOAD", "EVALSHA"]  # NOSCRIPT, then redis-py's Script loads it
    assert later == ["HMGET", "EVALSHA", "HMGET", "HMGET", "DEL"]
    # Every command the server ran for the store has its span.
    assert (
        server_commands(redis_server)
        == Counter({"evalsha": 3, "script|load": 1, "hmget": 3, "del": 1})
        == Counter(name.lower().replace(" ", "|") for name in first + later)
    )


def test_redis_spans_name_the_stores_server(redis_server: RedisServer, redis_spans: InMemorySpanExporter) -> None:
    from satchel.stores.redis import RedisStore

    store = RedisStore.from_options({"url": redis_server.url, "key_prefix": "traced:"})
    try:
        store.load(new_key())
    finally:
        store.close()
    (span,) = redis_spans.get_finished_spans()
    assert span.name == "HMGET"
    assert span.attributes is not None
    assert (span.attributes["db.system"], span.attributes["net.peer.port"]) == ("redis", redis_server.port)
    assert "?" in str(span.attributes["db.statement"]), "arguments (keys, session data) are not exported"
