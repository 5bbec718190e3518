"""The SQL store on SQLite (file and memory), PostgreSQL and MariaDB: real databases only."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from secrets import token_hex
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from satchel.errors import ConfigurationError, StoreError, StoreUnavailable
from satchel.settings import StoreSettings
from satchel.stores.sql import PURGE_BATCH, SQLStore, has_listeners
from tests.support.contract import StoreContract, new_key
from tests.support.servers import PrivatePostgres
from tests.support.servers import private_postgres as run_private_postgres
from tests.support.services import MARIADB_URL, POSTGRES_URL, need_port


def need_server(url: str, what: str) -> str:
    target = sa.make_url(url)
    need_port(target.host or "127.0.0.1", target.port or 0, what)
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def statements(engine: sa.Engine) -> Iterator[list[str]]:
    """The first word of every statement SQLAlchemy sends while the block runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


@contextmanager
def dbapi_statements(engine: sa.Engine) -> Iterator[list[str]]:
    """Every statement the DBAPI driver ran while the block runs, seen below SQLAlchemy
    (none of its events take part): SQLite's own trace callback; for psycopg and PyMySQL
    a cursor class, installed on each pooled connection as it is checked out, that
    notes every ``execute`` it is given."""
    seen: list[str] = []
    restore: list[Callable[[], None]] = []
    noted: set[int] = set()
    driver = engine.dialect.driver

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if id(dbapi_connection) in noted:
            return
        noted.add(id(dbapi_connection))
        if driver == "pysqlite":
            dbapi_connection.set_trace_callback(seen.append)
            restore.append(lambda: dbapi_connection.set_trace_callback(None))
        elif driver == "psycopg":
            original = dbapi_connection.cursor_factory

            class NotedCursor(original):  # type: ignore[misc, valid-type]
                def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
                    seen.append(str(query))
                    return super().execute(query, *args, **kwargs)

            dbapi_connection.cursor_factory = NotedCursor
            restore.append(lambda: setattr(dbapi_connection, "cursor_factory", original))
        elif driver == "pymysql":
            original = dbapi_connection.cursorclass

            class NotedMySQLCursor(original):  # type: ignore[misc, valid-type]
                def execute(self, query: Any, args: Any = None) -> Any:
                    seen.append(str(query))
                    return super().execute(query, args)

            dbapi_connection.cursorclass = NotedMySQLCursor
            restore.append(lambda: setattr(dbapi_connection, "cursorclass", original))
        else:  # pragma: no cover - the tests run these three drivers only
            raise AssertionError(f"no DBAPI-level statement count for {driver}")

    sa.event.listen(engine, "checkout", on_checkout)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "checkout", on_checkout)
        for undo in reversed(restore):
            undo()


def first_words(seen: list[str]) -> list[str]:
    return [statement.split(None, 1)[0].upper() for statement in seen]


def expire_now(store: SQLStore, key: str) -> None:
    """Make a record expired without waiting for its TTL (as if written long ago)."""
    with store.engine.begin() as conn:
        conn.execute(store.table.update().where(store.table.c.key == key).values(expires_at=1000))


