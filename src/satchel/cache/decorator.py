"""Beaker's ``@cache_region`` and ``region_invalidate``, on dogpile regions."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from dogpile.cache.region import CacheRegion

from ..config.cache import DEFAULT_KEY_LENGTH
from .keys import GenKey, KeyMaker, hashed, text
from .regions import get_region

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class CachedFunction(Protocol[P, R_co]):
    """What ``@cache_region`` returns: the function, cached, with a few helpers."""

    region: CacheRegion

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def invalidate(self, *args: Any, **kwargs: Any) -> None:
        """Forget the value for these arguments (without ``self`` and ignored parameters)."""

    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Compute the value now and store it, whatever the cache holds."""

    def key(self, *args: Any, **kwargs: Any) -> str:
        """The cache key for these arguments (without ``self`` and ignored parameters)."""


class CacheInfo:
    """What ``region_invalidate`` needs to find a decorated function's keys."""

    __slots__ = ("extra", "keys", "name", "region")

    def __init__(self, name: str, region: CacheRegion, extra: tuple[Any, ...], keys: KeyMaker) -> None:
        self.name = name
        self.region = region
        self.extra = extra
        self.keys = keys


def cache_region(
    region: str, *args: Any, ignore: Iterable[str] = ()
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
    """Cache a function's results in ``region``, keyed by its arguments (Beaker's decorator).

    ``args`` (Beaker's namespace arguments) are added to every key. Positional and
    keyword calls share keys; ``self``/``cls`` is left out, and so is every
    parameter named in ``ignore`` (``ignore=("request",)``). The region may be
    configured after the decorator runs::

        @cache_region("short_term", "load_things")
        def load(search_term, limit, offset): ...
    """
    target = get_region(region)
    extra = tuple(args)
    ignored = tuple(ignore)

    def decorate(func: Callable[P, R]) -> CachedFunction[P, R]:
        keys = KeyMaker(func, extra, ignored)
        get_or_create = target.get_or_create

        @functools.wraps(func)
        def cached(*args: P.args, **kwargs: P.kwargs) -> R:
            key = keys(args, kwargs)
            if len(key) > target.satchel_key_length:
                key = hashed(key)
            value: R = get_or_create(key, func, creator_args=(args, kwargs))
            return value

        def key_for(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            key = keys.for_arguments(args, kwargs)
            return key if len(key) <= target.satchel_key_length else hashed(key)

        def invalidate(*args: Any, **kwargs: Any) -> None:
            target.delete(key_for(args, kwargs))

        def refresh(*args: P.args, **kwargs: P.kwargs) -> R:
            key = keys(args, kwargs)
            stored: str = key if len(key) <= target.satchel_key_length else hashed(key)
            mangler = target.key_mangler
            if mangler is not None:
                stored = mangler(stored)
                if isinstance(stored, GenKey):
                    # Read the generation *before* the function runs, as get_or_create
                    # does: a value computed while the region is invalidated is then
                    # stamped with the old generation (or, if the read fails, not stored).
                    target.backend.get_serialized(stored)
            value = func(*args, **kwargs)
            target.set(stored, value)  # the mangler passes a GenKey through unchanged
            return value

        def key(*args: Any, **kwargs: Any) -> str:
            return key_for(args, kwargs)

        cached.__dict__.update(
            region=target,
            invalidate=invalidate,
            refresh=refresh,
            key=key,
            _satchel_cache=CacheInfo(region, target, extra, keys),
        )
        return cast("CachedFunction[P, R]", cached)

    return decorate


def region_invalidate(
    namespace: Callable[..., Any], region: str | CacheRegion | None, *args: Any, **kwargs: Any
) -> None:
    """Forget one value of a ``@cache_region`` function, the way Beaker did.

    ``region`` may be ``None`` (the decorator's region). As in Beaker, ``args``
    start with the decorator's own extra arguments, then the call's arguments
    (without ``self`` and the parameters the decorator ignores)::

        region_invalidate(load, None, "load_things", "rabbits", 20, 0)

    ``load.invalidate("rabbits", 20, 0)`` does the same without repeating them.
    """
    info = getattr(namespace, "_satchel_cache", None)
    if not isinstance(info, CacheInfo):
        raise TypeError("region_invalidate() takes a function decorated with @cache_region")
    target = info.region if region is None else get_region(region) if isinstance(region, str) else region
    count = len(info.extra)
    if count:
        given = args[:count]
        if len(given) < count or [text(a) for a in given] != [text(a) for a in info.extra]:
            raise TypeError(
                f"region_invalidate({info.keys.namespace}, ...): start the arguments with the "
                f"decorator's own {info.extra!r}, as Beaker required, or call "
                f"{getattr(namespace, '__name__', 'the function')}.invalidate(...) with the call's arguments"
            )
        args = args[count:]
    key = info.keys.for_arguments(args, kwargs)
    if len(key) > getattr(target, "satchel_key_length", DEFAULT_KEY_LENGTH):
        key = hashed(key)
    target.delete(key)


__all__ = ["CachedFunction", "cache_region", "region_invalidate"]
