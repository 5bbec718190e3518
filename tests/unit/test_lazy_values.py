"""A request costs what the view touches, not what the session holds.

A stored body holds one data entry per line. A loaded session decodes a value
when the view first reads it; at commit it encodes only the values the view set
and the mutable values it was handed, and writes a change by replacing lines.
These tests count the decoding and encoding done, and check that whatever the
view does, what is stored is what a plain dict would hold.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from satchel.codecs import encode_body, open_body, store_key
from satchel.codecs import record as record_codec
from satchel.codecs.record import LINED_MIN_KEYS, Entries
from satchel.config import parse_session_settings
from satchel.manager import SessionManager
from satchel.session import Session
from satchel.stores.memory import MemoryStore
from satchel.testing import FakeClock
from tests.support.apps import BASE_SETTINGS

BIG = 1000


def big_data(keys: int = BIG) -> dict[str, Any]:
    data: dict[str, Any] = {"user": "ada"}
    data.update({f"k{i:04d}": f"value-{i:018d}" for i in range(keys)})
    data["nested"] = {f"n{i}": f"inner-{i:018d}" for i in range(keys // 10)}
    data["items"] = [1, 2, 3]
    return data


def cookie_of(headers: list[str]) -> str:
    return headers[0].split(";", 1)[0].split("=", 1)[1]


class Visitor:
    """One visitor's requests on a manager: open with the cookie, commit, keep the cookie."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.cookie: str | None = None
        self.writes = 0

    def request(self, view: Callable[[Session], Any]) -> Any:
        session = self.manager.open(self.cookie)
        result = view(session)
        before = self.stored_body() if self.cookie else None
        headers = self.manager.commit(session)
        if headers:
            self.cookie = cookie_of(headers)
        if before is not None and self.stored_body() != before:
            self.writes += 1
        return result

    def stored_body(self) -> bytes:
        return self._record().data.partition(b"\n")[2]

    def overwrite(self, body: bytes) -> None:
        """Store ``body`` behind the session layer's back, keeping the record's header."""
        assert self.manager.store is not None
        record = self._record()
        data = record.data.partition(b"\n")[0] + b"\n" + body
        assert self.manager.store.save(self._key(), data, 600, record.version) is not None

    def _key(self) -> str:
        assert self.cookie is not None
        session_id = self.manager.policy.signer.unsign(self.cookie)  # type: ignore[union-attr]
        assert session_id is not None
        return store_key(session_id)

    def _record(self) -> Any:
        assert self.manager.store is not None
        record = self.manager.store.load(self._key())
        assert record is not None
        return record


@pytest.fixture
def visitor(manager: SessionManager) -> Visitor:
    """A visitor whose session holds big_data()."""
    v = Visitor(manager)
    v.request(lambda s: s.update(big_data()))
    v.writes = 0
    return v


class Counts:
    """How many values were decoded from a loaded body, and how much was encoded.

    A loaded session decodes its first value when it opens (so code that reads a
    dict's storage directly never takes it for empty): one decode more per request.
    """

    def __init__(self) -> None:
        self.decoded = 0
        self.pieces_encoded = 0
        self.bodies_encoded = 0


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counts]:
    seen = Counts()
    decode, encode_piece, encode_whole = Entries.decode, record_codec.encode_piece, record_codec.encode_body

    def counting_decode(self: Entries, piece: bytes) -> Any:
        seen.decoded += 1
        return decode(self, piece)

    def counting_piece(*args: Any) -> Any:
        seen.pieces_encoded += 1
        return encode_piece(*args)

    def counting_body(*args: Any) -> Any:
        seen.bodies_encoded += 1
        return encode_whole(*args)

    monkeypatch.setattr(Entries, "decode", counting_decode)
    monkeypatch.setattr("satchel.session.encode_piece", counting_piece)
    monkeypatch.setattr("satchel.session.encode_body", counting_body)
    yield seen


# -- the work done ---------------------------------------------------------------------


def test_reading_one_string_of_a_thousand_decodes_one_value_and_encodes_nothing(
    visitor: Visitor, counts: Counts
) -> None:
    assert visitor.request(lambda s: s["k0002"]) == "value-000000000000000002"
    assert (counts.decoded, counts.pieces_encoded, counts.bodies_encoded) == (2, 0, 0)
    assert visitor.writes == 0