class SQLContract(StoreContract):
    """The shared contract plus what is particular to SQL; subclasses give ``url``."""

    #: Whether two engines on ``url`` see one database (not so for SQLite :memory:).
    shared = True

    @pytest.fixture
    def url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def settings(self, url: str) -> StoreSettings:
        return StoreSettings(type="sql", url=url, table_name=f"satchel_test_{token_hex(6)}")

    @pytest.fixture
    def store(self, settings: StoreSettings) -> Iterator[SQLStore]:
        store = SQLStore.from_settings(settings)
        yield store
        try:
            store.table.drop(store.engine, checkfirst=True)
        finally:
            store.close()

    def test_one_statement_per_operation(self, store: SQLStore) -> None:
        """Counted by the driver, with no SQLAlchemy listener in the way (so the store
        runs its statements on the DBAPI connection, never through Core's execute),
        then by SQLAlchemy's cursor events (which send the statements through Core)."""
        assert store.runs_direct  # an engine the store made, in autocommit mode
        through_core: list[Any] = []
        core_execute = store._execute

        def noted(*args: Any) -> Any:
            through_core.append(args)
            return core_execute(*args)

        store._execute = noted  # type: ignore[method-assign]
        expected = [["INSERT"], ["SELECT"], ["UPDATE"], ["UPDATE"], ["DELETE"]]
        for counter in (dbapi_statements, statements):
            key = new_key()
            counted: list[list[str]] = []

            @contextmanager
            def count() -> Iterator[None]:
                with counter(store.engine) as seen:
                    yield
                counted.append(first_words(seen) if counter is dbapi_statements else seen)

            with count():
                assert store.save(key, b"one", 60, None)
            with count():
                record = store.load(key)
            assert record is not None
            with count():
                assert store.save(key, b"two", 60, record.version)
            with count():
                assert store.touch(key, 120)
            with count():
                store.delete(key)
            assert counted == expected, counter.__name__
            if counter is dbapi_statements:
                if has_listeners(store.engine):
                    # A listener of the whole process (pyramid_debugtoolbar's SQLAlchemy
                    # panel, imported by another test) sends every statement through Core.
                    assert len(through_core) == 5
                    through_core.clear()
                else:
                    assert through_core == []  # the direct path ran them all
        assert len(through_core) == 5  # with a listener, every one went through Core

    def test_hot_statements_skip_core_in_a_fresh_process(self, url: str) -> None:
        """Where no listener is installed (a fresh interpreter), load, save, touch and
        delete run on the DBAPI connection: SQLAlchemy's Core execute is never called."""
        script = textwrap.dedent(
            f"""
            from satchel.settings import StoreSettings
            from satchel.stores.sql import SQLStore
            store = SQLStore.from_settings(StoreSettings(type="sql", url={url!r}))
            assert store.runs_direct
            through_core = []
            core_execute = store._execute
            store._execute = lambda *args: through_core.append(args) or core_execute(*args)
            key = "k" * 64
            store.delete(key)
            assert store.save(key, b"one", 60, None)
            record = store.load(key)
            assert record is not None and record.data == b"one"
            assert store.save(key, b"two", 60, record.version)
            assert store.touch(key, 120)
            store.delete(key)
            assert store.load(key) is None
            print("core", len(through_core))
            store.close()
            """
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split() == ["core", "0"]

    def test_cursor_listeners_get_statements_through_core(self, store: SQLStore) -> None:
        """A ``before_cursor_execute`` listener (a tracer's, say) sees what Core gives it,
        an execution context included, and may rewrite the statement (``retval=True``)."""
        contexts: list[Any] = []

        def tag(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> Any:
            assert isinstance(conn, sa.Connection) and conn.engine is store.engine
            contexts.append(context)
            return statement + " -- tagged", parameters

        key = new_key()
        sa.event.listen(store.engine, "before_cursor_execute", tag, retval=True)
        try:
            with dbapi_statements(store.engine) as seen:
                assert store.save(key, b"one", 60, None)
                assert store.load(key) is not None
        finally:
            sa.event.remove(store.engine, "before_cursor_execute", tag)
        assert len(seen) == 2 and all(statement.endswith(" -- tagged") for statement in seen)
        assert len(contexts) == 2 and all(context is not None for context in contexts)

    def test_statement_listeners_get_statements_through_core(self, store: SQLStore) -> None:
        """``before_execute`` listeners need Core's objects: the store then runs through Core."""
        executed: list[Any] = []

        def note(conn: Any, clauseelement: Any, *args: Any) -> None:
            executed.append(clauseelement)

        key = new_key()
        sa.event.listen(store.engine, "before_execute", note)
        try:
            with statements(store.engine) as seen:
                assert store.save(key, b"one", 60, None)
                record = store.load(key)
        finally:
            sa.event.remove(store.engine, "before_execute", note)
        assert record is not None and record.data == b"one"
        assert seen == ["INSERT", "SELECT"]
        assert [type(statement).__name__ for statement in executed] == ["Insert", "Select"]

    def test_record_tells_its_expiry(self, store: SQLStore) -> None:
        key, forever = new_key(), new_key()
        before = time.time()
        store.save(key, b"x", 60, None)
        after = time.time()
        store.save(forever, b"x", None, None)
        record, unending = store.load(key), store.load(forever)
        assert record is not None and record.expires_at is not None
        assert before + 60 - 0.01 <= record.expires_at <= after + 60 + 0.01
        assert unending is not None and unending.expires_at is None

    def test_expired_row_is_taken_over_by_a_create(self, store: SQLStore) -> None:
        key = new_key()
        store.save(key, b"old", 60, None)
        old = store.load(key)
        assert old is not None
        expire_now(store, key)
        assert store.load(key) is None
        assert store.touch(key, 60) is False
        with statements(store.engine) as seen:
            version = store.save(key, b"new", 60, None)
        assert version is not None
        assert seen == ["INSERT", "UPDATE"]
        assert store.save(key, b"stale", 60, old.version) is None
        record = store.load(key)
        assert record is not None and record.data == b"new" and record.version != old.version
        assert record.version == version  # the take-over tells the version it wrote

    def test_expired_row_is_not_updated_by_its_old_version(self, store: SQLStore) -> None:
        key = new_key()
        store.save(key, b"old", 60, None)
        old = store.load(key)
        assert old is not None
        expire_now(store, key)
        assert store.save(key, b"late", 60, old.version) is None

    def test_purge_deletes_in_batches(self, store: SQLStore) -> None:
        dead = [{"key": f"dead-{i}", "data": b"x", "version": 1, "expires_at": 1000} for i in range(2500)]
        with store.engine.begin() as conn:
            conn.execute(store.table.insert(), dead)
        live = [new_key() for _ in range(3)]
        for key in live:
            store.save(key, b"live", 60, None)
        store.save("forever", b"live", None, None)
        with statements(store.engine) as seen:
            assert store.purge_expired() == 2500
        assert seen.count("DELETE") == 2500 // PURGE_BATCH + 1
        assert store.count() == 4
        assert all(store.load(key) is not None for key in [*live, "forever"])

    def test_keys_are_case_sensitive(self, store: SQLStore) -> None:
        assert store.save("session-a", b"lower", 60, None)
        assert store.save("SESSION-A", b"upper", 60, None)
        lower, upper = store.load("session-a"), store.load("SESSION-A")
        assert lower is not None and lower.data == b"lower"
        assert upper is not None and upper.data == b"upper"

    def test_longest_key_fits(self, store: SQLStore) -> None:
        key = "k" * 250
        assert store.save(key, b"x", 60, None)
        assert store.load(key) is not None

    def test_foreign_version_is_a_conflict(self, store: SQLStore) -> None:
        key = new_key()
        store.save(key, b"x", 60, None)
        assert store.save(key, b"y", 60, "not-a-version") is None

    def test_concurrent_creators_of_the_table(self, settings: StoreSettings) -> None:
        barrier, opened, errors = threading.Barrier(4), [], []

        def open_store() -> None:
            barrier.wait()
            try:
                opened.append(SQLStore.from_settings(settings))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_store) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        try:
            assert not errors
        finally:
            if opened:
                opened[0].table.drop(opened[0].engine, checkfirst=True)
            for store in opened:
                store.close()

    def test_reopened_table_keeps_records(self, store: SQLStore, settings: StoreSettings) -> None:
        if not self.shared:
            pytest.skip("every in-memory SQLite engine has its own database")
        key = new_key()
        store.save(key, b"kept", 60, None)
        again = SQLStore.from_settings(settings)
        try:
            record = again.load(key)
            assert record is not None and record.data == b"kept"
        finally:
            again.close()

    def test_existing_engine_is_used_and_left_open(self, settings: StoreSettings) -> None:
        assert settings.url is not None
        engine = sa.create_engine(settings.url)
        try:
            store = SQLStore.from_settings(dataclasses.replace(settings, url=None, engine=engine))
            assert store.engine is engine
            assert not store.runs_direct  # an application's engine: every statement through Core
            assert store.address == engine.url.render_as_string(hide_password=True)
            key = new_key()
            assert store.save(key, b"bound", 60, None)
            store.close()
            with engine.connect() as conn:  # still the application's to use
                row = conn.execute(sa.select(store.table.c.data).where(store.table.c.key == key)).one()
            assert row.data == b"bound"
            store.table.drop(engine)
        finally:
            engine.dispose()


class TestSQLiteFile(SQLContract):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'sessions.db'}"

    def test_wal_and_busy_timeout(self, store: SQLStore) -> None:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000

    def test_two_stores_share_the_file(self, store: SQLStore, settings: StoreSettings) -> None:
        other = SQLStore.from_settings(settings)
        try:
            key = new_key()
            assert store.save(key, b"a", 60, None)
            record = other.load(key)
            assert record is not None
            assert other.save(key, b"b", 60, record.version)
            assert store.save(key, b"lost", 60, record.version) is None
        finally:
            other.close()


