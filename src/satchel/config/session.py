"""Session settings in, frozen :class:`SessionConfig` out.

Every option Beaker documents is accepted under ``session.`` and
``beaker.session.``; each value is coerced to its type, unknown keys are refused
with the nearest valid name, and a missing or weak secret stops the application
at start-up instead of at the first request. Defaults live in the dataclass
fields below and nowhere else; a default never causes an error about a setting
the user did not write.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import stores
from ..errors import ConfigurationError
from .beaker import store_name
from .coerce import (
    MAX_SECONDS,
    Coercer,
    as_auto_bool,
    as_bool,
    as_cookie_expires,
    as_int,
    as_lines,
    as_optional_seconds,
    as_optional_str,
    as_samesite,
    as_secure,
    as_str,
    uncommented,
)
from .names import SESSION_PREFIXES, collect, misspelled_prefixes
from .secrets import is_guessable
from .store import StoreConfig, check_required, split_options

if TYPE_CHECKING:
    from ..stores.base import Store

log = logging.getLogger("satchel.settings")

MIN_SECRET_LENGTH = 32
MIN_SECRET_DISTINCT = 8
#: Cookie mode reads chunk cookies name.1 .. name.63.
MAX_COOKIES = 64
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True)
class CookieConfig:
    name: str = "beaker.session.id"
    path: str = "/"
    domain: str | None = None
    secure: bool | str = False
    httponly: bool = True
    samesite: str | None = "Lax"
    expires: str | _dt.timedelta | _dt.datetime | None = None


@dataclass(frozen=True)
class BeakerSource:
    """Where Beaker kept the sessions ``beaker_transition`` converts: the store the
    settings configure, read the way Beaker's ``type`` wrote it."""

    type: str
    #: The table ``ext:database`` used (``beaker_table_name``; Beaker's default otherwise).
    table_name: str | None = None
    #: What Beaker signed cookies with: ``secret`` and ``validate_key``.
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class SessionConfig:
    secrets: tuple[str, ...]
    store: StoreConfig = field(default_factory=StoreConfig)
    cookie: CookieConfig = field(default_factory=CookieConfig)
    encrypt_keys: tuple[str, ...] = ()
    timeout: int | None = 1200
    absolute_timeout: int | None = None
    #: Seconds between renewals of an idle session; 0: never renewed by reading it.
    #: Unless given, a tenth of ``timeout`` (and shorter than it).
    renew_interval: int = 120
    invalidate_corrupt: bool = True
    cookie_on_exception: bool = True
    webtest_varname: str | None = None
    merge_retries: int = 16
    max_cookies: int = 1
    #: The most sessions the store may hold; None: no limit.
    max_records: int | None = None
    #: "raise": StoreUnavailable reaches the app; "fresh": a request whose session
    #: cannot be loaded gets an empty, unsaved session marked ``store_unavailable``.
    on_store_error: str = "raise"
    #: Metrics and traces through OpenTelemetry: True, False, or None (auto: on when
    #: ``opentelemetry-api`` is installed and the application configured a provider).
    telemetry: bool | None = None
    #: Set by ``beaker_transition = true``: convert the sessions of Beaker's cookies.
    beaker: BeakerSource | None = None
    warnings: tuple[str, ...] = ()

    @property
    def client_side(self) -> bool:
        return self.store.type == "cookie"


# -- coercers for options that take one meaning only -----------------------------------------


def _one_of(*choices: str) -> Coercer:
    def coerce(value: Any, key: str) -> str:
        text = as_str(value, key).lower()
        if text not in choices:
            raise ConfigurationError(f"{key} must be {' or '.join(choices)}, not {text!r}", key)
        return text

    return uncommented(coerce)


def _serializer(value: Any, key: str) -> str:
    text = as_str(value, key).lower()
    if text == "pickle":
        raise ConfigurationError(
            f"{key} = pickle is refused: unpickling lets whoever can write to the store or forge a cookie "
            "run code on the server. Session values must be JSON (the rule Pyramid 2 sets); remove the "
            "setting or set it to json",
            key,
        )
    if text != "json":
        raise ConfigurationError(f"{key} must be json, not {text!r}", key)
    return text


def _constant_csrf_token(value: Any, key: str) -> bool:
    """pyramid_beaker's one CSRF token for every session: refused unless turned off."""
    if as_str(value, key).lower() in ("", "false", "0", "no", "off"):
        return False
    raise ConfigurationError(
        f"{key} is refused: one CSRF token shared by every session is a token any visitor can read "
        "and forge requests with. Tests can read a session's token with request.session.get_csrf_token() "
        "(or session.webtest_varname); remove the setting",
        key,
    )


