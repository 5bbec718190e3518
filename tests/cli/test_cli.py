"""The ``satchel`` command, run in-process with ``main(argv)`` and once as the installed script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from satchel.cli import main, run_with_progress
from satchel.codecs import store_key
from satchel.config import find_section, parse_session_settings, section_settings
from satchel.manager import SessionManager
from tests.support.apps import SECRET


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def ini(tmp_path: Path) -> Path:
    return write(
        tmp_path / "app.ini",
        f"""[DEFAULT]
debug = true

[app:main]
use = egg:myapp
session.type = file
session.data_dir = %(here)s/data/sessions/data
session.lock_dir = %(here)s/data/sessions/lock
session.key = sid
session.secret = {SECRET}
""",
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def manager_for(ini: Path) -> SessionManager:
    """The session manager the application builds from the same file."""
    return SessionManager(parse_session_settings(section_settings(find_section(ini))))


def new_session(manager: SessionManager, **data: Any) -> str:
    """Store a session as a request would; returns the cookie's value."""
    session = manager.open_request(None)
    session.update(data)
    session.flash("welcome")
    session.get_csrf_token()
    (header,) = manager.commit(session)
    return header.split(";")[0].split("=", 1)[1]


def record_path(ini: Path, key: str) -> Path:
    (path,) = (ini.parent / "data/sessions/data").glob(f"*/{key}")
    return path


# -- secret -------------------------------------------------------------------------------


def test_secret(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "secret")
    secret = out.strip()
    assert code == 0
    assert len(secret) == 64 and int(secret, 16) >= 0
    parse_session_settings({"session.secret": secret})  # strong enough for the parser
    assert run(capsys, "secret")[1].strip() != secret


# -- check -----------------------------------------------------------------------------------


def test_check_ok(capsys: pytest.CaptureFixture[str], ini: Path) -> None:
    code, out, err = run(capsys, "check", str(ini))
    assert code == 0, out + err
    assert f"[app:main] in {ini}" in out
    assert f"session: ok: file store at {ini.parent}/data/sessions/data" in out  # %(here)s resolved
    assert 'cookie "sid"' in out
    assert "warning" not in out and err == ""


def test_check_prints_warnings(capsys: pytest.CaptureFixture[str], ini: Path) -> None:
    write(ini, ini.read_text() + "session.encrypt_nonce_bits = 128\nsession.auto = false\n")
    code, out, err = run(capsys, "check", str(ini))
    assert code == 0
    assert "warning: session.encrypt_nonce_bits is ignored" in out
    assert "warning: session.auto = false" in out
    assert err == ""  # printed once, not also logged


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("session.secret = short", "session.secret is too weak"),
        ("session.timeout = soon", "session.timeout must be a whole number"),
        ("session.tiemout = 60", "did you mean session.timeout?"),
        ("session.data_serializer = pickle", "pickle is refused"),
    ],
)
def test_check_errors(capsys: pytest.CaptureFixture[str], ini: Path, line: str, message: str) -> None:
    text = ini.read_text().replace(f"session.secret = {SECRET}\n", "")
    write(ini, text + (line if "secret" in line else f"session.secret = {SECRET}\n{line}") + "\n")
    code, out, err = run(capsys, "check", str(ini))
    assert code == 1
    assert message in out
    assert "Traceback" not in out + err


def test_check_without_satchel_settings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ini = write(tmp_path / "plain.ini", "[app:main]\nuse = egg:myapp\n")
    code, out, _ = run(capsys, "check", str(ini))
    assert code == 1
    assert "no session.* or cache.* settings" in out


def test_user_errors_are_one_line(capsys: pytest.CaptureFixture[str], ini: Path, tmp_path: Path) -> None:
    code, _, err = run(capsys, "check", str(tmp_path / "missing.ini"))
    assert code == 1 and err == f"satchel: error: {tmp_path / 'missing.ini'}: no such file\n"
    code, _, err = run(capsys, "check", str(ini), "--section", "app:other")
    assert code == 1 and "has no [app:other] section (sections: [app:main])" in err
    broken = write(tmp_path / "broken.ini", "[app:main]\nsession.data_dir = %(nowhere)s/x\n")
    code, _, err = run(capsys, "check", str(broken))
    assert code == 1 and "session.data_dir" in err and "nowhere" in err
    garbage = write(tmp_path / "garbage.ini", "no section header\n")
    code, _, err = run(capsys, "check", str(garbage))
    assert code == 1 and "is not a valid INI file" in err