def test_a_read_only_request_handed_a_dict_encodes_only_that_dict(visitor: Visitor, counts: Counts) -> None:
    assert len(visitor.request(lambda s: s["nested"])) == BIG // 10
    assert (counts.decoded, counts.pieces_encoded, counts.bodies_encoded) == (2, 1, 0)
    assert visitor.writes == 0


def test_changing_one_key_encodes_that_value_and_rewrites_only_its_line(visitor: Visitor, counts: Counts) -> None:
    before = visitor.stored_body()
    visitor.request(lambda s: s.__setitem__("k0001", "changed"))
    after = visitor.stored_body()
    assert (counts.decoded, counts.pieces_encoded, counts.bodies_encoded) == (1, 1, 0)
    assert visitor.writes == 1
    changed = [(old, new) for old, new in zip(before.split(b"\n"), after.split(b"\n"), strict=True) if old != new]
    assert changed == [(b'"k0001":"value-000000000000000001",', b'"k0001":"changed",')]


def test_a_change_made_inside_a_handed_out_list_is_found_and_written(visitor: Visitor, counts: Counts) -> None:
    visitor.request(lambda s: s["items"].append(4))
    assert visitor.writes == 1
    assert counts.bodies_encoded == 0
    assert visitor.request(lambda s: s["items"]) == [1, 2, 3, 4]


def test_a_value_is_decoded_once_per_request(visitor: Visitor, counts: Counts) -> None:
    visitor.request(lambda s: [s["k0003"], s.get("k0003"), "k0003" in s, s["k0003"]])
    assert counts.decoded == 2


# -- whole-session reads ---------------------------------------------------------------


@pytest.mark.parametrize(
    "read",
    [
        lambda s: dict(s),
        lambda s: {**s},
        lambda s: dict(s.items()),
        lambda s: dict(zip(s.keys(), s.values(), strict=True)),
        lambda s: {k: s[k] for k in s},
        lambda s: json.loads(json.dumps(s)),
        lambda s: s.copy(),
        lambda s: s | {},
        lambda s: {} | s,
    ],
    ids=["dict", "unpack", "items", "keys-values", "iterate", "json", "copy", "or", "ror"],
)
def test_reading_the_session_whole_sees_every_value(visitor: Visitor, read: Callable[[Session], Any]) -> None:
    assert visitor.request(read) == big_data()


def test_length_truth_equality_and_order_match_a_dict(visitor: Visitor) -> None:
    expected = big_data()

    def view(s: Session) -> None:
        assert s and len(s) == len(expected)
        assert s == expected and not (s != expected)
        assert list(s) == list(expected) and list(reversed(s)) == list(reversed(expected))
        assert repr(s).endswith(f"{expected!r}>")

    visitor.request(view)
    assert visitor.writes == 0


def test_a_value_handed_out_before_the_session_was_read_whole_stays_the_same_object(visitor: Visitor) -> None:
    def view(s: Session) -> None:
        nested = s["nested"]
        dict(s)
        assert s["nested"] is nested
        nested["added"] = "here"

    visitor.request(view)
    assert visitor.request(lambda s: s["nested"]["added"]) == "here"


# -- every way to change it ------------------------------------------------------------


def test_deleting_the_first_a_middle_and_the_last_key_and_adding_keys(visitor: Visitor) -> None:
    expected = big_data()
    first, last = "user", "items"

    def view(s: Session) -> None:
        del s[first]
        del s["k0500"]
        s.pop(last)
        s["new"] = {"a": 1}
        s.setdefault("other", [])
        s.increment("count")

    visitor.request(view)
    for key in (first, "k0500", last):
        del expected[key]
    expected.update(new={"a": 1}, other=[], count=1)
    assert visitor.request(lambda s: list(s.items())) == list(expected.items())


def test_a_key_deleted_and_set_again_moves_to_the_end_as_in_a_dict(visitor: Visitor) -> None:
    def view(s: Session) -> None:
        del s["k0001"]
        s["k0001"] = "back"

    visitor.request(view)
    assert visitor.request(lambda s: list(s)[-1]) == "k0001"


