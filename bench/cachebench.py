"""The cache part: a hit in a satchel memory region against a bare dogpile.cache region's hit.

Three hits are compared, each against dogpile's own equivalent:

- ``get``: ``region.get(key)``;
- ``get_or_create``: ``region.get_or_create(key, creator)`` (what decorators call);
- ``decorated``: satchel's Beaker-style ``@cache_region("bench", "ns")`` against
  dogpile's ``@region.cache_on_arguments()``, one positional argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

KEY = "bench-key"
VALUE = {"user": 42, "name": "satchel", "tags": ["a", "b", "c"]}
SETTINGS = {"cache.regions": "bench", "cache.type": "memory", "cache.bench.expire": "300"}


def dogpile_ops() -> dict[str, Callable[[], Any]]:
    from dogpile.cache import make_region

    region = make_region().configure("dogpile.cache.memory", expiration_time=300)
    region.set(KEY, VALUE)

    @region.cache_on_arguments()
    def lookup(x: int) -> dict[str, Any]:
        return VALUE

    lookup(1)
    return {
        "get": lambda: region.get(KEY),
        "get_or_create": lambda: region.get_or_create(KEY, lambda: VALUE),
        "decorated": lambda: lookup(1),
    }


def satchel_ops() -> tuple[dict[str, Callable[[], Any]], str]:
    """Hits on a satchel memory region configured from ``cache.*`` settings."""
    import satchel.cache as cache

    cache.configure_from_settings(SETTINGS)  # the process's regions, as config.include("satchel") does
    region = cache.get_region("bench")
    region.set(KEY, VALUE)

    @cache.cache_region("bench", "ns")
    def lookup(x: int) -> dict[str, Any]:
        return VALUE

    lookup(1)
    ops: dict[str, Callable[[], Any]] = {
        "get": lambda: region.get(KEY),
        "get_or_create": lambda: region.get_or_create(KEY, lambda: VALUE),
        "decorated": lambda: lookup(1),
    }
    return ops, "satchel.cache.configure_from_settings + get_region('bench') / @cache_region('bench', 'ns')"
