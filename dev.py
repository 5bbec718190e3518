#!/usr/bin/env python3
"""Set up and run satchel's chores with nothing but Python 3.

    python3 dev.py demo   # serve the demo app on http://127.0.0.1:6543 (file store)
    python3 dev.py test   # lint, type-check and run the whole test suite

Both create ``.venv`` and install the project with its extras the first time,
and again whenever pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".satchel-installed"


def run(*args: str | os.PathLike[str], **kwargs: object) -> int:
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.call([str(a) for a in args], cwd=ROOT, **kwargs)  # type: ignore[arg-type]


def ensure_env() -> None:
    if not (BIN / "python").exists():
        venv.create(VENV, with_pip=True)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    quiet = ["-q"] if os.environ.get("CI") else []
    if run(BIN / "python", "-m", "pip", "install", *quiet, "--upgrade", "pip") != 0:
        sys.exit("could not upgrade pip in .venv")
    if run(BIN / "python", "-m", "pip", "install", *quiet, "-e", ".[dev]") != 0:
        sys.exit("could not install satchel and its development extras into .venv")
    STAMP.write_text(wanted)


def demo() -> int:
    ensure_env()
    return run(BIN / "pserve", ROOT / "demo.ini")


def test(extra: list[str]) -> int:
    ensure_env()
    lint_paths = [p for p in ("src", "tests", "bench", "dev.py") if (ROOT / p).exists()]
    for step in (
        [BIN / "ruff", "check", *lint_paths],
        [BIN / "mypy"],
    ):
        if run(*step) != 0:
            return 1
    return run(BIN / "python", "-m", "pytest", *extra)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        return 2
    if argv[0] == "demo":
        return demo()
    return test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
