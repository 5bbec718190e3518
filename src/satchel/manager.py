"""The synchronous session manager: a policy driven against a store.

The policy (:mod:`satchel.policy`) decides everything and yields the store
operations it needs; :func:`run` carries them out on a synchronous store. Web
adapters hold one :class:`SessionManager` and call :meth:`~SessionManager.open_request`
and :meth:`~SessionManager.commit`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .clock import Clock, system_clock
from .config import SessionConfig
from .errors import ConfigurationError
from .policy.cookie import CookieSessions
from .policy.events import UNOBSERVED
from .policy.merge import merge as merge
from .policy.ops import STORE_OPS, Done, Op, Pause, ReadBeaker, Steps, advance
from .policy.server import Moved, ServerSessions
from .policy.users import user_index_key as user_index_key
from .session import Session
from .stores import Store, open_store
from .telemetry import session_telemetry

if TYPE_CHECKING:
    from .beaker.readers import BeakerReader
    from .stores.aio.base import AsyncStore
    from .telemetry import SessionTelemetry, Timer

T = TypeVar("T")

#: A process's commits of one session take turns on one of these locks, so they
#: conflict only with other processes' writes. Sessions sharing a stripe take turns too.
WRITE_LOCK_STRIPES = 256


def perform(store: Store, op: Op, beaker: BeakerReader | None = None) -> Any:
    """Carry out one operation on a synchronous store (or, for the transition from
    Beaker, on the reader of Beaker's records)."""
    if isinstance(op, STORE_OPS):
        return op.call(store)
    if isinstance(op, Pause):
        return time.sleep(op.seconds)
    if beaker is None:
        raise RuntimeError(f"no reader of Beaker's records was configured, but the policy asked for {op!r}")
    return beaker.load(op.beaker_id) if isinstance(op, ReadBeaker) else beaker.delete(op.beaker_id)


def run(store: Store | None, steps: Steps[T], timer: Timer | None = None, beaker: BeakerReader | None = None) -> T:
    """Drive a policy step to its result: each operation it yields is carried out on
    ``store`` and the result sent back; a store's exception is thrown back in. With a
    ``timer`` (telemetry is on: the telemetry itself, or a traced open's or commit's
    :class:`~satchel.telemetry.Trip`) each operation is timed and counted."""
    reply: Any = None
    failure: BaseException | None = None
    while not isinstance(op := advance(steps, reply, failure), Done):
        if store is None:
            raise RuntimeError(f"session.type = cookie keeps no store, but the policy asked for {op!r}")
        try:
            if timer is None:
                reply = perform(store, op, beaker)
            else:
                reply = timer.perform(perform, store, op, beaker)
            failure = None
        except Exception as exc:  # noqa: BLE001 - thrown into the policy, which decides what it means
            reply, failure = None, exc
    return op.value


class SessionManager:
    """Opens sessions from cookies and commits them: server-side sessions on a store,
    or (``session.type = cookie``) the whole session in the cookie."""

    def __init__(
        self,
        settings: SessionConfig,
        store: Store | None = None,
        session_class: type[Session] = Session,
        *,
        clock: Clock = system_clock,
        telemetry: SessionTelemetry | None = None,
    ) -> None:
        """``telemetry``: the instruments to report to; by default OpenTelemetry's global
        providers when ``opentelemetry-api`` is installed and ``session.telemetry`` is on."""
        self.settings = settings
        self.session_class = session_class
        self.policy: ServerSessions | CookieSessions
        if settings.client_side:
            if store is not None:
                raise ConfigurationError("session.type = cookie keeps no server-side store; do not pass one")
            self.store: Store | None = None
        else:
            self.store = store if store is not None else open_store(settings.store, clock=clock)
        self.telemetry, self.policy = observed_policy(settings, clock, session_class, self.store, telemetry)
        #: Reads Beaker's records while ``session.beaker_transition`` is on.
        self.beaker = beaker_reader(settings)
        self._write_locks = [threading.Lock() for _ in range(WRITE_LOCK_STRIPES)]

    def open_request(self, cookie_header: str | None) -> Session:
        """The session for a request, given its raw ``Cookie`` header."""
        return self._open(self.policy.open_request(cookie_header))

    def open(self, cookie_value: str | None) -> Session:
        """The session the cookie value names, or a fresh one (never adopting the client's id)."""
        return self._open(self.policy.open(cookie_value))

    def _open(self, steps: Steps[Session]) -> Session:
        return self._observed("open", steps, opened)

    def _observed(self, span: str, steps: Steps[T], outcome: Callable[[T], str] | None = None) -> T:
        """Run ``steps``: timed and counted when telemetry is on, inside a span named
        ``span`` when traces go somewhere (its outcome read from the result by ``outcome``)."""
        telemetry = self.telemetry
        if telemetry is None:
            return run(self.store, steps, beaker=self.beaker)
        if not telemetry.tracing():
            return run(self.store, steps, telemetry, self.beaker)
        with telemetry.span(span) as trip:
            result = run(self.store, steps, trip, self.beaker)
            if outcome is not None:
                trip.outcome = outcome(result)
            return result

    def load(self, session_id: str) -> Session | None:
        """The stored session for a verified id, or None (server-side sessions only)."""
        if not isinstance(self.policy, ServerSessions):
            raise NotImplementedError("session.type = cookie keeps no sessions to load by id")
        try:
            return run(self.store, self.policy.load(session_id))
        except Moved:
            return None

    def commit(self, session: Session, secure_request: bool = False) -> list[str]:
        """Persist what the request changed; return the Set-Cookie headers to send."""
        steps = self.policy.commit(session, secure_request)
        stripe = write_stripe(self.store, session)
        if stripe is None:
            return self._observed("commit", steps)
        with self._write_locks[stripe]:
            return self._observed("commit", steps)

    def discard(self, session: Session, secure_request: bool = False) -> list[str]:
        """Drop the request's changes but carry out its ``invalidate()`` calls; returns
        the Set-Cookie headers that remove an ended session's cookie."""
        return run(self.store, self.policy.discard(session, secure_request))

    def user_sessions(self, user_id: str | int) -> list[dict[str, Any]]:
        """The user's live sessions: store key (a hash, not the id), created and accessed times."""
        return run(self.store, self.policy.user_sessions(user_id))

    def revoke_user_sessions(self, user_id: str | int, keep: Session | None = None) -> int:
        """Delete every session of the user ("log out everywhere"), except ``keep``.
        Returns how many sessions were deleted."""
        return run(self.store, self.policy.revoke_user_sessions(user_id, keep))

    def close(self) -> None:
        """Release the store's connections."""
        if self.store is not None:
            self.store.close()
        if self.beaker is not None:
            self.beaker.close()


def write_stripe(store: Store | AsyncStore | None, session: Session) -> int | None:
    """The write lock a commit of ``session`` takes its turn on, or None when it has
    no turn to take: a cookie session writes no record, and a session without an id
    yet is this request's own."""
    if store is None or not session.has_id:
        return None
    return hash(session.id) % WRITE_LOCK_STRIPES


def observed_policy(
    settings: SessionConfig,
    clock: Clock,
    session_class: type[Session],
    store: Store | AsyncStore | None,
    telemetry: SessionTelemetry | None,
) -> tuple[SessionTelemetry | None, ServerSessions | CookieSessions]:
    """A manager's telemetry (``telemetry``, or the settings' default for the store) and
    its policy, observed by that telemetry: server-side sessions on ``store``, cookie
    sessions without one. The sync and async managers are built alike."""
    if telemetry is None:
        telemetry = session_telemetry(store.name if store is not None else "cookie", settings.telemetry)
    observer = telemetry if telemetry is not None else UNOBSERVED
    if store is None:
        return telemetry, CookieSessions(settings, clock, session_class, observer)
    return telemetry, ServerSessions(settings, clock, session_class, store, observer)


def beaker_reader(settings: SessionConfig) -> BeakerReader | None:
    """The reader of Beaker's records the transition needs, or None when it is off."""
    if settings.beaker is None or settings.client_side:
        return None
    from .beaker.readers import open_reader

    return open_reader(settings.store, settings.beaker.type, settings.beaker.table_name)


def opened(session: Session) -> str:
    """An open's outcome: the stored session, a new one, or an unsaved one (store down)."""
    if session.store_unavailable:
        return "unavailable"
    return "loaded" if session.loaded is not None else "new"


def build_manager(
    settings: SessionConfig, store: Store | None = None, session_class: type[Session] = Session
) -> SessionManager:
    """The manager the settings ask for (kept for code that called it by this name)."""
    return SessionManager(settings, store, session_class)
