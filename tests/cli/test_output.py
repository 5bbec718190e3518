"""What the command prints into a pipe that its reader closes early (``| head``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from satchel.cli import EXIT_BROKEN_PIPE
from tests.support.apps import SECRET


def run_into_closed_pipe(*argv: str) -> tuple[int, str]:
    """The command's status and stderr when its stdout's reader has gone before it writes."""
    process = subprocess.Popen(
        [sys.executable, "-m", "satchel", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # long before the interpreter has started and imported satchel
    err = process.stderr.read()
    return process.wait(timeout=60), err


def test_secret_into_a_closed_pipe_ends_quietly() -> None:
    code, err = run_into_closed_pipe("secret")
    assert (code, err) == (EXIT_BROKEN_PIPE, "")


def test_sessions_show_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    ini = tmp_path / "app.ini"
    ini.write_text(
        f"[app:main]\nsession.type = file\nsession.data_dir = {tmp_path / 'data'}\nsession.secret = {SECRET}\n"
    )
    from satchel.config import find_section, parse_session_settings, section_settings
    from satchel.manager import SessionManager

    manager = SessionManager(parse_session_settings(section_settings(find_section(ini))))
    session = manager.open(None)
    session["notes"] = ["a note"] * 5000  # more than a pipe buffers
    (header,) = manager.commit(session)
    manager.store.close()
    cookie = header.split(";")[0].split("=", 1)[1]

    code, err = run_into_closed_pipe("sessions", "show", "--", cookie, str(ini))  # "--": an id may start with "-"
    assert (code, err) == (EXIT_BROKEN_PIPE, "")
