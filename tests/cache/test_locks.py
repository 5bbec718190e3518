"""Creation locks: a lock the server refuses never reaches the application, and leaves nothing locked."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.support.cache import Switch, backend, region, server_settings


def test_a_refused_lock_computes_the_value_uncached(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from redis import exceptions as rx

    r = region(server_settings("redis", tmp_path))
    r.get_or_create("warm", dict)
    client = backend(r).client  # type: ignore[attr-defined]
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
    Switch(b.client, "get", lambda: rx.ResponseError("simulated"))  # type: ignore[attr-defined]
    assert b.get_mutex("k").locked() is False  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["redis", "memcached", "file", "sql"])
def test_a_held_lock_is_seen_by_another_process_and_freed_on_release(kind: str, tmp_path: Path) -> None:
    settings = server_settings(kind, tmp_path)
    one, other = backend(region(settings)), backend(region(settings))
    mine = one.get_mutex("k")  # type: ignore[attr-defined]
    assert mine.acquire(wait=False)
    theirs = other.get_mutex("k")  # type: ignore[attr-defined]
    assert theirs.locked()
    assert theirs.acquire(wait=False) is False
    mine.release()
    assert theirs.acquire(wait=False)
    theirs.release()
    assert not theirs.locked()


def test_file_locks_leave_no_files_behind(tmp_path: Path) -> None:
    settings = server_settings("file", tmp_path)
    r = region(settings)
    for i in range(20):
        r.get_or_create(f"k{i}", dict)
    assert list(Path(settings["cache.lock_dir"]).glob("cache-*.lock")) == []
