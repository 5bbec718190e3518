"""Merging two requests' changes to one session: no lost updates.

A request remembers what it loaded (``base``). When its conditional write finds
the record moved on (``latest``), its own change from ``base`` to ``current`` is
applied on top of ``latest`` and written again.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..codecs import Body, encode_value


def multiset_minus(left: list[Any], right: list[Any]) -> list[Any]:
    """Items of ``left`` not matched one-for-one in ``right``, in order."""
    remaining = Counter(encode_value(item, "flash") for item in right)
    out = []
    for item in left:
        encoded = encode_value(item, "flash")
        if remaining[encoded]:
            remaining[encoded] -= 1
        else:
            out.append(item)
    return out


def merge(base: Body, current: Body, latest: Body) -> Body:
    """Apply the change from ``base`` to ``current`` on top of ``latest``.

    Keys this request set or deleted win for those keys only; flash messages it
    added are appended and the ones it popped removed; a new CSRF token and a new
    user binding win.
    """
    data = dict(latest.data)
    for key, value in current.data.items():
        if key not in base.data or encode_value(base.data[key], key) != encode_value(value, key):
            data[key] = value
    for key in base.data:
        if key not in current.data:
            data.pop(key, None)
    flash: dict[str, list[Any]] = {q: list(m) for q, m in latest.flash.items()}
    for queue in set(base.flash) | set(current.flash):
        before, after = base.flash.get(queue, []), current.flash.get(queue, [])
        popped = multiset_minus(before, after)
        added = multiset_minus(after, before)
        messages = multiset_minus(flash.get(queue, []), popped) + added
        if messages:
            flash[queue] = messages
        else:
            flash.pop(queue, None)
    csrf = current.csrf if current.csrf != base.csrf else latest.csrf
    user = current.user if current.user != base.user else latest.user
    return Body(data, flash, csrf, user)


def overwritten(base: Body, current: Body, latest: Body) -> int:
    """How many keys both requests changed, each to its own value: the merge keeps this
    request's value there (last writer wins for those keys)."""
    def changed(key: str, one: dict[str, Any], other: dict[str, Any]) -> bool:
        if (key in one) != (key in other):
            return True
        return key in one and encode_value(one[key], key) != encode_value(other[key], key)

    keys = set(base.data) | set(current.data) | set(latest.data)
    return sum(
        1
        for key in keys
        if changed(key, base.data, current.data)
        and changed(key, base.data, latest.data)
        and changed(key, current.data, latest.data)
    )
