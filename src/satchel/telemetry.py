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

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .policy.ops import Count, Delete, Load, Op, Pause, Purge, Save, Touch

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from .stores.base import Store

try:
    from opentelemetry import metrics, trace
except ImportError:  # pragma: no cover - exercised where OpenTelemetry is absent
    metrics = trace = None  # type: ignore[assignment]

SCOPE = "satchel"

#: Store operations by their runner's name for them.
OPERATION_NAMES: dict[type, str] = {
    Load: "load",
    Save: "save",
    Touch: "touch",
    Delete: "delete",
    Count: "count",
    Purge: "purge",
}


def available() -> bool:
    """True when ``opentelemetry-api`` can be imported."""
    return metrics is not None


def outcome_of(op: Op, reply: Any) -> str:
    """What a store operation's result means: a load's hit or miss, a save's conflict."""
    if isinstance(op, Load):
        return "miss" if reply is None else "hit"
    if isinstance(op, Save):
        return "conflict" if reply is None else "ok"
    if isinstance(op, Touch):
        return "ok" if reply else "miss"
    return "ok"


class SessionTelemetry:
    """The instruments of one session store: operation durations, policy decisions, spans.

    It is also the policy's observer (:mod:`satchel.policy.events`): each decision
    is counted and, inside a traced open or commit, added to that span as an event.
    """

    def __init__(
        self,
        store_name: str,
        *,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        if metrics is None or trace is None:
            raise RuntimeError("satchel's telemetry needs opentelemetry-api")
        from . import __version__  # the package imports this module while it starts

        meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self.store_name = store_name
        self.duration = meter.create_histogram(
            "satchel.session.operation.duration",
            unit="s",
            description="Duration of session store operations, by store, operation and outcome",
        )
        self.events = meter.create_counter(
            "satchel.session.events",
            unit="{event}",
            description="Decisions of the session policy: conflicts, merges, sessions created, cookies refused",
        )
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        self._attributes: dict[tuple[str, str, str | None], dict[str, str]] = {}

    def attributes(self, kind: str, value: str, detail: str | None = None) -> dict[str, str]:
        """The attribute set of one data point, made once and reused."""
        key = (kind, value, detail)
        found = self._attributes.get(key)
        if found is None:
            found = {"satchel.store": self.store_name, kind: value}
            if detail is not None:
                found["error.type" if kind == "satchel.outcome" else "satchel.reason"] = detail
            self._attributes[key] = found
        return found

    def event(self, name: str, reason: str | None = None, *, count: int = 1) -> None:
        self.events.add(count, self.attributes("satchel.event", name, reason))
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(f"satchel.session.{name}", {"satchel.reason": reason} if reason else {})

    def record(self, op: Op, seconds: float, outcome: str, error: str | None = None) -> None:
        attributes = dict(self.attributes("satchel.outcome", outcome, error))
        attributes["satchel.operation"] = OPERATION_NAMES[type(op)]
        self.duration.record(seconds, attributes)

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

    def __init__(self, telemetry: SessionTelemetry, span: Span) -> None:
        self.telemetry = telemetry
        self.span = span
        #: Set by the caller when it knows better than the operations tell (a load's result).
        self.outcome: str | None = None
        self.round_trips = self.saves = self.conflicts = self.deletes = self.touches = 0

    def perform(self, perform: Callable[[Store, Op], Any], store: Store, op: Op) -> Any:
        """``perform(store, op)``, timed and counted."""
        if isinstance(op, Pause):
            return perform(store, op)
        self.round_trips += 1
        started = time.perf_counter()
        try:
            reply = perform(store, op)
        except Exception as exc:
            self.telemetry.record(op, time.perf_counter() - started, "error", type(exc).__qualname__)
            raise
        outcome = outcome_of(op, reply)
        self.telemetry.record(op, time.perf_counter() - started, outcome)
        if isinstance(op, Save):
            self.saves += outcome == "ok"
            self.conflicts += outcome == "conflict"
        elif isinstance(op, Delete):
            self.deletes += 1
        elif isinstance(op, Touch):
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
        self.span.set_attribute("satchel.outcome", outcome)
        self.span.set_attribute("satchel.round_trips", self.round_trips)
        if error is not None:
            self.span.set_attribute("error.type", error)
            if trace is not None:
                self.span.set_status(trace.Status(trace.StatusCode.ERROR, error))


def session_telemetry(store: Store | None, enabled: bool = True) -> SessionTelemetry | None:
    """The telemetry of a manager's store, or None when off or OpenTelemetry is absent."""
    if not enabled or not available():
        return None
    return SessionTelemetry(store.name if store is not None else "cookie")


class CacheTelemetry:
    """The counter of one cache region: ``satchel.cache.events`` by event
    (hit, miss, created, lock_wait, generation_bump, backend_error)."""

    def __init__(self, region: str, *, meter_provider: MeterProvider | None = None) -> None:
        if metrics is None:
            raise RuntimeError("satchel's telemetry needs opentelemetry-api")
        from . import __version__

        meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self.counter = meter.create_counter(
            "satchel.cache.events",
            unit="{event}",
            description="Cache region lookups by outcome, values created, lock waits, invalidations, errors",
        )
        self.region = region
        self._attributes: dict[str, dict[str, str]] = {}

    def event(self, name: str, count: int = 1) -> None:
        attributes = self._attributes.get(name)
        if attributes is None:
            attributes = self._attributes[name] = {"satchel.cache.region": self.region, "satchel.event": name}
        self.counter.add(count, attributes)


def cache_telemetry(region: str, enabled: bool = True) -> CacheTelemetry | None:
    """The counter of a cache region, or None when off or OpenTelemetry is absent."""
    if not enabled or not available():
        return None
    return CacheTelemetry(region)


__all__ = [
    "SCOPE",
    "CacheTelemetry",
    "SessionTelemetry",
    "Trip",
    "available",
    "cache_telemetry",
    "outcome_of",
    "session_telemetry",
]
