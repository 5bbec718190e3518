"""The ``satchel`` command: secrets, settings checks, and session and cache housekeeping.

Every command reads the application's INI file the way the application does
(see :mod:`satchel.config.inifile`). A mistake the user can fix (a bad setting,
a missing file, a store that is down) is one line on stderr and exit status 1,
never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import SatchelError
from . import cache, check, common, migrate, secret, sessions
from .common import CommandError as CommandError
from .common import err
from .sessions import resolve_session as resolve_session
from .sessions import run_with_progress as run_with_progress

#: A shell's status for a command stopped by SIGPIPE (128 + 13), as ``cat`` and ``grep`` end.
EXIT_BROKEN_PIPE = 141


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not fail again."""
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="satchel", description="Sessions and caching for Pyramid and WSGI applications."
    )
    parser.add_argument("--version", action="version", version=f"satchel {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for group in (secret, check, sessions, cache, migrate):
        group.add_commands(commands)
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
    common.put_ini_first(args)
    try:
        with common.log_to_stderr():
            code = handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # The reader stopped early (``| head``): what it wanted was printed.
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except SatchelError as exc:
        err(f"satchel: error: {exc}")
        return 1
    except ModuleNotFoundError as exc:
        if not exc.name:
            raise
        err(f"satchel: error: {exc.name} is not installed: {common.install_hint(exc.name)}")
        return 1
    except KeyboardInterrupt:
        err("satchel: interrupted")
        return 130


__all__ = ["CommandError", "build_parser", "main", "resolve_session", "run_with_progress"]