def test_deleting_every_key_line_by_line_leaves_an_empty_session(manager: SessionManager) -> None:
    v = Visitor(manager)
    keys = [f"k{i:02d}" for i in range(LINED_MIN_KEYS)]
    v.request(lambda s: s.update(dict.fromkeys(keys, 1)))
    assert open_body(v.stored_body()).entries is not None
    v.request(lambda s: [s.pop(k) for k in [keys[1], keys[0], *keys[2:]]] and s.flash("kept"))
    assert v.request(lambda s: (dict(s), s.peek_flash())) == ({}, ["kept"])


def test_a_missing_key_raises_key_error_and_get_gives_the_default(visitor: Visitor) -> None:
    def view(s: Session) -> None:
        with pytest.raises(KeyError):
            s["absent"]
        with pytest.raises(KeyError):
            del s["absent"]
        assert s.get("absent", 7) == 7 and "absent" not in s and s.pop("absent", None) is None

    visitor.request(view)


def test_revert_goes_back_to_the_loaded_values(visitor: Visitor) -> None:
    def view(s: Session) -> None:
        s["k0001"] = "changed"
        del s["k0002"]
        s.revert()
        assert s["k0001"] == "value-000000000000000001" and "k0002" in s

    visitor.request(view)
    assert visitor.writes == 0


@hsettings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["set", "del", "pop", "get", "append", "inc", "setdefault", "whole"]),
            st.sampled_from(["a", "b", "c", "d", "nested", 'q"uote', "line\nbreak", "~tilde"]),
            st.one_of(st.integers(-5, 5), st.text(max_size=4), st.lists(st.integers(0, 3), max_size=2)),
        ),
        max_size=12,
    )
)
def test_any_sequence_of_dict_operations_stores_what_a_dict_would_hold(ops: list[tuple[str, str, Any]]) -> None:
    clock = FakeClock()
    manager = SessionManager(parse_session_settings(BASE_SETTINGS), MemoryStore(clock=clock), clock=clock)
    v = Visitor(manager)
    filler = {f"f{i:02d}": i for i in range(LINED_MIN_KEYS)}  # enough keys to be read a value at a time
    start: dict[str, Any] = {"a": 1, "b": "two", "c": [3], "nested": {"x": [1]}, "d": (4, 5), **filler}
    v.request(lambda s: s.update(start))
    model = {k: (list(x) if isinstance(x, list) else x) for k, x in start.items()}
    model["nested"] = {"x": [1]}

    def view(s: Session) -> None:
        for op, key, value in ops:
            if op == "set":
                s[key] = value
                model[key] = value
            elif op == "del" and key in model:
                del s[key]
                del model[key]
            elif op == "pop":
                assert s.pop(key, "none") == model.pop(key, "none")
            elif op == "get":
                assert s.get(key) == model.get(key)
            elif op == "append" and type(model.get(key)) is list:
                s[key].append(value)
                model[key].append(value)
            elif op == "inc" and type(model.get(key, 0)) is int:
                s.increment(key, 2)
                model[key] = model.get(key, 0) + 2
            elif op == "setdefault":
                assert s.setdefault(key, value) == model.setdefault(key, value)
            elif op == "whole":
                assert dict(s) == model

    v.request(view)
    assert v.request(lambda s: list(s.items())) == list(model.items())
    assert open_body(v.stored_body()).entries is not None or len(model) < LINED_MIN_KEYS


# -- what is stored, and what earlier versions stored ----------------------------------


def test_bodies_hold_one_data_entry_per_line_and_are_json() -> None:
    data = {"a": 1, "b": {"c": [1, 2]}, **{f"f{i:02d}": i for i in range(LINED_MIN_KEYS - 2)}}
    body = encode_body(data, {"": ["hi"]}, "token", None)
    lines = b"".join(b',\n"f%02d":%d' % (i, i) for i in range(LINED_MIN_KEYS - 2))
    assert body == b'{"d":{\n"a":1,\n"b":{"c":[1,2]}' + lines + b'\n},"f":{"":["hi"]},"t":"token"}'
    assert json.loads(body)["d"] == data


def test_small_bodies_of_immutable_values_are_written_whole_and_others_one_entry_per_line() -> None:
    assert encode_body({"a": 1, "b": "two"}, {}, None, None) == b'{"d":{"a":1,"b":"two"}}'
    assert encode_body({"a": 1, "b": [2]}, {}, None, None) == b'{"d":{\n"a":1,\n"b":[2]\n}}'
    big = {"a": 1, "blob": "x" * 2000}
    assert encode_body(big, {}, None, None) == b'{"d":{\n"a":1,\n"blob":"%s"\n}}' % (b"x" * 2000)


