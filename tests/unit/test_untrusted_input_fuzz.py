"""Property-based fuzzing of everything a client or a damaged store can hand satchel.

The normal run takes a fast sample; ``pytest -m slow`` runs the long one
(SATCHEL_FUZZ_EXAMPLES, 100,000 cases per target by default).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from satchel.codecs import Signer, decode_body, encode_record, split_record, store_key
from satchel.config import SESSION_OPTIONS, parse_session_settings
from satchel.errors import BadData, ConfigurationError
from satchel.policy.cookies import read_cookie
from tests.support.apps import SECRET, make_app, store_of

FAST = int(os.environ.get("SATCHEL_FUZZ_FAST", "300"))
LONG = int(os.environ.get("SATCHEL_FUZZ_EXAMPLES", "100000"))
QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]

signer = Signer([SECRET])
valid_cookie = signer.sign("a" * 43)

cookie_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=", max_size=120),
    st.builds(
        lambda cut, noise: valid_cookie[:cut] + noise,
        st.integers(0, len(valid_cookie)),
        st.text(max_size=10),
    ),
)
record_bytes = st.one_of(
    st.binary(max_size=400),
    st.builds(lambda body: encode_record(1.0, 2.0, body), st.binary(max_size=200)),
    st.builds(
        lambda body: encode_record(1.0, 2.0, body.encode()),
        st.from_regex(r'\{"d":.{0,40}\}', fullmatch=True),
    ),
)
setting_values = st.one_of(
    st.text(max_size=40), st.integers(), st.booleans(), st.none(), st.lists(st.text(max_size=10), max_size=3)
)


def check_signer(value: str) -> None:
    result = signer.unsign(value)
    assert result is None or signer.sign(result) == value


def check_cookie_header(header: str) -> None:
    value = read_cookie(header, "sid")
    assert value is None or isinstance(value, str)


def check_record(raw: bytes) -> None:
    try:
        _, _, body = split_record(raw)
        decode_body(body)
    except BadData:
        pass


def check_settings(options: dict[str, Any]) -> None:
    try:
        parse_session_settings({"session.secret": SECRET, **{f"session.{k}": v for k, v in options.items()}})
    except ConfigurationError:
        pass


settings_dicts = st.dictionaries(st.sampled_from(sorted(SESSION_OPTIONS)), setting_values, max_size=4)


@settings(max_examples=FAST, deadline=None, suppress_health_check=QUIET)
@given(cookie_text)
def test_signer_never_raises(value: str) -> None:
    check_signer(value)


@settings(max_examples=FAST, deadline=None, suppress_health_check=QUIET)
@given(st.text(max_size=400))
def test_cookie_header_parsing_never_raises(header: str) -> None:
    check_cookie_header(header)


@settings(max_examples=FAST, deadline=None, suppress_health_check=QUIET)
@given(record_bytes)
def test_record_decoding_raises_only_bad_data(raw: bytes) -> None:
    check_record(raw)


@settings(max_examples=FAST, deadline=None, suppress_health_check=QUIET)
@given(settings_dicts)
def test_settings_parsing_raises_only_configuration_error(options: dict[str, Any]) -> None:
    check_settings(options)


_app = make_app()


@settings(max_examples=FAST, deadline=None, suppress_health_check=QUIET)
@given(cookie_text)
def test_app_answers_any_cookie_without_500(cookie: str) -> None:
    _app.reset()
    header = "sid=" + cookie.replace(";", "").replace("\r", "").replace("\n", "")
    res = _app.get("/incr", headers={"Cookie": header.encode("latin-1", "replace").decode("latin-1")})
    assert res.status_int == 200


@settings(max_examples=FAST, deadline=None, suppress_health_check=QUIET)
@given(record_bytes)
def test_corrupt_stored_records_give_fresh_sessions(raw: bytes) -> None:
    session_id = "c" * 43
    store = store_of(_app)
    store.delete(store_key(session_id))
    assert store.save(store_key(session_id), raw, 60, None)
    _app.reset()
    res = _app.get("/read", headers={"Cookie": "sid=" + signer.sign(session_id)})
    assert res.status_int == 200


@pytest.mark.slow
@settings(max_examples=LONG, deadline=None, suppress_health_check=QUIET)
@given(cookie_text, st.text(max_size=400), record_bytes, settings_dicts)
def test_long_fuzz_run(value: str, header: str, raw: bytes, options: dict[str, Any]) -> None:
    check_signer(value)
    check_cookie_header(header)
    check_record(raw)
    check_settings(options)
