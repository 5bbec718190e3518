"""Parse Beaker's ``cache.*`` / ``beaker.cache.*`` settings into one frozen config per region.

Every option may be given for all regions (``cache.expire = 300``) and for one
region (``cache.short_term.expire = 60``); the region's own value wins. Values are
coerced to their types, unknown keys are refused with the nearest valid name,
and a region that cannot work (a file region without ``data_dir``, a Redis
region without ``url``) stops the application at start-up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError
from .beaker import GONE, TYPES
from .coerce import Coercer, as_auto_bool, as_bool, as_int, as_optional_seconds, as_optional_str, as_str, as_words
from .names import CACHE_PREFIXES, collect, unknown_setting
from .urls import mask_urls

log = logging.getLogger("satchel.settings")

#: Types a cache region cannot run on, with what to use instead.
REFUSED_TYPES = {
    **GONE,
    "cookie": "a cookie cannot hold a server-side cache",
    "ext:rediscluster": "cache regions do not run on Redis Cluster yet; use ext:redis",
    "rediscluster": "cache regions do not run on Redis Cluster yet; use ext:redis",
}
#: Beaker's type names mapped to the backend satchel builds for them.
CACHE_TYPES = {name: store for name, store in TYPES.items() if name not in REFUSED_TYPES}
#: Types whose values live outside the process, shared by every process that uses them.
SHARED_TYPES = frozenset({"file", "redis", "memcached", "sql"})

DEFAULT_KEY_LENGTH = 250
DEFAULT_KEY_PREFIX = "satchel:c:"
DEFAULT_LOCK_TIMEOUT = 30
DEFAULT_TABLE = "satchel_cache"
SERIALIZERS = ("json", "pickle")

#: Region names become part of setting names (``cache.<region>.expire``) and of keys.
REGION_NAME = re.compile(r"[A-Za-z0-9_\-]{1,64}")
#: What every backend accepts in a key (the file and SQL stores' alphabet).
KEY_PREFIX_PATTERN = re.compile(r"(?![.])[A-Za-z0-9_.:\-]{0,100}")


def _key_length(value: Any, key: str) -> int:
    return as_int(value, key, minimum=1)


def _lock_timeout(value: Any, key: str) -> int:
    return as_int(value, key, minimum=1)


def _any(value: Any, key: str) -> Any:
    return value


#: Options valid for all regions and for one region.
REGION_OPTIONS: dict[str, Coercer] = {
    "type": as_str,
    "url": as_optional_str,
    "data_dir": as_optional_str,
    "lock_dir": as_optional_str,
    "expire": as_optional_seconds,
    "enabled": as_bool,
    "key_length": _key_length,
    "key_prefix": as_str,
    "serializer": as_str,
    "lock_timeout": _lock_timeout,
    "table_name": as_str,
    "schema_name": as_optional_str,
    "memcache_module": as_optional_str,
    "bind": _any,
    "telemetry": as_auto_bool,
}
#: Options valid only for all regions at once.
GLOBAL_OPTIONS: dict[str, Coercer] = {"regions": as_words, **REGION_OPTIONS}


#: Seconds a value lives when no ``expire`` is given (pyramid_beaker's default);
#: ``expire = none`` keeps values until they are invalidated.
DEFAULT_EXPIRE = 60


@dataclass(frozen=True)
class RegionConfig:
    """Everything one region needs; ``type`` is ``null`` for a disabled region."""

    name: str
    type: str = "memory"
    expire: int | None = None
    key_length: int = DEFAULT_KEY_LENGTH
    key_prefix: str = DEFAULT_KEY_PREFIX
    serializer: str = "json"
    lock_timeout: int = DEFAULT_LOCK_TIMEOUT
    url: str | None = None
    data_dir: str | None = None
    lock_dir: str | None = None
    table_name: str = DEFAULT_TABLE
    schema_name: str | None = None
    sa_options: Mapping[str, Any] = field(default_factory=dict)
    engine: Any = None
    #: Hits, misses, creations and errors counted through OpenTelemetry, when it is installed.
    telemetry: bool | None = None

    @property
    def shared(self) -> bool:
        """True when every process that uses these settings sees the same values."""
        return self.type in SHARED_TYPES

    @property
    def server_ttl(self) -> int | None:
        """How long the backend keeps a value: past ``expire``, so an expired value
        can still be served while one caller computes the new one."""
        if self.expire is None:
            return None
        return self.expire + max(self.expire, 60)

    @property
    def address(self) -> str:
        """Where the values live, for log lines (credentials removed)."""
        if self.type == "file":
            return self.data_dir or ""
        if self.type in ("memory", "null"):
            return "process memory" if self.type == "memory" else "nowhere (disabled)"
        return mask_urls(self.url or "")


@dataclass(frozen=True)
class CacheSettings:
    regions: Mapping[str, RegionConfig]
    warnings: tuple[str, ...] = ()


def _shown_prefix(settings: Mapping[str, Any]) -> str:
    """The prefix the application's settings use, for error messages."""
    if any(name.startswith("cache.") for name in settings):
        return "cache."
    if any(name.startswith("beaker.cache.") for name in settings):
        return "beaker.cache."
    return "cache."


