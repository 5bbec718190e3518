"""Store outages are logged at most once per interval, not once per request."""

from __future__ import annotations

import logging

from ..clock import Clock

log = logging.getLogger("satchel")

OUTAGE_LOG_SECONDS = 5.0


class OutageLog:
    def __init__(self, clock: Clock, interval: float = OUTAGE_LOG_SECONDS) -> None:
        self.clock = clock
        self.interval = interval
        self._logged_at = float("-inf")

    def log(self, level: int, message: str, exc: Exception) -> None:
        now = self.clock()
        if now - self._logged_at >= self.interval:
            self._logged_at = now
            log.log(level, message, exc)
