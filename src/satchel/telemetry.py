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

import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from .policy.ops import Count, Delete, DeleteBeaker, Load, Op, Pause, Purge, ReadBeaker, Save, Touch

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider
    from opentelemetry.trace import Span, TracerProvider


try:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import Observation
except ImportError:  # pragma: no cover - exercised where OpenTelemetry is absent
    metrics = trace = None  # type: ignore[assignment]

#: At most this many store operations a second have their duration recorded in
#: the histogram (each recording costs an SDK measurement); below that rate, all of them.
DURATION_SAMPLES_PER_SECOND = 50.0
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


class Timer(Protocol):
    """What a runner hands each store operation to when telemetry is on."""

    def perform(self, perform: Callable[..., Any], store: Any, op: Op, *args: Any) -> Any:
        """``perform(store, op, *args)``, timed and counted."""
        ...

    async def perform_async(self, perform: Callable[..., Awaitable[Any]], store: Any, op: Op, *args: Any) -> Any:
        """``await perform(store, op, *args)``, timed and counted."""
        ...


def available() -> bool:
    """True when ``opentelemetry-api`` can be imported."""
    return metrics is not None


#: The modules of the providers the OpenTelemetry API installs by itself (proxies
#: and no-ops): with only those, every measurement would go nowhere.
_API_DEFAULTS = ("opentelemetry.metrics", "opentelemetry.trace")


def api_default(provider: object) -> bool:
    """True for a stand-in provider of the OpenTelemetry API (a proxy or a no-op): no
    application set one of its own."""
    return type(provider).__module__.startswith(_API_DEFAULTS)


def configured() -> bool:
    """True when an application set a meter or tracer provider of its own (an SDK,
    ``opentelemetry-instrument``) before satchel started: then measurements have
    somewhere to go."""
    if metrics is None or trace is None:
        return False
    return not (api_default(metrics.get_meter_provider()) and api_default(trace.get_tracer_provider()))


def wanted(setting: bool | None) -> bool:
    """Whether telemetry is on: ``True``/``False`` as set; ``None`` (auto, the default)
    when OpenTelemetry is installed and configured, so an application that reports
    nothing pays nothing."""
    if setting is None:
        return available() and configured()
    return setting and available()


#: What a store operation's result means, by operation and by whether the store
#: answered None (or False): a load's hit or miss, a save's conflict, a touch's miss.
#: Every other answer of every other operation is "ok".
OUTCOMES: dict[tuple[type, bool], str] = {
    (Load, False): "hit",
    (Load, True): "miss",
    (Save, False): "ok",
    (Save, True): "conflict",
    (Touch, False): "ok",
    (Touch, True): "miss",
}


Attributes = tuple[tuple[str, str], ...]


class Tally:
    """One count of a :class:`Counts`: the number for one set of attributes."""

    __slots__ = ("_lock", "attributes", "value")

    def __init__(self, attributes: Attributes, lock: threading.Lock) -> None:
        self.attributes = attributes
        self.value: float = 0
        self._lock = lock

    def add(self, amount: float = 1) -> None:
        with self._lock:
            self.value += amount


