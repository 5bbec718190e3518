"""Metrics and traces through OpenTelemetry's API, when it is installed.

Without ``opentelemetry-api`` nothing here is imported by the rest of satchel
and nothing is measured: :func:`session_telemetry` answers None and the runner
takes its plain path. With it, instruments come from the global providers (or
the ones given), so an application that configures no SDK pays for the API's
no-op instruments only.

Names and units follow OpenTelemetry's conventions: durations in seconds,
``error.type`` for failures, counts as ``{event}``. No attribute ever holds a
session id, a cookie, a key or a secret.
"""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .policy.ops import Count, Delete, DeleteBeaker, Load, Op, Pause, Purge, ReadBeaker, Save, Touch

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from .stores.base import Store

try:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import Observation
except ImportError:  # pragma: no cover - exercised where OpenTelemetry is absent
    metrics = trace = None  # type: ignore[assignment]

#: The share of store operations whose duration goes into the histogram.
DURATION_SAMPLE = 0.1
#: Seconds between looks at whether an SDK has set the global tracer provider.
PROVIDER_CHECK_SECONDS = 5.0

SCOPE = "satchel"

#: Store operations by their runner's name for them.
OPERATION_NAMES: dict[type, str] = {
    Load: "load",
    Save: "save",
    Touch: "touch",
    Delete: "delete",
    Count: "count",
    Purge: "purge",
    ReadBeaker: "beaker_read",
    DeleteBeaker: "beaker_delete",
}


def available() -> bool:
    """True when ``opentelemetry-api`` can be imported."""
    return metrics is not None


#: The modules of the providers the OpenTelemetry API installs by itself (proxies
#: and no-ops): with only those, every measurement would go nowhere.
_API_DEFAULTS = ("opentelemetry.metrics", "opentelemetry.trace")


def configured() -> bool:
    """True when an application set a meter or tracer provider of its own (an SDK,
    ``opentelemetry-instrument``) before satchel started: then measurements have
    somewhere to go."""
    if metrics is None or trace is None:
        return False
    providers = (metrics.get_meter_provider(), trace.get_tracer_provider())
    return any(not type(provider).__module__.startswith(_API_DEFAULTS) for provider in providers)


def wanted(setting: bool | None) -> bool:
    """Whether telemetry is on: ``True``/``False`` as set; ``None`` (auto, the default)
    when OpenTelemetry is installed and configured, so an application that reports
    nothing pays nothing."""
    if setting is None:
        return available() and configured()
    return setting and available()


def outcome_of(op: Op, reply: Any) -> str:
    """What a store operation's result means: a load's hit or miss, a save's conflict."""
    if isinstance(op, Load):
        return "miss" if reply is None else "hit"
    if isinstance(op, Save):
        return "conflict" if reply is None else "ok"
    if isinstance(op, Touch):
        return "ok" if reply else "miss"
    return "ok"


class Counts:
    """Counts kept in the process and handed to OpenTelemetry when a reader collects:
    an increment costs a dictionary update, not an SDK measurement."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[tuple[str, str], ...], float] = {}

    def add(self, attributes: tuple[tuple[str, str], ...], amount: float = 1) -> None:
        with self._lock:
            self._counts[attributes] = self._counts.get(attributes, 0) + amount

    def snapshot(self) -> list[tuple[tuple[tuple[str, str], ...], float]]:
        with self._lock:
            return list(self._counts.items())


class Reported:
    """Every :class:`Counts` reporting under one observable counter of one meter.

    A meter keeps one instrument per name, with the callback it was first created
    with: several session managers or cache regions in one process must report
    through one counter, their counts added up where their attributes meet.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: list[Counts] = []

    def add(self, counts: Counts) -> None:
        with self._lock:
            self._sources.append(counts)

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            sources = list(self._sources)
        totals: dict[tuple[tuple[str, str], ...], float] = {}
        for counts in sources:
            for attributes, value in counts.snapshot():
                totals[attributes] = totals.get(attributes, 0) + value
        return [Observation(value, dict(attributes)) for attributes, value in totals.items()]


_reported: weakref.WeakKeyDictionary[Meter, dict[str, Reported]] = weakref.WeakKeyDictionary()
_reported_lock = threading.Lock()


