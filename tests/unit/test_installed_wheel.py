"""satchel.testing works from an installed wheel, in a virtualenv of its own.

No network: the wheel is built with the setuptools of the running environment
(no build isolation), installed without dependencies, and the fresh environment
borrows pytest from the running one (after its own site-packages, so satchel
itself comes from the wheel).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CONTRACT_RUN = '''
import pytest
from satchel.stores.memory import MemoryStore
from satchel.testing import StoreContract


class TestInstalledMemoryStore(StoreContract):
    uses_clock = True

    @pytest.fixture
    def store(self, clock):
        store = MemoryStore(clock=clock)
        yield store
        store.close()
'''

IMPORTS = """
import sys
import satchel, satchel.manager
assert "pytest" not in sys.modules, "import satchel imported pytest"
from satchel.testing import FakeClock
assert "pytest" not in sys.modules, "the fake clock imported pytest"
from satchel.testing import StoreContract
assert "pytest" in sys.modules
print(satchel.__file__)
"""


def run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, timeout=300, **kwargs)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with satchel installed from a wheel of this tree."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # the build writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = tmp / "wheels"
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
    run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", wheels, source)
    [wheel] = wheels.glob("satchel-*.whl")
    env = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", env)
    python = env / "bin" / "python"
    run(*pip, "--python", python, "install", "--no-deps", "--no-index", "-q", wheel)
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    Path(site, "borrowed-pytest.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return env


def test_satchel_testing_imports_from_the_installed_wheel(venv: Path) -> None:
    result = run(venv / "bin" / "python", "-c", IMPORTS)
    assert result.stdout.strip().startswith(str(venv)), "satchel was not imported from the wheel"


def test_the_shipped_contract_runs_from_the_installed_wheel(venv: Path, tmp_path: Path) -> None:
    (tmp_path / "test_installed.py").write_text(textwrap.dedent(CONTRACT_RUN))
    result = run(venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", tmp_path, cwd=tmp_path)
    assert " passed" in result.stdout and "failed" not in result.stdout
