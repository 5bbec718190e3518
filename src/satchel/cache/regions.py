"""The region registry: regions named at import time, configured from settings later.

``get_region("short_term")`` returns the process's one region of that name, a
dogpile :class:`~dogpile.cache.region.CacheRegion`, configured or not: code can
name it at import time, and ``configure_from_settings`` (called by
``config.include("satchel")``) configures it in place. ``regions_from_settings``
builds fresh regions instead, leaving the registry alone (for the command line
and for tests).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from dogpile.cache.api import CacheBackend
from dogpile.cache.exception import RegionNotConfigured
from dogpile.cache.proxy import ProxyBackend
from dogpile.cache.region import CacheRegion, DefaultInvalidationStrategy, RegionInvalidationStrategy

from ..config.cache import DEFAULT_KEY_LENGTH, REGION_NAME, RegionConfig, parse_cache_settings
from ..errors import ConfigurationError
from .backends import backend_class, dogpile_name
from .generations import Generations, RegionState, Wiring
from .guards import Guard, GuardProxy
from .keys import ServerMangler
from .metrics import generation_bumped, metrics_proxies
from .serializers import SERIALIZERS

log = logging.getLogger("satchel.cache")


class RegionNotConfiguredError(ConfigurationError, RegionNotConfigured):
    """A region was used before the settings configured it (both satchel's and dogpile's error)."""


class _NotConfigured:
    """Stands in for an attribute ``configure`` sets, until it does.

    dogpile fails on an unconfigured region with an AttributeError; this says
    which region is missing from the settings. It is a non-data descriptor, so
    the instance's own attribute wins once set: a configured region's lookups
    cost what they always do (a ``__getattr__`` would slow every attribute access).
    """

    def __get__(self, instance: CacheRegion | None, owner: type | None = None) -> Any:
        if instance is None:
            return self
        raise RegionNotConfiguredError(
            f"cache region {instance.name!r} is not configured: add it to cache.regions "
            "(and include satchel, or call satchel.cache.configure_from_settings)",
            "cache.regions",
        )


class SatchelRegion(CacheRegion):
    """A dogpile CacheRegion that knows the satchel settings it was configured from."""

    satchel_config: RegionConfig | None = None
    #: Keys of decorated functions longer than this are hashed (``key_length``).
    satchel_key_length: int = DEFAULT_KEY_LENGTH
    backend = _NotConfigured()
    expiration_time = _NotConfigured()

    @property
    def actual_backend(self) -> CacheBackend:
        """The backend under the region's proxies, as configured now (also after a reconfiguration)."""
        backend: CacheBackend = self.backend
        while isinstance(backend, ProxyBackend):
            backend = backend.proxied
        return backend


class MemoryInvalidation(DefaultInvalidationStrategy):
    """A memory region's own invalidation: a hard one empties the dictionary.

    Still dogpile's per-process strategy (each process has its own memory region),
    so ``satchel cache clear`` refuses it rather than pretend.
    """

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._values = values

    def invalidate(self, hard: bool = True) -> None:
        if hard:
            self._values.clear()
        else:
            super().invalidate(hard=False)


class SharedInvalidation(RegionInvalidationStrategy):
    """Invalidation through the region's generation record: every process, at once.

    Hard invalidation moves the region to a new generation (old values are misses
    everywhere). Soft invalidation records its time; values created before it
    count as expired: one caller recomputes each while the others get the old value.
    A region without ``expire`` cannot serve expired values, so there soft is hard.
    """

    def __init__(self, region: CacheRegion, state: RegionState, has_expiry: bool, name: str = "") -> None:
        self._region = region
        self._state = state
        self._has_expiry = has_expiry
        self._name = name

    def invalidate(self, hard: bool = True) -> None:
        backend = self._region.actual_backend
        assert isinstance(backend, Generations)
        guard = backend.wiring.guard
        try:
            backend.bump(hard or not self._has_expiry)
        except guard.failures as exc:
            raise guard.error(exc, "invalidate the region") from exc
        generation_bumped(self._region)

    def is_invalidated(self, timestamp: float) -> bool:
        return timestamp < self._state.soft

    def was_hard_invalidated(self) -> bool:
        return False

    def is_hard_invalidated(self, timestamp: float) -> bool:
        return False

    def was_soft_invalidated(self) -> bool:
        return self._has_expiry and self._state.soft > 0

    def is_soft_invalidated(self, timestamp: float) -> bool:
        return self._has_expiry and timestamp < self._state.soft


def configure_region(region: SatchelRegion, config: RegionConfig) -> SatchelRegion:
    """Configure ``region`` (again, if it was) from one region's settings."""
    if config.type == "null":
        _configure_null(region, config)
    elif config.type == "memory":
        _configure_memory(region, config)
    else:
        _configure_shared(region, config)
    region.satchel_config = config
    region.satchel_key_length = config.key_length
    return region


def _configure_null(region: CacheRegion, config: RegionConfig) -> None:
    region.configure(
        "dogpile.cache.null",
        expiration_time=config.expire,
        replace_existing_backend=True,
        region_invalidator=DefaultInvalidationStrategy(),  # type: ignore[no-untyped-call]
    )
    region.key_mangler = None
    region.serializer = region.deserializer = None


