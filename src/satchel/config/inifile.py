"""Reading an application's INI file the way PasteDeploy does, for the ``satchel`` command.

The command must see the settings the application sees: the same ``%(here)s``
and ``%(__file__)s`` defaults, keys kept in their case, ``[DEFAULT]`` values
given to the application as global configuration rather than as its own
settings, and ``set``/``get`` lines honoured.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigurationError

#: Keys PasteDeploy takes out of a section before the application sees it.
PASTE_KEYS = ("use", "filter-with", "require", "next")
DEFAULT_SECTION = "app:main"
_SETTING_PREFIXES = ("session.", "beaker.session.", "cache.", "beaker.cache.")
_SATCHEL_FILTER = re.compile(r"(egg:satchel(#main)?|call:satchel\.wsgi:filter_app_factory)")


class IniFileError(ConfigurationError):
    """The INI file cannot be read, or has no section the command can use."""


@dataclass(frozen=True)
class IniSection:
    """One section as PasteDeploy hands it to an application or filter factory."""

    path: Path
    name: str
    #: The section's own settings (``local_conf``), interpolated.
    local_conf: dict[str, str]
    #: ``[DEFAULT]`` plus ``here``, ``__file__`` and ``set`` lines (``global_conf``).
    global_conf: dict[str, str]
    use: str | None = None

    @property
    def is_satchel_filter(self) -> bool:
        return self.name.startswith(("filter:", "filter-app:")) and bool(
            self.use and _SATCHEL_FILTER.fullmatch(self.use.strip())
        )


def read_parser(path: str | os.PathLike[str]) -> configparser.ConfigParser:
    """The parsed file, with PasteDeploy's ``here`` and ``__file__`` defaults."""
    target = Path(path)
    absolute = os.path.abspath(target)
    parser = configparser.ConfigParser(
        defaults={"here": os.path.dirname(absolute), "__file__": absolute},
        interpolation=configparser.BasicInterpolation(),
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep keys' case, as PasteDeploy does
    try:
        with open(target, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        raise IniFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise IniFileError(f"{path} is a directory, not an INI file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IniFileError(f"{path}: cannot read it: {exc}") from None
    except configparser.Error as exc:
        raise IniFileError(f"{path} is not a valid INI file: {exc}") from None
    return parser


def _get(parser: configparser.ConfigParser, path: Path, section: str, option: str) -> str:
    try:
        return parser.get(section, option)
    except configparser.InterpolationMissingOptionError as exc:
        raise IniFileError(
            f"{path} [{section}] {option}: %({exc.reference})s names no setting of that section or [DEFAULT]"
        ) from None
    except configparser.InterpolationError:
        # configparser's message quotes the value, and the value may be a secret.
        raise IniFileError(
            f"{path} [{section}] {option}: a '%' in the value must be written '%%' "
            "(INI files substitute %(name)s); the value is not shown here"
        ) from None
    except configparser.Error as exc:
        message = str(exc).replace("\n", " ")
        raise IniFileError(f"{path} [{section}] {option}: {message}") from None


def _section(parser: configparser.ConfigParser, path: Path, name: str) -> IniSection:
    if not parser.has_section(name):
        available = ", ".join(f"[{s}]" for s in parser.sections()) or "none"
        raise IniFileError(f"{path} has no [{name}] section (sections: {available}); choose one with --section")
    defaults = parser.defaults()
    global_conf = {key: _get(parser, path, "DEFAULT", key) for key in defaults}
    local_conf: dict[str, str] = {}
    gets: dict[str, str] = {}
    for option in parser.options(name):
        if option.startswith("set "):
            global_conf[option[4:].strip()] = _get(parser, path, name, option)
        elif option.startswith("get "):
            gets[option[4:].strip()] = _get(parser, path, name, option)
        elif option not in defaults:
            local_conf[option] = _get(parser, path, name, option)
    for local_name, global_name in gets.items():
        if global_name not in global_conf:
            raise IniFileError(f"{path} [{name}] get {local_name}: [DEFAULT] has no {global_name}")
        local_conf[local_name] = global_conf[global_name]
    use = local_conf.get("use")
    for key in PASTE_KEYS:
        local_conf.pop(key, None)
    return IniSection(path=path, name=name, local_conf=local_conf, global_conf=global_conf, use=use)


def _has_settings(settings: Mapping[str, str]) -> bool:
    return any(key.startswith(_SETTING_PREFIXES) for key in settings)


def find_section(path: str | os.PathLike[str], name: str | None = None) -> IniSection:
    """The section to read: ``name`` when given, else where the settings are.

    Without a name: ``[app:main]`` when it holds session or cache settings, else
    a filter section that uses satchel's middleware, else another ``[app:...]``
    section that holds them, else ``[app:main]``.
    """
    target = Path(path)
    parser = read_parser(target)
    if name is not None:
        return _section(parser, target, name)
    candidates: list[IniSection] = []
    if parser.has_section(DEFAULT_SECTION):
        candidates.append(_section(parser, target, DEFAULT_SECTION))
    for section in parser.sections():
        if section.startswith(("filter:", "filter-app:")):
            found = _section(parser, target, section)
            if found.is_satchel_filter:
                candidates.append(found)
    for section in parser.sections():
        if section.startswith(("app:", "application:")) and section != DEFAULT_SECTION:
            candidates.append(_section(parser, target, section))
    for candidate in candidates:
        if candidate.is_satchel_filter or _has_settings(candidate.local_conf):
            return candidate
    if candidates:
        return candidates[0]
    available = ", ".join(f"[{s}]" for s in parser.sections()) or "none"
    raise IniFileError(f"{path} has no [{DEFAULT_SECTION}] section (sections: {available}); choose one with --section")


def section_settings(section: IniSection) -> dict[str, str]:
    """The settings the application (or satchel's filter) builds its session from.

    A Pyramid application gets its section's own settings; satchel's filter also
    takes session settings from ``[DEFAULT]``, and refuses keys it does not know.
    """
    if section.is_satchel_filter:
        from ..wsgi import filter_settings

        settings, _ = filter_settings(section.global_conf, section.local_conf)
        return settings
    return dict(section.local_conf)


__all__ = ["IniFileError", "IniSection", "find_section", "read_parser", "section_settings"]
