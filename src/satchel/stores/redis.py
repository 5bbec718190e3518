"""Redis and Redis Cluster stores on redis-py's public client API, one round trip per operation.

Each record is one hash, ``key_prefix + key`` -> ``{v: version, d: data, e:
expiry}``, and its lifetime is the key's own TTL: the server expires records
(nothing to purge), and in a cluster a whole record lives in one slot. ``e``
repeats the TTL as an absolute time (Unix milliseconds, empty for none) that
``load`` reads along with the data; the script below sets it and the TTL
together, atomically.

- ``load`` is one HMGET of version, data and expiry. A record without ``e``
  loads with ``expires_at=None``, so the session policy renews it by rewriting
  it, which adds ``e``.
- ``save`` is one EVALSHA of a script that compares the version, writes the
  data with a new random version and sets the TTL, atomically. Versions are
  random tokens, not counters, so a record deleted and created again never
  repeats a version a stale writer may still hold.
- ``touch`` is one EVALSHA of the same script; it never creates a record.
- redis-py's :class:`~redis.commands.core.Script` answers NOSCRIPT (a restarted
  server) with SCRIPT LOAD and the EVALSHA again. Save and touch share the
  script, so a restart costs that once, not twice.
- ``delete`` is one DEL; ``count`` a SCAN of the prefix (every primary of a cluster).

Every command goes through redis-py's command path, so its connection pool,
fork handling, retries and instrumentation (OpenTelemetry sees each command)
apply. A server that cannot be reached raises :class:`StoreUnavailable`, an
error answer :class:`StoreError`, both naming the store and its address
without credentials. A key of another type under the prefix loads as no
record and refuses writes with a :class:`StoreError` naming its type.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, Literal, TypeVar, overload
from urllib.parse import parse_qsl, unquote, urlsplit

from ..clock import Clock, system_clock
from ..config.coerce import as_optional_str, as_str, as_words, uncommented
from ..config.urls import mask_url
from ..errors import ConfigurationError, StoreError, StoreUnavailable
from .base import Record, Store, Version, check_key

try:
    import redis
    from redis import exceptions as rx
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.commands.core import Script
    from redis.retry import Retry
    from redis.sentinel import Sentinel
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise StoreUnavailable('the redis stores need redis-py: pip install "satchel[redis]"', "redis") from exc

log = logging.getLogger("satchel.stores.redis")

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
# A key of another type is refused before anything is written to it.
SCRIPT = """
local key, ttl, expires = KEYS[1], ARGV[2], ARGV[3]
local function foreign(kind)
  return redis.error_reply('WRONGTYPE the key holds a ' .. kind .. ', not a session record')
end
if ARGV[1] == 'touch' then
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then return 0 end
  if kind ~= 'hash' then return foreign(kind) end
  if ttl == '' then
    redis.call('PERSIST', key)
  else
    redis.call('PEXPIRE', key, ttl)
    if tonumber(ttl) <= 0 then return 1 end
  end
  redis.call('HSET', key, 'e', expires)
  return 1
end
local current = redis.pcall('HGET', key, 'v')
if type(current) == 'table' then return foreign(redis.call('TYPE', key)['ok']) end
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

# Errors meaning "the server is not there (right now)", as opposed to an error answer.
UNAVAILABLE: tuple[type[Exception], ...] = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.ClusterDownError,
    rx.RedisClusterException,  # raised when no startup node answers; not a RedisError
)
#: Every exception of redis-py a store turns into one of satchel's. redis-py's
#: parsers raise ValueError on a reply that is not RESP (another server on the port).
T = TypeVar("T")

FAILURES: tuple[type[Exception], ...] = (*UNAVAILABLE, rx.RedisError, ValueError)