def _configure_memory(region: CacheRegion, config: RegionConfig) -> None:
    values: dict[str, Any] = {}
    region.configure(
        dogpile_name("memory") if config.serializer == "json" else "dogpile.cache.memory",
        expiration_time=config.expire,
        arguments={"cache_dict": values},
        wrap=metrics_proxies(config),
        replace_existing_backend=True,
        region_invalidator=MemoryInvalidation(values),
    )
    # No key mangler: a hit costs exactly what a bare dogpile memory region's does.
    # Decorated functions hash keys past key_length themselves (as Beaker did).
    region.key_mangler = None
    region.serializer = region.deserializer = None


def _configure_shared(region: CacheRegion, config: RegionConfig) -> None:
    cls = backend_class(config.type)
    unavailable, refused = cls.failures()
    guard = Guard(config.name, config.type, config.address, unavailable, refused, cls.retry_interval)
    state = RegionState()
    base = f"{config.key_prefix}{config.name}:"
    region.configure(
        dogpile_name(config.type),
        expiration_time=config.expire,
        arguments={"satchel": Wiring(config=config, base=base, state=state, guard=guard)},
        wrap=[GuardProxy(guard), *metrics_proxies(config)],  # counted inside the guard: it sees the errors
        replace_existing_backend=True,
        region_invalidator=SharedInvalidation(region, state, config.expire is not None, config.name),
    )
    alphabet = re.compile(cls.key_alphabet) if cls.key_alphabet else None
    region.key_mangler = ServerMangler(base, config.key_length, cls.max_key_length, alphabet)
    region.serializer, region.deserializer = SERIALIZERS[config.serializer]


# -- the registry ------------------------------------------------------------------------

_REGIONS: dict[str, SatchelRegion] = {}
_REGISTRY_LOCK = threading.Lock()

#: Every region this process has named or configured, by name (read-only view).
regions: Mapping[str, CacheRegion] = MappingProxyType(_REGIONS)


def get_region(name: str) -> SatchelRegion:
    """The process's region called ``name``, created (unconfigured) on first use.

    Safe at import time: the region is configured in place when the settings are
    read, so ``short_term = get_region("short_term")`` at module level works.
    """
    region = _REGIONS.get(name)
    if region is not None:
        return region
    if not isinstance(name, str) or not REGION_NAME.fullmatch(name):
        raise ConfigurationError(
            f"{name!r} is not a region name (letters, digits, _ and -, at most 64 characters)"
        )
    with _REGISTRY_LOCK:
        region = _REGIONS.get(name)
        if region is None:
            region = _REGIONS[name] = SatchelRegion(name=name)
    return region


def regions_from_settings(settings: Mapping[str, Any]) -> dict[str, CacheRegion]:
    """Fresh regions built from ``cache.*`` settings, leaving the process's registry alone."""
    parsed = parse_cache_settings(settings)
    return {name: configure_region(SatchelRegion(name=name), config) for name, config in parsed.regions.items()}


def configure_from_settings(settings: Mapping[str, Any]) -> dict[str, CacheRegion]:
    """Configure the process's regions (``get_region``) from ``cache.*`` settings.

    For applications without Pyramid; ``config.include("satchel")`` calls it.
    Parsing happens first, so a bad setting leaves every region as it was.
    """
    parsed = parse_cache_settings(settings)
    configured: dict[str, CacheRegion] = {
        name: configure_region(get_region(name), config) for name, config in parsed.regions.items()
    }
    missing = sorted(name for name, region in _REGIONS.items() if not region.is_configured)
    if missing:
        log.warning(
            "cache regions used by the application but not in cache.regions: %s "
            "(using them raises ConfigurationError)",
            ", ".join(missing),
        )
    return configured


def _resolve(region: str | CacheRegion) -> CacheRegion:
    return get_region(region) if isinstance(region, str) else region


def is_shared(region: str | CacheRegion) -> bool:
    """True when the region's values live outside the process (file, Redis, memcached, SQL)."""
    return isinstance(_resolve(region).region_invalidator, SharedInvalidation)


def invalidate_region(region: str | CacheRegion, hard: bool = True) -> bool:
    """Invalidate a whole region; True when that reached every process sharing its backend.

    On a shared backend this bumps the region's generation (hard) or records a
    soft invalidation: every process sees it on its next read. A memory region is
    invalidated in this process only (False). Raises
    :class:`~satchel.errors.StoreUnavailable` when the backend cannot be reached.
    """
    target = _resolve(region)
    target.invalidate(hard=hard)  # type: ignore[no-untyped-call]
    return is_shared(target)


def clear_region(region: str | CacheRegion) -> bool:
    """Hard-invalidate a region and free what the backend can free.

    Redis: the region's keys are deleted too (SCAN + UNLINK). memcached is never
    flushed (other data lives there): old values age out. A memory region is
    emptied. Returns what :func:`invalidate_region` returns.
    """
    target = _resolve(region)
    shared = invalidate_region(target, hard=True)
    backend = target.actual_backend
    if shared and isinstance(backend, Generations):
        guard = backend.wiring.guard
        try:
            backend.reclaim()
        except guard.failures as exc:
            raise guard.error(exc, "delete the region's values") from exc
    return shared


__all__ = [
    "RegionNotConfiguredError",
    "SatchelRegion",
    "clear_region",
    "configure_from_settings",
    "configure_region",
    "get_region",
    "invalidate_region",
    "is_shared",
    "regions",
    "regions_from_settings",
]
