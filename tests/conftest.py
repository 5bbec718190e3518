"""Fixtures many test modules share."""

from __future__ import annotations

import pytest

from satchel.config import parse_session_settings
from satchel.manager import SessionManager
from satchel.stores.memory import MemoryStore
from satchel.testing import FakeClock
from tests.support.apps import BASE_SETTINGS


@pytest.fixture
def clock() -> FakeClock:
    """A FakeClock to hand to stores and managers: tests move it instead of sleeping."""
    return FakeClock()


@pytest.fixture
def manager(clock: FakeClock) -> SessionManager:
    """Server-side sessions on a memory store, with every reader of time on ``clock``."""
    settings = parse_session_settings({**BASE_SETTINGS, "session.type": "memory"})
    return SessionManager(settings, MemoryStore(clock=clock), clock=clock)