def retry_policy(retries: int = 1) -> Retry:
    """satchel's one retry policy for redis-py clients (stores and cache regions).

    A broken connection (a restarted server, an idle connection a firewall
    dropped) is retried at once; a timeout is not, since a second try would
    double the wait on a server that is stuck. Retrying a command that did run
    is safe: a repeated save finds the version it wrote, not the one it
    expected, and answers "conflict", so the writer reloads (never a lost
    update); load, touch and delete are idempotent. A cluster client retries
    ``retries`` times on redis-py's cluster errors instead (these include
    timeouts: a node may be failing over).
    """
    return Retry(NoBackoff(), retries, supported_errors=(rx.ConnectionError,))


@overload
def redis_client(url_or_urls: str | Sequence[str], *, cluster: Literal[False], timeout: float = ...) -> redis.Redis: ...


@overload
def redis_client(url_or_urls: str | Sequence[str], *, cluster: Literal[True], timeout: float = ...) -> RedisCluster: ...


def redis_client(url_or_urls: str | Sequence[str], *, cluster: bool, timeout: float = DEFAULT_TIMEOUT) -> Client:
    """A redis-py client for the URL(s) with satchel's timeouts and :func:`retry_policy`.

    A cluster client takes credentials and TLS from the first URL; the others
    add startup nodes. redis-py connects to a cluster here, in the constructor.
    Options in a URL's query (``?socket_timeout=5``) override ``timeout``.
    """
    if isinstance(url_or_urls, str) and is_sentinel_url(url_or_urls):
        if cluster:
            raise ConfigurationError("a Redis Cluster is not found through Sentinel; use redis:// URLs", "url")
        return sentinel_client(url_or_urls.strip(), timeout)
    urls = server_urls(url_or_urls)
    if not urls:
        raise ConfigurationError("a redis client needs a url", "url")
    common: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if not cluster:
        if len(urls) > 1:
            raise ConfigurationError("a redis (not cluster) client takes one url", "url")
        return redis.Redis.from_url(urls[0], retry=retry_policy(), **common)
    nodes = [
        ClusterNode(part.hostname or "127.0.0.1", part.port or 6379)  # type: ignore[no-untyped-call]
        for part in map(urlsplit, urls[1:])
    ]
    return RedisCluster.from_url(urls[0], startup_nodes=nodes, retry=retry_policy(CLUSTER_RETRIES), **common)


SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")


def is_sentinel_url(url: str) -> bool:
    return url.strip().lower().startswith(SENTINEL_SCHEMES)


def sentinel_client(url: str, timeout: float = DEFAULT_TIMEOUT) -> redis.Redis:
    """A client of the primary that Sentinel names, through redis-py's public
    :class:`~redis.sentinel.Sentinel`:
    ``redis+sentinel://[:password@]host:26379,host2:26379/service[/db]``.

    The password is the primary's; ``?sentinel_password=`` authenticates to the
    sentinels. After a failover the next connection asks the sentinels again, so
    the client follows the new primary without a restart; a demoted primary's
    read-only answer drops the connection the same way.
    """
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels = []
    for host_port in hosts.split(","):
        host, _, port = host_port.strip().rpartition(":") if ":" in host_port else (host_port.strip(), "", "26379")
        sentinels.append((host or "127.0.0.1", int(port or 26379)))
    path = [segment for segment in parts.path.split("/") if segment]
    if not path or len(path) > 2 or not sentinels:
        raise ConfigurationError(f"a Sentinel URL names sentinels and a service: {masked_address(url)}", "url")
    query = dict(parse_qsl(parts.query))
    common: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    sentinel_auth = {"password": query["sentinel_password"]} if query.get("sentinel_password") else {}
    password = unquote(userinfo.partition(":")[2]) if userinfo else None
    username = unquote(userinfo.partition(":")[0]) if userinfo else None
    sentinel = Sentinel(sentinels, sentinel_kwargs={**common, **sentinel_auth}, **common)  # type: ignore[no-untyped-call]
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        username=username or None,
        password=password,
        ssl=parts.scheme.lower().startswith("rediss"),
        retry=retry_policy(),
        **common,
    )
    return client


