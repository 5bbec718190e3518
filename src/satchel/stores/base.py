"""The store contract every store implements (see docs/architecture.md)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, NamedTuple

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..settings import StoreSettings

#: An opaque token naming one state of a record; only equality matters.
Version = int | str | bytes

#: Keys stores accept: what the session manager derives (hex SHA-256) and cache
#: keys after hashing. A strict alphabet keeps file names and server keys safe.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.:\-]{1,250}")


class Record(NamedTuple):
    """What ``load`` returns: the stored bytes and the version they are at.

    Immutable and hashable; a named tuple rather than a frozen dataclass, whose
    ``__init__`` costs twice as much, and one is built on every request.

    ``expires_at`` is the record's expiry as a Unix time when the store can tell
    it without another round trip, else ``None``.
    """

    data: bytes
    version: Version
    expires_at: float | None = None


def check_key(key: str) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise ValueError(f"store keys must match {KEY_PATTERN.pattern}, not {key!r}")
    return key


class Store(ABC):
    """Bytes in, bytes out, with conditional writes.

    ``ttl`` is in seconds; ``None`` means the record does not expire on its own.
    """

    #: Short name for log lines and errors ("redis", "file", ...).
    name: str = "store"

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> Store:
        raise ConfigurationError(f"the {cls.name} store cannot be configured from settings")

    @property
    def address(self) -> str:
        """Where the store lives, for error messages."""
        return ""

    @abstractmethod
    def load(self, key: str) -> Record | None:
        """The record under ``key`` with its version, or ``None``. Never writes."""

    @abstractmethod
    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> bool:
        """Write ``data`` only if the record is still at ``expected_version``.

        ``expected_version=None`` means the record must not exist yet. Returns
        ``False`` (a conflict) when somebody else wrote or deleted it first.
        """

    def save_version(
        self, key: str, data: bytes, ttl: int | None, expected_version: Version | None
    ) -> tuple[bool, Version | None]:
        """:meth:`save`, and the record's new version when the store can tell it
        (``None`` where it cannot, as memcached's ``cas`` does not say).

        A writer that writes one record twice in a request (a flash queue popped
        at once, then the request's other changes) makes its second write
        conditional on its own first one with it, instead of meeting it as a
        conflict.
        """
        return self.save(key, data, ttl, expected_version), None

    @abstractmethod
    def touch(self, key: str, ttl: int | None) -> bool:
        """Extend the record's expiry without rewriting it; ``False`` if it is gone."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the record; removing a missing record is not an error."""

    def purge_expired(self) -> int:
        """Remove expired records and return how many; 0 where the server expires keys."""
        return 0

    def count(self) -> int | None:
        """How many records the store holds, or ``None`` where it cannot tell cheaply."""
        return None

    def close(self) -> None:
        """Release connections, files and threads the store holds."""


class VersionedStore(Store):
    """A store whose writes know the record's new version: it implements
    :meth:`_save`, and ``save`` and ``save_version`` come from here.

    Where ``save`` was replaced (a subclass's own, or one set on the instance, as
    call counters do) and ``save_version`` was not, the replacement keeps
    deciding every write: ``save_version`` asks it and gives no version. Where
    both were replaced, each goes its own way (so a ``save`` written as a call of
    ``save_version`` does not loop).
    """

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> bool:
        return self._save(key, data, ttl, expected_version)[0]

    def save_version(
        self, key: str, data: bytes, ttl: int | None, expected_version: Version | None
    ) -> tuple[bool, Version | None]:
        if (
            getattr(self.save, "__func__", None) is not VersionedStore.save
            and getattr(self.save_version, "__func__", None) is VersionedStore.save_version
        ):
            return self.save(key, data, ttl, expected_version), None
        return self._save(key, data, ttl, expected_version)

    @abstractmethod
    def _save(
        self, key: str, data: bytes, ttl: int | None, expected_version: Version | None
    ) -> tuple[bool, Version | None]:
        """The conditional write of ``save``; (True, the new version) or (False, None)."""
