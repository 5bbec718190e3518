"""Edges of the request path's shortcuts: values that are not plain JSON scalars,
session classes with their own ``__init__``, cycles, huge integers, small Redis
connection pools, and the store contract's ``Record``. Each shortcut must give
what the slow path gave."""

from __future__ import annotations

from typing import Any

import pytest

from satchel.config import parse_session_settings
from satchel.errors import NotSerializable
from satchel.manager import SessionManager, build_manager
from satchel.session import Session
from satchel.stores.memory import MemoryStore
from tests.support.apps import BASE_SETTINGS, MANAGER_MODES, Browser
from tests.support.services import nonsense_server


@pytest.fixture(params=sorted(MANAGER_MODES))
def manager(request: pytest.FixtureRequest) -> SessionManager:
    return build_manager(parse_session_settings({**BASE_SETTINGS, **MANAGER_MODES[request.param]}))


# -- remembered records hold only what decoding gives back --------------------------


def test_tuple_value_reloads_as_a_tuple(manager: SessionManager) -> None:
    """A tuple is stored tagged and loads as a tuple."""
    browser = Browser(manager)
    browser.request(lambda s: s.__setitem__("n", 1))  # the session exists
    browser.request(lambda s: s.__setitem__("roles", ("admin", "user")))  # an update: remembered
    roles = browser.request(lambda s: s["roles"])
    assert roles == ("admin", "user") and type(roles) is tuple, f"got {roles!r} ({type(roles).__name__})"


def test_nested_change_inside_a_dict_is_saved(manager: SessionManager) -> None:
    """A change inside a nested dict is found and written, and later requests do not
    share the object the view assigned."""
    browser = Browser(manager)
    browser.request(lambda s: s.__setitem__("n", 1))
    browser.request(lambda s: s.__setitem__("prefs", {"theme": "light"}))
    browser.request(lambda s: s["prefs"].__setitem__("theme", "dark"))  # nested change
    # What was persisted (store / cookie) -- read by a second, fresh manager
    # (another process) that has no memo.
    other = build_manager(manager.settings, manager.store if not manager.settings.client_side else None)
    fresh = other.open_request(f"sid={browser.cookie}")
    assert fresh["prefs"] == {"theme": "dark"}, "the nested change was never saved"


def test_two_loads_of_a_remembered_session_share_a_nested_value() -> None:
    """Two concurrent requests of one session never share a nested object."""
    manager = SessionManager(parse_session_settings(BASE_SETTINGS), MemoryStore())
    browser = Browser(manager)
    browser.request(lambda s: s.__setitem__("n", 1))
    browser.request(lambda s: s.__setitem__("cart", (["apple"],)))
    first = manager.open_request(f"sid={browser.cookie}")
    second = manager.open_request(f"sid={browser.cookie}")
    first["cart"][0].append("pear")  # never committed
    assert list(second["cart"][0]) == ["apple"], "request 2 sees request 1's uncommitted change"


# -- a session class's own __init__ runs for loaded sessions ------------------------


class AuditedSession(Session):
    """An application's session class (``session_class=``) that sets up state in __init__."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audit: list[str] = []


def test_session_class_init_runs_for_loaded_sessions() -> None:
    manager = SessionManager(parse_session_settings(BASE_SETTINGS), MemoryStore(), session_class=AuditedSession)
    browser = Browser(manager)
    browser.request(lambda s: s.__setitem__("n", 1))
    loaded = manager.open_request(f"sid={browser.cookie}")
    assert not loaded.new
    assert loaded.audit == []


# -- the check of scalars in __setitem__ refuses ints JSON cannot write --------------


def test_int_too_long_to_encode_is_refused_in_the_view() -> None:
    """A value that cannot be stored raises NotSerializable in the view, an int
    longer than Python prints (sys.get_int_max_str_digits) too."""
    session = Session()
    with pytest.raises(NotSerializable):
        session["big"] = 10**5000


# -- Redis: the store's idle connections leave room in a small pool ------------------


def test_redis_count_after_load_with_a_bounded_pool() -> None:
    """``redis://...?max_connections=1``: after a load, count() (SCAN through the
    client's pool, used by ``max_records``) still finds a connection."""
    import secrets

    import redis

    from satchel.stores.redis import RedisStore
    from tests.support.services import REDIS_URL, need_port

    need_port("127.0.0.1", 6379, "Redis")
    prefix = f"satchel-edges:{secrets.token_hex(6)}:"
    store = RedisStore.from_options({"url": REDIS_URL + "?max_connections=1", "key_prefix": prefix})
    try:
        assert store.save("k1", b"x", 60, None)
        assert store.load("k1") is not None
        assert store.count() == 1
    finally:
        store.close()
        with redis.Redis.from_url(REDIS_URL) as client:
            for name in list(client.scan_iter(match=prefix + "*")):
                client.delete(name)


# -- a cycle is refused, whatever the recursion limit ---------------------------------


def test_cyclic_value_is_refused_not_a_crash_with_a_raised_recursion_limit() -> None:
    """With a raised sys.setrecursionlimit a cycle must still be NotSerializable
    ("Circular reference detected"), not a C stack overflow that kills the worker."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys
        sys.setrecursionlimit(1_000_000)
        from satchel.session import Session
        from satchel.errors import NotSerializable
        loop = []
        loop.append(loop)
        try:
            Session()["loop"] = loop
        except NotSerializable:
            print("refused")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "refused" in result.stdout, f"exit code {result.returncode}"


# -- the store contract's Record stays immutable and hashable ------------------------


def test_store_record_is_still_hashable_and_immutable() -> None:
    """Custom stores and code keeping records in sets or as dict keys rely on it."""
    from satchel.stores.base import Record

    record = Record(b"x", 1, None)
    assert hash(record) == hash(Record(b"x", 1, None))
    with pytest.raises(AttributeError):
        record.data = b"y"  # type: ignore[misc]


# -- Redis: a server that does not speak RESP is a StoreError, not a traceback -------


def test_garbage_from_a_redis_port_is_a_store_error() -> None:
    from satchel.errors import StoreError, StoreUnavailable
    from satchel.stores.redis import RedisStore

    with nonsense_server(b"$x\r\nnot redis\r\n") as port:
        store = RedisStore.from_options({"url": f"redis://127.0.0.1:{port}/0?protocol=2"})
        try:
            with pytest.raises((StoreError, StoreUnavailable)):
                store.load("k" * 64)
        finally:
            store.close()


def test_a_flash_message_changed_in_place_is_saved(manager: SessionManager) -> None:
    browser = Browser(manager)
    browser.request(lambda s: s.flash({"text": "saved", "seen": False}))
    browser.request(lambda s: s.peek_flash()[0].__setitem__("seen", True))
    assert browser.request(lambda s: s.peek_flash()) == [{"text": "saved", "seen": True}]