def test_a_body_written_whole_by_an_earlier_version_reads_and_a_read_only_request_leaves_it(
    manager: SessionManager,
) -> None:
    v = Visitor(manager)
    v.request(lambda s: s.update(x=1))
    filler = {f"f{i:02d}": i for i in range(LINED_MIN_KEYS)}
    earlier = {"cart": {"apple": 2}, **filler}
    whole = json.dumps({"d": earlier, "f": {"": ["hi"]}}, separators=(",", ":")).encode()
    v.overwrite(whole)
    assert v.request(lambda s: (s["cart"], s.peek_flash())) == ({"apple": 2}, ["hi"])
    assert v.writes == 0 and v.stored_body() == whole
    v.request(lambda s: s["cart"].update(pear=1))
    assert v.request(lambda s: dict(s)) == {"cart": {"apple": 2, "pear": 1}, **filler}
    assert open_body(v.stored_body()).entries is not None


def test_a_plain_body_gaining_a_tagged_value_keeps_every_value_exact(visitor: Visitor) -> None:
    visitor.request(lambda s: s.update(lookalike={"~tuple": [1]}, pair=(1, 2)))
    read = visitor.request(lambda s: (s["lookalike"], s["pair"], s["k0001"]))
    assert read == ({"~tuple": [1]}, (1, 2), "value-000000000000000001")
    assert visitor.stored_body().startswith(b'{"x":1,')


def test_a_tagged_body_is_read_a_value_at_a_time_too(visitor: Visitor, counts: Counts) -> None:
    visitor.request(lambda s: s.__setitem__("when", {1, 2}))
    counts.decoded = counts.pieces_encoded = counts.bodies_encoded = 0
    assert visitor.request(lambda s: s["when"]) == {1, 2}
    visitor.request(lambda s: s.__setitem__("k0001", b"bytes"))
    assert visitor.request(lambda s: s["k0001"]) == b"bytes"
    assert counts.bodies_encoded == 0


def test_a_corrupt_value_reads_as_absent_with_a_log_line_and_the_rest_stays(
    manager: SessionManager, caplog: pytest.LogCaptureFixture
) -> None:
    v = Visitor(manager)
    filler = {f"f{i:02d}": i for i in range(LINED_MIN_KEYS)}
    v.request(lambda s: s.update(good=1, bad=2, **filler))
    v.overwrite(v.stored_body().replace(b'"bad":2', b'"bad":NaN'))
    with caplog.at_level(logging.WARNING, logger="satchel.security"):
        assert v.request(lambda s: (s.get("bad"), "bad" in s, s["good"])) == (None, False, 1)
    assert "corrupt" in caplog.text and "NaN" in caplog.text
    assert v.writes == 0
    v.request(lambda s: s.__setitem__("more", 3))
    assert v.request(lambda s: dict(s)) == {"good": 1, **filler, "more": 3}


def test_a_body_whose_data_does_not_end_gives_a_fresh_session(manager: SessionManager) -> None:
    v = Visitor(manager)
    v.request(lambda s: s.update(a=1))
    v.overwrite(b'{"d":{\n"a":1')
    assert manager.open(v.cookie).new


# -- cookie sessions -------------------------------------------------------------------


def test_cookie_sessions_decode_what_is_read_and_send_nothing_for_a_read(clock: FakeClock, counts: Counts) -> None:
    settings = parse_session_settings(
        {**BASE_SETTINGS, "session.type": "cookie", "session.encrypt_key": "9f2c4e6a8b0d1f3a5c7e9b2d4f6a8c0e1b3d5f7a"}
    )
    manager = SessionManager(settings, None, clock=clock)
    session = manager.open(None)
    session.update(big_data(60))
    cookie = "; ".join(h.split(";", 1)[0] for h in manager.commit(session))
    counts.decoded = counts.pieces_encoded = counts.bodies_encoded = 0
    session = manager.open_request(cookie)
    assert session["k0002"] == "value-000000000000000002"
    assert manager.commit(session) == []
    assert (counts.decoded, counts.pieces_encoded, counts.bodies_encoded) == (2, 0, 0)
    session = manager.open_request(cookie)
    session["k0003"] = "changed"
    assert manager.commit(session)
    assert counts.bodies_encoded == 0
