"""Sessions for an event loop: the async runner and :class:`AsyncSessionManager`,
on the same policy as :mod:`satchel.manager`."""

from __future__ import annotations

from ..stores.aio import AsyncStore as AsyncStore
from ..stores.aio import open_async_store as open_async_store
from .manager import AsyncSessionManager as AsyncSessionManager
from .manager import perform as perform
from .manager import run as run
