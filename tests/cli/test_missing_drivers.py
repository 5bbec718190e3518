"""Every command turns a driver that is not installed into the line that installs it.

Each case runs the command in a fresh interpreter where the driver's package
cannot be imported, as on a machine where its extra was never installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.apps import SECRET

RUNNER = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None  # "import name" now fails as if it were not installed
from satchel.cli import main
sys.exit(main(sys.argv[2:]))
"""

SESSION = {
    "sql": "session.type = ext:database\nsession.url = sqlite:///{here}/s.db\n",
    "redis": "session.type = ext:redis\nsession.url = redis://127.0.0.1:1/0\n",
    "memcached": "session.type = ext:memcached\nsession.url = 127.0.0.1:1\n",
    "cookie": "session.type = cookie\nsession.encrypt_key = " + SECRET + "\n",
}
CACHE = {
    "sql": "cache.type = ext:database\ncache.url = sqlite:///{here}/c.db\n",
    "redis": "cache.type = ext:redis\ncache.url = redis://127.0.0.1:1/0\n",
    "memcached": "cache.type = ext:memcached\ncache.url = 127.0.0.1:1\n",
}
MODULE = {"sql": "sqlalchemy", "redis": "redis", "memcached": "pymemcache", "cookie": "cryptography"}
EXTRA = {"sql": "sql", "redis": "redis", "memcached": "memcached", "cookie": "cookie"}


def satchel_without(module: str, *argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", RUNNER, module, *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def write_ini(tmp_path: Path, session: str, cache: str = "") -> Path:
    ini = tmp_path / "app.ini"
    cache_lines = f"cache.regions = short_term\ncache.short_term.expire = 60\n{cache}" if cache else ""
    ini.write_text(f"[app:main]\nsession.secret = {SECRET}\n{session}{cache_lines}".format(here=tmp_path))
    return ini


@pytest.mark.parametrize("kind", sorted(SESSION))
@pytest.mark.parametrize("command", [["check"], ["sessions", "count"], ["sessions", "purge"]])
def test_session_commands_name_the_missing_driver(tmp_path: Path, kind: str, command: list[str]) -> None:
    ini = write_ini(tmp_path, SESSION[kind])
    result = satchel_without(MODULE[kind], *command, str(ini))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f'pip install "satchel[{EXTRA[kind]}]"' in result.stdout + result.stderr


@pytest.mark.parametrize("kind", sorted(CACHE))
@pytest.mark.parametrize("command", [["check"], ["cache", "clear", "short_term"]])
def test_cache_commands_name_the_missing_driver(tmp_path: Path, kind: str, command: list[str]) -> None:
    ini = write_ini(tmp_path, "session.type = memory\n", CACHE[kind])
    result = satchel_without(MODULE[kind], *command, str(ini))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    expected = f'cache region short_term (type {kind}) needs {MODULE[kind]}: pip install "satchel[{EXTRA[kind]}]"'
    assert expected in result.stdout + result.stderr


def test_cache_commands_without_dogpile(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "session.type = memory\n", "cache.type = memory\n")
    for command in (["check"], ["cache", "clear", "short_term"]):
        result = satchel_without("dogpile", *command, str(ini))
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert 'pip install "satchel[cache]"' in result.stdout + result.stderr


def test_check_warns_about_a_misspelled_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from satchel.cli import main

    ini = write_ini(tmp_path, "sesion.type = file\n")
    assert main(["check", str(ini)]) == 0
    out = capsys.readouterr().out
    assert "session: ok: memory store" in out
    assert "warning: setting sesion.type is ignored: did you mean session.type?" in out
