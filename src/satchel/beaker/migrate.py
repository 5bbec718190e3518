"""Converting a whole Beaker store ahead of the switch.

Each Beaker session is converted and stored, under :func:`migrated_key`, in the
store satchel will use; the transition mode adopts it when its visitor comes
back with Beaker's cookie. Records that cannot be read safely are counted as
refused and left as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..clock import Clock, system_clock
from ..codecs import encode_body, encode_record
from ..config import SessionConfig
from ..policy.timeouts import Timeouts
from ..stores.base import Store
from .readers import BeakerReader
from .records import convert
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
    counts, timeouts = Counts(), Timeouts(settings)
    for beaker_id in reader.ids():
        _one(reader, store, timeouts, beaker_id, counts, dry_run, delete_beaker, clock())
        if progress is not None:
            progress(counts)
    return counts


def _one(
    reader: BeakerReader,
    store: Store,
    timeouts: Timeouts,
    beaker_id: str,
    counts: Counts,
    dry_run: bool,
    delete_beaker: bool,
    now: float,
) -> None:
    try:
        stored = reader.load(beaker_id)
        converted = None if stored is None else convert(stored, now)
    except UnsafeRecord:
        counts.refused += 1
        return
    if (
        converted is None
        or timeouts.past_absolute(converted.created, now)
        or timeouts.idle_expired(converted.accessed, now)
    ):
        counts.skipped += 1
        return
    if dry_run:
        counts.converted += 1
        return
    body = encode_body(converted.data, converted.flash, converted.csrf, None)
    record = encode_record(converted.created, converted.accessed, body)
    if store.save(migrated_key(beaker_id), record, timeouts.ttl(converted.created, now), None) is None:
        counts.skipped += 1  # converted by an earlier run
    else:
        counts.converted += 1
    if delete_beaker:
        reader.delete(beaker_id)
