"""What satchel's telemetry costs: a session request and a cache hit with telemetry
off, on with OpenTelemetry's API only (no SDK configured: no-op instruments), and on
with the SDK recording (a metric reader, spans sampled and batched to a discarding
exporter, as a production exporter would receive them).

    .venv/bin/python bench/telemetry_cost.py [--redis-url redis://127.0.0.1:6379/15] [--rounds 60]

The figures are per call of the session manager (open + commit), not per HTTP request:
the framework's own cost is left out, so the relative overhead here is an upper bound.
Modes run in interleaved rounds in a new random order each round; the table shows the
fastest batch (min of N) and the median batch, in microseconds.
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from satchel.cache import regions_from_settings
from satchel.cache.metrics import MetricsProxy
from satchel.config import parse_session_settings
from satchel.manager import SessionManager
from satchel.telemetry import CacheTelemetry, SessionTelemetry

SECRET = "telemetry-cost-" + "x" * 40


class Discard(SpanExporter):
    def export(self, spans: Sequence[object]) -> SpanExportResult:  # type: ignore[override]
        return SpanExportResult.SUCCESS


def sdk_meters() -> MeterProvider:
    return MeterProvider(metric_readers=[InMemoryMetricReader()])


def sdk_providers() -> tuple[MeterProvider, TracerProvider]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))
    return MeterProvider(metric_readers=[InMemoryMetricReader()]), tracer_provider


def session_requests(settings: dict[str, str], mode: str) -> Callable[[], None]:
    """One changing request (open, change, commit) as a callable."""
    config = parse_session_settings({"session.secret": SECRET, **settings, "session.telemetry": str(mode != "off")})
    telemetry = None
    if mode == "metrics":
        telemetry = SessionTelemetry(settings["session.type"], meter_provider=sdk_meters())
    elif mode == "traces":
        meters, tracers = sdk_providers()
        telemetry = SessionTelemetry(settings["session.type"], meter_provider=meters, tracer_provider=tracers)
    manager = SessionManager(config, telemetry=telemetry)
    first = manager.open_request(None)
    first["n"] = 0
    cookie = manager.commit(first)[0].split(";", 1)[0]

    def request() -> None:
        session = manager.open_request(cookie)
        session["n"] += 1
        manager.commit(session)

    return request


def cache_hits(mode: str) -> Callable[[], None]:
    region = regions_from_settings(
        {"cache.regions": "r", "cache.type": "memory", "cache.telemetry": str(mode != "off")}
    )["r"]
    if mode in ("metrics", "traces"):
        proxy = region.backend
        assert isinstance(proxy, MetricsProxy)
        proxy.telemetry = CacheTelemetry("r", meter_provider=sdk_meters())
    region.set("k", 1)
    return lambda: region.get("k")


def measure(call: Callable[[], None], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", help="also measure sessions on this Redis")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--batch", type=int, default=300, help="calls per batch")
    args = parser.parse_args()
    modes = ("off", "api", "metrics", "traces")
    workloads: dict[str, Callable[[str], Callable[[], None]]] = {
        "session, memory store": lambda mode: session_requests({"session.type": "memory"}, mode),
        "cache hit, memory region": cache_hits,
    }
    if args.redis_url:
        prefix = f"bench:{secrets.token_hex(4)}:"
        workloads["session, redis store"] = lambda mode: session_requests(
            {"session.type": "redis", "session.url": args.redis_url, "session.key_prefix": prefix}, mode
        )
    calls = {(name, mode): make(mode) for name, make in workloads.items() for mode in modes}
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
    for call in calls.values():
        measure(call, args.batch // 3)  # warm up
    for _ in range(args.rounds):
        order = list(calls)
        random.shuffle(order)
        for key in order:
            batch = args.batch // 10 if "redis" in key[0] else args.batch
            samples[key].append(measure(calls[key], batch))
    print(f"{'workload':28} {'mode':7} {'min us':>8} {'median us':>10} {'vs off (min)':>13}")
    for name in workloads:
        base = min(samples[(name, "off")])
        for mode in modes:
            fastest, median = min(samples[(name, mode)]), statistics.median(samples[(name, mode)])
            print(f"{name:28} {mode:7} {fastest:8.2f} {median:10.2f} {(fastest / base - 1) * 100:+12.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
