"""Records in one SQL table, through SQLAlchemy 2 Core (Beaker's ``ext:database``).

- Every operation is one statement in its own short transaction: ``load`` one
  SELECT, a conditional ``save`` one UPDATE that compares the version, a new
  record one INSERT, ``touch`` one UPDATE. The row's ``version`` column makes
  writes conditional, so no row is ever locked across two statements.
- The statements are built once per store, with bound parameters, so SQLAlchemy
  finds each compiled in its cache at once instead of building and cache-keying
  a new statement per operation (which used to cost more than the database did).
- ``expires_at`` holds milliseconds since the epoch (``NULL``: never); an
  expired row counts as absent everywhere and ``purge_expired`` deletes such rows
  in batches. Expiry uses the application servers' clocks, which NTP keeps close.
- The table is created at start-up when missing. On MariaDB/MySQL keys are
  ``ascii_bin`` (compared case-sensitively) and data is a LONGBLOB.
- Engines the store creates itself run in autocommit mode (each statement is
  its own transaction, without BEGIN/COMMIT round trips; the store then does not
  begin one either, and PyMySQL/mysqlclient connections go back to the pool
  without a ROLLBACK), ping connections before use so the same store works again
  once a restarted server is back, and hide statement parameters (session data)
  from error messages.
"""

from __future__ import annotations

import inspect
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
    from sqlalchemy.engine.default import DefaultDialect
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


#: Drivers that send a ROLLBACK (a round trip) even for a connection in autocommit
#: mode, and that SQLAlchemy can ask whether a connection is in it without one.
ROLLBACK_SENDERS = frozenset({"pymysql", "mysqldb"})


def _skips_autocommit_rollback(driver: str) -> bool:
    """Whether an engine on ``driver`` should skip rolling back autocommit connections
    (``skip_autocommit_rollback``, new in SQLAlchemy 2.0.43)."""
    return (
        driver in ROLLBACK_SENDERS
        and "skip_autocommit_rollback" in inspect.signature(DefaultDialect.__init__).parameters
    )


