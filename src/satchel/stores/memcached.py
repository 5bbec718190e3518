"""memcached, spoken to directly: one round trip per operation, several servers.

Each store operation is one command of memcached's text protocol, written with
one ``sendall`` on a pooled TCP connection (``TCP_NODELAY``: a request is one
small write) and its reply read and parsed here: ``load`` is ``gets``, ``save``
``add`` (a new record) or ``cas`` (a known version), ``touch`` ``touch`` and
``delete`` ``delete``. Where the server speaks the meta protocol as it has
been since memcached 1.6.13 (asked with ``version`` once per new connection),
``save`` is a meta set instead (``ms`` in add mode, or with ``C`` the expected
CAS), whose reply tells the record's new CAS value: ``save_version`` knows
the new version, as the other versioned stores do. A meta set that memcached
cannot allocate unlinks the record it was to replace, even when its CAS was
stale (a classic ``cas`` leaves the record). So the store asks ``stats
settings`` too, once per new connection, and uses meta sets only where
memcached evicts to make room (a server run with ``-M``, which never drops a
record, gets classic commands) and only for values up to half the item size
limit (``-I``): a record too large to store never costs the one stored before
it. Where evictions are on, a meta set that finds no room loses the record as
an eviction would. A proxy that does not answer those two questions as
memcached does gets classic commands. A general client (pymemcache's ``Client``) costs about
as much Python per command as the loopback round trip itself; the store needs
five commands, one key at a time, bytes in and bytes out, so it writes them
itself.

- Values are stored with flags 0 and read back as the bytes they are, whatever
  their flags: nothing is ever unpickled.
- One command at a time per connection, never pipelined, so a complete reply
  is all a connection ever holds; anything more, or anything that is not a
  reply of memcached's protocol, closes the connection and raises
  :class:`StoreError`. So does an error reply (``ERROR``, ``CLIENT_ERROR``,
  ``SERVER_ERROR``, e.g. a record larger than the server's item size limit).
- Idle connections stay on a stack per server. An idle connection may have
  died unnoticed (the server restarted, a firewall forgot it). One that sat
  idle for more than PROBE_AFTER seconds is checked with a non-blocking peek
  before use and replaced if the server closed it; a busy store's connections
  are back in use within milliseconds and skip the check. If a connection still
  turns out closed during a command, ``gets``, ``touch`` and ``delete`` are sent
  again on a new connection (they give the same result however often they
  run); ``add`` and ``cas`` are not, since the server may have run them before
  the connection went, and raise :class:`StoreUnavailable` instead: their
  outcome is unknown, and a second attempt would report a conflict with the
  first. After a fork the child forgets its parent's connections (closing them
  would close the parent's) and makes its own.
- A timeout, a refused or lost connection raise :class:`StoreUnavailable` for
  the keys on that server; the server is used again as soon as it answers.
  Timeouts bound each read and each write on the socket.
- memcached started without CAS support (``-C``) cannot hold sessions safely:
  every load then raises :class:`StoreError` saying so.

Keys are spread over the servers by rendezvous hashing (pymemcache's
``RendezvousHash``, so a key lands where pymemcache's ``HashClient`` puts it).
That hash runs murmur3 in pure Python once per server, so each key's server is
remembered (up to ``ROUTE_CACHE_SIZE`` keys, least recently used first out);
with one server there is nothing to choose.
``HashClient`` itself is not used: while a server fails it answers some calls
with a default value (a load finds nothing, a create looks like a conflict) and
then moves the server's keys to the others, so stale records can come back
when the server returns.

memcached is a cache: a restart or an eviction loses records, and sessions
stored there can vanish. Choose redis or sql where that matters.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import socket
import struct
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from ..clock import Clock, system_clock
from ..config.coerce import Coercer, as_bool, as_memcache_module, as_optional_str, as_str, as_words, uncommented
from ..errors import ConfigurationError, StoreError, StoreUnavailable
from ..settings import StoreSettings
from .base import Record, Version, VersionedStore, check_key

DEFAULT_PORT = 11211
#: memcached reads a larger expiry as an absolute Unix time.
MAX_RELATIVE_EXPIRY = 30 * 24 * 3600
MAX_KEY_BYTES = 250
#: Keys whose server the store remembers: about 14 MB when full (64-hex-digit keys).
ROUTE_CACHE_SIZE = 65536
#: Leaves room for "#" and a SHA-256 hex digest within MAX_KEY_BYTES.
PREFIX_PATTERN = re.compile(r"[!-~]{0,185}")
SERVER_PATTERN = re.compile(
    r"\[(?P<ipv6>[^\]]+)\](?::(?P<port6>\d+))?|(?P<host>[^:\[\]]+)(?::(?P<port>\d+))?"
)
#: Bytes asked of one ``recv``: a whole small reply; larger values are read into place.
RECV_SIZE = 65536
#: A reply line longer than this is not memcached's (its longest is a VALUE header).
MAX_LINE_BYTES = 2048
#: memcached's largest item size (``-I``) is 1 GB: a larger announced value is garbage.
MAX_VALUE_BYTES = 1 << 30
#: Seconds a connection may sit idle before it is checked before use (Connection.alive).
PROBE_AFTER = 0.1
_END = b"END\r\n"
_VALUE_END = b"\r\nEND\r\n"
#: Where ``SO_RCVTIMEO``/``SO_SNDTIMEO`` take a ``struct timeval`` of two C longs
#: and a timed-out blocking call fails with EAGAIN (see :class:`Connection`).
KERNEL_TIMEOUTS = sys.platform == "linux"
_STORED = {b"STORED": True, b"NOT_STORED": False, b"EXISTS": False, b"NOT_FOUND": False}
#: A meta set's reply codes: stored, or not (the CAS differed, no such key, add of an existing key).
_META_STORED = {b"HD": True, b"EX": False, b"NF": False, b"NS": False}
#: The first version whose meta set syntax and ``c`` (the new CAS) this store relies on.
META_SINCE = (1, 6, 13)
#: The longest ``stats settings`` reply read (memcached's is about 2 KB).
MAX_SETTINGS_BYTES = 65536
_TOUCHED = {b"TOUCHED": True, b"NOT_FOUND": False}
_DELETED = {b"DELETED": True, b"NOT_FOUND": False}

T = TypeVar("T")
R = TypeVar("R")
#: What a write needs: the server key, the value, memcached's exptime, the expected CAS (None: add).
Write = tuple[bytes, bytes, int, int | None]


def parse_servers(text: str) -> list[tuple[str, int]]:
    """Beaker's ``host:port;host:port`` (commas and spaces separate too; IPv6 in brackets)."""
    servers = []
    for item in re.split(r"[;,\s]+", text.strip()):
        match = SERVER_PATTERN.fullmatch(item)
        if match is None:
            raise ConfigurationError(f"memcached server {item!r} is not host:port", "url")
        host = match["ipv6"] or match["host"]
        servers.append((host, int(match["port6"] or match["port"] or DEFAULT_PORT)))
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


