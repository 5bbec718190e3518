"""WSGI middleware: sessions for any WSGI application (Flask, Bottle, plain WSGI).

``environ["satchel.session"]`` is a :class:`LazySession`: a stand-in that loads
the request's session the first time the application uses it. A request that
never touches it parses no cookie, does no store I/O and gets no Set-Cookie.

The session is committed when the application calls ``start_response``, before
the call is passed on: a store that fails raises into the application while it
can still answer with an error page, and the server never sees half a response.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from ..config import CACHE_PREFIXES, SESSION_OPTIONS, SESSION_PREFIXES, SessionConfig, parse_session_settings
from ..config.coerce import as_bool, as_str
from ..errors import ConfigurationError
from ..manager import SessionManager
from ..session import Session
from ..stores import Store
from .headers import vary_cookie
from .lifecycle import RequestSession, SessionSource

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("satchel")

Headers = list[tuple[str, str]]

#: Where the application finds the session, and the callable that returns the real one.
ENVIRON_KEY = "satchel.session"
GET_SESSION_KEY = "satchel.get_session"
BEAKER_KEY = "beaker.session"


class LazySession(MutableMapping[str, Any]):
    """``environ["satchel.session"]``: the request's :class:`~satchel.session.Session`,
    loaded on first use.

    It behaves like the session (a dict with ``flash``, ``invalidate``,
    ``get_csrf_token``, ``new``, ...). ``repr()`` does not load it, so error
    reporters and debug toolbars that print the environ cause no store I/O.
    ``environ["satchel.get_session"]()`` returns the real Session object, for code
    that needs a ``dict`` (``json.dumps``, ``isinstance``).
    """

    __slots__ = ("_satchel_request",)

    def __init__(self, request: SessionSource) -> None:
        object.__setattr__(self, "_satchel_request", request)

    def _session(self) -> Session:
        request: SessionSource = object.__getattribute__(self, "_satchel_request")
        return request.get()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_satchel_request":
            raise AttributeError(name)
        return getattr(self._session(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._session(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._session(), name)

    def __getitem__(self, key: str) -> Any:
        return self._session()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._session()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._session()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._session())

    def __len__(self) -> int:
        return len(self._session())

    def __contains__(self, key: object) -> bool:
        return key in self._session()

    def __ior__(self, other: Any) -> LazySession:
        self._session().update(other)
        return self

    def __repr__(self) -> str:
        request: SessionSource = object.__getattribute__(self, "_satchel_request")
        if request.session is None:
            return "<LazySession (not loaded)>"
        return repr(request.session)


class SessionMiddleware:
    """Sessions for a WSGI application: ``app = SessionMiddleware(app, settings)``.

    ``settings`` is the flat mapping an INI file gives (``session.*`` or
    ``beaker.session.*`` keys), or an already parsed
    :class:`~satchel.config.SessionConfig`. Both are checked here, at start-up.

    ``environ_key`` names where the session goes (Beaker's option of that name).
    With ``beaker_alias`` the same object is also ``environ["beaker.session"]``,
    unless something (an outer Beaker middleware) put a session there already.
    """

    def __init__(
        self,
        app: WSGIApplication,
        settings: Mapping[str, Any] | SessionConfig,
        *,
        store: Store | None = None,
        session_class: type[Session] = Session,
        environ_key: str = ENVIRON_KEY,
        beaker_alias: bool = True,
    ) -> None:
        parsed = settings if isinstance(settings, SessionConfig) else parse_session_settings(settings)
        self.app = app
        self.manager = SessionManager(parsed, store, session_class=session_class)
        self.environ_key = environ_key
        self.beaker_alias = beaker_alias

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = RequestSession(
            self.manager, lambda: environ.get("HTTP_COOKIE"), lambda: environ.get("wsgi.url_scheme") == "https"
        )
        session = LazySession(request)
        environ[self.environ_key] = session
        environ[GET_SESSION_KEY] = request.get
        if self.beaker_alias:
            environ.setdefault(BEAKER_KEY, session)
        varname = self.manager.settings.webtest_varname
        testing = environ.get("paste.testing_variables")
        if varname and testing is not None:
            testing[varname] = session

        def session_start_response(
            status: str, headers: Headers, exc_info: OptExcInfo | None = None
        ) -> Callable[[bytes], object]:
            # Committed before the call is passed on: a store that fails raises into
            # the application while it can still answer with an error page.
            opened = request.opened
            set_cookies = request.finish(failed=exc_info is not None and exc_info[0] is not None)
            if opened:
                headers = list(headers)
                vary_cookie(headers)
                headers.extend(("Set-Cookie", value) for value in set_cookies)
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        try:
            return self.app(environ, session_start_response)
        except Exception:
            if not request.finished:
                try:
                    request.finish(failed=True, cookie_deliverable=False)
                except Exception:
                    log.exception("could not save the session of a request that failed")
            raise

    def close(self) -> None:
        """Release the store's connections."""
        self.manager.close()


# -- PasteDeploy ----------------------------------------------------------------

#: The middleware's own options in a ``[filter:...]`` section.
FILTER_OPTIONS: dict[str, Callable[[Any, str], Any]] = {"environ_key": as_str, "beaker_alias": as_bool}


def _option_name(key: str) -> str | None:
    for prefix in SESSION_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return None


def filter_settings(
    global_conf: Mapping[str, Any], local_conf: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a filter section into session settings and the middleware's own options.

    Session settings in ``[DEFAULT]`` (``global_conf``) apply unless the section
    sets the same option. Any other key in the section is refused, with the
    nearest valid name, so a typo cannot go unnoticed.
    """
    settings: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in local_conf.items():
        if _option_name(key) is not None:
            settings[key] = value
        elif key in FILTER_OPTIONS:
            options[key] = FILTER_OPTIONS[key](value, key)
        elif key.startswith(CACHE_PREFIXES):
            raise ConfigurationError(
                f"{key}: the satchel filter configures sessions only; cache settings belong "
                "to the application's own section",
                key,
            )
        else:
            known = [*FILTER_OPTIONS, *(SESSION_PREFIXES[0] + name for name in SESSION_OPTIONS)]
            near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]}?" if near else "; session settings start with session."
            raise ConfigurationError(f"unknown setting {key} in the satchel filter{hint}", key)
    given = {_option_name(key) for key in settings}
    for key, value in global_conf.items():
        name = _option_name(key)
        if name is not None and name not in given:
            settings[key] = value
    return settings, options


def filter_app_factory(app: WSGIApplication, global_conf: Mapping[str, Any], **local_conf: Any) -> SessionMiddleware:
    """PasteDeploy ``[filter:satchel]`` with ``use = egg:satchel``."""
    settings, options = filter_settings(global_conf, local_conf)
    return SessionMiddleware(app, settings, **options)


def filter_factory(global_conf: Mapping[str, Any], **local_conf: Any) -> Callable[[WSGIApplication], SessionMiddleware]:
    """PasteDeploy's other filter protocol: check the settings now, wrap the app later."""
    settings, options = filter_settings(global_conf, local_conf)
    parsed = parse_session_settings(settings)

    def wrap(app: WSGIApplication) -> SessionMiddleware:
        return SessionMiddleware(app, parsed, **options)

    return wrap


__all__ = [
    "ENVIRON_KEY",
    "GET_SESSION_KEY",
    "LazySession",
    "SessionMiddleware",
    "filter_app_factory",
    "filter_factory",
    "filter_settings",
]
