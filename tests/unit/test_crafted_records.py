"""A record written by someone with access to the store constructs nothing but the
session's own types: unknown tags, tags holding the wrong shape and zone names
that are not zones are corrupt data, and the visitor gets a fresh session."""

from __future__ import annotations

import json
import random
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from satchel.codecs import decode_body, encode_record, store_key
from satchel.config import parse_session_settings
from satchel.errors import BadData
from satchel.manager import SessionManager
from satchel.stores.memory import MemoryStore
from tests.support.apps import BASE_SETTINGS, Browser

ALLOWED = {
    str, int, float, bool, type(None), list, dict, tuple, set, frozenset, bytes,
    datetime, date, time, timedelta, uuid.UUID, Decimal, timezone, ZoneInfo,
}  # fmt: skip

CRAFTED = {
    "unknown tag": {"~pickle": "gASVAAAAAAAAAA=="},
    "a class name": {"~object": ["os", "system"]},
    "a module path": {"~datetime.datetime": "2026-01-01"},
    "set of lists": {"~set": [[1]]},
    "dict with a list key": {"~dict": [[[1], 2]]},
    "dict pair of three": {"~dict": [[1, 2, 3]]},
    "tuple of a str": {"~tuple": "abc"},
    "bytes not base64": {"~bytes": "$$$"},
    "bytes as a list": {"~bytes": [1, 2]},
    "zone outside the database": {"~datetime": ["2026-01-01T00:00:00", "../../../etc/passwd", 0]},
    "zone that does not exist": {"~datetime": ["2026-01-01T00:00:00", "Mars/Olympus", 0]},
    "zoned datetime with an offset too": {"~datetime": ["2026-01-01T00:00:00+01:00", "UTC", 0]},
    "fold of 2": {"~datetime": ["2026-01-01T00:00:00", "UTC", 2]},
    "timedelta of floats": {"~timedelta": [1.5, 0, 0]},
    "timedelta out of range": {"~timedelta": [10**12, 0, 0]},
    "uuid of a number": {"~uuid": 7},
    "decimal of a list": {"~decimal": [1]},
    "decimal not a number": {"~decimal": "one"},
    "signaling nan decimal": {"~decimal": "sNaN"},
    "deep tuples": json.loads('{"~tuple":[' * 70 + "1" + "]}" * 70),
}


def tagged_body(value: Any) -> bytes:
    return json.dumps({"x": 1, "d": {"v": value}}, separators=(",", ":")).encode()


def test_tags_are_read_only_in_a_body_marked_tagged() -> None:
    plain = json.dumps({"d": {"v": {"~tuple": [1]}}, "x": 1}).encode()
    assert decode_body(plain).data == {"v": {"~tuple": [1]}}
    assert decode_body(tagged_body({"~tuple": [1]})).data == {"v": (1,)}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_a_crafted_tag_is_corrupt_data(name: str) -> None:
    with pytest.raises(BadData):
        decode_body(tagged_body(CRAFTED[name]))


@pytest.mark.parametrize("body", [b'{"x":1,"d":{"~tuple":[]}}', b'{"x":1,"d":{},"f":{"":{"~tuple":[]}}}'])
def test_a_body_whose_data_or_flash_queue_is_a_tag_is_corrupt(body: bytes) -> None:
    with pytest.raises(BadData):
        decode_body(body)


def test_a_crafted_record_gives_the_visitor_a_fresh_session() -> None:
    store = MemoryStore()
    manager = SessionManager(parse_session_settings(BASE_SETTINGS), store)
    browser = Browser(manager)
    browser.request(lambda s: s.__setitem__("v", 1))
    assert browser.cookie is not None
    key = store_key(manager.policy.signer.unsign(browser.cookie))  # type: ignore[union-attr]
    record = store.load(key)
    assert record is not None
    store.save(key, encode_record(1.0e9, 1.0e9, tagged_body(CRAFTED["unknown tag"])), None, record.version)
    assert browser.request(lambda s: (s.new, dict(s))) == (True, {})


def constructed_types(value: Any) -> set[type]:
    found = {type(value)}
    if isinstance(value, dict):
        for key, item in value.items():
            found |= constructed_types(key) | constructed_types(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            found |= constructed_types(item)
    elif isinstance(value, (datetime, time)) and value.tzinfo is not None:
        found.add(type(value.tzinfo))
    return found


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """JSON of the shapes tags take, with tag names and plausible and implausible contents."""
    tags = ["~tuple", "~set", "~frozenset", "~dict", "~bytes", "~datetime", "~date", "~time", "~timedelta"]
    tags += ["~uuid", "~decimal", "~x", "~", "~~tuple"]
    scalars: list[Any] = [1, -1, 0, 2.5, True, None, "", "AA==", "2026-01-01", "12:00", "2026-01-01T00:00:00+01:00"]
    scalars += ["Europe/Paris", "12345678123456781234567812345678", "1e5", "NaN"]
    if depth > 4 or rng.random() < 0.3:
        return rng.choice(scalars)
    roll = rng.random()
    if roll < 0.4:
        return {rng.choice(tags): random_json(rng, depth + 1)}
    if roll < 0.7:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["a", "b", "~tuple"]): random_json(rng, depth + 1) for _ in range(rng.randint(0, 2))}


def test_random_crafted_records_construct_only_the_session_types() -> None:
    rng = random.Random(1)
    decoded = 0
    for _ in range(5000):
        try:
            body = decode_body(tagged_body(random_json(rng)))
        except BadData:
            continue
        decoded += 1
        assert constructed_types(body.data) <= ALLOWED
    assert decoded > 500, "the generator should also make valid records"
