"""Redis and Redis Cluster stores, one network round trip per operation.

Each record is one hash, ``key_prefix + key`` -> ``{v: version, d: data, e:
expiry}``, and its lifetime is the key's own TTL: the server expires records
(nothing to purge), and in a cluster a whole record lives in one slot. ``e``
repeats the TTL as an absolute time (Unix milliseconds, empty for none) that
``load`` can read along with the data; the script below sets it and the TTL
together, atomically.

- ``load`` is one HMGET (version, data, expiry): one command, one round trip.
  A record written before ``e`` existed loads with ``expires_at=None``, so the
  session manager renews it by rewriting it, which adds ``e``.
- ``save`` is one EVALSHA of a script that compares the version, writes the
  data with a new random version and sets the TTL, atomically. Versions are
  random tokens, not counters, so a record deleted and created again never
  repeats a version a stale writer may still hold.
- ``touch`` is one EVALSHA of the same script: PEXPIRE and the new ``e``
  (without a TTL, EXISTS + PERSIST, because PERSIST alone cannot tell a record
  without expiry from a missing one).
- The first EVALSHA after the server forgot its scripts (a restart) costs one
  more round trip: NOSCRIPT is answered with SCRIPT LOAD and the EVALSHA sent
  again. Save and touch share the script, so that happens once, not twice.
- ``delete`` is one DEL.

The record layout is the one earlier versions wrote: records saved before this
module changed load as they are. (A string record, which a layout with the
version in a string prefix would use, was measured: its script, GETRANGE + SET
with PX, costs the server no less than HGET + HSET + PEXPIRE on a small hash.)

How the commands travel. redis-py's generic command path (``execute_command``)
costs several times the network round trip in Python: a connection is taken
from the pool and polled for stale data, metrics are recorded, the reply goes
through a general parser. For a plain standalone client, the one
:meth:`RedisStore.from_settings` builds, the store's commands (HMGET, EVALSHA,
SCRIPT LOAD after NOSCRIPT, and DEL; all but ``count``'s SCAN) take a direct
path instead (:class:`_Direct`):

- Connections come from the client's pool (``get_connection``, which connects
  them with redis-py's handshake: AUTH, SELECT, TLS, client name) and stay with
  the store between calls, on a stack of idle connections, instead of going
  back to the pool each time; ``close`` returns them. A store so keeps as many
  connections as it ever had calls at once (``count`` takes its own from the
  pool). After a fork the child forgets its parent's connections and takes new
  ones.
- The command is packed here, written with one ``sendall`` on the connection's
  socket, and its RESP2 reply read and parsed here. The client speaks RESP2
  (``protocol=2``), so nothing but the reply ever arrives on the socket.
- Errors are redis-py's: a socket error or a closed connection disconnects the
  connection and raises redis-py's ConnectionError (TimeoutError on a
  timeout), and the command is tried again under the client's own retry policy
  (:class:`redis.retry.Retry`; the settings-built client retries once on a
  connection error, never on a timeout), exactly as redis-py's command path
  would. That is how a connection the server closed while it sat idle (a
  restart, an idle timeout) is replaced: redis-py polls each connection before
  use, this path finds out on first use. An error reply becomes the exception
  redis-py raises for it (NoScriptError, ResponseError, BusyLoadingError...),
  and leaves the connection in use.
- Beyond redis-py's public methods it relies on one detail of its connections:
  the connected socket is ``Connection._sock`` (None when disconnected).

Any other client takes redis-py's generic path, with the same commands, round
trips and errors: a Redis Cluster (routing, redirections and failover are
redis-py's), a client speaking RESP3 (push messages may arrive between
replies), one with client-side caching, health checks, a credential provider
(re-authentication happens as connections go back to the pool), a single
connection, or a pool other than a plain :class:`redis.ConnectionPool` (a
blocking pool would count the connections the store keeps against its limit).

``e`` is computed from the writing client's clock, as ``expires_at`` always
was (from the reading client's clock and PTTL); only the renewal schedule
depends on it, never whether a record still exists.

A server that cannot be reached raises :class:`StoreUnavailable` (an error
answer :class:`StoreError`) naming the store and its address. Connections are
made again on the next call, so a store keeps working once the server is back.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeGuard
from urllib.parse import urlsplit

from ..clock import Clock, system_clock
from ..config.coerce import Coercer, as_optional_str, as_str, as_words
from ..errors import ConfigurationError, StoreError, StoreUnavailable
from ..settings import StoreSettings
from .base import Record, Version, VersionedStore, check_key

try:
    import redis
    from redis import exceptions as rx
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.connection import AbstractConnection, Connection, ConnectionPool
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise StoreUnavailable('the redis stores need redis-py: pip install "satchel[redis]"', "redis") from exc

try:  # a detail of redis-py the direct path uses; without it, every client takes the generic path
    from redis._parsers import BaseParser

    _parse_error: Callable[[str], Exception] | None = BaseParser.parse_error
except ImportError:  # pragma: no cover - another redis-py
    _parse_error = None

Client = redis.Redis | RedisCluster

DEFAULT_PREFIX = "satchel:s:"
#: Seconds to connect and to wait for an answer, unless the URL says otherwise;
#: this bounds how long a request hangs on a dead server.
DEFAULT_TIMEOUT = 2.0
#: Attempts a cluster client makes across a topology change (failover, resharding).
CLUSTER_RETRIES = 3

# One script for both writes, so one SCRIPT LOAD after a restart serves both.
# KEYS[1] the record; ARGV what to do, TTL in ms, expiry as Unix ms (both "" for none),
# then for "save": new version, data[, expected version: absent when the record
# must not exist yet]. "touch" never creates the record: "e" is written only to
# a record that exists and outlives the command (PEXPIRE to 0 or less deletes it).
SCRIPT = """
local key, ttl, expires = KEYS[1], ARGV[2], ARGV[3]
if ARGV[1] == 'touch' then
  if ttl == '' then
    if redis.call('EXISTS', key) == 0 then return 0 end
    redis.call('PERSIST', key)
  elseif redis.call('PEXPIRE', key, ttl) == 0 then
    return 0
  elseif tonumber(ttl) <= 0 then
    return 1
  end
  redis.call('HSET', key, 'e', expires)
  return 1
