"""Every type a session holds comes back identical on every store and in cookie
mode: stored in one request, read in the next, ``==`` and ``type()`` alike, also
as a flash message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from satchel.config import parse_session_settings
from satchel.manager import SessionManager
from tests.support.apps import BASE_SETTINGS, MANAGER_MODES, Browser
from tests.support.values import EXACT_VALUES, exactly


@pytest.fixture
def store_manager(store_settings: dict[str, Any]) -> Iterator[SessionManager]:
    manager = SessionManager(parse_session_settings({**BASE_SETTINGS, **store_settings}))
    yield manager
    manager.close()


@pytest.fixture
def cookie_manager() -> SessionManager:
    return SessionManager(parse_session_settings({**BASE_SETTINGS, **MANAGER_MODES["cookie"]}))


def read_back_differently(manager: SessionManager) -> list[str]:
    """The kinds of EXACT_VALUES that do not come back identical, as values and as flash messages."""
    wrong = []
    for name, value in EXACT_VALUES.items():
        browser = Browser(manager)
        browser.request(lambda s, v=value: s.__setitem__("v", v))
        browser.request(lambda s, v=value: s.flash(v))
        read, flashed = browser.request(lambda s: (s["v"], s.pop_flash()))
        if not exactly(read, value):
            wrong.append(f"{name}: stored {value!r}, read {read!r}")
        if len(flashed) != 1 or not exactly(flashed[0], value):
            wrong.append(f"{name} as a flash message: flashed {value!r}, popped {flashed!r}")
    return wrong


def test_every_type_reads_back_identical_on_every_store(store_manager: SessionManager) -> None:
    assert read_back_differently(store_manager) == []


def test_every_type_reads_back_identical_in_cookie_sessions(cookie_manager: SessionManager) -> None:
    assert read_back_differently(cookie_manager) == []
