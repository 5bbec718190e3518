"""Fixtures many test modules share."""

from __future__ import annotations

import pytest

from satchel.manager import SessionManager
from satchel.settings import parse_session_settings
from satchel.stores.memory import MemoryStore
from satchel.testing import FakeClock
from tests.support.apps import BASE_SETTINGS


@pytest.fixture
def clock() -> FakeClock:
    """A FakeClock to hand to stores and managers: tests move it instead of sleeping."""
    return FakeClock()


@pytest.fixture
def session_clock(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """``clock``, also as the time a new Session is stamped with: ``Session`` reads
    ``satchel.clock.system_clock`` for its creation time, which no injected clock
    reaches, and the absolute timeout counts from it."""
    monkeypatch.setattr("satchel.session.system_clock", clock)
    return clock


@pytest.fixture
def manager(session_clock: FakeClock) -> SessionManager:
    """Server-side sessions on a memory store, with every reader of time on ``session_clock``."""
    settings = parse_session_settings({**BASE_SETTINGS, "session.type": "memory"})
    return SessionManager(settings, MemoryStore(clock=session_clock), clock=session_clock)
