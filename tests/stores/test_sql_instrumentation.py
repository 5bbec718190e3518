"""OpenTelemetry's SQLAlchemy instrumentation sees every statement a session request sends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from secrets import token_hex
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from webtest import TestApp

from satchel.stores.sql import SQLStore
from tests.support.apps import make_app, store_of
from tests.support.services import POSTGRES_URL, need_port

#: The statements of a visit, request by request: a new session is one conditional
#: create, a read-only request one load, a view that never touches the session
#: nothing, a changing request one load and one conditional write.
VISIT = [
    ("/incr", ["INSERT"]),
    ("/read", ["SELECT"]),
    ("/nothing", []),
    ("/incr", ["SELECT", "UPDATE"]),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        need_port("127.0.0.1", sa.make_url(POSTGRES_URL).port or 5432, "PostgreSQL")
        return POSTGRES_URL
    return f"sqlite:///{tmp_path / 'sessions.db'}"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Where the spans of :func:`instrument` go; the instrumentation is removed after."""
    yield InMemorySpanExporter()
    SQLAlchemyInstrumentor().uninstrument()


def instrument(spans: InMemorySpanExporter, **where: Any) -> None:
    """Instrument ``engine=...``, or (without it) every engine created from now on."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    # The instrumentation declares SQLAlchemy "< 2.1" and would do nothing on 2.1; the
    # engine events it listens to are public and the same in 2.1.
    SQLAlchemyInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True, **where)


def statements_sent(engine: sa.Engine) -> list[str]:
    """Start noting the SQL of every statement the engine sends to its database."""
    sent: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    sa.event.listen(engine, "before_cursor_execute", note)
    return sent


def traced(exporter: InMemorySpanExporter) -> list[str]:
    """The SQL of every statement span; the instrumentation's other spans are its
    ``connect`` spans (a connection taken from the pool)."""
    statements = []
    for span in exporter.get_finished_spans():
        attributes = span.attributes or {}
        if "db.statement" in attributes:
            statements.append(str(attributes["db.statement"]))
        else:
            assert span.name == "connect", span
    return statements


def visit(app: TestApp, engine: sa.Engine, spans: InMemorySpanExporter) -> None:
    sent = statements_sent(engine)
    for path, words in VISIT:
        spans.clear()
        sent.clear()
        app.get(path)
        assert [statement.split(None, 1)[0].upper() for statement in sent] == words, path
        assert traced(spans) == sent, path
    assert app.get("/read").text == "2"


def test_every_statement_on_the_applications_engine_is_a_span(url: str, spans: InMemorySpanExporter) -> None:
    engine = sa.create_engine(url)
    table_name = f"satchel_traced_{token_hex(4)}"
    try:
        instrument(spans, engine=engine)
        app = make_app({"session.type": "ext:database", "session.bind": engine, "session.table_name": table_name})
        visit(app, engine, spans)
    finally:
        sa.Table(table_name, sa.MetaData()).drop(engine, checkfirst=True)
        engine.dispose()


def test_every_statement_on_the_stores_own_engine_is_a_span(url: str, spans: InMemorySpanExporter) -> None:
    """Instrumented as ``opentelemetry-instrument`` does it: every engine created after."""
    instrument(spans)
    table_name = f"satchel_traced_{token_hex(4)}"
    app = make_app({"session.type": "ext:database", "session.url": url, "session.table_name": table_name})
    store = store_of(app)
    assert isinstance(store, SQLStore)
    try:
        visit(app, store.engine, spans)
    finally:
        store.table.drop(store.engine, checkfirst=True)
        store.close()
