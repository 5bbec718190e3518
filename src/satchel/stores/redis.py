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

``e`` is computed from the writing client's clock, as ``expires_at`` always
was (from the reading client's clock and PTTL); only the renewal schedule
depends on it, never whether a record still exists.

A server that cannot be reached raises :class:`StoreUnavailable` (an error
answer :class:`StoreError`) naming the store and its address. redis-py
reconnects on the next call, so a store keeps working once the server is back.
"""

from __future__ import annotations

import hashlib
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


def _glob_escape(text: str) -> str:
    """``text`` as a literal inside a SCAN MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class _Bound:
    """The client, built on first use."""

    __slots__ = ("client",)

    def __init__(self, client: Client) -> None:
        self.client = client


def _run_script(client: Client, name: str, *args: Any) -> Any:
    """Run SCRIPT on the record ``name``: one EVALSHA, plus SCRIPT LOAD and a second
    EVALSHA when the server does not know the script (after a restart or SCRIPT FLUSH).

    Called directly rather than through redis-py's ``Script``, which imports
    ``Pipeline`` on every call. Sending the EVALSHA again is safe: NOSCRIPT means
    the script did not run.
    """
    try:
        return client.evalsha(SCRIPT_SHA, 1, name, *args)
    except rx.NoScriptError:
        client.script_load(SCRIPT)
        return client.evalsha(SCRIPT_SHA, 1, name, *args)


def _expiry(ttl: int | None) -> tuple[int | str, int | str]:
    """The TTL in ms and the absolute expiry in Unix ms, as SCRIPT takes them ("" for none)."""
    if ttl is None:
        return "", ""
    ms = ttl * 1000
    return ms, time.time_ns() // 1_000_000 + ms


def _expires_at(expires: bytes | None) -> float | None:
    """``e`` as a Unix time; None for no expiry, and for a record written before ``e``
    existed (or with an unreadable one): the session manager then renews by rewriting."""
    if not expires:
        return None
    try:
        return int(expires) / 1000
    except ValueError:
        return None


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
            reply: list[Any] = self._server().client.hmget(name, "v", "d", "e")
        version, data, expires = reply
        if version is None:
            return None
        return Record(data or b"", version.decode("ascii"), _expires_at(expires))

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> bool:
        name = self._key(key)
        ms, expires = _expiry(ttl)
        args: tuple[Any, ...] = ("save", ms, expires, secrets.token_hex(8), bytes(data))
        if expected_version is not None:
            args += (expected_version,)
        with self._guard("save"):
            return bool(_run_script(self._server().client, name, *args))

    def touch(self, key: str, ttl: int | None) -> bool:
        name = self._key(key)
        ms, expires = _expiry(ttl)
        with self._guard("touch"):
            return bool(_run_script(self._server().client, name, "touch", ms, expires))

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
