"""Cache regions counted through OpenTelemetry: hits, misses, values created, lock
waits, generation bumps and backend errors, on memory and on a real Redis."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dogpile.cache.proxy import ProxyBackend
from dogpile.cache.region import CacheRegion
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from satchel.cache import regions_from_settings
from satchel.cache.metrics import MetricsProxy
from satchel.telemetry import CacheTelemetry
from tests.support import services
from tests.support.servers import free_port


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    reader.provider = provider  # type: ignore[attr-defined]
    yield reader
    provider.shutdown()


def region(reader: InMemoryMetricReader, **settings: str) -> CacheRegion:
    """A region ``r`` from settings, its counter reporting to ``reader``."""
    settings = {"telemetry": "true", **settings}
    built = regions_from_settings({"cache.regions": "r", **{f"cache.{k}": v for k, v in settings.items()}})["r"]
    backend = built.backend
    while not isinstance(backend, MetricsProxy):
        assert isinstance(backend, ProxyBackend), "the region is not counted"
        backend = backend.proxied
    backend.telemetry = CacheTelemetry("r", meter_provider=reader.provider)  # type: ignore[attr-defined]
    return built


def counts(reader: InMemoryMetricReader) -> dict[str, int]:
    data = reader.get_metrics_data()
    if data is None:
        return {}
    return {
        point.attributes["satchel.event"]: point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "satchel.cache.events"
        for point in metric.data.data_points
        if point.attributes["satchel.cache.region"] == "r"
    }


def redis_settings() -> dict[str, str]:
    services.need(services.port_open("127.0.0.1", 6379), "Redis")
    return {"type": "ext:redis", "url": services.REDIS_URL, "key_prefix": f"t{secrets.token_hex(4)}:"}


def test_memory_region_counts_misses_creations_and_hits(reader: InMemoryMetricReader) -> None:
    cache = region(reader, type="memory", expire="60")
    assert cache.get_or_create("k", lambda: 1) == 1
    first = counts(reader)
    assert first["created"] == 1 and first["miss"] >= 1 and "hit" not in first
    assert cache.get_or_create("k", lambda: 2) == 1
    assert counts(reader)["hit"] == 1


def test_redis_region_counts_hits_and_generation_bumps(reader: InMemoryMetricReader) -> None:
    cache = region(reader, **redis_settings(), expire="60")
    cache.get_or_create("k", lambda: 1)
    cache.get_or_create("k", lambda: 1)
    cache.invalidate()
    assert cache.get_or_create("k", lambda: 2) == 2
    found = counts(reader)
    assert found["generation_bump"] == 1
    assert found["created"] == 2
    assert found["hit"] >= 1


def test_callers_waiting_for_anothers_value_are_counted(reader: InMemoryMetricReader) -> None:
    cache = region(reader, **redis_settings(), expire="60")
    started = threading.Event()

    def slow() -> int:
        started.set()
        time.sleep(0.3)
        return 1

    first = threading.Thread(target=cache.get_or_create, args=("k", slow))
    first.start()
    started.wait(5)
    results: list[Any] = []
    waiter = threading.Thread(target=lambda: results.append(cache.get_or_create("k", lambda: 2)))
    waiter.start()
    first.join(5)
    waiter.join(5)
    assert results == [1]
    assert counts(reader)["lock_wait"] == 1


def test_backend_errors_are_counted_while_values_are_served_uncached(reader: InMemoryMetricReader) -> None:
    cache = region(reader, type="ext:redis", url=f"redis://127.0.0.1:{free_port()}/0", expire="60")
    assert cache.get_or_create("k", lambda: 1) == 1
    assert counts(reader)["backend_error"] >= 1


def test_region_with_telemetry_off_is_not_wrapped() -> None:
    cache = regions_from_settings({"cache.regions": "r", "cache.type": "memory", "cache.telemetry": "false"})["r"]
    assert not isinstance(cache.backend, ProxyBackend)


def test_regions_are_not_counted_when_no_provider_is_configured() -> None:
    """auto, the default: without a meter or tracer provider of the application's,
    counting would go nowhere, so a region is not wrapped."""
    cache = regions_from_settings({"cache.regions": "r", "cache.type": "memory"})["r"]
    assert not isinstance(cache.backend, ProxyBackend)
