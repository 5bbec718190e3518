"""The SQL store on SQLite (file and memory), PostgreSQL and MariaDB: real databases only."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
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
from satchel.stores.sql import PURGE_BATCH, SQLStore, create_engine
from satchel.testing import FakeClock, StoreContract, new_key
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


class SQLContract(StoreContract):
    """The shared contract plus what is particular to SQL; subclasses give ``url``."""

    #: Whether two engines on ``url`` see one database (not so for SQLite :memory:).
    shared = True
    uses_clock = True

    @pytest.fixture
    def url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def options(self, url: str) -> dict[str, Any]:
        return {"url": url, "table_name": f"satchel_test_{token_hex(6)}"}

    @pytest.fixture
    def store(self, options: dict[str, Any], clock: FakeClock) -> Iterator[SQLStore]:
        store = SQLStore.from_options(options, clock=clock)
        yield store
        try:
            store.table.drop(store.engine, checkfirst=True)
        finally:
            store.close()

    def test_purge_is_one_delete_statement(self, store: SQLStore, clock: FakeClock) -> None:
        live, dead, forever = new_key(), new_key(), new_key()
        store.save(live, b"live", 60, None)
        store.save(dead, b"dead", 1, None)
        store.save(forever, b"forever", None, None)
        clock.advance(30)
        with statements(store.engine) as seen:
            assert store.purge_expired() == 1
        assert seen == ["DELETE"]
        assert store.load(dead) is None
        assert {store.load(key).data for key in (live, forever)} == {b"live", b"forever"}  # type: ignore[union-attr]
        assert store.count() == 2

    # -- statements and round trips ------------------------------------------------------

    def test_one_statement_per_operation(self, store: SQLStore) -> None:
        """Counted twice: by the DBAPI driver below SQLAlchemy (so no ping, BEGIN or
        COMMIT hides among them), and by SQLAlchemy's cursor events."""
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

    def test_cursor_listeners_may_rewrite_statements(self, store: SQLStore) -> None:
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

    def test_statement_listeners_see_the_prebuilt_statements(self, store: SQLStore) -> None:
        executed: list[Any] = []

        def note(conn: Any, clauseelement: Any, *args: Any) -> None:
            executed.append(clauseelement)

        key = new_key()
        sa.event.listen(store.engine, "before_execute", note)
        try:
            assert store.save(key, b"one", 60, None)
            record = store.load(key)
            assert store.load(key) is not None
        finally:
            sa.event.remove(store.engine, "before_execute", note)
        assert record is not None and record.data == b"one"
        assert executed == [store.statements.insert, store.statements.select, store.statements.select]

    # -- records and expiry ------------------------------------------------------------------

    def test_record_tells_its_expiry(self, store: SQLStore, clock: FakeClock) -> None:
        key, forever = new_key(), new_key()
        store.save(key, b"x", 60, None)
        store.save(forever, b"x", None, None)
        record, unending = store.load(key), store.load(forever)
        assert record is not None and record.expires_at == pytest.approx(clock.now + 60, abs=0.001)
        assert unending is not None and unending.expires_at is None

    def test_expired_row_is_taken_over_by_a_create(self, store: SQLStore, clock: FakeClock) -> None:
        key = new_key()
        store.save(key, b"old", 60, None)
        old = store.load(key)
        assert old is not None
        clock.advance(60)
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

    def test_expired_row_is_not_updated_by_its_old_version(self, store: SQLStore, clock: FakeClock) -> None:
        key = new_key()
        store.save(key, b"old", 60, None)
        old = store.load(key)
        assert old is not None
        clock.advance(61)
        assert store.save(key, b"late", 60, old.version) is None

    def test_purge_deletes_in_batches(self, store: SQLStore, clock: FakeClock) -> None:
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

    # -- the table -----------------------------------------------------------------------------

    def test_concurrent_creators_of_the_table(self, options: dict[str, Any]) -> None:
        barrier, opened, errors = threading.Barrier(4), [], []

        def open_store() -> None:
            barrier.wait()
            try:
                opened.append(SQLStore.from_options(options))
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

    def test_table_of_another_layout_is_refused_at_start(self, options: dict[str, Any]) -> None:
        """Beaker's ``beaker_cache`` table under the configured name: a clear error at
        start-up, and the table left as it was."""
        engine = create_engine(options["url"], {})
        beaker = sa.Table(
            options["table_name"],
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("namespace", sa.String(255), nullable=False),
            sa.Column("accessed", sa.DateTime, nullable=False),
            sa.Column("created", sa.DateTime, nullable=False),
            sa.Column("data", sa.LargeBinary),
        )
        try:
            beaker.create(engine)
            with pytest.raises(ConfigurationError, match="another layout") as caught:
                SQLStore.from_options({**options, "bind": engine})
            assert caught.value.key == "table_name"
            assert "table_name" in str(caught.value) and "namespace" in str(caught.value)
            columns = {c["name"] for c in sa.inspect(engine).get_columns(options["table_name"])}
            assert columns == {"id", "namespace", "accessed", "created", "data"}
        finally:
            beaker.drop(engine, checkfirst=True)
            engine.dispose()

    def test_reopened_table_keeps_records(self, store: SQLStore, options: dict[str, Any], clock: FakeClock) -> None:
        if not self.shared:
            pytest.skip("every in-memory SQLite engine has its own database")
        key = new_key()
        store.save(key, b"kept", 60, None)
        again = SQLStore.from_options(options, clock=clock)
        try:
            record = again.load(key)
            assert record is not None and record.data == b"kept"
        finally:
            again.close()

    def test_existing_engine_is_used_and_left_open(self, options: dict[str, Any]) -> None:
        engine = sa.create_engine(options["url"])
        try:
            store = SQLStore.from_options({"table_name": options["table_name"], "bind": engine})
            assert store.engine is engine
            assert store.address == engine.url.render_as_string(hide_password=True)
            key = new_key()
            with statements(engine) as seen:
                assert store.save(key, b"bound", 60, None)
            assert seen == ["INSERT"]
            store.close()
            with engine.connect() as conn:  # still the application's to use
                row = conn.execute(sa.select(store.table.c.data).where(store.table.c.key == key)).one()
            assert row.data == b"bound"
            store.table.drop(engine)
        finally:
            engine.dispose()

    def test_settings_reach_the_store(self, options: dict[str, Any]) -> None:
        store = SQLStore.from_options({"url": options["url"], "table_name": options["table_name"]})
        try:
            assert store.table.name == options["table_name"]
            assert store.save(new_key(), b"x", 60, None)
        finally:
            store.table.drop(store.engine)
            store.close()


