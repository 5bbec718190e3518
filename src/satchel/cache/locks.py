"""The creation locks dogpile asks shared backends for: one creator per key, in every process.

dogpile elects one creator per key with ``get_mutex``. Each shared backend
answers with a :class:`LayeredMutex`: a thread lock (threads of one process
queue without touching the server) in front of a lock every process sees. The
shared locks expire after ``lock_timeout`` seconds, or with the process that
holds them (``flock``), so a crashed creator never blocks a key for good.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from dogpile.cache.api import CacheMutex

from ..errors import StoreUnavailable
from .guards import Guard

if TYPE_CHECKING:
    from ..stores.base import Store

log = logging.getLogger("satchel.cache")


class Mutex(Protocol):
    """What dogpile asks of a lock (:class:`~dogpile.cache.api.CacheMutex`)."""

    def acquire(self, wait: bool = True) -> bool: ...

    def release(self) -> None: ...

    def locked(self) -> bool: ...


class LayeredMutex(CacheMutex):
    """A thread lock in front of a lock shared by every process.

    While the server is unreachable nothing is locked: a value that cannot be
    stored would otherwise be computed once per waiting thread, one after the
    other, and the last caller would wait for them all.
    """

    def __init__(self, shared: Mutex, guard: Guard) -> None:
        self._local = threading.Lock()
        self._shared = shared
        self._guard = guard
        self._holder = threading.local()  # what this thread holds: released by the same thread

    def acquire(self, wait: bool = True) -> bool:
        guard = self._guard
        self._holder.held = False
        if guard.down_until and guard.closed():
            return True
        if not self._local.acquire(wait):
            return False
        try:
            got = self._shared.acquire(wait)
        except guard.unavailable as exc:
            guard.unreachable(exc, "lock")
            got = None
        except guard.refused as exc:
            # Refused (out of memory, an error answer): compute uncached, as reads and
            # writes do on the same refusal, rather than fail the application's request.
            guard.refused_by_server(exc, "lock")
            got = None
        except BaseException:
            self._local.release()
            raise
        if not got:
            self._local.release()
            return got is None  # unlocked because the server failed: go ahead, uncached
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
            guard.unreachable(exc, "unlock")
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


class ExpiringMutex:
    """A lock every process sees: a key only one caller can create, expiring after
    ``timeout`` so a creator that died never blocks it. Waiters poll with backoff."""

    max_delay = 0.2

    def __init__(self, key: str, timeout: int) -> None:
        self.key = key
        self.timeout = timeout
        self.token = b""

    def create(self, token: bytes) -> bool:
        """Create the lock record holding ``token`` unless it exists; True if this call did."""
        raise NotImplementedError

    def acquire(self, wait: bool = True) -> bool:
        token = secrets.token_hex(8).encode("ascii")
        delay = 0.01
        while not self.create(token):
            if not wait:
                return False
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.max_delay)
        self.token = token
        return True


class StoreMutex(ExpiringMutex):
    """The lock as a record of one of satchel's stores, saved only if absent, with a TTL."""

    def __init__(self, store: Callable[[], Store], key: str, timeout: int) -> None:
        super().__init__(key, timeout)
        self._store = store

    def create(self, token: bytes) -> bool:
        return self._store().save(self.key, token, self.timeout, None) is not None

    def release(self) -> None:
        store = self._store()
        record = store.load(self.key)
        if record is not None and record.data == self.token:
            store.delete(self.key)

    def locked(self) -> bool:
        return self._store().load(self.key) is not None


class FlockMutex:
    """A lock every process on this machine sees: ``flock`` on the key's own lock file.

    One file per key (not stripes shared by many keys: a cached function that
    calls another would then deadlock whenever both keys fell on one stripe). The
    file exists only while its key is being computed: the holder removes it
    before unlocking, and a waiter that then gets the lock of the removed file
    notices (the path names another file, or none) and starts again. The kernel
    releases the lock of a process that dies; its file is reused.
    """

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


__all__ = ["ExpiringMutex", "FlockMutex", "LayeredMutex", "Mutex", "StoreMutex"]
