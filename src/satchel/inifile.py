"""Re-exports :mod:`satchel.config.inifile` for the modules that import it from here."""

from __future__ import annotations

from .config.inifile import IniFileError as IniFileError
from .config.inifile import IniSection as IniSection
from .config.inifile import find_section as find_section
from .config.inifile import read_parser as read_parser
from .config.inifile import section_settings as section_settings

__all__ = ["IniFileError", "IniSection", "find_section", "read_parser", "section_settings"]