def speaks_meta(reply: bytes) -> bool:
    """Whether a ``version`` reply line names a memcached with the meta set this
    store writes with (META_SINCE or later); anything else gets classic commands."""
    match = re.fullmatch(rb"VERSION (\d{1,4})\.(\d{1,4})\.(\d{1,4})(?:[.\-+~][!-~]*)?", reply)
    return match is not None and tuple(int(part) for part in match.groups()) >= META_SINCE


class ProtocolError(Exception):
    """memcached answered with an error, or with something that is not its protocol."""


class ConnectionLost(ConnectionError):
    """The server closed the connection (``recv`` returned nothing)."""


class Connection:
    """One TCP connection to a memcached server, one command at a time.

    Each command method sends one request and reads its whole reply; an error
    reply or one that is not memcached's raises :class:`ProtocolError`.
    """

    __slots__ = ("idle_since", "meta_max", "sock")

    def __init__(self, endpoint: tuple[str, int], connect_timeout: float, timeout: float, meta: bool = True) -> None:
        sock = socket.create_connection(endpoint, timeout=connect_timeout)
        #: When the connection last went back to the pool (time.monotonic()).
        self.idle_since = 0.0
        #: The largest value written with a meta set; 0 where the server has none (module doc).
        self.meta_max = 0
        self.sock = sock
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Only on the standard library's own sockets: a green socket (gevent,
            # eventlet) is non-blocking underneath and needs its own timeout.
            if KERNEL_TIMEOUTS and type(sock).__module__ == "socket":
                # The kernel's own send and receive timeouts on a blocking socket:
                # one system call per read or write. (With Python's timeout the
                # socket is non-blocking and every read and write waits in a
                # poll() first.)
                seconds, fraction = divmod(timeout, 1.0)
                limit = struct.pack("ll", int(seconds), max(int(fraction * 1_000_000), 0 if seconds else 1))
                sock.settimeout(None)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
            else:
                sock.settimeout(timeout)
            if meta and speaks_meta(self._line(b"version\r\n")):
                self.meta_max = self._meta_limit()
        except BaseException:
            sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def alive(self) -> bool:
        """Whether the server still holds this idle connection open: nothing to read
        and no end of stream (one non-blocking peek, nothing consumed)."""
        sock = self.sock
        timeout = sock.gettimeout()
        try:
            sock.settimeout(0.0)  # non-blocking for the peek (a timeout would wait for data)
            try:
                sock.recv(1, socket.MSG_PEEK)
            finally:
                sock.settimeout(timeout)
        except BlockingIOError:
            return True  # open, and nothing unasked-for on it
        except OSError:
            return False  # reset
        return False  # closed by the server (b""), or bytes no command asked for

    def value(self, request: bytes) -> tuple[bytes, int] | None:
        """A ``gets`` for one key: its value and cas unique, or None when there is none."""
        sock = self.sock
        sock.sendall(request)
        reply = sock.recv(RECV_SIZE)
        if reply == _END:
            return None
        end = reply.find(b"\r\n")
        while end < 0:
            reply = self._more(reply)
            end = reply.find(b"\r\n")
        if reply == _END:  # a miss that came in pieces
            return None
        header = reply[:end].split(b" ")
        if (
            len(header) != 5
            or header[0] != b"VALUE"
            or header[1] != request[5:-2]  # "gets <key>\r\n": the key asked for
            or not (header[3].isdigit() and len(header[3]) <= 10)
            or not (header[4].isdigit() and len(header[4]) <= 20)  # a 64-bit number
        ):
            raise ProtocolError(_describe(reply[:end]))
        size, cas = int(header[3]), int(header[4])
        if size > MAX_VALUE_BYTES:
            raise ProtocolError(f"a value of {size} bytes announced, more than memcached can hold")
        if cas == 0:
            raise ProtocolError("memcached gives no CAS values (started with -C): sessions need them")
        start = end + 2
        total = start + size + len(_VALUE_END)
        if len(reply) < total:
            reply = self._rest(reply, total)
        if len(reply) != total or reply[start + size :] != _VALUE_END:
            raise ProtocolError(f"a malformed value reply ({len(reply)} bytes where {total} were due)")
        return reply[start : start + size], cas

    def touched(self, request: bytes) -> bool:
        return self._outcome(request, _TOUCHED)

    def deleted(self, request: bytes) -> bool:
        return self._outcome(request, _DELETED)

    def write(self, order: Write) -> tuple[bool, int | None]:
        """Store a value: whether it was stored, and its new CAS value where the
        server tells it (a meta set; None after a classic ``add`` or ``cas``).

        ``order`` is (server key, value, exptime, expected CAS); no expected CAS
        means the key must not exist yet."""
        name, payload, exptime, expected = order
        if self.meta_max and len(payload) <= self.meta_max:
            condition = b"ME" if expected is None else b"C%d" % expected
            line = self._line(b"ms %b %d T%d %b c\r\n%b\r\n" % (name, len(payload), exptime, condition, payload))
            parts = line.split(b" ")
            stored = _META_STORED.get(parts[0])
            if stored is False and len(parts) <= 2:
                return False, None  # the returned CAS of a write not made (c0) is not needed
            cas = parts[1] if len(parts) == 2 else b""
            if not stored or cas[:1] != b"c" or len(cas) > 21 or not cas[1:].isdigit():
                raise ProtocolError(_describe(line))
            return True, int(cas[1:]) or None  # 0: the server keeps no CAS values (-C)
        if expected is None:
            request = b"add %b 0 %d %d\r\n%b\r\n" % (name, exptime, len(payload), payload)
        else:
            request = b"cas %b 0 %d %d %d\r\n%b\r\n" % (name, exptime, len(payload), expected, payload)
        return self._outcome(request, _STORED), None

    def _outcome(self, request: bytes, outcomes: dict[bytes, bool]) -> bool:
        """Send ``request``; its one-line reply, looked up in ``outcomes``."""
        line = self._line(request)
        try:
            outcome = outcomes[line]
        except KeyError:
            raise ProtocolError(_describe(line)) from None
        return outcome

    def _meta_limit(self) -> int:
        """The largest value to write with a meta set, from ``stats settings``: half
        the item size limit where the server evicts to make room, else 0 (module doc)."""
        self.sock.sendall(b"stats settings\r\n")
        reply = self.sock.recv(RECV_SIZE)
        while b"\r\n" not in reply:
            reply = self._more(reply)
        first = reply[: reply.index(b"\r\n")]
        if _is_error(first) and len(reply) == len(first) + 2:
            return 0  # a proxy that does not answer it: classic commands
        if not (first.startswith(b"STAT ") or reply == _END):
            raise ProtocolError(_describe(first))
        while not (reply == _END or reply.endswith(b"\r\nEND\r\n")):
            reply = self._more(reply, MAX_SETTINGS_BYTES)
        size = re.search(rb"(?:^|\r\n)STAT item_size_max (\d{1,12})\r\n", reply)
        evicts = re.search(rb"(?:^|\r\n)STAT evictions on\r\n", reply)
        return int(size[1]) // 2 if size and evicts else 0

    def _line(self, request: bytes) -> bytes:
        """Send ``request``; its one-line reply, without the line end."""
        sock = self.sock
        sock.sendall(request)
        reply = sock.recv(RECV_SIZE)
        while not reply.endswith(b"\r\n"):
            reply = self._more(reply)
        return reply[:-2]

    def _more(self, sofar: bytes, limit: int = MAX_LINE_BYTES) -> bytes:
        """``sofar`` and what arrives next of a reply that has not ended yet (a line,
        unless a larger ``limit`` is given)."""
        if len(sofar) > limit:
            raise ProtocolError(f"no end of line in the first {len(sofar)} bytes of a reply: {sofar[:80]!r}")
        more = self.sock.recv(RECV_SIZE)
        if not more:
            raise ConnectionLost("memcached closed the connection")
        return sofar + more

    def _rest(self, head: bytes, total: int) -> bytes:
        """A reply of ``total`` bytes whose first bytes are ``head``, read into place."""
        buffer = bytearray(total)
        buffer[: len(head)] = head
        view = memoryview(buffer)
        received = len(head)
        recv_into = self.sock.recv_into
        while received < total:
            count = recv_into(view[received:])
            if not count:
                raise ConnectionLost("memcached closed the connection")
            received += count
        return bytes(buffer)


