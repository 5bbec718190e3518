"""``satchel secret``: a strong random value for ``session.secret``."""

from __future__ import annotations

import argparse
import secrets
from typing import Any

from .common import out


def cmd_secret(args: argparse.Namespace) -> int:
    out(secrets.token_hex(32))
    return 0


def add_commands(commands: Any) -> None:
    secret = commands.add_parser("secret", help="print a strong random secret for session.secret")
    secret.set_defaults(handler=cmd_secret)