end
local current = redis.call('HGET', key, 'v')
if #ARGV == 5 then
  if current then return 0 end
elseif current ~= ARGV[6] then
  return 0
end
redis.call('HSET', key, 'v', ARGV[4], 'd', ARGV[5], 'e', expires)
if ttl == '' then
  redis.call('PERSIST', key)
else
  redis.call('PEXPIRE', key, ttl)
end
return 1
"""
#: What SCRIPT LOAD answers for SCRIPT; EVALSHA names the script by it.
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()

# Errors meaning "the server is not there (right now)", as opposed to an error answer.
UNAVAILABLE: tuple[type[Exception], ...] = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.ClusterDownError,
    rx.RedisClusterException,  # raised when no startup node answers; not a RedisError
)
#: Every exception of redis-py a store turns into one of satchel's. redis-py's
#: parsers raise ValueError on a reply that is not RESP (another server on the port).
FAILURES: tuple[type[Exception], ...] = (*UNAVAILABLE, rx.RedisError, ValueError)

SAVE, TOUCH, NONE = b"save", b"touch", b""


def _glob_escape(text: str) -> str:
    """``text`` as a literal inside a SCAN MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _as_bytes(version: Version) -> bytes:
    """A version as redis-py would send it."""
    if isinstance(version, bytes):
        return version
    return str(version).encode()