def _crypto_type(value: Any, key: str) -> str:
    text = as_str(value, key).lower()
    if text not in ("cryptography", "default", "auto"):
        raise ConfigurationError(
            f"{key} = {text} is not available: satchel encrypts with the cryptography package (AES-GCM); "
            "remove the setting",
            key,
        )
    return text


def _use_cookies(value: Any, key: str) -> bool:
    if not as_bool(value, key):
        raise ConfigurationError(
            f"{key} = false is not supported: satchel carries the session id in a signed cookie", key
        )
    return True


def _cookie_name(value: Any, key: str) -> str:
    name = as_str(value, key)
    if not _COOKIE_NAME.fullmatch(name):
        raise ConfigurationError(f"{key} = {name!r} is not a valid cookie name", key)
    return name


def _whole(minimum: int, maximum: int | None = None) -> Coercer:
    return uncommented(lambda v, k: as_int(v, k, minimum=minimum, maximum=maximum))


#: The session's own settings: every other name under the prefix belongs to the store.
SESSION_OPTIONS: dict[str, Coercer] = {
    "type": uncommented(as_str),
    "key": _cookie_name,
    "secret": as_lines,
    "validate_key": as_lines,
    "encrypt_key": as_lines,
    "encrypt_nonce_bits": _whole(1),
    "crypto_type": uncommented(_crypto_type),
    "timeout": uncommented(as_optional_seconds),
    "absolute_timeout": uncommented(as_optional_seconds),
    "renew_interval": _whole(0, MAX_SECONDS),
    "save_accessed_time": uncommented(as_bool),
    "cookie_expires": uncommented(as_cookie_expires),
    "cookie_domain": as_optional_str,
    "cookie_path": as_str,
    "secure": uncommented(as_secure),
    "httponly": uncommented(as_bool),
    "samesite": uncommented(as_samesite),
    "data_serializer": uncommented(_serializer),
    "invalidate_corrupt": uncommented(as_bool),
    "auto": uncommented(as_bool),
    "use_cookies": uncommented(_use_cookies),
    "webtest_varname": as_optional_str,
    "cookie_on_exception": uncommented(as_bool),
    "max_records": _whole(1),
    "merge_retries": _whole(0),
    "max_cookies": _whole(1, MAX_COOKIES),
    "on_store_error": _one_of("raise", "fresh"),
    "telemetry": uncommented(as_auto_bool),
    "beaker_transition": uncommented(as_bool),
    "constant_csrf_token": uncommented(_constant_csrf_token),
    "beaker_table_name": as_optional_str,
}

#: Settings copied as they are onto :class:`SessionConfig` fields of the same name.
_PLAIN = (
    "invalidate_corrupt",
    "cookie_on_exception",
    "webtest_varname",
    "merge_retries",
    "max_cookies",
    "max_records",
    "on_store_error",
    "telemetry",
)
#: Cookie settings by the :class:`CookieConfig` field each fills.
_COOKIE_FIELDS = {
    "key": "name",
    "cookie_path": "path",
    "cookie_domain": "domain",
    "secure": "secure",
    "httponly": "httponly",
    "samesite": "samesite",
    "cookie_expires": "expires",
}


# -- parsing ----------------------------------------------------------------------------


def parse_session_settings(settings: Mapping[str, Any], prefixes: Iterable[str] = SESSION_PREFIXES) -> SessionConfig:
    """Parse and check every ``session.*`` option; raise ConfigurationError on a problem."""
    prefixes = tuple(prefixes)
    shown = prefixes[0]
    raw = collect(settings, prefixes)
    warnings: list[str] = []
    type_name = SESSION_OPTIONS["type"](raw.get("type", StoreConfig.type), shown + "type")
    store_type, cls = _store(type_name, shown, warnings)
    split = split_options(raw, SESSION_OPTIONS, cls.options if cls else {}, shown, store_type)
    if cls is not None:
        check_required(store_type, split.store, shown, type_name)
    store = StoreConfig(type=store_type, cls=cls, options=split.store)
    values = split.own
    warnings += split.warnings
    warnings += _compatibility_warnings(values, shown, store_type)
    warnings += misspelled_prefixes(settings)
    secrets = _secrets(values, shown)
    cookie = CookieConfig(**{_COOKIE_FIELDS[k]: v for k, v in values.items() if k in _COOKIE_FIELDS})
    if cookie.samesite == "None" and cookie.secure is False:
        warnings.append(f"{shown}samesite = None needs {shown}secure = true; browsers drop the cookie otherwise")
    config = SessionConfig(
        secrets=secrets,
        store=store,
        cookie=cookie,
        encrypt_keys=values.get("encrypt_key", ()),
        **_timeouts(values, shown),
        **{k: values[k] for k in _PLAIN if k in values},
        beaker=_beaker_source(type_name, values),
        warnings=tuple(warnings),
    )
    for warning in config.warnings:
        log.warning("%s", warning)
    return config


