"""Converting a whole Beaker store ahead of the switch.

Each Beaker session is converted and stored, under :func:`migrated_key`, in the
store satchel will use; the transition mode adopts it when its visitor comes
back with Beaker's cookie. Records that cannot be read safely are counted as
refused and left as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..clock import Clock, system_clock
from ..codecs import encode_body, encode_record
from ..config import SessionConfig
from ..policy.timeouts import Timeouts
from ..stores.base import Store
from .readers import BeakerReader
from .records import BeakerSession, convert
from .transition import migrated_key
from .unpickle import UnsafeRecord


@dataclass
class Counts:
    """What a migration did, session by session."""

    converted: int = 0
    #: Gone meanwhile, empty, past satchel's timeouts, or converted already.
    skipped: int = 0
    #: Not plain data, encrypted, or unreadable: left as they are.
    refused: int = 0

    @property
    def seen(self) -> int:
        return self.converted + self.skipped + self.refused


def migrate(
    reader: BeakerReader,
    store: Store,
    settings: SessionConfig,
    *,
    dry_run: bool = False,
    delete_beaker: bool = False,
    progress: Callable[[Counts], None] | None = None,
    clock: Clock = system_clock,
) -> Counts:
    """Convert every Beaker session ``reader`` lists into ``store``."""
    migration = _Migration(reader, store, Timeouts(settings), dry_run, delete_beaker)
    for beaker_id in reader.ids():
        migration.convert(beaker_id, clock())
        if progress is not None:
            progress(migration.counts)
    return migration.counts


@dataclass
class _Migration:
    reader: BeakerReader
    store: Store
    timeouts: Timeouts
    dry_run: bool
    delete_beaker: bool
    counts: Counts = field(default_factory=Counts)

    def convert(self, beaker_id: str, now: float) -> None:
        try:
            stored = self.reader.load(beaker_id)
            converted = None if stored is None else convert(stored, now)
        except UnsafeRecord:
            self.counts.refused += 1
            return
        if converted is None or self._expired(converted, now):
            self.counts.skipped += 1
            return
        if self.dry_run:
            self.counts.converted += 1
            return
        body = encode_body(converted.data, converted.flash, converted.csrf, None)
        record = encode_record(converted.created, converted.accessed, body)
        ttl = self.timeouts.ttl(converted.created, now)
        if self.store.save(migrated_key(beaker_id), record, ttl, None) is None:
            self.counts.skipped += 1  # converted by an earlier run
        else:
            self.counts.converted += 1
        if self.delete_beaker:
            self.reader.delete(beaker_id)

    def _expired(self, session: BeakerSession, now: float) -> bool:
        return self.timeouts.past_absolute(session.created, now) or self.timeouts.idle_expired(session.accessed, now)
