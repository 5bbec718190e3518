"""Redis and Redis Cluster stores, one network round trip per operation.

Each record is one hash, ``key_prefix + key`` -> ``{v: version, d: data}``, and
its lifetime is the key's own TTL: the server expires records (nothing to
purge), and in a cluster a whole record lives in one slot.

- ``load`` pipelines HMGET (version, data) and PTTL without a transaction: one
  round trip, two of the cheapest commands Redis has. A Lua script doing the
  same is one command too, but costs the server several times the CPU and
  copies the data through Lua.
- ``save`` is one EVALSHA of a script that compares the version, writes the
  data with a new random version and sets the TTL, atomically. Versions are
  random tokens, not counters, so a record deleted and created again never
  repeats a version a stale writer may still hold. The first call after the
  server forgot its scripts (a restart) costs one more round trip: redis-py's
  ``Script`` answers NOSCRIPT with SCRIPT LOAD and runs it again.
- ``touch`` is one PEXPIRE; without a TTL it is one EVALSHA (EXISTS + PERSIST),
  because PERSIST alone cannot tell a record without expiry from a missing one.
- ``delete`` is one DEL.

A server that cannot be reached raises :class:`StoreUnavailable` (an error
answer :class:`StoreError`) naming the store and its address. redis-py
reconnects on the next call, so a store keeps working once the server is back.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError, StoreError, StoreUnavailable
from ..settings import StoreSettings
from .base import Record, Store, Version, check_key

try:
    import redis
    from redis import exceptions as rx
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.commands.core import Script
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise StoreUnavailable('the redis stores need redis-py: pip install "satchel[redis]"', "redis") from exc

Client = redis.Redis | RedisCluster

DEFAULT_PREFIX = "satchel:s:"
#: Seconds to connect and to wait for an answer, unless the URL says otherwise;
#: this bounds how long a request hangs on a dead server.
DEFAULT_TIMEOUT = 2.0
#: Attempts a cluster client makes across a topology change (failover, resharding).
CLUSTER_RETRIES = 3

# KEYS[1] the record; ARGV new version, data, TTL in ms ("" for none)
# [, expected version: absent when the record must not exist yet].
SAVE_SCRIPT = """
local current = redis.call('HGET', KEYS[1], 'v')
if #ARGV == 3 then
  if current then return 0 end
elseif current ~= ARGV[4] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
if ARGV[3] == '' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
"""

PERSIST_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('PERSIST', KEYS[1])
return 1
"""

# Errors meaning "the server is not there (right now)", as opposed to an error answer.
UNAVAILABLE: tuple[type[Exception], ...] = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.ClusterDownError,
    rx.RedisClusterException,  # raised when no startup node answers; not a RedisError
)


def _glob_escape(text: str) -> str:
    """``text`` as a literal inside a SCAN MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class _Bound:
    """A client with the scripts registered on it, built on first use."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.save: Script = client.register_script(SAVE_SCRIPT)
        self.persist: Script = client.register_script(PERSIST_SCRIPT)


class _RedisBase(Store):
    """What both stores share; they differ only in how the client is built."""

    def __init__(self, connect: Callable[[], Client], key_prefix: str, address: str) -> None:
        self.key_prefix = key_prefix
        self._connect = connect
        self._address = address
        self._bound: _Bound | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return self._address

    def _server(self) -> _Bound:
        bound = self._bound
        if bound is None:
            with self._lock:
                if self._bound is None:
                    self._bound = _Bound(self._connect())
                bound = self._bound
        return bound

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn redis-py's exceptions into satchel's, naming store and address."""
        try:
            yield
        except UNAVAILABLE as exc:
            raise StoreUnavailable(
                f"{self.name} store at {self.address} is unreachable ({action}): {exc}",
                self.name,
                self.address,
            ) from exc
        except rx.RedisError as exc:
            raise StoreError(f"{self.name} store at {self.address} failed to {action}: {exc}") from exc

    def _key(self, key: str) -> str:
        return self.key_prefix + check_key(key)

    def load(self, key: str) -> Record | None:
        name = self._key(key)
        with self._guard("load"):
            pipe = self._server().client.pipeline(transaction=False)
            pipe.hmget(name, "v", "d")
            pipe.pttl(name)
            (version, data), pttl = pipe.execute()
        if version is None:
            return None
        now = time.time()
        # PTTL: -1 no expiry; -2 the key vanished between the two commands.
        expires_at = None if pttl == -1 else now + max(pttl, 0) / 1000
        return Record(data or b"", version.decode("ascii"), expires_at)

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> bool:
        name = self._key(key)
        args: list[Any] = [secrets.token_hex(8), bytes(data), "" if ttl is None else ttl * 1000]
        if expected_version is not None:
            args.append(expected_version)
        with self._guard("save"):
            return bool(self._server().save(keys=[name], args=args))

    def touch(self, key: str, ttl: int | None) -> bool:
        name = self._key(key)
        with self._guard("touch"):
            server = self._server()
            if ttl is None:
                return bool(server.persist(keys=[name]))
            return bool(server.client.pexpire(name, ttl * 1000))

    def delete(self, key: str) -> None:
        name = self._key(key)
        with self._guard("delete"):
            self._server().client.delete(name)

    def purge_expired(self) -> int:
        """Redis expires keys itself."""
        return 0

    def count(self) -> int:
        """Keys under the prefix, by SCAN over the whole keyspace (every primary of a cluster).

        Slow on a big database; meant for tests and the occasional statistic.
        """
        with self._guard("count"):
            client = self._server().client
            return sum(1 for _ in client.scan_iter(match=_glob_escape(self.key_prefix) + "*", count=1000))

    def close(self) -> None:
        with self._lock:
            bound, self._bound = self._bound, None
        if bound is not None:
            with self._guard("close"):
                bound.client.close()


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
        )
        return cls(client, settings.key_prefix, settings.address)


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


__all__ = ["DEFAULT_PREFIX", "RedisClusterStore", "RedisStore"]
