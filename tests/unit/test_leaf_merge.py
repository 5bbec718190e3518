"""Two requests of one session, interleaved by hand: their changes merge at the
leaves (nested dict keys, list appends, set members, increments), and only a leaf
both changed is last-writer-wins, counted in the policy's merge statistics."""

from __future__ import annotations

from typing import Any

import pytest

from satchel.config import parse_session_settings
from satchel.manager import SessionManager
from satchel.policy.server import ServerSessions
from satchel.session import Session
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


def stats(manager: SessionManager) -> dict[str, int]:
    assert isinstance(manager.policy, ServerSessions)
    return manager.policy.merge_stats.snapshot()


def both(manager: SessionManager, cookie: str) -> tuple[Session, Session]:
    return manager.open(cookie), manager.open(cookie)


def commit_in_order(manager: SessionManager, cookie: str, *sessions: Session) -> dict[str, Any]:
    """Commit ``sessions`` one after the other; the data stored afterwards."""
    for session in sessions:
        manager.commit(session)
    return dict(manager.open(cookie))


def test_items_added_to_a_nested_dict_by_two_requests_both_survive(manager: SessionManager) -> None:
    cookie = started(manager, cart={"1": 1})
    first, second = both(manager, cookie)
    first["cart"]["2"] = 2
    second["cart"]["3"] = 3
    assert commit_in_order(manager, cookie, first, second) == {"cart": {"1": 1, "2": 2, "3": 3}}
    assert stats(manager) == {"merges": 1, "overwritten": 0}


def test_keys_set_and_deleted_at_any_depth_merge(manager: SessionManager) -> None:
    cookie = started(manager, a={"b": {"c": {"old": 1, "keep": 2}}, 7: {"x": 1}})
    first, second = both(manager, cookie)
    del first["a"]["b"]["c"]["old"]
    first["a"][7]["y"] = 2
    second["a"]["b"]["c"]["new"] = 3
    second["a"][7]["z"] = (1, 2)
    merged = commit_in_order(manager, cookie, first, second)
    assert merged == {"a": {"b": {"c": {"keep": 2, "new": 3}}, 7: {"x": 1, "y": 2, "z": (1, 2)}}}


def test_appends_to_one_list_by_two_requests_both_survive_in_commit_order(manager: SessionManager) -> None:
    cookie = started(manager, log=["start"])
    first, second = both(manager, cookie)
    first["log"].append("one")
    second["log"] += ["two", "three"]
    assert commit_in_order(manager, cookie, second, first) == {"log": ["start", "two", "three", "one"]}


def test_members_added_and_removed_by_two_requests_merge(manager: SessionManager) -> None:
    cookie = started(manager, tags={"a", "b"}, frozen=frozenset({1}))
    first, second = both(manager, cookie)
    first["tags"].add("c")
    first["frozen"] = first["frozen"] | {2}
    second["tags"].discard("a")
    second["frozen"] = frozenset({1, 3})
    assert commit_in_order(manager, cookie, first, second) == {"tags": {"b", "c"}, "frozen": frozenset({1, 2, 3})}


def test_a_cart_two_requests_created_at_once_keeps_both_items(manager: SessionManager) -> None:
    cookie = started(manager, user="u")
    first, second = both(manager, cookie)
    first.setdefault("cart", {})["1"] = 1
    first.setdefault("log", []).append(1)
    second.setdefault("cart", {})["2"] = 2
    second.setdefault("log", []).append(2)
    merged = commit_in_order(manager, cookie, first, second)
    assert merged == {"user": "u", "cart": {"1": 1, "2": 2}, "log": [1, 2]}
    assert stats(manager)["overwritten"] == 0


def test_the_same_leaf_changed_by_two_requests_takes_the_later_and_is_counted(manager: SessionManager) -> None:
    cookie = started(manager, cart={"1": 1, "2": 1})
    first, second = both(manager, cookie)
    first["cart"]["1"] = 5
    second["cart"]["1"] = 7
    second["cart"]["2"] = 2
    assert commit_in_order(manager, cookie, first, second) == {"cart": {"1": 7, "2": 2}}
    assert stats(manager) == {"merges": 1, "overwritten": 1}


def test_a_list_changed_other_than_by_appending_replaces_it(manager: SessionManager) -> None:
    cookie = started(manager, log=["a", "b"])
    first, second = both(manager, cookie)
    first["log"].append("c")
    second["log"].remove("a")
    assert commit_in_order(manager, cookie, first, second) == {"log": ["b"]}
    assert stats(manager)["overwritten"] == 1


def test_increments_by_two_requests_add_up(manager: SessionManager) -> None:
    cookie = started(manager, n=1)
    first, second = both(manager, cookie)
    first.increment("n")
    second.increment("n", 10)
    second.increment("visits")
    assert commit_in_order(manager, cookie, first, second) == {"n": 12, "visits": 1}
    assert stats(manager)["overwritten"] == 0


def test_an_assignment_after_an_increment_is_an_assignment(manager: SessionManager) -> None:
    cookie = started(manager, n=1)
    first, second = both(manager, cookie)
    first.increment("n")
    second.increment("n")
    second["n"] = 100
    assert commit_in_order(manager, cookie, first, second) == {"n": 100}


def test_read_modify_write_of_a_number_is_last_writer_wins_and_counted(manager: SessionManager) -> None:
    cookie = started(manager, n=1)
    first, second = both(manager, cookie)
    first["n"] = first["n"] + 1
    second["n"] = second["n"] + 1
    assert commit_in_order(manager, cookie, first, second) == {"n": 2}
    assert stats(manager)["overwritten"] == 1


def test_changed_after_a_nested_change_still_merges_at_the_leaf(manager: SessionManager) -> None:
    cookie = started(manager, cart={})
    first, second = both(manager, cookie)
    first["cart"]["a"] = 1
    first.changed()
    second["cart"]["b"] = 2
    second.changed()
    assert commit_in_order(manager, cookie, first, second) == {"cart": {"a": 1, "b": 2}}


def test_a_nested_dict_another_request_deleted_comes_back_with_only_this_requests_items(
    manager: SessionManager,
) -> None:
    cookie = started(manager, cart={"1": 1})
    first, second = both(manager, cookie)
    del first["cart"]
    second["cart"]["2"] = 2
    assert commit_in_order(manager, cookie, first, second) == {"cart": {"2": 2}}


def test_regenerate_id_merges_a_concurrent_nested_change(manager: SessionManager) -> None:
    cookie = started(manager, cart={"1": 1})
    login, other = both(manager, cookie)
    other["cart"]["2"] = 2
    manager.commit(other)
    login.regenerate_id()
    login["cart"]["3"] = 3
    new_cookie = manager.commit(login)[0].split(";")[0].split("=", 1)[1]
    assert dict(manager.open(new_cookie)) == {"cart": {"1": 1, "2": 2, "3": 3}}