def _expiry(ttl: int | None) -> tuple[bytes, bytes]:
    """The TTL in ms and the absolute expiry in Unix ms, as SCRIPT takes them (b"" for none)."""
    if ttl is None:
        return NONE, NONE
    ms = ttl * 1000
    return b"%d" % ms, b"%d" % (time.time_ns() // 1_000_000 + ms)


# -- the generic path ---------------------------------------------------------------


class _Commands:
    """The store's hot commands through redis-py's generic command path (any client)."""

    __slots__ = ("client",)

    def __init__(self, client: Client) -> None:
        self.client = client

    def hmget(self, name: str) -> list[Any]:
        """Version, data and expiry of the record ``name`` (None for each field not there)."""
        reply: list[Any] = self.client.hmget(name, "v", "d", "e")
        return reply

    def script(self, name: str, args: tuple[bytes, ...]) -> Any:
        """Run SCRIPT on the record ``name``: one EVALSHA, plus SCRIPT LOAD and a second
        EVALSHA when the server does not know the script (after a restart or SCRIPT FLUSH).

        Called directly rather than through redis-py's ``Script``, which imports
        ``Pipeline`` on every call. Sending the EVALSHA again is safe: NOSCRIPT means
        the script did not run.
        """
        client = self.client
        try:
            return client.evalsha(SCRIPT_SHA, 1, name, *args)
        except rx.NoScriptError:
            client.script_load(SCRIPT)
            return client.evalsha(SCRIPT_SHA, 1, name, *args)

    def delete(self, name: str) -> None:
        self.client.delete(name)

    def close(self) -> None:
        self.client.close()


# -- the direct path ----------------------------------------------------------------

#: Bytes asked of the socket per read; a reply longer than this takes more reads.
RECV_SIZE = 65536
_HMGET = b"*5\r\n$5\r\nHMGET\r\n$%d\r\n%b\r\n$1\r\nv\r\n$1\r\nd\r\n$1\r\ne\r\n"
_DEL = b"*2\r\n$3\r\nDEL\r\n$%d\r\n%b\r\n"
_EVALSHA = b"$7\r\nEVALSHA\r\n$40\r\n" + SCRIPT_SHA.encode() + b"\r\n$1\r\n1\r\n"
_SCRIPT_LOAD = b"*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n$%d\r\n%b\r\n" % (len(SCRIPT.encode()), SCRIPT.encode())


def _pack_evalsha(name: bytes, args: tuple[bytes, ...]) -> bytes:
    """``EVALSHA SCRIPT_SHA 1 name *args`` in RESP, ready to send."""
    parts = [b"*%d\r\n" % (4 + len(args)), _EVALSHA, b"$%d\r\n" % len(name), name, b"\r\n"]
    for arg in args:
        parts += (b"$%d\r\n" % len(arg), arg, b"\r\n")
    return b"".join(parts)


class _Short(Exception):
    """The reply has not all arrived: it is at least ``need`` bytes long."""

    def __init__(self, need: int) -> None:
        self.need = need


def _parse(data: bytes, pos: int) -> tuple[Any, int]:
    """The RESP2 reply that starts at ``data[pos]``, and the position after it.

    Bulk strings come back as bytes, nil as None, an error reply as the exception
    redis-py raises for it (not raised here).
    """
    eol = data.find(b"\r\n", pos)
    if eol < 0:
        raise _Short(len(data) + 1)
    kind, start = data[pos], eol + 2
    if kind == 0x24:  # "$": a bulk string, or nil
        size = int(data[pos + 1 : eol])
        if size < 0:
            return None, start
        end = start + size
        if end + 2 > len(data):
            raise _Short(end + 2)
        return data[start:end], end + 2
    if kind == 0x3A:  # ":": an integer
        return int(data[pos + 1 : eol]), start
    if kind == 0x2A:  # "*": an array
        count = int(data[pos + 1 : eol])
        if count < 0:
            return None, start
        items = []
        for _ in range(count):
            item, start = _parse(data, start)
            items.append(item)
        return items, start
    if kind == 0x2B:  # "+": a simple string
        return data[pos + 1 : eol], start
    if kind == 0x2D:  # "-": an error
        assert _parse_error is not None  # _direct_path_fits checked
        error = _parse_error(data[pos + 1 : eol].decode("utf-8", "replace"))
        return error, start
    raise rx.InvalidResponse(f"Protocol error, got {data[pos:eol][:80]!r}")


def _read_reply(sock: socket.socket) -> Any:
    """Read and parse one whole reply; it must be all the socket holds."""
    data = sock.recv(RECV_SIZE)
    while True:
        if not data:
            raise rx.ConnectionError("Connection closed by server.")
        try:
            reply, end = _parse(data, 0)
        except (ValueError, IndexError) as exc:  # not RESP: a proxy, or not Redis at all
            raise rx.InvalidResponse(f"Protocol error: {exc}") from exc
        except _Short as short:
            chunks, have = [data], len(data)
            while have < short.need:
                chunk = sock.recv(max(short.need - have, RECV_SIZE))
                if not chunk:
                    raise rx.ConnectionError("Connection closed by server.") from None
                chunks.append(chunk)
                have += len(chunk)
            data = b"".join(chunks)
            continue
        if end != len(data):
            raise rx.InvalidResponse("Protocol error, more bytes than one reply")
        return reply


def _exchange(conn: Connection, packed: bytes) -> Any:
    """Send one packed command on ``conn`` and return its reply.

    Anything going wrong on the socket disconnects ``conn`` (the stream is in an
    unknown state) and raises redis-py's ConnectionError or TimeoutError, as its
    own ``send_packed_command`` and ``read_response`` do. An error reply is raised
    after the whole reply was read: the connection stays usable.
    """
    sock = conn._sock
    if sock is None:
        conn.connect()  # type: ignore[no-untyped-call]
        sock = conn._sock
        if sock is None:  # pragma: no cover - connect() raises instead
            raise rx.ConnectionError("not connected")
    try:
        sock.sendall(packed)
        reply = _read_reply(sock)
    except TimeoutError as exc:  # socket.timeout
        conn.disconnect()
        raise rx.TimeoutError(f"Timeout talking to the server: {exc}") from exc
    except OSError as exc:
        conn.disconnect()
        raise rx.ConnectionError(f"Error talking to the server: {exc}") from exc
    except BaseException:
        conn.disconnect()
        raise
    if isinstance(reply, Exception):
        raise reply
    return reply


def _retry(conn: Connection, packed: bytes, failure: Exception) -> Any:
    """After ``failure`` of a first attempt, try again as the connection's retry
    policy says: the failure is replayed through it, so which errors are retried,
    how often and after what backoff are redis-py's decisions."""
    pending = [failure]

    def attempt() -> Any:
        if pending:
            raise pending.pop()
        return _exchange(conn, packed)

    def fail(error: Exception) -> None:
        conn.disconnect()  # type: ignore[no-untyped-call]

    return conn.retry.call_with_retry(attempt, fail)


def _direct_path_fits(client: Client) -> TypeGuard[redis.Redis]:
    """True for a client the direct path serves exactly as redis-py would (see the module doc)."""
    if _parse_error is None or type(client) is not redis.Redis or client.connection is not None:
        return False
    pool = client.connection_pool
    options = pool.connection_kwargs
    return (
        type(pool) is ConnectionPool
        and issubclass(pool.connection_class, AbstractConnection)
        and getattr(pool, "cache", None) is None
        and str(options.get("protocol")) == "2"
        and not options.get("health_check_interval")
        and options.get("credential_provider") is None
    )


class _Direct(_Commands):
    """HMGET, EVALSHA, SCRIPT LOAD and DEL written straight to the pool's connections (module doc)."""

    __slots__ = ("_idle", "_keep", "_pid", "_pool")

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client)
        self._pool = client.connection_pool
        self._idle: list[Connection] = []
        # Idle connections kept beyond this go back to the pool, so a small pool
        # (max_connections) shared with count() or the application never runs dry.
        self._keep = client.connection_pool.max_connections // 2
        self._pid = os.getpid()

    def hmget(self, name: str) -> list[Any]:
        key = name.encode()
        reply: list[Any] = self._call(_HMGET % (len(key), key))
        return reply

    def script(self, name: str, args: tuple[bytes, ...]) -> Any:
        packed = _pack_evalsha(name.encode(), args)
        try:
            return self._call(packed)
        except rx.NoScriptError:
            self._call(_SCRIPT_LOAD)
            return self._call(packed)

    def delete(self, name: str) -> None:
        key = name.encode()
        self._call(_DEL % (len(key), key))

    def _call(self, packed: bytes) -> Any:
        """One command, on an idle connection of this store or a new one from the pool."""
        if self._pid != os.getpid():
            self._forked()
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._pool.get_connection()
        try:
            if conn._sock is None:
                conn.connect()  # type: ignore[no-untyped-call]  # outside the command's retries, as the pool does
            try:
                return _exchange(conn, packed)
            except (rx.ConnectionError, rx.TimeoutError) as exc:
                return _retry(conn, packed, exc)
        finally:
            idle = self._idle  # after a close(), the new list
            if len(idle) < self._keep:
                idle.append(conn)
            else:
                self._pool.release(conn)

    def _forked(self) -> None:
        """In a child process: leave the parent's connections alone (the pool resets itself)."""
        self._idle = []
        self._pid = os.getpid()

    def close(self) -> None:
        idle, self._idle = self._idle, []
        if self._pid == os.getpid():
            for conn in idle:
                self._pool.release(conn)
        super().close()


