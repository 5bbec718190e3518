"""The INI file may come first, as Pyramid's commands take it (``pshell app.ini``), or last."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from satchel.cli import main
from satchel.config import find_section, parse_session_settings, section_settings
from satchel.manager import SessionManager
from tests.support.apps import SECRET


@pytest.fixture
def ini(tmp_path: Path) -> Path:
    path = tmp_path / "app.ini"
    path.write_text(
        f"[app:main]\nsession.type = file\nsession.data_dir = {tmp_path / 'data'}\nsession.key = sid\n"
        f"session.secret = {SECRET}\n"
        "cache.regions = short_term\ncache.type = memory\ncache.short_term.expire = 60\n"
    )
    return path


def stored_cookie(ini: Path) -> str:
    manager = SessionManager(parse_session_settings(section_settings(find_section(ini))))
    session = manager.open(None)
    session["user"] = "ada"
    (header,) = manager.commit(session)
    manager.store.close()
    return header.split(";")[0].split("=", 1)[1]


def test_sessions_show_takes_the_file_first_or_last(capsys: pytest.CaptureFixture[str], ini: Path) -> None:
    cookie = stored_cookie(ini)
    shown = []
    # "--": a session id may start with "-", which argparse would take for an option.
    for argv in (["sessions", "show", "--", str(ini), cookie], ["sessions", "show", "--", cookie, str(ini)]):
        assert main(argv) == 0
        shown.append(json.loads(capsys.readouterr().out))
    assert shown[0] == shown[1]
    assert shown[0]["data"] == {"user": "ada"}


def test_cache_clear_takes_the_file_first_or_last(capsys: pytest.CaptureFixture[str], ini: Path) -> None:
    for argv in (["cache", "clear", str(ini), "nope"], ["cache", "clear", "nope", str(ini)]):
        assert main(argv) == 1
        assert "no cache region 'nope' (regions: short_term)" in capsys.readouterr().err


def test_a_missing_file_is_named_in_either_order(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.ini")
    for argv in (["sessions", "show", missing, "x" * 43], ["sessions", "show", "x" * 43, missing]):
        assert main(argv) == 1
        assert "missing.ini" in capsys.readouterr().err
