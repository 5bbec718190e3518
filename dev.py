#!/usr/bin/env python3
"""Set up and run satchel's chores with nothing but Python 3.

    python3 dev.py demo   # serve the demo app on http://127.0.0.1:6543 (file store)
    python3 dev.py test   # lint, type-check, build the docs and run the test suite
    python3 dev.py docs   # build the documentation site into build/docs

Each creates ``.venv`` the first time and installs what it needs there: the demo
only satchel with Pyramid, dogpile.cache and waitress, the others requirements-dev.txt.
They install again whenever pyproject.toml or requirements-dev.txt changes.
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
DOCS_OUT = ROOT / "build" / "docs"

#: What each chore installs, and the line that says so while it happens.
SETUPS = {
    "demo": (["-e", ".[demo]"], "satchel with Pyramid, dogpile.cache and waitress"),
    "dev": (["-r", "requirements-dev.txt"], "satchel with every extra and the development tools"),
}


def run(*args: str | os.PathLike[str], quiet: bool = False) -> int:
    if not quiet:
        print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.call([str(a) for a in args], cwd=ROOT)


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "requirements-dev.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_env(setup: str) -> None:
    """Install ``setup`` into .venv unless it already is, for these very files."""
    stamp = VENV / f".satchel-{setup}"
    wanted = _fingerprint()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    if setup == "demo" and (VENV / ".satchel-dev").exists() and (VENV / ".satchel-dev").read_text() == wanted:
        return  # the development setup holds everything the demo needs
    args, what = SETUPS[setup]
    print(f"Installing {what} into .venv (first run, or the requirements changed)...", flush=True)
    if not (BIN / "python").exists():
        venv.create(VENV, with_pip=True)
    # -qq: pip's errors only; its exit status says whether the install worked.
    pip = [BIN / "python", "-m", "pip", "install", "-qq", "--disable-pip-version-check"]
    if run(*pip, *args, quiet=True) != 0:
        sys.exit(f"could not install {what} into .venv")
    stamp.write_text(wanted)


def demo() -> int:
    ensure_env("demo")
    return run(BIN / "pserve", ROOT / "demo.ini")


def docs() -> int:
    """The documentation site; a warning (a broken reference, a name left out) fails the build."""
    ensure_env("dev")
    return run(BIN / "sphinx-build", "-W", "--keep-going", "-q", "-b", "html", ROOT / "docs", DOCS_OUT)


def test(extra: list[str]) -> int:
    ensure_env("dev")
    lint_paths = [p for p in ("src", "tests", "bench", "docs", "dev.py") if (ROOT / p).exists()]
    for step in (
        [BIN / "ruff", "check", *lint_paths],
        [BIN / "mypy"],
    ):
        if run(*step) != 0:
            return 1
    if docs() != 0:
        return 1
    return run(BIN / "python", "-m", "pytest", *extra)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "docs"):
        print(__doc__)
        return 2
    if argv[0] == "demo":
        return demo()
    if argv[0] == "docs":
        return docs()
    return test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
