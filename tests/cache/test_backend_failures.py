"""Regressions from a review of the cache layer, against real servers.

Failures are simulated by wrapping one method of the backend's client (or store)
for the duration of a call, as the outage tests do; the servers themselves run.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from satchel.cache import (
    NO_VALUE,
    CacheRegion,
    cache_region,
    clear_region,
    configure_from_settings,
    invalidate_region,
    regions_from_settings,
)
from satchel.cache import backends as cache_backends
from satchel.cache.backends import Generations, StoreCacheBackend
from satchel.errors import StoreError, StoreUnavailable
from tests.support.cache import server_settings


def region(settings: dict[str, str]) -> CacheRegion:
    return regions_from_settings(settings)["r"]


def backend(r: CacheRegion) -> Generations:
    actual = r.actual_backend
    assert isinstance(actual, Generations)
    return actual


class Switch:
    """Wraps ``owner.name`` so it raises ``error()`` while ``on`` is true."""

    def __init__(self, owner: Any, name: str, error: Callable[[], BaseException]) -> None:
        self.on = True
        self.calls = 0
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self.on:
                self.calls += 1
                raise error()
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)


def fail_reads(r: CacheRegion, kind: str, how: str) -> Switch:
    """Make the region's reads fail (``unavailable``) or be refused (``refused``)."""
    b = backend(r)
    if kind == "redis":
        from redis import exceptions as rx

        error: type[BaseException] = rx.ConnectionError if how == "unavailable" else rx.ResponseError
        return Switch(b.reader_client, "mget", lambda: error("simulated"))  # type: ignore[attr-defined]
    assert isinstance(b, StoreCacheBackend)
    store_error = StoreUnavailable if how == "unavailable" else StoreError
    return Switch(b.store, "load", lambda: store_error("simulated"))


# -- 1. a value computed before an invalidation is never stamped as current ------------------


@pytest.mark.parametrize("how", ["unavailable", "refused", "closed"])
@pytest.mark.parametrize("kind", ["redis", "file", "sql"])
def test_a_blind_read_does_not_store_a_stale_value_as_current(
    kind: str, how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_backends, "RETRY_INTERVAL", 0.2)
    settings = server_settings(kind, tmp_path)
    one, other = region(settings), region(settings)
    one.get_or_create("warm", dict)  # the generation record exists
    guard = backend(one).wiring.guard
    if how == "closed":
        guard.down_until = time.monotonic() + 0.2  # an earlier failure closed the guard
    else:
        switch = fail_reads(one, kind, how)

    def create() -> str:
        value = "computed from the old data"
        if how == "closed":
            time.sleep(0.3)  # the guard opens again while the creator runs
        else:
            switch.on = False
            time.sleep(0.3 if how == "unavailable" else 0)
        assert not guard.closed()
        invalidate_region(other)  # another process changes the data and invalidates
        return value

    assert one.get_or_create("k", create) == "computed from the old data"
    assert other.get("k") is NO_VALUE  # not stamped with the generation read after the creator
    assert one.get_or_create("k", lambda: "fresh") == "fresh"


