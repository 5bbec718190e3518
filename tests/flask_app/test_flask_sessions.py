"""``flask.session``, ``flash`` and ``get_flashed_messages`` on satchel, through Flask's test client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from satchel.errors import ConfigurationError
from satchel.flask import SessionInterface, init_app, settings_from_config
from satchel.stores.memory import MemoryStore
from tests.flask_app.apps import make_flask
from tests.support.apps import BASE_SETTINGS, SECRET, CountingStore
from tests.web.conftest import store_settings as store_settings


@pytest.fixture
def store() -> CountingStore:
    return CountingStore(MemoryStore())


@pytest.fixture
def app(store: CountingStore) -> Iterator[Flask]:
    app = make_flask()
    app.session_interface = SessionInterface(BASE_SETTINGS, store=store)
    yield app


def test_view_that_ignores_the_session_does_no_io_and_sends_nothing(app: Flask, store: CountingStore) -> None:
    response = app.test_client().get("/nothing")
    assert store.calls == {}
    assert "Set-Cookie" not in response.headers and "Vary" not in response.headers


def test_change_is_one_write_and_read_only_request_writes_nothing(app: Flask, store: CountingStore) -> None:
    client = app.test_client()
    assert client.get("/incr").text == "1"
    assert store.calls == {"save": 1}
    store.reset()
    response = client.get("/read")
    assert response.text == "1"
    assert store.calls == {"load": 1}
    assert "Set-Cookie" not in response.headers
    assert response.headers["Vary"] == "Cookie"


def test_nested_change_is_saved(app: Flask) -> None:
    client = app.test_client()
    client.get("/cart/add/apple")
    assert client.get("/cart/add/pear").json == ["apple", "pear"]


def test_flashed_messages_are_shown_once_with_categories(app: Flask, store: CountingStore) -> None:
    client = app.test_client()
    client.get("/flash?message=hello")
    client.get("/flash?message=careful&category=warning")
    assert client.get("/keys").json == []  # in satchel's flash queue, not a value
    assert client.get("/messages").json == [["message", "hello"], ["warning", "careful"]]
    assert client.get("/messages").json == []


def test_login_regenerates_id_and_logout_ends_session(app: Flask) -> None:
    client = app.test_client()
    client.get("/incr")
    before = client.get_cookie("sid")
    assert before is not None
    client.get("/login")
    after = client.get_cookie("sid")
    assert after is not None and after.value != before.value
    assert client.get("/read").text == "1"
    client.get("/logout")
    assert client.get("/read").text == "None"


def test_unhandled_error_keeps_an_existing_sessions_change(app: Flask) -> None:
    client = app.test_client()
    client.get("/incr")
    assert client.get("/broken").status_code == 500
    with client.session_transaction() as current:
        assert dict(current) == {"count": 1, "broken": True}


def test_init_app_reads_prefixed_names_from_app_config() -> None:
    app = make_flask(SATCHEL_SESSION_TYPE="memory", SATCHEL_SESSION_KEY="sid", SECRET_KEY=SECRET)
    interface = init_app(app)
    assert app.session_interface is interface
    assert interface.manager.settings.cookie.name == "sid"
    client = app.test_client()
    client.get("/incr")
    assert client.get("/incr").text == "2"


def test_config_takes_session_names_and_falls_back_to_secret_key() -> None:
    settings = settings_from_config({"session.type": "file", "SATCHEL_SESSION_DATA_DIR": "/tmp/x", "SECRET_KEY": "k"})
    assert settings == {"session.type": "file", "session.data_dir": "/tmp/x", "session.secret": "k"}


def test_weak_secret_key_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigurationError, match="secret"):
        init_app(make_flask(SECRET_KEY="dev"))


def test_sessions_persist_on_each_store(store_settings: dict[str, Any]) -> None:
    app = make_flask()
    app.session_interface = SessionInterface({**BASE_SETTINGS, **store_settings})
    client = app.test_client()
    client.get("/incr")
    client.get("/flash?message=hi")
    assert client.get("/incr").text == "2"
    assert client.get("/messages").json == [["message", "hi"]]