# -- the stores -----------------------------------------------------------------------


class _RedisBase(VersionedStore):
    """What both stores share; they differ only in how the client is built."""

    def __init__(self, connect: Callable[[], Client], key_prefix: str, address: str) -> None:
        self.key_prefix = key_prefix
        self._connect = connect
        self._address = address
        self._commands: _Commands | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return self._address

    def _server(self) -> _Commands:
        """The commands, on the client built on first use."""
        commands = self._commands
        if commands is None:
            with self._lock:
                if self._commands is None:
                    client = self._connect()
                    self._commands = _Direct(client) if _direct_path_fits(client) else _Commands(client)
                commands = self._commands
        return commands

    def _failure(self, action: str, exc: Exception) -> Exception:
        """redis-py's exception ``exc`` as satchel's, naming store and address."""
        if isinstance(exc, UNAVAILABLE):
            return StoreUnavailable(
                f"{self.name} store at {self.address} is unreachable ({action}): {exc}",
                self.name,
                self.address,
            )
        return StoreError(f"{self.name} store at {self.address} failed to {action}: {exc}")

    def _key(self, key: str) -> str:
        return self.key_prefix + check_key(key)

    def load(self, key: str) -> Record | None:
        name = self._key(key)
        try:
            version, data, expires = (self._commands or self._server()).hmget(name)
        except FAILURES as exc:
            raise self._failure("load", exc) from exc
        if version is None:
            return None
        # No "e" means no expiry, or a record written before "e" existed (an unreadable
        # one counts as none): the session manager then renews by rewriting it.
        expires_at = None
        if expires:
            try:
                expires_at = int(expires) / 1000
            except ValueError:
                pass
        return Record(data or b"", version.decode("ascii"), expires_at)

    def _save(
        self, key: str, data: bytes, ttl: int | None, expected_version: Version | None
    ) -> tuple[bool, Version | None]:
        name = self._key(key)
        ms, expires = _expiry(ttl)
        version = os.urandom(8).hex()
        args: tuple[bytes, ...] = (SAVE, ms, expires, version.encode(), bytes(data))
        if expected_version is not None:
            args += (_as_bytes(expected_version),)
        try:
            stored = bool((self._commands or self._server()).script(name, args))
        except FAILURES as exc:
            raise self._failure("save", exc) from exc
        return stored, version if stored else None

    def touch(self, key: str, ttl: int | None) -> bool:
        name = self._key(key)
        ms, expires = _expiry(ttl)
        try:
            return bool((self._commands or self._server()).script(name, (TOUCH, ms, expires)))
        except FAILURES as exc:
            raise self._failure("touch", exc) from exc

    def delete(self, key: str) -> None:
        name = self._key(key)
        try:
            (self._commands or self._server()).delete(name)
        except FAILURES as exc:
            raise self._failure("delete", exc) from exc

    def purge_expired(self) -> int:
        """Redis expires keys itself."""
        return 0

    def count(self) -> int:
        """Keys under the prefix, by SCAN over the whole keyspace (every primary of a cluster).

        Slow on a big database; meant for tests and the occasional statistic.
        """
        try:
            client = self._server().client
            return sum(1 for _ in client.scan_iter(match=_glob_escape(self.key_prefix) + "*", count=1000))
        except FAILURES as exc:
            raise self._failure("count", exc) from exc

    def close(self) -> None:
        with self._lock:
            commands, self._commands = self._commands, None
        if commands is not None:
            try:
                commands.close()
            except FAILURES as exc:
                raise self._failure("close", exc) from exc


