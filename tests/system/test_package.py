"""The package as published: what the wheel holds, and what installing it pulls in."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("build")
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    (built,) = out.glob("satchel-*.whl")
    return built


def test_wheel_holds_only_the_satchel_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"satchel", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "satchel/py.typed" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


def test_wheel_metadata_requires_nothing_without_extras(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    (metadata_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    metadata = Parser().parsestr(archive.read(metadata_name).decode())
    import satchel

    assert metadata["Version"] == satchel.__version__
    assert all("extra ==" in requirement for requirement in metadata.get_all("Requires-Dist", []))
    assert "dev" not in (metadata.get_all("Provides-Extra") or [])
    assert "Typing :: Typed" in metadata.get_all("Classifier", [])


def test_wheel_installs_into_a_clean_venv_without_any_package_index(wheel: Path, tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--no-index", "--disable-pip-version-check", "-q", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze", "--exclude", "pip", "--exclude", "setuptools"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.split()
    assert [line.split("==")[0] for line in listed] == ["satchel"]
    check = "import satchel, satchel.testing, satchel.wsgi; print(satchel.__version__)"
    shown = subprocess.run([str(python), "-c", check], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == wheel.name.split("-")[1]


def test_distribution_passes_twine_check(wheel: Path) -> None:
    pytest.importorskip("twine")
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
