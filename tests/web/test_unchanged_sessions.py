"""The request path's shortcuts change nothing a view can see.

A read-only request commits without encoding the session, values decode only
when the view reads them, and a commit with nothing to take turns with (a
cookie session, or a new one without an id) takes no lock. Each of these skips
work only where the result is known; these tests drive every way a view can
change a session through them, and every way a shortcut could hand out shared
or stale state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from satchel.config import parse_session_settings
from satchel.errors import NotSerializable
from satchel.manager import SessionManager, build_manager
from satchel.session import Session
from satchel.stores.memory import MemoryStore
from tests.support.apps import BASE_SETTINGS, MANAGER_MODES, Browser, CountingStore


@pytest.fixture(params=sorted(MANAGER_MODES))
def manager(request: pytest.FixtureRequest) -> SessionManager:
    settings = parse_session_settings({**BASE_SETTINGS, **MANAGER_MODES[request.param]})
    return build_manager(settings)


def flat(browser: Browser) -> None:
    browser.request(lambda s: s.update(a=1, b="two", c=None, d=True, e=2.5))


MUTATIONS: dict[str, tuple[Callable[[Session], Any], dict[str, Any]]] = {
    "setitem": (lambda s: s.__setitem__("a", 5), {"a": 5, "b": "two", "c": None, "d": True, "e": 2.5}),
    "setitem same value": (lambda s: s.__setitem__("a", 1), {"a": 1, "b": "two", "c": None, "d": True, "e": 2.5}),
    "delitem": (lambda s: s.__delitem__("a"), {"b": "two", "c": None, "d": True, "e": 2.5}),
    "pop": (lambda s: s.pop("b"), {"a": 1, "c": None, "d": True, "e": 2.5}),
    "pop missing with default": (lambda s: s.pop("zz", 0), {"a": 1, "b": "two", "c": None, "d": True, "e": 2.5}),
    "popitem": (lambda s: s.popitem(), {"a": 1, "b": "two", "c": None, "d": True}),
    "setdefault new": (
        lambda s: s.setdefault("f", [1]),
        {"a": 1, "b": "two", "c": None, "d": True, "e": 2.5, "f": [1]},
    ),
    "update": (lambda s: s.update({"a": 9}, g="x"), {"a": 9, "b": "two", "c": None, "d": True, "e": 2.5, "g": "x"}),
    "ior": (lambda s: s.__ior__({"h": 1}), {"a": 1, "b": "two", "c": None, "d": True, "e": 2.5, "h": 1}),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_every_change_to_a_flat_session_is_kept(manager: SessionManager, mutation: str) -> None:
    browser = Browser(manager)
    flat(browser)
    change, expected = MUTATIONS[mutation]
    browser.request(change)
    assert browser.request(dict) == expected
    # A third request (its record now loaded from what the write left) sees it too.
    assert browser.request(dict) == expected


def test_clear_empties_a_flat_session(manager: SessionManager) -> None:
    browser = Browser(manager)
    flat(browser)
    browser.request(lambda s: s.clear())
    assert browser.request(dict) == {}


def test_flash_csrf_and_user_changes_of_a_flat_session_are_kept(manager: SessionManager) -> None:
    browser = Browser(manager)
    flat(browser)
    browser.request(lambda s: s.flash("hello"))
    assert browser.request(lambda s: s.peek_flash()) == ["hello"]
    assert browser.request(lambda s: s.pop_flash()) == ["hello"]
    assert browser.request(lambda s: s.peek_flash()) == []
    token = browser.request(lambda s: s.get_csrf_token())
    assert browser.request(lambda s: s.get_csrf_token()) == token
    assert browser.request(lambda s: s.new_csrf_token()) != token
    if manager.settings.client_side:
        return  # cookie sessions keep no user index
    browser.request(lambda s: s.bind_user("u1"))
    assert browser.request(lambda s: s.user_id) == "u1"


def test_nested_change_without_assignment_is_kept(manager: SessionManager) -> None:
    browser = Browser(manager)
    browser.request(lambda s: s.update(cart=[], meta={"n": 0}))
    browser.request(lambda s: s["cart"].append("apple"))
    browser.request(lambda s: s["meta"].__setitem__("n", 1))
    assert browser.request(dict) == {"cart": ["apple"], "meta": {"n": 1}}


def test_a_session_loaded_twice_shares_nothing(manager: SessionManager) -> None:
    browser = Browser(manager)
    browser.request(lambda s: s.update(a=1, cart=["x"]))
    first = manager.open_request(f"sid={browser.cookie}")
    second = manager.open_request(f"sid={browser.cookie}")
    first["a"] = 2
    first["cart"].append("y")
    first.flash("only first")
    assert dict(second) == {"a": 1, "cart": ["x"]} and second.peek_flash() == []
    # Not committed (a view that failed): the stored session is as it was.
    assert browser.request(dict) == {"a": 1, "cart": ["x"]}


def counted_flat() -> tuple[CountingStore, Browser]:
    """A call-counting memory store, and a browser holding a flat session in it."""
    store = CountingStore(MemoryStore())
    browser = Browser(SessionManager(parse_session_settings(BASE_SETTINGS), store))
    flat(browser)
    return store, browser


def test_uncommitted_changes_do_not_leak_into_the_next_load() -> None:
    _, browser = counted_flat()
    for _ in range(3):
        session = browser.manager.open_request(f"sid={browser.cookie}")
        session["a"] = "changed, never committed"
        del session["b"]
    assert browser.request(dict) == {"a": 1, "b": "two", "c": None, "d": True, "e": 2.5}


def test_read_only_request_writes_nothing() -> None:
    store, browser = counted_flat()
    store.reset()
    for _ in range(5):
        browser.request(lambda s: (s.get("a"), s.peek_flash(), list(s.items())))
    assert store.calls == {"load": 5}


def test_a_commit_draws_no_id_a_session_does_not_need(manager: SessionManager) -> None:
    """A cookie session has no server-side id, and a new session that stays empty
    is never stored: committing either makes no id (and no random draw for one)."""
    fresh = manager.open_request(None)
    assert manager.commit(fresh) == []
    assert not fresh.has_id
    browser = Browser(manager)
    flat(browser)
    loaded = manager.open_request(f"sid={browser.cookie}")
    assert loaded.get("a") == 1
    manager.commit(loaded)
    assert loaded.has_id is (manager.store is not None)


def test_changed_marks_a_flat_session_for_writing() -> None:
    store, browser = counted_flat()
    store.reset()
    browser.request(lambda s: s.changed())
    assert store.calls["save"] == 1


def test_a_record_written_elsewhere_is_decoded_afresh() -> None:
    """Two managers on one store (two processes): each sees the other's writes."""
    store = MemoryStore()
    settings = parse_session_settings(BASE_SETTINGS)
    one, two = SessionManager(settings, store), SessionManager(settings, store)
    browser = Browser(one)
    flat(browser)
    assert browser.request(dict)["a"] == 1  # ``one`` has now seen this record
    other = Browser(two)
    other.cookie = browser.cookie
    other.request(lambda s: s.__setitem__("a", 42))
    assert browser.request(lambda s: s["a"]) == 42