def report(meter: Meter, name: str, counts: Counts, *, unit: str, description: str) -> None:
    """Have ``counts`` reported by ``meter``'s observable counter ``name``, made on first use."""
    with _reported_lock:
        by_name = _reported.setdefault(meter, {})
        reported = by_name.get(name)
        if reported is None:
            reported = by_name[name] = Reported()
            meter.create_observable_counter(name, callbacks=[reported.observe], unit=unit, description=description)
    reported.add(counts)


#: Bucket bounds of the duration histogram, in seconds: store operations take from
#: a few tens of microseconds (memory, a local Redis) to seconds (a stalled server).
DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class SessionTelemetry:
    """The instruments of one session store: operation counts and durations, policy
    decisions, spans.

    Counts are exact and cheap (see :class:`Counts`); a duration is recorded in the
    histogram for a random ``duration_sample`` share of operations, which leaves its
    percentiles unbiased and its cost a fraction of an SDK measurement per operation.
    Spans are made only when a tracer provider is configured (or given).
    It is also the policy's observer (:mod:`satchel.policy.events`): each decision is
    counted and, inside a traced open or commit, added to that span as an event.
    """

    def __init__(
        self,
        store_name: str,
        *,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
        duration_sample: float = DURATION_SAMPLE,
    ) -> None:
        if metrics is None or trace is None:
            raise RuntimeError("satchel's telemetry needs opentelemetry-api")
        from . import __version__  # the package imports this module while it starts

        meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self.store_name = store_name
        self.duration_sample = duration_sample
        self.operations = Counts()
        self.events = Counts()
        report(
            meter,
            "satchel.session.operations",
            self.operations,
            unit="{operation}",
            description="Session store operations, by store, operation and outcome",
        )
        report(
            meter,
            "satchel.session.events",
            self.events,
            unit="{event}",
            description="Decisions of the session policy: conflicts, merges, sessions created, cookies refused",
        )
        self.duration = meter.create_histogram(
            "satchel.session.operation.duration",
            unit="s",
            description="Duration of session store operations (a sample of them), by store, operation and outcome",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        self._always_trace = tracer_provider is not None
        self._provider_checked_at = float("-inf")
        self._operation_attributes: dict[tuple[type, str, str | None], tuple[tuple[str, str], ...]] = {}
        self._attributes: dict[tuple[tuple[str, str | None], ...], tuple[tuple[str, str], ...]] = {}

    def attributes(self, *pairs: tuple[str, str | None]) -> tuple[tuple[str, str], ...]:
        """One data point's attributes with the store's name, made once and reused."""
        key = tuple(pairs)
        found = self._attributes.get(key)
        if found is None:
            found = (("satchel.store", self.store_name), *((k, v) for k, v in pairs if v is not None))
            self._attributes[key] = found
        return found

    def event(self, name: str, reason: str | None = None, *, count: int = 1) -> None:
        self.events.add(self.attributes(("satchel.event", name), ("satchel.reason", reason)), count)
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(f"satchel.session.{name}", {"satchel.reason": reason} if reason else {})

    def record(self, kind: type, seconds: float, outcome: str, error: str | None = None) -> None:
        """One store operation of class ``kind``, its duration and outcome."""
        key = (kind, outcome, error)
        attributes = self._operation_attributes.get(key)
        if attributes is None:
            attributes = self._operation_attributes[key] = self.attributes(
                ("satchel.operation", OPERATION_NAMES[kind]), ("satchel.outcome", outcome), ("error.type", error)
            )
        self.operations.add(attributes)
        if random.random() < self.duration_sample:
            self.duration.record(seconds, dict(attributes))

    def tracing(self) -> bool:
        """True when spans go somewhere: a tracer provider was given, or an SDK set the
        global one. Without one, even a no-op span costs a context switch per request.
        The global provider is looked at again every few seconds, not per request."""
        if self._always_trace:
            return True
        now = time.monotonic()
        if now >= self._provider_checked_at + PROVIDER_CHECK_SECONDS:
            self._provider_checked_at = now
            provider = trace.get_tracer_provider()
            self._always_trace = not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))
        return self._always_trace

    @contextmanager
    def span(self, name: str) -> Iterator[Trip]:
        """A span named ``satchel.session.<name>`` around one open or commit; the driver's
        spans inside it are its children."""
        with self.tracer.start_as_current_span(
            f"satchel.session.{name}", attributes={"satchel.store": self.store_name}
        ) as span:
            trip = Trip(self, span)
            try:
                yield trip
            except Exception as exc:
                trip.finish("error", type(exc).__qualname__)
                raise
            trip.finish(trip.outcome or trip.summary())