def _is_error(line: bytes) -> bool:
    """Whether a reply line is one of memcached's error replies."""
    return line == b"ERROR" or line.startswith((b"SERVER_ERROR ", b"CLIENT_ERROR "))


def _describe(line: bytes) -> str:
    """An error reply as memcached wrote it; anything else as what it is."""
    if _is_error(line):
        return line.decode("ascii", "replace")
    return f"a reply that is not memcached's: {line[:80]!r}"


class _Server:
    """One memcached server and a stack of idle connections to it (module doc).

    The stack is a plain list: ``pop`` and ``append`` are atomic, so threads
    share it without a lock.
    """

    __slots__ = ("_connect", "_pid", "address", "idle")

    def __init__(self, address: str, connect: Callable[[], Connection]) -> None:
        self.address = address
        self._connect = connect
        self.idle: list[Connection] = []
        self._pid = os.getpid()

    def take(self) -> Connection | None:
        """An idle connection, or None when there is none that still works.

        One idle longer than PROBE_AFTER is checked first (:meth:`Connection.alive`)
        and dropped if the server closed it meanwhile (a restart). In a forked
        child, the parent's connections are forgotten (left open for the parent):
        getpid is checked on every call rather than trusting at-fork hooks, which
        servers that fork from C (uWSGI) do not run.
        """
        if self._pid != os.getpid():
            self.idle = []
            self._pid = os.getpid()
        idle = self.idle
        while True:
            try:
                conn = idle.pop()
            except IndexError:
                return None
            if time.monotonic() - conn.idle_since < PROBE_AFTER or conn.alive():
                return conn
            conn.close()

    def keep(self, conn: Connection) -> None:
        """Put ``conn``, whose last reply was read whole, back on the idle stack."""
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def use(self, conn: Connection | None, command: Callable[[Connection, R], T], request: R) -> T:
        """``command`` on ``conn`` (None: a new connection), which goes back to the idle
        stack if the whole reply was read and is closed otherwise."""
        if conn is None:
            conn = self._connect()
        try:
            result = command(conn, request)
        except BaseException:
            conn.close()  # the stream's state is unknown: never reuse it
            raise
        self.keep(conn)
        return result

    def close(self) -> None:
        idle, self.idle = self.idle, []
        if self._pid == os.getpid():
            for conn in idle:
                conn.close()


