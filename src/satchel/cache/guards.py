"""Outage handling for shared cache backends: a region keeps answering while its server is down.

:class:`GuardProxy` wraps every shared backend. When the server cannot be
reached, reads are misses, writes are skipped and nothing is locked; one warning
is logged (then at most one a minute while the outage lasts), and the
application serves freshly computed values. Deleting a value or invalidating a
region must not fail silently, so those raise
:class:`~satchel.errors.StoreUnavailable` instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from dogpile.cache.api import NO_VALUE, SerializedReturnType
from dogpile.cache.proxy import ProxyBackend

from ..errors import StoreError, StoreUnavailable
from .keys import GenKey

log = logging.getLogger("satchel.cache")

#: After a failure, a Redis/SQL/file region skips its backend this long (seconds).
RETRY_INTERVAL = 1.0
#: While a backend keeps failing, one warning per this many seconds.
LOG_INTERVAL = 60.0

Errors = tuple[type[BaseException], ...]


class Guard:
    """Tracks a shared backend's failures: what to skip, and what to log.

    ``unavailable`` are the driver's errors for a server that cannot be reached;
    ``refused`` those of a server that answered with an error (out of memory, a
    value too large). Both leave the value uncached; only the first closes the
    guard for ``retry_interval`` seconds.
    """

    def __init__(
        self,
        region: str,
        kind: str,
        address: str,
        unavailable: Errors,
        refused: Errors,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        self.region = region
        self.kind = kind
        self.address = address
        self.unavailable: Errors = (StoreUnavailable, *unavailable)
        self.refused: Errors = (StoreError, *refused)
        self.failures: Errors = self.unavailable + self.refused
        self.retry_interval = retry_interval
        self.down_until = 0.0
        self.failing = False
        self._logged = -LOG_INTERVAL
        self._refusal_logged = -LOG_INTERVAL
        self._suppressed = 0

    def closed(self) -> bool:
        """True while a recent failure says not to try the backend."""
        return self.down_until > time.monotonic()

    def close_for_retry(self) -> None:
        """Skip the backend for ``retry_interval`` seconds from now."""
        if self.retry_interval:
            self.down_until = time.monotonic() + self.retry_interval

    def unreachable(self, exc: BaseException, action: str) -> None:
        """The server could not be reached: close the guard, and warn (rate-limited)."""
        now = time.monotonic()
        self.close_for_retry()
        first = not self.failing
        self.failing = True
        if not first and now - self._logged < LOG_INTERVAL:
            self._suppressed += 1
            return
        self._logged = now
        more = f" ({self._suppressed} more failures since the last warning)" if self._suppressed else ""
        self._suppressed = 0
        log.warning(
            "cache region %s: %s at %s is unavailable (%s: %s: %s); serving values uncached%s",
            self.region,
            self.kind,
            self.address,
            action,
            type(exc).__name__,
            exc,
            more,
        )

    def refused_by_server(self, exc: BaseException, action: str) -> None:
        """The server answered with an error: the value is not cached (warned at most once a minute)."""
        now = time.monotonic()
        if now - self._refusal_logged < LOG_INTERVAL:
            return
        self._refusal_logged = now
        log.warning(
            "cache region %s: %s at %s refused to %s (%s: %s); the value is not cached",
            self.region,
            self.kind,
            self.address,
            action,
            type(exc).__name__,
            exc,
        )

    def succeeded(self) -> None:
        """A call went through: log the recovery once after a failure."""
        if not self.failing:
            return
        self.failing = False
        self.down_until = 0.0
        log.warning("cache region %s: %s at %s is reachable again", self.region, self.kind, self.address)

    def error(self, exc: BaseException, action: str) -> StoreUnavailable:
        """The exception for an operation that must not fail silently (deleting, invalidating)."""
        return StoreUnavailable(
            f"cache region {self.region}: cannot {action}: {self.kind} at {self.address} failed "
            f"({type(exc).__name__}: {exc})",
            self.kind,
            self.address,
        )


def blind(*keys: str) -> None:
    """Mark keys whose read failed or was skipped: their values must not be stored."""
    for key in keys:
        if isinstance(key, GenKey):
            key.blind = True


class GuardProxy(ProxyBackend):
    """Keeps a region working while its server is down: misses, skipped writes, a warning."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def get_serialized(self, key: str) -> SerializedReturnType:
        guard = self.guard
        if self._skipping():
            blind(key)
            return NO_VALUE
        try:
            value = self.proxied.get_serialized(key)
        except guard.unavailable as exc:
            guard.unreachable(exc, "read")
        except guard.refused as exc:
            guard.refused_by_server(exc, "read")
        else:
            guard.succeeded()
            return value
        blind(key)
        return NO_VALUE

    def get_serialized_multi(self, keys: Iterable[str]) -> Sequence[SerializedReturnType]:
        keys = list(keys)
        guard = self.guard
        if not self._skipping():
            try:
                values = self.proxied.get_serialized_multi(keys)
            except guard.unavailable as exc:
                guard.unreachable(exc, "read")
            except guard.refused as exc:
                guard.refused_by_server(exc, "read")
            else:
                guard.succeeded()
                return values
        blind(*keys)
        return [NO_VALUE] * len(keys)

    def set_serialized(self, key: str, value: bytes) -> None:
        if getattr(key, "blind", False):
            return  # not written: so nothing to learn about the backend from it
        self._write(self.proxied.set_serialized, key, value)

    def set_serialized_multi(self, mapping: Mapping[str, bytes]) -> None:
        self._write(self.proxied.set_serialized_multi, mapping)

    def _write(self, write: Callable[..., None], *args: Any) -> None:
        guard = self.guard
        if self._skipping():
            return
        try:
            write(*args)
        except guard.unavailable as exc:
            guard.unreachable(exc, "write")
        except guard.refused as exc:
            guard.refused_by_server(exc, "write")
        else:
            guard.succeeded()

    def delete(self, key: str) -> None:
        try:
            self.proxied.delete(key)
        except self.guard.failures as exc:
            raise self.guard.error(exc, "delete a value") from exc

    def delete_multi(self, keys: Iterable[str]) -> None:
        try:
            self.proxied.delete_multi(keys)
        except self.guard.failures as exc:
            raise self.guard.error(exc, "delete values") from exc

    def _skipping(self) -> bool:
        return bool(self.guard.down_until) and self.guard.closed()


__all__ = ["LOG_INTERVAL", "RETRY_INTERVAL", "Errors", "Guard", "GuardProxy", "blind"]
