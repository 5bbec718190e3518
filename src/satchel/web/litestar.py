"""Litestar: ``request.session`` on satchel, and satchel's stores as Litestar stores.

``Litestar(plugins=[SessionPlugin(settings)])`` puts :class:`satchel.asgi.SessionMiddleware`
in front of every route with one shared manager (Litestar builds a middleware
stack per route), and closes the store at shutdown. ``request.session`` is then
satchel's lazy session, with the guarantees of the ASGI middleware;
``request.set_session(...)`` replaces its content and ``request.clear_session()``
ends it.

:class:`LitestarStore` lets an async satchel store back Litestar's response cache
or rate limiter (``Litestar(stores={"response_cache": LitestarStore(store)})``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from litestar.config.app import AppConfig
from litestar.middleware import DefineMiddleware
from litestar.plugins import InitPluginProtocol
from litestar.stores.base import Store as LitestarBaseStore

from ..clock import Clock, system_clock
from ..config import SessionConfig
from ..session import Session
from ..stores.aio import AsyncStore
from ..stores.base import KEY_PATTERN
from .asgi import SessionMiddleware, session_manager

#: Attempts of an unconditional ``set`` against writers racing it.
SET_ATTEMPTS = 5


class SessionPlugin(InitPluginProtocol):
    """satchel's sessions for a Litestar app, from the flat ``session.*`` settings
    (or keyword arguments naming them without the prefix)."""

    def __init__(
        self,
        settings: Mapping[str, Any] | SessionConfig | None = None,
        *,
        store: AsyncStore | None = None,
        session_class: type[Session] = Session,
        clock: Clock = system_clock,
        **options: Any,
    ) -> None:
        self.manager = session_manager(settings, store=store, session_class=session_class, clock=clock, **options)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        # Any ASGI app is Litestar middleware; its typed scope is a narrower MutableMapping.
        app_config.middleware.insert(0, DefineMiddleware(SessionMiddleware, manager=self.manager))  # type: ignore[arg-type]
        app_config.on_shutdown.append(self.manager.close)
        return app_config


def _seconds(value: int | timedelta | None) -> int | None:
    if value is None:
        return None
    return int(value.total_seconds()) if isinstance(value, timedelta) else int(value)


class LitestarStore(LitestarBaseStore):
    """An async satchel store behind Litestar's ``Store`` interface.

    Keys Litestar chooses are hashed (SHA-256) under ``namespace`` unless they fit
    satchel's key alphabet already. ``set`` writes whatever is there (reading the
    version first, and again if another writer came in between). ``delete_all``
    cannot find keys by prefix on every store and is refused.
    """

    __slots__ = ("clock", "namespace", "store")

    def __init__(self, store: AsyncStore, namespace: str = "litestar:", *, clock: Clock = system_clock) -> None:
        self.store = store
        self.namespace = namespace
        self.clock = clock

    def _key(self, key: str) -> str:
        candidate = self.namespace + key
        if KEY_PATTERN.fullmatch(candidate):
            return candidate
        return self.namespace + hashlib.sha256(key.encode("utf-8")).hexdigest()

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        name = self._key(key)
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        for _ in range(SET_ATTEMPTS):
            record = await self.store.load(name)
            if await self.store.save(name, data, _seconds(expires_in), None if record is None else record.version):
                return
        raise RuntimeError(f"could not set {key!r}: {SET_ATTEMPTS} other writers came first")

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        name = self._key(key)
        record = await self.store.load(name)
        if record is None:
            return None
        if renew_for is not None and record.expires_at is not None:
            await self.store.touch(name, _seconds(renew_for))
        return record.data

    async def delete(self, key: str) -> None:
        await self.store.delete(self._key(key))

    async def delete_all(self) -> None:
        raise NotImplementedError("a satchel store cannot delete by namespace; delete the keys one by one")

    async def exists(self, key: str) -> bool:
        return await self.store.load(self._key(key)) is not None

    async def expires_in(self, key: str) -> int | None:
        record = await self.store.load(self._key(key))
        if record is None or record.expires_at is None:
            return None
        return max(0, int(record.expires_at - self.clock()))


__all__ = ["LitestarStore", "SessionPlugin"]
