"""The names modules import from here live in :mod:`satchel.config`; this module re-exports them.

``StoreSettings`` stays here only for the stores' ``from_settings`` constructors,
which :meth:`satchel.stores.Store.from_options` replaces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config.names import CACHE_PREFIXES as CACHE_PREFIXES
from .config.names import SESSION_PREFIXES as SESSION_PREFIXES
from .config.names import collect as collect
from .config.session import SESSION_OPTIONS as SESSION_OPTIONS
from .config.session import CookieConfig as CookieSettings
from .config.session import SessionConfig as SessionSettings
from .config.session import check_secret as check_secret
from .config.session import parse_session_settings as parse_session_settings


@dataclass(frozen=True)
class StoreSettings:
    """Every store's settings in one object, for the stores' ``from_settings``."""

    type: str = "memory"
    url: str | None = None
    urls: tuple[str, ...] = ()
    data_dir: str | None = None
    lock_dir: str | None = None
    table_name: str = "satchel_sessions"
    schema_name: str | None = None
    sa_options: Mapping[str, Any] = field(default_factory=dict)
    memcache_module: str | None = None
    key_prefix: str = "satchel:s:"
    max_records: int | None = None
    engine: Any = None

    @classmethod
    def of(cls, type_name: str, options: Mapping[str, Any]) -> StoreSettings:
        """The settings a store's coerced ``options`` stand for."""
        renamed = {"sa": "sa_options", "bind": "engine"}
        return cls(type=type_name, **{renamed.get(name, name): value for name, value in options.items()})

    @property
    def address(self) -> str:
        """Where the store lives, for error messages (credentials removed)."""
        if self.type == "file":
            return self.data_dir or ""
        target = self.url or ";".join(self.urls)
        return re.sub(r"//[^/@]*@", "//***@", target or "")


__all__ = [
    "CACHE_PREFIXES",
    "SESSION_OPTIONS",
    "SESSION_PREFIXES",
    "CookieSettings",
    "SessionSettings",
    "StoreSettings",
    "check_secret",
    "collect",
    "parse_session_settings",
]