class Trip:
    """The store operations of one traced open or commit: timed one by one, counted
    for the span (``satchel.round_trips``, ``satchel.outcome``)."""

    __slots__ = ("conflicts", "deletes", "outcome", "round_trips", "saves", "span", "telemetry", "touches")

    def __init__(self, telemetry: SessionTelemetry, span: Span | None) -> None:
        self.telemetry = telemetry
        self.span = span
        #: Set by the caller when it knows better than the operations tell (a load's result).
        self.outcome: str | None = None
        self.round_trips = self.saves = self.conflicts = self.deletes = self.touches = 0

    def perform(self, perform: Callable[[Store, Op], Any], store: Store, op: Op) -> Any:
        """``perform(store, op)``, timed and counted."""
        kind = type(op)
        if kind is Pause:
            return perform(store, op)
        self.round_trips += 1
        started = time.perf_counter()
        try:
            reply = perform(store, op)
        except Exception as exc:
            self.telemetry.record(kind, time.perf_counter() - started, "error", type(exc).__qualname__)
            raise
        outcome = outcome_of(op, reply)
        self.telemetry.record(kind, time.perf_counter() - started, outcome)
        if kind is Save:
            self.saves += outcome == "ok"
            self.conflicts += outcome == "conflict"
        elif kind is Delete:
            self.deletes += 1
        elif kind is Touch:
            self.touches += 1
        return reply

    def summary(self) -> str:
        """A commit's outcome from what it did: written (after merging, when it conflicted),
        deleted, renewed, or nothing to do."""
        if self.saves:
            return "merged" if self.conflicts else "written"
        if self.deletes:
            return "deleted"
        if self.touches:
            return "renewed"
        return "unchanged"

    def finish(self, outcome: str, error: str | None = None) -> None:
        if self.span is None:
            return
        self.span.set_attribute("satchel.outcome", outcome)
        self.span.set_attribute("satchel.round_trips", self.round_trips)
        if error is not None:
            self.span.set_attribute("error.type", error)
            if trace is not None:
                self.span.set_status(trace.Status(trace.StatusCode.ERROR, error))


def session_telemetry(store: Store | None, enabled: bool | None = None) -> SessionTelemetry | None:
    """The telemetry of a manager's store, or None when off (see :func:`wanted`)."""
    if not wanted(enabled):
        return None
    return SessionTelemetry(store.name if store is not None else "cookie")


class CacheTelemetry:
    """The counts of one cache region: ``satchel.cache.events`` by event (hit, miss,
    created, lock_wait, generation_bump, backend_error), kept as :class:`Counts`."""

    def __init__(self, region: str, *, meter_provider: MeterProvider | None = None) -> None:
        if metrics is None:
            raise RuntimeError("satchel's telemetry needs opentelemetry-api")
        from . import __version__

        meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self.region = region
        self.counts = Counts()
        report(
            meter,
            "satchel.cache.events",
            self.counts,
            unit="{event}",
            description="Cache region lookups by outcome, values created, lock waits, invalidations, errors",
        )
        self._attributes: dict[str, tuple[tuple[str, str], ...]] = {}

    def event(self, name: str, count: int = 1) -> None:
        attributes = self._attributes.get(name)
        if attributes is None:
            attributes = self._attributes[name] = (("satchel.cache.region", self.region), ("satchel.event", name))
        self.counts.add(attributes, count)


def cache_telemetry(region: str, enabled: bool | None = None) -> CacheTelemetry | None:
    """The counter of a cache region, or None when off (see :func:`wanted`)."""
    if not wanted(enabled):
        return None
    return CacheTelemetry(region)


__all__ = [
    "DURATION_SAMPLE",
    "SCOPE",
    "CacheTelemetry",
    "Counts",
    "SessionTelemetry",
    "Trip",
    "available",
    "cache_telemetry",
    "outcome_of",
    "session_telemetry",
]
