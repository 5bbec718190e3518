"""Redis and Redis Cluster stores on ``redis.asyncio``: the records, keys, script
and TTLs of :mod:`satchel.stores.redis`, so sync and async apps share sessions.

One round trip per operation, as there: ``load`` is one HMGET, ``save`` and
``touch`` one EVALSHA of the same script (re-loaded once after a server restart
by redis-py's script object), ``delete`` one DEL.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from ...clock import Clock, system_clock
from ...errors import ConfigurationError, StoreError, StoreUnavailable
from ..base import Record, Version, check_key
from ..redis import (
    CLUSTER_RETRIES,
    DEFAULT_PREFIX,
    DEFAULT_TIMEOUT,
    FAILURES,
    SCRIPT,
    UNAVAILABLE,
    RedisStore,
    masked_address,
    server_urls,
)
from .base import AsyncStore

try:
    from redis import asyncio as aredis
    from redis import exceptions as rx
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.commands.core import AsyncScript
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise StoreUnavailable('the redis stores need redis-py: pip install "satchel[redis]"', "redis") from exc

Client = aredis.Redis | RedisCluster
T = TypeVar("T")

log = logging.getLogger("satchel.stores.redis")

#: What ``redis.asyncio`` may raise, instead of a ConnectionError, when a pooled
#: connection was closed under a command (the cluster client disconnects idle
#: connections after a node error while other tasks take them): the transport's
#: own AttributeError or TypeError. Such a command never reached the server.
TRANSPORT_LEAKS = (AttributeError, TypeError)


def async_redis_client(url_or_urls: str | Sequence[str], *, cluster: bool, timeout: float = DEFAULT_TIMEOUT) -> Client:
    """A ``redis.asyncio`` client with the sync stores' timeouts and retry policy
    (a broken connection is retried once at once, a timeout is not)."""
    urls = server_urls(url_or_urls)
    if not urls:
        raise ConfigurationError("a redis client needs a url", "url")
    common: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if not cluster:
        if len(urls) > 1:
            raise ConfigurationError("a redis (not cluster) client takes one url", "url")
        retry = Retry(NoBackoff(), 1, supported_errors=(rx.ConnectionError,))
        return aredis.Redis.from_url(urls[0], retry=retry, **common)
    nodes = [ClusterNode(part.hostname or "127.0.0.1", part.port or 6379) for part in map(urlsplit, urls[1:])]
    retry = Retry(NoBackoff(), CLUSTER_RETRIES)
    return RedisCluster.from_url(urls[0], startup_nodes=nodes, retry=retry, **common)


class _AsyncRedisBase(AsyncStore):
    options = RedisStore.options

    def __init__(self, connect: Callable[[], Client], key_prefix: str, address: str, *, clock: Clock) -> None:
        self.key_prefix = key_prefix
        self.clock = clock
        self._connect = connect
        self._address = address
        self._bound: tuple[Client, AsyncScript] | None = None

    @property
    def address(self) -> str:
        return self._address

    def _server(self) -> tuple[Client, AsyncScript]:
        # No lock: building the client does no I/O and the loop runs one task at a time.
        if self._bound is None:
            client = self._connect()
            self._bound = (client, client.register_script(SCRIPT))
        return self._bound

    async def _command(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, once more on a fresh connection if the driver leaked a transport
        error (:data:`TRANSPORT_LEAKS`); a second one is raised as it is."""
        try:
            return await call()
        except TRANSPORT_LEAKS as exc:
            log.info(
                "%s store at %s: a connection closed under a command (%r); trying again", self.name, self.address, exc
            )
            return await call()

    def _failure(self, action: str, exc: Exception) -> Exception:
        if isinstance(exc, UNAVAILABLE):
            return StoreUnavailable(
                f"{self.name} store at {self.address} is unreachable ({action}): {exc}", self.name, self.address
            )
        return StoreError(f"{self.name} store at {self.address} failed to {action}: {exc}")

    def _name(self, key: str) -> str:
        return self.key_prefix + check_key(key)

    def _expiry(self, ttl: int | None) -> tuple[str, str]:
        if ttl is None:
            return "", ""
        ms = ttl * 1000
        return str(ms), str(int(self.clock() * 1000) + ms)

    async def _run_script(self, action: str, name: str, args: Sequence[str | bytes]) -> int:
        try:
            _, script = self._server()
            return int(await self._command(lambda: script(keys=(name,), args=args)))
        except FAILURES as exc:
            raise self._failure(action, exc) from exc

    async def load(self, key: str) -> Record | None:
        name = self._name(key)
        try:
            client, _ = self._server()
            reply: list[Any] = await self._command(lambda: client.hmget(name, ["v", "d", "e"]))
        except FAILURES as exc:
            if isinstance(exc, rx.ResponseError) and str(exc).startswith("WRONGTYPE"):
                return None  # a key of another type: no session here, and a save refuses it
            raise self._failure("load", exc) from exc
        version, data, expires = reply
        if version is None:
            return None
        return Record(data or b"", version.decode("ascii"), _expires_at(expires))

    async def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        name = self._name(key)
        version = os.urandom(8).hex()
        args: list[str | bytes] = ["save", *self._expiry(ttl), version, bytes(data)]
        if expected_version is not None:
            args.append(expected_version if isinstance(expected_version, bytes) else str(expected_version))
        return version if await self._run_script("save", name, args) else None

    async def touch(self, key: str, ttl: int | None) -> bool:
        return bool(await self._run_script("touch", self._name(key), ["touch", *self._expiry(ttl)]))

    async def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            client, _ = self._server()
            await self._command(lambda: client.delete(name))
        except FAILURES as exc:
            raise self._failure("delete", exc) from exc

    async def count(self) -> int:
        """Keys under the prefix, by SCAN (slow on a big database; for tests and statistics)."""
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self.key_prefix) + "*"
        try:
            client, _ = self._server()
            return sum([1 async for _ in client.scan_iter(match=pattern, count=1000)])
        except FAILURES as exc:
            raise self._failure("count", exc) from exc

    async def close(self) -> None:
        bound, self._bound = self._bound, None
        if bound is not None:
            try:
                await bound[0].aclose()
            except FAILURES as exc:
                raise self._failure("close", exc) from exc


