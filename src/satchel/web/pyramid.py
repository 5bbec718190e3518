"""Pyramid: ``config.include("satchel")`` and the ISession implementation.

The session is committed by a tween that sits just below Pyramid's exception
view tween, so errors while saving (a store that is down, a value that became
unserializable) reach the application's exception views, which can answer with a
503 or a helpful page, instead of escaping after the response was built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from pyramid.interfaces import ISession, ISessionFactory
from pyramid.tweens import EXCVIEW
from zope.interface import implementer

from ..clock import Clock, system_clock
from ..config import CACHE_PREFIXES, SESSION_PREFIXES, SessionConfig, parse_session_settings
from ..manager import SessionManager
from ..session import Session
from ..stores import Store
from .headers import vary_cookie
from .lifecycle import RequestSession

log = logging.getLogger("satchel")

Request = Any
Response = Any
Handler = Callable[[Request], Response]

# The request's RequestSession. Kept in the environ rather than found through
# ``request.session``: tools such as the debug toolbar replace that property.
_REQUEST_SESSION = "satchel.request_session"
_TWEEN_PASSED = "satchel.tween_passed"


@implementer(ISession)
class PyramidSession(Session):
    """A satchel session that declares Pyramid's ISession."""


class SatchelSessionFactory:
    """Pyramid session factory: ``config.set_session_factory(factory)``.

    With ``config.include("satchel")`` a tween commits the session so that save
    errors reach exception views; an app that wires the factory by hand still
    gets its session saved, by a response callback.
    """

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.webtest_varname = manager.settings.webtest_varname
        #: Set by the tween: it commits, so no response callback is needed.
        self.tween_commits = False

    def __call__(self, request: Request) -> Session:
        environ = request.environ
        lifecycle = RequestSession(self.manager, lambda: environ.get("HTTP_COOKIE"), lambda: request.scheme == "https")
        environ[_REQUEST_SESSION] = lifecycle
        session = lifecycle.get()
        if self.webtest_varname:
            testing = environ.get("paste.testing_variables")
            if testing is not None:
                testing[self.webtest_varname] = session
        if not self.tween_commits or _TWEEN_PASSED in environ:
            # No tween, or code above it (another tween, a toolbar) opened the
            # session after the tween committed: a response callback commits.
            request.add_response_callback(_commit_callback)
        return session


def _commit_callback(request: Request, response: Response) -> None:
    _send(request.environ[_REQUEST_SESSION], response, failed=request.exception is not None)


def _send(lifecycle: RequestSession, response: Response, failed: bool) -> None:
    """Commit once and put the cookie (and ``Vary: Cookie``) on ``response``."""
    _add(response, lifecycle.finish(failed=failed))


def session_factory_from_settings(
    settings: Mapping[str, Any], store: Store | None = None, *, clock: Clock = system_clock
) -> SatchelSessionFactory:
    """Build the session factory from ``session.*`` / ``beaker.session.*`` settings.

    ``clock`` is where the session policy reads the time (tests pass a fake one).
    """
    parsed: SessionConfig = parse_session_settings(settings)
    return SatchelSessionFactory(SessionManager(parsed, store, session_class=PyramidSession, clock=clock))


def session_tween_factory(handler: Handler, registry: Any) -> Handler:
    factory = registry.queryUtility(ISessionFactory)
    if not isinstance(factory, SatchelSessionFactory):
        return handler
    factory.tween_commits = True

    def session_tween(request: Request) -> Response:
        environ = request.environ
        try:
            response = handler(request)
        except Exception:
            environ[_TWEEN_PASSED] = True
            lifecycle = environ.get(_REQUEST_SESSION)
            if lifecycle is not None:
                # The error page does not exist yet: the store is written now and the
                # cookie goes on whatever response the exception view makes.
                try:
                    headers = lifecycle.finish(failed=True)
                except Exception:
                    log.exception("could not save the session of a request that failed")
                    headers = []
                request.add_response_callback(lambda request, response: _add(response, headers))
            raise
        environ[_TWEEN_PASSED] = True
        lifecycle = environ.get(_REQUEST_SESSION)
        if lifecycle is not None:
            _send(lifecycle, response, failed=False)
        return response

    return session_tween


def _add(response: Response, headers: list[str]) -> None:
    vary_cookie(response.headerlist)
    for header in headers:
        response.headerlist.append(("Set-Cookie", header))


def includeme(config: Any) -> None:
    """``config.include("satchel")``: sessions from ``session.*``, cache regions from ``cache.*``.

    An app whose settings name no session option gets no session factory (it
    may use only the cache), and the other way round.
    """
    settings = config.get_settings()
    if any(name.startswith(SESSION_PREFIXES) for name in settings):
        config.set_session_factory(session_factory_from_settings(settings))
        config.add_tween("satchel.web.pyramid.session_tween_factory", under=EXCVIEW)
    if any(name.startswith(CACHE_PREFIXES) for name in settings):
        config.include("satchel.cache")
