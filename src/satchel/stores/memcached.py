"""memcached through pymemcache's public clients: one stack for sessions and the cache.

:func:`parse_servers` reads Beaker's ``host:port;host2:port`` (or a list) and
:class:`ServerRing` routes each key to one server's :class:`ClientPool` of
pymemcache ``Client`` objects by rendezvous hashing (pymemcache's
``RendezvousHash``, so a key lands where ``HashClient`` puts it). ``HashClient``
itself is not used: while a server fails it answers some calls
with a default value even with ``ignore_exc=False`` (a load finds nothing, a create
looks like a conflict) and then moves the server's keys to the others, so stale
records come back when the server returns. The ring never moves a key: a server
that fails raises :class:`StoreUnavailable` for its keys. It is tried again on the
next call, or, with a ``retry_interval`` (the cache's choice), only once that many
seconds have passed: until then its keys fail at once, without waiting out a
connect timeout.

:class:`MemcachedStore` speaks the store contract with one command per operation:
``load`` is ``gets``, ``save`` ``add`` (a new record) or ``cas``, ``touch`` and
``delete`` are themselves. Values go in and come out as the bytes they are, with
flags 0: nothing is ever unpickled.

memcached is a cache: a restart or an eviction loses records, and sessions stored
there can vanish. Choose redis or sql where that matters.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ..clock import Clock, system_clock
from ..config.coerce import as_memcache_module, as_optional_str, as_str, as_words, uncommented
from ..errors import ConfigurationError, StoreError, StoreUnavailable
from .base import Record, Store, Version, check_key

DEFAULT_PORT = 11211
#: Seconds to wait for a connection, and for each read or write on it.
CONNECT_TIMEOUT = 2.0
TIMEOUT = 2.0
#: memcached reads a larger expiry as an absolute Unix time.
MAX_RELATIVE_EXPIRY = 30 * 24 * 3600
MAX_KEY_BYTES = 250
#: Leaves room for "#" and a SHA-256 hex digest within MAX_KEY_BYTES.
PREFIX_PATTERN = re.compile(r"[!-~]{0,185}")
SERVER_PATTERN = re.compile(r"\[(?P<ipv6>[^\]]+)\](?::(?P<port6>\d+))?|(?P<host>[^:\[\]]+)(?::(?P<port>\d+))?")
#: ``memcache_module`` values that mean pymemcache (``auto`` is Beaker's default).
PYMEMCACHE_NAMES = ("", "pymemcache", "auto")
#: How a version from :func:`written` starts; a version from ``load`` is an int.
WRITTEN = "written:"

T = TypeVar("T")
Server = tuple[str, int]


def parse_servers(spec: str | Iterable[str | Server]) -> list[Server]:
    """Beaker's ``host:port;host:port`` (commas and spaces separate too; IPv6 in
    brackets; the port defaults to 11211), or a list of such items or of
    ``(host, port)`` pairs."""
    items = re.split(r"[;,\s]+", spec.strip()) if isinstance(spec, str) else list(spec)
    servers = []
    for item in items:
        if isinstance(item, tuple):
            servers.append(item)
            continue
        if not item.strip():
            continue
        match = SERVER_PATTERN.fullmatch(item.strip())
        if match is None:
            raise ConfigurationError(f"memcached server {item!r} is not host:port", "url")
        host = match["ipv6"] or match["host"]
        servers.append((host, int(match["port6"] or match["port"] or DEFAULT_PORT)))
    if not servers:
        raise ConfigurationError("memcached needs url = host:port[;host:port...]", "url")
    return servers


def expiry(ttl: int | None) -> int:
    """memcached's ``exptime`` for a record that must live at least ``ttl`` seconds.

    memcached's clock ticks once a second, so a relative expiry of n ends between
    n - 1 and n seconds later; one second more keeps the promise. 0 means "never",
    a negative value "already expired", and past 30 days only an absolute Unix
    time is understood.
    """
    if ttl is None:
        return 0
    if ttl <= 0:
        return -1
    seconds = ttl + 1
    return seconds if seconds <= MAX_RELATIVE_EXPIRY else int(time.time()) + seconds


class BytesSerde:
    """A pymemcache serde that stores bytes as they are and returns what it reads
    as bytes, whatever its flags: a value another client marked as pickled is
    never unpickled (whoever can write to the server could run code here)."""

    def serialize(self, key: Any, value: Any) -> tuple[bytes, int]:
        if isinstance(value, bytes):
            return value, 0
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value), 0
        return str(value).encode("ascii"), 0

    def deserialize(self, key: Any, value: bytes, flags: int) -> bytes:
        return value


class ClientPool:
    """The connections to one memcached server: each command borrows a pymemcache
    ``Client`` (one connection) that no other thread uses meanwhile, and puts it
    back for the next command. It grows to the number of commands in flight at
    once, and keeps what it made.

    pymemcache's ``PooledClient`` does the same behind a lock and a context manager
    per command, which cost as much as the rest of satchel's store layer together
    (about 20,000 machine instructions a command, by ``bench/instructions.py``).
    Here taking and returning a client is a list's ``pop`` and ``append``, which
    are atomic. A command that fails closes its client's connection (it may be in
    the middle of a reply); the client connects again on its next command.
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        #: The clients no command holds now.
        self.idle: list[Any] = []

    def run(self, command: Callable[[Any], T]) -> T:
        """``command(client)`` on a client of this pool's own."""
        try:
            client = self.idle.pop()
        except IndexError:
            client = self._make()
        try:
            return command(client)
        except BaseException:
            client.close()
            raise
        finally:
            self.idle.append(client)

    def close(self) -> None:
        """Close the idle clients' connections (they connect again if used after this)."""
        for client in list(self.idle):
            client.close()


