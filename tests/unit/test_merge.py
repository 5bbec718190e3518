"""Conflict merging in the manager: two requests of one session, interleaved by hand."""

from __future__ import annotations

from typing import Any

import pytest

from satchel.codecs import Body
from satchel.config import parse_session_settings
from satchel.errors import SessionConflict, StoreUnavailable
from satchel.manager import SessionManager, merge
from satchel.stores.memory import MemoryStore
from tests.support.apps import SECRET


@pytest.fixture
def manager() -> SessionManager:
    return SessionManager(parse_session_settings({"session.secret": SECRET}), MemoryStore())


def started(manager: SessionManager, **data: Any) -> str:
    session = manager.open(None)
    session.update(data)
    header = manager.commit(session)[0]
    return header.split(";")[0].split("=", 1)[1]


def started_with_flash(manager: SessionManager, message: str, **data: Any) -> str:
    """A stored session holding ``data`` and one flash message."""
    cookie = started(manager, **data)
    seed = manager.open(cookie)
    seed.flash(message)
    manager.commit(seed)
    return cookie


def test_different_keys_both_survive(manager: SessionManager) -> None:
    cookie = started(manager, base=0)
    first, second = manager.open(cookie), manager.open(cookie)
    first["a"] = 1
    second["b"] = 2
    del second["base"]
    manager.commit(first)
    manager.commit(second)
    assert dict(manager.open(cookie)) == {"a": 1, "b": 2}


def test_same_key_later_commit_wins(manager: SessionManager) -> None:
    cookie = started(manager, k="start")
    first, second = manager.open(cookie), manager.open(cookie)
    first["k"] = "first"
    second["k"] = "second"
    manager.commit(first)
    manager.commit(second)
    assert manager.open(cookie)["k"] == "second"


def test_nested_changes_merge_per_key(manager: SessionManager) -> None:
    cookie = started(manager, cart=[], other=1)
    first, second = manager.open(cookie), manager.open(cookie)
    first["cart"].append("apple")
    second["other"] = 2
    manager.commit(first)
    manager.commit(second)
    assert dict(manager.open(cookie)) == {"cart": ["apple"], "other": 2}


def test_flash_added_by_both_survives(manager: SessionManager) -> None:
    cookie = started(manager, x=1)
    first, second = manager.open(cookie), manager.open(cookie)
    first.flash("one")
    second.flash("two")
    manager.commit(first)
    manager.commit(second)
    assert manager.open(cookie).peek_flash() == ["one", "two"]


def test_a_message_popped_by_two_requests_in_flight_never_returns(manager: SessionManager) -> None:
    cookie = started_with_flash(manager, "hello", x=1)
    first, second = manager.open(cookie), manager.open(cookie)
    assert first.pop_flash() == ["hello"]
    assert second.pop_flash() == ["hello"]  # both loaded it before either committed
    second["y"] = 2
    manager.commit(first)
    manager.commit(second)
    stored = manager.open(cookie)
    assert stored.peek_flash() == [] and stored["y"] == 2


def test_messages_flashed_meanwhile_survive_a_pop(manager: SessionManager) -> None:
    cookie = started_with_flash(manager, "old", x=1)
    reader, writer = manager.open(cookie), manager.open(cookie)
    writer.flash("new")
    manager.commit(writer)
    assert reader.pop_flash() == ["old"]
    manager.commit(reader)
    assert manager.open(cookie).pop_flash() == ["new"]


def test_changes_after_a_pop_are_still_saved(manager: SessionManager) -> None:
    cookie = started_with_flash(manager, "m", x=1)
    session = manager.open(cookie)
    session.pop_flash()
    session["after"] = True
    manager.commit(session)
    reopened = manager.open(cookie)
    assert reopened["after"] is True and reopened.peek_flash() == []


def test_a_write_between_a_pop_and_the_end_of_the_request_is_merged(manager: SessionManager) -> None:
    """After a pop the session's version is that of its own pop write; another
    request's write after it is still met as a conflict and merged, not overwritten."""
    cookie = started_with_flash(manager, "m", x=1)
    session = manager.open(cookie)
    assert session.pop_flash() == ["m"]
    other = manager.open(cookie)  # loads the record the pop wrote
    other["other"] = "kept"
    manager.commit(other)
    session["after"] = True
    manager.commit(session)
    reopened = manager.open(cookie)
    assert reopened["after"] is True and reopened["other"] == "kept" and reopened["x"] == 1
    assert reopened.peek_flash() == []


def test_a_pop_that_had_to_retry_leaves_the_other_requests_write_alone(manager: SessionManager) -> None:
    """The pop's first write met another request's; its retry wrote the latest record,
    which the session does not count as loaded, so the session keeps its old version
    and its end write merges instead of overwriting."""
    cookie = started_with_flash(manager, "m", x=1)
    mine, other = manager.open(cookie), manager.open(cookie)
    other["x"] = 2
    manager.commit(other)
    assert mine.pop_flash() == ["m"]  # attempt 0 conflicts, attempt 1 writes
    mine["y"] = True
    manager.commit(mine)
    reopened = manager.open(cookie)
    assert dict(reopened) == {"x": 2, "y": True} and reopened.peek_flash() == []


