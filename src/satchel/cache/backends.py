"""dogpile.cache backends for satchel's regions, and what makes them safe to share.

- Redis and memcached are dogpile's own backends (``dogpile.cache.redis``,
  ``dogpile.cache.pymemcache``) with ``distributed_lock`` on, subclassed only to
  add the region generation, bounded timeouts, ``TCP_NODELAY`` for memcached, a
  memcached client that never unpickles and never moves keys to another server,
  and locks that expire.
- File and SQL backends exist because dogpile has none that fit: they store
  bytes in satchel's :class:`~satchel.stores.file.FileStore` (one atomic file
  per key) and :class:`~satchel.stores.sql.SQLStore`.

**The generation.** Each region on a shared backend has one small record,
``<key_prefix><region>.generation``, holding a number (and, after a soft
invalidation, its time). Every stored value is stamped with the generation it
was computed under, and a value whose stamp is not the current generation is a
miss. Invalidating the region is one write to that record, seen by every process
on its next read: each read fetches the record together with the value (one
``MGET`` on Redis, one ``get_many`` on memcached), so there is no window in
which another process still serves the old values.

**Locks.** dogpile elects one creator per key with ``get_mutex``. Here that is
a :class:`LayeredMutex`: a thread lock (so threads of one process queue without
touching the server) in front of a lock every process sees: a Redis lock, a
memcached ``add``, an ``flock`` on the key's lock file, or a row in the SQL table. The
shared locks expire after ``lock_timeout`` seconds (flock: when the process
dies), so a crashed creator never blocks a key for good.

**Outages.** :class:`GuardProxy` wraps every shared backend: when the server
cannot be reached, reads are misses, writes are skipped, nothing is locked, and
one warning is logged (then at most one a minute while it lasts). The
application keeps answering with freshly computed values.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from dogpile.cache.api import NO_VALUE, BytesBackend, CacheMutex, SerializedReturnType
from dogpile.cache.backends import register_backend
from dogpile.cache.backends.memcached import PyMemcacheBackend
from dogpile.cache.backends.memory import MemoryBackend
from dogpile.cache.backends.redis import RedisBackend
from dogpile.cache.proxy import ProxyBackend

from ..errors import StoreError, StoreUnavailable
from ..settings import StoreSettings
from .keys import GenKey
from .serializers import check_json
from .settings import RegionConfig

if TYPE_CHECKING:
    from ..stores.base import Store

log = logging.getLogger("satchel.cache")

#: Seconds to connect to a cache server and to wait for its answer.
SERVER_TIMEOUT = 1.0
#: After a failure, a Redis/SQL/file region skips its backend this long (seconds).
RETRY_INTERVAL = 1.0
#: While a backend keeps failing, one warning per this many seconds.
LOG_INTERVAL = 60.0
MEMCACHED_MAX_RELATIVE_EXPIRY = 30 * 24 * 3600


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


class Guard:
    """Tracks a shared backend's failures: what to skip, and what to log."""

    def __init__(
        self,
        region: str,
        kind: str,
        address: str,
        unavailable: tuple[type[BaseException], ...],
        refused: tuple[type[BaseException], ...],
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        self.region = region
        self.kind = kind
        self.address = address
        self.unavailable: tuple[type[BaseException], ...] = (StoreUnavailable, *unavailable)
        self.refused: tuple[type[BaseException], ...] = (StoreError, *refused)
        self.failures: tuple[type[BaseException], ...] = self.unavailable + self.refused
        self.retry_interval = retry_interval
        self.down_until = 0.0
        self.failing = False
        self._logged = -LOG_INTERVAL
        self._refusal_logged = -LOG_INTERVAL
        self._suppressed = 0

    def closed(self) -> bool:
        """True while a recent failure says not to try the backend."""
        return self.down_until > time.monotonic()

    def failed(self, exc: BaseException, action: str) -> None:
        now = time.monotonic()
        if self.retry_interval:
            self.down_until = now + self.retry_interval
        first = not self.failing
        self.failing = True
        if first or now - self._logged >= LOG_INTERVAL:
            self._logged = now
            more = f" ({self._suppressed} more failures since the last warning)" if self._suppressed else ""
            self._suppressed = 0
            log.warning(
                "cache region %s: %s at %s is unavailable (%s: %s: %s); serving values uncached%s",
                self.region,
                self.kind,
                self.address,
                action,
                type(exc).__name__,
                exc,
                more,
            )
        else:
            self._suppressed += 1

    def refused_(self, exc: BaseException, action: str) -> None:
        now = time.monotonic()
        if now - self._refusal_logged >= LOG_INTERVAL:
            self._refusal_logged = now
            log.warning(
                "cache region %s: %s at %s refused to %s (%s: %s); the value is not cached",
                self.region,
                self.kind,
                self.address,
                action,
                type(exc).__name__,
                exc,
            )

    def recovered(self) -> None:
        self.failing = False
        self.down_until = 0.0
        log.warning("cache region %s: %s at %s is reachable again", self.region, self.kind, self.address)

    def error(self, exc: BaseException, action: str) -> StoreUnavailable:
        """The exception for an operation that must not fail silently (deleting, invalidating)."""
        return StoreUnavailable(
            f"cache region {self.region}: cannot {action}: {self.kind} at {self.address} failed "
            f"({type(exc).__name__}: {exc})",
            self.kind,
            self.address,
        )


def _blind(*keys: str) -> None:
    """Mark keys whose read failed or was skipped: their values must not be stored."""
    for key in keys:
        if isinstance(key, GenKey):
            key.blind = True


class GuardProxy(ProxyBackend):
    """Keeps a region working while its server is down: misses, skipped writes, a warning."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def get_serialized(self, key: str) -> SerializedReturnType:
        guard = self.guard
        if guard.down_until and guard.closed():
            _blind(key)
            return NO_VALUE
        try:
            value = self.proxied.get_serialized(key)
        except guard.unavailable as exc:
            guard.failed(exc, "read")
            _blind(key)
            return NO_VALUE
        except guard.refused as exc:
            guard.refused_(exc, "read")
            _blind(key)
            return NO_VALUE
        if guard.failing:
            guard.recovered()
        return value

    def get_serialized_multi(self, keys: Iterable[str]) -> Sequence[SerializedReturnType]:
        keys = list(keys)
        guard = self.guard
        if guard.down_until and guard.closed():
            _blind(*keys)
            return [NO_VALUE] * len(keys)
        try:
            values = self.proxied.get_serialized_multi(keys)
        except guard.unavailable as exc:
            guard.failed(exc, "read")
            _blind(*keys)
            return [NO_VALUE] * len(keys)
        except guard.refused as exc:
            guard.refused_(exc, "read")
            _blind(*keys)
            return [NO_VALUE] * len(keys)
        if guard.failing:
            guard.recovered()
        return values

    def set_serialized(self, key: str, value: bytes) -> None:
        guard = self.guard
        if getattr(key, "blind", False):
            return  # not written: so nothing to learn about the backend from it
        if guard.down_until and guard.closed():
            return
        try:
            self.proxied.set_serialized(key, value)
        except guard.unavailable as exc:
            guard.failed(exc, "write")
            return
        except guard.refused as exc:
            guard.refused_(exc, "write")
            return
        if guard.failing:
            guard.recovered()

    def set_serialized_multi(self, mapping: Mapping[str, bytes]) -> None:
        guard = self.guard
        if guard.down_until and guard.closed():
            return
        try:
            self.proxied.set_serialized_multi(mapping)
        except guard.unavailable as exc:
            guard.failed(exc, "write")
        except guard.refused as exc:
            guard.refused_(exc, "write")

    def delete(self, key: str) -> None:
        try:
            self.proxied.delete(key)
        except self.guard.failures as exc:
            raise self.guard.error(exc, "delete a value") from exc

    def delete_multi(self, keys: Iterable[str]) -> None:
        try:
            self.proxied.delete_multi(keys)
        except self.guard.failures as exc:
            raise self.guard.error(exc, "delete values") from exc


class Mutex(Protocol):
    """What dogpile asks of a lock (:class:`~dogpile.cache.api.CacheMutex`)."""

    def acquire(self, wait: bool = True) -> bool: ...

    def release(self) -> None: ...

    def locked(self) -> bool: ...


class LayeredMutex(CacheMutex):
    """A thread lock in front of a lock shared by every process.

    Threads of one process queue on the thread lock, so only one of them talks
    to the server at a time. While the server is unreachable nothing is locked:
    a value that cannot be stored would otherwise be computed once per waiting
    thread, one after the other, and the last caller would wait for them all.
    """

    def __init__(self, shared: Mutex, guard: Guard) -> None:
        self._local = threading.Lock()
        self._shared = shared
        self._guard = guard
        self._holder = threading.local()  # what this thread holds: released by the same thread

    def acquire(self, wait: bool = True) -> bool:
        guard = self._guard
        if guard.down_until and guard.closed():
            self._holder.held = False
            return True
        if not self._local.acquire(wait):
            return False
        try:
            got = self._shared.acquire(wait)
        except guard.unavailable as exc:
            guard.failed(exc, "lock")
            self._local.release()
            self._holder.held = False
            return True
        except guard.refused as exc:
            # Refused (out of memory, an error answer): compute uncached, as reads and
            # writes do on the same refusal, rather than fail the application's request.
            guard.refused_(exc, "lock")
            self._local.release()
            self._holder.held = False
            return True
        except BaseException:
            self._local.release()
            raise
        if not got:
            self._local.release()
            return False
        self._holder.held = True
        return True

    def release(self) -> None:
        if not getattr(self._holder, "held", False):
            return
        self._holder.held = False
        guard = self._guard
        try:
            self._shared.release()
        except guard.unavailable as exc:
            guard.failed(exc, "unlock")
        except guard.refused as exc:
            log.warning(
                "cache region %s: the creation lock expired before the value was ready (%s); "
                "raise lock_timeout above the slowest creator",
                guard.region,
                exc,
            )
        finally:
            self._local.release()

    def locked(self) -> bool:
        if self._local.locked():
            return True
        try:
            return bool(self._shared.locked())
        except self._guard.failures:
            return False


@dataclass(frozen=True)
class Wiring:
    """What satchel hands a backend besides dogpile's own arguments."""

    config: RegionConfig
    base: str
    state: RegionState
    guard: Guard

    @property
    def generation_key(self) -> str:
        return f"{self.config.key_prefix}{self.config.name}.generation"


class Generations:
    """The generation logic every shared backend has; subclasses supply the I/O."""

    wiring: Wiring
    state: RegionState
    gen_key: str
    ttl: int | None

    def _wire(self, arguments: dict[str, Any]) -> None:
        self.wiring = arguments.pop("satchel")
        self.state = self.wiring.state
        self.gen_key = self.wiring.generation_key
        self.ttl = self.wiring.config.server_ttl

    # -- I/O, per backend --------------------------------------------------------

    def _load(self, key: str) -> bytes | None:
        raise NotImplementedError

    def _fetch(self, key: str) -> tuple[bytes | None, bytes | None]:
        """The generation record and the value, in one round trip where the server allows."""
        return self._read_record(), self._load(key)

    def _fetch_multi(self, keys: list[str]) -> tuple[bytes | None, list[bytes | None]]:
        return self._read_record(), [self._load(k) for k in keys]

    def _write(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def _remove(self, key: str) -> None:
        raise NotImplementedError

    def _read_record(self) -> bytes | None:
        raise NotImplementedError

    def _add_record(self, record: bytes) -> bool:
        """Create the record unless it exists; True if this call created it."""
        raise NotImplementedError

    def _swap_record(self, update: Callable[[bytes | None], bytes]) -> None:
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
        if self._add_record(initial):
            return initial
        record = self._read_record()
        if record is None:
            raise StoreUnavailable("the generation record can be neither created nor read")
        return record

    def current_generation(self) -> bytes:
        return self._generation(self._read_record())

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

        self._swap_record(update)

    # -- dogpile's backend API -------------------------------------------------------

    @staticmethod
    def _unstamp(raw: bytes | None, gen: bytes) -> SerializedReturnType:
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

    def get_serialized(self, key: str) -> SerializedReturnType:
        record, raw = self._fetch(key)
        gen = self._generation(record)
        if isinstance(key, GenKey):
            key.gen = gen
            key.blind = False
        return self._unstamp(raw, gen)

    def get_serialized_multi(self, keys: Iterable[str]) -> Sequence[SerializedReturnType]:
        keys = list(keys)
        if not keys:
            return []
        record, raws = self._fetch_multi(keys)
        gen = self._generation(record)
        values: list[SerializedReturnType] = []
        for key, raw in zip(keys, raws, strict=True):
            if isinstance(key, GenKey):
                key.gen = gen
                key.blind = False
            values.append(self._unstamp(raw, gen))
        return values

    def set_serialized(self, key: str, value: bytes) -> None:
        if getattr(key, "blind", False):
            return  # the generation before the creator ran is unknown: serve it uncached
        gen = getattr(key, "gen", None) or self.current_generation()
        self._write(key, gen + b"|" + value)

    def set_serialized_multi(self, mapping: Mapping[str, bytes]) -> None:
        current: bytes | None = None
        for key, value in mapping.items():
            if getattr(key, "blind", False):
                continue
            gen = getattr(key, "gen", None)
            if gen is None:
                current = current or self.current_generation()
                gen = current
            self._write(key, gen + b"|" + value)

    def delete(self, key: str) -> None:
        self._remove(key)

    def delete_multi(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._remove(key)


# -- memory -------------------------------------------------------------------------------


class CheckedMemoryBackend(MemoryBackend):
    """dogpile's memory backend (values kept as they are), refusing what JSON cannot hold.

    A region that is ``memory`` in development and ``ext:redis`` in production
    then fails on the same values in both.
    """

    def set(self, key: str, value: Any) -> None:
        check_json(value.payload)
        self._cache[key] = value

    def set_multi(self, mapping: Mapping[str, Any]) -> None:
        for value in mapping.values():
            check_json(value.payload)
        self._cache.update(mapping)


# -- Redis ----------------------------------------------------------------------------------


def redis_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(server unreachable, server answered with an error) for redis-py."""
    from redis import exceptions as rx

    return (rx.ConnectionError, rx.TimeoutError, rx.ReadOnlyError, OSError), (rx.RedisError,)


class RedisCacheBackend(Generations, RedisBackend):
    """``dogpile.cache.redis`` with a distributed lock, plus the region generation.

    A read is one ``MGET`` of the generation record and the value.
    """

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        args = dict(arguments)
        self._wire(args)
        super().__init__(args)  # type: ignore[no-untyped-call]

    def _load(self, key: str) -> bytes | None:
        return cast("bytes | None", self.reader_client.get(key))

    def _fetch(self, key: str) -> tuple[bytes | None, bytes | None]:
        record, raw = cast("list[bytes | None]", self.reader_client.mget(self.gen_key, key))
        return record, raw

    def _fetch_multi(self, keys: list[str]) -> tuple[bytes | None, list[bytes | None]]:
        record, *raws = cast("list[bytes | None]", self.reader_client.mget(self.gen_key, *keys))
        return record, raws

    def _write(self, key: str, data: bytes) -> None:
        self.writer_client.set(key, data, ex=self.ttl)

    def _remove(self, key: str) -> None:
        self.writer_client.delete(key)

    def _read_record(self) -> bytes | None:
        return cast("bytes | None", self.reader_client.get(self.gen_key))

    def _add_record(self, record: bytes) -> bool:
        return bool(self.writer_client.set(self.gen_key, record, nx=True))

    def _swap_record(self, update: Callable[[bytes | None], bytes]) -> None:
        def swap(pipe: Any) -> None:
            new = update(pipe.get(self.gen_key))
            pipe.multi()
            pipe.set(self.gen_key, new)

        self.writer_client.transaction(swap, self.gen_key)

    def reclaim(self) -> int:
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self.wiring.base) + "*"
        removed = 0
        batch: list[bytes] = []
        for name in self.writer_client.scan_iter(match=pattern, count=1000):
            batch.append(name)
            if len(batch) >= 500:
                removed += int(self.writer_client.unlink(*batch))
                batch = []
        if batch:
            removed += int(self.writer_client.unlink(*batch))
        return removed

    def get_mutex(self, key: str) -> CacheMutex:
        shared = super().get_mutex(key)  # type: ignore[no-untyped-call]
        assert shared is not None  # distributed_lock is always on
        return LayeredMutex(shared, self.wiring.guard)


# -- memcached ------------------------------------------------------------------------------


def memcached_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    from pymemcache.exceptions import MemcacheError, MemcacheUnexpectedCloseError

    return (OSError, MemcacheUnexpectedCloseError), (MemcacheError,)


def memcached_expiry(ttl: int | None) -> int:
    """memcached's ``exptime`` keeping a value at least ``ttl`` seconds (0: no expiry)."""
    if ttl is None:
        return 0
    seconds = ttl + 1  # memcached's clock ticks once a second
    return seconds if seconds <= MEMCACHED_MAX_RELATIVE_EXPIRY else int(time.time()) + seconds


class BytesSerde:
    """pymemcache serde that stores bytes and returns bytes: it never unpickles.

    pymemcache's default serde unpickles any value whose flags say "pickled", so
    whoever can write to the server could make this application run code.
    """

    def serialize(self, key: Any, value: Any) -> tuple[bytes, int]:
        if isinstance(value, bytes):
            return value, 0
        return str(value).encode("ascii"), 0

    def deserialize(self, key: Any, value: bytes, flags: int) -> bytes:
        return value


class ServerDown(ConnectionError):
    """A memcached server failed less than ``retry_timeout`` seconds ago: not tried again yet."""


@functools.cache
def strict_hash_client() -> type[Any]:
    """pymemcache's ``HashClient``, changed to keep every key on its own server.

    The stock client, after a few failures, removes the server and sends its
    keys to the others (where a stale generation record may be waiting), and
    meanwhile answers some calls with a silent default. This one raises instead,
    and skips a failed server for ``retry_timeout`` seconds without waiting on it.
    """
    from pymemcache.client.hash import HashClient
    from pymemcache.exceptions import MemcacheUnexpectedCloseError

    class StrictHashClient(HashClient):  # type: ignore[misc]
        def _safely_run_func(
            self, client: Any, func: Callable[..., Any], default_val: Any, *args: Any, **kwargs: Any
        ) -> Any:
            failed = self._failed_clients.get(client.server)
            if failed is not None and time.monotonic() - failed["failed_time"] < self.retry_timeout:
                raise ServerDown(f"memcached {client.server} failed less than {self.retry_timeout}s ago")
            try:
                result = func(*args, **kwargs)
            except (OSError, MemcacheUnexpectedCloseError):
                self._failed_clients[client.server] = {"failed_time": time.monotonic(), "attempts": 0}
                raise
            if failed is not None:
                self._failed_clients.pop(client.server, None)
            return result

    return StrictHashClient


class _ExpiringMutex:
    """A lock every process sees: a key only one caller can create, expiring after
    ``timeout`` so a creator that died never blocks it. Waiters poll with backoff."""

    __slots__ = ("_key", "_timeout", "_token")
    max_delay = 0.2

    def __init__(self, key: str, timeout: int) -> None:
        self._key = key
        self._timeout = timeout
        self._token = b""

    def _create(self, token: bytes) -> bool:
        raise NotImplementedError

    def acquire(self, wait: bool = True) -> bool:
        token = secrets.token_hex(8).encode("ascii")
        delay = 0.01
        while True:
            if self._create(token):
                self._token = token
                return True
            if not wait:
                return False
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.max_delay)


class MemcachedMutex(_ExpiringMutex):
    """The lock as a memcached ``add``."""

    __slots__ = ("_client",)

    def __init__(self, client: Callable[[], Any], key: str, timeout: int) -> None:
        super().__init__(key, timeout)
        self._client = client

    def _create(self, token: bytes) -> bool:
        return bool(self._client().add(self._key, token, expire=self._timeout + 1, noreply=False))

    def release(self) -> None:
        client = self._client()
        if client.get(self._key) == self._token:
            client.delete(self._key, noreply=False)

    def locked(self) -> bool:
        return self._client().get(self._key) is not None


class MemcachedCacheBackend(Generations, PyMemcacheBackend):
    """``dogpile.cache.pymemcache`` with a distributed lock, plus the region generation.

    A read is one ``get_many`` of the generation record and the value (one round
    trip when both live on one server, two otherwise).
    """

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        args = dict(arguments)
        self._wire(args)
        super().__init__(args)  # type: ignore[no-untyped-call]
        self._exptime = memcached_expiry(self.ttl)

    def _create_client(self) -> Any:
        return strict_hash_client()(
            self.url,
            serde=BytesSerde(),
            connect_timeout=SERVER_TIMEOUT,
            timeout=SERVER_TIMEOUT,
            no_delay=True,  # each request is one small write: do not let Nagle hold it back
            retry_attempts=1,
            retry_timeout=RETRY_INTERVAL,
            ignore_exc=False,
            default_noreply=False,
        )

    def _load(self, key: str) -> bytes | None:
        value: bytes | None = self.client.get(key)
        return value

    def _fetch(self, key: str) -> tuple[bytes | None, bytes | None]:
        found = self.client.get_many([self.gen_key, key])
        return found.get(self.gen_key), found.get(key)

    def _fetch_multi(self, keys: list[str]) -> tuple[bytes | None, list[bytes | None]]:
        found = self.client.get_many([self.gen_key, *keys])
        return found.get(self.gen_key), [found.get(k) for k in keys]

    def _write(self, key: str, data: bytes) -> None:
        self.client.set(key, data, expire=self._exptime, noreply=False)

    def _remove(self, key: str) -> None:
        self.client.delete(key, noreply=False)

    def _read_record(self) -> bytes | None:
        record: bytes | None = self.client.get(self.gen_key)
        return record

    def _add_record(self, record: bytes) -> bool:
        return bool(self.client.add(self.gen_key, record, expire=0, noreply=False))

    def _swap_record(self, update: Callable[[bytes | None], bytes]) -> None:
        client = self.client
        for _ in range(100):
            record, cas = client.gets(self.gen_key)
            new = update(record)
            if record is None:
                if client.add(self.gen_key, new, expire=0, noreply=False):
                    return
            elif client.cas(self.gen_key, new, cas, expire=0, noreply=False):
                return
        raise StoreUnavailable("the generation record kept changing; try again", "memcached")

    def get_mutex(self, key: str) -> CacheMutex:
        timeout = self.wiring.config.lock_timeout
        return LayeredMutex(MemcachedMutex(lambda: self.client, "_lock" + key, timeout), self.wiring.guard)


# -- satchel's stores (file, SQL) -------------------------------------------------------------


class StoreCacheBackend(Generations, BytesBackend):
    """A region on one of satchel's byte stores."""

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        args = dict(arguments)
        self._wire(args)
        self._store: Store | None = None
        self._store_lock = threading.Lock()

    def _open(self) -> Store:
        raise NotImplementedError

    @property
    def store(self) -> Store:
        store = self._store
        if store is None:
            with self._store_lock:
                store = self._store
                if store is None:
                    store = self._store = self._connect()
        return store

    def _connect(self) -> Store:
        """Open the store, under ``_store_lock``: one thread connects, the others wait.

        The threads that waited while the database did not answer do not each try
        again (one connect timeout after another): the failure closes the guard, and
        while it is closed they fail at once.
        """
        guard = self.wiring.guard
        if guard.closed():
            raise StoreUnavailable(
                f"cache region {guard.region}: {guard.kind} at {guard.address} failed moments ago",
                guard.kind,
                guard.address,
            )
        try:
            return self._open()
        except guard.unavailable:
            if guard.retry_interval:
                guard.down_until = time.monotonic() + guard.retry_interval
            raise

    def _load(self, key: str) -> bytes | None:
        record = self.store.load(key)
        return None if record is None else record.data

    def _write(self, key: str, data: bytes) -> None:
        store = self.store
        current = store.load(key)
        # The write replaces what is stored, even a value stamped with the current
        # generation: that one may have expired or been soft-invalidated (both are
        # decided by its creation time, within the generation), and keeping it would
        # make every caller compute the value again. The version only settles a race:
        # if another process stored a value between the load and this save, the save
        # fails and their value (as fresh as this one) stays.
        store.save(key, data, self.ttl, None if current is None else current.version)

    def reclaim(self) -> int:
        """Delete expired values and lock records (old-generation values expire after ``server_ttl``)."""
        return self.store.purge_expired()

    def _remove(self, key: str) -> None:
        self.store.delete(key)

    def _read_record(self) -> bytes | None:
        record = self.store.load(self.gen_key)
        return None if record is None else record.data

    def _add_record(self, record: bytes) -> bool:
        return self.store.save(self.gen_key, record, None, None) is not None

    def _swap_record(self, update: Callable[[bytes | None], bytes]) -> None:
        store = self.store
        for _ in range(100):
            current = store.load(self.gen_key)
            new = update(None if current is None else current.data)
            if store.save(self.gen_key, new, None, None if current is None else current.version) is not None:
                return
        raise StoreUnavailable("the generation record kept changing; try again", self.wiring.config.type)


class FlockMutex:
    """A lock every process on this machine sees: ``flock`` on the key's own lock file.

    One file per key (not stripes shared by many keys: a cached function that
    calls another would then deadlock whenever both keys fell on one stripe). The
    file exists only while its key is being computed: the holder removes it
    before unlocking, and a waiter that then gets the lock of the removed file
    notices (the path names another file, or none) and starts again. The kernel
    releases the lock of a process that dies; its file is reused.
    """

    __slots__ = ("_fd", "_path")

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def _open(self) -> int:
        try:
            return os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open the lock file {self._path}: {exc}", "file") from exc

    def acquire(self, wait: bool = True) -> bool:
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
                current = os.stat(self._path)
            except BlockingIOError:
                os.close(fd)
                return False
            except FileNotFoundError:
                os.close(fd)  # the holder we waited for removed it: try the new one
                continue
            except OSError as exc:
                os.close(fd)
                raise StoreUnavailable(f"cannot lock {self._path}: {exc}", "file") from exc
            mine = os.fstat(fd)
            if (mine.st_dev, mine.st_ino) != (current.st_dev, current.st_ino):
                os.close(fd)
                continue
            self._fd = fd
            return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self._path)  # while still locked: nobody can hold this file after us
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def locked(self) -> bool:
        if self._fd is not None:
            return True
        try:
            fd = os.open(self._path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


class FileCacheBackend(StoreCacheBackend):
    """Values in satchel's file store: one file per key, written atomically."""

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        super().__init__(arguments)
        config = self.wiring.config
        assert config.data_dir is not None
        self.lock_dir = Path(config.lock_dir) if config.lock_dir else Path(config.data_dir) / ".locks"
        self._store = self._open()  # a directory that cannot be created is a start-up error

    def _open(self) -> Store:
        from ..stores.file import FileStore

        config = self.wiring.config
        assert config.data_dir is not None
        return FileStore(config.data_dir, config.lock_dir)

    def get_mutex(self, key: str) -> CacheMutex:
        name = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
        return LayeredMutex(FlockMutex(self.lock_dir / f"cache-{name}.lock"), self.wiring.guard)


class StoreMutex(_ExpiringMutex):
    """The lock as a store record created only if absent, with a TTL."""

    __slots__ = ("_backend",)

    def __init__(self, backend: StoreCacheBackend, key: str, timeout: int) -> None:
        super().__init__(key, timeout)
        self._backend = backend

    def _create(self, token: bytes) -> bool:
        return self._backend.store.save(self._key, token, self._timeout, None) is not None

    def release(self) -> None:
        store = self._backend.store
        record = store.load(self._key)
        if record is not None and record.data == self._token:
            store.delete(self._key)

    def locked(self) -> bool:
        return self._backend.store.load(self._key) is not None


class SQLCacheBackend(StoreCacheBackend):
    """Values in satchel's SQL store (its own table, ``satchel_cache`` by default).

    The database is first reached on first use, so an application starts while
    it is down (and serves uncached values until it is back).
    """

    def _open(self) -> Store:
        from ..stores.sql import SQLStore

        config = self.wiring.config
        settings = StoreSettings(
            type="sql",
            url=config.url,
            table_name=config.table_name,
            schema_name=config.schema_name,
            sa_options=_cache_sa_options(config.url, config.sa_options),
            engine=config.engine,
        )
        return SQLStore.from_settings(settings)

    def get_mutex(self, key: str) -> CacheMutex:
        from .keys import hashed

        name = f"{self.wiring.config.key_prefix}{self.wiring.config.name}.lock:{hashed(key)}"
        return LayeredMutex(StoreMutex(self, name, self.wiring.config.lock_timeout), self.wiring.guard)


#: Seconds a cache region waits to connect to PostgreSQL (the session store waits longer):
#: a cache that cannot be reached is skipped, and requests should not wait on it.
SQL_CONNECT_TIMEOUT = 2


def _cache_sa_options(url: str | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """The region's ``sa.*`` options, with a short connect timeout unless the settings set one."""
    chosen = dict(options)
    if not url or "connect_args" in chosen or "connect_timeout" in url:
        return chosen
    scheme = url.partition("://")[0].lower()
    if scheme.startswith("postgres") and scheme.partition("+")[2] in ("", "psycopg", "psycopg2"):
        chosen["connect_args"] = {"connect_timeout": SQL_CONNECT_TIMEOUT}
    return chosen


def sql_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    return (), ()


def file_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    return (), (OSError,)


ERRORS: dict[str, Callable[[], tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]]] = {
    "redis": redis_errors,
    "memcached": memcached_errors,
    "file": file_errors,
    "sql": sql_errors,
}

for _name, _class in (
    ("satchel.memory", "CheckedMemoryBackend"),
    ("satchel.redis", "RedisCacheBackend"),
    ("satchel.memcached", "MemcachedCacheBackend"),
    ("satchel.file", "FileCacheBackend"),
    ("satchel.sql", "SQLCacheBackend"),
):
    register_backend(_name, __name__, _class)  # type: ignore[no-untyped-call]

__all__ = [
    "ERRORS",
    "CheckedMemoryBackend",
    "FileCacheBackend",
    "Generations",
    "Guard",
    "GuardProxy",
    "LayeredMutex",
    "MemcachedCacheBackend",
    "RedisCacheBackend",
    "RegionState",
    "SQLCacheBackend",
    "Wiring",
]
