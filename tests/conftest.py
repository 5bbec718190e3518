"""Fixtures many test modules share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from satchel.config import parse_session_settings
from satchel.manager import SessionManager
from satchel.stores.memory import MemoryStore
from satchel.testing import FakeClock
from tests.support.apps import BASE_SETTINGS


@pytest.fixture(scope="session", autouse=True)
def demos_leave_the_meter_provider_alone() -> Iterator[None]:
    """The demo app's ``main()`` sets OpenTelemetry's global meter provider when the
    Prometheus exporter is installed, and that provider is set once per process: here it
    would turn telemetry's ``auto`` on for every later test. Demos built in this process
    find the exporter missing (their /metrics says what to install);
    tests/ops/test_prometheus_endpoint.py serves the real /metrics in subprocesses."""
    try:
        import satchel.demo
    except ImportError:  # no Pyramid, no demo
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(satchel.demo, "optional_module", lambda name: None)
        yield


@pytest.fixture
def clock() -> FakeClock:
    """A FakeClock to hand to stores and managers: tests move it instead of sleeping."""
    return FakeClock()


@pytest.fixture
def manager(clock: FakeClock) -> SessionManager:
    """Server-side sessions on a memory store, with every reader of time on ``clock``."""
    settings = parse_session_settings({**BASE_SETTINGS, "session.type": "memory"})
    return SessionManager(settings, MemoryStore(clock=clock), clock=clock)