def test_check_finds_the_satchel_filter_in_a_pipeline(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ini = write(
        tmp_path / "pipeline.ini",
        f"""[DEFAULT]
session.secret = {SECRET}

[pipeline:main]
pipeline = satchel app

[filter:satchel]
use = egg:satchel
session.key = sid

[app:app]
use = egg:myapp
""",
    )
    code, out, _ = run(capsys, "check", str(ini))
    assert code == 0, out
    assert "[filter:satchel]" in out and 'cookie "sid"' in out
    write(ini, ini.read_text().replace("session.key = sid", "sesion.key = sid"))
    code, out, _ = run(capsys, "check", str(ini))
    assert code == 1 and "did you mean session.key?" in out


def test_check_reads_get_lines_like_paste_deploy(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ini = write(
        tmp_path / "get.ini",
        f"""[DEFAULT]
shared_secret = {SECRET}
session.key = ignored_in_the_app_section

[app:main]
get session.secret = shared_secret
session.key = ignored_too
""",
    )
    settings = section_settings(find_section(ini))
    # [DEFAULT] keys are global configuration; PasteDeploy drops a section key that repeats one.
    assert settings == {"session.secret": SECRET}
    code, out, _ = run(capsys, "check", str(ini))
    assert code == 0 and 'cookie "beaker.session.id"' in out


def test_check_with_cache_settings(capsys: pytest.CaptureFixture[str], ini: Path) -> None:
    write(ini, ini.read_text() + "cache.regions = short_term\ncache.type = memory\ncache.short_term.expire = 60\n")
    code, out, _ = run(capsys, "check", str(ini))
    assert code == 0, out
    assert "cache: ok: regions short_term" in out


# -- sessions count / show / purge ----------------------------------------------------------


def test_sessions_count(capsys: pytest.CaptureFixture[str], ini: Path) -> None:
    code, _, err = run(capsys, "sessions", "count", str(ini))
    assert code == 1 and "data/sessions/data does not exist" in err
    assert not (ini.parent / "data").exists()  # a typo in data_dir creates nothing
    manager = manager_for(ini)
    assert run(capsys, "sessions", "count", str(ini))[:2] == (0, "0\n")
    new_session(manager, user="alice")
    new_session(manager, user="bob")
    assert run(capsys, "sessions", "count", str(ini))[:2] == (0, "2\n")


def test_sessions_show(capsys: pytest.CaptureFixture[str], ini: Path) -> None:
    manager = manager_for(ini)
    cookie = new_session(manager, user="alice", cart=[1, 2])
    session_id = manager.policy.signer.unsign(cookie)
    assert session_id is not None
    path = record_path(ini, store_key(session_id))
    before = (path.read_bytes(), path.stat().st_mtime)

    # "--" throughout: a session id may start with "-", which argparse would take for an option.
    code, out, err = run(capsys, "sessions", "show", "--", cookie, str(ini))
    assert code == 0, err
    shown = json.loads(out)
    assert shown["id"] == session_id
    assert shown["store_key"] == store_key(session_id)
    assert shown["state"] == "active"
    assert shown["data"] == {"user": "alice", "cart": [1, 2]}
    assert shown["flash"] == {"": ["welcome"]}
    assert shown["has_csrf_token"] is True
    loaded = manager.load(session_id)
    assert loaded is not None and loaded.get_csrf_token() not in out  # the token itself is never printed
    assert shown["created"].endswith("+00:00") and shown["expires"] is not None

    # The same session by bare id, by store key, and as a browser shows the cookie.
    for ident in (session_id, store_key(session_id), f"sid={cookie}", f'other=1; sid="{cookie}"'):
        code, out, _ = run(capsys, "sessions", "show", "--", ident, str(ini))
        assert code == 0 and json.loads(out)["data"]["user"] == "alice"
    assert (path.read_bytes(), path.stat().st_mtime) == before  # showing changed nothing


def test_sessions_show_refuses_what_it_cannot_trust(capsys: pytest.CaptureFixture[str], ini: Path) -> None:
    manager = manager_for(ini)
    cookie = new_session(manager, user="alice")
    session_id, _, signature = cookie.rpartition(".")
    forged = f"{session_id}.{'A' * len(signature)}"
    code, _, err = run(capsys, "sessions", "show", "--", forged, str(ini))
    assert code == 1 and "signature does not match session.secret" in err
    code, _, err = run(capsys, "sessions", "show", "x" * 43, str(ini))
    assert code == 1 and "no such session" in err
    code, _, err = run(capsys, "sessions", "show", "../../etc/passwd", str(ini))
    assert code == 1 and "is not a session id" in err
    code, _, err = run(capsys, "sessions", "show", "other=1", str(ini))
    assert code == 1 and "holds no sid cookie" in err


def test_sessions_show_corrupt_record_is_reported_not_removed(capsys: pytest.CaptureFixture[str], ini: Path) -> None:
    manager = manager_for(ini)
    cookie = new_session(manager, user="alice")
    session_id = manager.policy.signer.unsign(cookie)
    assert session_id is not None
    path = record_path(ini, store_key(session_id))
    header, _, _ = path.read_bytes().partition(b"\n")
    path.write_bytes(header + b"\nS1 not a record")
    os.utime(path, (time.time() + 600, time.time() + 600))
    code, _, err = run(capsys, "sessions", "show", "--", cookie, str(ini))
    assert code == 1 and "cannot be decoded" in err
    assert path.exists()


def test_sessions_purge(capsys: pytest.CaptureFixture[str], ini: Path) -> None:
    manager = manager_for(ini)
    keep = manager.policy.signer.unsign(new_session(manager, user="alice"))
    drop = manager.policy.signer.unsign(new_session(manager, user="bob"))
    assert keep is not None and drop is not None
    past = time.time() - 10
    os.utime(record_path(ini, store_key(drop)), (past, past))  # the file store's expiry is the mtime
    code, out, _ = run(capsys, "sessions", "purge", str(ini))
    assert (code, out) == (0, "removed 1 expired session\n")
    assert run(capsys, "sessions", "count", str(ini))[1] == "1\n"
    assert manager.load(keep) is not None
    assert run(capsys, "sessions", "purge", str(ini))[1] == "removed 0 expired sessions\n"


@pytest.mark.parametrize("command", [["count"], ["purge"], ["show", "x" * 43]])
@pytest.mark.parametrize(
    ("kind", "message"), [("memory", "inside each application process"), ("cookie", "there is no store")]
)
def test_sessions_commands_refuse_stores_they_cannot_see(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str], kind: str, message: str
) -> None:
    ini = write(tmp_path / "app.ini", f"[app:main]\nsession.type = {kind}\nsession.secret = {SECRET}\n")
    code, _, err = run(capsys, "sessions", *command, str(ini))
    assert code == 1 and message in err
    code, out, _ = run(capsys, "check", str(ini))
    assert code == 0 and ("memory store" if kind == "memory" else "in the cookie") in out


def test_sessions_command_without_session_settings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ini = write(tmp_path / "plain.ini", "[app:main]\nuse = egg:myapp\n")
    code, _, err = run(capsys, "sessions", "count", str(ini))
    assert code == 1 and "has no session.* settings" in err


def test_run_with_progress_returns_and_raises() -> None:
    assert run_with_progress(lambda: 42, "working", after=0.01) == 42

    def fail() -> int:
        time.sleep(0.05)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_with_progress(fail, "working", after=0.01)


def test_progress_shows_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import pty

    leader, follower = pty.openpty()
    def slow() -> int:
        time.sleep(0.6)
        return 7

    with os.fdopen(follower, "w") as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        assert run_with_progress(slow, "purging expired sessions", after=0.05) == 7
    chunks = []
    while True:  # everything the terminal got; the follower is closed, so this ends
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: nothing more to read
            break
        if not chunk:
            break
        chunks.append(chunk)
    shown = b"".join(chunks).decode()
    os.close(leader)
    assert "\rpurging expired sessions |" in shown
    assert shown.endswith("\r\x1b[K")


# -- cache clear --------------------------------------------------------------------------------


def test_cache_clear_needs_cache_settings(capsys: pytest.CaptureFixture[str], ini: Path) -> None:
    code, _, err = run(capsys, "cache", "clear", "short_term", str(ini))
    assert code == 1 and "has no cache.* settings" in err


def test_cache_clear_reaches_other_processes(capsys: pytest.CaptureFixture[str], ini: Path) -> None:
    """A region built elsewhere (another process, here another set of regions) sees the clear."""
    import secrets

    from dogpile.cache.api import NO_VALUE

    from satchel.cache import regions_from_settings
    from tests.support import services

    services.need_port("127.0.0.1", 6379, "Redis")
    namespace = secrets.token_hex(4)
    cache = (
        f"cache.regions = short_term\ncache.type = ext:redis\ncache.url = {services.REDIS_URL}\n"
        f"cache.short_term.expire = 60\ncache.short_term.key_prefix = t{namespace}:\n"
    )
    write(ini, ini.read_text() + cache)
    from satchel.config import find_section, section_settings

    settings = section_settings(find_section(str(ini), None))
    elsewhere = regions_from_settings(settings)["short_term"]
    elsewhere.set("answer", 42)
    assert elsewhere.get("answer") == 42
    code, out, err = run(capsys, "cache", "clear", "short_term", str(ini))
    assert code == 0, err
    assert "cleared cache region short_term" in out
    assert elsewhere.get("answer") is NO_VALUE


def test_cache_clear_unknown_region(capsys: pytest.CaptureFixture[str], ini: Path) -> None:
    write(ini, ini.read_text() + "cache.regions = short_term\ncache.type = memory\ncache.short_term.expire = 60\n")
    code, _, err = run(capsys, "cache", "clear", "nope", str(ini))
    assert code == 1 and "no cache region 'nope' (regions: short_term)" in err


# -- the command line itself ---------------------------------------------------------------------


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["sessions"]) == 2
    assert "count" in capsys.readouterr().err
    assert main(["sessions", "show", "only-an-id"]) == 2
    assert main(["--help"]) == 0
    assert "check" in capsys.readouterr().out


