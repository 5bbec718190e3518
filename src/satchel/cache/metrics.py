"""Cache regions counted through OpenTelemetry: hits, misses, values created, lock
waits, generation bumps and backend errors, by region.

A region gets a :class:`MetricsProxy` only when ``opentelemetry-api`` is
installed and the region's ``telemetry`` setting is on (the default); otherwise
nothing is wrapped and a lookup costs what it always did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dogpile.cache.api import NO_VALUE, CacheMutex
from dogpile.cache.proxy import ProxyBackend

from ..telemetry import CacheTelemetry, cache_telemetry

if TYPE_CHECKING:
    from dogpile.cache.api import BackendFormatted, BackendSetType, KeyType, SerializedReturnType
    from dogpile.cache.region import CacheRegion

    from ..config.cache import RegionConfig


def metrics_proxies(config: RegionConfig) -> list[ProxyBackend]:
    """The proxies that count a region's traffic: none when telemetry is off or absent."""
    telemetry = cache_telemetry(config.name, config.telemetry)
    return [] if telemetry is None else [MetricsProxy(telemetry)]


def generation_bumped(region: CacheRegion) -> None:
    """Count a region invalidation that reached every process."""
    backend = region.backend
    while isinstance(backend, ProxyBackend):
        if isinstance(backend, MetricsProxy):
            backend.telemetry.event("generation_bump")
            return
        backend = backend.proxied


class MetricsProxy(ProxyBackend):
    """Counts what passes between the region and its backend."""

    def __init__(self, telemetry: CacheTelemetry) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.telemetry = telemetry

    def _found(self, value: Any) -> Any:
        self.telemetry.event("miss" if value is NO_VALUE else "hit")
        return value

    def _found_many(self, values: Sequence[Any]) -> Sequence[Any]:
        misses = sum(1 for value in values if value is NO_VALUE)
        if misses:
            self.telemetry.event("miss", misses)
        if len(values) - misses:
            self.telemetry.event("hit", len(values) - misses)
        return values

    def _failed(self) -> None:
        self.telemetry.event("backend_error")

    def get(self, key: KeyType) -> BackendFormatted:
        try:
            return self._found(self.proxied.get(key))  # type: ignore[no-any-return]
        except Exception:
            self._failed()
            raise

    def get_serialized(self, key: KeyType) -> SerializedReturnType:
        try:
            return self._found(self.proxied.get_serialized(key))  # type: ignore[no-any-return]
        except Exception:
            self._failed()
            raise

    def get_multi(self, keys: Iterable[str]) -> Sequence[BackendFormatted]:
        try:
            return self._found_many(self.proxied.get_multi(keys))
        except Exception:
            self._failed()
            raise

    def get_serialized_multi(self, keys: Iterable[str]) -> Sequence[SerializedReturnType]:
        try:
            return self._found_many(self.proxied.get_serialized_multi(keys))
        except Exception:
            self._failed()
            raise

    def set(self, key: KeyType, value: BackendSetType) -> None:
        self._stored(self.proxied.set, key, value)

    def set_serialized(self, key: KeyType, value: bytes) -> None:
        self._stored(self.proxied.set_serialized, key, value)

    def set_multi(self, mapping: Mapping[KeyType, BackendSetType]) -> None:
        self._stored(self.proxied.set_multi, mapping, count=len(mapping))

    def set_serialized_multi(self, mapping: Mapping[KeyType, bytes]) -> None:
        self._stored(self.proxied.set_serialized_multi, mapping, count=len(mapping))

    def _stored(self, write: Any, *args: Any, count: int = 1) -> None:
        try:
            write(*args)
        except Exception:
            self._failed()
            raise
        self.telemetry.event("created", count)

    def get_mutex(self, key: KeyType) -> CacheMutex | None:
        mutex = self.proxied.get_mutex(key)
        return None if mutex is None else CountedMutex(mutex, self.telemetry)


class CountedMutex(CacheMutex):
    """A creation lock that counts the callers who had to wait for another's value."""

    def __init__(self, mutex: CacheMutex, telemetry: CacheTelemetry) -> None:
        self.mutex = mutex
        self.telemetry = telemetry

    def acquire(self, wait: bool = True) -> bool:
        if self.mutex.acquire(False):
            return True
        if not wait:
            return False
        self.telemetry.event("lock_wait")
        return self.mutex.acquire(True)

    def release(self) -> None:
        self.mutex.release()

    def locked(self) -> bool:
        return self.mutex.locked()