def test_a_tampered_cookie_value_never_passes() -> None:
    manager = SessionManager(parse_session_settings(BASE_SETTINGS), MemoryStore())
    browser = Browser(manager)
    flat(browser)
    assert browser.cookie is not None
    assert browser.request(dict)["a"] == 1
    good = browser.cookie
    value, _, signature = good.rpartition(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for forged in (f"{value}.{flipped}", value + "x." + signature, value, good + "x", good[:-1]):
        session = manager.open(forged)
        assert session.new and dict(session) == {}, forged
    assert manager.open(good)["a"] == 1


def test_a_tampered_cookie_header_never_passes() -> None:
    manager = SessionManager(parse_session_settings(BASE_SETTINGS), MemoryStore())
    browser = Browser(manager)
    flat(browser)
    good = f"sid={browser.cookie}"
    assert manager.open_request(good)["a"] == 1
    value, _, signature = str(browser.cookie).rpartition(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for forged in (f"sid={value}.{flipped}", good + "x", good[:-1], f"sid=other; {good}", f"xsid={browser.cookie}"):
        session = manager.open_request(forged)
        assert session.new and dict(session) == {}, forged
    assert manager.open_request(good)["a"] == 1


def test_a_cookie_signed_with_a_removed_secret_is_refused() -> None:
    store = MemoryStore()
    old = parse_session_settings({**BASE_SETTINGS, "session.secret": "9" * 8 + BASE_SETTINGS["session.secret"]})
    browser = Browser(SessionManager(old, store))
    flat(browser)
    assert browser.request(dict)["a"] == 1
    rotated = SessionManager(parse_session_settings(BASE_SETTINGS), store)
    assert rotated.open(browser.cookie).new


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), "lone \ud800 surrogate", object(), {"k": {1.5, object()}}, bytearray(b"x")],
    ids=["nan", "inf", "surrogate", "object", "nested-object", "bytearray"],
)
def test_values_that_cannot_be_stored_are_refused_in_the_view(value: Any) -> None:
    session = Session()
    with pytest.raises(NotSerializable):
        session["k"] = value
    assert "k" not in session


def test_a_cycle_is_refused_in_the_view() -> None:
    session = Session()
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(NotSerializable):
        session["loop"] = looped


def test_a_cookie_session_expires_by_the_clock() -> None:
    now = [time.time()]
    settings = parse_session_settings({**BASE_SETTINGS, **MANAGER_MODES["cookie"], "session.absolute_timeout": "900"})
    manager = SessionManager(settings, clock=lambda: now[0])
    browser = Browser(manager)
    flat(browser)
    assert browser.cookie is not None
    now[0] += 10
    assert manager.open(browser.cookie)["a"] == 1
    for later in (601, 901):  # past timeout, past absolute_timeout
        now[0] += later
        session = manager.open(browser.cookie)
        assert session.new and dict(session) == {}
