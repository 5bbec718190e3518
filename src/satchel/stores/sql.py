"""Records in one SQL table, through SQLAlchemy 2 Core (Beaker's ``ext:database``).

- Every operation is one statement in its own short transaction: ``load`` one
  SELECT, a conditional ``save`` one UPDATE that compares the version, a new
  record one INSERT, ``touch`` one UPDATE. The row's ``version`` column makes
  writes conditional, so no row is ever locked across two statements.
- ``expires_at`` holds milliseconds since the epoch (``NULL``: never); an
  expired row counts as absent everywhere and ``purge_expired`` deletes such rows
  in batches. Expiry uses the application servers' clocks, which NTP keeps close.
- The table is created at start-up when missing. On MariaDB/MySQL keys are
  ``ascii_bin`` (compared case-sensitively) and data is a LONGBLOB.
- Engines the store creates itself run in autocommit mode (each statement is
  its own transaction, without BEGIN/COMMIT round trips), ping connections before
  use so the same store works again once a restarted server is back, and hide
  statement parameters (session data) from error messages.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

from ..errors import ConfigurationError, StoreError, StoreUnavailable
from ..settings import StoreSettings
from .base import Record, Store, Version, check_key

_T = TypeVar("_T")

try:
    import sqlalchemy as sa
    from sqlalchemy.dialects import mysql
    from sqlalchemy.pool import StaticPool
    from sqlalchemy.util import asbool
except ImportError:  # pragma: no cover - the tests check this in a subprocess
    sa = None  # type: ignore[assignment]

#: Expired rows deleted per statement (and so per transaction) by ``purge_expired``.
PURGE_BATCH = 1000
SQLITE_BUSY_TIMEOUT_MS = 5000
#: Seconds libpq waits for a connection; its own default is to wait forever.
POSTGRES_CONNECT_TIMEOUT = 10
#: Backend -> (extra that installs its driver, URL scheme that uses that driver).
DRIVER_EXTRAS = {
    "postgresql": ("satchel[postgresql]", "postgresql+psycopg"),
    "mysql": ("satchel[mysql]", "mysql+pymysql"),
    "mariadb": ("satchel[mysql]", "mysql+pymysql"),
}


def _require_sqlalchemy() -> None:
    if sa is None:
        raise StoreUnavailable('the sql store needs SQLAlchemy: pip install "satchel[sql]"', "sql")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _new_version() -> int:
    """A random first version, so a deleted and re-created record never repeats one."""
    return secrets.randbits(62)


def _reason(exc: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's statement and parameters."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def session_table(name: str, schema: str | None = None) -> sa.Table:
    """The table the store keeps its records in."""
    key_type = sa.String(250).with_variant(
        mysql.VARCHAR(250, charset="ascii", collation="ascii_bin"), "mysql", "mariadb"
    )
    data_type = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")  # past 16 MB
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("key", key_type, primary_key=True),
        sa.Column("data", data_type, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), index=True, comment="ms since the epoch; NULL: never"),
        schema=schema,
        mysql_engine="InnoDB",
        sqlite_with_rowid=False,
    )


def create_engine(url: str, options: Mapping[str, Any], address: str = "") -> sa.Engine:
    """An engine for ``url`` from Beaker-style ``session.sa.*`` options (strings allowed)."""
    _require_sqlalchemy()
    try:
        target = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"the sql store url is not a database URL: {exc}", "url") from exc
    address = address or target.render_as_string(hide_password=True)
    backend = target.get_backend_name()
    memory = backend == "sqlite" and target.database in (None, "", ":memory:")
    # engine_from_config coerces the common options; these it would leave as strings.
    coercions = {"pool_pre_ping": asbool, "pool_use_lifo": asbool, "hide_parameters": asbool}
    coerced = {k: coercions[k](v) if k in coercions else v for k, v in options.items()}
    defaults: dict[str, Any] = {
        # No pre-ping: it costs a round trip per statement. A connection that died
        # while pooled (a database restart) is detected when used, and the
        # statement is run once more on a fresh one; see _once_more.
        "pool_pre_ping": False,
        "hide_parameters": True,
        "isolation_level": "AUTOCOMMIT",
    }
    if memory:
        # One connection that every thread shares, so all of them see one database.
        defaults.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    elif target.get_driver_name() in ("psycopg", "psycopg2") and "connect_timeout" not in target.query:
        defaults["connect_args"] = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT}
    config = {"sqlalchemy.url": url, **{f"sqlalchemy.{k}": v for k, v in coerced.items()}}
    try:
        engine = sa.engine_from_config(
            config, prefix="sqlalchemy.", **{k: v for k, v in defaults.items() if k not in coerced}
        )
    except ImportError as exc:
        extra, scheme = DRIVER_EXTRAS.get(backend, ("", ""))
        hint = f'pip install "{extra}" and use a {scheme}:// URL' if extra else "install the driver"
        raise StoreUnavailable(
            f"the sql store's database driver is not installed ({exc}): {hint}", "sql", address
        ) from exc
    except (TypeError, ValueError, sa.exc.ArgumentError) as exc:
        raise ConfigurationError(f"SQLAlchemy refuses the sql store's session.sa.* options: {exc}") from exc
    if backend == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
            # Readers never block the writer and a busy writer is waited for, not failed.
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

    return engine


class _Disconnected(StoreUnavailable):
    """The connection died under a statement; worth one more try on a new one."""


class _DuplicateKey(StoreError):
    """An INSERT met an existing row; ``save`` decides what that means."""


class SQLStore(Store):
    name = "sql"

    def __init__(
        self,
        engine: sa.Engine,
        table_name: str = "satchel_sessions",
        schema_name: str | None = None,
        *,
        address: str | None = None,
        owns_engine: bool = False,
    ) -> None:
        """Use ``engine`` (disposed on ``close`` only if ``owns_engine``); create the table if missing."""
        _require_sqlalchemy()
        self.engine = engine
        self.table = session_table(table_name, schema_name)
        self._address = address or engine.url.render_as_string(hide_password=True)
        self._owns_engine = owns_engine
        # A shared in-memory SQLite connection must not interleave two transactions.
        memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
        self._serial: AbstractContextManager[Any] = threading.Lock() if memory else nullcontext()
        self._create_table()

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> SQLStore:
        _require_sqlalchemy()
        if settings.engine is not None:
            if not isinstance(settings.engine, sa.Engine):
                raise ConfigurationError(
                    f"session.bind must be a SQLAlchemy Engine, not {type(settings.engine).__name__}", "bind"
                )
            return cls(settings.engine, settings.table_name, settings.schema_name)
        options = dict(settings.sa_options)
        url = settings.url or options.get("url")  # Beaker also accepted session.sa.url
        options.pop("url", None)
        if not url:
            raise ConfigurationError("the sql store needs session.url (or session.bind)", "url")
        engine = create_engine(url, options, settings.address)
        try:
            return cls(engine, settings.table_name, settings.schema_name, address=settings.address, owns_engine=True)
        except BaseException:
            engine.dispose()
            raise

    @property
    def address(self) -> str:
        return self._address

    # -- running statements ---------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        message = f"the sql store cannot reach its database at {self._address}: {_reason(exc)}"
        return StoreUnavailable(message, self.name, self._address)

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        """One short transaction, with SQLAlchemy's errors turned into satchel's."""
        with self._serial:
            try:
                connection = self.engine.connect()
            except sa.exc.SQLAlchemyError as exc:  # refused, unknown host, bad login, pool exhausted
                raise self._unavailable(exc) from exc
            try:
                with connection, connection.begin():
                    yield connection
            except sa.exc.IntegrityError as exc:
                raise _DuplicateKey(f"duplicate key in the sql store at {self._address}") from exc
            except sa.exc.SQLAlchemyError as exc:
                if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
                    raise _Disconnected(str(self._unavailable(exc)), self.name, self._address) from exc
                raise StoreError(f"the sql store at {self._address} failed: {_reason(exc)}") from exc

    def _rowcount(self, statement: sa.Executable) -> int:
        def run() -> int:
            with self._transaction() as connection:
                return connection.execute(statement).rowcount

        return self._once_more(run)

    def _rows(self, statement: sa.Executable) -> Sequence[sa.Row[Any]]:
        def run() -> Sequence[sa.Row[Any]]:
            with self._transaction() as connection:
                return connection.execute(statement).all()

        return self._once_more(run)

    @staticmethod
    def _once_more(run: Callable[[], _T]) -> _T:
        """Run a one-statement transaction; if its pooled connection turned out to be
        dead, run it once more (the pool has then dropped its stale connections).

        A statement whose connection was already dead never reached the server, so
        the retry does not run it twice. Should a connection die in the middle of a
        conditional write, the retry reports a conflict, which the session manager
        resolves by merging.
        """
        try:
            return run()
        except _Disconnected:
            return run()

    def _create_table(self) -> None:
        try:
            with self._transaction() as connection:
                self.table.create(connection, checkfirst=True)
        except StoreUnavailable:
            raise
        except StoreError:
            # Another process created it between our check and our CREATE: check again.
            with self._transaction() as connection:
                self.table.create(connection, checkfirst=True)

    def _live(self, now: int) -> sa.ColumnElement[bool]:
        expires_at = self.table.c.expires_at
        return sa.or_(expires_at.is_(None), expires_at > now)

    # -- the store contract -----------------------------------------------------------

    def load(self, key: str) -> Record | None:
        check_key(key)
        c = self.table.c
        rows = self._rows(sa.select(c.data, c.version, c.expires_at).where(c.key == key, self._live(_now_ms())))
        if not rows:
            return None
        row = rows[0]
        expires_at = None if row.expires_at is None else row.expires_at / 1000
        return Record(bytes(row.data), int(row.version), expires_at)

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> bool:
        check_key(key)
        c = self.table.c
        now = _now_ms()
        values = {"data": bytes(data), "expires_at": None if ttl is None else now + ttl * 1000}
        if expected_version is not None:
            if not isinstance(expected_version, int) or isinstance(expected_version, bool):
                return False  # not a version this store hands out
            update = (
                self.table.update()
                .where(c.key == key, c.version == expected_version, self._live(now))
                .values(version=c.version + 1, **values)
            )
            return self._rowcount(update) == 1
        # A brand new key costs one INSERT. A duplicate may be an expired row nobody
        # purged yet: take that over. If it was not expired, one more INSERT tells a
        # live row (somebody else created it first) from one purged meanwhile.
        if self._insert(key, values):
            return True
        expired = sa.and_(c.key == key, c.expires_at <= now)
        if self._rowcount(self.table.update().where(expired).values(version=_new_version(), **values)):
            return True
        return self._insert(key, values)

    def _insert(self, key: str, values: dict[str, Any]) -> bool:
        try:
            self._rowcount(self.table.insert().values(key=key, version=_new_version(), **values))
        except _DuplicateKey:
            return False
        return True

    def touch(self, key: str, ttl: int | None) -> bool:
        check_key(key)
        now = _now_ms()
        update = (
            self.table.update()
            .where(self.table.c.key == key, self._live(now))
            .values(expires_at=None if ttl is None else now + ttl * 1000)
        )
        return self._rowcount(update) == 1

    def delete(self, key: str) -> None:
        check_key(key)
        self._rowcount(self.table.delete().where(self.table.c.key == key))

    def purge_expired(self) -> int:
        """Delete expired rows, ``PURGE_BATCH`` per statement, so no transaction grows large."""
        c = self.table.c
        expired = c.expires_at <= _now_ms()
        if self.engine.dialect.name in ("mysql", "mariadb"):
            # MySQL refuses LIMIT in an IN subquery but has DELETE ... LIMIT.
            batch = self.table.delete().where(expired).with_dialect_options(mysql_limit=PURGE_BATCH)
        else:
            # ``expired`` is repeated outside so a row touched meanwhile survives.
            chosen = sa.select(c.key).where(expired).limit(PURGE_BATCH)
            batch = self.table.delete().where(c.key.in_(chosen), expired)
        total = 0
        while True:
            removed = self._rowcount(batch)
            total += removed
            if removed < PURGE_BATCH:
                return total

    def count(self) -> int:
        rows = self._rows(sa.select(sa.func.count()).select_from(self.table).where(self._live(_now_ms())))
        return int(rows[0][0])

    def close(self) -> None:
        """Dispose of the engine if the store created it; an application's engine stays open."""
        if self._owns_engine:
            self.engine.dispose()