class ServerRing:
    """One :class:`ClientPool` per memcached server, each key always on the same one.

    Thread-safe (the pools are). Fork-aware: a connection cannot serve two
    processes, so a process that finds itself forked (its pid changed) builds
    pools of its own and leaves its parent's connections alone; the pid is
    compared on every call rather than trusting at-fork hooks, which servers
    that fork from C do not run.

    ``retry_interval`` (seconds, 0 for none) rests a server that could not be
    reached: its keys raise :class:`StoreUnavailable` at once until the interval
    has passed, then the next call tries it again. Each server rests on its own,
    so the keys of the others keep working. Sessions leave it at 0: a session
    request that meets a failed server fails, so each one should ask the server
    (a refused connection fails at once anyway, and a restarted server serves the
    very next request) rather than fail for a while after one lost connection.
    A cache serves values uncached while a server is down, and would otherwise
    wait out a connect timeout on every call to an unreachable host. The interval
    is measured on ``monotonic`` (a test passes its own).
    """

    def __init__(
        self,
        servers: Sequence[Server],
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        timeout: float = TIMEOUT,
        retry_interval: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            from pymemcache.client.rendezvous import RendezvousHash
            from pymemcache.exceptions import MemcacheError, MemcacheServerError, MemcacheUnexpectedCloseError
        except ImportError as exc:
            raise StoreUnavailable(
                'memcached needs pymemcache: pip install "satchel[memcached]"', "memcached", _joined(servers)
            ) from exc
        #: The failures of a command, from the most particular: the server closed the
        #: connection; it cannot be reached; it refused the command; its reply is unusable.
        self._lost: tuple[type[Exception], ...] = (
            MemcacheUnexpectedCloseError,
            ConnectionResetError,
            ConnectionAbortedError,
            BrokenPipeError,
        )
        self._unreachable: tuple[type[Exception], ...] = (OSError, MemcacheUnexpectedCloseError)
        self._refused: type[Exception] = MemcacheServerError
        self._unusable: tuple[type[Exception], ...] = (MemcacheError, ValueError)
        self.servers = {f"{host}:{port}": (host, port) for host, port in servers}  # HashClient's node names
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.retry_interval = retry_interval
        self._monotonic = monotonic
        self._failed_at: dict[str, float] = {}  # server address -> when it failed (monotonic seconds)
        self._hash = RendezvousHash(nodes=list(self.servers))
        self._pid = os.getpid()
        self._pools = {address: self._pool(server) for address, server in self.servers.items()}

    @property
    def address(self) -> str:
        return ";".join(self.servers)

    def node(self, key: str) -> str:
        """The address of the server that holds ``key``."""
        if len(self.servers) == 1:
            return next(iter(self.servers))
        node: str = self._hash.get_node(key)
        return node

    def pool(self, address: str) -> ClientPool:
        """The pool of the server at ``address``, made in this process."""
        if self._pid != os.getpid():
            self._pools = {name: self._pool(server) for name, server in self.servers.items()}
            self._pid = os.getpid()
        return self._pools[address]

    def run(self, key: str, command: Callable[[Any], T], *, repeatable: bool = True) -> T:
        """``command(client)`` on the pooled client of ``key``'s server, its failures
        as satchel's errors: :class:`StoreUnavailable` naming the server when it
        cannot be reached or does not answer in time, :class:`StoreError` for an
        error reply (one that says "too large" for a value over its item size).

        A connection the server closed (a restart, an idle timeout) renews the
        server's pool. A ``repeatable`` command (a read, ``touch``, ``delete``: the
        same result however often it runs) is then sent again on a new
        connection. A write is not: the server may have run it before the
        connection went, and a second attempt would report a conflict with the
        first, so its outcome is unknown and the caller gets StoreUnavailable.
        """
        return self.run_on(self.node(key), command, repeatable=repeatable)

    def run_on(self, address: str, command: Callable[[Any], T], *, repeatable: bool = True) -> T:
        """:meth:`run` on the server at ``address``."""
        self._refuse_while_resting(address)
        try:
            result = self._send(address, command, repeatable)
        except self._unreachable as exc:  # refused, timed out, reset, closed
            reason = "no answer in time" if isinstance(exc, TimeoutError) else repr(exc)
            if not repeatable and isinstance(exc, self._lost):
                # The server did answer until the connection went (a restart): not a reason to rest it.
                reason = f"the connection was lost during a write, whose outcome is unknown: {exc!r}"
            elif self.retry_interval:
                self._failed_at[address] = self._monotonic()
            raise StoreUnavailable(f"memcached at {address} is unreachable: {reason}", "memcached", address) from exc
        except self._refused as exc:
            detail = _text(exc)
            if "too large" in detail:
                raise StoreError(f"memcached at {address} refused a value too large for it: {detail}") from exc
            raise StoreError(f"memcached at {address} refused the command: {detail}") from exc
        except self._unusable as exc:  # an error reply, or one that is not memcached's
            raise StoreError(f"memcached at {address} gave a reply satchel cannot use: {_text(exc)}") from exc
        self._failed_at.pop(address, None)
        return result

    def _send(self, address: str, command: Callable[[Any], T], repeatable: bool) -> T:
        """``command`` on the server's pool; once more on a fresh pool when a connection was
        found closed and the command is ``repeatable``."""
        try:
            return self.pool(address).run(command)
        except self._lost:
            self.renew(address)
            if not repeatable:
                raise
            return self.pool(address).run(command)

    def _refuse_while_resting(self, address: str) -> None:
        """Raise :class:`StoreUnavailable` if the server failed less than ``retry_interval`` ago."""
        failed_at = self._failed_at.get(address)
        if failed_at is not None and self._monotonic() - failed_at < self.retry_interval:
            raise StoreUnavailable(
                f"memcached at {address} failed less than {self.retry_interval:g} s ago; not tried again yet",
                "memcached",
                address,
            )

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The values of those ``keys`` that exist: one ``get`` per server holding any."""
        by_server: dict[str, list[str]] = {}
        for key in keys:
            by_server.setdefault(self.node(key), []).append(key)
        found: dict[str, bytes] = {}
        for address, group in by_server.items():
            found.update(self.run_on(address, functools.partial(_get_many, keys=group)))
        return found

    def renew(self, address: str) -> None:
        """Start a fresh pool for ``address``: one of its connections was found closed
        by the server (a restart closes them all). Connections in use finish their
        command and go with the old pool, which is never used again."""
        self._pools[address] = self._pool(self.servers[address])

    def close(self) -> None:
        """Close this process's connections (a parent's are left to it); the ring
        connects again if it is used after this."""
        if self._pid == os.getpid():
            for pool in self._pools.values():
                pool.close()

    def _pool(self, server: Server) -> ClientPool:
        from pymemcache.client.base import Client

        return ClientPool(
            functools.partial(
                Client,
                server,
                serde=BytesSerde(),
                connect_timeout=self.connect_timeout,
                timeout=self.timeout,
                no_delay=True,  # each request is one small write: Nagle would only hold it back
                ignore_exc=False,  # an error is never a miss: a session would silently start anew
                default_noreply=False,  # every write reads its reply
            )
        )


def open_servers(
    spec: str | Iterable[str | Server],
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    timeout: float = TIMEOUT,
    retry_interval: float = 0.0,
) -> ServerRing:
    """The ring for Beaker's server list ``spec`` (see :class:`ServerRing` for the options)."""
    return ServerRing(
        parse_servers(spec), connect_timeout=connect_timeout, timeout=timeout, retry_interval=retry_interval
    )


