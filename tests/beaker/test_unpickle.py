"""Beaker's pickles are read without constructing anything but plain data."""

from __future__ import annotations

import datetime as dt
import decimal
import os
import pickle
import uuid
from base64 import b64encode
from typing import Any

import pytest

from satchel.beaker import UnsafeRecord, beaker_cookie_id, convert, decode_session_value, plain_loads

PLAIN = {
    "s": "text",
    "b": b"bytes",
    "n": 3,
    "f": 1.5,
    "t": True,
    "none": None,
    "l": [1, (2, 3)],
    "set": {1, 2},
    "fs": frozenset({"a"}),
    "when": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc),
    "day": dt.date(2024, 5, 1),
    "time": dt.time(8, 15),
    "span": dt.timedelta(minutes=2),
    "price": decimal.Decimal("9.99"),
    "id": uuid.UUID("12345678123456781234567812345678"),
}


class Exploit:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch /tmp/satchel-pwned",))


class Custom:
    pass


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_comes_back_as_it_was_pickled(protocol: int) -> None:
    assert plain_loads(pickle.dumps(PLAIN, protocol)) == PLAIN


@pytest.mark.parametrize(
    "value",
    [Exploit(), Custom(), {"nested": [Custom()]}, pickle.dumps, print, Exception("x"), bytearray(b"x")],
    ids=[
        "reduce-to-os-system",
        "instance",
        "nested-instance",
        "module-function",
        "builtin-function",
        "exception",
        "bytearray",
    ],
)
def test_anything_but_plain_data_is_refused(value: Any) -> None:
    with pytest.raises(UnsafeRecord):
        plain_loads(pickle.dumps(value, 2))


def test_a_pickle_that_runs_a_command_is_refused_before_anything_runs(tmp_path: Any) -> None:
    marker = tmp_path / "ran"

    class Runs:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    with pytest.raises(UnsafeRecord, match=r"system"):
        plain_loads(pickle.dumps({"k": Runs()}, 2))
    assert not marker.exists()


def test_the_bytes_constructor_of_old_pickles_accepts_latin1_only() -> None:
    crafted = b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R."
    with pytest.raises(UnsafeRecord):
        plain_loads(crafted)


@pytest.mark.parametrize("junk", [b"", b"\x80\x02", b"not a pickle", b"\x80\x05\x95" + b"\xff" * 20])
def test_what_is_not_a_pickle_is_refused(junk: bytes) -> None:
    with pytest.raises(UnsafeRecord):
        plain_loads(junk)


def test_a_beaker_session_becomes_json_data_with_flash_and_csrf_apart() -> None:
    stored = {
        "_creation_time": 1000.0,
        "_accessed_time": 1500.0,
        "_f_": ["hello"],
        "_f_cart": ["added"],
        "_csrft_": "abc",
        **PLAIN,
    }
    value = decode_session_value(b64encode(pickle.dumps(stored, 2)))
    assert value is not None
    converted = convert(value, now=2000.0)
    assert (converted.created, converted.accessed) == (1000.0, 1500.0)
    assert converted.flash == {"": ["hello"], "cart": ["added"]}
    assert converted.csrf == "abc"
    assert converted.data == {
        "s": "text",
        "b": "bytes",
        "n": 3,
        "f": 1.5,
        "t": True,
        "none": None,
        "l": [1, [2, 3]],
        "set": [1, 2],
        "fs": ["a"],
        "when": "2024-05-01T12:30:00+00:00",
        "day": "2024-05-01",
        "time": "08:15:00",
        "span": 120.0,
        "price": "9.99",
        "id": "12345678-1234-5678-1234-567812345678",
    }


def test_beakers_json_serializer_is_read_too() -> None:
    import zlib

    value = b64encode(zlib.compress(b'{"user": "alice", "_creation_time": 5}'))
    assert decode_session_value(value) == {"user": "alice", "_creation_time": 5}


def test_an_encrypted_beaker_session_is_refused_not_guessed_at() -> None:
    with pytest.raises(UnsafeRecord):
        decode_session_value(b"nonce123" + b64encode(os.urandom(40)))


SECRET = "0cb243f53ad865a0f70099c0414ffe9cfcfe03ac"


def _signed(beaker_id: str, secret: str = SECRET) -> str:
    import hashlib
    import hmac

    return hmac.new(secret.encode(), beaker_id.encode(), hashlib.sha1).hexdigest() + beaker_id


def test_a_beaker_cookie_gives_its_id_only_when_a_secret_signed_it() -> None:
    beaker_id = uuid.uuid4().hex
    assert beaker_cookie_id(_signed(beaker_id), [SECRET]) == beaker_id
    assert beaker_cookie_id(_signed(beaker_id), ["another", SECRET]) == beaker_id
    assert beaker_cookie_id(_signed(beaker_id, "x" * 40), [SECRET]) is None
    assert beaker_cookie_id(_signed("../../etc/passwd" + "0" * 16), [SECRET]) is None
    assert beaker_cookie_id("satchel-id.signature", [SECRET]) is None


def test_an_unsigned_beaker_cookie_is_taken_only_in_the_shape_of_beakers_ids() -> None:
    beaker_id = uuid.uuid4().hex
    assert beaker_cookie_id(beaker_id, [SECRET]) == beaker_id
    assert beaker_cookie_id(beaker_id.upper(), [SECRET]) is None
    assert beaker_cookie_id(beaker_id[:-1], [SECRET]) is None


def test_a_pickle_that_unfolds_exponentially_is_refused() -> None:
    value: list[Any] = ["x"]
    for _ in range(40):
        value = [value, value]  # 2**40 values once unfolded, a few hundred bytes pickled
    crafted = pickle.dumps(value, 2)
    assert len(crafted) < 2000
    with pytest.raises(UnsafeRecord, match="unfolds"):
        plain_loads(crafted)


def test_a_list_that_contains_itself_is_refused() -> None:
    value: list[Any] = []
    value.append(value)
    with pytest.raises(UnsafeRecord):
        plain_loads(pickle.dumps(value, 2))


def test_values_nested_too_deeply_are_refused() -> None:
    value: list[Any] = []
    for _ in range(100):
        value = [value]
    with pytest.raises(UnsafeRecord, match="nest"):
        plain_loads(pickle.dumps(value, 2))


def test_a_pickle_asking_for_a_huge_bytes_object_is_refused() -> None:
    crafted = b"\x80\x02cbuiltins\nbytes\nJ\x00\x00\x00\x7f\x85R."  # bytes(2**31 - 2**24)
    with pytest.raises(UnsafeRecord):
        plain_loads(crafted)


def test_empty_bytes_from_an_old_pickle_are_read() -> None:
    assert plain_loads(pickle.dumps({"b": b""}, 2)) == {"b": b""}


def test_a_value_satchel_cannot_store_refuses_the_record() -> None:
    with pytest.raises(UnsafeRecord, match="huge"):
        convert({"huge": 10**5000, "_creation_time": 1.0}, now=2.0)


def test_a_pickle_asking_for_a_huge_bytes_object_under_its_python2_name_is_refused() -> None:
    crafted = b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x7f\x85R."
    with pytest.raises(UnsafeRecord):
        plain_loads(crafted)


def test_a_uuid_whose_state_is_not_a_number_is_refused() -> None:
    crafted = b"\x80\x02cuuid\nUUID\nq\x00)\x81q\x01}q\x02X\x03\x00\x00\x00intq\x03]q\x04sb."
    with pytest.raises(UnsafeRecord, match="UUID"):
        plain_loads(crafted)