def test_invalidated_session_is_not_resurrected(manager: SessionManager) -> None:
    cookie = started(manager, user="alice")
    stale, killer = manager.open(cookie), manager.open(cookie)
    killer.invalidate()
    manager.commit(killer)
    stale["late"] = "write"
    headers = manager.commit(stale)
    assert headers and "Max-Age=0" in headers[0]
    assert manager.open(cookie).new is True


def test_csrf_token_change_wins(manager: SessionManager) -> None:
    cookie = started(manager, x=1)
    first, second = manager.open(cookie), manager.open(cookie)
    token = first.new_csrf_token()
    second["y"] = 2
    manager.commit(first)
    manager.commit(second)
    assert manager.open(cookie).get_csrf_token() == token


def test_retries_exhausted_raise_session_conflict() -> None:
    class AlwaysConflicting(MemoryStore):
        def save(self, key: str, data: bytes, ttl: int | None, expected_version: Any) -> Any:
            if expected_version is None:
                return super().save(key, data, ttl, expected_version)
            return None

    manager = SessionManager(
        parse_session_settings({"session.secret": SECRET, "session.merge_retries": "3"}), AlwaysConflicting()
    )
    cookie = started(manager, x=1)
    session = manager.open(cookie)
    session["x"] = 2
    with pytest.raises(SessionConflict, match="3 retries"):
        manager.commit(session)


def test_merge_function_semantics() -> None:
    base = Body({"a": 1, "b": 2}, {"": ["m1", "m2"]}, "t0")
    current = Body({"a": 10, "c": 3}, {"": ["m2", "m3"]}, "t0")
    latest = Body({"a": 1, "b": 2, "d": 4}, {"": ["m1", "m2", "x"]}, "t1")
    merged = merge(base, current, latest)
    assert merged.data == {"a": 10, "c": 3, "d": 4}
    assert merged.flash == {"": ["m2", "x", "m3"]}
    assert merged.csrf == "t1"


# -- flash queues, partial saves, moved sessions ---------------------------------------------


def test_own_flash_survives_a_pop_that_retries(manager: SessionManager) -> None:
    cookie = started_with_flash(manager, "old", x=1)
    session, other = manager.open(cookie), manager.open(cookie)
    other["y"] = 2
    manager.commit(other)  # the pop below meets a conflict and retries
    session.flash("saved!")
    assert session.pop_flash() == ["old", "saved!"]
    manager.commit(session)
    assert manager.open(cookie).peek_flash() == []


def test_pop_twice_in_one_request_keeps_new_messages(manager: SessionManager) -> None:
    cookie = started(manager, x=1)
    seed = manager.open(cookie)
    seed.flash("first", queue="error")
    manager.commit(seed)
    session = manager.open(cookie)
    assert session.pop_flash("error") == ["first"]
    session.flash("saved!")
    assert session.pop_flash() == ["saved!"]
    manager.commit(session)
    assert manager.open(cookie).peek_flash() == []
    assert manager.open(cookie).peek_flash("error") == []


def test_a_request_that_is_not_committed_changes_nothing(manager: SessionManager) -> None:
    cookie = started_with_flash(manager, "m", x=1)
    session = manager.open(cookie)
    session["paid"] = True
    assert session.pop_flash() == ["m"]
    # The view fails now and its session is not committed (cookie_on_exception = false).
    stored = manager.open(cookie)
    assert "paid" not in stored
    assert stored.peek_flash() == ["m"]


def test_a_request_loaded_before_a_login_elsewhere_cannot_undo_it(manager: SessionManager) -> None:
    cookie = started_with_flash(manager, "Welcome back", x=1)
    stale, login = manager.open(cookie), manager.open(cookie)
    login.regenerate_id()
    new_cookie = manager.commit(login)[0].split(";")[0].split("=", 1)[1]
    stale.pop_flash()
    stale["late"] = True
    assert manager.commit(stale) == []  # no cookie change that could undo the login's
    moved = manager.open(new_cookie)
    assert "late" not in moved and moved.pop_flash() == ["Welcome back"]


def test_old_cookie_after_a_login_gets_an_unsaved_session(manager: SessionManager) -> None:
    cookie = started(manager, x=1)
    login = manager.open(cookie)
    login.regenerate_id()
    manager.commit(login)
    late = manager.open(cookie)
    assert late.new and late.unsaved
    late.get_csrf_token()  # a page with a form
    assert manager.commit(late) == []


def test_save_on_an_empty_new_session_stores_nothing(manager: SessionManager) -> None:
    session = manager.open(None)
    session.save()
    session.changed()
    assert manager.commit(session) == []
    assert manager.store.count() == 0


def test_a_login_that_cannot_be_indexed_fails_and_keeps_the_old_session() -> None:
    class IndexDown(MemoryStore):
        def save(self, key: str, data: bytes, ttl: int | None, expected_version: Any) -> Any:
            if key.startswith("u-"):
                raise StoreUnavailable("index unreachable", "memory", "here")
            return super().save(key, data, ttl, expected_version)

    manager = SessionManager(parse_session_settings({"session.secret": SECRET}), IndexDown())
    cookie = started(manager, cart=["apple"])
    login = manager.open(cookie)
    login.regenerate_id()
    login.bind_user("alice")
    with pytest.raises(StoreUnavailable):
        manager.commit(login)
    kept = manager.open(cookie)
    assert kept["cart"] == ["apple"] and kept.user_id is None