class Counts:
    """Counts kept in the process and handed to OpenTelemetry when a reader collects:
    an increment costs a locked addition, not an SDK measurement. Code that counts the
    same thing often keeps its :class:`Tally` and skips the lookup."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tallies: dict[Attributes, Tally] = {}

    def tally(self, attributes: Attributes) -> Tally:
        """The count for ``attributes``, made on first use."""
        with self._lock:
            found = self._tallies.get(attributes)
            if found is None:
                found = self._tallies[attributes] = Tally(attributes, self._lock)
            return found

    def add(self, attributes: Attributes, amount: float = 1) -> None:
        self.tally(attributes).add(amount)

    def snapshot(self) -> list[tuple[Attributes, float]]:
        """Every count that is not zero (tallies made ahead of use count nothing yet)."""
        with self._lock:
            return [(tally.attributes, tally.value) for tally in self._tallies.values() if tally.value]


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
        totals: dict[Attributes, float] = {}
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

    Counts are exact and cheap (see :class:`Counts`). Durations go into the
    histogram for every operation up to ``durations_per_second``, then for one
    operation in each 1/``durations_per_second`` of a second: which operation is
    recorded depends on when it started, not on how long it took, so percentiles
    stay unbiased, and the SDK's cost per second is bounded whatever the traffic.
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
        durations_per_second: float = DURATION_SAMPLES_PER_SECOND,
    ) -> None:
        if metrics is None or trace is None:
            raise RuntimeError("satchel's telemetry needs opentelemetry-api")
        from . import __version__  # the package imports this module while it starts

        meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self.store_name = store_name
        if not durations_per_second > 0:
            raise ValueError("durations_per_second must be positive (math.inf: record every duration)")
        #: Seconds between two recorded durations (0.0: record every one).
        self.duration_interval = 1.0 / durations_per_second
        self._next_duration = float("-inf")
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
        self._attributes: dict[tuple[tuple[str, str | None], ...], Attributes] = {}
        #: Each operation's count by (operation, empty answer), made once: counting an
        #: operation costs one lookup and one addition.
        self._outcomes = {
            (kind, empty): self.operations.tally(self._operation(kind, OUTCOMES.get((kind, empty), "ok")))
            for kind in OPERATION_NAMES
            for empty in (False, True)
        }

    def attributes(self, *pairs: tuple[str, str | None]) -> Attributes:
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

    def perform(self, perform: Callable[..., Any], store: Any, op: Op, *args: Any) -> Any:
        """``perform(store, op, *args)``, timed and counted."""
        kind = type(op)
        if kind is Pause:
            return perform(store, op, *args)
        started = time.perf_counter()
        try:
            reply = perform(store, op, *args)
        except Exception as exc:
            self.record(kind, started, failure=exc)
            raise
        self.record(kind, started, reply)
        return reply

    async def perform_async(self, perform: Callable[..., Awaitable[Any]], store: Any, op: Op, *args: Any) -> Any:
        """``await perform(store, op, *args)``, timed and counted (the async runner's :meth:`perform`)."""
        kind = type(op)
        if kind is Pause:
            return await perform(store, op, *args)
        started = time.perf_counter()
        try:
            reply = await perform(store, op, *args)
        except Exception as exc:
            self.record(kind, started, failure=exc)
            raise
        self.record(kind, started, reply)
        return reply

    def _operation(self, kind: type, outcome: str, error: str | None = None) -> Attributes:
        return self.attributes(
            ("satchel.operation", OPERATION_NAMES[kind]), ("satchel.outcome", outcome), ("error.type", error)
        )

    def record(self, kind: type, started: float, reply: Any = None, failure: Exception | None = None) -> None:
        """One store operation of class ``kind``, begun at ``started`` (``time.perf_counter``)
        and just ended with ``reply`` or ``failure``: counted by its outcome, its duration
        recorded when one is due."""
        if failure is None:
            tally = self._outcomes[kind, reply is None or reply is False]
        else:
            tally = self.operations.tally(self._operation(kind, "error", type(failure).__qualname__))
        tally.add()
        if started >= self._next_duration:
            # Two threads may both pass here at once: one duration more, never a wrong one.
            self._next_duration = started + self.duration_interval
            self.duration.record(time.perf_counter() - started, dict(tally.attributes))

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
    """The store operations of one traced open or commit, counted for its span
    (``satchel.round_trips``, ``satchel.outcome``); each is timed by the telemetry."""

    __slots__ = ("conflicts", "deletes", "outcome", "round_trips", "saves", "span", "telemetry", "touches")

    def __init__(self, telemetry: SessionTelemetry, span: Span) -> None:
        self.telemetry = telemetry
        self.span = span
        #: Set by the caller when it knows better than the operations tell (a load's result).
        self.outcome: str | None = None
        self.round_trips = self.saves = self.conflicts = self.deletes = self.touches = 0

    def perform(self, perform: Callable[..., Any], store: Any, op: Op, *args: Any) -> Any:
        """``perform(store, op, *args)``, timed and counted, and counted for the span."""
        self.round_trips += type(op) is not Pause
        reply = self.telemetry.perform(perform, store, op, *args)
        self._count(op, reply)
        return reply

    async def perform_async(self, perform: Callable[..., Awaitable[Any]], store: Any, op: Op, *args: Any) -> Any:
        """``await perform(store, op, *args)``, timed and counted, and counted for the span."""
        self.round_trips += type(op) is not Pause
        reply = await self.telemetry.perform_async(perform, store, op, *args)
        self._count(op, reply)
        return reply

    def _count(self, op: Op, reply: Any) -> None:
        kind = type(op)
        if kind is Save:
            saved = reply is not None
            self.saves += saved
            self.conflicts += not saved
        elif kind is Delete:
            self.deletes += 1
        elif kind is Touch:
            self.touches += 1

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
        self.span.set_attribute("satchel.outcome", outcome)
        self.span.set_attribute("satchel.round_trips", self.round_trips)
        if error is not None:
            self.span.set_attribute("error.type", error)
            if trace is not None:
                self.span.set_status(trace.Status(trace.StatusCode.ERROR, error))


def session_telemetry(store_name: str, enabled: bool | None = None) -> SessionTelemetry | None:
    """The telemetry of a manager's store (``"cookie"`` in cookie mode), or None when
    off (see :func:`wanted`)."""
    if not wanted(enabled):
        return None
    return SessionTelemetry(store_name)


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
        self._tallies: dict[str, Tally] = {}

    def event(self, name: str, count: int = 1) -> None:
        tally = self._tallies.get(name)
        if tally is None:
            attributes = (("satchel.cache.region", self.region), ("satchel.event", name))
            tally = self._tallies[name] = self.counts.tally(attributes)
        tally.add(count)


def cache_telemetry(region: str, enabled: bool | None = None) -> CacheTelemetry | None:
    """The counter of a cache region, or None when off (see :func:`wanted`)."""
    if not wanted(enabled):
        return None
    return CacheTelemetry(region)


__all__ = [
    "DURATION_SAMPLES_PER_SECOND",
    "SCOPE",
    "CacheTelemetry",
    "Counts",
    "SessionTelemetry",
    "Timer",
    "Trip",
    "api_default",
    "available",
    "cache_telemetry",
    "session_telemetry",
]
