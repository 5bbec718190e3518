"""Records in one SQL table through SQLAlchemy's asyncio extension: the table,
statements and versions of :mod:`satchel.stores.sql`, so sync and async apps share rows.

The settings are the sync store's; the URL's driver is swapped for an async one
where it is a sync one (``postgresql`` or ``postgresql+psycopg2`` -> ``postgresql+asyncpg``;
psycopg 3 serves both),
``mysql+pymysql`` -> ``mysql+asyncmy``, ``sqlite`` -> ``sqlite+aiosqlite``). Every
operation is one statement on an AUTOCOMMIT connection, as in the sync store,
and the table is made (or checked) on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ...clock import Clock, system_clock
from ...errors import ConfigurationError, StoreError, StoreUnavailable
from ..base import Record, Version, check_key
from ..sql import (
    COLUMNS,
    DEFAULT_TABLE_NAME,
    FLAGS,
    PURGE_BATCH,
    STATEMENT_OVERHEAD,
    SQLStore,
    Statements,
    _new_version,
    _reason,
    session_table,
)
from .base import AsyncStore
from .threaded import ThreadedStore

try:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
    from sqlalchemy.pool import StaticPool
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise StoreUnavailable('the sql store needs SQLAlchemy: pip install "satchel[sql]"', "sql") from exc

from ...config.coerce import as_bool

#: Backend -> the async driver used when the URL names a sync one (or none).
ASYNC_DRIVERS = {"postgresql": "asyncpg", "mysql": "asyncmy", "mariadb": "asyncmy", "sqlite": "aiosqlite"}
#: Drivers SQLAlchemy runs under asyncio as they are.
ASYNC_CAPABLE = frozenset({"asyncpg", "psycopg", "psycopg_async", "aiomysql", "asyncmy", "aiosqlite"})


def async_url(url: str | sa.URL) -> sa.URL:
    """``url`` with an async driver (see the module's docstring)."""
    target = sa.make_url(url)
    backend, _, driver = target.drivername.partition("+")
    if driver in ASYNC_CAPABLE or backend not in ASYNC_DRIVERS:
        return target
    return target.set(drivername=f"{backend}+{ASYNC_DRIVERS[backend]}")


def create_engine(url: str, options: Mapping[str, Any]) -> AsyncEngine:
    """An async engine for ``url`` from ``session.sa.*`` options, in AUTOCOMMIT mode by default."""
    target = async_url(url)
    settings: dict[str, Any] = {"hide_parameters": True, "isolation_level": "AUTOCOMMIT", "pool_pre_ping": False}
    settings.update({name: as_bool(value, f"sa.{name}") if name in FLAGS else value for name, value in options.items()})
    if target.get_backend_name() == "sqlite" and target.database in (None, "", ":memory:"):
        settings.setdefault("poolclass", StaticPool)
    try:
        return create_async_engine(target, **settings)
    except ImportError as exc:
        raise StoreUnavailable(
            f"the async sql store's driver is not installed ({exc}): pip install {target.get_driver_name()}",
            "sql",
            target.render_as_string(hide_password=True),
        ) from exc
    except (TypeError, ValueError, sa.exc.ArgumentError) as exc:
        raise ConfigurationError(f"SQLAlchemy refuses the sql store's session.sa.* options: {exc}") from exc


class _DuplicateKey(StoreError):
    """An INSERT met an existing row."""


class _Disconnected(StoreUnavailable):
    """The pooled connection was dead; worth one more try on a new one."""


class AsyncSQLStore(AsyncStore):
    name: ClassVar[str] = "sql"
    options = SQLStore.options

    def __init__(
        self,
        engine: AsyncEngine,
        table_name: str = DEFAULT_TABLE_NAME,
        schema_name: str | None = None,
        *,
        owns_engine: bool = False,
        clock: Clock = system_clock,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.table = session_table(table_name, schema_name)
        self.statements = Statements.for_table(self.table, engine.dialect.name)
        self._address = engine.url.render_as_string(hide_password=True)
        self._owns_engine = owns_engine
        self._table_ready = False
        #: MariaDB/MySQL's max_allowed_packet, read with the table: the largest statement.
        self.packet_limit: int | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> AsyncStore:
        table_name = options.get("table_name") or DEFAULT_TABLE_NAME
        schema_name = options.get("schema_name")
        bind = options.get("bind")
        if isinstance(bind, AsyncEngine):
            return cls(bind, table_name, schema_name, clock=clock)
        if bind is not None:  # an application's sync Engine: used as it is, in threads
            return ThreadedStore(SQLStore.from_options(options, clock=clock))
        sa_options = dict(options.get("sa") or {})
        url = options.get("url") or sa_options.pop("url", None)
        sa_options.pop("url", None)
        if not url:
            raise ConfigurationError("the sql store needs session.url (or session.bind)", "url")
        return cls(create_engine(url, sa_options), table_name, schema_name, owns_engine=True, clock=clock)

    @property
    def address(self) -> str:
        return self._address

    # -- running statements ---------------------------------------------------------

    def _failure(self, exc: sa.exc.SQLAlchemyError) -> StoreError | StoreUnavailable:
        if isinstance(exc, sa.exc.IntegrityError):
            return _DuplicateKey(f"duplicate key in the sql store at {self._address}")
        message = f"the sql store cannot reach its database at {self._address}: {_reason(exc)}"
        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
            return _Disconnected(message, self.name, self._address)
        if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)):
            return StoreUnavailable(message, self.name, self._address)
        return StoreError(f"the sql store at {self._address} failed: {_reason(exc)}")

    async def _execute(self, statement: sa.Executable, params: Mapping[str, Any], fetch: bool) -> Any:
        if not self._table_ready:
            await self._open_table()
        try:
            async with self.engine.connect() as connection:
                result = await connection.execute(statement, params)
                return result.first() if fetch else result.rowcount
        except sa.exc.SQLAlchemyError as exc:
            raise self._failure(exc) from exc

    async def _run(self, statement: sa.Executable, params: Mapping[str, Any], fetch: bool = False) -> Any:
        """:meth:`_execute`, once more if the pooled connection turned out dead (a
        statement on a dead connection never reached the server)."""
        try:
            return await self._execute(statement, params, fetch)
        except _Disconnected:
            return await self._execute(statement, params, fetch)

    async def _open_table(self) -> None:
        for last in (False, True):
            try:
                async with self.engine.begin() as connection:
                    await self._prepare(connection)
                self._table_ready = True
                return
            except sa.exc.DBAPIError as exc:
                if last or exc.statement is None:  # a CREATE racing another's is worth a second look
                    raise self._failure(exc) from exc
            except sa.exc.SQLAlchemyError as exc:
                raise self._failure(exc) from exc

    async def _prepare(self, connection: AsyncConnection) -> None:
        table = self.table

        def columns(sync: sa.Connection) -> list[str] | None:
            inspector = sa.inspect(sync)
            if not inspector.has_table(table.name, schema=table.schema):
                return None
            return [column["name"] for column in inspector.get_columns(table.name, schema=table.schema)]

        found = await connection.run_sync(columns)
        if connection.dialect.name in ("mysql", "mariadb"):
            limit = await connection.execute(sa.text("SELECT @@max_allowed_packet"))
            self.packet_limit = int(limit.scalar_one())
        if found is None:
            await connection.run_sync(table.create)
        elif not {name.lower() for name in found} >= set(COLUMNS):
            raise ConfigurationError(
                f"the table {table.fullname} at {self._address} has another layout (columns "
                f"{', '.join(found)}): it is not a satchel session table; choose another session.table_name",
                "table_name",
            )

    # -- the store contract -----------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def load(self, key: str) -> Record | None:
        check_key(key)
        row = await self._run(self.statements.select, {"k": key, "now": self._now_ms()}, fetch=True)
        if row is None:
            return None
        data, version, expires_at = row
        return Record(bytes(data), int(version), None if expires_at is None else expires_at / 1000)

    async def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        check_key(key)
        if not self._table_ready:
            await self._open_table()
        if self.packet_limit is not None and len(data) + STATEMENT_OVERHEAD > self.packet_limit:
            raise StoreError(
                f"a record of {len(data)} bytes is over the max_allowed_packet of the sql store's server at "
                f"{self._address} ({self.packet_limit} bytes): raise it on the server, or keep less in the session"
            )
        now = self._now_ms()
        version = _new_version()
        row = {
            "k": key,
            "now": now,
            "new_data": bytes(data),
            "new_expires": None if ttl is None else now + ttl * 1000,
            "new_version": version,
        }
        if expected_version is None:
            return version if await self._create(row) else None
        if not isinstance(expected_version, int) or isinstance(expected_version, bool):
            return None
        changed: int = await self._run(self.statements.update, {**row, "expected": expected_version})
        return version if changed == 1 else None

    async def _create(self, row: dict[str, Any]) -> bool:
        """An INSERT; on a duplicate, take over an expired row, else one more INSERT
        tells a live row from one purged meanwhile (as the sync store does)."""
        return (
            await self._insert(row)
            or await self._run(self.statements.take_over, row) == 1
            or await self._insert(row)
        )

    async def _insert(self, row: dict[str, Any]) -> bool:
        try:
            await self._run(self.statements.insert, row)
        except _DuplicateKey:
            return False
        return True

    async def touch(self, key: str, ttl: int | None) -> bool:
        check_key(key)
        now = self._now_ms()
        params = {"k": key, "now": now, "new_expires": None if ttl is None else now + ttl * 1000}
        return bool(await self._run(self.statements.touch, params) == 1)

    async def delete(self, key: str) -> None:
        check_key(key)
        await self._run(self.statements.delete, {"k": key})

    async def purge_expired(self) -> int:
        params = {"now": self._now_ms()}
        total = 0
        while True:
            removed: int = await self._run(self.statements.purge, params)
            total += removed
            if removed < PURGE_BATCH:
                return total

    async def count(self) -> int:
        row = await self._run(self.statements.count, {"now": self._now_ms()}, fetch=True)
        return int(row[0])

    async def close(self) -> None:
        if self._owns_engine:
            await self.engine.dispose()


__all__ = ["AsyncSQLStore", "async_url", "create_engine"]