class TestSQLiteFile(SQLContract):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'sessions.db'}"

    def test_wal_and_busy_timeout(self, store: SQLStore) -> None:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000

    def test_two_stores_share_the_file(self, store: SQLStore, options: dict[str, Any], clock: FakeClock) -> None:
        other = SQLStore.from_options(options, clock=clock)
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

    def test_schema_name(self, options: dict[str, Any]) -> None:
        schema = f"satchel_schema_{token_hex(4)}"
        admin = sa.create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            store = SQLStore.from_options({**options, "schema_name": schema})
            try:
                key = new_key()
                assert store.save(key, b"in schema", 60, None)
                record = store.load(key)
                assert record is not None and record.data == b"in schema"
                inspector = sa.inspect(admin)
                assert inspector.has_table(options["table_name"], schema=schema)
                assert not inspector.has_table(options["table_name"])
            finally:
                store.close()
        finally:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.dispose()

    def test_failing_statement_is_a_store_error(self, store: SQLStore) -> None:
        store.table.drop(store.engine)
        with pytest.raises(StoreError) as caught:
            store.load(new_key())
        assert not isinstance(caught.value, StoreUnavailable)
        assert isinstance(caught.value.__cause__, sa.exc.ProgrammingError)
        assert store.address in str(caught.value)


