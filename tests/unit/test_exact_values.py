"""What a view stores comes back exactly, or is refused in the view naming the key
and the type: in a store and in cookie mode, at the top level, nested, in flash
messages, and after a change made inside a value that was already assigned."""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

import pytest

from satchel.codecs import decode_body, encode_body, split_record, store_key
from satchel.config import parse_session_settings
from satchel.errors import NotSerializable
from satchel.manager import SessionManager, build_manager
from satchel.session import Session
from satchel.stores.memory import MemoryStore
from tests.support.apps import BASE_SETTINGS, MANAGER_MODES, Browser
from tests.support.values import EXACT_VALUES, exactly


@pytest.fixture(params=sorted(MANAGER_MODES))
def manager(request: pytest.FixtureRequest) -> SessionManager:
    return build_manager(parse_session_settings({**BASE_SETTINGS, **MANAGER_MODES[request.param]}))


class Tz(tzinfo):
    """A tzinfo that is neither a fixed offset nor a zoneinfo zone (as pytz's are)."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)


@pytest.mark.parametrize("name", sorted(EXACT_VALUES))
def test_a_value_stored_in_one_request_reads_back_identical_in_the_next(manager: SessionManager, name: str) -> None:
    value = EXACT_VALUES[name]
    browser = Browser(manager)
    browser.request(lambda s: s.__setitem__("v", value))
    read = browser.request(lambda s: s["v"])
    assert exactly(read, value), f"{name}: stored {value!r}, read {read!r}"


@pytest.mark.parametrize("name", sorted(EXACT_VALUES))
def test_a_flash_message_of_each_type_comes_back_identical(manager: SessionManager, name: str) -> None:
    value = EXACT_VALUES[name]
    browser = Browser(manager)
    browser.request(lambda s: s.flash(value))
    [read] = browser.request(lambda s: s.pop_flash())
    assert exactly(read, value)


def test_the_beaker_cart_idiom_counts_past_one(manager: SessionManager) -> None:
    browser = Browser(manager)
    browser.request(lambda s: s.__setitem__("cart", {}))

    def add(session: Session) -> None:
        cart = session["cart"]
        cart[101] = cart.get(101, 0) + 1

    for _ in range(3):
        browser.request(add)
    assert browser.request(lambda s: s["cart"]) == {101: 3}


def test_plain_json_values_stay_plain_json_in_the_record() -> None:
    store = MemoryStore()
    manager = SessionManager(parse_session_settings(BASE_SETTINGS), store)
    browser = Browser(manager)
    browser.request(lambda s: s.update(a=[1, {"b": None}], c="d"))
    assert browser.cookie is not None
    record = store.load(store_key(manager.policy.signer.unsign(browser.cookie)))  # type: ignore[union-attr]
    assert record is not None
    assert json.loads(split_record(record.data)[2]) == {"d": {"a": [1, {"b": None}], "c": "d"}}


def test_a_record_written_as_plain_json_loads_as_it_did() -> None:
    body = b'{"d":{"cart":{"~tuple":[1]},"n":[1,2]},"f":{"":["hi"]}}'
    assert decode_body(body).data == {"cart": {"~tuple": [1]}, "n": [1, 2]}
    assert decode_body(body).flash == {"": ["hi"]}


def test_a_dict_that_looks_like_a_tag_next_to_a_tagged_value_reads_back_as_a_dict() -> None:
    data = {"looks": {"~set": [1]}, "is": {1}}
    assert decode_body(encode_body(data, {}, None)).data == data


unstorable = pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (object(), "object"),
        (OrderedDict(a=1), "collections.OrderedDict"),
        (bytearray(b"x"), "bytearray"),
        ({"deep": [{"x": object()}]}, "object"),
        ((1, {2: [object()]}), "object"),
        ({object(): 1}, "dict key of type object"),
        ({("a", object()): 1}, "object"),
        (datetime(2026, 1, 1, tzinfo=Tz()), "Tz"),
        ({frozenset({1}): complex(1, 2)}, "complex"),
        (Decimal("sNaN"), "signaling NaN"),
    ],
    ids=[
        "object",
        "ordereddict",
        "bytearray",
        "nested",
        "in-tuple",
        "dict-key",
        "object-in-key",
        "tzinfo",
        "complex",
        "snan",
    ],
)


@unstorable
def test_anything_else_is_refused_at_assignment_naming_key_and_type(value: Any, type_name: str) -> None:
    session = Session()
    with pytest.raises(NotSerializable, match=rf"session\['k'\].*{type_name}") as refused:
        session["k"] = value
    assert refused.value.key == "k" and "k" not in session


@unstorable
def test_anything_else_is_refused_as_a_flash_message(value: Any, type_name: str) -> None:
    session = Session()
    with pytest.raises(NotSerializable, match=type_name):
        session.flash(value)
    assert session.peek_flash() == []


def test_a_bad_value_put_inside_a_stored_one_is_refused_at_commit_and_the_store_keeps_the_old(
    manager: SessionManager,
) -> None:
    browser = Browser(manager)
    browser.request(lambda s: s.__setitem__("cart", {"a": 1}))
    cookie = browser.cookie
    with pytest.raises(NotSerializable, match=r"session\['cart'\].*object"):
        browser.request(lambda s: s["cart"].__setitem__("b", object()))
    assert browser.cookie == cookie
    assert browser.request(lambda s: dict(s)) == {"cart": {"a": 1}}


def test_increment_refuses_what_is_not_a_number() -> None:
    session = Session({"name": "x"})
    with pytest.raises(TypeError, match="name"):
        session.increment("name")
    assert session.increment("n", 2) == 2 and session.increment("n") == 3


def test_reading_a_session_of_tagged_values_writes_nothing() -> None:
    store = MemoryStore()
    manager = SessionManager(parse_session_settings(BASE_SETTINGS), store)
    browser = Browser(manager)
    browser.request(lambda s: s.update(EXACT_VALUES, letters=set("abcdefghijklmnop")))
    assert browser.cookie is not None
    key = store_key(manager.policy.signer.unsign(browser.cookie))  # type: ignore[union-attr]
    before = store.load(key)
    assert browser.request(lambda s: sorted(s["letters"])) == list("abcdefghijklmnop")
    after = store.load(key)
    assert before is not None and after is not None and after.version == before.version


def test_session_keys_and_flash_queues_that_look_like_tags_read_back() -> None:
    data = {"~tuple": (1, 2)}
    flash = {"~set": [{1}]}
    body = decode_body(encode_body(data, flash, None))
    assert exactly(body.data, data) and exactly(body.flash, flash)
