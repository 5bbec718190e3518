"""Records in one SQL table, through SQLAlchemy Core (Beaker's ``ext:database``).

- Every operation is one statement in its own short transaction: ``load`` one
  SELECT, a conditional ``save`` one UPDATE that compares the version, a new
  record one INSERT, ``touch`` one UPDATE. The row's ``version`` column makes
  writes conditional, so no row is ever locked across two statements.
- The statements are Core constructs built once per store and run with
  ``Connection.execute``: SQLAlchemy caches their compiled form, and its events
  (an application's listeners, a tracer's instrumentation) see every one.
- ``expires_at`` holds milliseconds since the epoch (``NULL``: never), read from
  the store's clock; an expired row counts as absent everywhere and
  ``purge_expired`` deletes such rows in batches.
- The table is created at start-up when missing; a table of another layout
  under that name (Beaker's, say) is refused then, not at every request. On
  MariaDB/MySQL keys are ``ascii_bin`` (compared case-sensitively) and data is a
  LONGBLOB.
- Engines the store creates itself run in autocommit mode: every statement is
  its own transaction, without BEGIN/COMMIT round trips, and connections go back
  to the pool without a ROLLBACK. They hide statement parameters (session data)
  from error messages and do not ping a connection before every statement: a
  pooled connection found dead (a restarted server) is replaced and the
  statement run once more on a fresh one. An application's engine (``bind``) is
  used as it is configured, each statement in a transaction of its own.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from ..clock import Clock, system_clock
from ..config.coerce import as_bool, as_optional_str
from ..errors import ConfigurationError, StoreError, StoreUnavailable
from .base import Record, Store, Version, check_key

try:
    import sqlalchemy as sa
    from sqlalchemy.dialects import mysql
    from sqlalchemy.pool import StaticPool
except ImportError:  # pragma: no cover - the tests check this in a subprocess
    sa = None  # type: ignore[assignment]

DEFAULT_TABLE_NAME = "satchel_sessions"
#: The columns the store reads and writes; a table at ``table_name`` must have them.
COLUMNS = ("key", "data", "version", "expires_at")
#: Expired rows deleted per statement (and so per transaction) by ``purge_expired``.
PURGE_BATCH = 1000
SQLITE_BUSY_TIMEOUT_MS = 5000
#: Seconds libpq waits for a connection; its own default is to wait forever.
POSTGRES_CONNECT_TIMEOUT = 10
#: Bytes a write statement carries besides the record's data (SQL text, key, numbers).
STATEMENT_OVERHEAD = 1024
#: Backend -> (extra that installs its driver, URL scheme that uses that driver).
DRIVER_EXTRAS = {
    "postgresql": ("satchel[postgresql]", "postgresql+psycopg"),
    "mysql": ("satchel[mysql]", "mysql+pymysql"),
    "mariadb": ("satchel[mysql]", "mysql+pymysql"),
}
#: Drivers that send a ROLLBACK (a round trip) even for a connection in autocommit
#: mode unless the engine says ``skip_autocommit_rollback`` (SQLAlchemy 2.0.43).
ROLLBACK_SENDERS = frozenset({"pymysql", "mysqldb"})


def _require_sqlalchemy() -> None:
    if sa is None:
        raise StoreUnavailable('the sql store needs SQLAlchemy: pip install "satchel[sql]"', "sql")


def _new_version() -> int:
    """A random version, so a deleted and re-created record never repeats one."""
    return secrets.randbits(62)


def _reason(exc: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's statement and parameters."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _while_running(exc: BaseException) -> bool:
    """Whether satchel's ``exc`` comes from a statement the server was sent (a failure
    to connect has none)."""
    cause = exc.__cause__
    return isinstance(cause, sa.exc.DBAPIError) and cause.statement is not None


def _as_sa_options(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{key} must be a mapping of create_engine options, not {value!r}", key)
    return dict(value)


def _as_bind(value: Any, key: str) -> Any:
    """An Engine given natively; checked in ``from_options``, once SQLAlchemy is imported."""
    return value


# -- the table and its statements -------------------------------------------------------


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


@dataclass(frozen=True)
class Statements:
    """Every statement the store runs, with bound parameters: ``k`` the key, ``now``
    the current time (ms), ``expected`` the version a conditional write compares,
    ``new_data``, ``new_expires`` and ``new_version`` the values written (none named
    like a column, which SQLAlchemy would read as a value for that column)."""

    select: sa.Select[Any]
    update: sa.Update
    insert: sa.Insert
    take_over: sa.Update
    touch: sa.Update
    delete: sa.Delete
    count: sa.Select[Any]
    count_excluding: sa.Select[Any]
    purge: sa.Delete

    @classmethod
    def for_table(cls, table: sa.Table, dialect_name: str) -> Statements:
        c, bind = table.c, sa.bindparam
        key, now = c.key == bind("k"), bind("now", type_=sa.BigInteger())
        live = sa.or_(c.expires_at.is_(None), c.expires_at > now)
        expired = c.expires_at <= now
        written: dict[str, Any] = {
            "data": bind("new_data"),
            "expires_at": bind("new_expires"),
            "version": bind("new_version"),
        }
        if dialect_name in ("mysql", "mariadb"):
            # MySQL refuses LIMIT in an IN subquery but has DELETE ... LIMIT.
            purge = table.delete().where(expired).with_dialect_options(mysql_limit=PURGE_BATCH)
        else:
            # ``expired`` is repeated outside so a row touched meanwhile survives.
            chosen = sa.select(c.key).where(expired).limit(PURGE_BATCH)
            purge = table.delete().where(c.key.in_(chosen), expired)
        return cls(
            select=sa.select(c.data, c.version, c.expires_at).where(key, live),
            update=table.update().where(key, c.version == bind("expected"), live).values(written),
            insert=table.insert().values(key=bind("k"), **written),
            take_over=table.update().where(key, expired).values(written),
            touch=table.update().where(key, live).values(expires_at=bind("new_expires")),
            delete=table.delete().where(key),
            count=sa.select(sa.func.count()).select_from(table).where(live),
            count_excluding=sa.select(sa.func.count()).select_from(table).where(live, c.data != bind("excluded")),
            purge=purge,
        )


# -- engines ------------------------------------------------------------------------------


def _sqlalchemy_release() -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", sa.__version__)[:3])


def _runs_in_autocommit(options: Mapping[str, Any]) -> bool:
    """Whether an engine :func:`create_engine` makes from ``options`` is in autocommit mode."""
    level = options.get("isolation_level", "AUTOCOMMIT")
    execution = options.get("execution_options")
    if isinstance(execution, Mapping):
        level = execution.get("isolation_level", level)
    return bool(level == "AUTOCOMMIT")


#: ``sa.*`` options that arrive as INI strings and that engine_from_config leaves as such.
FLAGS = ("pool_pre_ping", "pool_use_lifo", "hide_parameters", "skip_autocommit_rollback")


def _engine_defaults(target: sa.URL, options: Mapping[str, Any]) -> dict[str, Any]:
    """What the store's own engines do unless the ``sa.*`` options say otherwise."""
    defaults: dict[str, Any] = {
        # No pre-ping: it costs a round trip per statement. A connection that died
        # while pooled is found out when used, and the statement run once more.
        "pool_pre_ping": False,
        "hide_parameters": True,
        "isolation_level": "AUTOCOMMIT",
    }
    try:
        driver = target.get_driver_name()
    except (ImportError, sa.exc.ArgumentError):  # engine_from_config reports it
        driver = ""
    if driver in ROLLBACK_SENDERS and _sqlalchemy_release() >= (2, 0, 43):
        defaults["skip_autocommit_rollback"] = True
    if options.get("isolation_level", "AUTOCOMMIT") == "AUTOCOMMIT":
        # Pooled connections rest in autocommit mode: there is nothing to roll back.
        defaults["pool_reset_on_return"] = None
    if target.get_backend_name() == "sqlite" and target.database in (None, "", ":memory:"):
        # One connection that every thread shares, so all of them see one database.
        defaults.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    elif driver in ("psycopg", "psycopg2") and "connect_timeout" not in target.query:
        defaults["connect_args"] = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT}
    return {name: value for name, value in defaults.items() if name not in options}


