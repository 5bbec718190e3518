"""Addresses fit to print: a URL's credentials never reach a message or a log."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit


def mask_url(url: str) -> str:
    """``url`` without its credentials: the whole user-information part (a password
    may hold ``@``, so everything up to the last one goes) and a ``password`` in the
    query become ``***``."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    _, at, hostport = parts.netloc.rpartition("@")
    masked = f"{parts.scheme}://{'***@' if at else ''}{hostport}{parts.path}"
    if parts.query:
        query = [(name, "***" if name == "password" else value) for name, value in parse_qsl(parts.query)]
        masked += "?" + urlencode(query, safe="*")
    return masked


def mask_urls(text: str) -> str:
    """Each URL in ``text`` (several may stand separated by ``;``, ``,`` or spaces) masked."""
    return re.sub(r"[^\s;,]+", lambda match: mask_url(match.group(0)), text)
