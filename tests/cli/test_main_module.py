"""``python -m satchel`` is the satchel command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import satchel

SRC = str(Path(satchel.__file__).resolve().parent.parent)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "satchel", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_python_m_satchel_prints_a_secret() -> None:
    result = run("secret")
    assert result.returncode == 0
    assert re.fullmatch(r"[0-9a-f]{64}\n", result.stdout)


def test_python_m_satchel_reports_errors_and_exit_status(tmp_path: Path) -> None:
    result = run("check", str(tmp_path / "missing.ini"))
    assert result.returncode == 1
    assert "missing.ini: no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_python_m_satchel_without_a_command_shows_the_usage() -> None:
    result = run()
    assert result.returncode == 2
    assert "commands" in result.stderr