def test_installed_script(ini: Path) -> None:
    script = Path(sys.executable).parent / "satchel"
    if not script.exists():
        pytest.skip(f"{script} is not installed (pip install -e .)")
    result = subprocess.run([str(script), "check", str(ini)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "session: ok" in result.stdout
    result = subprocess.run([str(script), "check", str(ini) + ".missing"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("satchel: error:") and "Traceback" not in result.stderr


def test_sessions_purge_on_a_self_expiring_store(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from urllib.parse import urlsplit

    from tests.support.services import REDIS_URL, need_port

    address = urlsplit(REDIS_URL)
    need_port(address.hostname or "127.0.0.1", address.port or 6379, "Redis")
    ini = write(
        tmp_path / "redis.ini",
        f"[app:main]\nsession.type = ext:redis\nsession.url = {REDIS_URL}\nsession.secret = {SECRET}\n",
    )
    code, out, _ = run(capsys, "sessions", "purge", str(ini))
    assert (code, out) == (0, "the redis store expires sessions itself: nothing to purge\n")


def test_sessions_count_does_not_create_a_missing_sql_table(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import sqlalchemy as sa

    from tests.support.apps import SECRET

    db = tmp_path / "s.db"
    ini = write(
        tmp_path / "app.ini",
        f"[app:main]\nsession.secret = {SECRET}\nsession.type = ext:database\n"
        f"session.url = sqlite:///{db}\nsession.table_name = typo_sessions\n",
    )
    code, _, err = run(capsys, "sessions", "count", str(ini))
    assert code == 1 and "typo_sessions does not exist" in err
    engine = sa.create_engine(f"sqlite:///{db}")
    assert not sa.inspect(engine).has_table("typo_sessions")
    engine.dispose()


def test_check_and_clear_do_not_create_a_missing_cache_dir(
    capsys: pytest.CaptureFixture[str], ini: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-cache"
    write(ini, ini.read_text() + f"cache.regions = short\ncache.type = file\ncache.data_dir = {missing}\n")
    code, out, _ = run(capsys, "check", str(ini))
    assert code == 1 and "does not exist" in out
    code, _, err = run(capsys, "cache", "clear", "short", str(ini))
    assert code == 1 and "does not exist" in err
    assert not missing.exists()


def test_check_never_shows_a_password_holding_at_signs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[app:main]\nsession.type = ext:redis\nsession.url = redis://user:p@ss@w0rd@127.0.0.1:1/0\n"
        f"session.secret = {SECRET}\n"
    )
    main(["check", str(ini)])
    shown = capsys.readouterr()
    assert "ss@w0rd" not in shown.out + shown.err and "redis://***@127.0.0.1:1/0" in shown.out


def test_check_never_echoes_a_secret_holding_a_percent_sign(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    secret = "9f%xK2mQ7v%Lp4Zr8Tc3Wn6Yb1Hd5Jg0Fs2Ea7"
    ini = tmp_path / "app.ini"
    ini.write_text(f"[app:main]\nsession.type = memory\nsession.secret = {secret}\n")
    assert main(["check", str(ini)]) != 0
    shown = capsys.readouterr()
    assert "'%' in the value must be written '%%'" in shown.err
    assert "xK2mQ7v" not in shown.out + shown.err