def server_questions(engine: sa.Engine) -> int:
    """Statements MariaDB received on the engine's (one pooled) connection, this one included."""
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Questions'").one()[1])


class TestMariaDB(SQLContract):
    @pytest.fixture
    def url(self) -> str:
        return need_server(MARIADB_URL, "MariaDB")

    def test_column_types(self, store: SQLStore) -> None:
        columns = {c["name"]: c for c in sa.inspect(store.engine).get_columns(store.table.name)}
        assert isinstance(columns["data"]["type"], mysql.LONGBLOB)
        assert columns["key"]["type"].collation == "ascii_bin"

    def test_every_operation_is_one_statement_at_the_server(self, store: SQLStore) -> None:
        """Counted by the server itself: no BEGIN, COMMIT or ROLLBACK around a statement
        (PyMySQL would send a ROLLBACK as a connection goes back to the pool)."""
        key = new_key()
        costs = []
        for operation in (
            lambda: store.save(key, b"one", 60, None),
            lambda: store.load(key),
            lambda: store.touch(key, 120),
            lambda: store.delete(key),
        ):
            before = server_questions(store.engine)
            operation()
            costs.append(server_questions(store.engine) - before - 1)
        assert costs == [1, 1, 1, 1]

    def test_record_over_the_packet_limit_is_refused_before_sending(self, store: SQLStore) -> None:
        with store.engine.connect() as conn:
            limit = conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one()
        assert store.packet_limit == limit
        key = new_key()
        assert store.save(key, b"old", 60, None)
        record = store.load(key)
        assert record is not None
        with statements(store.engine) as seen, pytest.raises(StoreError) as caught:
            store.save(key, bytes(limit), 60, record.version)
        assert seen == []
        assert not isinstance(caught.value, StoreUnavailable)
        assert f"{limit} bytes" in str(caught.value) and "max_allowed_packet" in str(caught.value)
        kept = store.load(key)
        assert kept is not None and (kept.data, kept.version) == (b"old", record.version)

    def test_record_escaped_past_the_packet_limit_is_not_retried(self, store: SQLStore) -> None:
        """Under the limit as bytes, over it once PyMySQL escapes every quote: the server
        hangs up, and the store says why instead of calling the server unreachable."""
        assert store.packet_limit is not None
        size = store.packet_limit // 2 + 4096
        key = new_key()
        assert store.save(key, b"old", 60, None)
        record = store.load(key)
        assert record is not None
        with statements(store.engine) as seen, pytest.raises(StoreError) as caught:
            store.save(key, b"'" * size, 60, record.version)
        assert seen == ["UPDATE"]
        assert not isinstance(caught.value, StoreUnavailable)
        assert f"{size} bytes" in str(caught.value) and f"{store.packet_limit} bytes" in str(caught.value)
        kept = store.load(key)
        assert kept is not None and (kept.data, kept.version) == (b"old", record.version)


# -- configuration and failures -------------------------------------------------------


def test_sa_options_are_coerced_like_engine_from_config(tmp_path: Path) -> None:
    options = {"pool_recycle": "3600", "echo": "false", "pool_size": "3", "pool_timeout": "7"}
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = SQLStore.from_options({"url": url, "sa": {**options, "pool_pre_ping": "on"}})
    try:
        pool: Any = store.engine.pool
        assert store.engine.echo is False
        assert (pool.size(), pool.timeout()) == (3, 7)
        with dbapi_statements(store.engine) as seen:
            store.load(new_key())
            store.load(new_key())
        # The first connection is taken before the trace is in place; the second is pinged.
        assert [statement.startswith("SELECT 1") for statement in seen] == [False, True, False]
    finally:
        store.close()


