"""Idle and absolute timeouts, and when a read-only request renews its session."""

from __future__ import annotations

from ..config import SessionConfig


class Timeouts:
    """The session lifetimes the settings ask for, as decisions at a given time."""

    def __init__(self, settings: SessionConfig) -> None:
        self.idle = settings.timeout
        self.absolute = settings.absolute_timeout
        self.renew_interval = settings.renew_interval

    def ttl(self, created: float, now: float) -> int | None:
        """How long a record written now should live: the idle timeout, cut short by the
        absolute one; None for no expiry."""
        if self.absolute is None:
            return self.idle
        remaining = max(1, int(created + self.absolute - now))
        return remaining if self.idle is None else min(self.idle, remaining)

    def past_absolute(self, created: float, now: float) -> bool:
        return self.absolute is not None and created + self.absolute <= now

    def idle_expired(self, accessed: float, now: float) -> bool:
        return self.idle is not None and accessed + self.idle <= now

    def renewal_due(self, last_renewal: float, now: float) -> bool:
        """Whether a request that changed nothing should extend the session now."""
        return self.renew_interval > 0 and now - last_renewal >= self.renew_interval
