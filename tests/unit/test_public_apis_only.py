"""satchel uses its dependencies through their public APIs only.

A private module, attribute or method of a driver can change in any release and
hides satchel's commands from the instrumentation built on the driver's API; a
protocol spoken over our own sockets does both. The source is read as text, so a
private name in a ``getattr`` string counts as much as one in code.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "satchel"

DEPENDENCIES = (
    "redis",
    "pymemcache",
    "sqlalchemy",
    "dogpile",
    "cryptography",
    "webob",
    "pyramid",
    "starlette",
    "litestar",
    "flask",
)

#: Private names of the drivers that a store or cache backend might be tempted to reach.
PRIVATE_NAMES = (
    "_sock",
    "_parsers",
    "_safely_run_func",
    "_has_events",
    "_event_names",
    "_bind_processors",
    "_on_connect_isolation_level",
    "_invalidate",
    "c_make_encoder",
)

PRIVATE_API = [
    # A private module or attribute reached through a dependency's package: redis._parsers,
    # sqlalchemy.engine._x, import dogpile.cache._y (dunders such as __version__ are public).
    re.compile(rf"\b(?:{'|'.join(DEPENDENCIES)})(?:\.\w+)*\._(?!_)\w*"),
    # The named private attributes and functions, on whatever object they are reached.
    re.compile(rf"\b(?:{'|'.join(PRIVATE_NAMES)})\b"),
]

#: Modules that talk to servers, where a socket of our own would mean a protocol of our own.
SERVER_CLIENTS = ("stores", "cache")
OWN_SOCKETS = re.compile(r"^\s*(?:import socket\b|from socket import)", re.MULTILINE)



def sources(under: tuple[str, ...] = ()) -> list[object]:
    params: list[object] = []
    for path in sorted(SRC.rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        if not under or name.startswith(under):
            params.append(pytest.param(path, id=name))
    return params


@pytest.mark.parametrize("path", sources())
def test_no_private_name_of_a_dependency_appears_in_the_source(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = sorted({match.group(0) for pattern in PRIVATE_API for match in pattern.finditer(text)})
    assert found == [], f"{path.relative_to(SRC)} uses private API: {', '.join(found)}"


@pytest.mark.parametrize("path", sources(SERVER_CLIENTS))
def test_stores_and_cache_backends_open_no_sockets_of_their_own(path: Path) -> None:
    assert not OWN_SOCKETS.search(path.read_text(encoding="utf-8")), f"{path.relative_to(SRC)} imports socket"


def test_the_source_tree_is_where_the_checks_look() -> None:
    assert (SRC / "stores" / "base.py").is_file()
