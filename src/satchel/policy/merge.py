"""Merging two requests' changes to one session: no lost updates.

A request remembers what it loaded (``base``). When its conditional write finds
the record moved on (``latest``), its own change from ``base`` to ``current`` is
worked out at the leaves and applied on top of ``latest``, then written again:

- a dict key set or deleted, at any depth, is set or deleted there;
- items appended to a list are appended to the latest list (any other change to
  a list replaces it);
- members a set gained or lost are added to or removed from the latest set;
- ``session.increment(key, by)`` adds ``by`` to the latest number.

Only a leaf both requests changed is last-writer-wins; each such leaf is counted.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..codecs import Body, encode_value

Path = tuple[Any, ...]
Number = int | float

#: A key the base did not hold.
_MISSING: Any = object()


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


def same(left: Any, right: Any) -> bool:
    """Equal and of the same types all the way down (``1``, ``1.0`` and ``True`` differ)."""
    kind = type(left)
    if kind is not type(right):
        return False
    if kind is dict:
        return len(left) == len(right) and all(k in right and same(v, right[k]) for k, v in left.items())
    if kind is list or kind is tuple:
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


# -- the delta ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Put:
    """Set the leaf at ``path`` to ``value``; ``before`` is what the request loaded there."""

    path: Path
    value: Any
    before: Any


@dataclass(frozen=True, slots=True)
class Remove:
    path: Path
    before: Any


@dataclass(frozen=True, slots=True)
class Extend:
    """Items appended to the list at ``path``; ``value`` is the whole list as the request left it."""

    path: Path
    items: list[Any]
    value: list[Any]


@dataclass(frozen=True, slots=True)
class Members:
    """Members the set at ``path`` gained and lost; ``value`` is the set as the request left it."""

    path: Path
    added: Any
    removed: Any
    value: Any


@dataclass(frozen=True, slots=True)
class Add:
    """``session.increment``: add ``by`` to the number at ``path``."""

    path: Path
    by: Number
    value: Number


Change = Put | Remove | Extend | Members | Add


def dict_delta(base: dict[Any, Any], current: dict[Any, Any], path: Path = ()) -> list[Change]:
    """The changes from ``base`` to ``current``, at the leaves."""
    changes: list[Change] = []
    for key, value in current.items():
        before = base.get(key, _MISSING)
        if before is _MISSING:
            changes.append(Put((*path, key), value, _MISSING))
        else:
            changes += value_delta(before, value, (*path, key))
    changes += [Remove((*path, key), before) for key, before in base.items() if key not in current]
    return changes


def value_delta(before: Any, after: Any, path: Path) -> list[Change]:
    if same(before, after):
        return []
    kind = type(after)
    if type(before) is kind:
        if kind is dict:
            return dict_delta(before, after, path)
        if kind is list and len(after) > len(before) and same(after[: len(before)], before):
            return [Extend(path, after[len(before) :], after)]
        if kind is set or kind is frozenset:
            return [Members(path, after - before, before - after, after)]
    return [Put(path, after, before)]


def data_delta(base: dict[str, Any], current: dict[str, Any], increments: Mapping[str, Number]) -> list[Change]:
    """The request's changes to the session's data; counters it incremented add up."""
    changes: list[Change] = []
    counted = {key for key, by in increments.items() if key in current and _is_number(current[key])}
    changes += [Add((key,), increments[key], current[key]) for key in counted]
    plain = {key: value for key, value in current.items() if key not in counted}
    changes += dict_delta({k: v for k, v in base.items() if k not in counted}, plain)
    return changes


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


# -- applying it -----------------------------------------------------------------------


def _same_container(theirs: Any, ours: Any) -> bool:
    return type(theirs) is type(ours) and type(ours) in (dict, list, set)


def _parent(root: dict[Any, Any], path: Path, create: bool) -> dict[Any, Any] | None:
    """The dict holding the leaf at ``path``; made where missing when ``create``."""
    node = root
    for key in path[:-1]:
        child = node.get(key)
        if type(child) is not dict:
            if not create:
                return None
            child = node[key] = {}
        node = child
    return node


def apply(change: Change, root: dict[Any, Any]) -> int:
    """Apply one change to ``root`` in place; 1 when it overwrote another request's change to the same leaf."""
    if isinstance(change, Remove):
        parent = _parent(root, change.path, create=False)
        key = change.path[-1]
        if parent is None or key not in parent:
            return 0
        theirs = parent.pop(key)
        return 0 if same(theirs, change.before) else 1
    parent = _parent(root, change.path, create=True)
    assert parent is not None
    key = change.path[-1]
    theirs = parent.get(key, _MISSING)
    if isinstance(change, Extend) and type(theirs) is list:
        theirs.extend(change.items)
        return 0
    if isinstance(change, Members) and type(theirs) is type(change.value):
        parent[key] = type(theirs)((theirs | change.added) - change.removed)
        return 0
    if isinstance(change, Add) and _is_number(theirs):
        parent[key] = theirs + change.by
        return 0
    if isinstance(change, Put) and change.before is _MISSING and _same_container(theirs, change.value):
        # Both requests made it (``setdefault("cart", {})``): merge what each put in.
        return sum(apply(inner, root) for inner in value_delta(type(theirs)(), change.value, change.path))
    if isinstance(change, Put):
        parent[key] = change.value
        return 0 if same(theirs, change.before) else 1
    parent[key] = change.value  # the container it changed was replaced or removed: its version wins
    return 0 if theirs is _MISSING and isinstance(change, Add) else 1


# -- the whole body ----------------------------------------------------------------------


def merge_counted(
    base: Body, current: Body, latest: Body, increments: Mapping[str, Number] | None = None
) -> tuple[Body, int]:
    """Apply the change from ``base`` to ``current`` on top of ``latest``; the merged body
    and how many leaves this request overwrote after another request changed them.

    Flash messages it added are appended and the ones it popped removed; a new
    CSRF token and a new user binding win. ``latest`` is consumed.
    """
    data = latest.data
    overwritten = sum(apply(change, data) for change in data_delta(base.data, current.data, increments or {}))
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
    return Body(data, flash, csrf, user), overwritten


def merge(base: Body, current: Body, latest: Body, increments: Mapping[str, Number] | None = None) -> Body:
    """:func:`merge_counted` without the count."""
    return merge_counted(base, current, latest, increments)[0]


@dataclass
class MergeStats:
    """What merging did in one process, safe to read from any thread.

    ``merges``: conflicting writes resolved by merging; ``overwritten``: leaves a
    merge set although another request had changed them meanwhile (the later
    commit won).
    """

    merges: int = 0
    overwritten: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, overwritten: int) -> None:
        with self._lock:
            self.merges += 1
            self.overwritten += overwritten

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"merges": self.merges, "overwritten": self.overwritten}
