"""Readiness probes and ``satchel check --connect`` against the real servers, and
against a port nobody listens on."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from satchel.cache import regions_from_settings
from satchel.cli import main
from satchel.health import probe_store, ready
from satchel.stores.memory import MemoryStore
from satchel.stores.redis import RedisStore
from tests.support import services
from tests.support.apps import SECRET
from tests.support.servers import free_port


def check_connect(capsys: pytest.CaptureFixture[str], tmp_path: Path, lines: str) -> tuple[int, str]:
    ini = tmp_path / "app.ini"
    ini.write_text(f"[app:main]\nuse = egg:app\nsession.secret = {SECRET}\n{lines}\n")
    code = main(["check", str(ini), "--connect", "--timeout", "3"])
    return code, capsys.readouterr().out


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a hung server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def test_check_connect_reaches_redis_and_names_its_version(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    services.need(services.port_open("127.0.0.1", 6379), "Redis")
    code, out = check_connect(
        capsys,
        tmp_path,
        f"session.type = redis\nsession.url = {services.REDIS_URL}\nsession.key_prefix = h{secrets.token_hex(4)}:",
    )
    assert code == 0, out
    assert "connect: session store redis at redis://127.0.0.1:6379/15: ok in" in out
    assert "version " in out and "maxmemory-policy" in out


def test_check_connect_reports_memcached_item_size(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    services.need(services.port_open("127.0.0.1", 11211), "memcached")
    code, out = check_connect(
        capsys, tmp_path, f"session.type = ext:memcached\nsession.url = {services.MEMCACHED_SERVERS}"
    )
    assert code == 0, out
    assert "item_size_max 1048576" in out
    assert "127.0.0.1:11212 version 1." in out


def test_check_connect_reports_mariadb_max_allowed_packet(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    services.need(services.port_open("127.0.0.1", 3306), "MariaDB")
    code, out = check_connect(capsys, tmp_path, f"session.type = ext:database\nsession.url = {services.MARIADB_URL}")
    assert code == 0, out
    assert "max_allowed_packet " in out


def test_check_connect_reports_postgresql_version(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    services.need(services.port_open("127.0.0.1", 5432), "PostgreSQL")
    code, out = check_connect(capsys, tmp_path, f"session.type = ext:database\nsession.url = {services.POSTGRES_URL}")
    assert code == 0, out
    assert "dialect postgresql, version " in out


def test_check_connect_reaches_every_cache_region(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    services.need(services.port_open("127.0.0.1", 6379), "Redis")
    services.need(services.port_open("127.0.0.1", 11211), "memcached")
    code, out = check_connect(
        capsys,
        tmp_path,
        "cache.regions = a b\n"
        f"cache.a.type = ext:redis\ncache.a.url = {services.REDIS_URL}\n"
        "cache.b.type = ext:memcached\ncache.b.url = 127.0.0.1:11211\n",
    )
    assert code == 0, out
    assert "connect: cache region a (redis) at redis://127.0.0.1:6379/15: ok in" in out
    assert "connect: cache region b" in out


def test_check_connect_fails_on_a_dead_store(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out = check_connect(
        capsys, tmp_path, f"session.type = redis\nsession.url = redis://:hunter2@127.0.0.1:{free_port()}/0"
    )
    assert code == 1
    assert "error: session store redis at redis://***@127.0.0.1:" in out and "FAILED" in out
    assert "hunter2" not in out


def test_readiness_probe_answers_within_its_timeout_when_a_server_hangs(silent_port: int) -> None:
    store = RedisStore.from_options({"url": f"redis://127.0.0.1:{silent_port}/0", "socket_timeout": 30.0})
    started = time.perf_counter()
    health = ready(store, timeout=0.3)
    assert time.perf_counter() - started < 2
    assert not health.ok
    assert "no answer within 0.3 s" in health.probes[0].detail


def test_readiness_probe_is_ok_on_reachable_backends_and_never_writes() -> None:
    store = MemoryStore()
    regions = regions_from_settings({"cache.regions": "short", "cache.type": "memory"})
    health = ready(store, regions)
    assert health.ok
    assert [probe.what for probe in health.probes] == ["session store memory", "cache region short (memory)"]
    assert store.count() == 0


def test_write_probe_leaves_no_record() -> None:
    store = MemoryStore()
    assert probe_store(store, write=True).ok
    assert store.count() == 0
