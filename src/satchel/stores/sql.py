"""Records in one SQL table, through SQLAlchemy 2 (Beaker's ``ext:database``).

- Every operation is one statement in its own short transaction: ``load`` one
  SELECT, a conditional ``save`` one UPDATE that compares the version, a new
  record one INSERT, ``touch`` one UPDATE. The row's ``version`` column makes
  writes conditional, so no row is ever locked across two statements.
- The statements are built once per store as SQLAlchemy Core statements, with
  bound parameters. On an engine the store made itself in autocommit mode, on
  SQLite (pysqlite), PostgreSQL (psycopg 3) or MariaDB/MySQL (PyMySQL), the hot
  ones (``load``, ``save``, ``touch``, ``delete``) are also compiled once to the
  driver's SQL and run on a pooled DBAPI connection directly: SQLAlchemy's
  execution layer (a ``Connection``, an execution context, a result object per
  statement) cost more than the database did. The pool, its events, the
  dialect's disconnect detection and SQLAlchemy's exception classes are still
  used. Other engines and drivers, an engine that logs its statements
  (``echo``), and an engine, dialect or ``Connection`` class with event
  listeners (a tracer's ``before_cursor_execute``, say) run every statement
  through Core, so listeners see what they expect; so does a SQLAlchemy
  without the internal details this path relies on (2.0 and 2.1 have them).
- ``expires_at`` holds milliseconds since the epoch (``NULL``: never); an
  expired row counts as absent everywhere and ``purge_expired`` deletes such rows
  in batches. Expiry uses the application servers' clocks, which NTP keeps close.
- The table is created at start-up when missing. On MariaDB/MySQL keys are
  ``ascii_bin`` (compared case-sensitively) and data is a LONGBLOB.
- Engines the store creates itself run in autocommit mode (each statement is
  its own transaction, without BEGIN/COMMIT round trips; the store then does not
  begin one either, and PyMySQL/mysqlclient connections go back to the pool
  without a ROLLBACK; nor does the pool roll back a connection it gets back,
  ``pool_reset_on_return=None``) and hide statement parameters (session data)
  from error messages. They do not ping a connection before every statement: a
  pooled connection found dead (a restarted server) is replaced and the
  statement run once more on a fresh one, so the same store works again once the
  server is back.
"""

from __future__ import annotations

import inspect
import operator
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from ..clock import Clock, system_clock
from ..config.coerce import Coercer, as_is, as_mapping, as_optional_str, as_str
from ..errors import ConfigurationError, StoreError, StoreUnavailable
from ..settings import StoreSettings
from .base import Record, Version, VersionedStore, check_key

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
        # statement is run once more on a fresh one; see SQLStore._run.
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
    if coerced.get("isolation_level", "AUTOCOMMIT") == "AUTOCOMMIT":
        # Pooled connections rest in autocommit mode: the pool has no transaction to
        # roll back when one comes back (a Connection still ends its own first).
        defaults["pool_reset_on_return"] = None
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
                _switch_to_wal(cursor)
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

    return engine


class _Disconnected(StoreUnavailable):
    """The connection died under a statement; worth one more try on a new one."""


class _DuplicateKey(StoreError):
    """An INSERT met an existing row; ``save`` decides what that means."""


#: DBAPI drivers the hot statements run on directly (see the module docstring).
DIRECT_DRIVERS = frozenset({"pysqlite", "psycopg", "pymysql"})
#: The parameters of the store's statements (see ``SQLStore._prepare_statements``).
PARAMETERS = frozenset({"k", "now", "expected", "new_data", "new_expires", "new_version"})
#: Parameters whose SQLAlchemy bind processor may be skipped: ``new_data`` is
#: always ``bytes``, which every driver in DIRECT_DRIVERS takes as a binary value.
UNPROCESSED = frozenset({"new_data"})

