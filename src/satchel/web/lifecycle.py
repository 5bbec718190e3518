"""One request's session, the same way for every framework.

- Lazy: nothing is parsed, loaded or sent unless the application touches the session.
- Committed once, at the end of the request (or when the response starts).
- After an error: with ``cookie_on_exception = true`` (the default) the session is
  saved as on success, where a response of ours can still carry its cookie; when
  none can (the application raised before a WSGI response started), only changes
  that need no new cookie are kept. With ``cookie_on_exception = false`` the
  request's changes are dropped. Either way a view's ``invalidate()`` holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, Protocol

from ..config import SessionConfig
from ..manager import SessionManager
from ..session import Session

log = logging.getLogger("satchel")

#: What the end of a request does with its session: commit it, discard its changes
#: (keeping its ``invalidate()``) and send what that says, or discard and send nothing.
Ending = Literal["commit", "discard", "discard silently"]


class SessionSource(Protocol):
    """What a lazy session stand-in reads: the session once opened, and how to open it."""

    @property
    def session(self) -> Session | None: ...

    def get(self) -> Session: ...


def ending(settings: SessionConfig, session: Session, *, failed: bool, cookie_deliverable: bool) -> Ending:
    """The one rule for every adapter, sync or async, on how a request's session ends."""
    if failed and not settings.cookie_on_exception:
        return "discard"
    if not cookie_deliverable and _needs_new_cookie(session):
        return "discard silently"  # a new id the client never learns would strand the session
    return "commit"


class RequestSession:
    """Opens the request's session on first use and commits it once."""

    __slots__ = ("_cookie_header", "_headers", "_is_secure", "finished", "manager", "session")

    def __init__(
        self, manager: SessionManager, cookie_header: Callable[[], str | None], is_secure: Callable[[], bool]
    ) -> None:
        self.manager = manager
        self._cookie_header = cookie_header
        self._is_secure = is_secure
        self.session: Session | None = None
        self.finished = False
        self._headers: list[str] = []

    @property
    def opened(self) -> bool:
        """Whether the application touched the session (then responses vary on Cookie)."""
        return self.session is not None

    def get(self) -> Session:
        if self.session is None:
            if self.finished:
                log.warning("the session was first used after the response started: changes to it are not saved")
            self.session = self.manager.open_request(self._cookie_header())
        return self.session

    def finish(self, *, failed: bool = False, cookie_deliverable: bool = True) -> list[str]:
        """Commit the session (once) and return the Set-Cookie headers to send.

        ``failed``: the application raised or answered with an error it passed on as
        such. ``cookie_deliverable``: a response of ours will carry the headers.
        """
        if self.finished:
            return self._headers
        self.finished = True
        session = self.session
        if session is None:
            return []
        secure = self._is_secure()
        end = ending(self.manager.settings, session, failed=failed, cookie_deliverable=cookie_deliverable)
        if end == "commit":
            headers = self.manager.commit(session, secure)
        else:
            headers = self.manager.discard(session, secure)
            if end == "discard silently":
                headers = []
        if headers and not cookie_deliverable:
            log.info("the session cookie was not sent: the application raised before its response started")
        self._headers = headers if cookie_deliverable else []
        return self._headers


def _needs_new_cookie(session: Session) -> bool:
    return session.loaded is None or session.regenerated_from is not None