class RedisStore(_RedisBase):
    """One Redis server (or a proxy in front of several), at a redis://, rediss:// or unix:// URL."""

    name = "redis"

    def __init__(self, client: redis.Redis, key_prefix: str = DEFAULT_PREFIX, address: str = "") -> None:
        if not address:
            options = client.connection_pool.connection_kwargs
            address = options.get("path") or f"{options.get('host')}:{options.get('port')}"
        super().__init__(lambda: client, key_prefix, address)

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> RedisStore:
        if not settings.url:
            raise ConfigurationError("the redis store needs url", "url")
        client = redis.Redis.from_url(
            settings.url,
            socket_timeout=DEFAULT_TIMEOUT,
            socket_connect_timeout=DEFAULT_TIMEOUT,
            # One immediate retry on a broken connection (a server restart, an idle
            # connection dropped by a firewall); none on a timeout, which would
            # double the wait. A retried save that had run answers "conflict".
            retry=Retry(NoBackoff(), 1, supported_errors=(rx.ConnectionError,)),
            # RESP2: only replies arrive on a connection, which the direct path needs.
            protocol=2,
        )
        return cls(client, settings.key_prefix, settings.address)

    # -- settings by name: until this store builds itself from its options ----------

    options: ClassVar[Mapping[str, Coercer]] = {"url": as_optional_str, "key_prefix": as_str}

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> RedisStore:
        return cls.from_settings(StoreSettings.of(cls.name, options))


