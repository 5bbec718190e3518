"""Sessions for any WSGI application: ``SessionMiddleware(app, settings)``, and the
PasteDeploy filter. See :mod:`satchel.web.wsgi`."""

from __future__ import annotations

from .web.wsgi import BEAKER_KEY as BEAKER_KEY
from .web.wsgi import ENVIRON_KEY as ENVIRON_KEY
from .web.wsgi import GET_SESSION_KEY as GET_SESSION_KEY
from .web.wsgi import LazySession as LazySession
from .web.wsgi import SessionMiddleware as SessionMiddleware
from .web.wsgi import filter_app_factory as filter_app_factory
from .web.wsgi import filter_factory as filter_factory
from .web.wsgi import filter_settings as filter_settings

__all__ = [
    "BEAKER_KEY",
    "ENVIRON_KEY",
    "GET_SESSION_KEY",
    "LazySession",
    "SessionMiddleware",
    "filter_app_factory",
    "filter_factory",
    "filter_settings",
]
