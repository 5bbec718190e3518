"""Pyramid glue: ``config.include("satchel")`` and the ISession implementation.

The session is committed by a tween that sits just below Pyramid's exception
view tween. Errors while saving (a store that is down, a value that became
unserializable) therefore reach the application's exception views, where it can
answer with a 503 or a helpful page, instead of escaping after the response was
built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from pyramid.interfaces import ISession, ISessionFactory
from pyramid.tweens import EXCVIEW
from zope.interface import implementer

from .cookies import vary_cookie
from .manager import SessionManager, build_manager
from .session import Session
from .settings import CACHE_PREFIXES, SESSION_PREFIXES, SessionSettings, parse_session_settings
from .stores import Store

log = logging.getLogger("satchel")

Request = Any
Response = Any
Handler = Callable[[Request], Response]


@implementer(ISession)
class PyramidSession(Session):
    """A satchel session that declares Pyramid's ISession."""

    __slots__ = ()


_COMMITTED = "satchel.committed"
_TWEEN_PASSED = "satchel.tween_passed"
# The session this request opened. Kept in the environ rather than found through
# ``request.session``: tools such as the debug toolbar replace that property.
_SESSION = "satchel.pyramid_session"


class SatchelSessionFactory:
    """Pyramid session factory: ``config.set_session_factory(factory)``.

    With ``config.include("satchel")`` a tween commits the session so that save
    errors reach exception views; an app that wires the factory by hand still
    gets its session saved, by a response callback.
    """

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.webtest_varname = manager.settings.webtest_varname
        self.save_on_exception = manager.settings.cookie_on_exception
        #: Set by the tween: it commits, so no response callback is needed.
        self.tween_commits = False

    def __call__(self, request: Request) -> Session:
        environ = request.environ
        session = self.manager.open_request(environ.get("HTTP_COOKIE"))
        environ[_SESSION] = session
        if self.webtest_varname:
            testing = environ.get("paste.testing_variables")
            if testing is not None:
                testing[self.webtest_varname] = session
        if not self.tween_commits or _TWEEN_PASSED in environ:
            # No tween, or code above it (another tween, a toolbar) opened the
            # session after the tween committed: a response callback commits.
            request.add_response_callback(self._callback)
        return session

    def commit(self, request: Request, response: Response) -> None:
        """Save the request's session (once) and put the cookie on ``response``."""
        environ = request.environ
        if _COMMITTED in environ:
            return
        environ[_COMMITTED] = True
        session = environ.get(_SESSION)
        if not isinstance(session, Session):
            return
        vary_cookie(response.headerlist)
        if request.exception is not None and not self.save_on_exception:
            return
        # request.scheme, not the environ: an app's request class may take it from a proxy's header
        for header in self.manager.commit(session, request.scheme == "https"):
            response.headerlist.append(("Set-Cookie", header))

    def _callback(self, request: Request, response: Response) -> None:
        self.commit(request, response)


def session_factory_from_settings(
    settings: Mapping[str, Any], store: Store | None = None
) -> SatchelSessionFactory:
    """Build the session factory from ``session.*`` / ``beaker.session.*`` settings."""
    parsed: SessionSettings = parse_session_settings(settings)
    return SatchelSessionFactory(build_manager(parsed, store, session_class=PyramidSession))


def session_tween_factory(handler: Handler, registry: Any) -> Handler:
    factory = registry.queryUtility(ISessionFactory)
    if not isinstance(factory, SatchelSessionFactory):
        return handler
    factory.tween_commits = True

    def session_tween(request: Request) -> Response:
        try:
            response = handler(request)
        except Exception:
            request.environ[_TWEEN_PASSED] = True
            if factory.save_on_exception and _SESSION in request.environ:
                _commit_after_error(request, factory)
            raise
        request.environ[_TWEEN_PASSED] = True
        if _SESSION in request.environ:
            factory.commit(request, response)
        return response

    return session_tween


def _commit_after_error(request: Request, factory: SatchelSessionFactory) -> None:
    """Save the session of a request whose view raised; the cookie goes on the error page.

    The error page does not exist yet, so the store write happens now and the
    header is added by a response callback.
    """
    request.environ[_COMMITTED] = True
    session = request.environ[_SESSION]
    try:
        headers = factory.manager.commit(session, secure_request=request.scheme == "https")
    except Exception:
        log.exception("could not save the session of a request that failed")
        return

    def add_header(request: Request, response: Response) -> None:
        vary_cookie(response.headerlist)
        for header in headers:
            response.headerlist.append(("Set-Cookie", header))

    request.add_response_callback(add_header)




def includeme(config: Any) -> None:
    """``config.include("satchel")``: sessions from ``session.*``, cache regions from ``cache.*``.

    An app whose settings name no session option gets no session factory (it
    may use only the cache), and the other way round.
    """
    settings = config.get_settings()
    if any(name.startswith(SESSION_PREFIXES) for name in settings):
        config.set_session_factory(session_factory_from_settings(settings))
        config.add_tween("satchel.pyramid.session_tween_factory", under=EXCVIEW)
    if any(name.startswith(CACHE_PREFIXES) for name in settings):
        config.include("satchel.cache")