class RedisClusterStore(_RedisBase):
    """A Redis Cluster, found through one or more startup nodes.

    redis-py connects to a cluster as soon as the client is built, so the client
    is built on first use: an application starts while the cluster is down and
    answers "unavailable" until it is back.
    """

    name = "rediscluster"

    def __init__(
        self,
        client: RedisCluster | Callable[[], RedisCluster],
        key_prefix: str = DEFAULT_PREFIX,
        address: str = "",
    ) -> None:
        connect = client if callable(client) else lambda: client
        super().__init__(connect, key_prefix, address)

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> RedisClusterStore:
        urls = [u if "://" in u else f"redis://{u}" for u in (settings.urls or (settings.url or "",)) if u]
        if not urls:
            raise ConfigurationError("the rediscluster store needs urls", "urls")
        # Credentials and TLS come from the first URL; the others add startup nodes.
        others = [urlsplit(u) for u in urls[1:]]
        nodes = [
            ClusterNode(u.hostname or "127.0.0.1", u.port or 6379)  # type: ignore[no-untyped-call]
            for u in others
        ]

        def connect() -> RedisCluster:
            return RedisCluster.from_url(
                urls[0],
                startup_nodes=nodes,
                socket_timeout=DEFAULT_TIMEOUT,
                socket_connect_timeout=DEFAULT_TIMEOUT,
                retry=Retry(NoBackoff(), CLUSTER_RETRIES),
            )

        return cls(connect, settings.key_prefix, settings.address)

    # -- settings by name: until this store builds itself from its options ----------

    options: ClassVar[Mapping[str, Coercer]] = {"url": as_optional_str, "urls": as_words, "key_prefix": as_str}

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> RedisClusterStore:
        return cls.from_settings(StoreSettings.of(cls.name, options))


__all__ = ["DEFAULT_PREFIX", "RedisClusterStore", "RedisStore"]
