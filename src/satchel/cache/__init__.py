"""Cache regions from Beaker's ``cache.*`` settings, on dogpile.cache.

::

    from satchel.cache import cache_region, region_invalidate, get_region

    short_term = get_region("short_term")       # configured later, from settings

    @cache_region("short_term", "things")
    def load(term, limit=20): ...

    region_invalidate(load, None, "things", "rabbits", 20)   # or load.invalidate("rabbits", 20)

In Pyramid, ``config.include("satchel")`` configures the regions when any
``cache.*`` setting is present; a view reaches one with
``request.cache_region("short_term")``, and ``request.registry.cache_regions``
maps every configured name to its region. Without Pyramid, call
:func:`configure_from_settings`. See docs/caching.md.
"""

from __future__ import annotations

import difflib
from typing import Any

try:
    from dogpile.cache.api import NO_VALUE as NO_VALUE
    from dogpile.cache.region import CacheRegion as CacheRegion
except ModuleNotFoundError as exc:  # the cache.* settings are read only where dogpile.cache is installed
    raise ModuleNotFoundError(
        f'satchel\'s cache regions (cache.* settings) need dogpile.cache: pip install "satchel[cache]" ({exc})',
        name=exc.name,
    ) from None

from ..config import CACHE_PREFIXES as CACHE_PREFIXES
from ..config import RegionConfig as RegionConfig
from ..config import parse_cache_settings as parse_cache_settings
from ..errors import ConfigurationError
from .decorator import CachedFunction as CachedFunction
from .decorator import cache_region as cache_region
from .decorator import region_invalidate as region_invalidate
from .regions import clear_region as clear_region
from .regions import configure_from_settings as configure_from_settings
from .regions import get_region as get_region
from .regions import invalidate_region as invalidate_region
from .regions import is_shared as is_shared
from .regions import regions as regions
from .regions import regions_from_settings as regions_from_settings


def _request_cache_region(request: Any, name: str) -> CacheRegion:
    """``request.cache_region(name)``: the configured region of that name."""
    configured: dict[str, CacheRegion] = request.registry.cache_regions
    try:
        return configured[name]
    except KeyError:
        near = difflib.get_close_matches(name, list(configured), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f" (regions: {', '.join(configured) or 'none'})"
        raise ConfigurationError(f"no cache region {name!r} in cache.regions{hint}", "cache.regions") from None


def includeme(config: Any) -> None:
    """``config.include("satchel.cache")``: configure the regions from ``cache.*`` settings.

    Bad settings raise :class:`~satchel.errors.ConfigurationError` here, at start-up.
    """
    configured = configure_from_settings(config.get_settings())
    config.registry.cache_regions = configured
    config.add_request_method(_request_cache_region, "cache_region")


__all__ = [
    "CACHE_PREFIXES",
    "NO_VALUE",
    "CacheRegion",
    "CachedFunction",
    "RegionConfig",
    "cache_region",
    "clear_region",
    "configure_from_settings",
    "get_region",
    "includeme",
    "invalidate_region",
    "is_shared",
    "parse_cache_settings",
    "region_invalidate",
    "regions",
    "regions_from_settings",
]
