"""Flask: ``flask.session`` (and ``flash``/``get_flashed_messages``) on satchel.

``app.session_interface = SessionInterface(settings)``, or ``init_app(app)`` to
read the settings from ``app.config``. ``flask.session`` is then a
:class:`FlaskSession`: loaded on first use (a view that never touches it costs no
store I/O and sends no cookie), committed once when the response is finalised
(nothing written when it only read, one conditional write when it changed).

Settings in ``app.config``: ``SATCHEL_SESSION_<NAME>`` for each satchel setting
``session.<name>`` (``SATCHEL_SESSION_TYPE = "redis"``,
``SATCHEL_SESSION_URL = "redis://..."``), or the ``session.<name>`` keys
themselves, as an INI file gives them. Without ``SATCHEL_SESSION_SECRET`` the
app's ``SECRET_KEY`` signs the cookie (it must be a strong one).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface as FlaskSessionInterface
from flask.sessions import SessionMixin

from ..config import SessionConfig, parse_session_settings
from ..manager import SessionManager
from ..session import Session
from ..stores import Store
from .lifecycle import RequestSession
from .wsgi import LazySession

#: The flash queue that holds Flask's ``(category, message)`` pairs.
FLASK_FLASH_QUEUE = "flask"
#: The key Flask's ``flash()`` and ``get_flashed_messages()`` use.
FLASHES_KEY = "_flashes"
CONFIG_PREFIX = "SATCHEL_SESSION_"
_FLASK_ATTRIBUTES = frozenset({"permanent", "modified", "accessed", "new"})


class FlaskSession(LazySession, SessionMixin):
    """``flask.session``: the request's :class:`~satchel.session.Session`, loaded on first use.

    Flask's flash messages live in satchel's flash queue (shown once, merged with
    concurrent requests like every flash), not in a ``_flashes`` value.
    ``permanent`` is accepted and ignored: the cookie's lifetime is
    ``session.cookie_expires``. ``modified = True`` is :meth:`Session.changed`.
    """

    __slots__ = ()

    # Flask's names, for code that reads or sets them.
    @property
    def permanent(self) -> bool:
        return True

    @permanent.setter
    def permanent(self, value: bool) -> None:
        """Ignored: the cookie's lifetime is ``session.cookie_expires``."""

    @property
    def modified(self) -> bool:
        return bool(self._session().written)

    @modified.setter
    def modified(self, value: bool) -> None:
        if value:
            self._session().changed()

    @property
    def accessed(self) -> bool:
        return True

    @accessed.setter
    def accessed(self, value: bool) -> None:
        """Responses vary on Cookie whenever the session was used; nothing to set."""

    @property
    def new(self) -> bool:
        return bool(self._session().new)

    @new.setter
    def new(self, value: bool) -> None:
        raise AttributeError("new is decided by the store, not set")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FLASK_ATTRIBUTES:
            object.__setattr__(self, name, value)  # the properties above
        else:
            super().__setattr__(name, value)

    def __getitem__(self, key: str) -> Any:
        if key == FLASHES_KEY:
            if not self._session().peek_flash(FLASK_FLASH_QUEUE):
                raise KeyError(key)
            return [tuple(pair) for pair in self._session().peek_flash(FLASK_FLASH_QUEUE)]
        return super().__getitem__(key)

    def __setitem__(self, key: str, value: Any) -> None:
        if key != FLASHES_KEY:
            super().__setitem__(key, value)
            return
        session = self._session()
        # flask.flash() sets the list it read plus one pair: queue only what is new.
        for category, message in list(value)[len(session.peek_flash(FLASK_FLASH_QUEUE)) :]:
            session.flash([category, message], FLASK_FLASH_QUEUE)

    def __delitem__(self, key: str) -> None:
        if key == FLASHES_KEY:
            self._session().pop_flash(FLASK_FLASH_QUEUE)
            return
        super().__delitem__(key)

    def __contains__(self, key: object) -> bool:
        if key == FLASHES_KEY:
            return bool(self._session().peek_flash(FLASK_FLASH_QUEUE))
        return super().__contains__(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default


class SessionInterface(FlaskSessionInterface):
    """satchel's sessions for a Flask app: ``app.session_interface = SessionInterface(settings)``.

    ``settings``: the flat ``session.*`` mapping, or a parsed :class:`SessionConfig`.
    """

    def __init__(
        self,
        settings: Mapping[str, Any] | SessionConfig,
        *,
        store: Store | None = None,
        session_class: type[Session] = Session,
    ) -> None:
        parsed = settings if isinstance(settings, SessionConfig) else parse_session_settings(settings)
        self.manager = SessionManager(parsed, store, session_class=session_class)

    def open_session(self, app: Flask, request: Request) -> FlaskSession:
        lifecycle = RequestSession(self.manager, lambda: request.headers.get("Cookie"), lambda: request.is_secure)
        return FlaskSession(lifecycle)

    def is_null_session(self, obj: object) -> bool:
        return False

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        request: RequestSession = object.__getattribute__(session, "_satchel_request")
        opened = request.opened
        # Flask finalises the response of an unhandled exception inside its except block.
        set_cookies = request.finish(failed=sys.exc_info()[1] is not None)
        if opened:
            response.vary.add("Cookie")
            for value in set_cookies:
                response.headers.add("Set-Cookie", value)

    def close(self) -> None:
        """Release the store's connections."""
        self.manager.close()


def settings_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``session.*`` settings in a Flask ``app.config`` (see the module's docstring)."""
    settings = {key: value for key, value in config.items() if key.startswith("session.")}
    for key, value in config.items():
        if key.startswith(CONFIG_PREFIX):
            settings["session." + key[len(CONFIG_PREFIX) :].lower()] = value
    if "session.secret" not in settings and config.get("SECRET_KEY"):
        settings["session.secret"] = config["SECRET_KEY"]
    return settings


def init_app(app: Flask, *, store: Store | None = None, session_class: type[Session] = Session) -> SessionInterface:
    """Give ``app`` satchel's sessions, configured from ``app.config``; returns the interface."""
    interface = SessionInterface(settings_from_config(app.config), store=store, session_class=session_class)
    app.session_interface = interface
    return interface


__all__ = ["FlaskSession", "SessionInterface", "init_app", "settings_from_config"]
