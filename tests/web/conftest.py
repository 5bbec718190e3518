"""Fixtures for tests that drive an app on each server-side store."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import services

SERVER_STORES = ["memory", "file", "sqlite", "postgresql", "mariadb", "redis", "rediscluster", "memcached"]


@pytest.fixture(params=SERVER_STORES)
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    name = request.param
    prefix = f"t{secrets.token_hex(4)}:"
    table = f"satchel_web_{secrets.token_hex(4)}"
    if name == "memory":
        yield {"session.type": "memory"}
    elif name == "file":
        yield {"session.type": "file", "session.data_dir": str(tmp_path / "d")}
    elif name == "sqlite":
        yield {"session.type": "ext:database", "session.url": f"sqlite:///{tmp_path / 's.db'}"}
    elif name in ("postgresql", "mariadb"):
        url = services.POSTGRES_URL if name == "postgresql" else services.MARIADB_URL
        services.need_port("127.0.0.1", 5432 if name == "postgresql" else 3306, name)
        yield {"session.type": "ext:database", "session.url": url, "session.table_name": table}
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()
    elif name == "redis":
        services.need_port("127.0.0.1", 6379, "Redis")
        yield {"session.type": "ext:redis", "session.url": services.REDIS_URL, "session.key_prefix": prefix}
    elif name == "rediscluster":
        port = services.REDIS_CLUSTER_PORTS[0]
        services.need_port("127.0.0.1", port, "Redis Cluster")
        urls = " ".join(f"redis://127.0.0.1:{p}" for p in services.REDIS_CLUSTER_PORTS)
        yield {"session.type": "ext:rediscluster", "session.urls": urls, "session.key_prefix": prefix}
    else:
        for server in services.MEMCACHED_SERVERS.split(";"):
            host, _, port = server.partition(":")
            services.need_port(host, int(port), "memcached")
        yield {"session.type": "ext:memcached", "session.url": services.MEMCACHED_SERVERS, "session.key_prefix": prefix}