def create_engine(url: str, options: Mapping[str, Any], address: str = "") -> sa.Engine:
    """An engine for ``url`` from Beaker-style ``session.sa.*`` options (strings allowed)."""
    _require_sqlalchemy()
    try:
        target = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"the sql store url is not a database URL: {exc}", "url") from exc
    address = address or target.render_as_string(hide_password=True)
    coerced = {name: as_bool(value, f"sa.{name}") if name in FLAGS else value for name, value in options.items()}
    config = {"sqlalchemy.url": url, **{f"sqlalchemy.{name}": value for name, value in coerced.items()}}
    try:
        engine = sa.engine_from_config(config, prefix="sqlalchemy.", **_engine_defaults(target, coerced))
    except ImportError as exc:
        extra, scheme = DRIVER_EXTRAS.get(target.get_backend_name(), ("", ""))
        hint = f'pip install "{extra}" and use a {scheme}:// URL' if extra else "install the driver"
        raise StoreUnavailable(
            f"the sql store's database driver is not installed ({exc}): {hint}", "sql", address
        ) from exc
    except sa.exc.NoSuchModuleError as exc:
        raise ConfigurationError(f"the sql store url names no database SQLAlchemy knows: {exc}", "url") from exc
    except (TypeError, ValueError, sa.exc.ArgumentError) as exc:
        raise ConfigurationError(f"SQLAlchemy refuses the sql store's session.sa.* options: {exc}") from exc
    if target.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_setup(target.database in (None, "", ":memory:")))
    return engine


