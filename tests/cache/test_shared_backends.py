"""Regions on shared backends (Redis, memcached, file, SQLite, PostgreSQL), against real servers.

Two sets of regions built from the same settings stand for two processes.
Every test taking ``settings`` runs on each backend (tests/cache/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import pytest

from satchel.cache import (
    NO_VALUE,
    is_shared,
)
from satchel.errors import NotSerializable
from tests.support.cache import Creator, backend, region, server_settings

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_values_are_cached_and_shared(settings: dict[str, str]) -> None:
    one, two = region(settings), region(settings)
    assert is_shared(one)
    create = Creator()
    assert one.get_or_create("k", create) == {"call": 1}
    assert one.get_or_create("k", create) == {"call": 1}
    assert two.get_or_create("k", create) == {"call": 1}
    assert two.get("k") == {"call": 1}
    assert create.calls == 1


@pytest.mark.parametrize(
    "key",
    [
        "plain",
        "with spaces and\ttabs",
        "ünïcödé ✓",
        "x" * 600,
        "sha256-" + "0" * 64,
        "../../etc/passwd",
        ".hidden",
    ],
)
def test_any_text_is_a_key(settings: dict[str, str], key: str) -> None:
    r = region(settings)
    r.set(key, {"key": key})
    assert r.get(key) == {"key": key}
    r.delete(key)
    assert r.get(key) is NO_VALUE


def test_a_forged_hash_key_does_not_reach_the_hashed_one(settings: dict[str, str]) -> None:
    r = region(settings)
    long = "y" * 600
    r.set(long, "long")
    mangled = r.key_mangler(long) if r.key_mangler else long
    suffix = str(mangled).rsplit(":", 1)[-1]
    assert suffix.startswith("sha256-")
    assert r.get(suffix) is NO_VALUE


def test_json_values(settings: dict[str, str]) -> None:
    r = region(settings)
    with pytest.raises(NotSerializable, match="not JSON"):
        r.get_or_create("when", lambda: dt.datetime.now(dt.timezone.utc))
    assert r.get("when") is NO_VALUE
    # JSON's own rules: tuples come back as lists, dict keys as text.
    assert r.get_or_create("t", lambda: (1, {2: "x"})) == (1, {2: "x"})  # the creator's own value...
    assert r.get("t") == [1, {"2": "x"}]  # ...and what the cache gives back


def test_pickle_when_asked_for(tmp_path: Path) -> None:
    r = region(server_settings("file", tmp_path, serializer="pickle"))
    now = dt.datetime.now(dt.timezone.utc)
    r.set("when", (now, {2: "x"}))
    assert r.get("when") == (now, {2: "x"})


@pytest.mark.parametrize("kind", ["redis", "memcached", "file", "sql"])
def test_expiry_is_exact(kind: str, tmp_path: Path) -> None:
    r = region(server_settings(kind, tmp_path, expire=1))
    create = Creator()
    r.get_or_create("k", create)
    time.sleep(1.2)
    assert r.get_or_create("k", create) == {"call": 2}


def test_damaged_or_foreign_values_are_misses(settings: dict[str, str]) -> None:
    r = region(settings)
    raw = backend(r)
    name = str(r.key_mangler("k")) if r.key_mangler else "k"
    gen = raw.current_generation()
    create = Creator()
    for junk in [b"junk", gen + b"|not json|x", gen + b'|{"ct": 1}|x', gen + b"|[]|x", b"1|" + b'{"ct":1,"v":2}|1']:
        raw.write(name, junk)
        assert r.get_or_create("k", create) == {"call": create.calls}
        raw.remove(name)
    assert create.calls == 5


def test_multi_key_api(settings: dict[str, str]) -> None:
    r = region(settings)
    r.set_multi({"a": 1, "b": 2})
    assert r.get_multi(["a", "b", "c"]) == [1, 2, NO_VALUE]
    made = r.get_or_create_multi(["b", "c"], lambda *keys: [k.upper() for k in keys])
    assert made == [2, "C"]
    r.delete_multi(["a", "b"])
    assert r.get_multi(["a", "b", "c"]) == [NO_VALUE, NO_VALUE, "C"]


def test_redis_keeps_values_past_expire(tmp_path: Path) -> None:
    import redis

    settings = server_settings("redis", tmp_path, expire=30)
    r = region(settings)
    r.set("k", 1)
    client = redis.Redis.from_url(settings["cache.url"])
    ttl = client.ttl(settings["cache.key_prefix"] + "r:k")
    assert 60 <= ttl <= 90  # expire + max(expire, 60): an expired value can be served while recomputed
    assert client.ttl(settings["cache.key_prefix"] + "r.generation") == -1


class Boom:
    """Unpickling this runs ``os.mkdir``: what an attacker's value would do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


def test_memcached_never_unpickles(tmp_path: Path) -> None:
    from pymemcache.client.base import Client
    from pymemcache.serde import pickle_serde

    settings = server_settings("memcached", tmp_path)
    r = region(settings)
    raw = backend(r)
    name = str(r.key_mangler("k")) if r.key_mangler else "k"
    target = tmp_path / "pwned"
    # Someone with access to the server stores a pickled value, flagged as pickle.
    for host_port in settings["cache.url"].split(";"):
        host, _, port = host_port.rpartition(":")
        Client((host, int(port)), serde=pickle_serde).set(name, Boom(str(target)))
        Client((host, int(port)), serde=pickle_serde).set(raw.gen_key, Boom(str(target)))
    create = Creator()
    assert r.get_or_create("k", create) == {"call": 1}
    assert not target.exists()


def test_redis_json_region_never_unpickles(tmp_path: Path) -> None:
    import pickle

    import redis

    settings = server_settings("redis", tmp_path)
    r = region(settings)
    raw = backend(r)
    target = tmp_path / "pwned"
    payload = pickle.dumps(Boom(str(target)))
    gen = raw.current_generation()
    client = redis.Redis.from_url(settings["cache.url"])
    client.set(settings["cache.key_prefix"] + "r:k", gen + b'|{"ct":9999999999,"v":2}|' + payload)
    create = Creator()
    assert r.get_or_create("k", create) == {"call": 1}
    assert not target.exists()


def test_memcached_refuses_a_value_too_large(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    r = region(server_settings("memcached", tmp_path))
    create = Creator("x" * (2 * 1024 * 1024))
    with caplog.at_level(logging.WARNING, "satchel.cache"):
        assert r.get_or_create("big", create) == create.value
        assert r.get_or_create("big", create) == create.value
    assert create.calls == 2
    assert "refused to write" in caplog.text
    assert r.get_or_create("small", Creator()) == {"call": 1}  # the region still works


def test_nested_cached_calls(settings: dict[str, str]) -> None:
    r = region(settings)
    for i in range(20):  # an outer value computed from inner cached values, all missing
        assert r.get_or_create(f"outer{i}", lambda i=i: [r.get_or_create(f"inner{i}", lambda i=i: i)]) == [i]


def test_a_redis_hit_is_one_command(tmp_path: Path) -> None:
    r = region(server_settings("redis", tmp_path))
    r.get_or_create("k", Creator())
    client = backend(r).client  # type: ignore[attr-defined]
    sent: list[str] = []
    execute = client.execute_command

    def counted(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return execute(*args, **options)

    client.execute_command = counted
    assert r.get_or_create("k", Creator()) == {"call": 1}
    assert sent == ["MGET"]  # the generation record and the value together
