"""What every command shares: output, reading the application's settings, opening its store."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import (
    CACHE_PREFIXES,
    SESSION_PREFIXES,
    IniSection,
    SessionConfig,
    StoreConfig,
    find_section,
    parse_cache_settings,
    parse_session_settings,
    section_settings,
)
from ..errors import SatchelError
from ..stores import Store, open_store


class CommandError(SatchelError):
    """A request the command cannot carry out; the message says why."""


def out(text: str) -> None:
    print(text, file=sys.stdout)


def err(text: str) -> None:
    print(text, file=sys.stderr)


class _Collect(logging.Handler):
    def __init__(self, messages: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def settings_warnings() -> Iterator[list[str]]:
    """The warnings the settings parsers log, collected for the command to print itself."""
    logger = logging.getLogger("satchel.settings")
    messages: list[str] = []
    handler = _Collect(messages)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@contextmanager
def log_to_stderr() -> Iterator[None]:
    """satchel's own warnings (a corrupt record, ...) go to stderr while a command runs."""
    logger = logging.getLogger("satchel")
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


# -- the application's settings ---------------------------------------------------------


def ini_arguments(parser: argparse.ArgumentParser, operand: str | None = None) -> argparse.ArgumentParser:
    """The INI file (and ``--section``); ``operand`` names the command's other positional
    argument, which may come before the file (today's order) or after it (Pyramid's)."""
    parser.add_argument("file", metavar="FILE.ini", help="the application's INI file (first or last)")
    parser.set_defaults(operand=operand)
    parser.add_argument(
        "--section",
        metavar="SECTION",
        help="the section to read, e.g. app:main or filter:satchel "
        "(default: [app:main], or the section that configures satchel)",
    )
    return parser


def put_ini_first(args: argparse.Namespace) -> None:
    """Accept ``satchel sessions show app.ini ID`` as Pyramid's commands take their file
    (``pshell app.ini``), as well as ``satchel sessions show ID app.ini``."""
    operand = getattr(args, "operand", None)
    if operand is None:
        return
    value = getattr(args, operand)
    if _names_ini_file(value) and not _names_ini_file(args.file):
        setattr(args, operand, args.file)
        args.file = value


def _names_ini_file(text: str) -> bool:
    return text.lower().endswith(".ini") or Path(text).is_file()


def load(args: argparse.Namespace) -> tuple[IniSection, dict[str, str]]:
    section = find_section(args.file, args.section)
    return section, section_settings(section)


def has(settings: Mapping[str, Any], prefixes: tuple[str, ...]) -> bool:
    return any(key.startswith(prefixes) for key in settings)


def has_sessions(settings: Mapping[str, Any]) -> bool:
    return has(settings, SESSION_PREFIXES)


def has_cache(settings: Mapping[str, Any]) -> bool:
    return has(settings, CACHE_PREFIXES)


def session_config(section: IniSection, settings: Mapping[str, Any]) -> SessionConfig:
    if not has_sessions(settings):
        raise CommandError(f"[{section.name}] in {section.path} has no session.* settings")
    with settings_warnings():
        return parse_session_settings(settings)


#: The package each store or cache backend type imports.
DRIVERS = {"redis": "redis", "rediscluster": "redis", "memcached": "pymemcache", "sql": "sqlalchemy"}
#: The extra that installs a package satchel may need.
EXTRA_OF = {
    "redis": "redis",
    "pymemcache": "memcached",
    "sqlalchemy": "sql",
    "psycopg": "postgresql",
    "pymysql": "mysql",
    "cryptography": "cookie",
    "dogpile": "cache",
    "pyramid": "pyramid",
}


def install_hint(module: str) -> str:
    top = module.split(".")[0]
    extra = EXTRA_OF.get(top.lower())
    return f'pip install "satchel[{extra}]"' if extra else f"pip install {top}"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def session_driver_problems(config: SessionConfig) -> list[str]:
    """What the session settings need that is not installed, each with its install hint."""
    needs = []
    if not config.client_side and config.store.type in DRIVERS:
        needs.append((f"session.type = {config.store.type}", DRIVERS[config.store.type]))
    if config.encrypt_keys:
        needs.append(("session.encrypt_key", "cryptography"))
    return [f"{what} needs {module}: {install_hint(module)}" for what, module in needs if not _installed(module)]


def cache_driver_problems(settings: Mapping[str, Any]) -> list[str]:
    """What the cache regions need that is not installed, each with its install hint."""
    regions = parse_cache_settings(settings).regions
    return [
        f"cache region {name} (type {region.type}) needs {DRIVERS[region.type]}: {install_hint(DRIVERS[region.type])}"
        for name, region in sorted(regions.items())
        if region.type in DRIVERS and not _installed(DRIVERS[region.type])
    ]


def open_session_store(config: SessionConfig, purpose: str) -> Store:
    """The application's store, refused where the command would find nothing or create it."""
    store = config.store
    problems = session_driver_problems(config)
    if problems:
        raise CommandError(problems[0])
    if config.client_side:
        raise CommandError(
            f"session.type = cookie keeps each session in the browser's cookie: there is no store to {purpose}"
        )
    if store.type == "memory":
        raise CommandError(
            "session.type = memory keeps sessions inside each application process: "
            f"the satchel command cannot {purpose} them"
        )
    data_dir = store.options.get("data_dir")
    if store.type == "file" and data_dir and not Path(data_dir).is_dir():
        # Opening the file store would create it; an empty new directory would hide a typo.
        raise CommandError(f"session.data_dir {data_dir} does not exist (has the application run with this file?)")
    if store.type == "sql":
        _require_table(store)
    return open_store(store)


#: The SQL store's table unless session.table_name names another.
SQL_TABLE = "satchel_sessions"


def _require_table(store: StoreConfig) -> None:
    """Opening the SQL store would create its table; a new empty table would hide a typo."""
    import sqlalchemy as sa

    from ..stores.sql import create_engine

    options = dict(store.options.get("sa") or {})
    url = store.options.get("url") or options.pop("url", None)
    options.pop("url", None)
    given = store.options.get("bind")
    engine = given if given is not None else create_engine(str(url), options, store.address)
    table = store.options.get("table_name") or SQL_TABLE
    try:
        exists = sa.inspect(engine).has_table(table, schema=store.options.get("schema_name"))
    except sa.exc.SQLAlchemyError as exc:
        raise CommandError(f"cannot reach the sql store at {store.address}: {exc}") from exc
    finally:
        if given is None:
            engine.dispose()
    if not exists:
        raise CommandError(
            f"session.table_name {table} does not exist at {store.address} (has the application run with this file?)"
        )


def missing_cache_dirs(settings: Mapping[str, Any]) -> list[str]:
    """File regions whose data_dir does not exist: building them would create it."""
    regions = parse_cache_settings(settings).regions
    return [
        f"cache region {name}: data_dir {config.data_dir} does not exist (has the application run with this file?)"
        for name, config in sorted(regions.items())
        if config.type == "file" and config.data_dir and not Path(config.data_dir).is_dir()
    ]


def regions_builder() -> Callable[[Mapping[str, Any]], Mapping[str, Any]]:
    """``satchel.cache.regions_from_settings``; its driver (dogpile.cache) is an extra."""
    try:
        module = importlib.import_module("satchel.cache")
    except ModuleNotFoundError as exc:
        raise CommandError(f'satchel.cache needs {exc.name}: pip install "satchel[cache]"') from None
    build: Callable[[Mapping[str, Any]], Mapping[str, Any]] = module.regions_from_settings
    return build