def _store(type_name: str, shown: str, warnings: list[str]) -> tuple[str, type[Store] | None]:
    """The store's name and class (None for cookie sessions, which have no store)."""
    if type_name.lower() == "dbm":
        warnings.append(f"{shown}type = dbm is served by satchel's file store")
    name = store_name(type_name)
    if name == "cookie":
        return name, None
    return name or type_name, stores.store_class(type_name, setting=shown + "type")


def _compatibility_warnings(values: Mapping[str, Any], shown: str, store_type: str) -> list[str]:
    """Beaker options satchel accepts but does not act on, said once at start-up."""
    warnings = []
    if "encrypt_nonce_bits" in values:
        warnings.append(f"{shown}encrypt_nonce_bits is ignored: AES-GCM uses its own 96-bit random nonce")
    if values.get("auto") is False:
        warnings.append(
            f"{shown}auto = false: satchel always saves a changed session at the end of the request; "
            "session.save() is still accepted"
        )
    secrets, validate = values.get("secret", ()), values.get("validate_key", ())
    if secrets and validate and validate != secrets:
        warnings.append(f"{shown}validate_key is ignored: {shown}secret signs the cookie")
    if values.get("encrypt_key") and store_type != "cookie":
        warnings.append(
            f"{shown}encrypt_key encrypts cookie sessions (type = cookie) only: records in the "
            f"{store_type} store are not encrypted; protect the store itself"
        )
    return warnings


def _beaker_source(type_name: str, values: Mapping[str, Any]) -> BeakerSource | None:
    if not values.get("beaker_transition"):
        return None
    keys = (*values.get("secret", ()), *values.get("validate_key", ()))
    return BeakerSource(type_name, values.get("beaker_table_name"), keys)


def check_secret(secrets: tuple[str, ...], key: str) -> None:
    """Refuse a secret that is short or guessable (the message never repeats it)."""
    for secret in secrets:
        if len(secret) < MIN_SECRET_LENGTH or len(set(secret)) < MIN_SECRET_DISTINCT:
            raise ConfigurationError(
                f"{key} is too weak: give at least {MIN_SECRET_LENGTH} random characters "
                "(run `satchel secret` for one)",
                key,
            )
        if is_guessable(secret):
            raise ConfigurationError(
                f"{key} looks like a placeholder or a pattern (repeats, sequences or common words), "
                "not a random secret: run `satchel secret` for one",
                key,
            )


def _secrets(values: Mapping[str, Any], shown: str) -> tuple[str, ...]:
    """``secret`` (Beaker's older name: ``validate_key``), present and strong; the keys too."""
    secrets: tuple[str, ...] = values.get("secret", ())
    key = shown + "secret"
    if not secrets and values.get("validate_key"):
        secrets, key = values["validate_key"], shown + "validate_key"
    if not secrets:
        raise ConfigurationError(
            f"{shown}secret is required: it signs the session cookie (run `satchel secret` for a strong one)", key
        )
    check_secret(secrets, key)
    check_secret(values.get("encrypt_key", ()), shown + "encrypt_key")
    return secrets


def default_renew_interval(timeout: int | None) -> int:
    """A tenth of the idle timeout, at least a second, and always shorter than the timeout
    (0, never renewed by reading, when no whole second is)."""
    if timeout is None:
        return 0
    return min(max(1, timeout // 10), timeout - 1)


def _timeouts(values: Mapping[str, Any], shown: str) -> dict[str, Any]:
    """The timeouts the user wrote, with the defaults of the others fitted to them."""
    chosen: dict[str, Any] = {}
    for name in ("timeout", "absolute_timeout", "renew_interval"):
        if name in values:
            chosen[name] = values[name]
    absolute = chosen.get("absolute_timeout")
    default = SessionConfig.timeout
    if "timeout" not in chosen and absolute is not None and default is not None and absolute < default:
        chosen["timeout"] = absolute
    timeout = chosen.get("timeout", default)
    if timeout is not None and absolute is not None and absolute < timeout:
        raise ConfigurationError(
            f"{shown}absolute_timeout ({absolute}) is shorter than {shown}timeout ({timeout})",
            shown + "absolute_timeout",
        )
    if values.get("save_accessed_time") is False:
        # Beaker's "do not record each access": no sliding renewal on reads.
        chosen["renew_interval"] = 0
    elif "renew_interval" not in chosen:
        chosen["renew_interval"] = default_renew_interval(timeout)
    elif timeout is not None and chosen["renew_interval"] >= timeout:
        given = "" if "timeout" in values else ", the default"
        raise ConfigurationError(
            f"{shown}renew_interval ({chosen['renew_interval']}) must be shorter than {shown}timeout "
            f"({timeout}{given})",
            shown + "renew_interval",
        )
    return chosen
