"""Log lines an attacker cannot multiply: a few lines per interval, then a count.

A flood of bad cookies (or of anything else a client can cause) must cost a
bounded volume of log, not one line per request. Each :class:`ThrottledLog`
writes the first ``examples`` events of an interval as they come, counts the
rest, and writes one summary line (how many, by reason) when the next event
arrives after the interval has passed.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from .clock import Clock, system_clock

#: Seconds over which events are aggregated.
INTERVAL = 60.0
#: Events written in full at the start of each interval.
EXAMPLES = 3


class ThrottledLog:
    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        interval: float = INTERVAL,
        examples: int = EXAMPLES,
        clock: Clock = system_clock,
    ) -> None:
        self.logger = logger
        #: What the events are, for the summary line ("session cookies refused").
        self.what = what
        self.interval = interval
        self.examples = examples
        self.clock = clock
        self._lock = threading.Lock()
        self._started = float("-inf")
        self._written = 0
        self._held: Counter[str] = Counter()

    def event(self, level: int, reason: str, message: str, *args: object) -> None:
        """Record one event; ``reason`` is the short label it is counted under."""
        now = self.clock()
        with self._lock:
            summary = None
            if now - self._started >= self.interval:
                if self._held:
                    summary = (sum(self._held.values()), dict(self._held), now - self._started)
                self._started, self._written, self._held = now, 0, Counter()
            write = self._written < self.examples
            if write:
                self._written += 1
            else:
                self._held[reason] += 1
        if summary is not None:
            count, reasons, seconds = summary
            by_reason = ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items()))
            self.logger.warning("%d more %s in the last %.0f s (%s)", count, self.what, seconds, by_reason)
        if write:
            self.logger.log(level, message, *args)
