"""Re-exports :mod:`satchel.config.cache` for the modules that import it from here."""

from __future__ import annotations

from ..config.cache import CACHE_TYPES as CACHE_TYPES
from ..config.cache import DEFAULT_KEY_LENGTH as DEFAULT_KEY_LENGTH
from ..config.cache import REGION_NAME as REGION_NAME
from ..config.cache import CacheSettings as CacheSettings
from ..config.cache import RegionConfig as RegionConfig
from ..config.cache import parse_cache_settings as parse_cache_settings
from ..config.names import CACHE_PREFIXES as CACHE_PREFIXES

__all__ = [
    "CACHE_PREFIXES",
    "CACHE_TYPES",
    "DEFAULT_KEY_LENGTH",
    "REGION_NAME",
    "CacheSettings",
    "RegionConfig",
    "parse_cache_settings",
]
