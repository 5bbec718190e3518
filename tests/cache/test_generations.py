"""Region generations: invalidation reaches every process at once, and a value computed
from data an invalidation retired is never served as current.

Every test taking ``settings`` runs on each shared backend (tests/cache/conftest.py).

Failures are simulated by wrapping one method of the backend's client (or store)
for the duration of a call; the servers themselves run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from satchel.cache import NO_VALUE, CacheRegion, cache_region, clear_region, configure_from_settings, invalidate_region
from satchel.cache.backends.store import StoreCacheBackend
from satchel.errors import StoreError, StoreUnavailable
from tests.support.cache import Creator, Switch, backend, region, server_settings

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_invalidation_reaches_every_process_at_once(settings: dict[str, str]) -> None:
    one, two = region(settings), region(settings)
    create = Creator()
    one.get_or_create("k", create)
    two.get_or_create("k", create)
    assert invalidate_region(two) is True
    # No sleep: the very next read in the other "process" misses.
    assert one.get_or_create("k", create) == {"call": 2}
    assert two.get_or_create("k", create) == {"call": 2}
    two.invalidate()  # dogpile's own API goes through the same generation
    assert one.get("k") is NO_VALUE
    assert create.calls == 2


def test_invalidation_from_another_real_process(settings: dict[str, str]) -> None:
    here = region(settings)
    create = Creator()
    here.get_or_create("k", create)
    script = (
        "import json, sys\n"
        "from satchel.cache import regions_from_settings, invalidate_region\n"
        "print(invalidate_region(regions_from_settings(json.loads(sys.argv[1]))['r']))\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(settings)], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    here.get_or_create("k", create)
    assert create.calls == 2


def test_soft_invalidation(settings: dict[str, str]) -> None:
    one, two = region(settings), region(settings)
    create = Creator()
    one.get_or_create("k", create)
    invalidate_region(two, hard=False)
    assert one.get("k") is NO_VALUE  # invalidated for plain reads...
    assert one.get("k", ignore_expiration=True) == {"call": 1}  # ...but still there to serve while recomputing
    assert one.get_or_create("k", create) == {"call": 2}
    assert two.get_or_create("k", create) == {"call": 2}
    assert create.calls == 2


def test_soft_invalidation_without_expiry_is_hard(settings: dict[str, str]) -> None:
    r = region({**settings, "cache.expire": "none"})
    create = Creator()
    r.get_or_create("k", create)
    invalidate_region(r, hard=False)
    assert r.get("k", ignore_expiration=True) is NO_VALUE
    assert r.get_or_create("k", create) == {"call": 2}


def test_clear_region(settings: dict[str, str]) -> None:
    one, two = region(settings), region(settings)
    create = Creator()
    for key in ("a", "b"):
        one.get_or_create(key, create)
    assert clear_region(two) is True
    assert one.get("a") is NO_VALUE and one.get("b") is NO_VALUE
    if settings["cache.type"] == "ext:redis":
        import redis

        client = redis.Redis.from_url(settings["cache.url"])
        assert list(client.scan_iter(match=settings["cache.key_prefix"] + "r:*")) == []


def test_a_lost_generation_record_never_revives_old_values(settings: dict[str, str]) -> None:
    r = region(settings)
    raw = backend(r)
    create = Creator()
    r.get_or_create("k", create)
    raw.remove(raw.gen_key)  # memcached evicted it, or Redis was flushed
    assert r.get_or_create("k", create) == {"call": 2}
    assert r.get_or_create("k", create) == {"call": 2}


def test_a_damaged_generation_record_is_survived(settings: dict[str, str]) -> None:
    r = region(settings)
    raw = backend(r)
    create = Creator()
    r.get_or_create("k", create)
    for junk in (b"not-a-number", b"12 soon"):
        raw.remove(raw.gen_key)
        raw.add_record(junk)
        r.get_or_create("k", create)
        invalidate_region(r)
        invalidate_region(r, hard=False)
        r.get_or_create("k", create)
    assert create.calls >= 3


def fail_reads(r: CacheRegion, kind: str, how: str) -> Switch:
    """Make the region's reads fail (``unavailable``) or be refused (``refused``)."""
    b = backend(r)
    if kind == "redis":
        from redis import exceptions as rx

        error: type[BaseException] = rx.ConnectionError if how == "unavailable" else rx.ResponseError
        return Switch(b.client, "mget", lambda: error("simulated"))  # type: ignore[attr-defined]
    assert isinstance(b, StoreCacheBackend)
    store_error = StoreUnavailable if how == "unavailable" else StoreError
    return Switch(b.store, "load", lambda: store_error("simulated"))


@pytest.mark.parametrize("how", ["unavailable", "refused", "closed"])
@pytest.mark.parametrize("kind", ["redis", "file", "sql"])
def test_a_blind_read_does_not_store_a_stale_value_as_current(kind: str, how: str, tmp_path: Path) -> None:
    settings = server_settings(kind, tmp_path)
    one, other = region(settings), region(settings)
    one.get_or_create("warm", dict)  # the generation record exists
    guard = backend(one).wiring.guard
    guard.retry_interval = 0.2
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
    settings = {**server_settings("redis", tmp_path), "cache.regions": "t_gen_refresh"}
    configure_from_settings(settings)
    calls: list[int] = []

    @cache_region("t_gen_refresh")
    def load(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            invalidate_region("t_gen_refresh")  # the data changes while load() runs
        return len(calls)

    assert load.refresh(1) == 1
    assert load(1) == 2  # the value refresh() computed from the old data is not current
    assert load(1) == 2
    assert calls == [1, 1]


def test_refresh_still_replaces_a_current_value(tmp_path: Path) -> None:
    settings = {**server_settings("sql", tmp_path), "cache.regions": "t_gen_refresh2"}
    configure_from_settings(settings)
    calls: list[int] = []

    @cache_region("t_gen_refresh2")
    def load(x: int) -> int:
        calls.append(x)
        return len(calls)

    assert load(1) == 1
    assert load.refresh(1) == 2
    assert load(1) == 2


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
    time.sleep(1.1)  # the store's own TTL; the region builds its store with the system clock
    assert {expired_value, expired_lock} <= stored_names(kind, settings)
    assert clear_region(r) is True
    left = stored_names(kind, settings)
    assert expired_value not in left and expired_lock not in left
    assert r.get("a") is NO_VALUE


@pytest.mark.parametrize("kind", ["file", "sql"])
def test_an_expired_value_of_the_current_generation_is_replaced(kind: str, tmp_path: Path) -> None:
    r = region(server_settings(kind, tmp_path, expire=1))
    calls: list[int] = []

    def create() -> int:
        calls.append(1)
        return len(calls)

    assert r.get_or_create("k", create) == 1
    time.sleep(1.1)  # dogpile decides expiry from time.time(), which it offers no way to replace
    assert r.get_or_create("k", create) == 2  # expired: computed again
    assert r.get_or_create("k", create) == 2  # and stored over the expired one
    assert len(calls) == 2
