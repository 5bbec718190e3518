"""``max_records``: a bound on how many records the store may hold before new
sessions are served but not saved. Existing sessions, logins included, keep
working; expired records are purged when the bound is met, so the bound lifts by
itself once a flood's sessions expire."""

from __future__ import annotations

import logging

from ..clock import Clock
from .ops import Count, Purge, Steps

log = logging.getLogger("satchel")

#: How often the record count is refreshed from the store.
COUNT_REFRESH_SECONDS = 5.0


class RecordLimit:
    def __init__(self, cap: int | None, clock: Clock, store_name: str) -> None:
        self.cap = cap
        self.clock = clock
        self.store_name = store_name
        self._counted_at = float("-inf")
        self._known: int | None = None
        self._logged_at = float("-inf")
        self._purged_at = float("-inf")

    def room_for_new_session(self) -> Steps[bool]:
        """False once the store holds ``cap`` records (counted every few seconds)."""
        if self.cap is None:
            return True
        now = self.clock()
        if now - self._counted_at >= COUNT_REFRESH_SECONDS:
            self._known, self._counted_at = (yield Count()), now
            if self._known is None:
                log.warning("max_records cannot be enforced: the %s store cannot count its records", self.store_name)
                self.cap = None
                return True
        elif self._known is not None:
            self._known += 1
        if self._known is None or self._known < self.cap:
            return True
        if now - self._purged_at >= COUNT_REFRESH_SECONDS:
            self._purged_at = now
            yield Purge()
            self._known = yield Count()
            if self._known is None or self._known < self.cap:
                return True
        if now - self._logged_at >= COUNT_REFRESH_SECONDS:
            self._logged_at = now
            log.warning(
                "session store holds %d records, max_records is %d: new sessions are not being saved",
                self._known,
                self.cap,
            )
        return False
