"""Metrics and spans of session requests, read back through the OpenTelemetry SDK's
in-memory exporter and metric reader: a login, a changing request, a conflict, an
outage, on a real Redis whose driver spans nest under satchel's."""

from __future__ import annotations

import asyncio
import math
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from satchel.aio.manager import AsyncSessionManager
from satchel.config import SessionConfig, parse_session_settings
from satchel.manager import SessionManager
from satchel.stores.aio import AsyncMemoryStore
from satchel.stores.aio.redis import AsyncRedisStore
from satchel.stores.memory import MemoryStore
from satchel.stores.redis import RedisStore
from satchel.telemetry import SessionTelemetry
from satchel.testing import FakeClock
from tests.support.apps import BASE_SETTINGS
from tests.support.servers import free_port
from tests.support.services import REDIS_URL, need, port_open


@dataclass
class Otel:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def telemetry(self, store_name: str) -> SessionTelemetry:
        return SessionTelemetry(
            store_name,
            meter_provider=self.meter_provider,
            tracer_provider=self.tracer_provider,
            durations_per_second=math.inf,
        )

    def finished(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans.get_finished_spans() if span.name == name]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for found in scope.metrics
            if found.name == metric
            for point in found.data.data_points
        ]

    def events(self) -> dict[str, int]:
        return {p.attributes["satchel.event"]: p.value for p in self.points("satchel.session.events")}

    def operations(self) -> dict[tuple[str, str], int]:
        return {
            (p.attributes["satchel.operation"], p.attributes["satchel.outcome"]): p.value
            for p in self.points("satchel.session.operations")
        }


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Otel(spans, reader, tracer_provider, meter_provider)
    meter_provider.shutdown()


def memory_manager(otel: Otel, clock: FakeClock, **settings: str) -> SessionManager:
    config = parse_session_settings({**BASE_SETTINGS, "session.type": "memory", **settings})
    store = MemoryStore(clock=clock)
    return SessionManager(config, store, clock=clock, telemetry=otel.telemetry(store.name))


def cookie_of(headers: list[str]) -> str:
    return headers[0].split(";", 1)[0]


def test_login_creates_a_session_and_says_so(otel: Otel, clock: FakeClock) -> None:
    manager = memory_manager(otel, clock)
    session = manager.open_request(None)
    session.bind_user("ada")
    session["cart"] = 3
    manager.commit(session)

    (opened,) = otel.finished("satchel.session.open")
    (committed,) = otel.finished("satchel.session.commit")
    assert opened.attributes is not None and committed.attributes is not None
    assert opened.attributes["satchel.outcome"] == "new"
    assert opened.attributes["satchel.round_trips"] == 0
    assert committed.attributes["satchel.outcome"] == "written"
    assert committed.attributes["satchel.store"] == "memory"
    assert [event.name for event in committed.events] == ["satchel.session.created"]
    assert otel.events() == {"created": 1}
    # the user's index is read and written, then the session created
    assert otel.operations() == {("load", "miss"): 1, ("save", "ok"): 2}


def test_changing_request_loads_once_and_writes_once(otel: Otel, clock: FakeClock) -> None:
    manager = memory_manager(otel, clock)
    first = manager.open_request(None)
    first["n"] = 1
    cookie = cookie_of(manager.commit(first))
    otel.spans.clear()

    again = manager.open_request(cookie)
    again["n"] = 2
    manager.commit(again)

    (opened,) = otel.finished("satchel.session.open")
    (committed,) = otel.finished("satchel.session.commit")
    assert opened.attributes is not None and committed.attributes is not None
    assert (opened.attributes["satchel.outcome"], opened.attributes["satchel.round_trips"]) == ("loaded", 1)
    assert (committed.attributes["satchel.outcome"], committed.attributes["satchel.round_trips"]) == ("written", 1)
    operations = otel.operations()
    assert (operations[("load", "hit")], operations[("save", "ok")]) == (1, 2)


def test_conflict_is_counted_merged_and_spanned(otel: Otel, clock: FakeClock) -> None:
    manager = memory_manager(otel, clock)
    first = manager.open_request(None)
    first["a"] = 0
    cookie = cookie_of(manager.commit(first))
    left, right = manager.open_request(cookie), manager.open_request(cookie)
    left["a"], right["a"], right["b"] = 1, 2, 2
    manager.commit(left)
    otel.spans.clear()
    manager.commit(right)

    (committed,) = otel.finished("satchel.session.commit")
    assert committed.attributes is not None
    assert committed.attributes["satchel.outcome"] == "merged"
    assert committed.attributes["satchel.round_trips"] == 3  # save, reload, save
    assert [event.name for event in committed.events] == [
        "satchel.session.conflict",
        "satchel.session.merged",
        "satchel.session.overwritten",
    ]
    assert otel.events() == {"created": 1, "conflict": 1, "merged": 1, "overwritten": 1}
    assert otel.operations()[("save", "conflict")] == 1


