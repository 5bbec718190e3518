"""Async stores when the server is not there, and the ASGI middleware's answer to it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from satchel.errors import StoreUnavailable
from satchel.stores.aio import ThreadedStore, open_async_store
from satchel.stores.aio.redis import AsyncRedisStore
from satchel.stores.aio.sql import AsyncSQLStore
from satchel.stores.sql import SQLStore
from satchel.testing import new_key
from tests.asgi.apps import make_starlette
from tests.support.servers import free_port


def test_unreachable_redis_is_store_unavailable_naming_the_address() -> None:
    port = free_port()
    store = AsyncRedisStore.from_options({"url": f"redis://:hunter2@127.0.0.1:{port}/0", "socket_timeout": 0.5})

    async def scenario() -> None:
        with pytest.raises(StoreUnavailable) as caught:
            await store.load(new_key())
        assert f"127.0.0.1:{port}" in str(caught.value) and "hunter2" not in str(caught.value)
        await store.close()

    asyncio.run(scenario())


def test_store_down_gives_an_unsaved_fresh_session_with_on_store_error_fresh() -> None:
    port = free_port()
    settings = {"session.type": "redis", "session.url": f"redis://127.0.0.1:{port}/0",
                "session.socket_timeout": "0.5", "session.on_store_error": "fresh"}
    with TestClient(make_starlette(settings), raise_server_exceptions=False) as client:
        client.cookies.set("sid", "a-cookie-from-before-the-outage")
        response = client.get("/incr")
        assert response.status_code == 200 and response.text == "1"


def test_an_applications_sync_engine_runs_the_sql_store_in_threads(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 's.db'}")
    store = AsyncSQLStore.from_options({"bind": engine})
    assert isinstance(store, ThreadedStore) and isinstance(store.store, SQLStore)

    async def scenario() -> None:
        key = new_key()
        assert await store.save(key, b"x", 60, None) is not None
        record = await store.load(key)
        assert record is not None and record.data == b"x"

    asyncio.run(scenario())
    engine.dispose()


def test_third_party_sync_store_is_opened_in_threads(tmp_path: Path) -> None:
    from satchel.config import parse_session_settings
    from tests.support.apps import BASE_SETTINGS

    settings = parse_session_settings({**BASE_SETTINGS, "session.type": "satchel.stores.file:FileStore",
                                       "session.data_dir": str(tmp_path)})
    store = open_async_store(settings.store)
    assert isinstance(store, ThreadedStore) and store.name == "file"
