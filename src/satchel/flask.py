"""Sessions for Flask: ``init_app(app)`` or ``app.session_interface = SessionInterface(settings)``.
See :mod:`satchel.web.flask`."""

from __future__ import annotations

from .web.flask import FlaskSession as FlaskSession
from .web.flask import SessionInterface as SessionInterface
from .web.flask import init_app as init_app
from .web.flask import settings_from_config as settings_from_config
