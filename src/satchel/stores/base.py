"""The store contract every store implements, sync (and, with the same rules, async).

A store holds opaque bytes under a key and knows nothing of sessions. Writes are
conditional: ``save`` names the version it expects to replace (``None``: the key
must be absent) and answers with the record's new version, or ``None`` when the
record moved on meanwhile. The contract suite in :mod:`satchel.testing` is the
executable form of this page.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

from ..clock import Clock, system_clock
from ..config.coerce import Coercer
from ..errors import ConfigurationError

#: An opaque token naming one state of a record; only equality matters.
Version = int | str | bytes

#: Keys stores accept: what the session policy derives (hex SHA-256, with a short
#: prefix for its own kinds of record) and cache keys after hashing. A strict
#: alphabet keeps file names and server keys safe.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.:\-]{1,250}")


class Record(NamedTuple):
    """What ``load`` returns: the stored bytes and the version they are at.

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
    name: ClassVar[str] = "store"

    #: How many records the session policy lets this store hold before new sessions
    #: are served but not saved, where ``max_records`` does not say (None: no cap).
    record_cap: ClassVar[int | None] = None

    #: The settings this store reads, by name without the ``session.`` (or
    #: ``cache.<region>.``) prefix, each with the coercer that types its value.
    #: The settings parser rejects names that are neither the session's nor here.
    options: ClassVar[Mapping[str, Coercer]] = {}

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> Store:
        """Build the store from its coerced options (only names in :attr:`options`;
        a name that is absent takes the store's default)."""
        raise ConfigurationError(f"the {cls.name} store cannot be configured from settings")

    @property
    def address(self) -> str:
        """Where the store lives, for error messages (never with a password)."""
        return ""

    @abstractmethod
    def load(self, key: str) -> Record | None:
        """The record under ``key`` with its version, or ``None``. Never writes."""

    @abstractmethod
    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        """Write ``data`` only if the record is still at ``expected_version``.

        ``expected_version=None`` means the record must not exist yet. Returns the
        record's new version (usable as the next ``expected_version``), or ``None``
        on a conflict: somebody else wrote, created or deleted it first.
        """

    @abstractmethod
    def touch(self, key: str, ttl: int | None) -> bool:
        """Extend the record's expiry without rewriting it; ``False`` if it is gone."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the record; removing a missing record is not an error."""

    def purge_expired(self) -> int:
        """Remove this store's own expired records and return how many; 0 where the
        server expires keys itself. Never touches anything the store did not write."""
        return 0

    def count(self) -> int | None:
        """How many records the store holds, or ``None`` where it cannot tell cheaply."""
        return None

    def count_excluding(self, data: bytes) -> int | None:
        """How many live records hold anything but exactly ``data``, or ``None`` where
        the store cannot tell. Reads every record on most stores: meant for statistics."""
        return None

    def close(self) -> None:
        """Release connections, files and threads the store holds."""
