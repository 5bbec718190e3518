"""Turn a flat settings mapping (an INI file's strings) into frozen config objects.

Every option Beaker documents is accepted under ``session.`` and
``beaker.session.``; each value is coerced to its type, unknown keys are refused
with the nearest valid name, and a missing or weak secret stops the application
at start-up instead of at the first request.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .config.coerce import (
    MAX_SECONDS,
    Coercer,
    as_bool,
    as_cookie_expires,
    as_int,
    as_lines,
    as_optional_seconds,
    as_optional_str,
    as_samesite,
    as_secure,
    as_str,
    as_words,
    uncommented,
)
from .errors import ConfigurationError

log = logging.getLogger("satchel.settings")

SESSION_PREFIXES = ("session.", "beaker.session.")
CACHE_PREFIXES = ("cache.", "beaker.cache.")

# Beaker's type names (with and without ``ext:``) mapped to satchel's store names.
STORE_ALIASES = {
    "memory": "memory",
    "file": "file",
    "dbm": "file",
    "cookie": "cookie",
    "ext:memcached": "memcached",
    "memcached": "memcached",
    "ext:database": "sql",
    "ext:sqla": "sql",
    "database": "sql",
    "sqla": "sql",
    "sql": "sql",
    "ext:redis": "redis",
    "redis": "redis",
    "ext:rediscluster": "rediscluster",
    "rediscluster": "rediscluster",
}
UNSUPPORTED_TYPES = {
    "ext:mongodb": "MongoDB is not a satchel store; use redis, memcached or sql",
    "mongodb": "MongoDB is not a satchel store; use redis, memcached or sql",
    "ext:google": "the Google App Engine store is gone; use redis, memcached or sql",
}

MIN_SECRET_LENGTH = 32
#: Cookie mode reads chunk cookies name.1 .. name.63.
MAX_COOKIES = 64
MIN_SECRET_DISTINCT = 8


# -- config objects -----------------------------------------------------------


@dataclass(frozen=True)
class StoreSettings:
    """What a store needs to open itself; shared by session stores and cache regions."""

    type: str = "memory"
    url: str | None = None
    urls: tuple[str, ...] = ()
    data_dir: str | None = None
    lock_dir: str | None = None
    table_name: str = "satchel_sessions"
    schema_name: str | None = None
    sa_options: Mapping[str, Any] = field(default_factory=dict)
    memcache_module: str | None = None
    key_prefix: str = "satchel:s:"
    max_records: int | None = None
    engine: Any = None

    @property
    def address(self) -> str:
        """Where the store lives, for error messages (credentials removed)."""
        if self.type == "file":
            return self.data_dir or ""
        target = self.url or ";".join(self.urls)
        return re.sub(r"//[^/@]*@", "//***@", target or "")


@dataclass(frozen=True)
class CookieSettings:
    name: str = "beaker.session.id"
    path: str = "/"
    domain: str | None = None
    secure: bool | str = False
    httponly: bool = True
    samesite: str | None = "Lax"
    expires: str | _dt.timedelta | _dt.datetime | None = None


@dataclass(frozen=True)
class SessionSettings:
    store: StoreSettings
    cookie: CookieSettings
    secrets: tuple[str, ...]
    encrypt_keys: tuple[str, ...] = ()
    timeout: int | None = 1200
    absolute_timeout: int | None = None
    renew_interval: int = 120
    invalidate_corrupt: bool = True
    cookie_on_exception: bool = True
    webtest_varname: str | None = None
    merge_retries: int = 8
    max_cookies: int = 1
    #: "raise": StoreUnavailable reaches the app; "fresh": a request whose session
    #: cannot be loaded gets an empty, unsaved session marked ``store_unavailable``.
    on_store_error: str = "raise"
    warnings: tuple[str, ...] = ()

    @property
    def client_side(self) -> bool:
        return self.store.type == "cookie"


# -- parsing --------------------------------------------------------------------

# Every option Beaker documents for sessions, plus satchel's own. A value of
# ``None`` marks options that are accepted only with a specific meaning, handled
# in ``parse_session_settings``.
SESSION_OPTIONS: dict[str, Coercer] = {
    "type": uncommented(as_str),
    "data_dir": as_optional_str,
    "lock_dir": as_optional_str,
    "key": as_str,
    "secret": as_lines,
    "validate_key": as_lines,
    "encrypt_key": as_lines,
    "encrypt_nonce_bits": uncommented(lambda v, k: as_int(v, k, minimum=1)),
    "crypto_type": uncommented(as_str),
    "timeout": uncommented(as_optional_seconds),
    "absolute_timeout": uncommented(as_optional_seconds),
    "renew_interval": uncommented(lambda v, k: as_int(v, k, minimum=0, maximum=MAX_SECONDS)),
    "save_accessed_time": uncommented(as_bool),
    "cookie_expires": uncommented(as_cookie_expires),
    "cookie_domain": as_optional_str,
    "cookie_path": as_str,
    "secure": uncommented(as_secure),
    "httponly": uncommented(as_bool),
    "samesite": uncommented(as_samesite),
    "data_serializer": uncommented(as_str),
    "invalidate_corrupt": uncommented(as_bool),
    "auto": uncommented(as_bool),
    "use_cookies": uncommented(as_bool),
    "url": as_optional_str,
    "urls": as_words,
    "memcache_module": uncommented(as_optional_str),
    "table_name": as_str,
    "schema_name": as_optional_str,
    "webtest_varname": as_optional_str,
    "cookie_on_exception": uncommented(as_bool),
    "key_prefix": as_str,
    "max_records": uncommented(lambda v, k: as_int(v, k, minimum=1)),
    "merge_retries": uncommented(lambda v, k: as_int(v, k, minimum=0)),
    "max_cookies": uncommented(lambda v, k: as_int(v, k, minimum=1, maximum=MAX_COOKIES)),
    "bind": lambda v, k: v,
    "on_store_error": uncommented(as_str),
}


def collect(settings: Mapping[str, Any], prefixes: Iterable[str]) -> dict[str, Any]:
    """The options under any of ``prefixes``, prefix removed; a later prefix loses.

    ``beaker.session.x`` and ``session.x`` both name option ``x``; when both are
    given with different values that is an error, not a silent choice.
    """
    found: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for prefix in prefixes:
        for name, value in settings.items():
            if not name.startswith(prefix):
                continue
            option = name[len(prefix) :]
            if option in found and found[option] != value:
                raise ConfigurationError(
                    f"{origin[option]} and {name} disagree; keep one of them", name
                )
            found.setdefault(option, value)
            origin.setdefault(option, name)
    return found


def _unknown(option: str, prefix: str, known: Iterable[str]) -> ConfigurationError:
    names = sorted(known)
    near = difflib.get_close_matches(option, names, n=1, cutoff=0.6)
    hint = f"; did you mean {prefix}{near[0]}?" if near else ""
    return ConfigurationError(f"unknown setting {prefix}{option}{hint}", prefix + option)


def check_secret(secrets: tuple[str, ...], key: str) -> None:
    for secret in secrets:
        if len(secret) < MIN_SECRET_LENGTH or len(set(secret)) < MIN_SECRET_DISTINCT:
            raise ConfigurationError(
                f"{key} is too weak: give at least {MIN_SECRET_LENGTH} random characters "
                "(run `satchel secret` for one)",
                key,
            )


def parse_session_settings(
    settings: Mapping[str, Any], prefixes: Iterable[str] = SESSION_PREFIXES
) -> SessionSettings:
    """Parse and check every ``session.*`` option; raise ConfigurationError on a problem."""
    prefixes = tuple(prefixes)
    raw = collect(settings, prefixes)
    shown = prefixes[0]
    values: dict[str, Any] = {}
    sa_options: dict[str, Any] = {}
    for option, value in raw.items():
        if option.startswith("sa."):
            sa_options[option[3:]] = value
            continue
        coercer = SESSION_OPTIONS.get(option)
        if coercer is None:
            raise _unknown(option, shown, SESSION_OPTIONS)
        values[option] = coercer(value, shown + option)

    warnings: list[str] = []

    type_name = values.get("type", "memory").lower()
    if type_name in UNSUPPORTED_TYPES:
        raise ConfigurationError(f"{shown}type = {type_name}: {UNSUPPORTED_TYPES[type_name]}", shown + "type")
    if type_name not in STORE_ALIASES:
        raise ConfigurationError(
            f"{shown}type = {type_name} is not a store; choose one of "
            "memory, file, cookie, ext:redis, ext:rediscluster, ext:memcached, ext:database",
            shown + "type",
        )
    store_type = STORE_ALIASES[type_name]
    if type_name == "dbm":
        warnings.append(f"{shown}type = dbm is served by satchel's file store")

    serializer = values.get("data_serializer", "json").lower()
    if serializer == "pickle":
        raise ConfigurationError(
            f"{shown}data_serializer = pickle is refused: unpickling lets whoever can write "
            "to the store or forge a cookie run code on the server. Session values must be "
            "JSON (the rule Pyramid 2 sets); remove the setting or set it to json",
            shown + "data_serializer",
        )
    if serializer != "json":
        raise ConfigurationError(
            f"{shown}data_serializer must be json, not {serializer!r}", shown + "data_serializer"
        )

    crypto = values.get("crypto_type", "cryptography").lower()
    if crypto not in ("cryptography", "default", "auto"):
        raise ConfigurationError(
            f"{shown}crypto_type = {crypto} is not available: satchel encrypts with the "
            "cryptography package (AES-GCM); remove the setting",
            shown + "crypto_type",
        )
    if "encrypt_nonce_bits" in values:
        warnings.append(
            f"{shown}encrypt_nonce_bits is ignored: AES-GCM uses its own 96-bit random nonce"
        )
    if values.get("use_cookies") is False:
        raise ConfigurationError(
            f"{shown}use_cookies = false is not supported: satchel carries the session id "
            "in a signed cookie",
            shown + "use_cookies",
        )
    if values.get("auto") is False:
        warnings.append(
            f"{shown}auto = false: satchel always saves a changed session at the end of the "
            "request; session.save() is still accepted"
        )
    if "memcache_module" in values and values["memcache_module"] not in (None, "pymemcache", "auto"):
        warnings.append(f"{shown}memcache_module = {values['memcache_module']}: satchel uses pymemcache")

    secret_key = shown + "secret"
    secrets = values.get("secret", ())
    validate = values.get("validate_key", ())
    if not secrets and validate:
        secrets, secret_key = validate, shown + "validate_key"
    elif secrets and validate and validate != secrets:
        warnings.append(f"{shown}validate_key is ignored: {shown}secret signs the cookie")
    if not secrets:
        raise ConfigurationError(
            f"{shown}secret is required: it signs the session cookie "
            "(run `satchel secret` for a strong one)",
            secret_key,
        )
    check_secret(secrets, secret_key)
    encrypt_keys = values.get("encrypt_key", ())
    check_secret(encrypt_keys, shown + "encrypt_key")
    if encrypt_keys and store_type != "cookie":
        warnings.append(
            f"{shown}encrypt_key encrypts cookie sessions (type = cookie) only: records in the "
            f"{store_type} store are not encrypted; protect the store itself"
        )

    timeout = values.get("timeout", 1200)
    absolute = values.get("absolute_timeout")
    if timeout is not None and absolute is not None and absolute < timeout:
        raise ConfigurationError(
            f"{shown}absolute_timeout ({absolute}) is shorter than {shown}timeout ({timeout})",
            shown + "absolute_timeout",
        )
    save_accessed = values.get("save_accessed_time", True)
    default_renew = max(1, timeout // 10) if timeout else 0
    renew = values.get("renew_interval", default_renew)
    if not save_accessed:
        # Beaker's "do not record each access": no sliding renewal on reads.
        renew = 0
    elif timeout is not None and renew >= timeout:
        raise ConfigurationError(
            f"{shown}renew_interval ({renew}) must be shorter than {shown}timeout ({timeout})",
            shown + "renew_interval",
        )

    if store_type == "file" and not values.get("data_dir"):
        raise ConfigurationError(f"{shown}type = file needs {shown}data_dir", shown + "data_dir")
    if store_type in ("redis", "memcached", "sql") and not (
        values.get("url") or values.get("bind") or (store_type == "sql" and sa_options.get("url"))
    ):
        raise ConfigurationError(f"{shown}type = {type_name} needs {shown}url", shown + "url")
    if store_type == "rediscluster" and not (values.get("urls") or values.get("url")):
        raise ConfigurationError(f"{shown}type = {type_name} needs {shown}urls", shown + "urls")

    store = StoreSettings(
        type=store_type,
        url=values.get("url"),
        urls=values.get("urls", ()),
        data_dir=values.get("data_dir"),
        lock_dir=values.get("lock_dir"),
        table_name=values.get("table_name", "satchel_sessions"),
        schema_name=values.get("schema_name"),
        sa_options=sa_options,
        memcache_module=values.get("memcache_module"),
        key_prefix=values.get("key_prefix", "satchel:s:"),
        max_records=values.get("max_records"),
        engine=values.get("bind"),
    )
    cookie = CookieSettings(
        name=values.get("key", "beaker.session.id"),
        path=values.get("cookie_path", "/"),
        domain=values.get("cookie_domain"),
        secure=values.get("secure", False),
        httponly=values.get("httponly", True),
        samesite=values.get("samesite", "Lax"),
        expires=values.get("cookie_expires"),
    )
    if cookie.samesite == "None" and cookie.secure is False:
        warnings.append(f"{shown}samesite = None needs {shown}secure = true; browsers drop the cookie otherwise")
    if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", cookie.name):
        raise ConfigurationError(f"{shown}key = {cookie.name!r} is not a valid cookie name", shown + "key")

    on_store_error = values.get("on_store_error", "raise").lower()
    if on_store_error not in ("raise", "fresh"):
        raise ConfigurationError(
            f"{shown}on_store_error must be raise or fresh, not {on_store_error!r}", shown + "on_store_error"
        )

    result = SessionSettings(
        store=store,
        cookie=cookie,
        secrets=secrets,
        encrypt_keys=encrypt_keys,
        timeout=timeout,
        absolute_timeout=absolute,
        renew_interval=renew,
        invalidate_corrupt=values.get("invalidate_corrupt", True),
        cookie_on_exception=values.get("cookie_on_exception", True),
        webtest_varname=values.get("webtest_varname"),
        merge_retries=values.get("merge_retries", 8),
        max_cookies=values.get("max_cookies", 1),
        on_store_error=on_store_error,
        warnings=tuple(warnings),
    )
    for warning in result.warnings:
        log.warning("%s", warning)
    return result