def parse_cache_settings(settings: Mapping[str, Any], prefixes: Iterable[str] = CACHE_PREFIXES) -> CacheSettings:
    """Parse and check every ``cache.*`` option; raise ConfigurationError on a problem."""
    prefixes = tuple(prefixes)
    raw = collect(settings, prefixes)
    shown = _shown_prefix(settings) if prefixes == CACHE_PREFIXES else prefixes[0]

    names: tuple[str, ...] = ()
    if "regions" in raw:
        names = GLOBAL_OPTIONS["regions"](raw["regions"], shown + "regions")
    for name in names:
        if not REGION_NAME.fullmatch(name):
            raise ConfigurationError(
                f"{shown}regions: {name!r} is not a region name (letters, digits, _ and -, at most 64 characters)",
                shown + "regions",
            )
    if len(set(names)) != len(names):
        raise ConfigurationError(f"{shown}regions names a region twice", shown + "regions")
    if not names:
        for option in raw:
            if "." not in option and option not in GLOBAL_OPTIONS:
                raise unknown_setting(option, shown, GLOBAL_OPTIONS)
        raise ConfigurationError(
            f"{shown}regions names no region; list them, e.g. {shown}regions = short_term, long_term",
            shown + "regions",
        )

    known = set(GLOBAL_OPTIONS) | {f"{n}.{o}" for n in names for o in REGION_OPTIONS}
    common: dict[str, Any] = {}
    common_sa: dict[str, Any] = {}
    own: dict[str, dict[str, Any]] = {n: {} for n in names}
    own_sa: dict[str, dict[str, Any]] = {n: {} for n in names}
    for option, value in raw.items():
        if option.startswith("sa."):
            common_sa[option[3:]] = value
            continue
        head, dot, rest = option.partition(".")
        if dot and head in own:
            if rest.startswith("sa."):
                own_sa[head][rest[3:]] = value
                continue
            coercer = REGION_OPTIONS.get(rest)
            if coercer is None:
                raise unknown_setting(option, shown, known)
            own[head][rest] = coercer(value, shown + option)
            continue
        coercer = GLOBAL_OPTIONS.get(option)
        if coercer is None:
            raise unknown_setting(option, shown, known)
        if option != "regions":
            common[option] = coercer(value, shown + option)

    warnings: list[str] = []
    regions = {
        name: _region(name, {**common, **own[name]}, {**common_sa, **own_sa[name]}, shown, warnings) for name in names
    }
    for warning in warnings:
        log.warning("%s", warning)
    return CacheSettings(regions, tuple(warnings))


def _region(
    name: str,
    values: dict[str, Any],
    sa_options: dict[str, Any],
    shown: str,
    warnings: list[str],
) -> RegionConfig:
    def where(option: str) -> str:
        return f"{shown}{name}.{option}"

    type_name = str(values.get("type", "memory")).lower()
    if type_name in REFUSED_TYPES:
        raise ConfigurationError(f"{where('type')} = {type_name}: {REFUSED_TYPES[type_name]}", where("type"))
    if type_name not in CACHE_TYPES:
        raise ConfigurationError(
            f"{where('type')} = {type_name} is not a cache type; choose one of "
            "memory, file, ext:redis, ext:memcached, ext:database",
            where("type"),
        )
    kind = CACHE_TYPES[type_name]
    if type_name == "dbm":
        warnings.append(f"{where('type')} = dbm is served by satchel's file backend (one file per key)")

    serializer = str(values.get("serializer", "json")).lower()
    if serializer not in SERIALIZERS:
        raise ConfigurationError(
            f"{where('serializer')} must be json or pickle, not {serializer!r}", where("serializer")
        )
    key_prefix = values.get("key_prefix", DEFAULT_KEY_PREFIX)
    if not KEY_PREFIX_PATTERN.fullmatch(key_prefix):
        raise ConfigurationError(
            f"{where('key_prefix')} = {key_prefix!r}: use at most 100 of A-Z a-z 0-9 _ . : - (not starting with a dot)",
            where("key_prefix"),
        )
    module = values.get("memcache_module")
    if module not in (None, "pymemcache", "auto"):
        warnings.append(f"{where('memcache_module')} = {module}: satchel uses pymemcache")

    enabled = values.get("enabled", True)
    if not enabled:
        kind = "null"
    url = values.get("url")
    data_dir = values.get("data_dir")
    engine = values.get("bind")
    if kind == "file" and not data_dir:
        raise ConfigurationError(f"{where('type')} = {type_name} needs {where('data_dir')}", where("data_dir"))
    if kind in ("redis", "memcached") and not url:
        raise ConfigurationError(f"{where('type')} = {type_name} needs {where('url')}", where("url"))
    if kind == "sql":
        url = url or sa_options.pop("url", None)
        sa_options.pop("url", None)
        if not (url or engine):
            raise ConfigurationError(f"{where('type')} = {type_name} needs {where('url')}", where("url"))
    if kind == "redis" and url and "://" not in url:
        url = f"redis://{url}"
    if serializer == "pickle" and kind in ("redis", "memcached", "sql"):
        warnings.append(
            f"{where('serializer')} = pickle: whoever can write to the cache server can run code "
            "in this application; keep the server private to it (see docs/caching.md)"
        )
    return RegionConfig(
        name=name,
        type=kind,
        expire=values.get("expire", DEFAULT_EXPIRE),
        key_length=values.get("key_length", DEFAULT_KEY_LENGTH),
        key_prefix=key_prefix,
        serializer=serializer,
        lock_timeout=values.get("lock_timeout", DEFAULT_LOCK_TIMEOUT),
        url=url,
        data_dir=data_dir,
        lock_dir=values.get("lock_dir"),
        table_name=values.get("table_name", DEFAULT_TABLE),
        schema_name=values.get("schema_name"),
        sa_options=dict(sa_options),
        engine=engine,
        telemetry=values.get("telemetry"),
    )


__all__ = [
    "CACHE_PREFIXES",
    "CACHE_TYPES",
    "CacheSettings",
    "RegionConfig",
    "parse_cache_settings",
]
