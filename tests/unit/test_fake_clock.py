"""The FakeClock, and sessions whose every reader of time is on it."""

from __future__ import annotations

from satchel.clock import Clock
from satchel.manager import SessionManager
from satchel.testing import FakeClock
from tests.support.apps import Browser


def test_the_clock_stands_still_at_a_fixed_realistic_time() -> None:
    clock: Clock = FakeClock()
    assert clock() == clock() == FakeClock()()
    assert 1.6e9 < clock() < 2e9


def test_advance_moves_the_clock_either_way() -> None:
    clock = FakeClock(1000.0)
    assert clock.advance(60) == 1060.0
    assert clock() == 1060.0
    clock.advance(-0.5)
    assert clock() == 1059.5


def test_new_sessions_are_stamped_with_the_fake_time(manager: SessionManager, clock: FakeClock) -> None:
    clock.advance(42)
    session = manager.open_request(None)
    assert session.created == session.accessed == clock()


def test_an_idle_session_expires_without_anyone_sleeping(manager: SessionManager, clock: FakeClock) -> None:
    visitor = Browser(manager)
    visitor.request(lambda session: session.__setitem__("count", 1))
    clock.advance(1199)  # one second inside the idle timeout; past the renew interval
    assert visitor.request(lambda session: session.get("count")) == 1
    clock.advance(1199)  # inside the timeout again, counted from the renewal
    assert visitor.request(lambda session: session.get("count")) == 1
    clock.advance(1201)
    assert visitor.request(lambda session: session.get("count")) is None
