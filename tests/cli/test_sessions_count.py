"""``satchel sessions count`` on each store it can see: one per visitor, whatever
``regenerate_id()`` left behind."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from satchel.cli import main
from satchel.config import find_section, parse_session_settings, section_settings
from satchel.manager import SessionManager
from tests.support import services
from tests.support.apps import SECRET

COUNTED_STORES = ["file", "sqlite", "postgresql", "mariadb", "redis", "rediscluster"]


def store_lines(name: str, tmp_path: Path) -> str:
    suffix = secrets.token_hex(4)
    if name == "file":
        return f"session.type = file\nsession.data_dir = {tmp_path / 'data'}\n"
    if name == "sqlite":
        return f"session.type = ext:database\nsession.url = sqlite:///{tmp_path / 's.db'}\n"
    if name in ("postgresql", "mariadb"):
        services.need_port("127.0.0.1", 5432 if name == "postgresql" else 3306, name)
        url = services.POSTGRES_URL if name == "postgresql" else services.MARIADB_URL
        return f"session.type = ext:database\nsession.url = {url}\nsession.table_name = satchel_count_{suffix}\n"
    if name == "redis":
        services.need_port("127.0.0.1", 6379, "Redis")
        return f"session.type = ext:redis\nsession.url = {services.REDIS_URL}\nsession.key_prefix = c{suffix}:\n"
    port = services.REDIS_CLUSTER_PORTS[0]
    services.need_port("127.0.0.1", port, "Redis Cluster")
    urls = " ".join(f"redis://127.0.0.1:{p}" for p in services.REDIS_CLUSTER_PORTS)
    return f"session.type = ext:rediscluster\nsession.urls = {urls}\nsession.key_prefix = c{suffix}:\n"


@pytest.fixture(params=COUNTED_STORES)
def manager_and_ini(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SessionManager, Path]]:
    ini = tmp_path / "app.ini"
    ini.write_text(f"[app:main]\nsession.key = sid\nsession.secret = {SECRET}\n" + store_lines(request.param, tmp_path))
    config = parse_session_settings(section_settings(find_section(ini)))
    manager = SessionManager(config)
    yield manager, ini
    manager.store.close()
    _drop_what_the_test_wrote(config)


def _drop_what_the_test_wrote(config: object) -> None:
    store_config = config.store  # type: ignore[attr-defined]
    table = store_config.options.get("table_name")
    if table:
        import sqlalchemy

        engine = sqlalchemy.create_engine(store_config.options["url"])
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()
    elif store_config.type in ("redis", "rediscluster"):
        import redis
        from redis.cluster import RedisCluster

        if store_config.type == "redis":
            client: Any = redis.Redis.from_url(services.REDIS_URL)
        else:
            client = RedisCluster(host="127.0.0.1", port=services.REDIS_CLUSTER_PORTS[0])
        for name in client.scan_iter(match=store_config.options["key_prefix"] + "*"):
            client.delete(name)
        client.close()


def visit(manager: SessionManager, cookie: str | None = None, *, log_in: bool = False) -> str:
    """One request: returns the session cookie's value after it."""
    session = manager.open(cookie)
    session["seen"] = session.get("seen", 0) + 1
    if log_in:
        session.regenerate_id()
    headers = manager.commit(session)
    return headers[0].split(";")[0].split("=", 1)[1] if headers else cookie or ""


def test_sessions_count_is_one_per_visitor_after_logins(
    capsys: pytest.CaptureFixture[str], manager_and_ini: tuple[SessionManager, Path]
) -> None:
    manager, ini = manager_and_ini
    cookies = [visit(manager) for _ in range(4)]
    visit(manager, cookies[0], log_in=True)  # leaves a marker under the old id
    visit(manager, cookies[1], log_in=True)
    assert manager.store.count() == 6  # the markers are records of their own

    assert main(["sessions", "count", str(ini)]) == 0
    assert capsys.readouterr().out == "4\n"