def test_retries_exhausted_is_counted(otel: Otel, clock: FakeClock) -> None:
    manager = memory_manager(otel, clock, **{"session.merge_retries": "0"})
    first = manager.open_request(None)
    first["a"] = 0
    cookie = cookie_of(manager.commit(first))
    left, right = manager.open_request(cookie), manager.open_request(cookie)
    left["a"], right["a"] = 1, 2
    manager.commit(left)
    with pytest.raises(Exception, match="kept changing"):
        manager.commit(right)

    committed = otel.finished("satchel.session.commit")[-1]
    assert committed.attributes is not None
    assert committed.attributes["satchel.outcome"] == "error"
    assert committed.attributes["error.type"] == "SessionConflict"
    assert otel.events()["retries_exhausted"] == 1


def test_bad_cookies_are_counted_by_reason(otel: Otel, clock: FakeClock) -> None:
    manager = memory_manager(otel, clock)
    for _ in range(5):
        manager.open("not-a-signed-id")
    (point,) = otel.points("satchel.session.events")
    assert point.attributes["satchel.reason"] == "bad signature"
    assert point.value == 5


def test_records_refused_by_the_cap_are_counted(otel: Otel, clock: FakeClock) -> None:
    manager = memory_manager(otel, clock, **{"session.max_records": "1"})
    for _ in range(3):
        session = manager.open_request(None)
        session["x"] = 1
        manager.commit(session)
    assert otel.events() == {"created": 1, "capped": 2}


def test_invalidate_regenerate_and_revoke_are_counted(otel: Otel, clock: FakeClock) -> None:
    manager = memory_manager(otel, clock)
    phone = manager.open_request(None)
    phone.bind_user("ada")
    manager.commit(phone)
    laptop = manager.open_request(None)
    laptop.bind_user("ada")
    cookie = cookie_of(manager.commit(laptop))
    laptop = manager.open_request(cookie)
    laptop.regenerate_id()
    cookie = cookie_of(manager.commit(laptop))
    laptop = manager.open_request(cookie)
    assert manager.revoke_user_sessions("ada", keep=laptop) == 1
    laptop.invalidate()
    manager.commit(laptop)
    assert otel.events() == {"created": 2, "regenerated": 1, "revoked": 1, "invalidated": 1}


@pytest.fixture
def unreachable_redis() -> SessionConfig:
    """Sessions on a Redis nobody listens to, served fresh while it is down."""
    return parse_session_settings(
        {
            **BASE_SETTINGS,
            "session.type": "redis",
            "session.on_store_error": "fresh",
            "session.url": f"redis://127.0.0.1:{free_port()}/0",
            "session.socket_timeout": "0.2",
        }
    )


def test_outage_marks_the_span_and_counts_the_error(
    otel: Otel, clock: FakeClock, unreachable_redis: SessionConfig
) -> None:
    config = unreachable_redis
    store = RedisStore.from_options(config.store.options)
    manager = SessionManager(config, store, clock=clock, telemetry=otel.telemetry(store.name))
    signed = manager.policy.signer.sign(secrets.token_urlsafe(32))  # type: ignore[union-attr]
    session = manager.open(signed)

    assert session.store_unavailable
    (opened,) = otel.finished("satchel.session.open")
    assert opened.attributes is not None
    assert opened.attributes["satchel.outcome"] == "unavailable"
    assert [event.name for event in opened.events] == ["satchel.session.outage"]
    (load,) = otel.points("satchel.session.operation.duration")
    assert load.attributes["satchel.outcome"] == "error"
    assert load.attributes["error.type"] == "StoreUnavailable"
    assert otel.events() == {"outage": 1}
    store.close()


