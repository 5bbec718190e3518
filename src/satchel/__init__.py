"""satchel: sessions and caching for Pyramid and WSGI applications."""

from __future__ import annotations

from typing import Any

from .config import parse_session_settings as parse_session_settings
from .errors import BadData as BadData
from .errors import ConfigurationError as ConfigurationError
from .errors import NotSerializable as NotSerializable
from .errors import SatchelError as SatchelError
from .errors import SessionConflict as SessionConflict
from .errors import SessionTooLarge as SessionTooLarge
from .errors import StoreError as StoreError
from .errors import StoreUnavailable as StoreUnavailable
from .manager import SessionManager as SessionManager
from .session import Session as Session

__version__ = "0.1.0"

__all__ = [
    "BadData",
    "ConfigurationError",
    "NotSerializable",
    "SatchelError",
    "Session",
    "SessionConflict",
    "SessionManager",
    "SessionTooLarge",
    "StoreError",
    "StoreUnavailable",
    "includeme",
    "parse_session_settings",
    "session_factory_from_settings",
]


def includeme(config: Any) -> None:
    """Pyramid entry point for ``config.include("satchel")``."""
    from .web.pyramid import includeme as _includeme

    _includeme(config)


def session_factory_from_settings(settings: Any) -> Any:
    """pyramid_beaker's name: a Pyramid session factory from ``session.*`` settings."""
    from .web.pyramid import session_factory_from_settings as _factory

    return _factory(settings)
