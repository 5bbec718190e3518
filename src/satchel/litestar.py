"""Sessions for Litestar: ``Litestar(plugins=[SessionPlugin(settings)])``; satchel's
async stores as Litestar stores (``LitestarStore``). See :mod:`satchel.web.litestar`."""

from __future__ import annotations

from .web.litestar import LitestarStore as LitestarStore
from .web.litestar import SessionPlugin as SessionPlugin
