"""The store contract with coroutines: the same rules as :mod:`satchel.stores.base`.

An async store holds the same records under the same keys as its sync twin, so
a WSGI app and an ASGI app on one server and one ``session.key``/``secret`` read
and write one visitor's session. The contract suite runs on it through
:class:`satchel.testing.AsyncStoreContract`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from ...clock import Clock, system_clock
from ...config.coerce import Coercer
from ...errors import ConfigurationError
from ..base import Record, Version


class AsyncStore(ABC):
    """Bytes in, bytes out, with conditional writes, awaited.

    ``save`` answers the record's new version, or ``None`` on a conflict;
    ``ttl`` is in seconds, ``None`` for no expiry (see :class:`~satchel.stores.base.Store`).
    """

    name: ClassVar[str] = "store"
    record_cap: ClassVar[int | None] = None
    options: ClassVar[Mapping[str, Coercer]] = {}

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> AsyncStore:
        """Build the store from its coerced options (the sync twin's option names)."""
        raise ConfigurationError(f"the async {cls.name} store cannot be configured from settings")

    @property
    def address(self) -> str:
        """Where the store lives, for error messages (never with a password)."""
        return ""

    @abstractmethod
    async def load(self, key: str) -> Record | None:
        """The record under ``key`` with its version, or ``None``. Never writes."""

    @abstractmethod
    async def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        """Write ``data`` only if the record is still at ``expected_version`` (None: absent)."""

    @abstractmethod
    async def touch(self, key: str, ttl: int | None) -> bool:
        """Extend the record's expiry without rewriting it; ``False`` if it is gone."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the record; removing a missing record is not an error."""

    async def purge_expired(self) -> int:
        """Remove this store's own expired records and return how many."""
        return 0

    async def count(self) -> int | None:
        """How many records the store holds, or ``None`` where it cannot tell cheaply."""
        return None

    async def close(self) -> None:
        """Release connections, files and threads the store holds."""
