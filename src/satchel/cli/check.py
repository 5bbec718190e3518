"""``satchel check``: the session and cache settings, checked as the application would."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from ..config import SessionConfig, find_section, section_settings
from ..errors import SatchelError
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
    if has_cache(settings):
        failed = _check_cache(settings) or failed
    return 1 if failed else 0


def _check_cache(settings: Mapping[str, Any]) -> bool:
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
    return False


def add_commands(commands: Any) -> None:
    check = commands.add_parser("check", help="check the session and cache settings as the application would")
    ini_arguments(check)
    check.set_defaults(handler=cmd_check)