def test_refresh_reads_the_generation_before_calling_the_function(tmp_path: Path) -> None:
    settings = {**server_settings("redis", tmp_path), "cache.regions": "t_review_refresh"}
    configure_from_settings(settings)
    calls: list[int] = []

    @cache_region("t_review_refresh")
    def load(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            invalidate_region("t_review_refresh")  # the data changes while load() runs
        return len(calls)

    assert load.refresh(1) == 1
    assert load(1) == 2  # the value refresh() computed from the old data is not current
    assert load(1) == 2
    assert calls == [1, 1]


def test_refresh_still_replaces_a_current_value(tmp_path: Path) -> None:
    settings = {**server_settings("sql", tmp_path), "cache.regions": "t_review_refresh2"}
    configure_from_settings(settings)
    calls: list[int] = []

    @cache_region("t_review_refresh2")
    def load(x: int) -> int:
        calls.append(x)
        return len(calls)

    assert load(1) == 1
    assert load.refresh(1) == 2
    assert load(1) == 2


# -- 2. a refused lock does not reach the application ---------------------------------------


def test_a_refused_lock_computes_the_value_uncached(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from redis import exceptions as rx

    r = region(server_settings("redis", tmp_path))
    r.get_or_create("warm", dict)
    client = backend(r).writer_client  # type: ignore[attr-defined]
    # Redis at maxmemory with noeviction: every write, the lock's SET NX included, is refused.
    Switch(client, "set", lambda: rx.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'"))
    with caplog.at_level(logging.WARNING, "satchel.cache"):
        assert r.get_or_create("k", lambda: "v") == "v"
        assert r.get_or_create("k", lambda: "w") == "w"  # nothing was stored, nothing stays locked
    assert "refused to lock" in caplog.text


def test_a_refused_lock_check_is_not_locked(tmp_path: Path) -> None:
    from redis import exceptions as rx

    r = region(server_settings("redis", tmp_path))
    b = backend(r)
    Switch(b.writer_client, "get", lambda: rx.ResponseError("simulated"))  # type: ignore[attr-defined]
    assert b.get_mutex("k").locked() is False  # type: ignore[union-attr]


# -- 3. threads queued behind a hanging connect do not each wait it out ------------------------


def test_threads_do_not_queue_connect_timeouts(tmp_path: Path) -> None:
    r = region(server_settings("sql", tmp_path))
    b = backend(r)
    assert isinstance(b, StoreCacheBackend) and b._store is None
    opened: list[float] = []

    def hanging_open() -> Any:
        opened.append(time.monotonic())
        time.sleep(0.4)  # the database does not answer: a connect timeout
        raise StoreUnavailable("simulated connect timeout", "sql")

    b._open = hanging_open  # type: ignore[method-assign]
    barrier = threading.Barrier(6)
    results: list[str] = []

    def call() -> None:
        barrier.wait()
        results.append(r.get_or_create("k", lambda: "v"))

    threads = [threading.Thread(target=call) for _ in range(6)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["v"] * 6
    assert len(opened) == 1
    assert time.monotonic() - started < 1.2  # not 6 x 0.4 s one after the other


def test_cache_regions_connect_to_postgres_with_a_short_timeout() -> None:
    from satchel.cache.backends import SQL_CONNECT_TIMEOUT, _cache_sa_options

    url = "postgresql+psycopg://postgres@127.0.0.1/test"
    assert _cache_sa_options(url, {}) == {"connect_args": {"connect_timeout": SQL_CONNECT_TIMEOUT}}
    assert _cache_sa_options(url + "?connect_timeout=9", {}) == {}
    assert _cache_sa_options(url, {"connect_args": {"connect_timeout": 7}}) == {"connect_args": {"connect_timeout": 7}}
    assert _cache_sa_options("sqlite:///x.db", {}) == {}


# -- 4. clear_region frees expired values on file and SQL regions -----------------------------


def stored_names(kind: str, settings: dict[str, str]) -> set[str]:
    if kind == "file":
        data = Path(settings["cache.data_dir"])
        return {p.name for p in data.glob("*/*") if not p.parent.name.startswith(".")}
    path = settings["cache.url"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT key FROM satchel_cache")}


@pytest.mark.parametrize("kind", ["file", "sql"])
def test_clear_region_frees_expired_values_and_locks(kind: str, tmp_path: Path) -> None:
    settings = server_settings(kind, tmp_path)
    r = region(settings)
    r.get_or_create("a", lambda: "A")
    b = backend(r)
    assert isinstance(b, StoreCacheBackend)
    prefix = settings["cache.key_prefix"]
    expired_value, expired_lock = prefix + "r:old", prefix + "r.lock:abc"
    b.store.save(expired_value, b"1|stale", 1, None)
    b.store.save(expired_lock, b"token", 1, None)
    time.sleep(1.1)
    assert {expired_value, expired_lock} <= stored_names(kind, settings)
    assert clear_region(r) is True
    left = stored_names(kind, settings)
    assert expired_value not in left and expired_lock not in left
    assert r.get("a") is NO_VALUE


# -- 5. a value stamped with the current generation is still replaced when it expired --------


@pytest.mark.parametrize("kind", ["file", "sql"])
def test_an_expired_value_of_the_current_generation_is_replaced(kind: str, tmp_path: Path) -> None:
    r = region(server_settings(kind, tmp_path, expire=1))
    calls: list[int] = []

    def create() -> int:
        calls.append(1)
        return len(calls)

    assert r.get_or_create("k", create) == 1
    time.sleep(1.1)
    assert r.get_or_create("k", create) == 2  # expired (dogpile's expire): computed again
    assert r.get_or_create("k", create) == 2  # and stored over the expired one
    assert len(calls) == 2
