"""Beaker's stores, each configured exactly as a pyramid_beaker INI would, and cleaned up after."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.beaker.shop import SECRET, unique
from tests.support.services import MARIADB_URL, MEMCACHED_SERVERS, POSTGRES_URL, REDIS_URL, need_port

COMMON = {"session.secret": SECRET, "session.key": "shop"}


def _file(tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield {
        **COMMON,
        "session.type": "file",
        "session.data_dir": str(tmp_path / "sessions"),
        "session.lock_dir": str(tmp_path / "locks"),
    }


def _dbm(tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield {
        **COMMON,
        "session.type": "dbm",
        "session.data_dir": str(tmp_path / "sessions"),
        "session.lock_dir": str(tmp_path / "locks"),
    }


def _redis(tmp_path: Path) -> Iterator[dict[str, Any]]:
    need_port("127.0.0.1", 6379, "Redis")
    import redis

    yield {**COMMON, "session.type": "ext:redis", "session.url": REDIS_URL}
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match="beaker_*"):
        client.delete(key)
    client.close()


def _memcached(tmp_path: Path) -> Iterator[dict[str, Any]]:
    need_port("127.0.0.1", 11211, "memcached")
    need_port("127.0.0.1", 11212, "memcached")
    yield {
        **COMMON,
        "session.type": "ext:memcached",
        "session.url": MEMCACHED_SERVERS,
        "session.lock_dir": str(tmp_path / "locks"),
    }


def _postgresql(tmp_path: Path) -> Iterator[dict[str, Any]]:
    need_port("127.0.0.1", 5432, "PostgreSQL")
    yield from _sql(tmp_path, POSTGRES_URL)


def _mariadb(tmp_path: Path) -> Iterator[dict[str, Any]]:
    need_port("127.0.0.1", 3306, "MariaDB")
    yield from _sql(tmp_path, MARIADB_URL)


def _sql(tmp_path: Path, url: str) -> Iterator[dict[str, Any]]:
    import sqlalchemy as sa

    beaker_table, satchel_table = unique("beaker_t"), unique("satchel_t")
    yield {
        **COMMON,
        "session.type": "ext:database",
        "session.url": url,
        "session.table_name": beaker_table,
        "session.lock_dir": str(tmp_path / "locks"),
        # what the switched INI adds: satchel's table beside Beaker's
        "satchel.table_name": satchel_table,
    }
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in (beaker_table, satchel_table):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


STORES = {
    "dbm": _dbm,
    "file": _file,
    "redis": _redis,
    "memcached": _memcached,
    "postgresql": _postgresql,
    "mariadb": _mariadb,
}


@pytest.fixture(params=sorted(STORES))
def beaker_settings(request: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """pyramid_beaker settings for one of Beaker's stores (keys that are not Beaker's
    start with ``satchel.``: see :func:`switched`)."""
    yield from STORES[request.param](tmp_path)
    shutil.rmtree(tmp_path, ignore_errors=True)


def beaker_only(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if not k.startswith("satchel.")}


def switched(settings: dict[str, Any]) -> dict[str, Any]:
    """The INI after the switch: the same settings with the transition on; with
    ext:database, satchel gets its own table and Beaker's is named for the transition."""
    result = {**beaker_only(settings), "session.beaker_transition": "true"}
    if "satchel.table_name" in settings:
        result["session.beaker_table_name"] = settings["session.table_name"]
        result["session.table_name"] = settings["satchel.table_name"]
    return result