def test_redis_commands_are_children_of_the_session_spans(otel: Otel, clock: FakeClock) -> None:
    need(port_open("127.0.0.1", 6379), "Redis at 127.0.0.1:6379")
    instrumentor = RedisInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider)
    try:
        config = parse_session_settings(
            {
                **BASE_SETTINGS,
                "session.type": "redis",
                "session.url": REDIS_URL,
                "session.key_prefix": f"satchel:test:{secrets.token_hex(4)}:",
            }
        )
        store = RedisStore.from_options(config.store.options)
        manager = SessionManager(config, store, clock=clock, telemetry=otel.telemetry(store.name))
        session = manager.open_request(None)
        session["x"] = 1
        cookie = cookie_of(manager.commit(session))
        session = manager.open_request(cookie)
        session.invalidate()
        manager.commit(session)
        store.close()
    finally:
        instrumentor.uninstrument()

    spans = otel.spans.get_finished_spans()
    ours = {span.context.span_id: span for span in spans if span.name.startswith("satchel.session.")}
    driver = [span for span in spans if not span.name.startswith("satchel.session.")]
    assert driver, "the redis instrumentation saw no command"
    for span in driver:
        assert span.parent is not None and span.parent.span_id in ours
    for span in ours.values():
        assert span.attributes is not None
        values = [str(v) for v in span.attributes.values()]
        assert not any(cookie.split("=", 1)[1] in v for v in values)


def timed_opens(otel: Otel, clock: FakeClock, durations_per_second: float, opens: int) -> tuple[int, int, float]:
    """Open ``opens`` unknown sessions: (loads counted, durations recorded, seconds it took)."""
    config = parse_session_settings({**BASE_SETTINGS, "session.type": "memory"})
    store = MemoryStore(clock=clock)
    telemetry = SessionTelemetry(
        store.name, meter_provider=otel.meter_provider, durations_per_second=durations_per_second
    )
    manager = SessionManager(config, store, clock=clock, telemetry=telemetry)
    unknown = manager.policy.signer.sign(secrets.token_urlsafe(32))  # type: ignore[union-attr]
    started = time.perf_counter()
    for _ in range(opens):
        manager.open(unknown)
    elapsed = time.perf_counter() - started
    (loads,) = otel.points("satchel.session.operations")
    (timed,) = otel.points("satchel.session.operation.duration")
    return int(loads.value), int(timed.count), elapsed


def test_durations_recorded_are_capped_per_second_but_operations_counted_exactly(otel: Otel, clock: FakeClock) -> None:
    loads, timed, elapsed = timed_opens(otel, clock, durations_per_second=50, opens=1000)
    assert loads == 1000
    assert 1 <= timed <= 50 * elapsed + 1


def test_every_duration_is_recorded_below_the_cap(otel: Otel, clock: FakeClock) -> None:
    loads, timed, _ = timed_opens(otel, clock, durations_per_second=1e9, opens=200)
    assert loads == timed == 200


def test_the_duration_cap_must_be_positive(otel: Otel) -> None:
    with pytest.raises(ValueError, match="durations_per_second"):
        SessionTelemetry("memory", meter_provider=otel.meter_provider, durations_per_second=0)


def test_no_spans_without_a_tracer_provider(otel: Otel, clock: FakeClock) -> None:
    config = parse_session_settings({**BASE_SETTINGS, "session.type": "memory"})
    store = MemoryStore(clock=clock)
    telemetry = SessionTelemetry(store.name, meter_provider=otel.meter_provider)
    assert not telemetry.tracing()
    manager = SessionManager(config, store, clock=clock, telemetry=telemetry)
    session = manager.open_request(None)
    session["x"] = 1
    manager.commit(session)
    assert otel.events() == {"created": 1}


def test_no_telemetry_when_the_setting_is_off(clock: FakeClock) -> None:
    config = parse_session_settings({**BASE_SETTINGS, "session.type": "memory", "session.telemetry": "false"})
    assert SessionManager(config, MemoryStore(clock=clock), clock=clock).telemetry is None


def test_without_opentelemetry_nothing_is_imported_or_measured() -> None:
    script = """
import sys
import time
sys.modules["opentelemetry"] = None  # as if it were not installed
from satchel.config import parse_session_settings
from satchel.manager import SessionManager
from tests.support.apps import BASE_SETTINGS
manager = SessionManager(parse_session_settings({**BASE_SETTINGS, "session.type": "memory"}))
session = manager.open_request(None)
session["x"] = 1
manager.commit(session)
assert manager.telemetry is None
assert not [name for name in sys.modules if name.startswith("opentelemetry.")]
"""
    subprocess.run([sys.executable, "-c", script], check=True)


def test_telemetry_is_off_by_default_without_a_configured_provider(clock: FakeClock) -> None:
    config = parse_session_settings({**BASE_SETTINGS, "session.type": "memory"})
    assert config.telemetry is None
    assert SessionManager(config, clock=clock).telemetry is None


