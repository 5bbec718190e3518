"""Coercers: turn one setting's value (an INI string, or a native value) into its type.

Each takes the value and the setting's full name, for the error it raises.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ConfigurationError

#: A coercer: (value, setting name) -> the typed value, or ConfigurationError.
Coercer = Callable[[Any, str], Any]

NEVER = "never"

_INLINE_COMMENT = re.compile(r"\s+[#;].*\Z", re.S)


def uncommented(coercer: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """Drop a trailing ``  # comment`` from INI values of words, numbers and flags.

    configparser as PasteDeploy sets it up keeps inline comments in the value, and
    documented settings blocks have them (``session.type = memory   # or: file``).
    Never applied to secrets, keys, URLs or paths, where ``#`` may be real.
    """

    def coerce(value: Any, key: str) -> Any:
        if isinstance(value, str):
            value = _INLINE_COMMENT.sub("", value)
        return coercer(value, key)

    return coerce


_TRUE = {"true", "yes", "on", "1", "y", "t"}
_FALSE = {"false", "no", "off", "0", "n", "f"}


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ConfigurationError(f"{key} must be true or false, not {value!r}", key)


#: Ten years: the longest duration any setting takes (datetime cannot hold much more).
MAX_SECONDS = 10 * 365 * 24 * 3600


def as_int(value: Any, key: str, minimum: int | None = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise ConfigurationError(f"{key} must be a whole number, not {value!r}", key)
    try:
        number = int(value.strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a whole number, not {value!r}", key) from None
    if minimum is not None and number < minimum:
        raise ConfigurationError(f"{key} must be at least {minimum}, not {number}", key)
    if maximum is not None and number > maximum:
        raise ConfigurationError(f"{key} must be at most {maximum}, not {number}", key)
    return number


def as_optional_seconds(value: Any, key: str) -> int | None:
    """Seconds, or ``none``/empty for "no limit"."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if isinstance(value, _dt.timedelta):
        value = int(value.total_seconds())
    return as_int(value, key, minimum=1, maximum=MAX_SECONDS)


def as_str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{key} must be text, not {type(value).__name__}", key)
    return value.strip()


def as_optional_str(value: Any, key: str) -> str | None:
    if value is None:
        return None
    text = as_str(value, key)
    return text or None


def as_lines(value: Any, key: str) -> tuple[str, ...]:
    """A list given natively, or one item per line in an INI value.

    Only newlines separate items: a secret may contain spaces.
    """
    if value is None:
        return ()
    if isinstance(value, (bytes, str)):
        text = value.decode() if isinstance(value, bytes) else value
        return tuple(line.strip() for line in text.splitlines() if line.strip())
    if isinstance(value, Iterable):
        items = []
        for item in value:
            if isinstance(item, bytes):
                item = item.decode()
            if not isinstance(item, str):
                raise ConfigurationError(f"{key} must hold text, not {item!r}", key)
            if item.strip():
                items.append(item.strip())
        return tuple(items)
    raise ConfigurationError(f"{key} must be text or a list of text, not {value!r}", key)


def as_words(value: Any, key: str, separators: str = r"[,;\s]+") -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(word for word in re.split(separators, value.strip()) if word)
    return as_lines(value, key)


def as_samesite(value: Any, key: str) -> str | None:
    text = as_str(value, key) if value is not None else "none-attr"
    choices = {"lax": "Lax", "strict": "Strict", "none": "None"}
    if value is None or text.lower() in ("", "false", "off"):
        return None
    if text.lower() not in choices:
        raise ConfigurationError(f"{key} must be Lax, Strict or None, not {value!r}", key)
    return choices[text.lower()]


def as_secure(value: Any, key: str) -> bool | str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    return as_bool(value, key)


def as_cookie_expires(value: Any, key: str) -> str | _dt.timedelta | _dt.datetime | None:
    """Beaker's ``cookie_expires``.

    ``true`` is a browser-session cookie (``None`` here), ``false`` a cookie that
    does not expire on its own (``NEVER``), a number of seconds a relative
    lifetime, and a date an absolute one.
    """
    if isinstance(value, _dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)
    if isinstance(value, _dt.timedelta):
        return value
    if isinstance(value, bool):
        return None if value else NEVER
    if isinstance(value, int):
        return _dt.timedelta(seconds=as_int(value, key, minimum=1, maximum=MAX_SECONDS))
    if isinstance(value, str):
        text = value.strip()
        lowered = text.lower()
        if lowered in _TRUE - {"1"}:
            return None
        if lowered in _FALSE - {"0"}:
            return NEVER
        if text.isdigit():
            return _dt.timedelta(seconds=as_int(text, key, minimum=1, maximum=MAX_SECONDS))
        try:
            when = _dt.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)
    raise ConfigurationError(
        f"{key} must be true (browser-session cookie), false (no expiry), "
        f"a number of seconds or an ISO date, not {value!r}",
        key,
    )


def as_memcache_module(value: Any, key: str) -> str | None:
    """Beaker's choice of memcached client: satchel talks to memcached through pymemcache only."""
    name = as_optional_str(value, key)
    if name not in (None, "pymemcache", "auto"):
        raise ConfigurationError(
            f"{key} = {name}: satchel talks to memcached through pymemcache; remove the setting", key
        )
    return name


def as_mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{key} must be a mapping, not {type(value).__name__}", key)
    return dict(value)


def as_is(value: Any, key: str) -> Any:
    """For objects only Python settings can give (an Engine, a client)."""
    return value


def as_auto_bool(value: Any, key: str) -> bool | None:
    """``auto`` (None: decided at start-up), or true/false."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    return as_bool(value, key)