def server_urls(url_or_urls: str | Sequence[str]) -> tuple[str, ...]:
    """URLs from one string (``;``, ``,`` or spaces between several) or a list, each
    with a scheme (``host:port`` means ``redis://host:port``)."""
    urls = as_words(url_or_urls, "url")
    return tuple(url if "://" in url else f"redis://{url}" for url in urls)


def masked_address(url: str) -> str:
    """``url`` without its credentials (see :func:`satchel.config.urls.mask_url`)."""
    return mask_url(url)


def _as_seconds(value: Any, key: str) -> float:
    try:
        seconds = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a number of seconds, not {value!r}", key) from None
    if not seconds > 0:
        raise ConfigurationError(f"{key} must be more than 0 seconds, not {value!r}", key)
    return seconds


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _holds_other_than(reply: Any, data: bytes) -> bool:
    """Whether an ``HMGET v d`` reply is a record whose data is not ``data`` (an error
    reply is a key of another type, a missing version a record deleted meanwhile)."""
    if isinstance(reply, Exception) or reply[0] is None:
        return False
    return bool((reply[1] or b"") != data)


def _glob_escape(text: str) -> str:
    """``text`` as a literal inside a SCAN MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _is_wrong_type(exc: Exception) -> bool:
    return isinstance(exc, rx.ResponseError) and str(exc).startswith("WRONGTYPE")


class _RedisBase(Store):
    """What both stores share; they differ only in how the client is built."""

    options = {
        "url": as_optional_str,
        "urls": as_words,
        "key_prefix": as_str,
        "socket_timeout": uncommented(_as_seconds),
    }

    def __init__(
        self, connect: Callable[[], Client], key_prefix: str, address: str, *, clock: Clock = system_clock
    ) -> None:
        self.key_prefix = key_prefix
        self.clock = clock
        self._connect = connect
        self._address = address
        self._bound: tuple[Client, Script] | None = None
        self._lock = threading.Lock()
        self._warned_foreign = False

    @property
    def address(self) -> str:
        return self._address

    def _server(self) -> tuple[Client, Script]:
        """The client, built on first use, and the script registered on it."""
        bound = self._bound
        if bound is None:
            with self._lock:
                if self._bound is None:
                    client = self._connect()
                    self._bound = (client, client.register_script(SCRIPT))
                bound = self._bound
        return bound

    def _failure(self, action: str, exc: Exception) -> Exception:
        """redis-py's exception ``exc`` as satchel's, naming store and address."""
        if isinstance(exc, UNAVAILABLE):
            return StoreUnavailable(
                f"{self.name} store at {self.address} is unreachable ({action}): {exc}",
                self.name,
                self.address,
            )
        return StoreError(f"{self.name} store at {self.address} failed to {action}: {exc}")

    def _name(self, key: str) -> str:
        return self.key_prefix + check_key(key)

    def _expiry(self, ttl: int | None) -> tuple[str, str]:
        """The TTL in ms and the absolute expiry in Unix ms, as SCRIPT takes them ("" for none).

        The expiry is read from this client's clock; only the renewal schedule
        depends on it, never whether the record exists (the server's TTL decides).
        """
        if ttl is None:
            return "", ""
        ms = ttl * 1000
        return str(ms), str(int(self.clock() * 1000) + ms)

    def _run_script(self, action: str, name: str, args: Sequence[str | bytes]) -> int:
        try:
            _, script = self._server()
            return int(script(keys=(name,), args=args))
        except FAILURES as exc:
            raise self._failure(action, exc) from exc

    def load(self, key: str) -> Record | None:
        name = self._name(key)
        try:
            client, _ = self._server()
            reply: list[Any] = client.hmget(name, "v", "d", "e")
        except FAILURES as exc:
            if _is_wrong_type(exc):
                self._foreign_key(name)
                return None
            raise self._failure("load", exc) from exc
        version, data, expires = reply
        if version is None:
            return None
        if not version.isascii():  # not a version this store wrote: a foreign hash
            self._foreign_key(name)
            return None
        return Record(data or b"", version.decode("ascii"), _expires_at(expires))

    def _foreign_key(self, name: str) -> None:
        """A key of another type sits where a record would: no session there (a save refuses it)."""
        level = logging.DEBUG if self._warned_foreign else logging.WARNING
        self._warned_foreign = True
        log.log(level, "%s store at %s: %s is not a session record; loaded as none", self.name, self.address, name)

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        name = self._name(key)
        version = os.urandom(8).hex()
        args: list[str | bytes] = ["save", *self._expiry(ttl), version, bytes(data)]
        if expected_version is not None:
            args.append(expected_version if isinstance(expected_version, bytes) else str(expected_version))
        return version if self._run_script("save", name, args) else None

    def touch(self, key: str, ttl: int | None) -> bool:
        return bool(self._run_script("touch", self._name(key), ["touch", *self._expiry(ttl)]))

    def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            client, _ = self._server()
            client.delete(name)
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
            client, _ = self._server()
            return sum(1 for _ in client.scan_iter(match=_glob_escape(self.key_prefix) + "*", count=1000))
        except FAILURES as exc:
            raise self._failure("count", exc) from exc

    def count_excluding(self, data: bytes) -> int:
        """Records under the prefix whose data is not ``data``: a SCAN, then one pipelined
        read of the data field per batch of keys."""
        try:
            client, _ = self._server()
            names = client.scan_iter(match=_glob_escape(self.key_prefix) + "*", count=1000)
            total = 0
            for batch in _batches(names, 1000):
                pipe = client.pipeline(transaction=False)
                for name in batch:
                    pipe.hmget(name, "v", "d")
                total += sum(1 for reply in pipe.execute(raise_on_error=False) if _holds_other_than(reply, data))
            return total
        except FAILURES as exc:
            raise self._failure("count", exc) from exc

    def close(self) -> None:
        with self._lock:
            bound, self._bound = self._bound, None
        if bound is not None:
            try:
                bound[0].close()
            except FAILURES as exc:
                raise self._failure("close", exc) from exc


def _expires_at(expires: bytes | None) -> float | None:
    """``e`` as Unix seconds; none (or an unreadable one) means no expiry, so the
    session policy renews the record by rewriting it."""
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


class RedisStore(_RedisBase):
    """One Redis server (or a proxy in front of several), at a redis://, rediss:// or unix:// URL."""

    name = "redis"

    def __init__(
        self,
        client: redis.Redis,
        key_prefix: str = DEFAULT_PREFIX,
        address: str = "",
        *,
        clock: Clock = system_clock,
    ) -> None:
        if not address:
            options = client.connection_pool.connection_kwargs
            address = options.get("path") or f"{options.get('host')}:{options.get('port')}"
        super().__init__(lambda: client, key_prefix, address, clock=clock)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> RedisStore:
        url = options.get("url")
        if not url:
            raise ConfigurationError("the redis store needs url", "url")
        client = redis_client(url, cluster=False, timeout=_timeout(options))
        address = url.strip() if isinstance(url, str) and is_sentinel_url(url) else server_urls(url)[0]
        return cls(client, _prefix(options), masked_address(address), clock=clock)




class RedisClusterStore(_RedisBase):
    """A Redis Cluster, found through one or more startup nodes (``urls``).

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
        *,
        clock: Clock = system_clock,
    ) -> None:
        connect = client if callable(client) else lambda: client
        super().__init__(connect, key_prefix, address, clock=clock)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> RedisClusterStore:
        urls = server_urls(options.get("urls") or options.get("url") or ())
        if not urls:
            raise ConfigurationError("the rediscluster store needs urls", "urls")
        timeout = _timeout(options)

        def connect() -> RedisCluster:
            return redis_client(urls, cluster=True, timeout=timeout)

        return cls(connect, _prefix(options), ";".join(map(masked_address, urls)), clock=clock)




__all__ = [
    "DEFAULT_PREFIX",
    "SENTINEL_SCHEMES",
    "RedisClusterStore",
    "RedisStore",
    "is_sentinel_url",
    "masked_address",
    "redis_client",
    "retry_policy",
    "sentinel_client",
    "server_urls",
]