class TestSQLiteMemory(SQLContract):
    shared = False

    @pytest.fixture
    def url(self) -> str:
        return "sqlite:///:memory:"


class TestPostgreSQL(SQLContract):
    @pytest.fixture
    def url(self) -> str:
        return need_server(POSTGRES_URL, "PostgreSQL")

    def test_schema_name(self, settings: StoreSettings) -> None:
        schema = f"satchel_schema_{token_hex(4)}"
        admin = sa.create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            store = SQLStore.from_settings(dataclasses.replace(settings, schema_name=schema))
            try:
                key = new_key()
                assert store.save(key, b"in schema", 60, None)
                record = store.load(key)
                assert record is not None and record.data == b"in schema"
                inspector = sa.inspect(admin)
                assert inspector.has_table(settings.table_name, schema=schema)
                assert not inspector.has_table(settings.table_name)
            finally:
                store.close()
        finally:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.dispose()


class TestMariaDB(SQLContract):
    @pytest.fixture
    def url(self) -> str:
        return need_server(MARIADB_URL, "MariaDB")

    def test_column_types(self, store: SQLStore) -> None:
        columns = {c["name"]: c for c in sa.inspect(store.engine).get_columns(store.table.name)}
        assert isinstance(columns["data"]["type"], mysql.LONGBLOB)
        assert columns["key"]["type"].collation == "ascii_bin"