def test_two_managers_on_one_meter_both_report_and_add_up(otel: Otel, clock: FakeClock) -> None:
    config = parse_session_settings({**BASE_SETTINGS, "session.type": "memory"})
    managers = [
        SessionManager(config, MemoryStore(clock=clock), clock=clock, telemetry=otel.telemetry("memory"))
        for _ in range(2)
    ]
    for manager in managers:
        session = manager.open(None)
        session["a"] = 1
        manager.commit(session)
    assert otel.operations()[("save", "ok")] == 2
    assert otel.events()["created"] == 2


def test_durations_fall_in_buckets_of_seconds(otel: Otel, clock: FakeClock) -> None:
    manager = memory_manager(otel, clock)
    session = manager.open(None)
    session["a"] = 1
    manager.commit(session)
    points = otel.points("satchel.session.operation.duration")
    assert points
    for timed in points:
        assert timed.explicit_bounds[0] <= 0.001 and timed.explicit_bounds[-1] >= 1
        # memory store operations take well under 10 ms: they fall below that bound
        assert sum(timed.bucket_counts[: timed.explicit_bounds.index(0.01) + 1]) == timed.count


# -- the async manager reports the same ------------------------------------------------


def async_memory_manager(otel: Otel, clock: FakeClock) -> AsyncSessionManager:
    config = parse_session_settings({**BASE_SETTINGS, "session.type": "memory"})
    store = AsyncMemoryStore(clock=clock)
    return AsyncSessionManager(config, store, clock=clock, telemetry=otel.telemetry(store.name))


def test_async_manager_spans_counts_and_merges_like_the_sync_one(otel: Otel, clock: FakeClock) -> None:
    async def visit() -> None:
        manager = async_memory_manager(otel, clock)
        first = await manager.open_request(None)
        first["a"] = 0
        cookie = cookie_of(await manager.commit(first))
        left, right = await manager.open_request(cookie), await manager.open_request(cookie)
        left["a"], right["a"], right["b"] = 1, 2, 2
        await manager.commit(left)
        otel.spans.clear()
        await manager.commit(right)

    asyncio.run(visit())
    (committed,) = otel.finished("satchel.session.commit")
    assert committed.attributes is not None
    assert committed.attributes["satchel.outcome"] == "merged"
    assert committed.attributes["satchel.round_trips"] == 3  # save, reload, save
    assert otel.events() == {"created": 1, "conflict": 1, "merged": 1, "overwritten": 1}
    # the record cap is counted before the first save
    assert otel.operations() == {("count", "ok"): 1, ("load", "hit"): 3, ("save", "ok"): 3, ("save", "conflict"): 1}


def test_async_manager_counts_an_outage_without_tracing(
    otel: Otel, clock: FakeClock, unreachable_redis: SessionConfig
) -> None:
    config = unreachable_redis
    store = AsyncRedisStore.from_options(config.store.options)
    telemetry = SessionTelemetry(store.name, meter_provider=otel.meter_provider, durations_per_second=math.inf)
    manager = AsyncSessionManager(config, store, clock=clock, telemetry=telemetry)
    assert not telemetry.tracing()
    signed = manager.policy.signer.sign(secrets.token_urlsafe(32))  # type: ignore[union-attr]

    session = asyncio.run(manager.open(signed))

    assert session.store_unavailable
    assert otel.events() == {"outage": 1}
    (load,) = otel.points("satchel.session.operation.duration")
    assert (load.count, load.attributes["satchel.outcome"]) == (1, "error")
    assert load.attributes["error.type"] == "StoreUnavailable"
    assert otel.spans.get_finished_spans() == ()


def test_cookie_sessions_count_creations_refusals_and_invalidations(otel: Otel, clock: FakeClock) -> None:
    config = parse_session_settings(
        {**BASE_SETTINGS, "session.type": "cookie", "session.encrypt_key": "telemetry-cookie-key-Qm7Xw2Lp9Zr4Tk8Vb3"}
    )
    manager = SessionManager(config, clock=clock, telemetry=otel.telemetry("cookie"))
    session = manager.open_request(None)
    session["n"] = 1
    cookie = cookie_of(manager.commit(session))
    name, _, value = cookie.partition("=")
    manager.open_request(f"{name}={value[:-4]}AAAA")  # tampered
    again = manager.open_request(cookie)
    again.invalidate()
    assert manager.commit(again)[0].startswith(f"{name}=;")

    assert otel.events() == {"created": 1, "refused": 1, "invalidated": 1}
    (refused,) = (p for p in otel.points("satchel.session.events") if p.attributes["satchel.event"] == "refused")
    assert refused.attributes["satchel.reason"]
    assert [span.attributes["satchel.outcome"] for span in otel.finished("satchel.session.open")] == [
        "new",
        "new",
        "loaded",
    ]
