"""ASGI middleware: satchel's sessions for Starlette, FastAPI and any ASGI app.

``scope["session"]`` is a :class:`~satchel.web.wsgi.LazySession`, so Starlette's
and FastAPI's ``request.session`` (and ``websocket.session``) work as with
Starlette's own middleware, with satchel's lifecycle:

- a request without the session cookie does no store I/O, and gets no
  Set-Cookie and no ``Vary: Cookie`` unless the application uses the session;
- a request with it loads the session once, before the application runs (a
  view reads ``request.session`` synchronously, so the load cannot wait until then);
- the session is committed when the response starts, before its headers go
  out: nothing is written for a read-only request, one conditional write (and
  a merge on conflict) for a changed one. A streaming body that changes the
  session after the headers were sent is not saved (and says so in the log);
- a websocket reads the session of its handshake; nothing it changes is saved,
  since no response carries a cookie back.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from ..aio.manager import AsyncSessionManager
from ..clock import Clock, system_clock
from ..config import SessionConfig, parse_session_settings
from ..session import Session
from ..stores.aio import AsyncStore
from .headers import vary_cookie
from .lifecycle import ending
from .wsgi import ENVIRON_KEY, GET_SESSION_KEY, LazySession

log = logging.getLogger("satchel")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where Starlette's ``request.session`` looks.
SCOPE_KEY = "session"


class AsyncRequestSession:
    """One request's session: opened (at most) once, committed once."""

    __slots__ = ("cookie_header", "finished", "manager", "opened", "secure", "session")

    def __init__(
        self, manager: AsyncSessionManager, cookie_header: str | None, secure: bool, session: Session | None
    ) -> None:
        self.manager = manager
        self.cookie_header = cookie_header
        self.secure = secure
        self.session = session
        #: Whether the application used the session (then responses vary on Cookie).
        self.opened = False
        self.finished = False

    def get(self) -> Session:
        if not self.opened:
            self.opened = True
            if self.finished:
                log.warning("the session was first used after the response started: changes to it are not saved")
        if self.session is None:
            # Loaded before the application ran whenever the store could hold it.
            self.session = self.manager.open_without_io(self.cookie_header)
        return self.session

    async def finish(self, *, failed: bool = False, cookie_deliverable: bool = True) -> list[str]:
        """Commit the session if the application used it; the Set-Cookie headers to send."""
        if self.finished:
            return []
        self.finished = True
        session = self.session
        if session is None or not self.opened:
            return []
        end = ending(self.manager.settings, session, failed=failed, cookie_deliverable=cookie_deliverable)
        if end == "commit":
            headers = await self.manager.commit(session, self.secure)
        else:
            headers = await self.manager.discard(session, self.secure)
        if headers and not cookie_deliverable:
            log.info("the session cookie was not sent: the application raised before its response started")
        return headers if cookie_deliverable and end != "discard silently" else []


class SessionMiddleware:
    """Sessions for an ASGI application: ``app = SessionMiddleware(app, settings)``.

    ``settings`` is the flat mapping an INI file gives (``session.*`` keys; see
    :func:`satchel.config.section_settings`), or a parsed
    :class:`~satchel.config.SessionConfig`; keyword arguments add settings by
    their name without the prefix (``secret=...``, ``type="redis"``). With
    Starlette or FastAPI: ``app.add_middleware(SessionMiddleware, settings=...)``.
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: Mapping[str, Any] | SessionConfig | None = None,
        *,
        manager: AsyncSessionManager | None = None,
        store: AsyncStore | None = None,
        session_class: type[Session] = Session,
        clock: Clock = system_clock,
        **options: Any,
    ) -> None:
        self.app = app
        #: One manager may serve several middleware instances (a framework that
        #: wraps each route in its own): then they share the store.
        self.manager = manager or session_manager(
            settings, store=store, session_class=session_class, clock=clock, **options
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._closing(send))
            return
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = cookie_header(scope)
        preloaded = await self.manager.open_request(header) if self.manager.needs_store(header) else None
        request = AsyncRequestSession(self.manager, header, scope.get("scheme") in ("https", "wss"), preloaded)
        session = LazySession(request)
        scope[SCOPE_KEY] = scope[ENVIRON_KEY] = session
        scope[GET_SESSION_KEY] = request.get
        if kind == "websocket":
            await self.app(scope, receive, send)
            return

        async def send_with_session(message: Message) -> None:
            if message["type"] == "http.response.start" and not request.finished:
                adopt_replacement(scope, session, request)
                opened = request.opened
                set_cookies = await request.finish()
                if opened:
                    message = dict(message)
                    message["headers"] = response_headers(message.get("headers", ()), set_cookies)
            await send(message)

        try:
            await self.app(scope, receive, send_with_session)
        except Exception:
            if not request.finished:
                try:
                    await request.finish(failed=True, cookie_deliverable=False)
                except Exception:
                    log.exception("could not save the session of a request that failed")
            raise

    def _closing(self, send: Send) -> Send:
        """``send`` for the lifespan: the store's connections are closed at shutdown,
        on the loop that opened them."""

        async def send_closing(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.close()
            await send(message)

        return send_closing

    async def close(self) -> None:
        """Release the store's connections."""
        await self.manager.close()


def session_manager(
    settings: Mapping[str, Any] | SessionConfig | None = None,
    *,
    store: AsyncStore | None = None,
    session_class: type[Session] = Session,
    clock: Clock = system_clock,
    **options: Any,
) -> AsyncSessionManager:
    """The manager for ``settings`` (flat ``session.*`` names, a parsed config, and
    keyword arguments naming settings without the prefix), checked now, at start-up."""
    if isinstance(settings, SessionConfig):
        parsed = settings
    else:
        flat = dict(settings or {})
        flat.update((f"session.{name}", value) for name, value in options.items())
        parsed = parse_session_settings(flat)
    return AsyncSessionManager(parsed, store, session_class, clock=clock)


def adopt_replacement(scope: Scope, stand_in: LazySession, request: AsyncRequestSession) -> None:
    """Honour an application that put another value at ``scope["session"]`` (Litestar's
    ``request.set_session(...)`` and ``clear_session()``): a mapping, a dataclass or a
    pydantic model becomes the session's content; anything else ends the session."""
    current: Any = scope.get(SCOPE_KEY)
    if current is stand_in:
        return
    session = request.get()
    if hasattr(current, "model_dump"):
        current = current.model_dump(mode="json")
    elif dataclasses.is_dataclass(current) and not isinstance(current, type):
        current = dataclasses.asdict(current)
    if isinstance(current, Mapping):
        replacement = dict(current)
        session.clear()
        session.update(replacement)
    else:
        session.invalidate()


def cookie_header(scope: Scope) -> str | None:
    """The request's ``Cookie`` header (several joined, as HTTP/2 may send them)."""
    values = [value for name, value in scope.get("headers", ()) if name == b"cookie"]
    if not values:
        return None
    return "; ".join(value.decode("latin-1") for value in values)


def response_headers(raw: Any, set_cookies: list[str]) -> list[tuple[bytes, bytes]]:
    """The response's headers with ``Vary: Cookie`` and the session's Set-Cookie headers."""
    headers = [(bytes(name).decode("latin-1"), bytes(value).decode("latin-1")) for name, value in raw]
    vary_cookie(headers)
    headers.extend(("set-cookie", value) for value in set_cookies)
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


__all__ = ["SCOPE_KEY", "AsyncRequestSession", "SessionMiddleware", "cookie_header", "session_manager"]
