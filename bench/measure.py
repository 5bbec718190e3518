"""Timing in interleaved rounds, and counting what one request costs the store."""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from contenders import Contender, cookie_from, make_caller, request

VIEWS = ("incr", "read")


@dataclass
class Series:
    """One thing timed: a contender's view, or any no-argument operation."""

    key: str
    view: str
    make: Callable[[], Callable[[], None]]  # -> the operation, fresh for each batch
    n: int = 0
    batches: list[float] = field(default_factory=list)  # wall-clock µs per operation, one per round
    cpu: list[float] = field(default_factory=list)  # this thread's CPU µs per operation, one per round

    @property
    def name(self) -> str:
        return f"{self.key}/{self.view}"

    def stats(self) -> dict[str, Any]:
        values = sorted(self.batches)
        if not values:
            return {}
        q = statistics.quantiles(values, n=10) if len(values) >= 2 else [values[0]] * 9
        return {
            "min_us": values[0],
            "p10_us": q[0],
            "median_us": statistics.median(values),
            "p90_us": q[8],
            "cpu_min_us": min(self.cpu) if self.cpu else None,
            "cpu_median_us": statistics.median(self.cpu) if self.cpu else None,
            "batches": len(values),
            "per_batch": self.n,
        }


def contender_series(contender: Contender) -> list[Series]:
    """Series for a contender's two views; each batch starts from a fresh steady state.

    Before every batch one changing request is made and its cookie kept, so a
    cookie-only session is never older than a batch (it would otherwise reach its
    renewal time during a long run and start sending a cookie on every read).
    """
    out = []
    for view in VIEWS:
        if contender.library == "rawloop":
            op = contender.raw[view]
            out.append(Series(contender.key, view, lambda op=op: op))
            continue

        def make(view: str = view) -> Callable[[], None]:
            if contender.reprime:
                reply = request(contender.app, "/incr", contender.cookie)
                contender.cookie = cookie_from(reply) or contender.cookie
            return make_caller(contender.app, f"/{view}", contender.cookie)

        out.append(Series(contender.key, view, make))
    return out


def _time_batch(op: Callable[[], None], n: int) -> float:
    perf = time.perf_counter
    start = perf()
    for _ in range(n):
        op()
    return perf() - start


def _time_batch_cpu(op: Callable[[], None], n: int) -> tuple[float, float]:
    """Wall-clock and this thread's CPU time (user + system) of ``n`` calls."""
    perf, cpu = time.perf_counter, time.thread_time
    start_cpu, start = cpu(), perf()
    for _ in range(n):
        op()
    return perf() - start, cpu() - start_cpu


def calibrate(series: Series, batch_seconds: float) -> None:
    """Choose how many operations one batch runs so that it lasts about ``batch_seconds``."""
    op = series.make()
    for _ in range(20):  # warm caches, connections, compiled statements
        op()
    n, elapsed = 10, 0.0
    while True:
        elapsed = _time_batch(op, n)
        if elapsed >= batch_seconds / 4 or n >= 1_000_000:
            break
        n *= 4
    series.n = max(5, int(n * batch_seconds / max(elapsed, 1e-9)))


def run_rounds(series: list[Series], rounds: int, seed: int = 1, progress: bool = True) -> None:
    """Every round runs one batch of every series, in a new random order.

    Interleaving spreads the machine's slow moments (other people's tests) over
    all contenders instead of landing on one of them; a garbage collection before
    each batch keeps one series' garbage from being charged to the next.
    ``make()`` runs before the collection and outside the timed batch.
    """
    rng = random.Random(seed)
    order = list(series)
    started = time.monotonic()
    # Everything built so far (apps, drivers, modules) is left out of later
    # collections, so the collection before each batch costs microseconds, not 25 ms.
    gc.collect()
    gc.freeze()
    for r in range(rounds):
        rng.shuffle(order)
        for s in order:
            op = s.make()
            gc.collect()
            wall, cpu = _time_batch_cpu(op, s.n)
            s.batches.append(wall / s.n * 1e6)
            s.cpu.append(cpu / s.n * 1e6)
        if progress:
            elapsed = time.monotonic() - started
            print(f"\r  round {r + 1}/{rounds}  ({elapsed:.0f} s)", end="", file=sys.stderr, flush=True)
    gc.unfreeze()
    if progress:
        print(file=sys.stderr)


