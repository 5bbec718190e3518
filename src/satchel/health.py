"""Is the session store reachable, and the cache backends? For readiness probes and
``satchel check --connect``.

A probe reads a key nobody uses (so it never writes, unless asked to check that
writing is allowed too) and gives up after ``timeout`` seconds: a readiness probe
must answer even when a server does not. :func:`server_facts` adds what an
operator wants to know before the first incident: the server's version and the
limits that bound a session or a cached value.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dogpile.cache.region import CacheRegion

    from .stores.base import Store

#: Seconds a probe waits for its answer.
DEFAULT_TIMEOUT = 2.0


@dataclass(frozen=True)
class Probe:
    """One backend's answer: ``what`` was probed at ``address``, ``ok`` or not and why."""

    what: str
    address: str
    ok: bool
    seconds: float
    detail: str = ""
    facts: Mapping[str, str] = field(default_factory=dict)

    def line(self) -> str:
        """One line for a person: ``session store redis at host:6379: ok in 1.2 ms (version 7.0.15)``."""
        where = f" at {self.address}" if self.address else ""
        verdict = f"ok in {self.seconds * 1000:.1f} ms" if self.ok else f"FAILED: {self.detail}"
        facts = ", ".join(f"{name} {value}" for name, value in self.facts.items())
        return f"{self.what}{where}: {verdict}" + (f" ({facts})" if facts else "")


@dataclass(frozen=True)
class Health:
    """Every probe's answer; ``ok`` when all are."""

    probes: tuple[Probe, ...]

    @property
    def ok(self) -> bool:
        return all(probe.ok for probe in self.probes)


def probe_key() -> str:
    """A store key nobody else uses: a probe never touches a real session."""
    return hashlib.sha256(b"satchel health probe " + secrets.token_bytes(16)).hexdigest()


def within(timeout: float, work: Callable[[], Any]) -> tuple[bool, float, str]:
    """Run ``work`` for at most ``timeout`` seconds: (succeeded, seconds, what went wrong).
    A server that does not answer leaves a daemon thread waiting on its driver's own
    timeout; the caller has its answer already."""
    outcome: list[BaseException | None] = []
    started = time.perf_counter()

    def attempt() -> None:
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - reported, not raised: a probe answers
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=attempt, name="satchel-health-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    seconds = time.perf_counter() - started
    if not outcome:
        return False, seconds, f"no answer within {timeout:g} s"
    failure = outcome[0]
    if failure is not None:
        return False, seconds, f"{type(failure).__name__}: {failure}"
    return True, seconds, ""


def probe_store(store: Store, *, timeout: float = DEFAULT_TIMEOUT, write: bool = False) -> Probe:
    """Read a key nobody uses; with ``write``, also create a short-lived record there
    and delete it (the account may read but not write, a common misconfiguration)."""

    def exercise() -> None:
        key = probe_key()
        store.load(key)
        if write:
            if store.save(key, b"S1 probe\n", 60, None) is None:
                raise RuntimeError("the store refused to create a record")
            store.delete(key)

    ok, seconds, detail = within(timeout, exercise)
    return Probe(f"session store {store.name}", store.address, ok, seconds, detail)


def probe_region(name: str, region: CacheRegion, *, timeout: float = DEFAULT_TIMEOUT) -> Probe:
    """Read a key nobody uses from the region's backend itself, under the guard that
    turns an outage into a miss: an outage must show here."""
    backend = region.backend
    while hasattr(backend, "proxied"):
        backend = backend.proxied
    ok, seconds, detail = within(
        timeout, lambda: backend.get_serialized(f"satchel-health-probe-{secrets.token_hex(8)}")
    )
    config = getattr(region, "satchel_config", None)
    kind = getattr(config, "type", type(backend).__name__)
    address = _masked(getattr(config, "url", None) or "")
    return Probe(f"cache region {name} ({kind})", address, ok, seconds, detail)


def ready(
    store: Store | None = None,
    regions: Mapping[str, CacheRegion] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> Health:
    """For a readiness probe: the session store and every cache region reachable,
    each within ``timeout`` seconds. Reads only."""
    probes = [] if store is None else [probe_store(store, timeout=timeout)]
    probes += [probe_region(name, region, timeout=timeout) for name, region in (regions or {}).items()]
    return Health(tuple(probes))


# -- what the servers say about themselves (check --connect) ----------------------------------


def server_facts(kind: str, urls: Iterable[str], options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The server version and the limits that bound a record, by backend kind; empty
    for kinds without a server. Raises the driver's error when a server cannot be asked."""
    urls = [url for url in urls if url]
    if kind in ("redis", "rediscluster", "redis+sentinel") and urls:
        return _redis_facts(urls[0], cluster=kind == "rediscluster")
    if kind in ("memcached", "ext:memcached", "pylibmc") and urls:
        return _memcached_facts(urls)
    if kind in ("sql", "ext:sqla", "ext:database") and (urls or (options or {}).get("bind") is not None):
        return _sql_facts(urls[0] if urls else None, options or {})
    return {}


def _redis_facts(url: str, *, cluster: bool) -> dict[str, str]:
    from .stores.redis import redis_client

    client = redis_client(url, cluster=cluster, timeout=DEFAULT_TIMEOUT)  # type: ignore[call-overload]
    try:
        info = client.info()
        if cluster:  # one answer per node: the first node's says enough
            info = next(iter(info.values())) if info and isinstance(next(iter(info.values())), dict) else info
        facts = {"version": str(info.get("valkey_version") or info.get("redis_version"))}
        if "valkey_version" in info:
            facts["server"] = "valkey"
        facts["maxmemory-policy"] = str(info.get("maxmemory_policy"))
        facts["role"] = str(info.get("role"))
        return facts
    finally:
        client.close()


def _memcached_facts(urls: Iterable[str]) -> dict[str, str]:
    from pymemcache.client.base import Client

    from .stores.memcached import parse_servers

    facts: dict[str, str] = {}
    for host, port in parse_servers([u for url in urls for u in url.split(";") if u]):
        client = Client((host, port), connect_timeout=DEFAULT_TIMEOUT, timeout=DEFAULT_TIMEOUT)
        try:
            settings = client.stats("settings")
            version = client.version()
        finally:
            client.close()
        size = settings.get(b"item_size_max")
        facts[f"{host}:{port}"] = f"version {_text(version)}, item_size_max {_text(size)}"
    return facts


def _sql_facts(url: str | None, options: Mapping[str, Any]) -> dict[str, str]:
    import sqlalchemy as sa

    engine = options.get("bind") or sa.create_engine(url or "")
    try:
        with engine.connect() as connection:
            dialect = connection.dialect
            facts = {"dialect": dialect.name}
            version = dialect.server_version_info
            if version:
                facts["version"] = ".".join(str(part) for part in version)
            if dialect.name in ("mysql", "mariadb"):
                packet = connection.execute(sa.text("SELECT @@max_allowed_packet")).scalar()
                facts["max_allowed_packet"] = str(packet)
            return facts
    finally:
        if engine is not options.get("bind"):
            engine.dispose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _masked(url: str) -> str:
    from urllib.parse import urlsplit

    if "://" not in url or "@" not in urlsplit(url).netloc:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('@', 1)[1]}"


__all__ = ["DEFAULT_TIMEOUT", "Health", "Probe", "probe_region", "probe_store", "ready", "server_facts"]