def _joined(servers: Sequence[Server]) -> str:
    return ";".join(f"{host}:{port}" for host, port in servers)


def written(data: bytes) -> str:
    """The version ``save`` answers: memcached's reply to ``add`` and ``cas`` does not
    tell the new CAS value, so it names the bytes written instead (see
    :meth:`MemcachedStore.save`)."""
    return WRITTEN + hashlib.blake2b(data, digest_size=16).hexdigest()


class MemcachedStore(Store):
    """Records in memcached: ``load`` is a ``gets``, ``save`` an ``add`` or ``cas``.

    ``Record.expires_at`` is always ``None``: memcached does not report a key's
    remaining time. memcached expires records itself, so ``purge_expired`` returns
    0, and ``count`` is ``None`` because memcached cannot count the keys under one
    prefix. memcached started without CAS support (``-C``) cannot hold sessions
    safely: every load then raises :class:`StoreError` saying so.
    """

    name = "memcached"
    options = {
        "url": as_optional_str,
        "urls": as_words,
        "key_prefix": as_str,
        "memcache_module": uncommented(as_memcache_module),
    }

    def __init__(
        self,
        servers: str | Iterable[str | Server],
        key_prefix: str = "satchel:s:",
        *,
        timeout: float = TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        if not PREFIX_PATTERN.fullmatch(key_prefix):
            raise ConfigurationError(
                "the memcached key_prefix must be printable ASCII without spaces, at most 185 characters",
                "key_prefix",
            )
        self.key_prefix = key_prefix
        self.ring = ServerRing(parse_servers(servers), connect_timeout=connect_timeout, timeout=timeout)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> MemcachedStore:
        module = options.get("memcache_module") or ""
        if module not in PYMEMCACHE_NAMES:
            raise ConfigurationError(
                f"memcache_module = {module}: satchel speaks to memcached through pymemcache; "
                "set memcache_module = pymemcache or leave it out",
                "memcache_module",
            )
        servers = options.get("url") or list(options.get("urls") or ())
        if not servers:
            raise ConfigurationError("the memcached store needs url = host:port[;host:port...]", "url")
        return cls(servers, key_prefix=options.get("key_prefix") or "satchel:s:")


    @property
    def address(self) -> str:
        return self.ring.address

    def server_key(self, key: str) -> str:
        """The key memcached sees: prefixed, and hashed when that makes it too long."""
        full = self.key_prefix + check_key(key)
        if len(full) > MAX_KEY_BYTES:
            full = f"{self.key_prefix}#{hashlib.sha256(key.encode()).hexdigest()}"
        return full

    def load(self, key: str) -> Record | None:
        name = self.server_key(key)
        found = self._gets(name)
        return None if found is None else Record(found[0], found[1])

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        """``add`` when no version is expected, ``cas`` with a version ``load`` gave.

        The version answered is :func:`written` of ``data``. A save that expects
        such a version first reads the record (``gets``: one more round trip, for
        the second write of one request) and writes with its CAS value only if it
        still holds exactly the bytes that save wrote; so whatever wrote meanwhile,
        the write is based on the record as it is, and no update is lost.
        """
        name = self.server_key(key)
        exptime = expiry(ttl)
        if expected_version is None:
            stored = self.ring.run(name, lambda c: c.add(name, data, exptime, noreply=False), repeatable=False)
        else:
            cas = self._cas_value(name, expected_version)
            if cas is None:
                return None
            stored = self.ring.run(name, lambda c: c.cas(name, data, cas, exptime, noreply=False), repeatable=False)
        return written(data) if stored else None

    def touch(self, key: str, ttl: int | None) -> bool:
        name = self.server_key(key)
        exptime = expiry(ttl)
        return bool(self.ring.run(name, lambda c: c.touch(name, expire=exptime, noreply=False)))

    def delete(self, key: str) -> None:
        name = self.server_key(key)
        self.ring.run(name, lambda c: c.delete(name, noreply=False))

    def close(self) -> None:
        self.ring.close()

    def _gets(self, name: str) -> tuple[bytes, int] | None:
        value, cas = self.ring.run(name, lambda c: c.gets(name))
        if value is None:
            return None
        if not int(cas):
            raise StoreError(
                f"memcached at {self.ring.node(name)} gives no CAS values (started with -C): sessions need them"
            )
        return value, int(cas)

    def _cas_value(self, name: str, expected_version: Version) -> int | None:
        """The CAS value to write with, or None when the record is no longer at
        ``expected_version`` (a written-bytes version is checked with a ``gets``)."""
        if isinstance(expected_version, int):
            return expected_version
        found = self._gets(name)
        if found is None or written(found[0]) != expected_version:
            return None
        return found[1]


def _get_many(client: Any, keys: list[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = client.get_many(keys)
    return found


def _text(exc: BaseException) -> str:
    """A pymemcache error's message (it carries the server's reply as bytes)."""
    detail = exc.args[0] if exc.args else exc
    return detail.decode("ascii", "replace") if isinstance(detail, bytes) else str(detail)
