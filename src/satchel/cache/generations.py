"""Region invalidation that reaches every process at once: the generation record.

Each region on a shared backend has one small record,
``<key_prefix><region>.generation``, holding a number (and, after a soft
invalidation, its time). Every stored value is stamped with the generation it
was computed under, and a value whose stamp is not the current generation is a
miss. Invalidating the region is one write to that record, seen by every process
on its next read: each read fetches the record together with the value (one
``MGET`` on Redis, one ``get_many`` on memcached), so there is no window in
which another process still serves the old values.

:class:`Generations` is the part of a shared backend that does this; each
backend supplies the I/O (``load``, ``fetch``, ``write``, ``remove`` and the
record's ``read_record``, ``add_record``, ``swap_record``).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from dogpile.cache.api import NO_VALUE, SerializedReturnType

from ..config.cache import RegionConfig
from ..errors import StoreUnavailable
from .guards import RETRY_INTERVAL, Errors, Guard
from .keys import GenKey


def new_generation() -> bytes:
    """A generation never used before: the time in microseconds, times 1000, plus noise.

    Used when the record is missing (first use, or memcached evicted it). Earlier
    generations are smaller (each invalidation adds only 1), so no value stamped
    before becomes current again, however soon the record is recreated.
    """
    return str((time.time_ns() // 1000) * 1000 + secrets.randbelow(1000)).encode("ascii")


class RegionState:
    """What every process learns from the generation record on each read."""

    __slots__ = ("soft",)

    def __init__(self) -> None:
        #: Values created before this Unix time are soft-invalidated (0: none).
        self.soft = 0.0


@dataclass(frozen=True)
class Wiring:
    """What satchel hands a backend besides dogpile's own arguments (under the name ``satchel``)."""

    config: RegionConfig
    base: str
    state: RegionState
    guard: Guard

    @property
    def generation_key(self) -> str:
        return f"{self.config.key_prefix}{self.config.name}.generation"


def unstamp(raw: bytes | None, gen: bytes) -> SerializedReturnType:
    """The value dogpile stored, if ``raw`` carries the current generation and is well formed.

    Bytes that are not ``<gen>|<dogpile's JSON metadata>|<payload>`` (written by
    other code, or damaged) are a miss: dogpile would fail on them.
    """
    if raw is None:
        return NO_VALUE
    n = len(gen)
    if raw[n : n + 1] != b"|" or not raw.startswith(gen):
        return NO_VALUE
    body = raw[n + 1 :]
    metadata, separator, _ = body.partition(b"|")
    if not separator:
        return NO_VALUE
    try:
        parsed = json.loads(metadata)
    except ValueError:
        return NO_VALUE
    if not isinstance(parsed, dict) or not isinstance(parsed.get("ct"), (int, float)) or "v" not in parsed:
        return NO_VALUE
    return body


class Generations:
    """The generation logic every shared backend has, on dogpile's bytes-backend API.

    Class attributes describe the backend to the region that configures it:
    the longest key it takes, the characters it takes unchanged, how long a
    failure closes its guard, and its driver's errors (``failures``).
    """

    #: The longest key the backend takes (room for its lock key's extra characters included).
    max_key_length: ClassVar[int] = 250
    #: The characters the backend takes in a key unchanged (None: any).
    key_alphabet: ClassVar[str | None] = r"[A-Za-z0-9_.:\-]+"
    #: After a failure, skip the backend this long (seconds; 0: the client decides).
    retry_interval: ClassVar[float] = RETRY_INTERVAL

    wiring: Wiring
    state: RegionState
    gen_key: str
    ttl: int | None

    @classmethod
    def failures(cls) -> tuple[Errors, Errors]:
        """The driver's errors: (server unreachable, server answered with an error)."""
        return (), ()

    def wire(self, arguments: Mapping[str, Any]) -> None:
        self.wiring = arguments["satchel"]
        self.state = self.wiring.state
        self.gen_key = self.wiring.generation_key
        self.ttl = self.wiring.config.server_ttl

    # -- I/O, per backend --------------------------------------------------------

    def load(self, key: str) -> bytes | None:
        raise NotImplementedError

    def fetch(self, keys: list[str]) -> tuple[bytes | None, list[bytes | None]]:
        """The generation record and the values, in one round trip where the server allows."""
        return self.read_record(), [self.load(k) for k in keys]

    def write(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def remove(self, key: str) -> None:
        raise NotImplementedError

    def read_record(self) -> bytes | None:
        return self.load(self.gen_key)

    def add_record(self, record: bytes) -> bool:
        """Create the record unless it exists; True if this call created it."""
        raise NotImplementedError

    def swap_record(self, update: Callable[[bytes | None], bytes]) -> None:
        """Replace the record with ``update(current)``, atomically against other writers."""
        raise NotImplementedError

    def reclaim(self) -> int:
        """Delete the region's values where the backend can list them; how many."""
        return 0

    # -- the generation ------------------------------------------------------------

    def _generation(self, record: bytes | None) -> bytes:
        if record is None:
            record = self._create_record()
        gen, _, soft = record.partition(b" ")
        try:
            self.state.soft = float(soft) if soft else 0.0
        except ValueError:  # not written by satchel: only the number matters
            self.state.soft = 0.0
        return gen

    def _create_record(self) -> bytes:
        initial = new_generation()
        if self.add_record(initial):
            return initial
        record = self.read_record()
        if record is None:
            raise StoreUnavailable("the generation record can be neither created nor read")
        return record

    def current_generation(self) -> bytes:
        return self._generation(self.read_record())

    def bump(self, hard: bool) -> None:
        """Invalidate every value (hard), or mark them all expired (soft), in every process."""

        def update(record: bytes | None) -> bytes:
            try:
                gen = int(record.partition(b" ")[0]) + (1 if hard else 0) if record else int(new_generation())
            except ValueError:  # damaged: start afresh
                gen = int(new_generation())
            if hard:
                return str(gen).encode("ascii")
            return f"{gen} {time.time():.6f}".encode("ascii")

        self.swap_record(update)

    # -- dogpile's backend API -------------------------------------------------------

    def get_serialized(self, key: str) -> SerializedReturnType:
        return self.get_serialized_multi([key])[0]

    def get_serialized_multi(self, keys: Iterable[str]) -> Sequence[SerializedReturnType]:
        keys = list(keys)
        if not keys:
            return []
        record, raws = self.fetch(keys)
        gen = self._generation(record)
        for key in keys:
            if isinstance(key, GenKey):
                key.gen = gen
                key.blind = False
        return [unstamp(raw, gen) for raw in raws]

    def set_serialized(self, key: str, value: bytes) -> None:
        self.set_serialized_multi({key: value})

    def set_serialized_multi(self, mapping: Mapping[str, bytes]) -> None:
        current: bytes | None = None
        for key, value in mapping.items():
            if getattr(key, "blind", False):
                continue  # the generation before the creator ran is unknown: serve it uncached
            gen = getattr(key, "gen", None)
            if gen is None:
                current = current or self.current_generation()
                gen = current
            self.write(key, gen + b"|" + value)

    def delete(self, key: str) -> None:
        self.remove(key)

    def delete_multi(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.remove(key)


__all__ = ["Generations", "RegionState", "Wiring", "new_generation", "unstamp"]
