"""``satchel cache clear``: invalidate a cache region for every process that shares it."""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    CommandError,
    cache_driver_problems,
    has_cache,
    ini_arguments,
    load,
    missing_cache_dirs,
    out,
    regions_builder,
    settings_warnings,
)


def cmd_cache_clear(args: argparse.Namespace) -> int:
    section, settings = load(args)
    if not has_cache(settings):
        raise CommandError(f"[{section.name}] in {section.path} has no cache.* settings")
    build = regions_builder()
    missing = cache_driver_problems(settings) + missing_cache_dirs(settings)
    if missing:
        raise CommandError(missing[0])
    with settings_warnings():
        regions = build(settings)
    try:
        region = regions[args.region]
    except KeyError:
        names = ", ".join(sorted(regions)) or "none"
        raise CommandError(f"no cache region {args.region!r} (regions: {names})") from None
    _invalidate_everywhere(region, args.region, hard=not args.soft)
    if not args.soft:
        from ..cache import clear_region

        clear_region(region)  # frees the region's keys where the backend can (Redis)
    kind = "soft-invalidated" if args.soft else "cleared"
    out(f"{kind} cache region {args.region} for every process that shares its backend")
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


def add_commands(commands: Any) -> None:
    cache = commands.add_parser("cache", help="manage cache regions")
    cache_commands = cache.add_subparsers(title="commands", dest="cache_command", metavar="COMMAND")
    cache.set_defaults(handler=None, subparser=cache)
    clear = cache_commands.add_parser("clear", help="invalidate a cache region in every process")
    clear.add_argument("region", metavar="REGION")
    ini_arguments(clear, operand="region")
    clear.add_argument(
        "--soft", action="store_true", help="serve old values while new ones are computed (dogpile's soft invalidation)"
    )
    clear.set_defaults(handler=cmd_cache_clear)
