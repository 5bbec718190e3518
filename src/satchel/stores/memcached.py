"""memcached through pymemcache: one round trip per operation, several servers.

Keys are spread over the servers by rendezvous hashing (pymemcache's
``RendezvousHash``, so a key lands where pymemcache's ``HashClient`` puts it).
That hash runs murmur3 in pure Python once per server, so each key's server is
remembered (up to ``ROUTE_CACHE_SIZE`` keys, least recently used first out);
with one server there is nothing to choose.
``HashClient`` itself is not used: while a server fails it answers some calls
with a default value (a load finds nothing, a create looks like a conflict) and
then moves the server's keys to the others, so stale records can come back
when the server returns. Here an outage raises :class:`StoreUnavailable` for
the keys on that server, and the server is used again as soon as it answers.

memcached is a cache: a restart or an eviction loses records, and sessions
stored there can vanish. Choose redis or sql where that matters.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigurationError, StoreError, StoreUnavailable
from ..settings import StoreSettings
from .base import Record, Store, Version, check_key

if TYPE_CHECKING:
    from pymemcache.client.base import Client

T = TypeVar("T")

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


class _Server:
    """One memcached server and a thread-safe pool of idle connections to it."""

    def __init__(
        self, address: str, connect: Callable[[], Client], lost: tuple[type[Exception], ...]
    ) -> None:
        self.address = address
        self._connect = connect
        self._lost = lost
        self._idle: list[Client] = []
        self._lock = threading.Lock()

    def run(self, command: Callable[[Client], T]) -> T:
        """Run ``command`` on an idle connection, or a new one.

        An idle connection may have died unnoticed (the server restarted, a
        firewall forgot it); that shows only on use, as a closed or reset
        connection. The other idle connections then died too: they are dropped,
        and the command is sent once more on a new connection. That is safe
        because a connection closed while idle never delivered the command.
        """
        with self._lock:
            client = self._idle.pop() if self._idle else None
        if client is not None:
            try:
                return self._use(client, command)
            except self._lost:
                self.close()
        return self._use(self._connect(), command)

    def _use(self, client: Client, command: Callable[[Client], T]) -> T:
        try:
            result = command(client)
        except BaseException:
            client.close()  # a reply may still be on its way: never reuse it
            raise
        with self._lock:
            self._idle.append(client)
        return result

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()


class MemcachedStore(Store):
    """Records in memcached: ``load`` is a ``gets``, ``save`` an ``add`` or ``cas``.

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
    ) -> None:
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
            from pymemcache.client.base import Client
            from pymemcache.client.rendezvous import RendezvousHash
            from pymemcache.exceptions import MemcacheError, MemcacheUnexpectedCloseError
        except ImportError as exc:
            raise StoreUnavailable(
                'the memcached store needs pymemcache: pip install "satchel[memcached]"',
                self.name,
                ";".join(addresses),
            ) from exc
        self.key_prefix = key_prefix
        self._error: type[Exception] = MemcacheError
        self._unreachable: tuple[type[Exception], ...] = (OSError, MemcacheUnexpectedCloseError)
        lost = (ConnectionError, MemcacheUnexpectedCloseError)
        options: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "timeout": timeout,
            "no_delay": True,  # a request is one small write: do not let Nagle hold it
            "ignore_exc": False,
            "default_noreply": False,  # every command waits for its answer
        }

        def connector(endpoint: tuple[str, int]) -> Callable[[], Client]:
            return lambda: Client(endpoint, **options)

        self._servers = {
            address: _Server(address, connector(endpoint), lost)
            for address, endpoint in zip(addresses, endpoints, strict=True)
        }
        self._ring = RendezvousHash(nodes=list(addresses))
        # The server of each key: fixed, since the server list never changes.
        self._only: _Server | None = None
        if len(self._servers) == 1:
            (self._only,) = self._servers.values()
        self._route: Callable[[str], _Server] = functools.lru_cache(maxsize=ROUTE_CACHE_SIZE)(self._find_server)

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> MemcachedStore:
        servers = settings.url or ";".join(settings.urls)
        if not servers.strip():
            raise ConfigurationError("the memcached store needs url = host:port[;host:port...]", "url")
        return cls(servers, key_prefix=settings.key_prefix)

    @property
    def address(self) -> str:
        return ";".join(self._servers)

    def server_key(self, key: str) -> str:
        """The key memcached sees: prefixed, and hashed when that makes it too long."""
        full = self.key_prefix + check_key(key)
        if len(full) > MAX_KEY_BYTES:
            full = f"{self.key_prefix}#{hashlib.sha256(key.encode()).hexdigest()}"
        return full

    def _find_server(self, name: str) -> _Server:
        return self._servers[self._ring.get_node(name)]

    def _call(self, key: str, command: Callable[[Client, str], T]) -> T:
        """Run one command for ``key`` on its server, turning driver errors into satchel's."""
        name = self.server_key(key)
        server = self._only or self._route(name)
        try:
            return server.run(lambda client: command(client, name))
        except self._unreachable as exc:
            raise StoreUnavailable(
                f"memcached at {server.address} is unreachable: {exc!r}", self.name, server.address
            ) from exc
        except self._error as exc:
            raise StoreError(f"memcached at {server.address} refused the command: {exc}") from exc

    def load(self, key: str) -> Record | None:
        value, cas = self._call(key, lambda client, name: client.gets(name))
        if value is None:
            return None
        return Record(bytes(value), int(cas))

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> bool:
        payload, exptime = bytes(data), expiry(ttl)
        if expected_version is None:
            stored = self._call(key, lambda client, name: client.add(name, payload, exptime, noreply=False))
        else:
            stored = self._call(
                key, lambda client, name: client.cas(name, payload, expected_version, exptime, noreply=False)
            )
        # add: False on NOT_STORED; cas: False on EXISTS, None on NOT_FOUND.
        return stored is True

    def touch(self, key: str, ttl: int | None) -> bool:
        exptime = expiry(ttl)
        return self._call(key, lambda client, name: client.touch(name, exptime, noreply=False)) is True

    def delete(self, key: str) -> None:
        self._call(key, lambda client, name: client.delete(name, noreply=False))

    def close(self) -> None:
        for server in self._servers.values():
            server.close()