def test_own_engine_outside_autocommit_commits_every_write(tmp_path: Path) -> None:
    """Only in autocommit mode does the store leave out its own transactions."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = SQLStore.from_options({"url": url, "sa": {"isolation_level": "SERIALIZABLE"}})
    other = SQLStore.from_options({"url": url})
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
    store = SQLStore.from_options({"sa": {"url": url}})
    try:
        assert store.engine.url.database == str(tmp_path / "s.db")
    finally:
        store.close()


def test_options_are_declared_with_coercers() -> None:
    assert set(SQLStore.options) == {"url", "table_name", "schema_name", "sa", "bind"}
    assert SQLStore.options["sa"]({"pool_size": "3"}, "session.sa") == {"pool_size": "3"}
    with pytest.raises(ConfigurationError, match=r"session\.sa"):
        SQLStore.options["sa"]("pool_size=3", "session.sa")


def test_unknown_sa_option_is_a_configuration_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(ConfigurationError, match="convert_unicode"):
        SQLStore.from_options({"url": url, "sa": {"convert_unicode": "1"}})


def test_missing_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"session\.url"):
        SQLStore.from_options({})


def test_bind_must_be_an_engine() -> None:
    with pytest.raises(ConfigurationError, match="Engine"):
        SQLStore.from_options({"bind": "sqlite://"})


def test_missing_driver_names_the_extra() -> None:
    if importlib.util.find_spec("MySQLdb"):
        pytest.skip("mysqlclient is installed, so mysql:// has its driver")
    with pytest.raises(StoreUnavailable, match=r"satchel\[mysql\]") as caught:
        SQLStore.from_options({"url": "mysql://root:hunter2@127.0.0.1/test"})
    assert caught.value.store == "sql"
    assert "hunter2" not in str(caught.value) and "hunter2" not in caught.value.address


def test_missing_sqlalchemy_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['sqlalchemy'] = None\n"
        "from satchel.errors import StoreUnavailable\n"
        "from satchel.stores.sql import SQLStore\n"
        "try:\n"
        "    SQLStore.from_options({'url': 'sqlite://'})\n"
        "except StoreUnavailable as exc:\n"
        "    print(exc)\n"
    )
    src = str(Path(__file__).parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert 'pip install "satchel[sql]"' in result.stdout


def test_unreachable_server_at_start_is_unavailable() -> None:
    url = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{free_port()}/test"
    with pytest.raises(StoreUnavailable) as caught:
        SQLStore.from_options({"url": url})
    assert (caught.value.store, caught.value.address) == ("sql", sa.make_url(url).render_as_string())
    assert "hunter2" not in str(caught.value) and "hunter2" not in caught.value.address
    assert isinstance(caught.value.__cause__, sa.exc.SQLAlchemyError)


def test_unknown_database_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="names no database"):
        SQLStore.from_options({"url": "bogus://somewhere/db"})


# -- a private PostgreSQL server that the test may stop -----------------------------


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    with run_private_postgres() as server:
        yield server


def test_server_down_then_back(private_postgres: PrivatePostgres) -> None:
    store = SQLStore.from_options({"url": private_postgres.url})
    address = sa.make_url(private_postgres.url).render_as_string()
    try:
        key = new_key()
        assert store.save(key, b"before", 600, None)
        private_postgres.kill()
        # As if on MariaDB with a small max_allowed_packet: a write that might not fit
        # the server's limit is still reported as the server being down.
        store.packet_limit = 4096
        for operation in (
            lambda: store.load(key),
            lambda: store.save(key, b"during", 600, None),
            lambda: store.save(key, bytes(2000), 600, None),
            lambda: store.touch(key, 600),
            lambda: store.purge_expired(),
        ):
            with pytest.raises(StoreUnavailable) as caught:
                operation()
            assert (caught.value.store, caught.value.address) == ("sql", address)
            assert f"127.0.0.1:{private_postgres.port}" in caught.value.address
        private_postgres.start()
        store.packet_limit = None
        record = store.load(key)
        assert record is not None and record.data == b"before"
        assert store.save(key, b"after", 600, record.version)
    finally:
        store.close()


def test_restart_between_requests_goes_unnoticed(private_postgres: PrivatePostgres) -> None:
    """A pooled connection that died with the server is replaced on first use, without
    a ping before every statement."""
    store = SQLStore.from_options({"url": private_postgres.url})
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
