"""Sessions for any ASGI application (Starlette, FastAPI, ...): ``SessionMiddleware(app, settings)``.
See :mod:`satchel.web.asgi`."""

from __future__ import annotations

from .aio import AsyncSessionManager as AsyncSessionManager
from .web.asgi import SessionMiddleware as SessionMiddleware
