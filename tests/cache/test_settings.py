"""Parsing ``cache.*`` / ``beaker.cache.*``: types, per-region options, errors at start-up."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from satchel.cache import parse_cache_settings, regions_from_settings
from satchel.config import RegionConfig
from satchel.errors import ConfigurationError
from tests.support.cache import FIELD_BLOCK


def parse(settings: dict[str, object]) -> dict[str, RegionConfig]:
    return dict(parse_cache_settings(settings).regions)


def error(settings: dict[str, object]) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        parse(settings)
    return info.value


def test_the_documented_block() -> None:
    regions = parse(FIELD_BLOCK)
    assert list(regions) == ["default_term", "second", "short_term", "long_term"]
    assert {name: r.expire for name, r in regions.items()} == {
        "default_term": 300,
        "second": 1,
        "short_term": 60,
        "long_term": 3600,
    }
    assert {r.type for r in regions.values()} == {"memory"}
    assert all(r.key_length == 250 and r.serializer == "json" for r in regions.values())


def test_beaker_prefix_is_the_same() -> None:
    beaker = {"beaker." + k: v for k, v in FIELD_BLOCK.items()}
    assert parse(beaker) == parse(FIELD_BLOCK)


def test_both_prefixes_must_agree() -> None:
    settings = {**FIELD_BLOCK, "beaker.cache.second.expire": "2"}
    assert "disagree" in str(error(settings))
    assert parse({**FIELD_BLOCK, "beaker.cache.second.expire": "1"})["second"].expire == 1


def test_region_options_override_common_ones(tmp_path: Path) -> None:
    regions = parse(
        {
            "cache.regions": "local, shared, off",
            "cache.type": "file",
            "cache.data_dir": str(tmp_path),
            "cache.expire": "30",
            "cache.shared.type": "ext:redis",
            "cache.shared.url": "127.0.0.1:6379/3",
            "cache.shared.key_length": "100",
            "cache.off.enabled": "false",
            "cache.local.lock_dir": str(tmp_path / "locks"),
        }
    )
    assert (regions["local"].type, regions["local"].expire, regions["local"].lock_dir) == (
        "file",
        30,
        str(tmp_path / "locks"),
    )
    assert regions["shared"].type == "redis"
    assert regions["shared"].url == "redis://127.0.0.1:6379/3"  # Beaker's bare host:port accepted
    assert regions["shared"].key_length == 100
    assert regions["off"].type == "null"
    assert regions["shared"].shared and regions["local"].shared and not regions["off"].shared


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("memory", "memory"),
        ("file", "file"),
        ("dbm", "file"),
        ("ext:memcached", "memcached"),
        ("memcached", "memcached"),
        ("ext:redis", "redis"),
        ("redis", "redis"),
        ("ext:database", "sql"),
        ("ext:sqla", "sql"),
        ("sql", "sql"),
    ],
)
def test_type_names(name: str, kind: str, tmp_path: Path) -> None:
    settings = {
        "cache.regions": "r",
        "cache.type": name,
        "cache.url": "127.0.0.1:11211" if kind == "memcached" else "sqlite://" if kind == "sql" else "redis://x",
        "cache.data_dir": str(tmp_path),
    }
    assert parse(settings)["r"].type == kind


def test_dbm_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "satchel.settings"):
        parse({"cache.regions": "r", "cache.type": "dbm", "cache.data_dir": str(tmp_path)})
    assert "served by satchel's file backend" in caplog.text


def test_coercion() -> None:
    regions = parse(
        {
            "cache.regions": ["a", "b"],  # a list from Python is fine too
            "cache.expire": 10,
            "cache.a.expire": "none",
            "cache.b.enabled": "yes",
            "cache.b.key_length": " 64 ",
            "cache.lock_timeout": "5",
        }
    )
    assert regions["a"].expire is None and regions["b"].expire == 10
    assert regions["b"].key_length == 64 and regions["b"].lock_timeout == 5 and regions["b"].type == "memory"


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ({"cache.expire": "soon"}, "cache.expire", "whole number"),
        ({"cache.second.expire": "0"}, "cache.second.expire", "at least 1"),
        ({"cache.enabled": "maybe"}, "cache.enabled", "true or false"),
        ({"cache.key_length": "-5"}, "cache.key_length", "at least 1"),
        ({"cache.short_term.lock_timeout": "x"}, "cache.short_term.lock_timeout", "whole number"),
    ],
)
def test_bad_values_name_their_setting(extra: dict[str, str], key: str, words: str) -> None:
    exc = error({**FIELD_BLOCK, **extra})
    assert exc.key == key
    assert words in str(exc) and key in str(exc)


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("cache.expires", "cache.expire"),
        ("cache.short_term.expir", "cache.short_term.expire"),
        ("cache.short_trem.expire", "cache.short_term.expire"),
        ("cache.second.data_directory", "cache.second.data_dir"),
        ("cache.regoins", "cache.regions"),
    ],
)
def test_unknown_keys_name_the_nearest_one(typo: str, suggestion: str) -> None:
    exc = error({**FIELD_BLOCK, typo: "1"})
    assert f"unknown setting {typo}; did you mean {suggestion}?" in str(exc)
    assert exc.key == typo


def test_unknown_key_under_the_beaker_prefix() -> None:
    beaker = {"beaker." + k: v for k, v in FIELD_BLOCK.items()}
    exc = error({**beaker, "beaker.cache.long_term.expiry": "5"})
    assert "unknown setting beaker.cache.long_term.expiry; did you mean beaker.cache.long_term.expire?" in str(exc)


def test_regions_per_region_is_unknown() -> None:
    assert "unknown setting cache.second.regions" in str(error({**FIELD_BLOCK, "cache.second.regions": "x"}))


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"cache.type": "ext:mongodb"}, "MongoDB"),
        ({"cache.type": "cookie"}, "cookie cannot hold"),
        ({"cache.type": "ext:rediscluster"}, "Redis Cluster"),
        ({"cache.type": "carrier-pigeon"}, "is not a cache type"),
        ({"cache.type": "file"}, "needs cache.default_term.data_dir"),
        ({"cache.type": "ext:redis"}, "needs cache.default_term.url"),
        ({"cache.type": "ext:memcached"}, "needs cache.default_term.url"),
        ({"cache.type": "ext:database"}, "needs cache.default_term.url"),
        ({"cache.serializer": "marshal"}, "json or pickle"),
        ({"cache.key_prefix": "has space"}, "key_prefix"),
        ({"cache.key_prefix": ".hidden"}, "key_prefix"),
        ({"cache.regions": ""}, "names no region"),
        ({"cache.regions": "a, a"}, "twice"),
        ({"cache.regions": "a.b"}, "not a region name"),
    ],
)
def test_regions_that_cannot_work_stop_start_up(extra: dict[str, str], words: str) -> None:
    assert words in str(error({**FIELD_BLOCK, **extra}))


def test_no_regions_at_all() -> None:
    assert "names no region" in str(error({"cache.type": "memory"}))


def test_disabled_region_needs_no_server() -> None:
    regions = parse({"cache.regions": "r", "cache.type": "ext:redis", "cache.enabled": "false"})
    assert regions["r"].type == "null"


def test_sql_url_from_sa_options() -> None:
    regions = parse(
        {"cache.regions": "r", "cache.type": "ext:database", "cache.sa.url": "sqlite://", "cache.sa.echo": "false"}
    )
    assert regions["r"].url == "sqlite://"
    assert dict(regions["r"].sa_options) == {"echo": "false"}
    per_region = parse({"cache.regions": "r", "cache.r.type": "ext:database", "cache.r.sa.url": "sqlite://"})
    assert per_region["r"].url == "sqlite://"


def test_pickle_on_a_server_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "satchel.settings"):
        regions = parse(
            {"cache.regions": "r", "cache.type": "ext:redis", "cache.url": "redis://x", "cache.serializer": "pickle"}
        )
    assert regions["r"].serializer == "pickle"
    assert "can run code" in caplog.text


def test_memcache_module_other_than_pymemcache_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "satchel.settings"):
        parse({"cache.regions": "r", "cache.memcache_module": "pylibmc"})
    assert "satchel uses pymemcache" in caplog.text


def test_server_ttl_outlives_expire() -> None:
    regions = parse(
        {"cache.regions": "a b c", "cache.a.expire": "1", "cache.b.expire": "3600", "cache.c.expire": "none"}
    )
    assert regions["a"].server_ttl == 61
    assert regions["b"].server_ttl == 7200
    assert regions["c"].server_ttl is None


def test_regions_from_settings_builds_fresh_regions() -> None:
    first = regions_from_settings(FIELD_BLOCK)
    second = regions_from_settings(FIELD_BLOCK)
    assert set(first) == {"default_term", "second", "short_term", "long_term"}
    assert first["second"] is not second["second"]
    assert first["second"].expiration_time == 1
    assert first["second"].is_configured


def test_bad_settings_leave_regions_alone() -> None:
    from satchel.cache import configure_from_settings, get_region

    configure_from_settings(FIELD_BLOCK)
    region = get_region("short_term")
    backend = region.backend
    with pytest.raises(ConfigurationError):
        configure_from_settings({**FIELD_BLOCK, "cache.short_term.expire": "never!"})
    assert region.backend is backend


def test_a_misspelt_regions_key_is_named() -> None:
    exc = error({"cache.regoins": "a, b", "cache.type": "memory"})
    assert "unknown setting cache.regoins; did you mean cache.regions?" in str(exc)
