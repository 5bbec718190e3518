"""``satchel check``: the session and cache settings, checked as the application would."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from ..config import SessionConfig, find_section, section_settings
from ..errors import SatchelError
from ..health import Probe, probe_region, probe_store, server_facts
from .common import (
    CommandError,
    cache_driver_problems,
    has_cache,
    has_sessions,
    ini_arguments,
    missing_cache_dirs,
    out,
    regions_builder,
    session_config,
    session_driver_problems,
    settings_warnings,
)


def describe(config: SessionConfig) -> str:
    """One line saying where sessions live and how long they last."""
    store = config.store
    if config.client_side:
        where = "in the cookie (client-side)"
    elif store.type == "memory":
        where = "memory store (each process has its own)"
    else:
        where = f"{store.type} store at {store.address}" if store.address else f"{store.type} store"
    parts = [where, f'cookie "{config.cookie.name}"']
    parts.append(f"idle timeout {config.timeout} s" if config.timeout else "no idle timeout")
    if config.absolute_timeout:
        parts.append(f"absolute timeout {config.absolute_timeout} s")
    if len(config.secrets) > 1:
        parts.append(f"{len(config.secrets)} secrets (the first signs)")
    return ", ".join(parts)


def cmd_check(args: argparse.Namespace) -> int:
    section = find_section(args.file, args.section)
    out(f"[{section.name}] in {section.path}")
    try:
        settings = section_settings(section)
    except SatchelError as exc:
        out(f"error: {exc}")
        return 1
    if not (has_sessions(settings) or has_cache(settings)):
        out("error: no session.* or cache.* settings here")
        return 1
    failed = False
    if has_sessions(settings):
        try:
            config = session_config(section, settings)
        except SatchelError as exc:
            out(f"error: {exc}")
            failed = True
        else:
            problems = session_driver_problems(config)
            for problem in problems:
                out(f"error: {problem}")
            if not problems:
                out(f"session: ok: {describe(config)}")
            failed = failed or bool(problems)
            for warning in config.warnings:
                out(f"warning: {warning}")
            if args.connect and not config.client_side:
                failed = not _connect_store(config, args.timeout) or failed
    if has_cache(settings):
        failed = _check_cache(settings, args.connect, args.timeout) or failed
    return 1 if failed else 0


def _connect_store(config: SessionConfig, timeout: float) -> bool:
    """Reach the session store: read, create and delete a probe record; print what the
    server says about itself. False when it failed."""
    from ..stores import open_store

    try:
        store = open_store(config.store)
    except SatchelError as exc:
        out(f"error: session store: {exc}")
        return False
    try:
        probe = probe_store(store, timeout=timeout, write=True)
        options = config.store.options
        return _report(probe, config.store.type, _urls(options), options)
    finally:
        store.close()


def _urls(options: Mapping[str, Any]) -> list[str]:
    urls = options.get("urls") or options.get("url") or ()
    return [urls] if isinstance(urls, str) else list(urls)


def _report(probe: Probe, kind: str, urls: list[str], options: Mapping[str, Any]) -> bool:
    """Print a probe, with the server's facts when it answered; False when it failed."""
    facts: dict[str, str] = {}
    if probe.ok:
        try:
            facts = server_facts(kind, urls, options)
        except Exception as exc:  # noqa: BLE001 - the probe passed; the facts are extra
            out(f"warning: {probe.what}: could not read the server's version and limits ({exc})")
    shown = Probe(probe.what, probe.address, probe.ok, probe.seconds, probe.detail, facts)
    out(("connect: " if probe.ok else "error: ") + shown.line())
    return probe.ok


def _check_cache(settings: Mapping[str, Any], connect: bool = False, timeout: float = 2.0) -> bool:
    """Print the cache check; True when it failed."""
    try:
        build = regions_builder()
    except CommandError as exc:
        out(f"error: {exc}")
        return True
    try:
        missing = missing_cache_dirs(settings) + cache_driver_problems(settings)
        if missing:
            for problem in missing:
                out(f"error: {problem}")
            return True
        with settings_warnings() as warnings:
            regions = build(settings)
    except SatchelError as exc:
        out(f"error: {exc}")
        return True
    out(f"cache: ok: regions {', '.join(sorted(regions)) or 'none'}")
    for warning in warnings:
        out(f"warning: {warning}")
    if not connect:
        return False
    failed = False
    for name, region in sorted(regions.items()):
        config = getattr(region, "satchel_config", None)
        kind, url = getattr(config, "type", ""), getattr(config, "url", None)
        probe = probe_region(name, region, timeout=timeout)
        failed = not _report(probe, kind, [url] if url else [], {}) or failed
    return failed


def add_commands(commands: Any) -> None:
    check = commands.add_parser("check", help="check the session and cache settings as the application would")
    ini_arguments(check)
    check.add_argument(
        "--connect",
        action="store_true",
        help="also reach the session store and every cache backend: read and write a probe record, "
        "print the server's version and limits",
    )
    check.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each server (default 2)")
    check.set_defaults(handler=cmd_check)
