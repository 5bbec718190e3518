"""Settings: a flat mapping (an INI file's strings) in, frozen config objects out.

Session settings parse into :class:`SessionConfig` (with its :class:`CookieConfig`
and :class:`StoreConfig`), cache settings into one :class:`RegionConfig` per
region. Beaker's names are accepted throughout (:mod:`satchel.config.beaker`).
"""

from .cache import CacheSettings as CacheSettings
from .cache import RegionConfig as RegionConfig
from .cache import parse_cache_settings as parse_cache_settings
from .inifile import IniFileError as IniFileError
from .inifile import IniSection as IniSection
from .inifile import find_section as find_section
from .inifile import section_settings as section_settings
from .names import CACHE_PREFIXES as CACHE_PREFIXES
from .names import SESSION_PREFIXES as SESSION_PREFIXES
from .session import SESSION_OPTIONS as SESSION_OPTIONS
from .session import CookieConfig as CookieConfig
from .session import SessionConfig as SessionConfig
from .session import parse_session_settings as parse_session_settings
from .store import StoreConfig as StoreConfig

__all__ = [
    "CACHE_PREFIXES",
    "SESSION_OPTIONS",
    "SESSION_PREFIXES",
    "CacheSettings",
    "CookieConfig",
    "IniFileError",
    "IniSection",
    "RegionConfig",
    "SessionConfig",
    "StoreConfig",
    "find_section",
    "parse_cache_settings",
    "parse_session_settings",
    "section_settings",
]
