"""Settings: every Beaker option accepted and coerced; mistakes stop the app at start-up."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest

from satchel.config import parse_session_settings
from satchel.config.coerce import NEVER
from satchel.errors import ConfigurationError
from tests.support.apps import SECRET

BASE = {"session.secret": SECRET}


def parse(**options: Any) -> Any:
    return parse_session_settings({**BASE, **{f"session.{k}": v for k, v in options.items()}})


def test_every_beaker_session_option_is_accepted(tmp_path: Path) -> None:
    settings = {
        "session.type": "file",
        "session.data_dir": str(tmp_path / "d"),
        "session.lock_dir": str(tmp_path / "l"),
        "session.key": "akhet_demo",
        "session.secret": SECRET,
        "session.validate_key": SECRET,
        "session.encrypt_key": "e8Kq2Wm7Xp4Lz9Rt3Vc6Ns1Bh5Yd0JfG2a",
        "session.encrypt_nonce_bits": "128",
        "session.crypto_type": "cryptography",
        "session.timeout": "3600",
        "session.save_accessed_time": "true",
        "session.cookie_expires": "true",
        "session.cookie_domain": "example.org",
        "session.cookie_path": "/app",
        "session.secure": "true",
        "session.httponly": "true",
        "session.samesite": "Strict",
        "session.data_serializer": "json",
        "session.invalidate_corrupt": "false",
        "session.auto": "true",
        "session.use_cookies": "true",
        "session.url": "ignored-by-file-store",
        "session.urls": "a:1 b:2",
        "session.memcache_module": "pymemcache",
        "session.table_name": "sessions",
        "session.schema_name": "web",
        "session.sa.pool_recycle": "3600",
        "session.webtest_varname": "session",
        "session.cookie_on_exception": "false",
    }
    parsed = parse_session_settings(settings)
    assert parsed.store.type == "file"
    assert parsed.cookie.name == "akhet_demo"
    assert parsed.cookie.domain == "example.org"
    assert parsed.cookie.path == "/app"
    assert parsed.cookie.secure is True
    assert parsed.cookie.samesite == "Strict"
    assert parsed.timeout == 3600
    assert parsed.invalidate_corrupt is False
    assert parsed.cookie_on_exception is False
    assert parsed.store.options == {"data_dir": str(tmp_path / "d"), "lock_dir": str(tmp_path / "l")}
    assert any("encrypt_nonce_bits" in w for w in parsed.warnings)
    for other_stores_option in ("url", "urls", "memcache_module", "table_name", "schema_name", "sa.pool_recycle"):
        assert f"session.{other_stores_option} has no effect with session.type = file" in parsed.warnings


def test_options_of_the_chosen_store_are_coerced_by_the_store() -> None:
    parsed = parse(type="ext:database", url="sqlite://", table_name=" sessions ", **{"sa.pool_recycle": "3600"})
    assert parsed.store.type == "sql"
    assert parsed.store.options == {"url": "sqlite://", "table_name": "sessions", "sa": {"pool_recycle": "3600"}}
    assert parsed.warnings == ()


def test_beaker_prefix_is_accepted() -> None:
    parsed = parse_session_settings({"beaker.session.secret": SECRET, "beaker.session.key": "k"})
    assert parsed.cookie.name == "k"


def test_both_prefixes_disagreeing_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="disagree"):
        parse_session_settings({**BASE, "session.key": "a", "beaker.session.key": "b"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("false", False), ("False", False), ("no", False), ("0", False), ("true", True), ("on", True)],
)
def test_boolean_strings_are_coerced(value: str, expected: bool) -> None:
    assert parse(invalidate_corrupt=value).invalidate_corrupt is expected


def test_bad_boolean_names_key_and_value() -> None:
    with pytest.raises(ConfigurationError, match=r"session.httponly must be true or false, not 'maybe'"):
        parse(httponly="maybe")


def test_unknown_key_suggests_nearest() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown setting session.timout; did you mean session.timeout\?"):
        parse(timout="10")


def test_unknown_key_far_from_everything() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown setting session.zzzzqqq$"):
        parse(zzzzqqq="1")


def test_missing_secret_is_a_startup_error() -> None:
    with pytest.raises(ConfigurationError, match="secret is required"):
        parse_session_settings({"session.type": "memory"})


@pytest.mark.parametrize("secret", ["secret", "changeme", "a" * 64, "abababababababababababababababab"])
def test_weak_secret_is_refused(secret: str) -> None:
    with pytest.raises(ConfigurationError, match="too weak"):
        parse_session_settings({"session.secret": secret})


def test_validate_key_is_beakers_name_for_the_secret() -> None:
    parsed = parse_session_settings({"session.validate_key": SECRET})
    assert parsed.secrets == (SECRET,)


def test_secret_list_one_per_line_for_rotation() -> None:
    other = "f3b8d1e6a9c2f7b4e0d5a8c1f6b3e9d2a7c4f0b5e8d1"
    parsed = parse_session_settings({"session.secret": f"\n  {other}\n  {SECRET}\n"})
    assert parsed.secrets == (other, SECRET)


def test_pickle_is_refused_with_a_reason() -> None:
    with pytest.raises(ConfigurationError, match="pickle is refused"):
        parse(data_serializer="pickle")


def test_old_crypto_backend_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="crypto_type = pycrypto"):
        parse(crypto_type="pycrypto")


def test_use_cookies_false_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="use_cookies"):
        parse(use_cookies="false")


def test_auto_false_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="satchel.settings"):
        parsed = parse(auto="false")
    assert any("auto = false" in w for w in parsed.warnings)
    assert any("auto = false" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("store_type", ["ext:mongodb", "ext:google"])
def test_unsupported_store_types_say_so(store_type: str) -> None:
    with pytest.raises(ConfigurationError, match="type"):
        parse(type=store_type)


def test_unknown_store_type() -> None:
    with pytest.raises(ConfigurationError, match="is not a store"):
        parse(type="carrier-pigeon")


@pytest.mark.parametrize(
    ("beaker_name", "store"),
    [
        ("memory", "memory"),
        ("ext:memcached", "memcached"),
        ("ext:database", "sql"),
        ("ext:sqla", "sql"),
        ("ext:redis", "redis"),
        ("redis", "redis"),
        ("cookie", "cookie"),
    ],
)
def test_beaker_type_names(beaker_name: str, store: str) -> None:
    parsed = parse(type=beaker_name, url="redis://x" if store != "memory" else None) if store not in (
        "memory",
        "cookie",
    ) else parse(type=beaker_name)
    assert parsed.store.type == store


def test_dbm_is_served_by_the_file_store(tmp_path: Path) -> None:
    parsed = parse(type="dbm", data_dir=str(tmp_path))
    assert parsed.store.type == "file"
    assert parsed.warnings


def test_file_store_needs_data_dir() -> None:
    with pytest.raises(ConfigurationError, match="data_dir"):
        parse(type="file")


def test_server_store_needs_url() -> None:
    with pytest.raises(ConfigurationError, match=r"session\.url"):
        parse(type="ext:redis")


def test_cookie_expires_forms() -> None:
    assert parse(cookie_expires="true").cookie.expires is None
    assert parse(cookie_expires="false").cookie.expires == NEVER
    assert parse(cookie_expires="300").cookie.expires == dt.timedelta(seconds=300)
    when = parse(cookie_expires="2030-01-02T03:04:05").cookie.expires
    assert when == dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    with pytest.raises(ConfigurationError, match="cookie_expires"):
        parse(cookie_expires="tomorrow")


def test_timeouts() -> None:
    assert parse().timeout == 1200
    assert parse().renew_interval == 120
    assert parse(timeout="none").timeout is None
    with pytest.raises(ConfigurationError, match="whole number"):
        parse(timeout="ten")
    with pytest.raises(ConfigurationError, match="shorter than"):
        parse(timeout="600", absolute_timeout="60")
    with pytest.raises(ConfigurationError, match="renew_interval"):
        parse(timeout="60", renew_interval="60")
    assert parse(save_accessed_time="false").renew_interval == 0


def test_samesite_values() -> None:
    assert parse().cookie.samesite == "Lax"
    assert parse(samesite="strict").cookie.samesite == "Strict"
    with pytest.raises(ConfigurationError, match="Lax, Strict or None"):
        parse(samesite="sometimes")


def test_bad_cookie_name() -> None:
    with pytest.raises(ConfigurationError, match="cookie name"):
        parse(key="has space")


def test_include_fails_at_startup_not_first_request() -> None:
    from pyramid.config import Configurator

    with pytest.raises(ConfigurationError, match="too weak"):
        with Configurator(settings={"session.secret": "short"}) as config:
            config.include("satchel")


@pytest.mark.parametrize("option", ["cookie_expires", "timeout", "absolute_timeout", "renew_interval"])
def test_absurd_durations_are_refused_not_crashed(option: str) -> None:
    # Found by the long fuzz run: a huge number overflowed datetime.timedelta.
    with pytest.raises(ConfigurationError, match="at most"):
        parse(**{option: 86400000000000})


def test_encrypt_key_on_a_server_side_store_warns() -> None:
    parsed = parse(encrypt_key="e8Kq2Wm7Xp4Lz9Rt3Vc6Ns1Bh5Yd0JfG2a")
    assert any("not encrypted" in w for w in parsed.warnings)


def test_max_cookies_is_bounded_by_what_can_be_read_back() -> None:
    assert parse(max_cookies="64").max_cookies == 64
    with pytest.raises(ConfigurationError, match="at most 64"):
        parse(max_cookies="70")


@pytest.mark.parametrize("timeout", [1, 2, 5, 10, 11, 119])
def test_any_timeout_is_accepted_with_the_default_renew_interval(timeout: int) -> None:
    parsed = parse(timeout=str(timeout))
    assert parsed.timeout == timeout
    assert 0 <= parsed.renew_interval < timeout


def test_timeout_of_one_second_is_never_renewed_by_reading() -> None:
    assert parse(timeout="1").renew_interval == 0
    assert parse(timeout="2").renew_interval == 1


@pytest.mark.parametrize(
    "written",
    [
        {"absolute_timeout": "1"},
        {"absolute_timeout": "60"},
        {"renew_interval": "1199"},
        {"timeout": "1"},
        {"timeout": "none", "renew_interval": "5000"},
        {"save_accessed_time": "false", "timeout": "1"},
    ],
)
def test_defaults_never_refuse_what_was_written(written: dict[str, str]) -> None:
    parse(**written)


def test_an_absolute_timeout_alone_shortens_the_default_idle_timeout() -> None:
    parsed = parse(absolute_timeout="60")
    assert (parsed.timeout, parsed.absolute_timeout) == (60, 60)
    assert parsed.renew_interval < 60


def test_a_renew_interval_past_the_default_timeout_says_it_is_the_default() -> None:
    with pytest.raises(ConfigurationError, match=r"session.timeout \(1200, the default\)"):
        parse(renew_interval="1200")


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("secrte", "secret"), ("sceret", "secret"), ("secure_", "secure"), ("timout", "timeout"), ("urll", "url")],
)
def test_unknown_key_suggests_the_name_it_most_likely_meant(typo: str, meant: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"unknown setting session.{typo}; did you mean session.{meant}\?"):
        parse(**{typo: "1"})


def test_a_store_setting_the_chosen_store_does_not_read_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="satchel.settings"):
        parsed = parse(url="redis://127.0.0.1/0", key_prefix="app:")
    expected = [
        "session.url has no effect with session.type = memory",
        "session.key_prefix has no effect with session.type = memory",
    ]
    assert list(parsed.warnings) == expected
    assert [r.getMessage() for r in caplog.records] == expected
    assert parsed.store.options == {}


def test_store_settings_have_no_effect_on_cookie_sessions() -> None:
    parsed = parse(type="cookie", data_dir="/tmp/nowhere")
    assert parsed.client_side
    assert parsed.store.cls is None
    assert "session.data_dir has no effect with session.type = cookie" in parsed.warnings


def test_a_store_refuses_its_own_options_bad_values() -> None:
    with pytest.raises(ConfigurationError, match=r"session\.memcache_module = pylibmc: satchel talks to memcached"):
        parse(type="ext:memcached", url="127.0.0.1:11211", memcache_module="pylibmc")


def test_max_records_caps_the_sessions_not_the_store() -> None:
    parsed = parse(max_records="5")
    assert parsed.max_records == 5
    assert parsed.store.options == {}


@pytest.mark.parametrize(
    "secret",
    [
        "changeme-changeme-changeme-changeme",
        "abcdefgh" * 4,
        "password1" * 4,
        "12345678901234567890123456789012",
    ],
    ids=["placeholder", "repeated-run", "repeated-word", "digit-sequence"],
)
def test_a_guessable_secret_is_refused_without_being_echoed(secret: str) -> None:
    with pytest.raises(ConfigurationError, match="satchel secret") as refused:
        parse_session_settings({"session.secret": secret})
    assert secret not in str(refused.value)


def test_secrets_satchel_makes_and_the_documented_example_pass() -> None:
    import secrets

    for _ in range(200):
        parse_session_settings({"session.secret": secrets.token_hex(32)})
    parse_session_settings({"session.secret": "0cb243f53ad865a0f70099c0414ffe9cfcfe03ac"})


def test_a_one_second_timeout_is_accepted_with_the_default_renewal() -> None:
    parsed = parse_session_settings({"session.secret": SECRET, "session.timeout": "1"})
    assert parsed.timeout == 1 and parsed.renew_interval < parsed.timeout
