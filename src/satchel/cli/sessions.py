"""``satchel sessions count|show|purge``: look into the store and clean it up."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..codecs import Signer, decode_body, split_record, store_key
from ..config import SessionConfig
from ..errors import BadData
from ..policy import cookies
from ..policy.server import MOVED_MARKER
from ..policy.timeouts import Timeouts
from .common import CommandError, ini_arguments, load, open_session_store, out, session_config

T = TypeVar("T")

#: Stores whose server drops expired records on its own.
SELF_EXPIRING = ("redis", "rediscluster", "memcached")
#: Seconds a purge runs before the progress line appears.
PROGRESS_AFTER = 1.0

_STORE_KEY = re.compile(r"[0-9a-f]{64}")
_SESSION_ID = re.compile(r"[A-Za-z0-9_\-]{16,128}")
_SIGNED_ID = re.compile(r"[A-Za-z0-9_\-]{16,128}\.[A-Za-z0-9_\-]{16,128}")


def cmd_sessions_count(args: argparse.Namespace) -> int:
    section, settings = load(args)
    store = open_session_store(session_config(section, settings), "count")
    try:
        # regenerate_id leaves a short-lived marker under the old id: not a visitor's session.
        total = store.count_excluding(MOVED_MARKER)
        if total is None:
            total = store.count()
    finally:
        store.close()
    if total is None:
        raise CommandError(f"the {store.name} store cannot count its sessions")
    out(str(total))
    return 0


def resolve_session(text: str, config: SessionConfig) -> tuple[str, str | None]:
    """(store key, session id) for what the user typed.

    Accepts the cookie's value (``id.signature``, checked against the secrets),
    ``name=value`` as a browser shows it, a bare session id, or the store key
    itself (the hash a store files the session under).
    """
    value = text.strip()
    if "=" in value:
        found = cookies.read_cookie(value, config.cookie.name)
        if found is None:
            raise CommandError(f"{text!r} holds no {config.cookie.name} cookie")
        value = found
    value = value.strip('"')
    if _STORE_KEY.fullmatch(value):
        return value, None
    if _SIGNED_ID.fullmatch(value):
        session_id = Signer(config.secrets).unsign(value)
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


def _state(config: SessionConfig, created: float, accessed: float, expires_at: float | None, now: float) -> str:
    """Whether the application would still accept the session: the policy's own rules."""
    timeouts = Timeouts(config)
    if timeouts.past_absolute(created, now):
        return "expired: absolute timeout passed"
    if expires_at is None and timeouts.idle_expired(accessed, now):
        return "expired: idle timeout passed"
    return "active"


def cmd_sessions_show(args: argparse.Namespace) -> int:
    section, settings = load(args)
    config = session_config(section, settings)
    key, session_id = resolve_session(args.id, config)
    store = open_session_store(config, "read")
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
    shown = {
        "id": session_id,
        "store_key": key,
        "state": _state(config, created, accessed, record.expires_at, time.time()),
        "created": _when(created),
        "accessed": _when(accessed),
        "expires": _when(record.expires_at),
        "data": body.data,
        "flash": body.flash,
        "has_csrf_token": body.csrf is not None,
    }
    out(json.dumps(shown, indent=2, ensure_ascii=False))
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
            stream.write(f"\r{label} {frames[shown % len(frames)]} {int(time.monotonic() - started)} s")
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
    section, settings = load(args)
    config = session_config(section, settings)
    store = open_session_store(config, "purge")
    try:
        if config.store.type in SELF_EXPIRING:
            out(f"the {config.store.type} store expires sessions itself: nothing to purge")
            return 0
        removed = run_with_progress(store.purge_expired, "purging expired sessions")
    finally:
        store.close()
    out(f"removed {removed} expired session{'' if removed == 1 else 's'}")
    return 0


def add_commands(commands: Any) -> None:
    sessions = commands.add_parser("sessions", help="inspect and clean up stored sessions")
    session_commands = sessions.add_subparsers(title="commands", dest="sessions_command", metavar="COMMAND")
    sessions.set_defaults(handler=None, subparser=sessions)
    count = session_commands.add_parser("count", help="print how many sessions the store holds")
    ini_arguments(count)
    count.set_defaults(handler=cmd_sessions_count)
    show = session_commands.add_parser("show", help="print one session as JSON, without changing anything")
    show.add_argument("id", metavar="ID", help="the cookie's value (id.signature), the session id, or the store key")
    ini_arguments(show, operand="id")
    show.set_defaults(handler=cmd_sessions_show)
    purge = session_commands.add_parser("purge", help="remove expired sessions from the store")
    ini_arguments(purge)
    purge.set_defaults(handler=cmd_sessions_purge)
