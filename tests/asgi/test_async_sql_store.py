"""The async SQL store (SQLAlchemy's asyncio extension) against the store contract:
SQLite through aiosqlite, PostgreSQL through psycopg 3 and asyncpg, MariaDB through asyncmy;
and one table shared with the sync SQL store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from secrets import token_hex
from typing import Any

import pytest
import sqlalchemy as sa

from satchel.stores.aio.sql import AsyncSQLStore, async_url
from satchel.stores.sql import SQLStore
from satchel.testing import AsyncStore, AsyncStoreContract, FakeClock, new_key
from tests.support.services import MARIADB_URL, POSTGRES_URL, need_port


class AsyncSQLContract(AsyncStoreContract):
    uses_clock = True

    @pytest.fixture
    def options(self, url: str) -> Iterator[dict[str, Any]]:
        table = f"satchel_async_{token_hex(4)}"
        yield {"url": url, "table_name": table}
        if not url.startswith("sqlite"):
            engine = sa.create_engine(POSTGRES_URL if url.startswith("postgresql") else MARIADB_URL)
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
            engine.dispose()

    @pytest.fixture
    def async_store(self, options: dict[str, Any], clock: FakeClock) -> AsyncStore:
        return AsyncSQLStore.from_options(options, clock=clock)

    @pytest.fixture
    def sync_url(self, url: str) -> str:
        return url

    def test_sync_and_async_stores_share_rows(self, options: dict[str, Any], sync_url: str, clock: FakeClock) -> None:
        key = new_key()
        sync_store = SQLStore.from_options({**options, "url": sync_url}, clock=clock)

        async def scenario() -> None:
            store = AsyncSQLStore.from_options(options, clock=clock)
            try:
                created = await store.save(key, b"from asgi", 60, None)
                record = sync_store.load(key)
                assert record is not None and record.data == b"from asgi" and record.version == created
                updated = sync_store.save(key, b"from wsgi", 60, record.version)
                again = await store.load(key)
                assert again is not None and again.data == b"from wsgi" and again.version == updated
                assert await store.save(key, b"stale", 60, created) is None
            finally:
                await store.close()

        try:
            asyncio.run(scenario())
        finally:
            sync_store.close()


class TestAsyncSQLiteFile(AsyncSQLContract):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'sessions.db'}"


class TestAsyncPostgreSQL(AsyncSQLContract):
    @pytest.fixture
    def url(self) -> str:
        need_port("127.0.0.1", 5432, "PostgreSQL")
        return POSTGRES_URL


class TestAsyncPostgreSQLOnAsyncpg(AsyncSQLContract):
    @pytest.fixture
    def url(self) -> str:
        need_port("127.0.0.1", 5432, "PostgreSQL")
        return str(async_url(POSTGRES_URL.replace("+psycopg", "")).render_as_string(hide_password=False))

    @pytest.fixture
    def sync_url(self) -> str:
        return POSTGRES_URL


class TestAsyncMariaDB(AsyncSQLContract):
    @pytest.fixture
    def url(self) -> str:
        need_port("127.0.0.1", 3306, "MariaDB")
        return MARIADB_URL

    def test_record_over_the_servers_packet_limit_is_refused_before_sending(self, async_store: AsyncStore) -> None:
        from satchel.errors import StoreError

        async def scenario() -> None:
            await async_store.count()  # reads the server's limit with the table
            limit = async_store.packet_limit  # type: ignore[attr-defined]
            assert limit
            with pytest.raises(StoreError, match="max_allowed_packet"):
                await async_store.save(new_key(), b"x" * limit, 60, None)
            await async_store.close()

        asyncio.run(scenario())


def test_sync_drivers_are_swapped_for_async_ones() -> None:
    assert async_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"  # psycopg 3 is both
    assert async_url("postgresql+psycopg2://u@h/db").drivername == "postgresql+asyncpg"
    assert async_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert async_url("mysql+pymysql://u@h/db").drivername == "mysql+asyncmy"
    assert async_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert async_url("mysql+aiomysql://u@h/db").drivername == "mysql+aiomysql"
