"""A flood of refused cookies costs a bounded volume of log: a few lines per
interval in full, then one summary line with the count by reason."""

from __future__ import annotations

import logging

import pytest

from satchel.config import parse_session_settings
from satchel.manager import SessionManager
from satchel.stores.memory import MemoryStore
from satchel.throttled import ThrottledLog
from tests.support.apps import SECRET


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_events_past_the_examples_are_counted_and_summarised(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = ThrottledLog(logging.getLogger("satchel.security"), "cookies refused", interval=60, examples=2, clock=clock)
    with caplog.at_level(logging.INFO, logger="satchel.security"):
        for n in range(10):
            log.event(logging.WARNING, "bad signature" if n % 2 else "expired", "refused %d", n)
        assert [r.getMessage() for r in caplog.records] == ["refused 0", "refused 1"]
        clock.now += 61
        log.event(logging.WARNING, "bad signature", "refused %d", 10)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[2] == "8 more cookies refused in the last 61 s (bad signature: 4, expired: 4)"
    assert messages[3] == "refused 10"


def test_a_flood_of_forged_cookies_writes_a_few_lines(caplog: pytest.LogCaptureFixture) -> None:
    manager = SessionManager(parse_session_settings({"session.secret": SECRET, "session.key": "sid"}), MemoryStore())
    with caplog.at_level(logging.INFO, logger="satchel.security"):
        for n in range(1000):
            assert manager.open_request(f"sid=forged{n}.signature").new
    assert len([r for r in caplog.records if r.name == "satchel.security"]) <= 3