def _expires_at(expires: bytes | None) -> float | None:
    try:
        return int(expires) / 1000 if expires else None
    except ValueError:
        return None


def _prefix(options: Mapping[str, Any]) -> str:
    prefix = options.get("key_prefix")
    return DEFAULT_PREFIX if prefix is None else str(prefix)


def _timeout(options: Mapping[str, Any]) -> float:
    timeout = options.get("socket_timeout")
    return DEFAULT_TIMEOUT if timeout is None else float(timeout)


class AsyncRedisStore(_AsyncRedisBase):
    """One Redis server, at a redis://, rediss:// or unix:// URL."""

    name: ClassVar[str] = "redis"

    def __init__(
        self, client: aredis.Redis, key_prefix: str = DEFAULT_PREFIX, address: str = "", *, clock: Clock = system_clock
    ) -> None:
        if not address:
            options = client.connection_pool.connection_kwargs
            address = options.get("path") or f"{options.get('host')}:{options.get('port')}"
        super().__init__(lambda: client, key_prefix, address, clock=clock)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> AsyncRedisStore:
        url = options.get("url")
        if not url:
            raise ConfigurationError("the redis store needs url", "url")
        client = async_redis_client(url, cluster=False, timeout=_timeout(options))
        assert isinstance(client, aredis.Redis)
        return cls(client, _prefix(options), masked_address(server_urls(url)[0]), clock=clock)


class AsyncRedisClusterStore(_AsyncRedisBase):
    """A Redis Cluster, found through one or more startup nodes (``urls``); the
    client connects on first use, so an app starts while the cluster is down."""

    name: ClassVar[str] = "rediscluster"

    def __init__(
        self,
        client: RedisCluster | Callable[[], RedisCluster],
        key_prefix: str = DEFAULT_PREFIX,
        address: str = "",
        *,
        clock: Clock = system_clock,
    ) -> None:
        connect = client if callable(client) else lambda: client
        super().__init__(connect, key_prefix, address, clock=clock)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> AsyncRedisClusterStore:
        urls = server_urls(options.get("urls") or options.get("url") or ())
        if not urls:
            raise ConfigurationError("the rediscluster store needs urls", "urls")
        timeout = _timeout(options)

        def connect() -> RedisCluster:
            client = async_redis_client(urls, cluster=True, timeout=timeout)
            assert isinstance(client, RedisCluster)
            return client

        return cls(connect, _prefix(options), ";".join(map(masked_address, urls)), clock=clock)


__all__ = ["AsyncRedisClusterStore", "AsyncRedisStore", "async_redis_client"]