_Params = dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A hot statement: the Core statement, and its SQL for the DBAPI when it can
    run there (``sql`` is None otherwise)."""

    statement: sa.Executable
    sql: str | None = None
    #: For a positional paramstyle: the parameters in the order the SQL takes them.
    positional: Callable[[_Params], tuple[Any, ...]] | None = None


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode = WAL``, waiting out other connections doing the same.

    Switching a new database file to WAL needs it to itself, and SQLite answers
    "database is locked" at once, without the busy timeout, while another
    connection switches it (processes starting together on a fresh file).
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as exc:  # sqlite3.OperationalError; the driver's module is not imported here
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def _has_internals(engine: sa.Engine) -> bool:
    """Whether this SQLAlchemy has the details the direct path relies on (2.0 and 2.1
    do); another version runs every statement through Core instead."""
    return (
        hasattr(engine, "_has_events")
        and hasattr(engine, "_should_log_info")
        and hasattr(engine.dialect, "_has_events")
        and hasattr(sa.Connection, "_has_events")
        and hasattr(engine.pool, "_invalidate")
        and hasattr(engine.dialect, "loaded_dbapi")
        and hasattr(engine.dispatch, "_event_names")
        and hasattr(engine.dialect.dispatch, "_event_names")
    )


def has_listeners(target: Any) -> bool:
    """Whether an engine or dialect has an event listener now. Its ``_has_events``
    flag says that one was added at some time (to it or to its class), and stays
    set after the listener is removed."""
    dispatch = target.dispatch
    return any(getattr(dispatch, name) for name in dispatch._event_names)


def _in_order(names: Sequence[str]) -> Callable[[_Params], tuple[Any, ...]]:
    if len(names) == 1:
        name = names[0]
        return lambda params: (params[name],)
    getter: Callable[[_Params], tuple[Any, ...]] = operator.itemgetter(*names)
    return getter


class SQLStore(VersionedStore):
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
        a transaction of their own: every statement is one already. Only then, on an
        engine the store owns, do the hot statements run on the DBAPI connection.
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
        self._create_table()
        # After the first connection: a dialect learns the server's version then,
        # which may change how it writes SQL (MariaDB or MySQL, for one).
        self._prepare_statements()

    @property
    def runs_direct(self) -> bool:
        """Whether the hot statements can run on the DBAPI connection (else through Core)."""
        return self._select.sql is not None

    def _can_run_direct(self) -> bool:
        """Whether the hot statements may skip SQLAlchemy's execution layer on this engine."""
        engine, dialect = self.engine, self.engine.dialect
        return (
            self._owns_engine
            and self._autocommit
            and dialect.driver in DIRECT_DRIVERS
            and not dialect.is_async
            # Isolation level set per connection, not in execution options that a
            # Connection would apply and undo around every statement.
            and getattr(dialect, "_on_connect_isolation_level", None) == "AUTOCOMMIT"
            and not engine.get_execution_options()
            and _has_internals(engine)
        )

    def _prepared(self, statement: sa.Executable, direct: bool) -> _Prepared:
        """``statement``, compiled for the DBAPI if ``direct`` and nothing in it needs Core."""
        if not direct or not isinstance(statement, sa.ClauseElement):
            return _Prepared(statement)
        dialect = self.engine.dialect
        compiled: Any = statement.compile(dialect=dialect)
        if (
            not set(compiled.binds) <= PARAMETERS
            or not set(getattr(compiled, "_bind_processors", {"?": None})) <= UNPROCESSED
            or compiled.literal_execute_params
            or compiled.post_compile_params
        ):
            return _Prepared(statement)
        if dialect.positional:
            return _Prepared(statement, compiled.string, _in_order(compiled.positiontup))
        return _Prepared(statement, compiled.string)

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
        increment = c.version + sa.literal_column("1", sa.BigInteger())
        direct = self._can_run_direct()
        self._select = self._prepared(sa.select(c.data, c.version, c.expires_at).where(key, live), direct)
        self._update = self._prepared(
            table.update().where(key, c.version == bind("expected"), live).values(version=increment, **written),
            direct,
        )
        self._insert_row = self._prepared(
            table.insert().values(key=bind("k"), version=bind("new_version"), **written), direct
        )
        self._take_over = self._prepared(
            table.update().where(key, expired).values(version=bind("new_version"), **written), direct
        )
        self._touch = self._prepared(table.update().where(key, live).values(expires_at=bind("new_expires")), direct)
        self._delete = self._prepared(table.delete().where(key), direct)
        if not all(p.sql for p in (self._update, self._insert_row, self._take_over, self._touch, self._delete)):
            self._select = _Prepared(self._select.statement)  # all or none, so runs_direct tells
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

    def _execute(self, statement: sa.Executable, params: _Params | None, fetch: bool) -> Any:
        """Run one statement through Core in a transaction of its own: its first row
        (or None) if ``fetch``, else how many rows it changed. Like
        :meth:`_transaction`, without the cost of a generator and, on an autocommit
        engine, of BEGIN and COMMIT (there every statement is a transaction of its own)."""
        with self._serial:
            connection = self._connect()
            try:
                with connection:
                    if self._autocommit:
                        result = connection.execute(statement, params)
                        return result.first() if fetch else result.rowcount
                    with connection.begin():
                        result = connection.execute(statement, params)
                        return result.first() if fetch else result.rowcount
            except sa.exc.SQLAlchemyError as exc:
                raise self._failure(exc) from exc

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

    def _run(self, prepared: _Prepared, params: _Params, fetch: bool) -> Any:
        """Run a hot statement as its own transaction (see _once_more): its first row
        (or None) if ``fetch``, else how many rows it changed."""
        engine = self.engine
        sql = prepared.sql
        if (
            sql is None
            # Listeners (an application's, a tracer's) get every statement through Core,
            # with the Connection and execution context they expect.
            or (engine._has_events and has_listeners(engine))
            or (engine.dialect._has_events and has_listeners(engine.dialect))  # handle_error, do_execute
            or sa.Connection._has_events  # listeners on every Connection
            or engine._should_log_info()  # echo: Core logs the statements
        ):
            return self._once_more(self._execute, prepared.statement, params, fetch)
        args: Any = params if prepared.positional is None else prepared.positional(params)
        return self._once_more(self._run_direct, sql, args, fetch)

    def _run_direct(self, sql: str, args: Any, fetch: bool) -> Any:
        """Run ``sql`` on a pooled DBAPI connection, as SQLAlchemy would but without its
        execution layer; the connection is in autocommit mode, so this is the whole
        transaction. Errors become SQLAlchemy's exceptions, then satchel's."""
        with self._serial:
            engine = self.engine
            dialect = engine.dialect
            dbapi_error = dialect.loaded_dbapi.Error
            try:
                fairy = engine.pool.connect()
            except dbapi_error as exc:  # refused, unknown host, bad login
                error = sa.exc.DBAPIError.instance(
                    None, None, exc, dbapi_error, hide_parameters=engine.hide_parameters, dialect=dialect
                )
                raise self._unavailable(error) from error
            except sa.exc.SQLAlchemyError as exc:  # the pool is exhausted
                raise self._unavailable(exc) from exc
            cursor = None
            try:
                cursor = fairy.cursor()
                cursor.execute(sql, args)
                result = cursor.fetchone() if fetch else cursor.rowcount
                cursor.close()
            except dbapi_error as exc:
                disconnected = dialect.is_disconnect(exc, fairy.dbapi_connection, cursor)
                error = sa.exc.DBAPIError.instance(
                    sql,
                    args,
                    exc,
                    dbapi_error,
                    hide_parameters=engine.hide_parameters,
                    connection_invalidated=disconnected,
                    dialect=dialect,
                )
                error.__cause__ = exc
                if disconnected:
                    # Drop it, and every connection the pool made before it (as Core does).
                    engine.pool._invalidate(fairy, exc)
                else:
                    if cursor is not None:
                        with suppress(dbapi_error):  # the statement's error is the one to report
                            cursor.close()
                    fairy.close()
                raise self._failure(error) from error
            except BaseException as exc:
                # Not the database's error (interrupted, a listener failed): the
                # connection may be in the middle of a statement, so it is not reused.
                fairy.invalidate(exc)
                raise
            fairy.close()
            return result

    def _rowcount(self, statement: sa.Executable, params: _Params | None = None) -> int:
        """A statement that is not hot, through Core (with one retry on a dead connection)."""
        return int(self._once_more(self._execute, statement, params, False))

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
        row = self._run(self._select, {"k": key, "now": _now_ms()}, True)
        if row is None:
            return None
        data, version, expires_at = row
        return Record(bytes(data), int(version), None if expires_at is None else expires_at / 1000)

    def _save(
        self, key: str, data: bytes, ttl: int | None, expected_version: Version | None
    ) -> tuple[bool, Version | None]:
        check_key(key)
        now = _now_ms()
        row = {"k": key, "new_data": bytes(data), "new_expires": None if ttl is None else now + ttl * 1000}
        if expected_version is not None:
            if not isinstance(expected_version, int) or isinstance(expected_version, bool):
                return False, None  # not a version this store hands out
            row["expected"], row["now"] = expected_version, now
            changed: int = self._run(self._update, row, False)
            return (True, expected_version + 1) if changed == 1 else (False, None)
        # A brand new key costs one INSERT. A duplicate may be an expired row nobody
        # purged yet: take that over. If it was not expired, one more INSERT tells a
        # live row (somebody else created it first) from one purged meanwhile.
        version = self._insert(row)
        if version is not None:
            return True, version
        version = _new_version()
        if self._run(self._take_over, {**row, "new_version": version, "now": now}, False):
            return True, version
        version = self._insert(row)
        return version is not None, version

    def _insert(self, row: _Params) -> int | None:
        """The new row's version, or None when the key exists."""
        version = _new_version()
        try:
            self._run(self._insert_row, {**row, "new_version": version}, False)
        except _DuplicateKey:
            return None
        return version

    def touch(self, key: str, ttl: int | None) -> bool:
        check_key(key)
        now = _now_ms()
        params = {"k": key, "now": now, "new_expires": None if ttl is None else now + ttl * 1000}
        changed: int = self._run(self._touch, params, False)
        return changed == 1

    def delete(self, key: str) -> None:
        check_key(key)
        self._run(self._delete, {"k": key}, False)

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
        row = self._once_more(self._execute, self._count, {"now": _now_ms()}, True)
        return int(row[0])

    def close(self) -> None:
        """Dispose of the engine if the store created it; an application's engine stays open."""
        if self._owns_engine:
            self.engine.dispose()

    # -- settings by name: until this store builds itself from its options ----------

    options: ClassVar[Mapping[str, Coercer]] = {
        "url": as_optional_str,
        "table_name": as_str,
        "schema_name": as_optional_str,
        "sa": as_mapping,
        "bind": as_is,
    }

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> SQLStore:
        return cls.from_settings(StoreSettings.of(cls.name, options))
