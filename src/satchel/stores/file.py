"""One file per record under ``data_dir``, safe across threads and processes.

- Writes go to a temporary file in the same directory and are renamed over the
  old record, so a reader (or a crash) sees the old record or the new one, never
  half of either.
- A record's expiry is the file's modification time: ``touch`` is one ``utime``
  call, and purging expired records needs only ``stat``.
- Conditional writes hold an exclusive ``flock`` on one of a fixed set of lock
  files in ``lock_dir`` (a stripe chosen by the key), so locking never leaves a
  file per session behind.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..clock import Clock, system_clock
from ..config.coerce import as_optional_str
from ..errors import ConfigurationError, StoreError, StoreUnavailable
from .base import KEY_PATTERN, Record, Store, Version, check_key

MAGIC = b"SATCHEL1 "
#: Modification time that stands for "never expires" (year 2242).
NEVER = float(2**33)
LOCK_STRIPES = 64
#: Temporary files older than this are leftovers of a killed writer.
STALE_TEMP_SECONDS = 3600


SHARD_NAME = re.compile(r"[0-9a-f]{2}")


def _shard_of(key: str) -> str:
    return format(zlib.crc32(key.encode()) & 0xFF, "02x")


def _open_in_dir(path: Path, flags: int) -> int:
    """``os.open(path, flags)`` for a file of the store's own (mode 0600), making its
    directory when the open finds it missing: the first record of a shard, or a
    data or lock directory removed under a running application. Made when needed,
    not looked for on every write."""
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return os.open(path, flags, 0o600)


def _written_by_a_store(path: str) -> bool:
    """Whether the file starts with the header every record this store writes has."""
    with open(path, "rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


class FileStore(Store):
    name = "file"
    options = {"data_dir": as_optional_str, "lock_dir": as_optional_str}

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        lock_dir: str | os.PathLike[str] | None = None,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self.clock = clock
        self.data_dir = Path(data_dir)
        self.lock_dir = Path(lock_dir) if lock_dir else self.data_dir / ".locks"
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreUnavailable(
                f"file store cannot create its directories: {exc}", self.name, str(self.data_dir)
            ) from exc

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> FileStore:
        if not options.get("data_dir"):
            raise ConfigurationError("the file store needs data_dir", "data_dir")
        return cls(options["data_dir"], options.get("lock_dir"), clock=clock)

    @property
    def address(self) -> str:
        return str(self.data_dir)

    # -- paths and locks ----------------------------------------------------

    def _path(self, key: str) -> Path:
        check_key(key)
        if key.startswith("."):
            raise ValueError(f"file store keys may not start with a dot: {key!r}")
        return self.data_dir / _shard_of(key) / key

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        stripe = zlib.adler32(key.encode()) % LOCK_STRIPES
        path = self.lock_dir / f"stripe-{stripe:02d}.lock"
        try:
            fd = _open_in_dir(path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise StoreUnavailable(f"file store cannot open its lock file: {exc}", self.name, str(path)) from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise StoreError(f"file store cannot lock {path}: {exc}") from exc
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    # -- reading --------------------------------------------------------------

    def _read(self, path: Path, now: float) -> Record | None:
        try:
            with open(path, "rb") as handle:
                expires_at = os.fstat(handle.fileno()).st_mtime
                raw = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"file store cannot read {path}: {exc}") from exc
        if expires_at <= now:
            return None
        header, newline, data = raw.partition(b"\n")
        if not newline or not header.startswith(MAGIC):
            # A foreign or damaged file: report it as data the caller cannot decode.
            return Record(raw, b"corrupt:" + str(len(raw)).encode(), expires_at)
        version = header[len(MAGIC) :].decode("ascii", "replace")
        return Record(data, version, None if expires_at >= NEVER else expires_at)

    def load(self, key: str) -> Record | None:
        return self._read(self._path(key), self.clock())

    # -- writing --------------------------------------------------------------

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        path = self._path(key)
        with self._locked(key):
            now = self.clock()
            current = self._read(path, now)
            if (None if current is None else current.version) != expected_version:
                return None
            version = secrets.token_hex(8)
            self._write(path, MAGIC + version.encode() + b"\n" + data, NEVER if ttl is None else now + ttl)
            return version

    def _write(self, path: Path, content: bytes, expires_at: float) -> None:
        # A short random name: ".tmp-" plus a 250-character key would pass the
        # file-name limit. Purging recognises leftovers by the prefix.
        temp = path.with_name(f".tmp-{secrets.token_hex(8)}")
        try:
            fd = _open_in_dir(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            try:
                view = memoryview(content)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            finally:
                os.close(fd)
            os.utime(temp, (expires_at, expires_at))
            os.replace(temp, path)
        except OSError as exc:
            try:
                temp.unlink()
            except OSError:
                pass
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreError(f"file store is out of space in {self.data_dir}: {exc}") from exc
            raise StoreError(f"file store cannot write {path}: {exc}") from exc

    def touch(self, key: str, ttl: int | None) -> bool:
        path = self._path(key)
        expires_at = NEVER if ttl is None else self.clock() + ttl
        with self._locked(key):
            if self._read(path, self.clock()) is None:
                return False
            try:
                os.utime(path, (expires_at, expires_at))
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise StoreError(f"file store cannot touch {path}: {exc}") from exc
            return True

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._locked(key):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StoreError(f"file store cannot delete {path}: {exc}") from exc

    # -- housekeeping ---------------------------------------------------------

    def _entries(self) -> Iterator[os.DirEntry[str]]:
        """The store's own files: in its two-hex-digit shard directories, named as keys
        are (and temporary files); nothing else under ``data_dir`` is ever touched."""
        try:
            shards = list(os.scandir(self.data_dir))
        except FileNotFoundError:
            return
        for shard in shards:
            if not (SHARD_NAME.fullmatch(shard.name) and shard.is_dir(follow_symlinks=False)):
                continue
            for entry in os.scandir(shard.path):
                if not entry.is_file(follow_symlinks=False):
                    continue
                if entry.name.startswith(".tmp-") or (
                    KEY_PATTERN.fullmatch(entry.name) and _shard_of(entry.name) == shard.name
                ):
                    yield entry

    def purge_expired(self) -> int:
        try:
            return self._purge_expired()
        except OSError as exc:
            raise StoreError(f"file store cannot purge {self.data_dir}: {exc}") from exc

    def _purge_expired(self) -> int:
        removed = 0
        now = self.clock()
        for entry in self._entries():
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            if entry.name.startswith(".tmp-"):
                if entry.stat(follow_symlinks=False).st_ctime < now - STALE_TEMP_SECONDS:
                    Path(entry.path).unlink(missing_ok=True)
                continue
            if mtime > now:
                continue
            with self._locked(entry.name):
                # Check again under the lock: a writer may have renewed it meanwhile.
                try:
                    if os.stat(entry.path).st_mtime <= self.clock() and _written_by_a_store(entry.path):
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def count(self) -> int:
        now = self.clock()
        total = 0
        for entry in self._entries():
            if entry.name.startswith(".tmp-"):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime > now:
                    total += 1
            except FileNotFoundError:
                pass
        return total

    def count_excluding(self, data: bytes) -> int:
        now = self.clock()
        total = 0
        for entry in self._entries():
            if entry.name.startswith(".tmp-"):
                continue
            record = self._read(Path(entry.path), now)
            if record is not None and record.data != data:
                total += 1
        return total
