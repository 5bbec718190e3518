"""``satchel migrate beaker FILE.ini``: convert Beaker's stored sessions before the switch."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import CommandError, ini_arguments, load, open_session_store, out, session_config


def cmd_migrate_beaker(args: argparse.Namespace) -> int:
    from ..beaker.migrate import Counts, migrate
    from ..beaker.readers import open_reader

    section, settings = load(args)
    config = session_config(section, settings)
    if config.beaker is None:
        raise CommandError(
            f"[{section.name}] does not set session.beaker_transition = true: the sessions this command "
            "converts are handed to visitors by the transition mode; turn it on in the same file first"
        )
    store = open_session_store(config, "migrate into")
    reader = open_reader(config.store, config.beaker.type, config.beaker.table_name)
    show = sys.stderr.isatty()

    def progress(counts: Counts) -> None:
        if show and counts.seen % 100 == 0:
            sys.stderr.write(f"\rmigrating Beaker sessions: {counts.seen}")
            sys.stderr.flush()

    try:
        counts = migrate(
            reader, store, config, dry_run=args.dry_run, delete_beaker=args.delete_beaker, progress=progress
        )
    finally:
        reader.close()
        store.close()
    if show:
        sys.stderr.write("\r\033[K")
    verb = "would convert" if args.dry_run else "converted"
    out(f"{verb} {counts.converted}, skipped {counts.skipped}, refused {counts.refused}")
    return 0


def add_commands(commands: Any) -> None:
    migrate = commands.add_parser("migrate", help="convert another library's stored sessions")
    sources = migrate.add_subparsers(title="from", dest="migrate_from", metavar="SOURCE")
    migrate.set_defaults(handler=None, subparser=migrate)
    beaker = sources.add_parser(
        "beaker",
        help="convert Beaker's sessions into the store satchel uses (the transition mode adopts them)",
    )
    ini_arguments(beaker)
    beaker.add_argument("--dry-run", action="store_true", help="read and count, write nothing")
    beaker.add_argument(
        "--delete-beaker",
        action="store_true",
        help="delete each Beaker record once it is converted (only once the Beaker app is stopped)",
    )
    beaker.set_defaults(handler=cmd_migrate_beaker)
