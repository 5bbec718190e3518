"""The session cookie in HTTP terms: reading it from a Cookie header, and the Set-Cookie
headers that set or delete it. No framework is involved."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterator
from email.utils import formatdate

from ..config import CookieConfig
from ..config.coerce import NEVER

#: Browsers cap cookie lifetimes at 400 days; "never expires" means that.
NEVER_SECONDS = 400 * 24 * 3600


def _expiry(settings: CookieConfig, now: float) -> tuple[int, float] | None:
    expires = settings.expires
    if expires is None:
        return None
    if expires == NEVER:
        return NEVER_SECONDS, now + NEVER_SECONDS
    if isinstance(expires, _dt.timedelta):
        seconds = int(expires.total_seconds())
        return seconds, now + seconds
    if isinstance(expires, _dt.datetime):
        when = expires.timestamp()
        return max(0, int(when - now)), when
    return None


def has_relative_expiry(settings: CookieConfig) -> bool:
    """True when the cookie's lifetime counts from when it was set, so renewals resend it."""
    return settings.expires == NEVER or isinstance(settings.expires, _dt.timedelta)


def _attributes(settings: CookieConfig, secure_request: bool) -> str:
    parts = [f"; Path={settings.path}"]
    if settings.domain:
        parts.append(f"; Domain={settings.domain}")
    if settings.secure is True or (settings.secure == "auto" and secure_request):
        parts.append("; Secure")
    if settings.httponly:
        parts.append("; HttpOnly")
    if settings.samesite:
        parts.append(f"; SameSite={settings.samesite}")
    return "".join(parts)


def set_cookie_header(settings: CookieConfig, value: str, secure_request: bool = False) -> str:
    header = f"{settings.name}={value}"
    expiry = _expiry(settings, time.time())
    if expiry is not None:
        max_age, when = expiry
        header += f"; Max-Age={max_age}; Expires={formatdate(when, usegmt=True)}"
    return header + _attributes(settings, secure_request)


def delete_cookie_header(settings: CookieConfig, secure_request: bool = False) -> str:
    return f"{settings.name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT" + _attributes(settings, secure_request)


def cookie_pairs(header: str) -> Iterator[tuple[str, str]]:
    """(name, value) of each cookie in a raw Cookie header, quotes removed.

    Reads the header directly instead of through a framework's cookie parser: a
    byte that is not UTF-8 elsewhere in the header must not turn into an error.
    """
    for part in header.split(";"):
        name, eq, value = part.partition("=")
        if eq:
            yield name.strip(), _unquoted(value)


def read_cookie(header: str | None, name: str) -> str | None:
    """The value of the first cookie called ``name`` in a raw Cookie header, or None."""
    if not header or name not in header:
        return None
    for key, value in cookie_pairs(header):
        if key == name:
            return value
    return None


def _unquoted(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value
