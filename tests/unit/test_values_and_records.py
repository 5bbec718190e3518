"""What a view may store is what the next request can read: one depth limit at
assignment, at commit and at load; records that could never be written back
(NaN, infinities) load as a fresh session, not as an error on every request."""

from __future__ import annotations

from typing import Any

import pytest

from satchel.codecs import encode_record
from satchel.codecs.values import MAX_DEPTH
from satchel.config import parse_session_settings
from satchel.errors import NotSerializable
from satchel.manager import SessionManager
from satchel.session import Session
from satchel.stores.memory import MemoryStore
from tests.support.apps import SECRET


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture
def manager() -> SessionManager:
    return SessionManager(parse_session_settings({"session.secret": SECRET, "session.key": "sid"}), MemoryStore())


def cookie_of(headers: list[str]) -> str:
    return headers[0].split(";", 1)[0].split("=", 1)[1]


def test_the_deepest_value_accepted_is_read_back(manager: SessionManager) -> None:
    session = manager.open(None)
    session["deep"] = nested(MAX_DEPTH)
    cookie = cookie_of(manager.commit(session))
    assert manager.open(cookie)["deep"] == nested(MAX_DEPTH)


def test_one_level_more_is_refused_at_assignment_naming_the_key() -> None:
    session = Session()
    with pytest.raises(NotSerializable, match=r"session\['deep'\].*nest more than") as refused:
        session["deep"] = nested(MAX_DEPTH + 1)
    assert refused.value.key == "deep" and "deep" not in session


def test_a_value_deepened_in_place_is_refused_at_commit_and_the_store_keeps_the_old(manager: SessionManager) -> None:
    session = manager.open(None)
    session["deep"] = nested(MAX_DEPTH)
    cookie = cookie_of(manager.commit(session))
    loaded = manager.open(cookie)
    loaded["deep"][0] = nested(MAX_DEPTH)  # now twice as deep, without an assignment
    with pytest.raises(NotSerializable, match="deep"):
        manager.commit(loaded)
    assert manager.open(cookie)["deep"] == nested(MAX_DEPTH)


def test_a_flash_message_too_deep_is_refused() -> None:
    with pytest.raises(NotSerializable, match="flash queue"):
        Session().flash(nested(MAX_DEPTH + 1))


def store_raw(manager: SessionManager, body: bytes) -> str:
    """A record written behind the session layer's back; returns its cookie."""
    session = manager.open(None)
    session["x"] = 1
    cookie = cookie_of(manager.commit(session))
    from satchel.codecs import store_key

    session_id = manager.policy.signer.unsign(cookie)
    assert session_id is not None and manager.store is not None
    key = store_key(session_id)
    record = manager.store.load(key)
    assert record is not None
    assert manager.store.save(key, encode_record(1.0, 1.0, body), 600, record.version) is not None
    return cookie


@pytest.mark.parametrize(
    "body",
    [b'{"d":{"n":NaN}}', b'{"d":{"n":Infinity}}', b'{"d":{"n":-Infinity}}', b'{"d":{"n":1e999}}'],
    ids=["nan", "infinity", "minus-infinity", "overflow"],
)
def test_a_record_holding_an_unwritable_number_gives_a_fresh_session(manager: SessionManager, body: bytes) -> None:
    cookie = store_raw(manager, body)
    session = manager.open(cookie)
    assert session.new and dict(session) == {}
    session["y"] = 2
    assert manager.commit(session)  # writes work again


def test_a_record_nested_past_the_limit_gives_a_fresh_session(manager: SessionManager) -> None:
    deep = b'{"d":{"k":' + b"[" * (MAX_DEPTH + 1) + b"1" + b"]" * (MAX_DEPTH + 1) + b"}}"
    cookie = store_raw(manager, deep)
    assert manager.open(cookie).new
