"""The ``satchel`` command: secrets, settings checks, and session housekeeping.

Every command reads the application's INI file the way the application does
(see :mod:`satchel.inifile`). A mistake the user can fix (a bad setting, a
missing file, a store that is down) is one line on stderr and exit status 1,
never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import logging
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from . import __version__
from .codecs import Signer, decode_body, split_record, store_key
from .errors import BadData, SatchelError
from .inifile import IniSection, find_section, section_settings
from .policy import cookies
from .settings import CACHE_PREFIXES, SESSION_PREFIXES, SessionSettings, StoreSettings, parse_session_settings
from .stores import Store, open_store

T = TypeVar("T")

#: Stores whose server drops expired records on its own.
SELF_EXPIRING = ("redis", "rediscluster", "memcached")
#: Seconds a purge runs before the progress line appears.
PROGRESS_AFTER = 1.0


class CommandError(SatchelError):
    """A request the command cannot carry out; the message says why."""


# -- output -------------------------------------------------------------------


def _out(text: str) -> None:
    print(text, file=sys.stdout)


def _err(text: str) -> None:
    print(text, file=sys.stderr)


class _Collect(logging.Handler):
    def __init__(self, messages: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _settings_warnings() -> Iterator[list[str]]:
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
def _log_to_stderr() -> Iterator[None]:
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


# -- reading the application's settings ------------------------------------------


def _load(args: argparse.Namespace) -> tuple[IniSection, dict[str, str]]:
    section = find_section(args.file, args.section)
    return section, section_settings(section)


def _has(settings: Mapping[str, Any], prefixes: tuple[str, ...]) -> bool:
    return any(key.startswith(prefixes) for key in settings)


def _session_settings(section: IniSection, settings: Mapping[str, Any]) -> SessionSettings:
    if not _has(settings, SESSION_PREFIXES):
        raise CommandError(f"[{section.name}] in {section.path} has no session.* settings")
    with _settings_warnings():
        return parse_session_settings(settings)


def _open_store(parsed: SessionSettings, purpose: str) -> Store:
    if parsed.client_side:
        raise CommandError(
            f"session.type = cookie keeps each session in the browser's cookie: there is no store to {purpose}"
        )
    if parsed.store.type == "memory":
        raise CommandError(
            "session.type = memory keeps sessions inside each application process: "
            f"the satchel command cannot {purpose} them"
        )
    data_dir = parsed.store.data_dir
    if parsed.store.type == "file" and data_dir and not Path(data_dir).is_dir():
        # Opening the file store would create it; an empty new directory would hide a typo.
        raise CommandError(f"session.data_dir {data_dir} does not exist (has the application run with this file?)")
    if parsed.store.type == "sql":
        _require_table(parsed.store)
    return open_store(parsed.store)


def _require_table(store: StoreSettings) -> None:
    """Opening the SQL store would create its table; a new empty table would hide a typo."""
    import sqlalchemy as sa

    from .stores.sql import create_engine

    options = dict(store.sa_options)
    url = store.url or options.pop("url", None)
    engine = store.engine if store.engine is not None else create_engine(str(url), options, store.address)
    try:
        exists = sa.inspect(engine).has_table(store.table_name, schema=store.schema_name)
    except sa.exc.SQLAlchemyError as exc:
        raise CommandError(f"cannot reach the sql store at {store.address}: {exc}") from exc
    finally:
        if store.engine is None:
            engine.dispose()
    if not exists:
        raise CommandError(
            f"session.table_name {store.table_name} does not exist at {store.address} "
            "(has the application run with this file?)"
        )


def _missing_cache_dirs(settings: Mapping[str, Any]) -> list[str]:
    """File regions whose data_dir does not exist: building them would create it."""
    from .cache.settings import parse_cache_settings

    regions = parse_cache_settings(settings).regions
    return [
        f"cache region {name}: data_dir {config.data_dir} does not exist (has the application run with this file?)"
        for name, config in sorted(regions.items())
        if config.type == "file" and config.data_dir and not Path(config.data_dir).is_dir()
    ]


def _regions_from_settings() -> Callable[[Mapping[str, Any]], Mapping[str, Any]]:
    """``satchel.cache.regions_from_settings``; its driver (dogpile.cache) is an extra."""
    try:
        module = importlib.import_module("satchel.cache")
    except ModuleNotFoundError as exc:
        raise CommandError(f'satchel.cache needs {exc.name}: pip install "satchel[cache]"') from None
    build: Callable[[Mapping[str, Any]], Mapping[str, Any]] = module.regions_from_settings
    return build


# -- satchel secret ---------------------------------------------------------------


def cmd_secret(args: argparse.Namespace) -> int:
    _out(secrets.token_hex(32))
    return 0


# -- satchel check ------------------------------------------------------------------


def _describe(parsed: SessionSettings) -> str:
    store = parsed.store
    if parsed.client_side:
        where = "in the cookie (client-side)"
    elif store.type == "memory":
        where = "memory store (each process has its own)"
    else:
        where = f"{store.type} store at {store.address}" if store.address else f"{store.type} store"
    parts = [where, f'cookie "{parsed.cookie.name}"']
    parts.append(f"idle timeout {parsed.timeout} s" if parsed.timeout else "no idle timeout")
    if parsed.absolute_timeout:
        parts.append(f"absolute timeout {parsed.absolute_timeout} s")
    if len(parsed.secrets) > 1:
        parts.append(f"{len(parsed.secrets)} secrets (the first signs)")
    return ", ".join(parts)


def cmd_check(args: argparse.Namespace) -> int:
    section = find_section(args.file, args.section)
    _out(f"[{section.name}] in {section.path}")
    try:
        settings = section_settings(section)
    except SatchelError as exc:
        _out(f"error: {exc}")
        return 1
    has_session, has_cache = _has(settings, SESSION_PREFIXES), _has(settings, CACHE_PREFIXES)
    if not (has_session or has_cache):
        _out("error: no session.* or cache.* settings here")
        return 1
    failed = False
    if has_session:
        try:
            parsed = _session_settings(section, settings)
        except SatchelError as exc:
            _out(f"error: {exc}")
            failed = True
        else:
            _out(f"session: ok: {_describe(parsed)}")
            for warning in parsed.warnings:
                _out(f"warning: {warning}")
    if has_cache:
        failed = _check_cache(settings) or failed
    return 1 if failed else 0


def _check_cache(settings: Mapping[str, Any]) -> bool:
    """Print the cache check; True when it failed."""
    try:
        build = _regions_from_settings()
    except CommandError as exc:
        _out(f"error: {exc}")
        return True
    try:
        missing = _missing_cache_dirs(settings)
        if missing:
            for problem in missing:
                _out(f"error: {problem}")
            return True
        with _settings_warnings() as warnings:
            regions = build(settings)
    except SatchelError as exc:
        _out(f"error: {exc}")
        return True
    names = ", ".join(sorted(regions)) or "none"
    _out(f"cache: ok: regions {names}")
    for warning in warnings:
        _out(f"warning: {warning}")
    return False


# -- satchel sessions ... ------------------------------------------------------------


def cmd_sessions_count(args: argparse.Namespace) -> int:
    section, settings = _load(args)
    parsed = _session_settings(section, settings)
    store = _open_store(parsed, "count")
    try:
        total = store.count()
    finally:
        store.close()
    if total is None:
        raise CommandError(f"the {store.name} store cannot count its sessions")
    _out(str(total))
    return 0


_STORE_KEY = re.compile(r"[0-9a-f]{64}")
_SESSION_ID = re.compile(r"[A-Za-z0-9_\-]{16,128}")
_SIGNED_ID = re.compile(r"[A-Za-z0-9_\-]{16,128}\.[A-Za-z0-9_\-]{16,128}")


def resolve_session(text: str, parsed: SessionSettings) -> tuple[str, str | None]:
    """(store key, session id) for what the user typed.

    Accepts the cookie's value (``id.signature``, checked against the secrets),
    ``name=value`` as a browser shows it, a bare session id, or the store key
    itself (the hash a store files the session under).
    """
    value = text.strip()
    if "=" in value:
        found = cookies.read_cookie(value, parsed.cookie.name)
        if found is None:
            raise CommandError(f"{text!r} holds no {parsed.cookie.name} cookie")
        value = found
    value = value.strip('"')
    if _STORE_KEY.fullmatch(value):
        return value, None
    if _SIGNED_ID.fullmatch(value):
        session_id = Signer(parsed.secrets).unsign(value)
        if session_id is None:
            raise CommandError("the cookie's signature does not match session.secret (is this the right INI file?)")
        value = session_id
    if not _SESSION_ID.fullmatch(value):
        raise CommandError(f"{text!r} is not a session id, a session cookie or a store key")
    return store_key(value), value


def _when(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc).isoformat(timespec="seconds")


def cmd_sessions_show(args: argparse.Namespace) -> int:
    section, settings = _load(args)
    parsed = _session_settings(section, settings)
    key, session_id = resolve_session(args.id, parsed)
    store = _open_store(parsed, "read")
    try:
        # The store directly, not the manager: showing a session must not delete,
        # renew or rewrite it, whatever state it is in.
        record = store.load(key)
    finally:
        store.close()
    if record is None:
        raise CommandError("no such session (it expired, was invalidated, or never existed)")
    try:
        created, accessed, body_bytes = split_record(record.data)
        body = decode_body(body_bytes)
    except BadData as exc:
        raise CommandError(f"the session's record cannot be decoded: {exc}") from None
    now = time.time()
    state = "active"
    if parsed.absolute_timeout is not None and created + parsed.absolute_timeout <= now:
        state = "expired: absolute timeout passed"
    elif record.expires_at is None and parsed.timeout is not None and accessed + parsed.timeout <= now:
        state = "expired: idle timeout passed"
    shown = {
        "id": session_id,
        "store_key": key,
        "state": state,
        "created": _when(created),
        "accessed": _when(accessed),
        "expires": _when(record.expires_at),
        "data": body.data,
        "flash": body.flash,
        "has_csrf_token": body.csrf is not None,
    }
    _out(json.dumps(shown, indent=2, ensure_ascii=False))
    return 0


def run_with_progress(work: Callable[[], T], label: str, after: float = PROGRESS_AFTER) -> T:
    """Run ``work`` in a thread; past ``after`` seconds, show that it is still going.

    The progress line goes to stderr only when stderr is a terminal.
    """
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(work())
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            errors.append(exc)

    thread = threading.Thread(target=target, name="satchel-cli", daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(after)
    stream = sys.stderr
    show = stream.isatty()
    frames = "|/-\\"
    shown = 0
    while thread.is_alive():
        if show:
            line = f"\r{label} {frames[shown % len(frames)]} {int(time.monotonic() - started)} s"
            stream.write(line)
            stream.flush()
            shown += 1
        thread.join(0.25)
    if shown:
        stream.write("\r\033[K")
        stream.flush()
    if errors:
        raise errors[0]
    return results[0]


def cmd_sessions_purge(args: argparse.Namespace) -> int:
    section, settings = _load(args)
    parsed = _session_settings(section, settings)
    store = _open_store(parsed, "purge")
    try:
        if parsed.store.type in SELF_EXPIRING or type(store).purge_expired is Store.purge_expired:
            _out(f"the {parsed.store.type} store expires sessions itself: nothing to purge")
            return 0
        removed = run_with_progress(store.purge_expired, "purging expired sessions")
    finally:
        store.close()
    _out(f"removed {removed} expired session{'' if removed == 1 else 's'}")
    return 0


# -- satchel cache clear ----------------------------------------------------------------


def cmd_cache_clear(args: argparse.Namespace) -> int:
    section, settings = _load(args)
    if not _has(settings, CACHE_PREFIXES):
        raise CommandError(f"[{section.name}] in {section.path} has no cache.* settings")
    build = _regions_from_settings()
    missing = _missing_cache_dirs(settings)
    if missing:
        raise CommandError(missing[0])
    with _settings_warnings():
        regions = build(settings)
    try:
        region = regions[args.region]
    except KeyError:
        names = ", ".join(sorted(regions)) or "none"
        raise CommandError(f"no cache region {args.region!r} (regions: {names})") from None
    _invalidate_everywhere(region, args.region, hard=not args.soft)
    if not args.soft:
        from .cache import clear_region

        clear_region(region)  # frees the region's keys where the backend can (Redis)
    kind = "soft-invalidated" if args.soft else "cleared"
    _out(f"{kind} cache region {args.region} for every process that shares its backend")
    return 0


def _invalidate_everywhere(region: Any, name: str, hard: bool) -> None:
    """Invalidate through the region's invalidation strategy.

    dogpile's default strategy keeps the invalidation time in the memory of the
    process that calls it, so from this command it would reach nobody: refuse it
    rather than report a clear that did not happen.
    """
    from dogpile.cache.region import DefaultInvalidationStrategy

    if isinstance(getattr(region, "region_invalidator", None), DefaultInvalidationStrategy):
        raise CommandError(
            f"cache region {name} is invalidated per process (dogpile's default): "
            "clearing it from this command would not reach the application"
        )
    region.invalidate(hard=hard)


# -- the parser -----------------------------------------------------------------------


def _ini_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("file", metavar="FILE.ini", help="the application's INI file")
    parser.add_argument(
        "--section",
        metavar="SECTION",
        help="the section to read, e.g. app:main or filter:satchel "
        "(default: [app:main], or the section that configures satchel)",
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="satchel", description="Sessions and caching for Pyramid and WSGI applications."
    )
    parser.add_argument("--version", action="version", version=f"satchel {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")

    secret = commands.add_parser("secret", help="print a strong random secret for session.secret")
    secret.set_defaults(handler=cmd_secret)

    check = commands.add_parser("check", help="check the session and cache settings as the application would")
    _ini_arguments(check)
    check.set_defaults(handler=cmd_check)

    sessions = commands.add_parser("sessions", help="inspect and clean up stored sessions")
    session_commands = sessions.add_subparsers(title="commands", dest="sessions_command", metavar="COMMAND")
    sessions.set_defaults(handler=None, subparser=sessions)
    count = session_commands.add_parser("count", help="print how many sessions the store holds")
    _ini_arguments(count)
    count.set_defaults(handler=cmd_sessions_count)
    show = session_commands.add_parser("show", help="print one session as JSON, without changing anything")
    show.add_argument("id", metavar="ID", help="the cookie's value (id.signature), the session id, or the store key")
    _ini_arguments(show)
    show.set_defaults(handler=cmd_sessions_show)
    purge = session_commands.add_parser("purge", help="remove expired sessions from the store")
    _ini_arguments(purge)
    purge.set_defaults(handler=cmd_sessions_purge)

    cache = commands.add_parser("cache", help="manage cache regions")
    cache_commands = cache.add_subparsers(title="commands", dest="cache_command", metavar="COMMAND")
    cache.set_defaults(handler=None, subparser=cache)
    clear = cache_commands.add_parser("clear", help="invalidate a cache region in every process")
    clear.add_argument("region", metavar="REGION")
    _ini_arguments(clear)
    clear.add_argument(
        "--soft", action="store_true", help="serve old values while new ones are computed (dogpile's soft invalidation)"
    )
    clear.set_defaults(handler=cmd_cache_clear)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse has reported
        return exc.code if isinstance(exc.code, int) else 2
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        getattr(args, "subparser", parser).print_help(sys.stderr)
        return 2
    try:
        with _log_to_stderr():
            return handler(args)
    except SatchelError as exc:
        _err(f"satchel: error: {exc}")
        return 1
    except KeyboardInterrupt:
        _err("satchel: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