def paired_ratio(a: Series, b: Series) -> dict[str, float] | None:
    """a/b two ways: the ratio of the fastest batches (``min``, the main figure), and the
    median and quartiles of the ratios computed round by round (both ran in each round)."""
    if not a.batches or not b.batches:
        return None
    ratios = sorted(x / y for x, y in zip(a.batches, b.batches, strict=False))
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
    out = {"min": min(a.batches) / min(b.batches), "median": statistics.median(ratios), "p25": q[0], "p75": q[2]}
    if a.cpu and b.cpu:
        out["cpu_min"] = min(a.cpu) / min(b.cpu)
    return out


# -- counting -------------------------------------------------------------------------

STORE_METHODS = ("load", "save", "touch", "delete")


def satchel_store(app: Any) -> Any:
    """The store behind a satchel app's session factory, or None (cookie mode)."""
    from pyramid.interfaces import ISessionFactory

    factory = app.registry.queryUtility(ISessionFactory)
    manager = getattr(factory, "manager", None)
    store = getattr(manager, "store", None)
    if store is None:
        return None
    return store


class StoreCalls:
    """Counts a satchel store's calls by shadowing its methods on the instance (removed after)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls = dict.fromkeys(STORE_METHODS, 0)

    def __enter__(self) -> StoreCalls:
        for name in STORE_METHODS:
            method = getattr(self.store, name)

            def counted(*args: Any, _name: str = name, _method: Any = method, **kwargs: Any) -> Any:
                self.calls[_name] += 1
                return _method(*args, **kwargs)

            setattr(self.store, name, counted)
        return self

    def __exit__(self, *exc: Any) -> None:
        for name in STORE_METHODS:
            delattr(self.store, name)


def python_calls(op: Callable[[], None], n: int = 50) -> float:
    """Python function calls per operation (cProfile's count): a cost measure free of timing noise."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        op()
    prof.disable()
    return pstats.Stats(prof).total_calls / n  # type: ignore[attr-defined]


def count_requests(contender: Contender, counters: dict[str, Any], n: int = 20, attempts: int = 3) -> dict[str, Any]:
    """Round trips, commands, store calls and Set-Cookie headers per request, per view.

    Each view is counted over ``n`` requests, ``attempts`` times; the attempt
    with the fewest round trips is kept (on a shared server another client's
    traffic can only add to the counters).
    """
    out: dict[str, Any] = {}
    counter = counters.get(contender.counter or "")
    for view in VIEWS:
        best: dict[str, Any] | None = None
        for _ in range(attempts):
            result: dict[str, Any] = {}
            if contender.library == "rawloop":
                op = contender.raw[view]
                before = counter.snapshot() if counter else None
                for _ in range(n):
                    op()
                after = counter.snapshot() if counter else None
                set_cookies, bodies, statuses = 0, set(), {"-"}
                calls = None
            else:
                if contender.reprime:
                    reply = request(contender.app, "/incr", contender.cookie)  # fresh steady state
                    contender.cookie = cookie_from(reply) or contender.cookie
                store = satchel_store(contender.app) if contender.library == "satchel" else None
                calls_ctx = StoreCalls(store) if store is not None else None
                set_cookies, bodies, statuses = 0, set(), set()
                if calls_ctx:
                    calls_ctx.__enter__()
                try:
                    before = counter.snapshot() if counter else None
                    for _ in range(n):
                        reply = request(contender.app, f"/{view}", contender.cookie)
                        set_cookies += len(reply.set_cookies)
                        bodies.add(reply.body)
                        statuses.add(reply.status)
                    after = counter.snapshot() if counter else None
                finally:
                    if calls_ctx:
                        calls_ctx.__exit__()
                calls = {k: v / n for k, v in calls_ctx.calls.items()} if calls_ctx else None
            if counter is not None:
                delta = counter.delta(before, after)
                result["round_trips"] = delta["round_trips"] / n
                result["commands"] = {k: v / n for k, v in delta["commands"].items()}
                if "commits" in delta:
                    result["commits"] = delta["commits"] / n
                if "server_us" in delta:
                    result["server_us"] = delta["server_us"] / n
            result["set_cookie"] = set_cookies / n
            result["store_calls"] = calls
            result["statuses"] = sorted(statuses)
            result["bodies"] = sorted(b.decode(errors="replace") for b in bodies)[:3] if bodies else []
            if best is None or result.get("round_trips", 0) < best.get("round_trips", 0):
                best = result
        assert best is not None
        sql = counters.get("sql")
        # Python calls as in the timed requests, which run without the SQL counter's listeners.
        with sql.paused() if sql is not None else nullcontext():
            if contender.library == "rawloop":
                best["py_calls"] = python_calls(contender.raw[view])
            else:
                if contender.reprime:
                    request(contender.app, "/incr", contender.cookie)
                best["py_calls"] = python_calls(make_caller(contender.app, f"/{view}", contender.cookie))
        out[view] = best
    return out