# -- configuration and failures -------------------------------------------------------


def test_sa_options_are_coerced_like_engine_from_config(tmp_path: Path) -> None:
    options = {"pool_recycle": "3600", "echo": "false", "pool_size": "3", "pool_timeout": "7"}
    settings = StoreSettings(
        type="sql", url=f"sqlite:///{tmp_path / 's.db'}", sa_options={**options, "pool_pre_ping": "on"}
    )
    store = SQLStore.from_settings(settings)
    try:
        pool: Any = store.engine.pool
        assert store.engine.echo is False
        assert (pool.size(), pool.timeout(), pool._recycle, pool._pre_ping) == (3, 7, 3600, True)
    finally:
        store.close()


def test_own_engine_outside_autocommit_commits_every_write(tmp_path: Path) -> None:
    """Only in autocommit mode does the store leave out its own transactions."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = SQLStore.from_settings(StoreSettings(type="sql", url=url, sa_options={"isolation_level": "SERIALIZABLE"}))
    other = SQLStore.from_settings(StoreSettings(type="sql", url=url))
    assert not store.runs_direct and other.runs_direct
    try:
        key = new_key()
        assert store.save(key, b"one", 60, None)
        record = other.load(key)
        assert record is not None and record.data == b"one"
        assert store.save(key, b"two", 60, record.version)
        assert store.touch(key, 120)
        record = other.load(key)
        assert record is not None and record.data == b"two"
        assert record.expires_at is not None and record.expires_at > time.time() + 60
    finally:
        other.close()
        store.close()


def test_beaker_sa_url_is_accepted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = SQLStore.from_settings(StoreSettings(type="sql", sa_options={"url": url}))
    try:
        assert store.engine.url.database == str(tmp_path / "s.db")
    finally:
        store.close()


def test_unknown_sa_option_is_a_configuration_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    settings = StoreSettings(type="sql", url=url, sa_options={"convert_unicode": "1"})
    with pytest.raises(ConfigurationError, match="convert_unicode"):
        SQLStore.from_settings(settings)


def test_missing_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"session\.url"):
        SQLStore.from_settings(StoreSettings(type="sql"))


def test_bind_must_be_an_engine() -> None:
    with pytest.raises(ConfigurationError, match="Engine"):
        SQLStore.from_settings(StoreSettings(type="sql", engine="sqlite://"))


def test_missing_driver_names_the_extra() -> None:
    if importlib.util.find_spec("MySQLdb"):
        pytest.skip("mysqlclient is installed, so mysql:// has its driver")
    with pytest.raises(StoreUnavailable, match=r"satchel\[mysql\]") as caught:
        SQLStore.from_settings(StoreSettings(type="sql", url="mysql://root:hunter2@127.0.0.1/test"))
    assert caught.value.store == "sql"
    assert "hunter2" not in str(caught.value) and "hunter2" not in caught.value.address


def test_missing_sqlalchemy_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['sqlalchemy'] = None\n"
        "from satchel.errors import StoreUnavailable\n"
        "from satchel.settings import StoreSettings\n"
        "from satchel.stores.sql import SQLStore\n"
        "try:\n"
        "    SQLStore.from_settings(StoreSettings(type='sql', url='sqlite://'))\n"
        "except StoreUnavailable as exc:\n"
        "    print(exc)\n"
    )
    src = str(Path(__file__).parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert 'pip install "satchel[sql]"' in result.stdout


def test_unreachable_server_at_start_is_unavailable() -> None:
    url = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{free_port()}/test"
    settings = StoreSettings(type="sql", url=url)
    with pytest.raises(StoreUnavailable) as caught:
        SQLStore.from_settings(settings)
    assert (caught.value.store, caught.value.address) == ("sql", settings.address)
    assert "hunter2" not in str(caught.value) and "hunter2" not in caught.value.address
    assert isinstance(caught.value.__cause__, sa.exc.SQLAlchemyError)


def test_sql_failure_is_a_store_error(tmp_path: Path) -> None:
    store = SQLStore.from_settings(StoreSettings(type="sql", url=f"sqlite:///{tmp_path / 's.db'}"))
    try:
        store.table.drop(store.engine)
        with pytest.raises(StoreError) as caught:
            store.load(new_key())
        assert not isinstance(caught.value, StoreUnavailable)
        assert isinstance(caught.value.__cause__, sa.exc.SQLAlchemyError)
    finally:
        store.close()


# -- a private PostgreSQL server that the test may stop -----------------------------


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    with run_private_postgres() as server:
        yield server


def test_server_down_then_back(private_postgres: PrivatePostgres) -> None:
    settings = StoreSettings(type="sql", url=private_postgres.url)
    store = SQLStore.from_settings(settings)
    try:
        key = new_key()
        assert store.save(key, b"before", 600, None)
        private_postgres.kill()
        for operation in (
            lambda: store.load(key),
            lambda: store.save(key, b"during", 600, None),
            lambda: store.touch(key, 600),
            lambda: store.purge_expired(),
        ):
            with pytest.raises(StoreUnavailable) as caught:
                operation()
            assert (caught.value.store, caught.value.address) == ("sql", settings.address)
            assert f"127.0.0.1:{private_postgres.port}" in caught.value.address
        private_postgres.start()
        record = store.load(key)
        assert record is not None and record.data == b"before"
        assert store.save(key, b"after", 600, record.version)
    finally:
        store.close()


def test_restart_between_requests_goes_unnoticed(private_postgres: PrivatePostgres) -> None:
    """A pooled connection that died with the server is replaced on first use, without
    a ping before every statement."""
    store = SQLStore.from_settings(StoreSettings(type="sql", url=private_postgres.url))
    assert store.engine.pool._pre_ping is False
    assert store.runs_direct
    try:
        key = new_key()
        assert store.save(key, b"before", 600, None)
        assert store.load(key) is not None  # the pool now holds a connection
        private_postgres.kill()
        private_postgres.start()
        record = store.load(key)
        assert record is not None and record.data == b"before"
        assert store.save(key, b"after", 600, record.version)
    finally:
        store.close()


def test_unknown_database_scheme_is_a_configuration_error() -> None:
    from satchel.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="names no database"):
        SQLStore.from_settings(StoreSettings(type="sql", url="bogus://somewhere/db"))