def _runs_in_autocommit(options: Mapping[str, Any]) -> bool:
    """Whether an engine :func:`create_engine` makes from ``options`` is in autocommit mode."""
    level = options.get("isolation_level", "AUTOCOMMIT")
    execution = options.get("execution_options")
    if isinstance(execution, Mapping):
        level = execution.get("isolation_level", level)
    return bool(level == "AUTOCOMMIT")


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
    coercions = {
        "pool_pre_ping": asbool,
        "pool_use_lifo": asbool,
        "hide_parameters": asbool,
        "skip_autocommit_rollback": asbool,
    }
    coerced = {k: coercions[k](v) if k in coercions else v for k, v in options.items()}
    defaults: dict[str, Any] = {
        # No pre-ping: it costs a round trip per statement. A connection that died
        # while pooled (a database restart) is detected when used, and the
        # statement is run once more on a fresh one; see _once_more.
        "pool_pre_ping": False,
        "hide_parameters": True,
        "isolation_level": "AUTOCOMMIT",
    }
    try:
        driver = target.get_driver_name()
    except (ImportError, sa.exc.ArgumentError):  # engine_from_config reports it below
        driver = ""
    if _skips_autocommit_rollback(driver):
        # An autocommit connection has nothing to roll back when it ends a statement
        # or goes back to the pool; these drivers would still send a ROLLBACK.
        defaults["skip_autocommit_rollback"] = True
    if memory:
        # One connection that every thread shares, so all of them see one database.
        defaults.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    elif driver in ("psycopg", "psycopg2") and "connect_timeout" not in target.query:
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
    except sa.exc.NoSuchModuleError as exc:
        raise ConfigurationError(f"the sql store url names no database SQLAlchemy knows: {exc}", "url") from exc
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
        autocommit: bool = False,
    ) -> None:
        """Use ``engine`` (disposed on ``close`` only if ``owns_engine``); create the table if missing.

        ``autocommit`` says that ``engine`` runs in AUTOCOMMIT mode (as one made by
        :func:`create_engine` does by default), so statements need not be wrapped in
        a transaction of their own: every statement is one already.
        """
        _require_sqlalchemy()
        self.engine = engine
        self.table = session_table(table_name, schema_name)
        self._address = address or engine.url.render_as_string(hide_password=True)
        self._owns_engine = owns_engine
        self._autocommit = autocommit
        # A shared in-memory SQLite connection must not interleave two transactions.
        memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
        self._serial: AbstractContextManager[Any] = threading.Lock() if memory else nullcontext()
        self._prepare_statements()
        self._create_table()

    def _prepare_statements(self) -> None:
        """Build every statement once, with bound parameters.

        Parameters: ``k`` the key, ``now`` the current time (ms), ``expected`` the
        version a conditional write compares, ``new_data``, ``new_expires`` and
        ``new_version`` the values written (none named like a column, which
        SQLAlchemy would read as a value for that column).
        """
        table, c = self.table, self.table.c
        bind = sa.bindparam
        key, now = c.key == bind("k"), bind("now", type_=sa.BigInteger())
        live = sa.or_(c.expires_at.is_(None), c.expires_at > now)
        expired = c.expires_at <= now
        written: dict[str, Any] = {"data": bind("new_data"), "expires_at": bind("new_expires")}
        self._select = sa.select(c.data, c.version, c.expires_at).where(key, live)
        self._update = (
            table.update().where(key, c.version == bind("expected"), live).values(version=c.version + 1, **written)
        )
        self._insert_row = table.insert().values(key=bind("k"), version=bind("new_version"), **written)
        self._take_over = table.update().where(key, expired).values(version=bind("new_version"), **written)
        self._touch = table.update().where(key, live).values(expires_at=bind("new_expires"))
        self._delete = table.delete().where(key)
        self._count = sa.select(sa.func.count()).select_from(table).where(live)
        if self.engine.dialect.name in ("mysql", "mariadb"):
            # MySQL refuses LIMIT in an IN subquery but has DELETE ... LIMIT.
            self._purge = table.delete().where(expired).with_dialect_options(mysql_limit=PURGE_BATCH)
        else:
            # ``expired`` is repeated outside so a row touched meanwhile survives.
            chosen = sa.select(c.key).where(expired).limit(PURGE_BATCH)
            self._purge = table.delete().where(c.key.in_(chosen), expired)

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
            return cls(
                engine,
                settings.table_name,
                settings.schema_name,
                address=settings.address,
                owns_engine=True,
                autocommit=_runs_in_autocommit(options),
            )
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

    def _failure(self, exc: sa.exc.SQLAlchemyError) -> StoreError | StoreUnavailable:
        """Satchel's error for SQLAlchemy's ``exc``, raised while a statement ran."""
        if isinstance(exc, sa.exc.IntegrityError):
            return _DuplicateKey(f"duplicate key in the sql store at {self._address}")
        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
            return _Disconnected(str(self._unavailable(exc)), self.name, self._address)
        return StoreError(f"the sql store at {self._address} failed: {_reason(exc)}")

    def _connect(self) -> sa.Connection:
        try:
            return self.engine.connect()
        except sa.exc.SQLAlchemyError as exc:  # refused, unknown host, bad login, pool exhausted
            raise self._unavailable(exc) from exc

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        """One short transaction, with SQLAlchemy's errors turned into satchel's."""
        with self._serial:
            connection = self._connect()
            try:
                with connection, connection.begin():
                    yield connection
            except sa.exc.SQLAlchemyError as exc:
                raise self._failure(exc) from exc

    def _execute(self, statement: sa.Executable, params: Mapping[str, Any] | None, rows: bool) -> Any:
        """Run one prepared statement in a transaction of its own: its rows if
        ``rows``, else how many rows it changed. Like :meth:`_transaction`, without
        the cost of a generator and, on an autocommit engine, of BEGIN and COMMIT
        (there every statement is a transaction of its own)."""
        with self._serial:
            connection = self._connect()
            try:
                with connection:
                    if self._autocommit:
                        result = connection.execute(statement, params)
                        return result.all() if rows else result.rowcount
                    with connection.begin():
                        result = connection.execute(statement, params)
                        return result.all() if rows else result.rowcount
            except sa.exc.SQLAlchemyError as exc:
                raise self._failure(exc) from exc

    def _rowcount(self, statement: sa.Executable, params: Mapping[str, Any] | None = None) -> int:
        return int(self._once_more(self._execute, statement, params, False))

    def _rows(self, statement: sa.Executable, params: Mapping[str, Any] | None = None) -> Sequence[sa.Row[Any]]:
        rows: Sequence[sa.Row[Any]] = self._once_more(self._execute, statement, params, True)
        return rows

    @staticmethod
    def _once_more(run: Callable[..., _T], *args: Any) -> _T:
        """Run a one-statement transaction; if its pooled connection turned out to be
        dead, run it once more (the pool has then dropped its stale connections).

        A statement whose connection was already dead never reached the server, so
        the retry does not run it twice. Should a connection die in the middle of a
        conditional write, the retry reports a conflict, which the session manager
        resolves by merging.
        """
        try:
            return run(*args)
        except _Disconnected:
            return run(*args)

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

    # -- the store contract -----------------------------------------------------------

    def load(self, key: str) -> Record | None:
        check_key(key)
        rows = self._rows(self._select, {"k": key, "now": _now_ms()})
        if not rows:
            return None
        row = rows[0]
        expires_at = None if row.expires_at is None else row.expires_at / 1000
        return Record(bytes(row.data), int(row.version), expires_at)

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> bool:
        check_key(key)
        now = _now_ms()
        row = {"k": key, "new_data": bytes(data), "new_expires": None if ttl is None else now + ttl * 1000}
        if expected_version is not None:
            if not isinstance(expected_version, int) or isinstance(expected_version, bool):
                return False  # not a version this store hands out
            return self._rowcount(self._update, {**row, "expected": expected_version, "now": now}) == 1
        # A brand new key costs one INSERT. A duplicate may be an expired row nobody
        # purged yet: take that over. If it was not expired, one more INSERT tells a
        # live row (somebody else created it first) from one purged meanwhile.
        if self._insert(row):
            return True
        if self._rowcount(self._take_over, {**row, "new_version": _new_version(), "now": now}):
            return True
        return self._insert(row)

    def _insert(self, row: dict[str, Any]) -> bool:
        try:
            self._rowcount(self._insert_row, {**row, "new_version": _new_version()})
        except _DuplicateKey:
            return False
        return True

    def touch(self, key: str, ttl: int | None) -> bool:
        check_key(key)
        now = _now_ms()
        params = {"k": key, "now": now, "new_expires": None if ttl is None else now + ttl * 1000}
        return self._rowcount(self._touch, params) == 1

    def delete(self, key: str) -> None:
        check_key(key)
        self._rowcount(self._delete, {"k": key})

    def purge_expired(self) -> int:
        """Delete expired rows, ``PURGE_BATCH`` per statement, so no transaction grows large."""
        params = {"now": _now_ms()}
        total = 0
        while True:
            removed = self._rowcount(self._purge, params)
            total += removed
            if removed < PURGE_BATCH:
                return total

    def count(self) -> int:
        rows = self._rows(self._count, {"now": _now_ms()})
        return int(rows[0][0])

    def close(self) -> None:
        """Dispose of the engine if the store created it; an application's engine stays open."""
        if self._owns_engine:
            self.engine.dispose()
