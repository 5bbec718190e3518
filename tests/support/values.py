"""Values of every type a session holds beyond JSON, and an exact comparison."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

#: One value per kind a session must give back exactly, by name.
EXACT_VALUES: dict[str, Any] = {
    "tuple": (1, "a", (2, 3.5), [4]),
    "set": {1, 2.5, "x", None, ("t", 1)},
    "frozenset": frozenset({"a", ("b", 1), frozenset({2})}),
    "bytes": b"\x00\xff binary \x80",
    "naive datetime": datetime(2026, 12, 3, 9, 46, 38, 123456),
    "fixed-offset datetime": datetime(2026, 12, 3, 9, 46, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    "utc datetime": datetime(2026, 12, 3, 9, 46, tzinfo=timezone.utc),
    "zoneinfo datetime": datetime(2026, 7, 1, 12, 0, tzinfo=ZoneInfo("Europe/Paris")),
    "zoneinfo datetime in the repeated hour": datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo("Europe/Paris"), fold=1),
    "date": date(2026, 12, 3),
    "time": time(9, 46, 38, 5),
    "fixed-offset time": time(9, 46, tzinfo=timezone(timedelta(hours=-3))),
    "timedelta": timedelta(days=-1, seconds=5, microseconds=7),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "decimal": Decimal("10.50"),
    "int-keyed dict": {101: 2, 102: 1},
    "dict with scalar keys": {
        None: 1,
        2.5: 2,
        b"k": 3,
        date(2026, 1, 1): 4,
        ("a", 1): 5,
        uuid.UUID(int=7): 6,
        Decimal("1.5"): 7,
        False: 8,
        "s": 9,
    },
    "dict that looks like a tag": {"~tuple": [1, 2]},
    "nested": {"cart": {101: (1, Decimal("9.99"))}, "seen": [{1, 2}, frozenset()], "at": [date(2026, 2, 3)]},
    "plain json": {"a": [1, 2.5, True, None, "x"], "b": {}},
}


def exactly(left: Any, right: Any) -> bool:
    """Equal, of identical types all the way down, with the same zone and fold."""
    kind = type(left)
    if kind is not type(right):
        return False
    if kind is dict:
        pairs = list(zip(left.items(), right.items(), strict=False))
        return len(left) == len(right) and all(exactly(a, c) and exactly(b, d) for (a, b), (c, d) in pairs)
    if kind in (list, tuple):
        return len(left) == len(right) and all(exactly(a, b) for a, b in zip(left, right, strict=True))
    if kind in (set, frozenset):
        return left == right and all(any(exactly(a, b) for b in right) for a in left)
    if kind in (datetime, time):
        return left == right and left.tzinfo == right.tzinfo and left.fold == right.fold
    return bool(left == right)
