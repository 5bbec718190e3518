"""The asynchronous session manager: the same policy, driven with ``await``.

:func:`run` is :func:`satchel.manager.run` with ``await`` around each store
operation; the rules (opening, timeouts, conflicts and merging, the user index,
cookie mode) are the policy's, shared with the sync manager.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..clock import Clock, system_clock
from ..config import SessionConfig
from ..errors import ConfigurationError
from ..manager import WRITE_LOCK_STRIPES, beaker_reader, observed_policy, opened, write_stripe
from ..manager import run as run_without_io
from ..policy.cookie import CookieSessions
from ..policy.ops import STORE_OPS, Done, Op, Pause, ReadBeaker, Steps, advance
from ..policy.server import Moved, ServerSessions
from ..session import Session
from ..stores.aio import AsyncStore, open_async_store

if TYPE_CHECKING:
    from ..beaker.readers import BeakerReader
    from ..telemetry import SessionTelemetry, Timer

T = TypeVar("T")


async def perform(store: AsyncStore, op: Op, beaker: BeakerReader | None = None) -> Any:
    """Carry out one operation on an async store (Beaker's records, read while the
    transition from Beaker is on, are read in a worker thread)."""
    if isinstance(op, STORE_OPS):
        return await op.call(store)
    if isinstance(op, Pause):
        return await asyncio.sleep(op.seconds)
    if beaker is None:
        raise RuntimeError(f"no reader of Beaker's records was configured, but the policy asked for {op!r}")
    action = beaker.load if isinstance(op, ReadBeaker) else beaker.delete
    return await asyncio.to_thread(action, op.beaker_id)


async def run(
    store: AsyncStore | None, steps: Steps[T], timer: Timer | None = None, beaker: BeakerReader | None = None
) -> T:
    """Drive a policy step to its result on an async store (see :func:`satchel.manager.run`)."""
    reply: Any = None
    failure: BaseException | None = None
    while not isinstance(op := advance(steps, reply, failure), Done):
        if store is None:
            raise RuntimeError(f"session.type = cookie keeps no store, but the policy asked for {op!r}")
        try:
            if timer is None:
                reply = await perform(store, op, beaker)
            else:
                reply = await timer.perform_async(perform, store, op, beaker)
            failure = None
        except Exception as exc:  # noqa: BLE001 - thrown into the policy, which decides what it means
            reply, failure = None, exc
    return op.value


class AsyncSessionManager:
    """:class:`satchel.manager.SessionManager` for an event loop: the same methods, awaited."""

    def __init__(
        self,
        settings: SessionConfig,
        store: AsyncStore | None = None,
        session_class: type[Session] = Session,
        *,
        clock: Clock = system_clock,
        telemetry: SessionTelemetry | None = None,
    ) -> None:
        """``telemetry``: as :class:`satchel.manager.SessionManager`'s."""
        self.settings = settings
        self.session_class = session_class
        self.policy: ServerSessions | CookieSessions
        if settings.client_side:
            if store is not None:
                raise ConfigurationError("session.type = cookie keeps no server-side store; do not pass one")
            self.store: AsyncStore | None = None
        else:
            self.store = store if store is not None else open_async_store(settings.store, clock=clock)
        self.telemetry, self.policy = observed_policy(settings, clock, session_class, self.store, telemetry)
        #: Reads Beaker's records while ``session.beaker_transition`` is on.
        self.beaker = beaker_reader(settings)
        # A lock belongs to the loop it first waits on: one set of stripes per loop.
        self._write_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )

    def needs_store(self, cookie_header: str | None) -> bool:
        """Whether opening the session for this ``Cookie`` header may need the store:
        never in cookie mode or without the session cookie's name in the header."""
        return self.store is not None and bool(cookie_header) and self.settings.cookie.name in str(cookie_header)

    def open_without_io(self, cookie_header: str | None) -> Session:
        """The session for a request that :meth:`needs_store` says needs no store."""
        return run_without_io(None, self.policy.open_request(cookie_header))

    async def open_request(self, cookie_header: str | None) -> Session:
        """The session for a request, given its raw ``Cookie`` header."""
        return await self._open(self.policy.open_request(cookie_header))

    async def open(self, cookie_value: str | None) -> Session:
        """The session the cookie value names, or a fresh one (never adopting the client's id)."""
        return await self._open(self.policy.open(cookie_value))

    async def _open(self, steps: Steps[Session]) -> Session:
        return await self._observed("open", steps, opened)

    async def _observed(self, span: str, steps: Steps[T], outcome: Callable[[T], str] | None = None) -> T:
        """:meth:`satchel.manager.SessionManager._observed`, awaited."""
        telemetry = self.telemetry
        if telemetry is None:
            return await run(self.store, steps, beaker=self.beaker)
        if not telemetry.tracing():
            return await run(self.store, steps, telemetry, self.beaker)
        with telemetry.span(span) as trip:
            result = await run(self.store, steps, trip, self.beaker)
            if outcome is not None:
                trip.outcome = outcome(result)
            return result

    async def load(self, session_id: str) -> Session | None:
        """The stored session for a verified id, or None (server-side sessions only)."""
        if not isinstance(self.policy, ServerSessions):
            raise NotImplementedError("session.type = cookie keeps no sessions to load by id")
        try:
            return await run(self.store, self.policy.load(session_id))
        except Moved:
            return None

    def _lock(self, stripe: int) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        stripes = self._write_locks.get(loop)
        if stripes is None:
            stripes = self._write_locks[loop] = [asyncio.Lock() for _ in range(WRITE_LOCK_STRIPES)]
        return stripes[stripe]

    async def commit(self, session: Session, secure_request: bool = False) -> list[str]:
        """Persist what the request changed; return the Set-Cookie headers to send."""
        steps = self.policy.commit(session, secure_request)
        stripe = write_stripe(self.store, session)
        if stripe is None:
            return await self._observed("commit", steps)
        async with self._lock(stripe):
            return await self._observed("commit", steps)

    async def discard(self, session: Session, secure_request: bool = False) -> list[str]:
        """Drop the request's changes but carry out its ``invalidate()`` calls."""
        return await run(self.store, self.policy.discard(session, secure_request))

    async def user_sessions(self, user_id: str | int) -> list[dict[str, Any]]:
        """The user's live sessions: store key (a hash, not the id), created and accessed times."""
        return await run(self.store, self.policy.user_sessions(user_id))

    async def revoke_user_sessions(self, user_id: str | int, keep: Session | None = None) -> int:
        """Delete every session of the user ("log out everywhere"), except ``keep``."""
        return await run(self.store, self.policy.revoke_user_sessions(user_id, keep))

    async def close(self) -> None:
        """Release the store's connections."""
        if self.store is not None:
            await self.store.close()
        if self.beaker is not None:
            await asyncio.to_thread(self.beaker.close)