def _sqlite_setup(memory: bool) -> Any:
    def configure(dbapi_connection: Any, _record: Any) -> None:
        # Readers never block the writer and a busy writer is waited for, not failed.
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if not memory:
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    return configure


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


# -- the store ------------------------------------------------------------------------------


class _Disconnected(StoreUnavailable):
    """The connection died under a statement; worth one more try on a new one."""


class _DuplicateKey(StoreError):
    """An INSERT met an existing row; ``save`` decides what that means."""


class SQLStore(Store):
    name = "sql"
    options = {
        "url": as_optional_str,
        "table_name": as_optional_str,
        "schema_name": as_optional_str,
        "sa": _as_sa_options,
        "bind": _as_bind,
    }

    def __init__(
        self,
        engine: sa.Engine,
        table_name: str = DEFAULT_TABLE_NAME,
        schema_name: str | None = None,
        *,
        owns_engine: bool = False,
        autocommit: bool = False,
        clock: Clock = system_clock,
    ) -> None:
        """Use ``engine`` (disposed on ``close`` only if ``owns_engine``); create the table if missing.

        ``autocommit`` says that ``engine`` runs in AUTOCOMMIT mode (as one made by
        :func:`create_engine` does by default), so a statement needs no transaction
        of its own: it is one already.
        """
        _require_sqlalchemy()
        self.engine = engine
        self.clock = clock
        self.table = session_table(table_name, schema_name)
        self.statements = Statements.for_table(self.table, engine.dialect.name)
        self._address = engine.url.render_as_string(hide_password=True)
        self._owns_engine = owns_engine
        # In autocommit mode a statement is its own transaction: no BEGIN and COMMIT.
        self._transaction = engine.connect if autocommit else engine.begin
        #: MariaDB/MySQL's max_allowed_packet: the largest statement the server takes.
        self.packet_limit: int | None = None
        # A shared in-memory SQLite connection must not interleave two transactions.
        memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
        self._serial: AbstractContextManager[Any] = threading.Lock() if memory else nullcontext()
        self._open_table()

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> SQLStore:
        _require_sqlalchemy()
        table_name = options.get("table_name") or DEFAULT_TABLE_NAME
        schema_name = options.get("schema_name")
        bind = options.get("bind")
        if bind is not None:
            if not isinstance(bind, sa.Engine):
                raise ConfigurationError(f"session.bind must be a SQLAlchemy Engine, not {type(bind).__name__}", "bind")
            return cls(bind, table_name, schema_name, clock=clock)
        sa_options = dict(options.get("sa") or {})
        url = options.get("url") or sa_options.get("url")  # Beaker also accepted session.sa.url
        sa_options.pop("url", None)
        if not url:
            raise ConfigurationError("the sql store needs session.url (or session.bind)", "url")
        engine = create_engine(url, sa_options)
        try:
            return cls(
                engine,
                table_name,
                schema_name,
                owns_engine=True,
                autocommit=_runs_in_autocommit(sa_options),
                clock=clock,
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
        if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)):
            return self._unavailable(exc)  # refused, unknown host, bad login, pool exhausted, ...
        return StoreError(f"the sql store at {self._address} failed: {_reason(exc)}")

    def _execute(self, statement: sa.Executable, params: Mapping[str, Any], fetch: bool) -> Any:
        """Run one statement in a transaction of its own: its first row (or None) if
        ``fetch``, else how many rows it changed."""
        with self._serial:
            try:
                with self._transaction() as connection:
                    result = connection.execute(statement, params)
                    return result.first() if fetch else result.rowcount
            except sa.exc.SQLAlchemyError as exc:
                raise self._failure(exc) from exc

    def _run(self, statement: sa.Executable, params: Mapping[str, Any], fetch: bool = False, size: int = 0) -> Any:
        """:meth:`_execute`; if its pooled connection turned out to be dead, once more
        (SQLAlchemy has then dropped the pool's stale connections).

        A statement whose connection was already dead never reached the server, so
        the retry does not run it twice. Should a connection die in the middle of a
        conditional write, the retry reports a conflict, which the session policy
        resolves by merging. ``size`` is the record's data a write carries.
        """
        try:
            return self._execute(statement, params, fetch)
        except StoreUnavailable as exc:
            if self._may_exceed_packet(size) and _while_running(exc):
                # MariaDB/MySQL refuse a statement over max_allowed_packet and hang
                # up: the same statement would only fail again.
                raise StoreError(self._too_large(size, "may be")) from exc
            if not isinstance(exc, _Disconnected):
                raise
        return self._execute(statement, params, fetch)

    def _open_table(self) -> None:
        with self._serial:
            for last in (False, True):
                try:
                    with self._transaction() as connection:
                        self._prepare(connection)
                    return
                except sa.exc.DBAPIError as exc:
                    # A statement that failed may be a CREATE racing another process's:
                    # look again. A connection that failed fails again.
                    if last or exc.statement is None:
                        raise self._failure(exc) from exc
                except sa.exc.SQLAlchemyError as exc:
                    raise self._failure(exc) from exc

    def _prepare(self, connection: sa.Connection) -> None:
        """Create the table if missing, refuse one of another layout, and learn
        MariaDB/MySQL's largest statement."""
        inspector = sa.inspect(connection)
        table = self.table
        if inspector.has_table(table.name, schema=table.schema):
            found = [column["name"] for column in inspector.get_columns(table.name, schema=table.schema)]
            if not {name.lower() for name in found} >= set(COLUMNS):
                raise ConfigurationError(
                    f"the table {table.fullname} at {self._address} has another layout "
                    f"(columns {', '.join(found)}; the sql store needs {', '.join(COLUMNS)}): it is not "
                    "a satchel session table. Choose another session.table_name, and satchel creates its own; "
                    "if it is Beaker's (ext:database) table, name it in session.beaker_table_name with "
                    "session.beaker_transition = true to convert its sessions (see docs/migration.md)",
                    "table_name",
                )
        else:
            table.create(connection)
        if connection.dialect.name in ("mysql", "mariadb"):
            self.packet_limit = int(connection.execute(sa.text("SELECT @@max_allowed_packet")).scalar_one())

    # -- records too large for MariaDB/MySQL -------------------------------------------

    def _too_large(self, size: int, verdict: str = "is") -> str:
        return (
            f"a record of {size} bytes {verdict} over the max_allowed_packet of the sql store's server "
            f"at {self._address} ({self.packet_limit} bytes, with about {STATEMENT_OVERHEAD} for the "
            "statement): raise it on the server, or keep less in the session"
        )

    def _check_fits(self, size: int) -> None:
        """Refuse, before sending it, a record no statement can carry to the server."""
        if self.packet_limit is not None and size + STATEMENT_OVERHEAD > self.packet_limit:
            raise StoreError(self._too_large(size))

    def _may_exceed_packet(self, size: int) -> bool:
        """Whether a write of ``size`` bytes may be over the limit once the driver has
        escaped the data into the statement (at most doubling it)."""
        return self.packet_limit is not None and 2 * size + STATEMENT_OVERHEAD > self.packet_limit

    # -- the store contract -----------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def load(self, key: str) -> Record | None:
        check_key(key)
        row = self._run(self.statements.select, {"k": key, "now": self._now_ms()}, fetch=True)
        if row is None:
            return None
        data, version, expires_at = row
        return Record(bytes(data), int(version), None if expires_at is None else expires_at / 1000)

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        """Write ``data`` if the row is at ``expected_version`` (absent or expired for None).

        Every write stores a new random version, which ``save`` returns.
        """
        check_key(key)
        data = bytes(data)
        self._check_fits(len(data))
        now = self._now_ms()
        version = _new_version()
        row = {
            "k": key,
            "now": now,
            "new_data": data,
            "new_expires": None if ttl is None else now + ttl * 1000,
            "new_version": version,
        }
        if expected_version is None:
            return version if self._create(row) else None
        if not isinstance(expected_version, int) or isinstance(expected_version, bool):
            return None  # not a version this store hands out
        changed: int = self._run(self.statements.update, {**row, "expected": expected_version}, size=len(data))
        return version if changed == 1 else None

    def _create(self, row: dict[str, Any]) -> bool:
        """A brand new key costs one INSERT. A duplicate may be an expired row nobody
        purged yet: take that over. If it was not expired, one more INSERT tells a
        live row (somebody else created it first) from one purged meanwhile."""
        size = len(row["new_data"])
        return (
            self._insert(row, size)
            or self._run(self.statements.take_over, row, size=size) == 1
            or self._insert(row, size)
        )

    def _insert(self, row: dict[str, Any], size: int) -> bool:
        try:
            self._run(self.statements.insert, row, size=size)
        except _DuplicateKey:
            return False
        return True

    def touch(self, key: str, ttl: int | None) -> bool:
        check_key(key)
        now = self._now_ms()
        params = {"k": key, "now": now, "new_expires": None if ttl is None else now + ttl * 1000}
        changed: int = self._run(self.statements.touch, params)
        return changed == 1

    def delete(self, key: str) -> None:
        check_key(key)
        self._run(self.statements.delete, {"k": key})

    def purge_expired(self) -> int:
        """Delete expired rows, ``PURGE_BATCH`` per statement, so no transaction grows large."""
        params = {"now": self._now_ms()}
        total = 0
        while True:
            removed: int = self._run(self.statements.purge, params)
            total += removed
            if removed < PURGE_BATCH:
                return total

    def count(self) -> int:
        row = self._run(self.statements.count, {"now": self._now_ms()}, fetch=True)
        return int(row[0])

    def count_excluding(self, data: bytes) -> int:
        row = self._run(self.statements.count_excluding, {"now": self._now_ms(), "excluded": data}, fetch=True)
        return int(row[0])

    def close(self) -> None:
        """Dispose of the engine if the store created it; an application's engine stays open."""
        if self._owns_engine:
            self.engine.dispose()