class MemcachedStore(VersionedStore):
    """Records in memcached: ``load`` is a ``gets``, ``save`` a meta set (memcached
    1.6.13 and later) or an ``add`` or ``cas``.

    ``Record.expires_at`` is always ``None``: classic memcached commands do not
    report a key's remaining time. memcached expires records itself, so
    ``purge_expired`` returns 0, and ``count`` is ``None`` because memcached
    cannot count the keys under one prefix.
    """

    name = "memcached"

    def __init__(
        self,
        servers: str | Sequence[tuple[str, int]],
        key_prefix: str = "satchel:s:",
        *,
        timeout: float = 2.0,
        connect_timeout: float = 2.0,
        meta: bool = True,
    ) -> None:
        """``meta=False``: classic commands only, even where the server has the meta protocol."""
        endpoints = parse_servers(servers) if isinstance(servers, str) else list(servers)
        if not endpoints:
            raise ConfigurationError("the memcached store needs at least one server", "url")
        if not PREFIX_PATTERN.fullmatch(key_prefix):
            raise ConfigurationError(
                "the memcached key_prefix must be printable ASCII without spaces, at most 185 characters",
                "key_prefix",
            )
        addresses = [f"{host}:{port}" for host, port in endpoints]  # HashClient's node names
        try:
            from pymemcache.client.rendezvous import RendezvousHash
        except ImportError as exc:
            raise StoreUnavailable(
                'the memcached store needs pymemcache: pip install "satchel[memcached]"',
                self.name,
                ";".join(addresses),
            ) from exc
        self.key_prefix = key_prefix

        def connector(endpoint: tuple[str, int]) -> Callable[[], Connection]:
            return lambda: Connection(endpoint, connect_timeout, timeout, meta)

        self._servers = {
            address: _Server(address, connector(endpoint))
            for address, endpoint in zip(addresses, endpoints, strict=True)
        }
        self._ring = RendezvousHash(nodes=list(addresses))
        # Each key's server key and server: fixed, since the server list never changes.
        self._locate: Callable[[str], tuple[_Server, bytes]] = functools.lru_cache(maxsize=ROUTE_CACHE_SIZE)(
            self._find
        )

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> MemcachedStore:
        servers = settings.url or ";".join(settings.urls)
        if not servers.strip():
            raise ConfigurationError("the memcached store needs url = host:port[;host:port...]", "url")
        return cls(servers, key_prefix=settings.key_prefix, meta=settings.memcached_meta)

    @property
    def address(self) -> str:
        return ";".join(self._servers)

    def server_key(self, key: str) -> str:
        """The key memcached sees: prefixed, and hashed when that makes it too long."""
        full = self.key_prefix + check_key(key)
        if len(full) > MAX_KEY_BYTES:
            full = f"{self.key_prefix}#{hashlib.sha256(key.encode()).hexdigest()}"
        return full

    def _find(self, key: str) -> tuple[_Server, bytes]:
        """The server holding ``key``, and the key memcached sees, encoded."""
        name = self.server_key(key)
        if len(self._servers) == 1:
            (server,) = self._servers.values()
        else:
            server = self._servers[self._ring.get_node(name)]
        return server, name.encode()

    def _call(
        self, server: _Server, command: Callable[[Connection, R], T], request: R, repeatable: bool = True
    ) -> T:
        """``command(connection, request)`` on an idle connection to ``server`` or a new
        one (module doc), its failures as satchel's errors.

        When an idle connection turns out to be closed, a ``repeatable`` command
        (``gets``, ``touch``, ``delete``: the same result however often it runs)
        is sent again on a new connection. ``add`` and ``cas`` are not: the
        server may have run them before the connection went, and a second
        attempt would report a conflict with the first; the caller gets
        StoreUnavailable (outcome unknown) instead.
        """
        try:
            conn = server.take()
            try:
                return server.use(conn, command, request)
            except ConnectionError:
                if conn is None or not repeatable:
                    raise
                return server.use(None, command, request)
        except OSError as exc:  # refused, timed out, reset, closed
            # A kernel timeout (KERNEL_TIMEOUTS) shows as EAGAIN: BlockingIOError.
            reason = "no answer in time" if isinstance(exc, (TimeoutError, BlockingIOError)) else repr(exc)
            raise StoreUnavailable(
                f"memcached at {server.address} is unreachable: {reason}", self.name, server.address
            ) from exc
        except ProtocolError as exc:
            raise StoreError(f"memcached at {server.address} refused the command: {exc}") from exc

    def load(self, key: str) -> Record | None:
        server, name = self._locate(key)
        found = self._call(server, Connection.value, b"gets %b\r\n" % name)
        return None if found is None else Record(found[0], found[1])

    def _save(
        self, key: str, data: bytes, ttl: int | None, expected_version: Version | None
    ) -> tuple[bool, Version | None]:
        server, name = self._locate(key)
        payload = data if type(data) is bytes else bytes(data)
        expected = None if expected_version is None else int(expected_version)
        order: Write = (name, payload, expiry(ttl), expected)
        return self._call(server, Connection.write, order, repeatable=False)

    def touch(self, key: str, ttl: int | None) -> bool:
        server, name = self._locate(key)
        return self._call(server, Connection.touched, b"touch %b %d\r\n" % (name, expiry(ttl)))

    def delete(self, key: str) -> None:
        server, name = self._locate(key)
        self._call(server, Connection.deleted, b"delete %b\r\n" % name)

    def close(self) -> None:
        for server in self._servers.values():
            server.close()

    # -- settings by name: until this store builds itself from its options ----------

    options: ClassVar[Mapping[str, Coercer]] = {
        "url": as_optional_str,
        "urls": as_words,
        "key_prefix": as_str,
        "memcached_meta": uncommented(as_bool),
        "memcache_module": uncommented(as_memcache_module),
    }

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> MemcachedStore:
        return cls.from_settings(StoreSettings.of(cls.name, options))
