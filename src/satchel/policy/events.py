"""What the policy decided, told to whoever watches: metrics, traces, tests.

The policy calls an :class:`Observer` with a short event name and, for some
events, a reason. It never learns what the observer does with it, so the policy
stays free of any telemetry library. The default observer does nothing.
"""

from __future__ import annotations

from typing import Protocol

#: A conditional write found the record moved on (another request committed first).
CONFLICT = "conflict"
#: This request's changes were merged into the latest record and written.
MERGED = "merged"
#: A key both requests changed: this request's value won (last writer wins for that key).
OVERWRITTEN = "overwritten"
#: Conflicts kept coming until ``merge_retries`` was spent; SessionConflict was raised.
RETRIES_EXHAUSTED = "retries_exhausted"
CREATED = "created"
INVALIDATED = "invalidated"
REGENERATED = "regenerated"
#: Sessions ended by "log out everywhere" (one event per session).
REVOKED = "revoked"
#: A cookie or stored record refused; the reason says why ("bad signature", "corrupt record").
REFUSED = "refused"
#: A new anonymous session served but not saved: the store holds ``max_records``.
CAPPED = "capped"
#: The store could not be reached and ``on_store_error = fresh`` served an unsaved session.
OUTAGE = "outage"


class Observer(Protocol):
    def event(self, name: str, reason: str | None = None, *, count: int = 1) -> None:
        """``count`` decisions of the policy, by name; ``reason`` never holds an id or a secret."""


class Unobserved:
    """The observer of a policy nobody watches."""

    def event(self, name: str, reason: str | None = None, *, count: int = 1) -> None:
        pass


UNOBSERVED = Unobserved()
